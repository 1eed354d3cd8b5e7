import math
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import CheckFailed
from course_utils.exercises.recipe import (
    POST_LN_CHALLENGE,
    POST_LN_TARGET,
    check_label_smoothed_loss,
    check_post_ln_recipe,
    post_ln_recipe_loss,
    post_ln_unigram_loss,
)
from course_utils.recipe import (
    PostLNBlock,
    PreLNBlock,
    RecipeConfig,
    RecipeGPT,
    copy_to_encoder_layer,
    label_smoothed_loss,
    make_optimizer,
    schedule_lr,
    train_recipe,
)
from course_utils.self_attention import causal_mask
from course_utils.shared.lm import corpus_data, lm_batches
from course_utils.transformer import Block


@pytest.mark.parametrize("block_class", [PostLNBlock, PreLNBlock])
def test_blocks_match_torch_encoder_layer(block_class):
    torch.manual_seed(0)
    block = block_class(16, 4).double().eval()
    with torch.no_grad():  # LayerNorms away from their 1, 0 start, so a swapped norm would show
        for ln in (block.ln1, block.ln2):
            ln.weight.uniform_(0.5, 1.5)
            ln.bias.uniform_(-0.5, 0.5)
    layer = copy_to_encoder_layer(block).eval()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    with torch.no_grad():
        ours = block(x, causal_mask(7))
        theirs = layer(x, src_mask=~causal_mask(7))  # torch: True = may NOT attend
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_pre_ln_block_without_dropout_is_notebook_08s_block():
    torch.manual_seed(0)
    ours = PreLNBlock(16, 4)
    ref = Block(16, 4)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 16)
    torch.testing.assert_close(ours(x, causal_mask(5)), ref(x, causal_mask(5)))


def test_label_smoothed_loss_equals_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(20, 9, generator=g, dtype=torch.float64)
    targets = torch.randint(0, 9, (20,), generator=g)
    for eps in (0.0, 0.1, 0.3):
        torch.testing.assert_close(label_smoothed_loss(logits, targets, eps),
                                   F.cross_entropy(logits, targets, label_smoothing=eps), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=re.escape("eps must lie in [0, 1)")):
        label_smoothed_loss(logits, targets, 1.0)
    with pytest.raises(ValueError, match="targets"):
        label_smoothed_loss(logits, targets[:5], 0.1)


def test_label_smoothing_hand_case():
    # V = 2, logits 0: every cross-entropy is ln 2, smoothed or not.
    assert label_smoothed_loss(torch.zeros(1, 2), torch.tensor([0]), 0.2).item() == pytest.approx(math.log(2))


def test_weight_tying_shares_one_matrix():
    tied = RecipeGPT(11, 8, 16, 4, 1, tie_weights=True)
    untied = RecipeGPT(11, 8, 16, 4, 1)
    assert tied.head.weight is tied.embed.weight
    n = sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters())
    assert n == 11 * 16


def test_dropout_differs_in_train_mode_only():
    torch.manual_seed(0)
    model = RecipeGPT(11, 8, 16, 4, 2, dropout=0.3)
    ids = torch.randint(0, 11, (2, 8))
    model.train()
    assert not torch.allclose(model(ids), model(ids))
    model.eval()
    torch.testing.assert_close(model(ids), model(ids))


def _one_step(kind, w0, grad, lr=0.1, wd=0.5):
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w0)
    opt = make_optimizer(model, kind, lr, wd)
    model.weight.grad = grad.clone()
    opt.step()
    return model.weight.detach()


def test_adamw_and_adam_l2_differ_by_hand():
    w0, grad, lr, wd = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 0.5]]), 0.1, 0.5
    # Step 1 of Adam moves each weight by lr * sign of its (effective) gradient (m_hat / sqrt(v_hat) = +-1).
    adamw = _one_step("adamw", w0, grad, lr, wd)
    torch.testing.assert_close(adamw, w0 * (1 - lr * wd) - lr * grad.sign(), rtol=1e-6, atol=1e-6)
    l2 = _one_step("adam_l2", w0, grad, lr, wd)
    torch.testing.assert_close(l2, w0 - lr * (grad + wd * w0).sign(), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(adamw, l2)
    ref = nn.Linear(2, 1, bias=False)  # and the same as torch.optim.AdamW itself
    with torch.no_grad():
        ref.weight.copy_(w0)
    torch_opt = torch.optim.AdamW(ref.parameters(), lr=lr, weight_decay=wd)
    ref.weight.grad = grad.clone()
    torch_opt.step()
    torch.testing.assert_close(adamw, ref.weight.detach())
    with pytest.raises(ValueError, match="kind must be"):
        make_optimizer(ref, "sgd", lr, wd)


def test_schedules():
    c = RecipeConfig(steps=100, warmup_steps=10, lr=1.0, schedule="constant")
    assert schedule_lr(c, 0) == pytest.approx(0.1) and schedule_lr(c, 50) == 1.0
    c = RecipeConfig(steps=100, warmup_steps=0, lr=1.0, schedule="constant")
    assert schedule_lr(c, 0) == 1.0
    with pytest.raises(ValueError, match="schedule must be"):
        schedule_lr(RecipeConfig(schedule="linear"), 0)


def test_train_recipe_learns_and_is_seeded():
    c = RecipeConfig(steps=30, d_model=16, n_layers=1, context=16, batch_size=8)
    a, b = train_recipe(c, seed=0), train_recipe(c, seed=0)
    assert a.train_losses == b.train_losses and a.val_loss == b.val_loss
    assert a.train_losses[-1] < a.train_losses[0] - 0.5
    assert math.isfinite(a.val_loss) and a.model is not None and not a.model.training


def _smoothed(logits, targets, eps):
    keep = targets != -100
    logits, targets = logits[keep], targets[keep]
    V = logits.shape[-1]
    q = torch.full_like(logits, eps / V)
    q[torch.arange(len(targets)), targets] += 1 - eps
    return -(q * torch.log_softmax(logits, -1)).sum(-1).mean()


def test_check_accepts_a_solution():
    check_label_smoothed_loss(_smoothed)
    check_label_smoothed_loss(_smoothed, seed=1)


def _other_convention(logits, targets, eps):
    keep = targets != -100
    logits, targets = logits[keep], targets[keep]
    V = logits.shape[-1]
    q = torch.full_like(logits, eps / (V - 1))
    q[torch.arange(len(targets)), targets] = 1 - eps
    return -(q * torch.log_softmax(logits, -1)).sum(-1).mean()


def _padding_averaged(logits, targets, eps):
    V = logits.shape[-1]
    keep = targets != -100
    t = targets.clamp(min=0)
    q = torch.full_like(logits, eps / V)
    q[torch.arange(len(t)), t] += 1 - eps
    return (-(q * torch.log_softmax(logits, -1)).sum(-1) * keep).mean()


def _summed(logits, targets, eps):
    return _smoothed(logits, targets, eps) * (targets != -100).sum()


@pytest.mark.parametrize("fn,words", [
    (_other_convention, "eps / (V - 1)"),
    (_padding_averaged, "average over the padded positions too"),
    (_summed, "sum over the positions instead of averaging"),
])
def test_check_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_label_smoothed_loss(fn)


def test_check_refuses_the_reference():
    def delegate(logits, targets, eps):
        return F.cross_entropy(logits, targets, label_smoothing=eps, ignore_index=-100)

    with pytest.raises(CheckFailed, match="calls cross_entropy"):
        check_label_smoothed_loss(delegate)


@pytest.mark.slow
def test_post_ln_recipe_meets_the_target_with_warm_up(capsys):
    for seed in (0, 1):  # the visible and the hidden test
        check_post_ln_recipe({"warmup_steps": 60, "peak_lr": 2e-2}, seed=seed)
    out = capsys.readouterr().out
    assert out.count("OK after 120 steps, the 6-block post-LN stack reaches a validation loss of") == 2


@pytest.mark.slow
def test_post_ln_recipe_without_warm_up_names_the_culprit():
    with pytest.raises(CheckFailed, match=r"nats above it, stuck at the unigram model \(3\.\d{3}\).* Likely culprit: "
                       r"0 warm-up steps at a peak of 0\.02"):
        check_post_ln_recipe({"warmup_steps": 0, "peak_lr": 2e-2})


def test_post_ln_unigram_loss_by_hand():
    data = corpus_data()
    counts = np.bincount(data.train.numpy(), minlength=data.vocab.size) + 1  # add-one, as ngram_probabilities
    p = counts / counts.sum()
    _, y = lm_batches(data.val, 8, 64, POST_LN_CHALLENGE.context, seed=20_000)[0]
    first = -np.log(p[y.numpy()]).mean()  # one of the 8 batches
    assert abs(post_ln_unigram_loss() - first) < 0.1 and 3.0 < post_ln_unigram_loss() < 3.5


@pytest.mark.slow
def test_post_ln_recipe_that_barely_misses_is_told_how_far_it_is():
    recipe = {"warmup_steps": 110, "peak_lr": 2e-2}  # learns, but too little time at the peak
    loss, unigram = post_ln_recipe_loss(recipe), post_ln_unigram_loss()
    assert POST_LN_TARGET <= loss < POST_LN_TARGET + 0.15  # close, but not there
    share = (unigram - loss) / (unigram - POST_LN_TARGET)
    words = (rf"validation loss of {loss:.3f} nats/char \(target: below {POST_LN_TARGET}\): "
             rf"{loss - POST_LN_TARGET:.3f} nats above it, {share:.0%} of the way down from the unigram model "
             rf"\({unigram:.3f}\) to the target: the stack learns, but not far enough in 120 steps\. "
             r"Likely culprit: a warm-up of 110 of 120 steps leaves almost no steps at the peak rate")
    with pytest.raises(CheckFailed, match=words):
        check_post_ln_recipe(recipe)


def test_post_ln_recipe_rejects_bad_input_before_training():
    with pytest.raises(CheckFailed, match="exactly the keys warmup_steps, peak_lr"):
        check_post_ln_recipe({"warmup": 10, "peak_lr": 1e-2})
    with pytest.raises(CheckFailed, match="warmup_steps should be a whole number from 0 to 120"):
        check_post_ln_recipe({"warmup_steps": 500, "peak_lr": 1e-2})
    with pytest.raises(CheckFailed, match=re.escape("peak_lr should be a number from 0.02 to 1")):
        check_post_ln_recipe({"warmup_steps": 10, "peak_lr": 0})
    with pytest.raises(CheckFailed, match="a lower rate would not need the warm-up"):  # the idea-less way out
        check_post_ln_recipe({"warmup_steps": 0, "peak_lr": 5e-3})
