"""Notebook 09, section 1: echo state networks (Jaeger 2001), where only the read-out is trained.

An echo state network keeps a large random recurrent layer, the *reservoir*, fixed::

    r_t = tanh(W_in u_t + W r_{t-1} + b)        (N,) reservoir state, W (N, N) never trained
    y_t = W_out [1; r_t]                         only W_out is fitted, by ridge regression

``W`` is scaled to a chosen spectral radius (largest ``|eigenvalue|``). The state should forget
its initial condition when driven by the input (the "echo state property"): a largest singular
value below 1 guarantees it; a spectral radius below 1 is the usual heuristic, neither necessary
nor sufficient for a driven reservoir (notebook 09 measures it, and free-runs best a little above 1).

The series it is tested on, Mackey-Glass, is :mod:`course_utils.data.mackey_glass`.

Two exercises are checked here: :func:`check_esn_readout` (the ridge read-out after a washout)
and :func:`check_esn_config`, graded by outcome: the learner picks the reservoir's spectral
radius, input scale and ridge ``alpha``, and :func:`esn_config_nrmse` measures how closely the
free-running network follows Mackey-Glass.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from .checks import CheckFailed, check_close, check_shape, name_mistake, outcome_verdict, refuse_reference
from .data.mackey_glass import mackey_glass


def spectral_radius(W: np.ndarray) -> float:
    """Largest absolute eigenvalue of a square matrix."""
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"W has shape {W.shape}, expected (N, N)")
    return float(np.max(np.abs(np.linalg.eigvals(W))))


def make_reservoir(
    n_reservoir: int,
    n_inputs: int = 1,
    *,
    spectral_radius_target: float = 0.9,
    density: float = 0.1,
    input_scale: float = 0.5,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A random sparse reservoir scaled to ``spectral_radius_target``.

    Returns ``{"W": (N, N), "W_in": (N, n_inputs), "b": (N,)}``: ``W`` has a ``density`` share of
    normal entries, then is multiplied by ``target / spectral_radius(W)``; ``W_in`` and ``b`` are
    uniform in ``±input_scale``.
    """
    if n_reservoir < 1 or n_inputs < 1 or not 0 < density <= 1 or spectral_radius_target <= 0:
        raise ValueError("need n_reservoir, n_inputs >= 1, 0 < density <= 1 and spectral_radius_target > 0")
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_reservoir, n_reservoir)) * (rng.random((n_reservoir, n_reservoir)) < density)
    W *= spectral_radius_target / spectral_radius(W)
    W_in = rng.uniform(-input_scale, input_scale, size=(n_reservoir, n_inputs))
    b = rng.uniform(-input_scale, input_scale, size=n_reservoir)
    return {"W": W, "W_in": W_in, "b": b}


def run_reservoir(reservoir: dict[str, np.ndarray], u: np.ndarray, r0: np.ndarray | None = None) -> np.ndarray:
    """States ``r_t = tanh(W_in u_t + W r_{t-1} + b)`` for inputs ``u`` ``(T, n_inputs)``; returns ``(T, N)``."""
    W, W_in, b = reservoir["W"], reservoir["W_in"], reservoir["b"]
    if u.ndim != 2 or u.shape[1] != W_in.shape[1]:
        raise ValueError(f"u has shape {u.shape}, expected (T, {W_in.shape[1]})")
    r = np.zeros(W.shape[0]) if r0 is None else r0
    drive = u @ W_in.T + b  # (T, N): the input part of every step at once
    states = np.empty((len(u), W.shape[0]))
    for t in range(len(u)):
        r = np.tanh(drive[t] + W @ r)
        states[t] = r
    return states


def free_run(
    reservoir: dict[str, np.ndarray], W_out: np.ndarray, r: np.ndarray, y: np.ndarray, steps: int
) -> np.ndarray:
    """Forecast ``steps`` values with each prediction fed back as the next input.

    From the state ``r`` ``(N,)`` and the next input ``y`` ``(n_inputs,)`` (the last true value), each
    step reads ``r = tanh(W_in y + W r + b)`` as :func:`run_reservoir` does, then predicts
    ``y = W_out [1; r]``. ``W_out`` ``(n_inputs, N + 1)`` from :func:`ridge_readout`. Returns ``(steps, n_inputs)``.
    """
    W, W_in, b = reservoir["W"], reservoir["W_in"], reservoir["b"]
    if W_out.shape != (W_in.shape[1], W.shape[0] + 1):
        raise ValueError(f"W_out has shape {W_out.shape}, expected {(W_in.shape[1], W.shape[0] + 1)}: "
                         "its predictions are fed back as inputs")
    outputs = np.empty((steps, W_in.shape[1]))
    for k in range(steps):
        r = np.tanh(W_in @ y + W @ r + b)
        y = W_out @ np.concatenate([[1.0], r])  # the prediction becomes the next input
        outputs[k] = y
    return outputs


def with_bias(states: np.ndarray) -> np.ndarray:
    """``[1, r_t]`` rows: ``(T, N) -> (T, N + 1)``."""
    return np.hstack([np.ones((len(states), 1)), states])


def ridge_readout(states: np.ndarray, targets: np.ndarray, alpha: float = 1e-6) -> np.ndarray:
    """``W_out`` minimising ``||X W_out^T - Y||^2 + alpha ||W_out||^2``, with ``X = [1, states]`` (bias not penalised).

    Args:
        states: ``(T, N)`` reservoir states; targets: ``(T, n_out)``.

    Returns:
        ``W_out`` of shape ``(n_out, N + 1)``, solving ``(X^T X + alpha I') W_out^T = X^T Y``.
    """
    if states.ndim != 2 or targets.ndim != 2 or len(states) != len(targets):
        raise ValueError(f"states has shape {states.shape} and targets {targets.shape}, expected (T, N) and (T, n_out)")
    X = with_bias(states)  # (T, N + 1)
    penalty = alpha * np.eye(X.shape[1])
    penalty[0, 0] = 0.0  # do not shrink the bias
    return np.linalg.solve(X.T @ X + penalty, X.T @ targets).T  # (n_out, N + 1)


def nrmse(prediction: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error divided by the target's standard deviation (1 = predicting the mean)."""
    if prediction.shape != target.shape:
        raise ValueError(f"prediction has shape {prediction.shape}, expected {target.shape}")
    return float(np.sqrt(np.mean((prediction - target) ** 2)) / np.std(target))


# ----------------------------------------------------------------------------- exercise: the read-out

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
    refuse_reference(fn, ("ridge_readout", "Ridge", "RidgeCV"))
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


# ----------------------------------------------------------------------------- exercise: a reservoir that free-runs

ESN_CONFIG_KEYS = ("spectral_radius", "input_scale", "alpha")
ESN_CONFIG_RANGES = {"spectral_radius": (0.01, 2.0), "input_scale": (0.01, 2.0), "alpha": (1e-12, 1.0)}
ESN_CHALLENGE = {"n_reservoir": 300, "washout": 200, "split": 2000, "steps": 200, "target": 0.05, "length": 2600}


@lru_cache(maxsize=1)
def _mackey_glass_inputs(length: int) -> np.ndarray:
    """The notebook's series, centred: ``(length, 1)``."""
    series = mackey_glass(length)
    return (series - series.mean())[:, None]


def _validate_esn_config(config: Any) -> dict[str, float]:
    if not isinstance(config, dict) or set(config) != set(ESN_CONFIG_KEYS):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(ESN_CONFIG_KEYS)}; got {got}")
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
    if c["spectral_radius"] < 0.8:
        hints.append(f"a spectral radius of {c['spectral_radius']:g} is small: the state forgets an input within "
                     "a few steps, but the next Mackey-Glass value depends on the value tau = 17 steps back")
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


def check_esn_config(config: dict, *, seed: int = 0) -> None:
    """Grade a learner's reservoir by outcome: its free run must stay below the target NRMSE (notebook 09).

    ``config`` has the keys of :data:`ESN_CONFIG_KEYS`. Fails with the NRMSE reached, how far it
    is from the target, and the likely culprits in the config.
    """
    got = esn_config_nrmse(config, seed=seed)  # validates the config first
    task = ESN_CHALLENGE
    where = (f"running free for {task['steps']} steps, your ESN (reservoir seed {seed}) reaches an NRMSE of "
             f"{got:.4f} (target: below {task['target']}; predicting the mean scores 1)")
    outcome_verdict(where, got < task["target"], f"{got / task['target']:.1f} times the target",
                    lambda: _esn_hints(_validate_esn_config(config)))
