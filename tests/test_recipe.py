import math
import re
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import CheckFailed
from course_utils.exercises.recipe import (
    POST_LN_CHALLENGE,
    POST_LN_TARGET,
    check_decay_groups,
    check_label_smoothed_loss,
    check_noam_rate,
    check_post_ln_recipe,
    post_ln_recipe_loss,
    post_ln_unigram_loss,
)
from course_utils.recipe import (
    GPT2_STD,
    PostLNBlock,
    PreLNBlock,
    RecipeConfig,
    RecipeGPT,
    copy_to_encoder_layer,
    decay_groups,
    gpt2_init_,
    input_norms,
    label_smoothed_loss,
    layer_norm_gains,
    make_optimizer,
    noam_lambda,
    noam_lr,
    residual_projections,
    residual_variances,
    schedule_lr,
    train_recipe,
)
from course_utils.self_attention import causal_mask
from course_utils.shared.lm import corpus_data, lm_batches
from course_utils.transformer import Block, sinusoidal_positions


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


# ----------------------------------------------------------------------------- section 3: GPT-2's init, decay groups


@pytest.mark.parametrize("kwargs", [{}, {"tie_weights": True}, {"post_ln": True}])
def test_decay_groups_partition_every_parameter_once(kwargs):
    model = RecipeGPT(11, 8, 16, 4, 2, **kwargs)
    decayed, kept = decay_groups(model, 0.3)
    assert (decayed["weight_decay"], kept["weight_decay"]) == (0.3, 0.0)
    ids = [id(p) for p in decayed["params"] + kept["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    assert {"embed.weight", "pos", "blocks.0.attn.in_proj_weight", "blocks.1.mlp.proj.weight"} <= decayed_names
    assert not any(n.endswith("bias") or ".ln" in n or n.startswith("ln_f") for n in decayed_names)
    assert ("head.weight" in decayed_names) != bool(kwargs.get("tie_weights"))  # tied: listed as embed.weight
    torch.optim.AdamW([decayed, kept])  # torch accepts it (it refuses a parameter in two groups)


def test_torch_refuses_a_parameter_in_two_groups():
    # what check_decay_groups' message says torch does
    model = RecipeGPT(11, 8, 16, 4, 1, tie_weights=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        torch.optim.AdamW([{"params": [model.embed.weight]}, {"params": [model.head.weight], "weight_decay": 0.0}])


def test_make_optimizer_decays_matrices_only_or_everything():
    model = RecipeGPT(11, 8, 16, 4, 1)
    matrices = make_optimizer(model, "adamw", 1e-2, 0.1)
    assert [g["weight_decay"] for g in matrices.param_groups] == [0.1, 0.0]
    everything = make_optimizer(model, "adamw", 1e-2, 0.1, decay="all")
    assert len(everything.param_groups) == 1 and everything.param_groups[0]["weight_decay"] == 0.1
    assert len(everything.param_groups[0]["params"]) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="decay must be"):
        make_optimizer(model, "adamw", 1e-2, 0.1, decay="vectors")


def test_adamw_with_zero_gradients_only_decays():
    # torch.optim.AdamW, the groups of decay_groups: a decayed weight shrinks by (1 - lr * wd) per step, the rest stay
    model = RecipeGPT(11, 8, 16, 4, 1).double()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(decay_groups(model, 0.5), lr=0.1)
    for _ in range(3):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
    for n, p in model.named_parameters():
        factor = (1 - 0.1 * 0.5) ** 3 if p.dim() >= 2 else 1.0
        torch.testing.assert_close(p.detach(), before[n] * factor, msg=n)


def test_decaying_everything_pulls_layer_norm_gains_down():
    c = RecipeConfig(steps=40, d_model=16, n_layers=1, context=16, batch_size=8, weight_decay=0.5)
    kept = layer_norm_gains(train_recipe(c, seed=0).model)
    decayed = layer_norm_gains(train_recipe(replace(c, decay="all"), seed=0).model)
    shrink = math.prod(1 - schedule_lr(c, t) * c.weight_decay for t in range(c.steps))
    assert kept.shape == decayed.shape == (3 * 16,)  # ln1, ln2, ln_f
    assert shrink < decayed.mean() / kept.mean() < shrink + 0.05


def test_layer_norm_gains_by_hand():
    model = RecipeGPT(11, 8, 16, 4, 2, post_ln=True)  # 2 LayerNorms per block, no final one
    with torch.no_grad():
        model.blocks[1].ln2.weight.fill_(3.0)
    gains = layer_norm_gains(model)
    assert gains.shape == (4 * 16,) and gains[-16:].eq(3.0).all() and gains[:-16].eq(1.0).all()


@pytest.mark.parametrize("scaled", [False, True])
def test_gpt2_init_stds(scaled):
    torch.manual_seed(0)
    L, D = 6, 64
    model = gpt2_init_(RecipeGPT(11, 16, D, 4, L, tie_weights=True), residual_scaling=scaled)
    projections = residual_projections(model)
    assert len(projections) == 2 * L and all(isinstance(layer, nn.Linear) for layer in projections)
    assert {id(layer) for layer in projections} == {id(layer) for b in model.blocks
                                                     for layer in (b.attn.out_proj, b.mlp.proj)}
    proj = torch.cat([layer.weight.flatten() for layer in projections])
    expected = GPT2_STD / math.sqrt(2 * L) if scaled else GPT2_STD
    assert proj.std().item() == pytest.approx(expected, rel=0.02)
    others = torch.cat([model.embed.weight.flatten(), model.pos.flatten()]
                       + [p.flatten() for b in model.blocks for p in (b.attn.in_proj_weight, b.mlp.fc.weight)])
    assert others.std().item() == pytest.approx(GPT2_STD, rel=0.02) and abs(others.mean().item()) < 1e-3
    assert model.head.weight is model.embed.weight  # tying survives
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert p.eq(0).all(), name
        elif p.dim() == 1:
            assert p.eq(1).all(), name


def test_residual_variances_by_hand():
    torch.manual_seed(0)
    model = RecipeGPT(11, 8, 16, 4, 3).eval()
    ids = torch.randint(0, 11, (2, 8))
    variances = residual_variances(model, ids)
    assert len(variances) == 4
    x = model.embed(ids) + model.pos[:8]
    assert variances[0] == pytest.approx(x.var(-1, unbiased=False).mean().item())
    with torch.no_grad():
        for block in model.blocks:
            x = block(x, causal_mask(8))
    assert variances[-1] == pytest.approx(x.var(-1, unbiased=False).mean().item())
    with torch.no_grad():  # and the model's own forward ends in the same stream
        torch.testing.assert_close(model.head(model.ln_f(x)), model(ids))


def test_residual_scaling_keeps_the_stream_variance_across_depth():
    ids = torch.randint(0, 11, (4, 16), generator=torch.Generator().manual_seed(0))
    added = {}
    for L in (2, 16):
        for scaled in (False, True):
            torch.manual_seed(0)
            v = residual_variances(gpt2_init_(RecipeGPT(11, 16, 32, 4, L), residual_scaling=scaled).eval(), ids)
            added[L, scaled] = v[-1] - v[0]
    assert added[16, False] > 6 * added[2, False]  # grows with depth
    assert 0.8 < added[16, True] / added[2, True] < 1.25  # does not


# ----------------------------------------------------------------------------- exercise 3


def _groups(model, wd):
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": wd},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def test_decay_groups_check_accepts_a_solution(capsys):
    check_decay_groups(_groups)
    check_decay_groups(_groups, seed=1)

    def three_groups_in_another_order(model, wd):  # groups told apart by their weight_decay, not their order
        matrices, vectors = _groups(model, wd)
        return [vectors, {"params": matrices["params"][:2], "weight_decay": wd},
                {"params": matrices["params"][2:], "weight_decay": wd}]

    check_decay_groups(three_groups_in_another_order)
    assert capsys.readouterr().out.count("OK my_decay_groups") == 3


def _by_name(model, wd):  # "weight" in the name: the LayerNorm gains are decayed
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") or n == "pos"]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") or n == "pos")]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def _everything(model, wd):
    return [{"params": list(model.parameters()), "weight_decay": wd}]


def _all_but_layer_norms(model, wd):  # biases decayed
    return [{"params": [p for n, p in model.named_parameters() if "ln" not in n], "weight_decay": wd},
            {"params": [p for n, p in model.named_parameters() if "ln" in n], "weight_decay": 0.0}]


def _min_gpt(model, wd):  # minGPT's lists by module type: a tied matrix in both groups, embeddings not decayed
    decay, rest = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            no = name.endswith("bias") or name == "pos" or isinstance(module, (nn.LayerNorm, nn.Embedding))
            (rest if no else decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def _walk_layers(model, wd):  # only nn.Linear / nn.Embedding / nn.LayerNorm: in_proj and pos in no group
    decay, rest = [], []
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            decay.append(m.weight)  # a tied matrix twice
        if isinstance(m, nn.Linear):
            rest.append(m.bias)
        if isinstance(m, nn.LayerNorm):
            rest += [m.weight, m.bias]
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def _walk_modules_by_shape(model, wd):  # the right rule, but a tied matrix met twice
    decay, rest = [], []
    for m in model.modules():
        for p in m.parameters(recurse=False):
            (decay if p.dim() >= 2 else rest).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]


def _swapped(model, wd):
    matrices, vectors = _groups(model, wd)
    return [{"params": vectors["params"], "weight_decay": wd}, {"params": matrices["params"], "weight_decay": 0.0}]


def _detached(model, wd):
    matrices, vectors = _groups(model, wd)
    return [{"params": [p.detach() for p in matrices["params"]], "weight_decay": wd}, vectors]


@pytest.mark.parametrize("fn,words", [
    (_by_name, "The LayerNorm gains are decayed (blocks.0.ln1.weight"),
    (_by_name, "Decide by the shape (p.dim()), not the name"),
    (_everything, "Every parameter is decayed (what AdamW(model.parameters(), weight_decay=...) does)"),
    (_all_but_layer_norms, "Biases are decayed (blocks.0.attn.in_proj_bias"),
    (_min_gpt, "In both groups: embed.weight (= head.weight, tied)"),
    (_min_gpt, "The embedding tables are not decayed (pos; minGPT's choice)"),
    (_walk_layers, "In no group, so AdamW would never update them: pos, blocks.0.attn.in_proj_weight"),
    (_walk_layers, "Listed twice in one group: embed.weight (= head.weight, tied)"),
    (_walk_modules_by_shape, "A tied matrix is one parameter, which walking the modules meets twice"),
    (_swapped, "The groups are swapped: the matrices should get the weight decay"),
    (_detached, "not one of the model's parameters (p.data, p.detach() or a copy"),
])
def test_decay_groups_check_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_decay_groups(fn)


def test_decay_groups_check_rejects_bad_forms():
    with pytest.raises(CheckFailed, match="return a list of two dicts"):
        check_decay_groups(lambda model, wd: list(model.parameters()))
    with pytest.raises(CheckFailed, match="exactly the keys params and weight_decay"):
        check_decay_groups(lambda model, wd: [{"params": list(model.parameters()), "weight_decay": wd, "lr": 1.0}])
    with pytest.raises(CheckFailed, match="a group's weight_decay is 0.01"):
        check_decay_groups(lambda model, wd: [{**g, "weight_decay": 0.01} if g["weight_decay"] else g
                                              for g in _groups(model, wd)])


def test_decay_groups_check_refuses_the_reference():
    with pytest.raises(CheckFailed, match="calls decay_groups"):
        check_decay_groups(lambda model, wd: decay_groups(model, wd))

    def through_the_optimizer(model, wd):
        return [{"params": g["params"], "weight_decay": g["weight_decay"]}
                for g in make_optimizer(model, "adamw", 1e-3, wd).param_groups]

    with pytest.raises(CheckFailed, match="calls make_optimizer"):
        check_decay_groups(through_the_optimizer)


def test_decay_groups_check_leaves_the_random_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check_decay_groups(_groups)
    torch.testing.assert_close(torch.rand(3), expected)


# ----------------------------------------------------------------------------- section 4: the original transformer


def test_noam_lr_by_hand():
    # d_model = 16, W = 4: peak (16 * 4)**-0.5 = 1/8 at step 4; step 1 a quarter of it; step 16 half of it
    assert noam_lr(4, 16, 4) == pytest.approx(1 / 8, rel=1e-12)
    assert noam_lr(1, 16, 4) == pytest.approx(1 / 32, rel=1e-12)
    assert noam_lr(16, 16, 4) == pytest.approx(1 / 16, rel=1e-12)
    assert noam_lr(4000, 512, 4000) == pytest.approx(6.988e-4, rel=1e-3)  # the paper's base model
    with pytest.raises(ValueError, match="counts from 1"):
        noam_lr(0, 16, 4)
    with pytest.raises(ValueError, match="warmup_steps >= 1"):
        schedule_lr(RecipeConfig(schedule="noam", warmup_steps=0), 0)


@pytest.mark.parametrize("d_model,warmup", [(512, 4000), (32, 20), (64, 7)])
def test_noam_lambda_in_lambda_lr_sets_the_formula(d_model, warmup):
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, noam_lambda(d_model, warmup))
    seen = []
    for _ in range(min(3 * warmup, 500)):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    s = np.arange(1, len(seen) + 1, dtype=np.float64)
    np.testing.assert_allclose(seen, d_model**-0.5 * np.minimum(s**-0.5, s * warmup**-1.5), rtol=1e-12)


def test_noam_schedule_peaks_at_config_lr():
    c = RecipeConfig(steps=100, warmup_steps=10, lr=0.01, d_model=32, schedule="noam")
    rates = [schedule_lr(c, t) for t in range(c.steps)]
    assert int(np.argmax(rates)) == 9 and rates[9] == pytest.approx(0.01, rel=1e-12)
    assert rates[0] == pytest.approx(0.001, rel=1e-12) and rates[39] == pytest.approx(0.005, rel=1e-12)
    as_written = replace(c, lr=noam_lr(10, 32, 10))  # the paper's formula itself
    assert [schedule_lr(as_written, t) for t in range(5)] == pytest.approx([noam_lr(t + 1, 32, 10)
                                                                           for t in range(5)], rel=1e-12)


def test_sinusoidal_positions_and_scaled_embedding():
    torch.manual_seed(0)
    plain = RecipeGPT(11, 8, 16, 4, 1, tie_weights=True, positions="sinusoidal", embed_std=0.25)
    torch.manual_seed(0)
    scaled = RecipeGPT(11, 8, 16, 4, 1, tie_weights=True, positions="sinusoidal", embed_std=0.25,
                       scale_embedding=True)
    assert "pos" not in dict(plain.named_parameters()) and torch.equal(plain.pos, sinusoidal_positions(8, 16))
    torch.testing.assert_close(plain.embed.weight, scaled.embed.weight)  # the same draws
    assert abs(plain.embed.weight.std().item() - 0.25) < 0.05 and scaled.head.weight is scaled.embed.weight
    ids = torch.randint(0, 11, (2, 8))
    torch.testing.assert_close(scaled.embed_tokens(ids), scaled.embed(ids) * 4.0 + sinusoidal_positions(8, 16))
    tokens, positions = input_norms(scaled)
    torch.testing.assert_close(tokens, scaled.embed.weight.norm(dim=-1) * 4.0)
    torch.testing.assert_close(positions, torch.full((8,), math.sqrt(8.0)))
    with pytest.raises(ValueError, match="positions must be"):
        RecipeGPT(11, 8, 16, 4, 1, positions="rope")


def test_train_recipe_with_the_paper_input_and_noam():
    c = RecipeConfig(steps=20, d_model=16, n_layers=1, context=16, batch_size=8, tie_weights=True,
                     positions="sinusoidal", embed_std=0.25, scale_embedding=True, schedule="noam", warmup_steps=5)
    run = train_recipe(c, seed=0)
    assert math.isfinite(run.val_loss) and run.model.embed_scale == 4.0 and "pos" in dict(run.model.named_buffers())


def _noam(t, d, w):
    s = t + 1
    return d**-0.5 * min(s**-0.5, s * w**-1.5)


def test_noam_rate_check_accepts_solutions(capsys):
    check_noam_rate(_noam)
    check_noam_rate(_noam, seed=1)
    check_noam_rate(lambda t, d, w: torch.tensor(_noam(t, d, w), dtype=torch.float64))  # a one-number tensor
    check_noam_rate(lambda t, d, w: np.float64(d) ** -0.5 * np.minimum((t + 1.0) ** -0.5, (t + 1.0) * w**-1.5))
    assert capsys.readouterr().out.count("OK my_noam_rate") == 4


def _from_zero(t, d, w):  # the formula at t: 0**-0.5 divides by zero
    return d**-0.5 * min(t**-0.5, t * w**-1.5)


def _from_zero_guarded(t, d, w):  # the formula at t, t = 0 dodged: off by one everywhere else
    t = max(t, 1)
    return d**-0.5 * min(t**-0.5, t * w**-1.5)


def _from_zero_numpy(t, d, w):  # numpy: 0**-0.5 is inf, min(inf, 0) is 0, so t = 0 passes; off by one after
    with np.errstate(divide="ignore"):
        return float(d**-0.5 * np.minimum(np.float64(t) ** -0.5, t * w**-1.5))


def _warmup_exponent(t, d, w):
    s = t + 1
    return d**-0.5 * min(s**-0.5, s * w**-0.5)


def _no_d_model(t, d, w):
    s = t + 1
    return min(s**-0.5, s * w**-1.5)


def _d_model_sign(t, d, w):
    s = t + 1
    return d**0.5 * min(s**-0.5, s * w**-1.5)


def _max(t, d, w):
    s = t + 1
    return d**-0.5 * max(s**-0.5, s * w**-1.5)


def _multiplier(t, d, w):  # the shape with its peak at 1, what LambdaLR would scale a peak rate by
    s = t + 1
    return min(s / w, (w / s) ** 0.5)


def _wrong_peak(t, d, w):  # warm-up term s / w: the two terms meet at s = w**(2/3)
    s = t + 1
    return d**-0.5 * min(s**-0.5, s / w)


@pytest.mark.parametrize("fn,words", [
    (_from_zero, "divides by zero"),
    (_from_zero, "the rate of t is the formula's at step t + 1"),
    (_from_zero_guarded, "count the steps from 0: the formula's step is t + 1"),
    (_from_zero_numpy, "count the steps from 0: the formula's step is t + 1"),
    (_warmup_exponent, "step * warmup**-0.5 instead of step * warmup**-1.5"),
    (_no_d_model, "leave out the factor d_model**-0.5"),
    (_d_model_sign, "d_model**0.5 instead of d_model**-0.5 (the exponent's sign)"),
    (_max, "the max of the two terms instead of the min"),
    (_multiplier, "return the multiplier, the schedule's shape with its peak at 1"),
    (_wrong_peak, "peaks at t = 251 (the formula's step 252); the rate should rise linearly up to step = warmup = "
                  "4000 (t = 3999)"),
])
def test_noam_rate_check_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_noam_rate(fn)


def test_noam_rate_check_refuses_the_reference_and_shown_values():
    with pytest.raises(CheckFailed, match="calls noam_lr"):
        check_noam_rate(lambda t, d, w: noam_lr(t + 1, d, w))
    with pytest.raises(CheckFailed, match="calls noam_lambda"):
        check_noam_rate(lambda t, d, w: noam_lambda(d, w)(t))
    with pytest.raises(CheckFailed, match="peaks at t = 0"):  # the notebook's printed peak, returned at every step
        check_noam_rate(lambda t, d, w: 6.99e-4)
    with pytest.raises(CheckFailed, match="should return one number"):
        check_noam_rate(lambda t, d, w: [_noam(t, d, w)])
