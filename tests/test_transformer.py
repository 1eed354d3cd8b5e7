import dataclasses
import math
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import course_utils.exercises.transformer as transformer_exercises
from course_utils import CheckFailed
from course_utils.data.text import load_corpus
from course_utils.exercises.transformer import (
    RECIPE_CHALLENGE,
    check_sinusoidal_positions,
    check_training_recipe,
    check_warmup_cosine_lr,
    recipe_bigram_loss,
    training_recipe_loss,
)
from course_utils.self_attention import causal_mask
from course_utils.shared.layers import count_parameters
from course_utils.shared.lm import CharData, RecurrentLM, estimate_loss, generate, lm_batches, ngram_probabilities
from course_utils.transformer import (
    MLP,
    Block,
    TinyGPT,
    saved_activation_bytes,
    sinusoidal_positions,
    train_char_lm,
    warmup_cosine_lr,
)

CPU = torch.device("cpu")


def test_sinusoidal_by_hand():
    pe = sinusoidal_positions(3, 4)
    # D = 4: frequencies 1 and 1/100.
    expected = torch.tensor([[math.sin(t), math.cos(t), math.sin(t / 100), math.cos(t / 100)] for t in range(3)])
    assert torch.allclose(pe, expected, atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(3, 5)


def test_sinusoidal_shift_is_a_rotation():
    # PE[t + k] is a fixed linear map of PE[t], the same for every t.
    pe = sinusoidal_positions(50, 8).double()
    k = 3
    M = torch.linalg.lstsq(pe[:-k], pe[k:]).solution
    assert torch.allclose(pe[:-k] @ M, pe[k:], atol=1e-5)


def test_block_is_pre_layernorm_with_residuals():
    torch.manual_seed(0)
    block = Block(16, 4).double()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    h = x + block.attn(block.ln1(x), mask)[0]
    expected = h + block.mlp.proj(torch.nn.functional.gelu(block.mlp.fc(block.ln2(h))))
    assert torch.allclose(block(x, mask), expected)
    assert count_parameters(MLP(16)) == 16 * 64 + 64 + 64 * 16 + 16


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", None])
def test_gpt_is_causal(positions):
    torch.manual_seed(0)
    model = TinyGPT(10, context=8, d_model=16, n_heads=2, n_layers=2, positions=positions).eval()
    ids = torch.randint(0, 10, (2, 8))
    changed = ids.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 10
    a, b = model(ids), model(changed)
    assert a.shape == (2, 8, 10)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6) and not torch.allclose(a[:, 5:], b[:, 5:])


def test_gpt_without_positions_ignores_order():
    torch.manual_seed(0)
    model = TinyGPT(10, context=6, d_model=16, n_heads=2, n_layers=1, positions=None).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    swapped = torch.tensor([[2, 1, 3, 4, 5, 6]])  # same set of tokens before position 2
    assert torch.allclose(model(ids)[0, 2:], model(swapped)[0, 2:], atol=1e-6)
    learned = TinyGPT(10, context=6, d_model=16, n_heads=2, n_layers=1).eval()
    assert not torch.allclose(learned(ids)[0, 2:], learned(swapped)[0, 2:], atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match="positions"):
        TinyGPT(10, 8, positions="rotary")
    with pytest.raises(ValueError, match="ids has shape"):
        TinyGPT(10, 8, d_model=16)(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="kind"):
        train_char_lm("abc" * 50, kind="rnn", steps=1)


def test_training_on_any_text_learns():
    text = "the cat sat on the mat. " * 200
    model, data, run = train_char_lm(text, "gpt", context=16, steps=60, device=CPU,
                                     d_model=32, n_heads=2, n_layers=1)
    uniform = math.log(data.vocab.size)
    assert run.val_losses[-1] < 0.5 * uniform and run.steps[-1] == 60
    assert estimate_loss(model, data.val, 16, device=CPU) == pytest.approx(run.val_losses[-1])
    sample = generate(model, data.vocab, "the ", 20, context=16)
    assert sample.startswith("the ") and len(sample) == 24


def test_lstm_baseline_trains_on_the_corpus():
    model, data, run = train_char_lm(load_corpus(50_000), "lstm", context=32, steps=40, device=CPU,
                                     hidden_size=64)
    assert run.val_losses[-1] < run.val_losses[0] or run.val_losses[-1] < math.log(data.vocab.size) - 0.5


def test_saved_activation_bytes_of_one_matmul_by_hand():
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(4, 5, requires_grad=True)
    # a @ b saves a (12 floats) and b (20 floats) for its gradients: 32 * 4 bytes; sum saves nothing.
    assert saved_activation_bytes(lambda: (a @ b).sum()) == 128
    assert a.grad is not None and b.grad is not None  # the backward pass ran
    assert saved_activation_bytes(lambda: (a @ b).sum(), exclude=[b]) == 48
    # a[:2] is a view of a: the same storage, counted once.
    assert saved_activation_bytes(lambda: (a @ b).sum() + (a[:2] @ b).sum()) == 128
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor that requires grad"):
        saved_activation_bytes(lambda: a @ b)
    with pytest.raises(ValueError, match="requires_grad=False"):
        saved_activation_bytes(lambda: torch.zeros(()))


def _training_bytes(model, T, batch=2):
    ids = torch.randint(0, 10, (batch, T))
    loss = lambda: torch.nn.functional.cross_entropy(model(ids).flatten(0, 1), ids.flatten())  # noqa: E731
    return saved_activation_bytes(loss, exclude=model.parameters())


@pytest.mark.parametrize("n_layers", [1, 2])
def test_saved_activation_bytes_shows_attentions_quadratic_term(n_layers):
    torch.manual_seed(0)
    model = TinyGPT(10, 32, d_model=8, n_heads=2, n_layers=n_layers)
    f = {T: _training_bytes(model, T) for T in (8, 16, 24)}
    # Per layer, B * h * T^2 floats twice (softmax's output; the NaN-cleaned weights that
    # multiply V) and T^2 bools (the inverted mask): f(T) = a T + b T^2 + c with
    # b = n_layers * (2 * B * h * 4 + 1) bytes, so f(24) - 2 f(16) + f(8) = 2 b 8^2.
    b = n_layers * (2 * 2 * 2 * 4 + 1)
    assert f[24] - 2 * f[16] + f[8] == 2 * b * 8**2


def test_saved_activation_bytes_of_an_lstm_grow_linearly():
    torch.manual_seed(0)
    model = RecurrentLM("lstm", 10, embed_size=8, hidden_size=16)
    small, large = _training_bytes(model, 128), _training_bytes(model, 256)
    assert 1.9 < large / small < 2.1  # O(T): one set of gates per step (oneDNN pads its workspace a little)


# ----------------------------------------------------------------------------- exercise 1: sinusoidal positions

def _positions_answer(T, D, *, layout="interleaved", exponent=2.0, start=0):
    t = torch.arange(start, start + T, dtype=torch.float32)[:, None]  # (T, 1)
    angle = t / 10000.0 ** (exponent * torch.arange(D // 2, dtype=torch.float32) / D)  # (T, D/2)
    if layout == "concatenated":
        return torch.cat([angle.sin(), angle.cos()], dim=1)
    first, second = (angle.cos(), angle.sin()) if layout == "swapped" else (angle.sin(), angle.cos())
    return torch.stack([first, second], dim=-1).reshape(T, D)


POSITION_MISTAKES = {  # keyword arguments of _positions_answer -> words the feedback must contain
    "concatenated": ({"layout": "concatenated"}, "put all the sines first and then all the cosines"),
    "sin and cos swapped": ({"layout": "swapped"}, "swap sin and cos"),
    "exponent i/D": ({"exponent": 1.0}, "exponent as i/D instead of 2i/D"),
    "positions from 1": ({"start": 1}, "count positions from 1"),
}


def test_check_sinusoidal_positions_passes_a_right_answer(capsys):
    check_sinusoidal_positions(_positions_answer)
    check_sinusoidal_positions(_positions_answer, seed=1)
    assert "OK my_sinusoidal_positions(9, 12)" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", POSITION_MISTAKES)
def test_check_sinusoidal_positions_names_each_mistake(mistake):
    kwargs, words = POSITION_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_sinusoidal_positions(lambda T, D: _positions_answer(T, D, **kwargs))


def test_check_sinusoidal_positions_names_shapes_types_and_the_reference():
    with pytest.raises(CheckFailed, match="calls sinusoidal_positions, an existing implementation"):
        check_sinusoidal_positions(lambda T, D: sinusoidal_positions(T, D))
    with pytest.raises(CheckFailed, match="transposed"):
        check_sinusoidal_positions(lambda T, D: _positions_answer(T, D).T)
    with pytest.raises(CheckFailed, match="return a torch tensor of shape"):
        check_sinusoidal_positions(lambda T, D: _positions_answer(T, D).numpy())


# ----------------------------------------------------------------------------- exercise 3: the schedule

def _schedule_answer(step, warmup_steps, peak_lr, total_steps, *, zero_start=False, decay="cosine"):
    if step < warmup_steps:
        return peak_lr * (step if zero_start else step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return {"cosine": peak_lr * 0.5 * (1 + math.cos(math.pi * progress)), "none": peak_lr,
            "negative": peak_lr * math.cos(math.pi * progress), "linear": peak_lr * (1 - progress)}[decay]


SCHEDULE_MISTAKES = {  # keyword arguments of _schedule_answer -> words the feedback must contain
    "lr 0 at step 0": ({"zero_start": True}, "step 0 gets lr 0 and does nothing"),
    "no decay": ({"decay": "none"}, "forget the decay"),
    "cosine to -peak": ({"decay": "negative"}, "it ends at -peak_lr"),
    "linear decay": ({"decay": "linear"}, "decay linearly instead of along a cosine"),
}


def test_warmup_cosine_lr_by_hand():
    lrs = [warmup_cosine_lr(s, 4, 1.0, 12) for s in range(12)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]  # step 0 already moves; the peak at step warmup_steps - 1
    assert lrs[4] == 1.0 and lrs[8] == pytest.approx(0.5) and 0 < lrs[-1] < 0.05
    assert np.all(np.diff(lrs[4:]) < 0)


def test_check_warmup_cosine_lr_passes_a_right_schedule(capsys):
    check_warmup_cosine_lr(_schedule_answer)
    check_warmup_cosine_lr(_schedule_answer, seed=1)
    assert "OK my_warmup_cosine_lr: 2 schedules" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", SCHEDULE_MISTAKES)
def test_check_warmup_cosine_lr_names_each_mistake(mistake):
    kwargs, words = SCHEDULE_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_warmup_cosine_lr(lambda *args: _schedule_answer(*args, **kwargs))


def test_check_warmup_cosine_lr_refuses_the_reference_and_non_numbers():
    with pytest.raises(CheckFailed, match="calls warmup_cosine_lr, an existing implementation"):
        check_warmup_cosine_lr(lambda *args: warmup_cosine_lr(*args))
    with pytest.raises(CheckFailed, match="return the learning rate as a number; step 0 gave a list"):
        check_warmup_cosine_lr(lambda *args: [_schedule_answer(*args)])
    assert torch.is_tensor(torch.tensor(warmup_cosine_lr(0, 1, 1e-3, 5)))
    check_warmup_cosine_lr(lambda *args: torch.tensor(_schedule_answer(*args), dtype=torch.float64))


# ----------------------------------------------------------------------------- exercise 4: a training recipe

GOOD_RECIPE = {"warmup_steps": 10, "peak_lr": 2e-2}  # the notebook's solution
BARELY_MISSES = {"warmup_steps": 10, "peak_lr": 3e-3}  # section 3's learning rate: beyond letter pairs, not enough
RECIPE_MISTAKES = {  # name -> (recipe, words the feedback must contain)
    "tiny peak": ({"warmup_steps": 10, "peak_lr": 1e-4}, "a peak learning rate of 0.0001 is small for 200 steps"),
    "section 3's rate, no warm-up (the idea-less recipe)": (
        {"warmup_steps": 0, "peak_lr": 3e-3}, "a peak learning rate of 0.003 is small for 200 steps"),
    "high peak, no warm-up": ({"warmup_steps": 0, "peak_lr": 0.1},
                              "a peak learning rate of 0.1 after 0 warm-up steps: the first updates at full size "
                              "overshoot"),
}


class BigramNet(torch.nn.Module):
    """A model that sees only the current character: a trained (V, V) table of next-character logits."""

    def __init__(self, vocab_size, context, *args):
        super().__init__()
        self.table = torch.nn.Embedding(vocab_size, vocab_size)
        torch.nn.init.zeros_(self.table.weight)  # uniform predictions at the start

    def forward(self, ids):
        return self.table(ids)  # (B, T, V)


def test_recipe_target_is_below_the_bigram_model_on_every_seed():
    for seed in (0, 1, 2):
        assert RECIPE_CHALLENGE["target"] < recipe_bigram_loss(seed=seed) - 0.05


def test_recipe_bigram_loss_by_hand():
    data = CharData.from_text(load_corpus())
    _, bigram = ngram_probabilities(data.train.numpy(), data.vocab.size)
    x, y = lm_batches(data.val, 8, 64, RECIPE_CHALLENGE["context"], seed=20_000 + 1)[3]  # one of seed 1's batches
    assert x.shape == (64, 32) and torch.equal(x[:, 1:], y[:, :-1])
    by_hand = -np.log(bigram[x[5, 7].item(), y[5, 7].item()])  # one position
    assert -np.log(bigram[x.numpy(), y.numpy()])[5, 7] == pytest.approx(by_hand)
    assert 2.2 < recipe_bigram_loss(seed=1) < 2.5 and recipe_bigram_loss(seed=1) != recipe_bigram_loss(seed=0)


# The good recipe passing on every graded seed (0, 1, 2) is checked where it is graded: nbval runs 08's source, whose
# visible and hidden test cells call check_training_recipe on the solution; the section's rate without warm-up failing
# on every graded seed is tests/test_shown_answers.py's idea-less test. Here: its message, on the seed it once passed.
@pytest.mark.slow
def test_section_3_s_rate_without_warm_up_is_told_its_culprit(seed=2):
    # 2.28, 2.26, 2.23 on seeds 0-2 (issue 29: it passed seed 2 under the old target of 2.25)
    with pytest.raises(CheckFailed, match=r"nats above the target.* Likely culprit: a peak learning rate of 0\.003"):
        check_training_recipe({"warmup_steps": 0, "peak_lr": 3e-3}, seed=seed)


@pytest.mark.parametrize("name", RECIPE_MISTAKES)
@pytest.mark.slow
def test_check_training_recipe_says_how_far_and_names_the_culprit(name):
    recipe, words = RECIPE_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"nats above the target.* Likely culprit: .*" + re.escape(words)):
        check_training_recipe(recipe)


def test_a_bigram_level_model_fails_as_no_better_than_the_bigram(monkeypatch):
    recipe = {"warmup_steps": 10, "peak_lr": 0.3}  # a good rate for a (V, V) table
    monkeypatch.setattr(transformer_exercises, "TinyGPT", BigramNet)  # the check trains a bigram model instead
    loss, bigram = training_recipe_loss(recipe), recipe_bigram_loss()
    assert abs(loss - bigram) < 0.05  # it learns letter pairs, and nothing more
    with pytest.raises(CheckFailed, match=rf"validation loss of {loss:.3f} .*: no better than the bigram model: "
                       rf"{loss:.3f} against its {bigram:.3f} nats/char"):
        check_training_recipe(recipe)


@pytest.mark.slow
def test_an_under_trained_model_is_no_better_than_the_bigram():
    with pytest.raises(CheckFailed, match=r"no better than the bigram model: .*Likely culprit: a peak learning rate "
                       r"of 0\.001 is small"):
        check_training_recipe({"warmup_steps": 0, "peak_lr": 1e-3})


@pytest.mark.slow
def test_a_recipe_that_barely_misses_is_told_how_far_it_is():
    loss, bigram = training_recipe_loss(BARELY_MISSES), recipe_bigram_loss()
    target = RECIPE_CHALLENGE["target"]
    assert target <= loss < target + 0.1 and loss < bigram - 0.03  # beyond letter pairs, close, but not there
    words = (rf"validation loss of {loss:.3f} nats/char \(target: below {target}; the bigram model scores "
             rf"{bigram:.3f} on the same windows\): {loss - target:.3f} nats above the target: better than the "
             rf"bigram model by {bigram - loss:.3f} nats, not yet by the {bigram - target:.3f} the target asks\.")
    with pytest.raises(CheckFailed, match=words):
        check_training_recipe(BARELY_MISSES)


def test_check_training_recipe_reports_divergence(monkeypatch):
    diverging = dataclasses.replace(transformer_exercises.RECIPE_GRADING, measure=lambda recipe, seed=0: math.inf)
    monkeypatch.setattr(transformer_exercises, "RECIPE_GRADING", diverging)
    with pytest.raises(CheckFailed, match=r"reaches a validation loss of inf .*: the training diverged\."):
        check_training_recipe({"warmup_steps": 0, "peak_lr": 0.9})


@pytest.mark.slow
def test_training_recipe_loss_is_seeded_and_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    first = training_recipe_loss(GOOD_RECIPE, seed=4)
    assert torch.equal(torch.rand(3), before) and torch.get_num_threads() == threads
    assert training_recipe_loss(GOOD_RECIPE, seed=4) == first


@pytest.mark.parametrize(
    ("recipe", "words"),
    [
        ({"peak_lr": 0.01}, "exactly the keys warmup_steps, peak_lr"),
        ({"warmup_steps": 10, "peak_lr": 0.01, "weight_decay": 0.1}, "exactly the keys warmup_steps, peak_lr"),
        ([10, 0.01], "exactly the keys warmup_steps, peak_lr; got list"),
        ({"warmup_steps": 10.0, "peak_lr": 0.01}, "warmup_steps should be a whole number from 0 to 200"),
        ({"warmup_steps": 201, "peak_lr": 0.01}, "warmup_steps should be a whole number from 0 to 200"),
        ({"warmup_steps": -1, "peak_lr": 0.01}, "warmup_steps should be a whole number"),
        ({"warmup_steps": 10, "peak_lr": 0}, r"peak_lr should be a number in \(0, 1\]"),
        ({"warmup_steps": 10, "peak_lr": 3.0}, r"peak_lr should be a number in \(0, 1\]"),
        ({"warmup_steps": 10, "peak_lr": "0.01"}, r"peak_lr should be a number"),
    ],
)
def test_check_training_recipe_rejects_malformed_recipes_before_training(recipe, words, monkeypatch):
    monkeypatch.setattr(transformer_exercises, "TinyGPT", None)  # training would fail on calling it
    with pytest.raises(CheckFailed, match=words):
        check_training_recipe(recipe)


def _block_forward(post_ln=False, residual=True, mlp_input="h", one_ln=False, use_mask=True):
    """A learner's pre-LN block forward from its parts, right by default; each keyword makes one mistake."""
    def my_block_forward(block, x, mask):
        m = mask if use_mask else None
        if post_ln:
            h = block.ln1(x + block.attn(x, m)[0])
            return block.ln2(h + block.mlp(h))
        a = block.attn(block.ln1(x), m)[0]
        h = x + a if residual else a
        ln = block.ln1 if one_ln else block.ln2
        out = block.mlp(ln(h if mlp_input == "h" else x))
        return h + out if residual else out
    return my_block_forward


def test_check_block_forward_passes_and_names_each_mistake(capsys):
    from course_utils.exercises.transformer import check_block_forward

    check_block_forward(_block_forward())
    check_block_forward(_block_forward(), seed=1)
    assert "OK my_block_forward" in capsys.readouterr().out
    for options, words in [(dict(post_ln=True), "post-LN"), (dict(residual=False), "leave out the residual"),
                           (dict(mlp_input="x"), "feed the MLP the normalised attention input again"),
                           (dict(one_ln=True), "use LN1 for both sublayers"),
                           (dict(use_mask=False), "forget the mask")]:
        with pytest.raises(CheckFailed, match=re.escape(words)):
            check_block_forward(_block_forward(**options))
    with pytest.raises(CheckFailed, match="reaches course_utils.transformer.Block"):
        check_block_forward(lambda block, x, mask: block(x, mask))  # the block's own forward


# --- section 6: online softmax and tiled attention ------------------------------------------------------------


def test_online_softmax_equals_softmax_in_float64():
    from course_utils.transformer import online_softmax

    x = torch.randn(6, 37, dtype=torch.float64) * 10
    x[0, :5] = float("-inf")  # masked entries at the start: the running max starts at -inf
    assert torch.allclose(online_softmax(x), torch.softmax(x, dim=-1), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("block", [1, 7, 32, 200])
def test_tiled_attention_equals_full_attention(causal, dtype, atol, block):
    from course_utils.self_attention import scaled_dot_product_attention
    from course_utils.transformer import full_attention, tiled_attention

    q, k, v = (torch.randn(2, 3, 50, 8, dtype=dtype) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert torch.allclose(tiled_attention(q, k, v, causal=causal, block=block), expected, atol=atol, rtol=0)
    assert torch.allclose(full_attention(q, k, v, causal=causal), expected, atol=atol, rtol=0)
    ours = scaled_dot_product_attention(q, k, v, causal_mask(50) if causal else None)[0]
    assert torch.allclose(ours, expected, atol=atol, rtol=0)


def test_tiled_attention_with_more_keys_than_queries_and_a_row_with_no_key():
    from course_utils.transformer import tiled_attention

    q, k, v = torch.randn(4, 8, dtype=torch.float64), torch.randn(9, 8, dtype=torch.float64), torch.randn(9, 5)
    out = tiled_attention(q, k, v.double(), block=4)
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v.double()), atol=1e-12)
    empty = tiled_attention(q, k[:0], v[:0].double(), block=4)  # no keys at all: zeros, no NaN
    assert empty.shape == (4, 5) and not empty.isnan().any() and (empty == 0).all()


def test_peak_bytes_grow_as_t_squared_for_full_and_t_for_tiled():
    from course_utils.transformer import PeakBytes, full_attention, tiled_attention

    peaks = {}
    for T in (64, 128, 256):
        q = torch.randn(1, 2, T, 16)
        full, tiled = PeakBytes(), PeakBytes()
        full_attention(q, q, q, causal=True, meter=full)
        tiled_attention(q, q, q, causal=True, block=32, meter=tiled)
        peaks[T] = full.peak, tiled.peak
    assert peaks[64][0] == 2 * 2 * 64 * 64 * 4  # scores and weights, 2 heads, float32
    assert peaks[64][1] == 2 * 64 * (1 + 1 + 16 + 32 + 32) * 4  # m, total, acc, scores and p per head
    assert peaks[256][0] == 16 * peaks[64][0] and peaks[256][1] == 4 * peaks[64][1]


def _online_update(*, rescale_total=True, rescale_acc=True, inverted=False, block_max=False, normalise=False,
                   guard=True):
    """A learner's online-softmax update, right by default; each keyword makes one of the usual mistakes."""
    def my_online_softmax_update(m, total, acc, scores, v):
        top = scores.amax(dim=-1, keepdim=True)
        m_new = top if block_max else torch.maximum(m, top)
        shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new) if guard else m_new
        factor = torch.exp(shift - m) if inverted else torch.exp(m - shift)
        p = torch.exp(scores - shift)
        new_total = (total * factor if rescale_total else total) + p.sum(-1, keepdim=True)
        new_acc = (acc * factor if rescale_acc else acc) + p @ v
        return m_new, new_total, new_acc / new_total if normalise else new_acc
    return my_online_softmax_update


UPDATE_MISTAKES = {
    "old sum": (dict(rescale_total=False), "without rescaling it"),
    "accumulator": (dict(rescale_acc=False), "leave the accumulator acc unrescaled"),
    "inverted": (dict(inverted=True), "invert the rescale factor"),
    "block max": (dict(block_max=True), "use the block's max instead of the running max"),
    "normalise early": (dict(normalise=True), "normalising too early"),
    "-inf": (dict(guard=False), r"exp\(-inf - \(-inf\)\) = NaN"),
}


@pytest.mark.parametrize("seed", [0, 1])
def test_check_online_softmax_update_passes_a_right_update(seed, capsys):
    from course_utils.exercises.transformer import check_online_softmax_update

    check_online_softmax_update(_online_update(), seed=seed)
    assert "OK my_online_softmax_update" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", UPDATE_MISTAKES)
def test_check_online_softmax_update_names_each_mistake(mistake):
    from course_utils.exercises.transformer import check_online_softmax_update

    kwargs, words = UPDATE_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=words):
        check_online_softmax_update(_online_update(**kwargs))


def test_check_online_softmax_update_refuses_the_reference_and_wrong_returns():
    from course_utils.exercises.transformer import check_online_softmax_update
    from course_utils.transformer import online_softmax_update

    with pytest.raises(CheckFailed, match="calls online_softmax_update, an existing implementation"):
        check_online_softmax_update(lambda m, total, acc, scores, v: online_softmax_update(m, total, acc, scores, v))
    with pytest.raises(CheckFailed, match="as a tuple"):
        check_online_softmax_update(lambda m, total, acc, scores, v: acc)
    with pytest.raises(CheckFailed, match="shape"):
        check_online_softmax_update(lambda m, total, acc, scores, v: (m, total, acc[:, :1]))
