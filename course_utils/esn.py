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

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.esn`.
"""

from __future__ import annotations

import numpy as np


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
