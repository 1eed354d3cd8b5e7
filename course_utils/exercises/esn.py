"""Notebook 09, the exercises on :mod:`course_utils.esn`.

Checks that name the usual mistakes: ``check_esn_readout``.
Graded by outcome (the learner's setting is trained, seeded): ``check_esn_config``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

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
from ..data.mackey_glass import mackey_glass
from ..esn import free_run, make_reservoir, nrmse, ridge_readout, run_reservoir, with_bias


def _readout_mistakes(states: np.ndarray, targets: np.ndarray, washout: int, alpha: float) -> dict[str, np.ndarray]:
    """What the usual wrong read-outs return, each ``(n_out, N + 1)``."""
    X, Y = with_bias(states[washout:]), targets[washout:]  # (T - washout, N + 1), (T - washout, n_out)
    return {
        "penalise the bias too (alpha on the whole diagonal, the column of ones included): the bias is "
        "not shrunk, only the weights of the states": np.linalg.solve(X.T @ X + alpha * np.eye(X.shape[1]), X.T @ Y).T,
        "fit the first `washout` states too: they still remember the zero initial state (the transient), "
        "so drop states[:washout] and targets[:washout]": ridge_readout(states, targets, alpha),
        "leave out the penalty (alpha = 0): that is least squares, not ridge regression":
            ridge_readout(states[washout:], Y, 0.0),
        "put the column of ones last instead of first ([1, r_t], the bias weight in column 0)":
            np.roll(ridge_readout(states[washout:], Y, alpha), -1, axis=1),
    }


def check_esn_readout(fn: Any, seed: int = 0) -> None:
    """Test ``fn(states (T, N), targets (T, n_out), washout, alpha) -> W_out (n_out, N + 1)`` (notebook 09).

    The states come from a real reservoir started at zero, so its transient is visible; the
    targets have a large mean, so a penalised bias shows. Names the mistake the values match.
    """
    fn = refuse_reference(fn, ("ridge_readout", "Ridge", "RidgeCV"))
    rng = np.random.default_rng(seed)
    N, T, n_out, washout, alpha = 30, 150, 2, 25, 0.3
    reservoir = make_reservoir(N, 1, spectral_radius_target=0.95, seed=seed)
    states = run_reservoir(reservoir, rng.uniform(-1, 1, size=(T, 1)))  # (T, N), from r_0 = 0
    targets = rng.normal(size=(T, n_out)) + 3.0  # (T, n_out), mean far from 0
    got = fn(states.copy(), targets.copy(), washout, alpha)
    if isinstance(got, np.ndarray) and got.shape == (n_out, N):
        raise CheckFailed(f"W_out has shape {got.shape}, expected {(n_out, N + 1)}: one more column, the bias "
                          "weight that multiplies the 1 in [1, r_t] (see with_bias)")
    check_shape("W_out", got, (n_out, N + 1))
    expected = ridge_readout(states[washout:], targets[washout:], alpha)  # (n_out, N + 1)
    name_mistake("W_out", got, expected, _readout_mistakes(states, targets, washout, alpha))
    check_close("W_out (the ridge read-out after the washout)", got, expected, rtol=1e-6, atol=1e-8)


ESN_CONFIG_KEYS = ("spectral_radius", "input_scale", "alpha")


ESN_CONFIG_RANGES = {"spectral_radius": (0.01, 2.0), "input_scale": (0.01, 2.0), "alpha": (1e-12, 1.0)}


ESN_CHALLENGE = {"n_reservoir": 300, "washout": 200, "split": 2000, "steps": 200, "target": 0.05, "length": 2600,
                 "reservoirs": 5}


# One reservoir is one draw: of 30 plausible settings (spectral radius 0.8-1.3 x input scale 0.1-1.5, alpha 1e-8),
# graded on one reservoir each, 2 passed the visible seed and failed a hidden one (rho 1.2, input scale 0.3: NRMSE
# 0.004 on reservoir 0, 0.655 on reservoir 1). Graded on the worst of 5 reservoirs (0-4 visible, 5-9 and 10-14
# hidden), none of the 30 did; alpha 1e-7 with rho 1.1, input scale 0.5 (each value shown in notebook 09 before the
# exercise) still did: worst of reservoirs 0-4, 5-9, 10-14, 15-19: 0.034, 0.041, 0.095, 0.060. So notebook 09's
# visible test judges seeds 0 and 2 (reservoirs 0-4 and 10-14) and its hidden test seeds 1 and 3, where that setting
# fails one of each and alpha 1e-8 passes all four (0.014, 0.029, 0.025, 0.019); rho 0.95, the rule "keep rho < 1",
# fails all four (alpha 1e-8: 0.081, 0.052, 0.068, 0.097; the section's alpha 1e-7: 0.121, 0.153, 0.238, 0.488).


@lru_cache(maxsize=1)
def _mackey_glass_inputs(length: int) -> np.ndarray:
    """The notebook's series, centred: ``(length, 1)``."""
    series = mackey_glass(length)
    return (series - series.mean())[:, None]


def _validate_esn_config(config: Any) -> dict[str, float]:
    require_keys(config, ESN_CONFIG_KEYS)
    for key, (low, high) in ESN_CONFIG_RANGES.items():
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise CheckFailed(f"{key} should be a number in [{low:g}, {high:g}], got {value!r}")
    return {key: float(config[key]) for key in ESN_CONFIG_KEYS}


def esn_config_nrmse(config: dict, *, seed: int = 0) -> float:
    """Free-running NRMSE of an ESN built with ``config`` on Mackey-Glass, over ``ESN_CHALLENGE["steps"]`` steps.

    The reservoir (300 units) is drawn with ``seed``; the read-out is fitted on steps
    ``washout .. split`` with ``split = 2000 - 100 * (seed % 5)``, then the network runs free
    from ``split``, as in the notebook. Uses its own random generator (numpy ``default_rng``):
    the global random state is untouched.
    """
    c = _validate_esn_config(config)
    with threadpool_limits(limits=1, user_api="blas"):  # 300-unit matrix-vector steps run fastest on one thread
        return _esn_free_run_nrmse(c, seed)


def _esn_free_run_nrmse(c: dict[str, float], seed: int) -> float:
    task = ESN_CHALLENGE
    u = _mackey_glass_inputs(task["length"])  # (length, 1)
    split = task["split"] - 100 * (seed % 5)
    reservoir = make_reservoir(task["n_reservoir"], 1, spectral_radius_target=c["spectral_radius"],
                               input_scale=c["input_scale"], seed=seed)
    states = run_reservoir(reservoir, u[:split])  # (split, N): r_t after reading u_0..u_t
    targets = u[1 : split + 1]  # (split, 1): the next value
    W_out = ridge_readout(states[task["washout"] :], targets[task["washout"] :], alpha=c["alpha"])  # (1, N + 1)
    free = free_run(reservoir, W_out, states[-1], targets[-1], steps=task["steps"])  # (steps, 1)
    error = nrmse(free, u[split + 1 : split + 1 + task["steps"]])
    return error if math.isfinite(error) else math.inf


def _esn_hints(c: dict[str, float]) -> list[str]:
    """What in a config that missed the target is the likely culprit."""
    hints = []
    if c["spectral_radius"] < 0.95:
        hints.append(f"a spectral radius of {c['spectral_radius']:g} is small: the state fades before it can hold "
                     "the value tau = 17 steps back that the next Mackey-Glass value depends on (measured: at 0.8 "
                     "and 0.9, no input scale from 0.1 to 1.5 kept all five reservoirs below the target)")
    if c["spectral_radius"] > 1.25:
        hints.append(f"a spectral radius of {c['spectral_radius']:g} is large: the reservoir's own dynamics "
                     "dominate the input, and the free run drifts away")
    if c["input_scale"] < 0.3:
        hints.append(f"an input scale of {c['input_scale']:g} keeps the tanh units in their linear range: a "
                     "nearly linear reservoir with a linear read-out cannot model the series' nonlinear map")
    if c["input_scale"] > 1.0:
        hints.append(f"an input scale of {c['input_scale']:g} saturates the tanh units, which then lose the "
                     "input's detail")
    if c["alpha"] > 1e-6:
        hints.append(f"a ridge alpha of {c['alpha']:g} shrinks the read-out: each free-running step's small "
                     "bias is fed back and compounds")
    return hints


def esn_reservoir_seeds(seed: int) -> range:
    """The reservoir seeds a check with ``seed`` builds: five of them, none shared with another ``seed``."""
    n = ESN_CHALLENGE["reservoirs"]
    return range(n * seed, n * seed + n)


def esn_config_worst(config: dict, *, seed: int = 0) -> dict[int, float]:
    """``{reservoir seed: free-running NRMSE}`` over :func:`esn_reservoir_seeds` (``seed``): what the check judges."""
    return {s: esn_config_nrmse(config, seed=s) for s in esn_reservoir_seeds(seed)}


def _judge_esn(c: dict, got: dict[int, float], seed: int) -> Verdict:
    """What check_esn_config measured, against the target: the worst of its reservoirs."""
    task = ESN_CHALLENGE
    worst = max(got, key=got.get)
    met = sum(error < task["target"] for error in got.values())
    where = (f"running free for {task['steps']} steps, your ESN reaches NRMSEs "
             f"{', '.join(f'{e:.3f}' for e in got.values())} on reservoirs {min(got)}-{max(got)}; the worst, "
             f"{got[worst]:.4f} (reservoir {worst}), must be below {task['target']} (predicting the mean scores 1)")
    how_far = f"{got[worst] / task['target']:.1f} times the target"
    if met:
        how_far += (f"; {met} of {len(got)} reservoirs met it: the error varies from one random reservoir to "
                    "another, and a setting must hold on every one")
    return Verdict(where, met == len(got), how_far)


ESN_GRADING = Challenge(_validate_esn_config, esn_config_worst, _judge_esn, _esn_hints)


def check_esn_config(config: dict, *, seed: int = 0) -> None:
    """Grade a learner's reservoir by outcome: its free run must stay below the target NRMSE (notebook 09)
    on each of five random reservoirs (:func:`esn_reservoir_seeds`; about a second in all).

    ``config`` has the keys of :data:`ESN_CONFIG_KEYS`. Fails with the NRMSEs reached, how far the
    worst is from the target, and the likely culprits in the config.
    """
    ESN_GRADING.check(config, seed=seed)
