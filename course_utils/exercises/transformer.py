"""Notebook 08, the exercises on :mod:`course_utils.transformer`.

Checks that name the usual mistakes: ``check_sinusoidal_positions``, ``check_warmup_cosine_lr``,
``check_block_forward``, ``check_online_softmax_update``.
Graded by outcome (the learner's setting is trained, seeded): ``check_training_recipe``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core.checks import (
    Challenge,
    CheckFailed,
    Verdict,
    check_close,
    check_shape,
    name_mistake,
    refuse_reference,
    require_keys,
)
from ..core.seed import seeded, seeded_run
from ..core.training import evaluate, fit
from ..self_attention import causal_mask
from ..shared.lm import (
    LMBatch,
    corpus_data,
    lm_batches,
    next_token_loss,
    ngram_probabilities,
)
from ..transformer import Block, TinyGPT, online_softmax_update, warmup_cosine_lr


def _sinusoid(T: int, D: int, *, exponent: float = 2.0, start: int = 0, layout: str = "interleaved") -> np.ndarray:
    """(T, D) sinusoids in float64, right (the defaults) or in one of the usual wrong ways."""
    t = np.arange(start, start + T, dtype=np.float64)[:, None]  # (T, 1)
    i = np.arange(D // 2, dtype=np.float64)  # (D/2,)
    angle = t / 10000.0 ** (exponent * i / D)  # (T, D/2)
    sin, cos = np.sin(angle), np.cos(angle)
    if layout == "concatenated":
        return np.concatenate([sin, cos], axis=1)
    pe = np.empty((T, D))
    first, second = (cos, sin) if layout == "swapped" else (sin, cos)
    pe[:, 0::2], pe[:, 1::2] = first, second
    return pe


def check_sinusoidal_positions(fn, seed: int = 0) -> None:
    """Test ``fn(T, D) -> (T, D)`` sinusoidal encodings against :func:`sinusoidal_positions` (notebook 08, exercise 1).

    Fails naming the usual mistake the values match: sin and cos concatenated instead of
    interleaved, or swapped, the exponent i/D instead of 2i/D, positions counted from 1,
    positions and dimensions swapped.
    """
    fn = refuse_reference(fn, ("sinusoidal_positions", "TinyGPT", "_sinusoid"))
    T, D = 9 + seed, 12  # T != D, so a transposed answer shows in the shape
    got = fn(T, D)
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"return a torch tensor of shape ({T}, {D}), not a {type(got).__name__}.")
    check_shape(f"my_sinusoidal_positions({T}, {D})", got, (T, D))
    expected = _sinusoid(T, D)
    mistakes = {
        "put all the sines first and then all the cosines (concatenated): here dimension 2i holds the sine and "
        "2i + 1 the cosine of the same angle (interleaved)": _sinusoid(T, D, layout="concatenated"),
        "swap sin and cos: the even dimensions 2i hold sin, the odd ones 2i + 1 cos": _sinusoid(T, D, layout="swapped"),
        "write the exponent as i/D instead of 2i/D (i counts the pairs, 2i is the even dimension)":
            _sinusoid(T, D, exponent=1.0),
        "write the exponent as 2i/D with i the dimension itself (0..D-1) rather than the pair: use 2i = 0, 2, 4, ...":
            _sinusoid(T, D, exponent=4.0),
        "count positions from 1: the first position is t = 0": _sinusoid(T, D, start=1),
    }
    name = f"my_sinusoidal_positions({T}, {D})"
    got64 = got.detach().cpu().double().numpy()  # float32 sines of large angles differ from float64 by ~1e-6
    for hint, value in mistakes.items():
        if not np.allclose(got64, expected, atol=1e-5) and np.allclose(got64, value, rtol=1e-5, atol=1e-5):
            raise CheckFailed(f"{name} is off: it matches what you get when you {hint}.")
    check_close(name, got.detach().double(), torch.from_numpy(expected), rtol=1e-5, atol=1e-5)


def _schedule_mistakes(steps: np.ndarray, w: int, peak: float, total: int) -> dict[str, np.ndarray]:
    """What the usual wrong schedules give on ``steps`` (0..total-1)."""
    after = (steps - w) / max(total - w, 1)  # (total,): progress of the decay
    warm = steps < w
    cosine = peak * 0.5 * (1 + np.cos(np.pi * after))
    return {
        "warm up with step / warmup_steps: step 0 gets lr 0 and does nothing (use (step + 1) / warmup_steps)":
            np.where(warm, peak * steps / w, cosine),
        "forget the decay: after the warm-up the rate should fall along a cosine to 0, not stay at the peak":
            np.where(warm, peak * (steps + 1) / w, peak),
        "run the cosine over all the steps from step 0 instead of over the steps after the warm-up":
            np.where(warm, peak * (steps + 1) / w, peak * 0.5 * (1 + np.cos(np.pi * steps / total))),
        "write the decay as peak_lr * cos(pi * progress): it ends at -peak_lr; use 0.5 * (1 + cos(...))":
            np.where(warm, peak * (steps + 1) / w, peak * np.cos(np.pi * after)),
        "decay linearly instead of along a cosine": np.where(warm, peak * (steps + 1) / w, peak * (1 - after)),
    }


def check_warmup_cosine_lr(fn, seed: int = 0) -> None:
    """Test ``fn(step, warmup_steps, peak_lr, total_steps) -> lr`` over whole schedules (notebook 08, exercise 3).

    Fails naming the usual mistake the curve matches: lr 0 at step 0, no decay, the cosine
    started at step 0, a cosine that goes negative, a linear decay.
    """
    fn = refuse_reference(fn, ("warmup_cosine_lr", "LambdaLR", "CosineAnnealingLR", "OneCycleLR", "SequentialLR"))
    rng = np.random.default_rng(seed)
    cases = [(int(rng.integers(3, 8)), float(rng.choice([1e-3, 3e-3, 1e-2])), int(rng.integers(20, 40))),
             (1, 5e-3, 10)]  # warm-up of one step: the peak at step 0
    for w, peak, total in cases:
        steps = np.arange(total)
        got = []
        for s in steps:
            lr = fn(int(s), w, peak, total)
            if isinstance(lr, torch.Tensor) and lr.numel() == 1:
                lr = lr.item()
            if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating, np.integer)):
                raise CheckFailed(f"return the learning rate as a number; step {s} gave a {type(lr).__name__}.")
            got.append(float(lr))
        expected = np.array([warmup_cosine_lr(int(s), w, peak, total) for s in steps])  # (total,)
        name = f"the schedule for warmup_steps={w}, peak_lr={peak:g}, total_steps={total} (steps 0..{total - 1})"
        name_mistake(name, np.array(got), expected, _schedule_mistakes(steps, w, peak, total))
        check_close(name, np.array(got), expected, quiet=True)
    print(f"OK my_warmup_cosine_lr: {len(cases)} schedules, step by step")


RECIPE_KEYS = ("warmup_steps", "peak_lr")


# The challenge: the model, the batches, AdamW's weight decay, the optimiser steps and the
# validation loss (nats/char) to beat. The target asks for more than letter pairs: the bigram
# model (counted on the training text) scores 2.32-2.35 on the validation windows of seeds
# 0-2, so a model that learns only which letter follows which cannot pass. Measured (seeds
# 0-2, 200 steps): warm-up 10 to 0.02 reaches 2.15-2.17, 20 to 0.03 2.14-2.16; 10 to 0.003
# (section 3's rate) 2.24-2.29; 0 to 0.001 2.46-2.49, worse than the bigram model. Section 3's
# setting (no warm-up, 0.003: the recipe without the exercise's idea) reaches 2.23-2.28 on
# seeds 0-4 (2.229 on seed 2), and 40 warm-up steps to 0.003 (section 3's schedule plot)
# 2.24-2.30 on seeds 0-2. Hence 2.20: both fail on every seed the check grades (0, 1, 2),
# and the solution (10 to 0.02) passes each by more than 0.03.
RECIPE_CHALLENGE = {"d_model": 48, "n_heads": 4, "n_layers": 2, "context": 32, "batch_size": 32,
                    "weight_decay": 0.01, "steps": 200, "target": 2.20}


MAX_PEAK_LR = 1.0


BIGRAM_MARGIN = 0.02  # within this of the bigram model's loss (or above it) counts as "no better than the bigram"


def _recipe_val_batches(seed: int) -> list[LMBatch]:
    """The validation windows the recipe of ``seed`` is scored on: 8 batches of (64, context)."""
    return lm_batches(corpus_data().val, 8, 64, RECIPE_CHALLENGE["context"], seed=20_000 + seed)


def recipe_bigram_loss(*, seed: int = 0) -> float:
    """The bigram model's loss (nats/char) on the validation windows :func:`training_recipe_loss` scores ``seed`` on.

    The bigram model is counted on the training text (add-one smoothing,
    :func:`course_utils.shared.lm.ngram_probabilities`): the best a model that sees only the current
    character can do, the yardstick the challenge's target sits below.
    """
    data = corpus_data()
    _, bigram = ngram_probabilities(data.train.numpy(), data.vocab.size)  # (V, V)
    losses = [-np.log(bigram[x.numpy(), y.numpy()]).mean() for x, y in _recipe_val_batches(seed)]  # (B, T) each
    return float(np.mean(losses))


def _validate_recipe(recipe: dict) -> dict:
    require_keys(recipe, RECIPE_KEYS)
    w, lr, steps = recipe["warmup_steps"], recipe["peak_lr"], RECIPE_CHALLENGE["steps"]
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 0 <= w <= steps:
        raise CheckFailed(f"warmup_steps should be a whole number from 0 to {steps} (the run's steps), got {w!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr <= MAX_PEAK_LR:
        raise CheckFailed(f"peak_lr should be a number in (0, {MAX_PEAK_LR:g}], got {lr!r}")
    return {"warmup_steps": int(w), "peak_lr": float(lr)}


def training_recipe_loss(recipe: dict, *, seed: int = 0) -> float:
    """Train a small :class:`TinyGPT` with ``recipe`` on the course's text; return its validation loss.

    ``recipe`` is ``{"warmup_steps": int, "peak_lr": float}``: AdamW (weight decay as in
    :data:`RECIPE_CHALLENGE`) at the rate :func:`warmup_cosine_lr` gives each step. The
    challenge fixes the model, context, batch size and number of steps. Everything random
    (initial weights, training and validation windows) follows ``seed``, without touching
    the notebook's random state; it runs on one CPU thread.
    """
    c, task = _validate_recipe(recipe), RECIPE_CHALLENGE
    data, cpu, steps = corpus_data(), torch.device("cpu"), task["steps"]
    with seeded_run(seed):
        model = TinyGPT(data.vocab.size, task["context"], task["d_model"], task["n_heads"], task["n_layers"])
        opt = torch.optim.AdamW(model.parameters(), lr=c["peak_lr"], weight_decay=task["weight_decay"])
        train = lm_batches(data.train, steps, task["batch_size"], task["context"], seed=10_000 + seed)
        history = fit(model, train, next_token_loss, opt, device=cpu, progress=False, stop_on_divergence=True,
                      lr_schedule=lambda step: warmup_cosine_lr(step, c["warmup_steps"], c["peak_lr"], steps))
        if history.diverged_at is not None:
            return math.inf
        loss = evaluate(model, _recipe_val_batches(seed), next_token_loss, device=cpu)
        return loss if math.isfinite(loss) else math.inf


def _recipe_hints(c: dict) -> list[str]:
    """What in a recipe that missed the target is the likely culprit."""
    w, lr, steps = c["warmup_steps"], c["peak_lr"], RECIPE_CHALLENGE["steps"]
    hints = []
    if lr < 5e-3:
        hints.append(f"a peak learning rate of {lr:g} is small for {steps} steps: AdamW moves each weight by "
                     "about the learning rate per step, so the model is still under-trained at the end")
    if lr > 0.1:
        hints.append(f"a peak learning rate of {lr:g} is large: the updates overshoot even after a warm-up")
    elif lr > 3e-2 and w < 30:
        hints.append(f"a peak learning rate of {lr:g} after {w} warm-up steps: the first updates at full size "
                     "overshoot; lower the peak or warm up for longer")
    if w > steps // 2:
        hints.append(f"a warm-up of {w} of the {steps} steps: the rate is below its peak for most of the run")
    return hints


def _judge_recipe(c: dict, got: float, seed: int) -> Verdict:
    """What check_training_recipe measured, against the target and the bigram model."""
    task, bigram = RECIPE_CHALLENGE, recipe_bigram_loss(seed=seed)
    where = (f"after {task['steps']} steps, your tiny GPT reaches a validation loss of {got:.3f} nats/char "
             f"(target: below {task['target']}; the bigram model scores {bigram:.3f} on the same windows)")
    return Verdict(where, got < task["target"], _recipe_how_far(got, bigram))


RECIPE_GRADING = Challenge(_validate_recipe, training_recipe_loss, _judge_recipe, _recipe_hints)


def check_training_recipe(recipe: dict, *, seed: int = 0) -> None:
    """Grade a training recipe by outcome (notebook 08, exercise 4): train with it (seeded), beat the target loss.

    Fails with the validation loss reached, how far it is from the target, whether it is any
    better than the bigram model on the same windows, and the likely culprits in the recipe.
    """
    RECIPE_GRADING.check(recipe, seed=seed)


def _recipe_how_far(got: float, bigram: float) -> str:
    """How far a missed recipe is: diverged, no better than the bigram model, or part of the way."""
    target = RECIPE_CHALLENGE["target"]
    if not math.isfinite(got):
        return "the training diverged"
    if got >= bigram - BIGRAM_MARGIN:
        return (f"no better than the bigram model: {got:.3f} against its {bigram:.3f} nats/char, so the model has "
                f"learned at most which letter follows which; the target asks for {bigram - target:.2f} "
                f"nats below the bigram model, which takes context beyond the current character. You are "
                f"{got - target:.3f} nats above the target")
    return (f"{got - target:.3f} nats above the target: better than the bigram model by "
            f"{bigram - got:.3f} nats, not yet by the {bigram - target:.3f} the target asks")


def _block_mistakes(block: Block, x: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """What the usual wrong pre-LN block forwards return, ``(B, T, D)`` each."""
    def attn(h):
        return block.attn(h, mask)[0]

    h = x + attn(block.ln1(x))
    post = block.ln1(x + attn(x))
    unmasked = x + block.attn(block.ln1(x), None)[0]
    return {
        "normalise after the residual sum (post-LN, the original transformer's x = LN(x + attn(x))): this block is "
        "pre-LN, x + attn(LN1(x)), then x + mlp(LN2(x)), as GPT-2 and the course's Block":
            block.ln2(post + block.mlp(post)),
        "leave out the residual connections: y = mlp(LN2(attn(LN1(x)))) loses x; add each sublayer's output to "
        "its input": block.mlp(block.ln2(attn(block.ln1(x)))),
        "feed the MLP the normalised attention input again instead of the new x: the second sublayer reads "
        "LN2(h) with h = x + attn(LN1(x))": h + block.mlp(block.ln2(x)),
        "use LN1 for both sublayers: each sublayer has its own LayerNorm (ln1 before attention, ln2 before the "
        "MLP)": h + block.mlp(block.ln1(h)),
        "forget the mask: position t must not read later positions":
            unmasked + block.mlp(block.ln2(unmasked)) if mask is not None else None,
    }


def check_block_forward(fn, seed: int = 0) -> None:
    """Test ``fn(block, x, mask) -> y (B, T, D)``, a pre-LN block's forward from its parts (notebook 08, exercise 2).

    The block is the course's :class:`~course_utils.transformer.Block` with non-trivial LayerNorm parameters,
    with a causal mask and without; compared with the block's own forward, which the learner's function may
    not call. Names the usual mistakes: post-LN, no residuals, the MLP fed the old input, one LayerNorm for
    both, the mask forgotten.
    """
    fn = refuse_reference(fn, ("Block", "TransformerEncoderLayer"))
    with seeded(10 + seed), torch.no_grad():
        block = Block(16, 4).double().eval()
        for ln in (block.ln1, block.ln2):  # non-trivial LayerNorms, so mixing them up shows
            ln.weight.normal_(1.0, 0.3)
            ln.bias.normal_(0.0, 0.3)
        x = torch.randn(2, 6, 16, dtype=torch.float64)
    for label, mask in (("a causal mask", causal_mask(6)), ("no mask", None)):
        with torch.no_grad():
            got = fn(block, x.clone(), mask)
            expected = block(x, mask)
            name = f"y ({label})"
            check_shape(name, got, tuple(x.shape))
            mistakes = _block_mistakes(block, x, mask)
        name_mistake(name, got, expected, mistakes)
        check_close(name, got, expected, quiet=True)
    print("OK my_block_forward: the pre-LN block's output, with and without a causal mask")


def _update_mistakes(m, total, acc, scores, v) -> dict[str, torch.Tensor]:
    """What the usual wrong online-softmax updates return, as ``[m | total | acc]`` (Tq, 2 + d_v) each."""
    block_max = scores.amax(dim=-1, keepdim=True)  # (Tq, 1)
    m_new = torch.maximum(m, block_max)
    shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    rescale, p = torch.exp(m - shift), torch.exp(scores - shift)  # (Tq, 1), (Tq, Bk)
    right_total, right_acc = total * rescale + p.sum(-1, keepdim=True), acc * rescale + p @ v
    with torch.no_grad():
        naive_rescale, naive_p = torch.exp(m - m_new), torch.exp(scores - m_new)  # NaN where m_new = -inf
        own = torch.where(torch.isneginf(block_max), torch.zeros_like(block_max), block_max)
        own_rescale, own_p = torch.exp(m - own), torch.exp(scores - own)
        return {
            "add the block's sum to the old sum without rescaling it: the old l was taken relative to m_old, so "
            "it must be multiplied by exp(m_old - m_new) first":
                torch.cat([m_new, total + p.sum(-1, keepdim=True), right_acc], -1),
            "leave the accumulator acc unrescaled: like l, the old acc is relative to m_old and must be "
            "multiplied by exp(m_old - m_new) before p @ v is added":
                torch.cat([m_new, right_total, acc + p @ v], -1),
            "invert the rescale factor: the old terms shrink by exp(m_old - m_new) <= 1, not grow by "
            "exp(m_new - m_old)":
                torch.cat([m_new, total / rescale + p.sum(-1, keepdim=True), acc / rescale + p @ v], -1),
            "use the block's max instead of the running max: m must be max(m_old, max of the block), or a later "
            "block with smaller scores forgets the larger ones seen before (and exp(m_old - m) can overflow)":
                torch.cat([block_max, total * own_rescale + own_p.sum(-1, keepdim=True), acc * own_rescale
                           + own_p @ v], -1),
            "divide by l inside the update (normalising too early): acc stays an unnormalised running sum; "
            "the division by l comes once, after the last block":
                torch.cat([m_new, right_total, right_acc / right_total], -1),
            "compute exp(m_old - m_new) and exp(scores - m_new) with m_new = -inf: a row whose scores are all "
            "-inf so far (fully masked) gives exp(-inf - (-inf)) = NaN; shift by 0 there, keeping l = 0, acc = 0":
                torch.cat([m_new, total * naive_rescale + naive_p.sum(-1, keepdim=True),
                           acc * naive_rescale + naive_p @ v], -1),
        }


def _finite_m(state: torch.Tensor) -> torch.Tensor:
    """``state`` with m = -inf written as -1e30, so that comparing two of them does not subtract infinities."""
    return torch.where(torch.isneginf(state), torch.full_like(state, -1e30), state)


def _update_cases(seed: int) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    """(label, (m, total, acc, scores, v)) states and blocks on which the usual mistakes show, float64."""
    g = torch.Generator().manual_seed(100 + seed)
    Tq, Bk, dv = 5, 4, 3
    scores = torch.randn(Tq, Bk, generator=g, dtype=torch.float64) * 2  # (Tq, Bk)
    v = torch.randn(Bk, dv, generator=g, dtype=torch.float64)  # (Bk, d_v)
    start = (torch.full((Tq, 1), float("-inf"), dtype=torch.float64), torch.zeros(Tq, 1, dtype=torch.float64),
             torch.zeros(Tq, dv, dtype=torch.float64))
    # a state after earlier blocks: row 0-1 had larger scores than this block, rows 2-4 smaller
    m = torch.tensor([[5.0], [4.0], [-3.0], [-2.0], [-4.0]], dtype=torch.float64)
    total = 1 + torch.rand(Tq, 1, generator=g, dtype=torch.float64) * 3
    acc = torch.randn(Tq, dv, generator=g, dtype=torch.float64)
    masked = scores.clone()
    masked[1:3] = float("-inf")  # rows 1 and 2 may attend to no key of this block
    return [("the first block (m = -inf, l = 0, acc = 0)", (*start, scores, v)),
            ("a later block", (m, total, acc, scores, v)),
            ("a first block with rows 1 and 2 fully masked", (*start, masked, v)),
            ("a later block with rows 1 and 2 fully masked", (m, total, acc, masked, v))]


def check_online_softmax_update(fn, seed: int = 0) -> None:
    """Test ``fn(m, total, acc, scores, v) -> (m, total, acc)``, one block of the online softmax (08, exercise 5).

    Compared state by state with :func:`~course_utils.transformer.online_softmax_update` on a first
    block, a later one, and blocks with fully masked rows; then looped over the key blocks of an
    attention and compared with ``softmax(scores) v``. Names the usual mistakes: the old sum or the
    accumulator not rescaled, the factor inverted, the block's max for the running max,
    normalising inside the loop, NaN from -inf - (-inf) on a fully masked row.
    """
    fn = refuse_reference(fn, ("online_softmax_update", "tiled_attention", "scaled_dot_product_attention"))
    for label, case in _update_cases(seed):
        got = fn(*(t.clone() for t in case))
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise CheckFailed("return the three new tensors (m, total, acc) as a tuple.")
        m0, total0, acc0 = case[:3]
        for what, value, like in zip(("m", "total", "acc"), got, (m0, total0, acc0), strict=True):
            if not isinstance(value, torch.Tensor):
                raise CheckFailed(f"return {what} as a tensor, not a {type(value).__name__}.")
            check_shape(f"the new {what} ({label})", value, tuple(like.shape))
        got_state = torch.cat([t.detach().double() for t in got], -1)  # (Tq, 2 + d_v)
        expected = torch.cat(online_softmax_update(*case), -1)
        name = f"the new (m, total, acc) after {label}"
        if torch.isnan(got_state).any() and not torch.isnan(expected).any():
            name_mistake(name, got_state, expected, _update_mistakes(*case))
            raise CheckFailed(f"{name} has NaN where the answer has none: a row with m = -inf (nothing seen yet, "
                              "or fully masked) must not compute -inf - (-inf).")
        name_mistake(name, got_state, expected, _update_mistakes(*case))
        check_close(name, _finite_m(got_state), _finite_m(expected), quiet=True)
    g = torch.Generator().manual_seed(200 + seed)
    q, k = torch.randn(6, 4, dtype=torch.float64, generator=g), torch.randn(11, 4, dtype=torch.float64, generator=g)
    v = torch.randn(11, 3, dtype=torch.float64, generator=g)  # (Tk, d_v)
    scores = q @ k.T * 3  # (6, 11): spread out, so the running max changes often
    m, total, acc = torch.full((6, 1), float("-inf"), dtype=torch.float64), torch.zeros(6, 1, dtype=torch.float64), \
        torch.zeros(6, 3, dtype=torch.float64)
    for start in range(0, 11, 3):  # blocks of 3, 3, 3, 2 keys
        m, total, acc = (t.detach().double() for t in fn(m, total, acc, scores[:, start : start + 3],
                                                          v[start : start + 3]))
    weights = torch.exp(scores - scores.amax(-1, keepdim=True))
    check_close("acc / total after all the blocks (against softmax(scores) @ v)", acc / total,
                weights / weights.sum(-1, keepdim=True) @ v, quiet=True)
    print("OK my_online_softmax_update: the running (m, l, acc) block by block, masked rows, and the attention")
