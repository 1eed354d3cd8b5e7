"""Notebook 08d, the exercises on :mod:`course_utils.recipe`.

Checks that name the usual mistakes: ``check_label_smoothed_loss``, ``check_decay_groups``, ``check_noam_rate``.
Graded by outcome (the learner's setting is trained, seeded): ``check_post_ln_recipe``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.checks import (
    Challenge,
    CheckFailed,
    Verdict,
    check_close,
    learning_rate_hints,
    name_mistake,
    refuse_reference,
    require_keys,
)
from ..recipe import RecipeConfig, RecipeGPT, decay_groups, label_smoothed_loss, noam_lr, train_recipe
from ..shared.lm import corpus_data, lm_batches, ngram_probabilities


def _smoothing_mistakes(logits: torch.Tensor, targets: torch.Tensor, eps: float) -> dict[str, torch.Tensor]:
    """What the usual wrong label-smoothed losses give (scalars) for ``logits (N, V)`` and ``targets (N,)``."""
    V, real = logits.shape[-1], targets != -100
    log_p = F.log_softmax(logits, dim=-1)  # (N, V)
    t = targets.clamp(min=0)
    nll = -log_p.gather(1, t[:, None])[:, 0]  # (N,)
    uniform = -log_p.mean(-1)  # (N,)
    others = (-log_p.sum(-1) - nll) / (V - 1)  # (N,): the mean over the V - 1 wrong classes
    per_pos = (1 - eps) * nll + eps * uniform  # (N,)
    return {
        "give the target 1 - eps and every other class eps / (V - 1) (the other convention); here, as in "
        "F.cross_entropy(label_smoothing=eps), every class gets eps / V and the target 1 - eps + eps / V":
            ((1 - eps) * nll + eps * others)[real].mean(),
        "average over the padded positions too (targets == -100): they should count neither in the sum nor in "
        "the number you divide by": (per_pos * real).mean(),
        "sum over the positions instead of averaging": per_pos[real].sum(),
        "forget the smoothing (plain cross-entropy)": nll[real].mean(),
    }


def check_label_smoothed_loss(fn, seed: int = 0) -> None:
    """Test ``fn(logits (N, V), targets (N,), eps) -> scalar`` against :func:`label_smoothed_loss` (exercise 1).

    Targets of -100 are padding. Names the usual mistakes: the ``eps / (V - 1)`` convention,
    padding averaged in, a sum instead of a mean, no smoothing.
    """
    fn = refuse_reference(fn, ("label_smoothed_loss", "cross_entropy", "CrossEntropyLoss", "nll_loss"))
    g = torch.Generator().manual_seed(seed)
    for eps, n_pad in ((0.1, 3), (0.3, 0), (0.0, 2)):
        logits = torch.randn(10, 7, generator=g, dtype=torch.float64) * 2
        targets = torch.randint(0, 7, (10,), generator=g)
        targets[torch.randperm(10, generator=g)[:n_pad]] = -100
        name = f"my_label_smoothed_loss with eps = {eps} on 10 positions ({n_pad} of them padding)"
        got = fn(logits.clone(), targets.clone(), eps)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise CheckFailed(f"{name} should return a single number as a torch tensor, got "
                              f"{type(got).__name__}{tuple(got.shape) if isinstance(got, torch.Tensor) else ''}.")
        expected = label_smoothed_loss(logits, targets, eps)
        mistakes = {hint: value for hint, value in _smoothing_mistakes(logits, targets, eps).items()
                    if not torch.allclose(value, expected)}  # eps = 0 or no padding: some mistakes do not show
        name_mistake(name, got.reshape(()), expected, mistakes)
        check_close(name, got.reshape(()).double(), expected, quiet=True)
    print("OK my_label_smoothed_loss: eps = 0.1, 0.3 and 0, with and without padding")


# Section 2's deep post-LN stack; a recipe (warm-up steps, and a peak rate at least section 2's 0.02, where pre-LN
# trains) must bring its validation loss below the target in the step budget. Measured at a peak of 0.02 (seeds 0-2):
# no warm-up stays at 3.26-3.29 (the unigram model); 10 steps 2.87-3.30, 20 steps 2.84-3.29, 30 and 40 steps pass
# seeds 0 and 1 (2.60-2.67) but not 2 (3.11-3.19); 60 steps 2.52-2.68; 90 steps 2.55-2.67; 110 steps 2.71-2.93. At a
# peak of 0.03, 60 and 90 steps stay stuck (3.18-3.35). A lower peak would train without any warm-up (0 steps at
# 0.005: 2.34-2.45), so the exercise would pass without its idea: the peak is bounded below.
POST_LN_CHALLENGE = RecipeConfig(steps=120, batch_size=16, context=16, d_model=32, n_layers=6, lr=2e-2,
                                 warmup_steps=0, schedule="cosine", optimizer="adamw", weight_decay=0.0,
                                 post_ln=True)


POST_LN_TARGET = 2.85
MIN_POST_LN_PEAK = 0.02  # section 2's rate, at which pre-LN trains without warm-up


STUCK_MARGIN = 0.1  # within this of the unigram model's loss, a run has learned character frequencies only


@functools.lru_cache(maxsize=1)
def post_ln_unigram_loss() -> float:
    """The unigram model's loss (character frequencies of the training text) on the windows the challenge scores."""
    data = corpus_data()
    unigram, _ = ngram_probabilities(data.train.numpy(), data.vocab.size)  # (V,)
    val = lm_batches(data.val, 8, 64, POST_LN_CHALLENGE.context, seed=20_000)  # train_recipe's windows
    return float(np.mean([-np.log(unigram[y.numpy()]).mean() for _, y in val]))


def _validate_post_ln_recipe(recipe: dict) -> dict:
    steps = POST_LN_CHALLENGE.steps
    require_keys(recipe, ("warmup_steps", "peak_lr"))
    w, lr = recipe["warmup_steps"], recipe["peak_lr"]
    if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or not 0 <= w <= steps:
        raise CheckFailed(f"warmup_steps should be a whole number from 0 to {steps} (the run's steps), got {w!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not MIN_POST_LN_PEAK <= lr <= 1.0:
        raise CheckFailed(f"peak_lr should be a number from {MIN_POST_LN_PEAK} to 1, got {lr!r}: the exercise "
                          "trains post-LN at least at the rate at which pre-LN trains (section 2); a lower rate "
                          "would not need the warm-up it is about")
    return {"warmup_steps": int(w), "peak_lr": float(lr)}


def post_ln_recipe_loss(recipe: dict, *, seed: int = 0) -> float:
    """Validation loss of :data:`POST_LN_CHALLENGE` trained with ``recipe`` (warm-up, then cosine; seeded)."""
    c = _validate_post_ln_recipe(recipe)
    return train_recipe(replace(POST_LN_CHALLENGE, lr=c["peak_lr"], warmup_steps=c["warmup_steps"]), seed=seed).val_loss


def _judge_post_ln(c: dict, got: float, seed: int) -> Verdict:
    """What check_post_ln_recipe measured, against the target."""
    steps = POST_LN_CHALLENGE.steps
    where = (f"after {steps} steps, the 6-block post-LN stack reaches a validation loss of {got:.3f} nats/char "
             f"(target: below {POST_LN_TARGET})")
    return Verdict(where, got < POST_LN_TARGET, lambda: _post_ln_how_far(got, steps))


POST_LN_GRADING = Challenge(_validate_post_ln_recipe, post_ln_recipe_loss, _judge_post_ln,
                            lambda c: _post_ln_hints(c, POST_LN_CHALLENGE.steps))


def check_post_ln_recipe(recipe: dict, *, seed: int = 0) -> None:
    """Grade a warm-up and peak rate by outcome (exercise 2): the post-LN stack must get below the target.

    Fails with the loss reached, how far from the target, and the likely culprit.
    """
    POST_LN_GRADING.check(recipe, seed=seed)


def _post_ln_hints(c: dict, steps: int) -> list[str]:
    """What in a post-LN recipe that missed the target is the likely culprit."""
    hints = learning_rate_hints(c["peak_lr"], 2e-3, 3e-2, steps, " even after a warm-up")
    if c["warmup_steps"] < 20:
        hints.append(f"{c['warmup_steps']} warm-up steps at a peak of {c['peak_lr']:g}: post-LN's first updates "
                     "at full rate throw it to the unigram model (about 3.25 nats/char); warm up for longer")
    elif c["warmup_steps"] < 50:
        hints.append(f"{c['warmup_steps']} warm-up steps: enough to rescue some seeds but not every one (measured at "
                     "a peak of 0.02, 30-40 steps leave one seed of three stuck); warm up for longer")
    if c["warmup_steps"] > 0.8 * steps:
        hints.append(f"a warm-up of {c['warmup_steps']} of {steps} steps leaves almost no steps at the peak rate")
    return hints


def _post_ln_how_far(got: float, steps: int) -> str:
    """How far a missed post-LN run is: diverged, stuck at the unigram model, or part of the way down."""
    unigram = post_ln_unigram_loss()
    if not math.isfinite(got):
        return "the training diverged"
    if got >= unigram - STUCK_MARGIN:
        return (f"{got - POST_LN_TARGET:.3f} nats above it, stuck at the unigram model ({unigram:.3f}): the stack "
                "predicts character frequencies and nothing more")
    share = (unigram - got) / (unigram - POST_LN_TARGET)
    return (f"{got - POST_LN_TARGET:.3f} nats above it, {share:.0%} of the way down from the unigram model "
            f"({unigram:.3f}) to the target: the stack learns, but not far enough in {steps} steps")


# ----------------------------------------------------------------------------- exercise 3: the parameter groups

def _decay_models(seed: int) -> list[tuple[str, nn.Module]]:
    """The models check_decay_groups hands the learner's function: tied, untied, post-LN (sizes follow ``seed``)."""
    rng = np.random.default_rng(seed)
    D, L, V = int(rng.choice([16, 24, 32])), int(rng.choice([2, 3])), int(rng.choice([11, 13]))
    with torch.random.fork_rng():  # building the models draws weights; leave the caller's generator alone
        return [(f"a RecipeGPT with tied weights (head.weight is embed.weight; {L} pre-LN blocks, D = {D})",
                 RecipeGPT(V, 8, D, 4, L, tie_weights=True)),
                (f"a RecipeGPT ({L} pre-LN blocks, D = {D})", RecipeGPT(V, 8, D, 4, L)),
                (f"a post-LN RecipeGPT ({L + 1} blocks)", RecipeGPT(V, 8, D, 4, L + 1, post_ln=True))]


def _parameter_names(model: nn.Module) -> dict[int, str]:
    """``{id(p): name}``; a tied parameter gets both its names."""
    names: dict[int, str] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names[id(p)] = f"{names[id(p)]} (= {name}, tied)" if id(p) in names else name
    return names


def _read_groups(groups, weight_decay: float, names: dict[int, str]) -> tuple[list, list]:
    """The ids in the decayed group and in the other, in the order listed; fails on a malformed answer."""
    form = (f"return a list of two dicts, [{{'params': [...], 'weight_decay': {weight_decay}}}, "
            "{'params': [...], 'weight_decay': 0.0}]")
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) for g in groups):
        raise CheckFailed(f"{form}; got {type(groups).__name__}")
    decayed, kept = [], []
    for group in groups:
        if set(group) != {"params", "weight_decay"}:
            raise CheckFailed(f"{form}: each group has exactly the keys params and weight_decay; got {sorted(group)}")
        wd = group["weight_decay"]
        if isinstance(wd, bool) or not isinstance(wd, (int, float)) or wd not in (weight_decay, 0):
            raise CheckFailed(f"a group's weight_decay is {wd!r}: it should be the weight_decay you were given "
                              f"({weight_decay}) for the decayed group and 0.0 for the other")
        params = list(group["params"]) if not isinstance(group["params"], torch.Tensor) else None
        if params is None:
            raise CheckFailed(f"{form}: 'params' is a list of parameters, not a single tensor")
        for p in params:
            if id(p) not in names:
                raise CheckFailed("a group holds a tensor that is not one of the model's parameters (p.data, "
                                  "p.detach() or a copy is a new tensor: the optimiser would update it, not the "
                                  "model); list the parameters themselves")
            (decayed if wd == weight_decay else kept).append(id(p))
    return decayed, kept


def _group_mistakes(decayed: list[int], kept: list[int], model: nn.Module, names: dict[int, str]) -> list[str]:
    """What is wrong with a split of ``model``'s parameters, against :func:`decay_groups`' rule."""
    params = {id(p): p for p in model.parameters()}
    should = {id(p) for p in decay_groups(model, 1.0)[0]["params"]}

    def listed(ids) -> str:
        ordered = [names[i] for i in sorted(ids, key=list(params).index)]
        return ", ".join(ordered) if len(ordered) <= 5 else f"{', '.join(ordered[:4])} and {len(ordered) - 4} more"

    def tied(ids) -> str:
        return (" A tied matrix is one parameter, which walking the modules meets twice (as nn.Embedding's weight "
                "and as nn.Linear's): go through model.parameters(), which lists it once."
                if any("tied" in names[i] for i in ids) else "")

    problems = []
    both = set(decayed) & set(kept)
    if both:
        problems.append(f"in both groups: {listed(both)} (torch.optim refuses a parameter in two groups).{tied(both)}")
    twice = {i for group in (decayed, kept) for i in group if group.count(i) > 1}
    if twice:
        problems.append(f"listed twice in one group: {listed(twice)}; each parameter goes in once.{tied(twice)}")
    missing = set(params) - set(decayed) - set(kept)
    if missing:
        hint = ""
        if any("in_proj" in names[i] or names[i] == "pos" for i in missing):
            hint = (" Attention's in_proj_weight and in_proj_bias and the position table pos are nn.Parameters "
                    "registered directly on their modules, not inside an nn.Linear or nn.Embedding: go through "
                    "model.parameters() rather than through the layers.")
        problems.append(f"in no group, so AdamW would never update them: {listed(missing)}.{hint}")
    if set(decayed) == set(params) - should and should:
        return problems + ["the groups are swapped: the matrices should get the weight decay and the vectors "
                           "(biases, LayerNorms) 0.0."]
    wrongly = set(decayed) - should
    if wrongly == set(params) - should and wrongly:
        problems.append("every parameter is decayed (what AdamW(model.parameters(), weight_decay=...) does): the "
                        "biases and the LayerNorm gains and shifts, vectors, belong in the group with 0.0.")
    else:
        gains = {i for i in wrongly if params[i].dim() == 1 and not names[i].endswith("bias")}
        if gains:
            problems.append(f"the LayerNorm gains are decayed ({listed(gains)}): their names end in 'weight' like "
                            "the matrices', but they are vectors that start at 1, and decay pulls them toward 0. "
                            "Decide by the shape (p.dim()), not the name.")
        if wrongly - gains:
            problems.append(f"biases are decayed ({listed(wrongly - gains)}): vectors get 0.0.")
    spared = should - set(decayed) - missing  # a missing one is named above
    embeddings = {i for i in spared if names[i].startswith(("embed.", "pos"))}
    if embeddings:
        problems.append(f"the embedding tables are not decayed ({listed(embeddings)}; minGPT's choice): the rule "
                        "here is nanoGPT's, every matrix is decayed, the embedding tables included.")
    if spared - embeddings:
        problems.append(f"matrices are not decayed ({listed(spared - embeddings)}): every parameter with two or more "
                        "dimensions is decayed.")
    return problems


def check_decay_groups(fn, seed: int = 0) -> None:
    """Test ``fn(model, weight_decay) -> [{"params", "weight_decay"}, ...]`` against :func:`decay_groups`
    (exercise 3) on three models: tied, untied and post-LN.

    Every parameter exactly once; ``weight_decay`` on the matrices (two or more dimensions, the embedding
    tables included), 0.0 on the biases and LayerNorms. Names the usual mistakes: LayerNorm gains
    decayed (chosen by name), biases decayed, everything decayed, a parameter in both groups (a tied
    matrix met twice) or in none (attention's ``in_proj_weight``, the position table), copies instead of
    parameters, the groups swapped.
    """
    fn = refuse_reference(fn, ("decay_groups", "make_optimizer"))
    weight_decay = (0.1, 0.05, 0.01)[seed % 3]
    for description, model in _decay_models(seed):
        names = _parameter_names(model)
        decayed, kept = _read_groups(fn(model, weight_decay), weight_decay, names)
        problems = _group_mistakes(decayed, kept, model, names)
        if problems:
            raise CheckFailed(f"my_decay_groups on {description}, weight_decay = {weight_decay}: "
                              + " ".join(p[0].upper() + p[1:] for p in problems))
    print(f"OK my_decay_groups: every parameter in one group, weight_decay = {weight_decay} on the matrices and "
          "0.0 on the biases and LayerNorms (tied, untied and post-LN models)")


# ----------------------------------------------------------------------------- exercise 4: the Noam rate

def _noam_settings(seed: int) -> list[tuple[int, int]]:
    """``(d_model, warmup)`` pairs check_noam_rate tries: the paper's base model and two drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return [(512, 4000), (int(rng.choice([48, 96, 128, 320])), int(rng.integers(5, 40))),
            (int(rng.choice([16, 64, 256, 1024])), int(rng.integers(50, 400)))]


def _noam_steps(warmup: int, rng: np.random.Generator) -> np.ndarray:
    """Optimiser steps (from 0) to try: every step up to a little past the peak, landmarks after, a few drawn."""
    dense = np.arange(0, min(3 * warmup, warmup + 60))
    landmarks = [warmup - 2, warmup - 1, warmup, 2 * warmup - 1, 4 * warmup - 1, 16 * warmup - 1, 100 * warmup]
    return np.unique(np.concatenate([dense, landmarks, rng.integers(0, 20 * warmup, 20)]))


def _noam_mistakes(t: np.ndarray, d: int, w: int) -> dict[str, np.ndarray]:
    """What the usual wrong Noam rates give at the optimiser steps ``t`` >= 1 (float64)."""
    s = t + 1.0  # the formula's steps
    shape = np.minimum(s**-0.5, s * w**-1.5)
    return {
        "count the steps from 0: the formula's step is t + 1 (LambdaLR calls your function with t = 0 first)":
            d**-0.5 * np.minimum(t**-0.5, t * w**-1.5),
        "write the warm-up term as step * warmup**-0.5 instead of step * warmup**-1.5: the warm-up then ends "
        "long before step = warmup": d**-0.5 * np.minimum(s**-0.5, s * w**-0.5),
        "leave out the factor d_model**-0.5": shape,
        "multiply by d_model**0.5 instead of d_model**-0.5 (the exponent's sign)": d**0.5 * shape,
        "take the max of the two terms instead of the min": d**-0.5 * np.maximum(s**-0.5, s * w**-1.5),
        "return the multiplier, the schedule's shape with its peak at 1 (min(step / warmup, (warmup / step)**0.5)), "
        "where the rate is asked: the rate is that times its peak, (d_model * warmup)**-0.5":
            np.minimum(s / w, (w / s) ** 0.5),
    }


def _rate(name: str, value) -> float:
    """The learner's return value as a float; fails on anything that is not one number."""
    if isinstance(value, (torch.Tensor, np.ndarray)) and np.prod(value.shape) == 1:  # a one-number array
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise CheckFailed(f"{name} should return one number (a float), got {type(value).__name__}")
    return float(value)


def check_noam_rate(fn, seed: int = 0) -> None:
    """Test ``fn(t, d_model, warmup) -> rate`` against :func:`~course_utils.recipe.noam_lr` at step ``t + 1``
    (exercise 4): ``t`` counts the optimiser's steps from 0, as ``LambdaLR`` does.

    Tries the paper's base model (``d_model = 512``, ``warmup = 4000``) and two settings drawn from ``seed``, at
    every step up to past the peak and at landmarks after it. Names the usual mistakes: steps counted from 0
    (a division by zero at ``t = 0``, or off by one), the warm-up exponent -0.5 instead of -1.5, the factor
    ``d_model**-0.5`` missing or with the wrong sign, max instead of min, the multiplier (peak 1) instead of the
    rate, and a rate that peaks at the wrong step.
    """
    fn = refuse_reference(fn, ("noam_lr", "noam_lambda", "schedule_lr", "LambdaLR"))
    rng = np.random.default_rng(1000 + seed)
    for d, w in _noam_settings(seed):
        t = _noam_steps(w, rng)  # (n,) from 0
        name = f"my_noam_rate(t, d_model={d}, warmup={w})"
        try:
            first = _rate(f"my_noam_rate(0, {d}, {w})", fn(0, d, w))
        except ZeroDivisionError as error:
            raise CheckFailed(f"my_noam_rate(0, {d}, {w}) divides by zero ({error}): t counts the optimiser's "
                              "steps from 0, as LambdaLR does (it calls your function with t = 0 when it is built), "
                              "and the formula's steps from 1; the rate of t is the formula's at step t + 1") from None
        if not math.isfinite(first):
            raise CheckFailed(f"my_noam_rate(0, {d}, {w}) is {first}: t counts the optimiser's steps from 0, as "
                              "LambdaLR does, and the formula's steps from 1; the rate of t is the formula's at "
                              "step t + 1 (0**-0.5 is infinite)")
        got = np.array([first] + [_rate(f"my_noam_rate({int(i)}, {d}, {w})", fn(int(i), d, w)) for i in t[1:]])
        expected = np.array([noam_lr(int(i) + 1, d, w) for i in t])  # (n,) float64
        if np.allclose(got, expected, rtol=1e-6, atol=0.0):
            continue
        name_mistake(f"{name} at t = 1, 2, ...", got[1:], expected[1:], _noam_mistakes(t[1:], d, w))
        peak = int(t[np.argmax(got)])
        if peak != w - 1:
            raise CheckFailed(f"{name} peaks at t = {peak} (the formula's step {peak + 1}); the rate should rise "
                              f"linearly up to step = warmup = {w} (t = {w - 1}), where it is (d_model * warmup)**-0.5 "
                              f"= {(d * w) ** -0.5:.4g}, and fall as 1 / sqrt(step) after it")
        check_close(f"{name} at t = {', '.join(str(int(i)) for i in t[:3])}, ..., {int(t[-1])}", got, expected,
                    rtol=1e-6, atol=0.0, quiet=True)
    print("OK my_noam_rate: d_model**-0.5 * min(step**-0.5, step * warmup**-1.5) at step = t + 1, for "
          + ", ".join(f"d_model = {d}, warmup = {w}" for d, w in _noam_settings(seed)))
