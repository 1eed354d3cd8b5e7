"""Notebooks 03, 04 and 09, the exercises on :mod:`course_utils.long_range`.

Graded by outcome (the learner's setting is trained, seeded): ``check_adding_config``.
"""

from __future__ import annotations

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
        model = SequenceToOne(kind, 2, c["hidden_size"], forget_bias=c["bias"] if kind == "LSTM" else None)
        if kind == "GRU":  # the update gate's total bias; z near 1 keeps the state
            rows = gate_slices(c["hidden_size"], ("r", "z", "n"))["z"]
            with torch.no_grad():
                model.rnn.bias_ih_l0[rows] = c["bias"]
                model.rnn.bias_hh_l0[rows] = 0.0
        train = adding_batches(task["steps"], task["batch_size"], task["length"], seed=10_000 + seed)
        fit(model, train, mse, torch.optim.Adam(model.parameters(), lr=c["lr"]), clip_grad_norm=1.0,
            device=cpu, progress=False)
        test = [adding_problem(1000, task["length"], seed=20_000 + seed)]
        return evaluate(model, test, mse, device=cpu)


def _adding_hints(c: dict, kind: str) -> list[str]:
    """What in a config that missed the target is the likely culprit."""
    hints = []
    if kind == "LSTM" and c["bias"] <= 0:
        hints.append("your forget bias is <= 0, so the forget gate starts at sigmoid(b_f) <= 0.5: the cell state, "
                     "and its gradient, halves every step, and the first marker is forgotten before the end")
    if kind == "GRU" and c["bias"] <= 0:
        hints.append("your update-gate bias is <= 0, so z starts at sigmoid(b_z) <= 0.5: each step replaces half "
                     "of the state, and the first marker is forgotten before the end")
    hints += learning_rate_hints(c["lr"], 3e-3, 3e-2)
    if c["hidden_size"] < 8:
        hints.append(f"{c['hidden_size']} units are few: the state must hold the sum and the marker bookkeeping")
    return hints


def _adding_grading(kind: str) -> Challenge:
    """The adding-problem challenge for one layer kind."""
    def judge(c: dict, got: float, seed: int) -> Verdict:
        task = ADDING_CHALLENGES[kind]
        where = (f"after {task['steps']} steps on sequences of length {task['length']}, your {kind} reaches a test "
                 f"MSE of {got:.4f} (target: below {task['target']}; answering 1 always scores {BASELINE_MSE:.3f})")
        return Verdict(where, got < task["target"], f"{got / task['target']:.1f} times the target")

    return Challenge(lambda config: _validate_adding_config(config, kind),
                     lambda config, seed: adding_config_mse(config, kind, seed=seed), judge,
                     lambda c: _adding_hints(c, kind))


ADDING_GRADING = {kind: _adding_grading(kind) for kind in ADDING_CHALLENGES}


def check_adding_config(config: dict, kind: str = "LSTM", *, seed: int = 0) -> None:
    """Grade a learner's hyperparameters by outcome: train with them (seeded) and beat the target MSE.

    ``config`` has the keys of :data:`ADDING_CONFIG_KEYS` for ``kind``. Fails with the
    MSE reached, how far it is from the target, and the likely culprits in the config.
    """
    if kind not in ADDING_GRADING:
        raise ValueError(f"kind must be one of {', '.join(ADDING_GRADING)}, got {kind!r}")
    ADDING_GRADING[kind].check(config, seed=seed)
