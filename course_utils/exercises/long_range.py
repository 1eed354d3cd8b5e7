"""Notebooks 03, 04 and 09, the exercises on :mod:`course_utils.long_range`.

Graded by outcome (the learner's setting is built and trained, seeded): ``check_adding_config``, on
the share of the state the gate keeps at the start and on the trained test MSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..core.checks import Challenge, CheckFailed, Verdict, learning_rate_hints, require_keys
from ..core.seed import seeded_run
from ..core.training import evaluate, fit, supervised
from ..data.adding import BASELINE_MSE, adding_batches, adding_problem
from ..long_range import SequenceToOne
from ..shared.gated import gate_slices

# What the learner chooses, by layer kind: the gate bias that decides how much state is kept
# at the start of training, the number of units and Adam's learning rate.
ADDING_CONFIG_KEYS = {"LSTM": ("forget_bias", "hidden_size", "lr"), "GRU": ("update_bias", "hidden_size", "lr")}


# The task each kind must solve: sequence length, optimiser steps, batch size, test MSE to beat.
ADDING_CHALLENGES = {
    "LSTM": {"length": 30, "steps": 500, "batch_size": 32, "target": 0.02},
    "GRU": {"length": 50, "steps": 250, "batch_size": 32, "target": 0.02},
}


MAX_HIDDEN = 64  # keeps the check at a few seconds


# The share of the state the keeping gate must carry across the second half of a sequence at the start of
# training (:func:`kept_fraction`): what the gate bias decides. On these short tasks a bias <= 0 may still
# train to the target MSE (LSTM, bias 0: 0.0025, 0.0056 on seeds 0, 1), so the MSE alone does not test it.
MIN_KEPT = 0.02

# Notebook 03 shows forget biases 0 (PyTorch's), 1 (section 5) and 4 (section 8), 32 units and lr 1e-2 before the
# exercise. With 32 units and lr 1e-2 (seeds 0, 1, 2): bias 4 reaches MSE 0.171, 0.0025, 0.154 (fails two of three);
# bias 3 0.00095, 0.00089, 0.041 (fails seed 2), bias 2 passes all three; bias <= 1 keeps too little (0.73^15 < 2%).
# So the notebook grades seeds 0 (visible), 1 and 2 (hidden).


def _validate_adding_config(config: dict, kind: str) -> dict:
    keys = ADDING_CONFIG_KEYS[kind]
    require_keys(config, keys)
    bias_key = keys[0]
    hidden, lr, bias = config["hidden_size"], config["lr"], config[bias_key]
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= MAX_HIDDEN:
        raise CheckFailed(f"hidden_size should be a whole number from 1 to {MAX_HIDDEN}, got {hidden!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 0.1:
        raise CheckFailed(f"lr should be a number in (0, 0.1], got {lr!r}")
    if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not -10 <= bias <= 10:
        raise CheckFailed(f"{bias_key} should be a number in [-10, 10], got {bias!r}")
    return {"hidden_size": hidden, "lr": float(lr), "bias": float(bias)}


def _adding_model(c: dict, kind: str) -> SequenceToOne:
    """The untrained model of ``kind`` with the config's gate bias (call inside ``seeded_run``)."""
    model = SequenceToOne(kind, 2, c["hidden_size"], forget_bias=c["bias"] if kind == "LSTM" else None)
    if kind == "GRU":  # the update gate's total bias; z near 1 keeps the state
        rows = gate_slices(c["hidden_size"], ("r", "z", "n"))["z"]
        with torch.no_grad():
            model.rnn.bias_ih_l0[rows] = c["bias"]
            model.rnn.bias_hh_l0[rows] = 0.0
    return model


def _adding_test_set(kind: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return adding_problem(1000, ADDING_CHALLENGES[kind]["length"], seed=20_000 + seed)


def kept_fraction(model: SequenceToOne, x: torch.Tensor) -> tuple[float, float]:
    """How much of its state ``model`` keeps on the inputs ``x`` ``(B, T, 2)``, as it is now.

    The keeping gate is the LSTM's forget gate ``f_t`` (``c_t = f_t * c_{t-1} + ...``) or the
    GRU's update gate ``z_t`` (``h_t = (1 - z_t) * n_t + z_t * h_{t-1}``). Returns ``(per_step,
    second_half)``: the gate's mean over sequences, steps and units, and the mean over sequences
    and units of its product over the last ``T // 2`` steps, the share of the state at the middle
    of the sequence (the latest step the first marker can be at) still there at the end, which
    is also the factor on the gradient along that path.
    """
    rnn, T = model.rnn, x.shape[1]
    names = ("i", "f", "g", "o") if model.kind == "LSTM" else ("r", "z", "n")
    rows = gate_slices(rnn.hidden_size, names)["f" if model.kind == "LSTM" else "z"]
    with torch.no_grad():
        hs, _ = rnn(x)  # (B, T, H): h_0 .. h_{T-1}
        h_prev = torch.cat([torch.zeros_like(hs[:, :1]), hs[:, :-1]], dim=1)  # (B, T, H): the state each step reads
        gate = torch.sigmoid(x @ rnn.weight_ih_l0[rows].T + rnn.bias_ih_l0[rows]
                             + h_prev @ rnn.weight_hh_l0[rows].T + rnn.bias_hh_l0[rows])  # (B, T, H)
    return gate.mean().item(), gate[:, T - T // 2:].prod(dim=1).mean().item()


def adding_config_kept(config: dict, kind: str = "LSTM", *, seed: int = 0) -> tuple[float, float]:
    """:func:`kept_fraction` of the untrained model ``config`` builds (seeded), on the check's test sequences."""
    if kind not in ADDING_CHALLENGES:
        raise ValueError(f"kind must be one of {', '.join(ADDING_CHALLENGES)}, got {kind!r}")
    c = _validate_adding_config(config, kind)
    with seeded_run(seed):
        return kept_fraction(_adding_model(c, kind), _adding_test_set(kind, seed)[0])


def adding_config_mse(config: dict, kind: str = "LSTM", *, seed: int = 0) -> float:
    """Train ``kind`` on the adding problem of :data:`ADDING_CHALLENGES` with ``config``; return its test MSE.

    Everything random (initial weights, the training and test sequences) follows ``seed``,
    without touching the notebook's own random state; it runs on the CPU, where a seed makes
    the result the same on every machine. Adam, gradient norm clipped at 1.
    """
    if kind not in ADDING_CHALLENGES:
        raise ValueError(f"kind must be one of {', '.join(ADDING_CHALLENGES)}, got {kind!r}")
    c = _validate_adding_config(config, kind)
    task, cpu, mse = ADDING_CHALLENGES[kind], torch.device("cpu"), supervised(nn.functional.mse_loss)
    with seeded_run(seed):
        model = _adding_model(c, kind)
        train = adding_batches(task["steps"], task["batch_size"], task["length"], seed=10_000 + seed)
        fit(model, train, mse, torch.optim.Adam(model.parameters(), lr=c["lr"]), clip_grad_norm=1.0,
            device=cpu, progress=False)
        return evaluate(model, [_adding_test_set(kind, seed)], mse, device=cpu)


@dataclass(frozen=True)
class AddingScore:
    """What the adding challenge measured: the untrained model's kept fractions (:func:`kept_fraction`)
    and the test MSE after training, ``None`` when too little is kept to train at all."""

    per_step: float
    second_half: float
    mse: float | None


def _measure_adding(config: dict, kind: str, seed: int) -> AddingScore:
    """Kept fractions first; train only if enough of the state crosses the second half."""
    per_step, second_half = adding_config_kept(config, kind, seed=seed)
    if second_half < MIN_KEPT:
        return AddingScore(per_step, second_half, None)
    return AddingScore(per_step, second_half, adding_config_mse(config, kind, seed=seed))


_GATE = {"LSTM": ("forget gate", "forget bias", "cell state", "f"),
         "GRU": ("update gate", "update-gate bias", "state", "z")}


def _adding_hints(c: dict, kind: str) -> list[str]:
    """What in a config that missed the target is the likely culprit (from the config alone, no training)."""
    gate, bias_name, state, g = _GATE[kind]
    half = ADDING_CHALLENGES[kind]["length"] // 2
    keep = 1.0 / (1.0 + math.exp(-c["bias"]))  # the gate at the start, inputs aside
    hints = []
    start = f"the {gate} starts at {g} = sigmoid({c['bias']:g}) = {keep:.2f}"
    crosses = f"{keep:.2f}^{half} = {keep ** half:.1g}"
    if c["bias"] <= 0:
        hints.append(f"your {bias_name} is <= 0, so {start}: each step keeps at most half of the {state} at first, "
                     f"and about {crosses} of it (and of the gradient along it) crosses the {half} steps of the "
                     "second half")
    elif keep ** half < MIN_KEPT:
        hints.append(f"your {bias_name} is {c['bias']:g}, so {start}: "
                     f"about {crosses} of the {state} crosses the {half} steps of the "
                     f"second half, under {MIN_KEPT:.0%}")
    elif c["bias"] >= 3:
        hints.append(f"your {bias_name} of {c['bias']:g} starts the {gate} nearly open ({g} = {keep:.2f}), keeping the "
                     f"unmarked values too, and on the gate's flat part (slope {keep * (1 - keep):.2f}) it learns "
                     "slowly (measured: a bias of 3 missed the target on one of three seeds where 2 reached it on "
                     "all three)")
    hints += learning_rate_hints(c["lr"], 3e-3, 3e-2)
    if c["hidden_size"] < 8:
        hints.append(f"{c['hidden_size']} units are few: the state must hold the sum and the marker bookkeeping")
    return hints


def _adding_grading(kind: str) -> Challenge:
    """The adding-problem challenge for one layer kind."""
    gate, _, state, _ = _GATE[kind]
    task = ADDING_CHALLENGES[kind]
    half = task["length"] // 2

    def judge(c: dict, got: AddingScore, seed: int) -> Verdict:
        kept = (f"at the start of training your {kind}'s {gate} keeps {got.per_step:.0%} of the {state} per step, "
                f"and {got.second_half:.2g} of it crosses the {half} steps of the second half (target: at least "
                f"{MIN_KEPT:.0%})")
        if got.mse is None:
            return Verdict(f"{kept}; not trained", False,
                           f"{got.second_half / MIN_KEPT:.2g} times the share to keep")
        where = (f"{kept}; after {task['steps']} steps on sequences of length {task['length']}, it reaches a test "
                 f"MSE of {got.mse:.4f} (target: below {task['target']}; answering 1 always scores {BASELINE_MSE:.3f})")
        return Verdict(where, got.mse < task["target"], f"{got.mse / task['target']:.1f} times the target")

    return Challenge(lambda config: _validate_adding_config(config, kind),
                     lambda config, seed: _measure_adding(config, kind, seed), judge,
                     lambda c: _adding_hints(c, kind))


ADDING_GRADING = {kind: _adding_grading(kind) for kind in ADDING_CHALLENGES}


def check_adding_config(config: dict, kind: str = "LSTM", *, seed: int = 0) -> None:
    """Grade a learner's hyperparameters by outcome: build and train with them (seeded).

    Passes when the untrained model's keeping gate carries at least :data:`MIN_KEPT` of the state
    across the second half of the test sequences (:func:`kept_fraction`; a model that keeps less
    is not trained) and the trained model beats the target MSE. ``config`` has the keys of
    :data:`ADDING_CONFIG_KEYS` for ``kind``. Fails with what was measured, how far it is from the
    target, and the likely culprits in the config.
    """
    if kind not in ADDING_GRADING:
        raise ValueError(f"kind must be one of {', '.join(ADDING_GRADING)}, got {kind!r}")
    ADDING_GRADING[kind].check(config, seed=seed)
