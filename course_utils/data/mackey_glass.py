"""Notebook 09, section 1: the Mackey-Glass series, the classic test of echo state networks.

Mackey-Glass (Mackey & Glass 1977), the delay differential equation::

    dx/dt = beta * x(t - tau) / (1 + x(t - tau)^n) - gamma * x(t)

with beta = 0.2, gamma = 0.1, n = 10 and tau = 17 (chaotic). :func:`mackey_glass` integrates
it deterministically: classical Runge-Kutta 4 with a fixed step ``dt``, the delayed value at
the half steps taken as the mean of its two neighbouring grid values (linear interpolation),
constant history ``x = x0`` for ``t <= 0``, then a transient discarded and every
``round(sample_every / dt)``-th grid value kept.
"""

from __future__ import annotations

import numpy as np


def mackey_glass(
    n: int,
    *,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    x0: float = 1.2,
    dt: float = 0.1,
    sample_every: float = 1.0,
    discard: int = 500,
) -> np.ndarray:
    """``n`` samples of the Mackey-Glass series, ``sample_every`` time units apart, after ``discard`` samples.

    Returns a float64 array ``(n,)``. Deterministic: the same arguments give the same numbers.
    """
    if n < 1 or discard < 0:
        raise ValueError(f"need n >= 1 and discard >= 0, got n={n}, discard={discard}")
    delay = int(round(tau / dt))
    stride = int(round(sample_every / dt))
    if abs(delay * dt - tau) > 1e-9 or abs(stride * dt - sample_every) > 1e-9 or delay < 1:
        raise ValueError(f"tau={tau} and sample_every={sample_every} must be multiples of dt={dt}")
    steps = (n + discard) * stride
    x = np.empty(delay + steps + 1)
    x[: delay + 1] = x0  # history on [-tau, 0]

    def f(x_t: float, x_lag: float) -> float:
        return beta * x_lag / (1.0 + x_lag**power) - gamma * x_t

    for k in range(delay, delay + steps):  # x[k] is x(t), x[k - delay] is x(t - tau)
        lag0, lag1 = x[k - delay], x[k - delay + 1]
        lag_half = 0.5 * (lag0 + lag1)
        k1 = f(x[k], lag0)
        k2 = f(x[k] + 0.5 * dt * k1, lag_half)
        k3 = f(x[k] + 0.5 * dt * k2, lag_half)
        k4 = f(x[k] + dt * k3, lag1)
        x[k + 1] = x[k] + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    samples = x[delay + stride :: stride]  # x(sample_every), x(2 sample_every), ...
    return samples[discard : discard + n].copy()
