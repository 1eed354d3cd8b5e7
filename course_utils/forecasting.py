"""Notebook 05d, sections 2-5: forecasting a yearly series, windows, baselines, an RNN, several years ahead.

The rules that keep a forecast honest live here as code: windows never mix the future
into the past, the scaler and the autoregression are fitted on the training years only,
and every model is compared with the naive baselines (persistence, the training mean).
:func:`recursive_forecast` forecasts several years ahead by feeding its own predictions
back; the check helpers grade the notebook's exercises 3-5 and name the usual mistakes.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.forecasting`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .shared.layers import recurrent_layer


def windows(series: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``X[i] = series[i : i + p]`` (N, p) and targets ``y[i] = series[i + p]`` (N,)."""
    series = np.asarray(series, dtype=np.float64)
    require_shape("series", series, ("T",))
    if not 1 <= p < len(series):
        raise ValueError(f"p must be in 1..{len(series) - 1}, got {p}")
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], p)  # (T - p, p)
    return X.copy(), series[p:].copy()


def windows_for_years(series: np.ndarray, years: np.ndarray, p: int, first: int, last: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows whose **target** year lies in ``[first, last]``: ``(X (N, p), y (N,), target_years (N,))``.

    Inputs may reach back before ``first`` (a forecast for 1921 uses 1920, 1919, ...): that
    is the past, known at forecast time. Targets never leave the range.
    """
    if np.shape(series) != np.shape(years):
        raise ValueError(f"series and years should have the same shape (T,), got {np.shape(series)} "
                         f"and {np.shape(years)}")
    X, y = windows(series, p)
    target_years = np.asarray(years)[p:]
    keep = (target_years >= first) & (target_years <= last)
    return X[keep], y[keep], target_years[keep]


@dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` with the mean and standard deviation of the training data only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, train: np.ndarray) -> Standardizer:
        train = np.asarray(train, dtype=np.float64)
        if train.size < 2:
            raise ValueError("need at least two training values to fit a Standardizer")
        return cls(float(train.mean()), float(train.std()))

    def transform(self, x):
        return (x - self.mean) / self.std

    def inverse(self, z):
        return z * self.std + self.mean


def fit_ar(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares AR coefficients ``[w_1 .. w_p, b]`` (p + 1,) for ``y ≈ X @ w + b``."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    require_shape("X", X, ("N", "p"))
    require_shape("y", y, (X.shape[0],))
    design = np.hstack([X, np.ones((len(X), 1))])  # (N, p + 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef


def ar_predict(coef: np.ndarray, X: np.ndarray) -> np.ndarray:
    """One-step AR forecasts ``X @ w + b`` (N,) for windows X (N, p)."""
    X = np.asarray(X, dtype=np.float64)
    require_shape("X", X, ("N", len(coef) - 1))
    return X @ coef[:-1] + coef[-1]


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root mean squared error of two same-shaped arrays."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {pred.shape}, target has shape {target.shape}")
    return float(np.sqrt(np.mean((pred - target) ** 2)))


class RNNForecaster(nn.Module):
    """Many-to-one regression: read a window (B, p) of past values, predict the next (B,)."""

    def __init__(self, hidden: int, *, cell: str = "lstm", num_layers: int = 1) -> None:
        super().__init__()
        self.rnn = recurrent_layer(cell, 1, hidden, num_layers=num_layers)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_shape("x", x, ("B", "p"))
        outputs, _ = self.rnn(x.unsqueeze(-1))  # (B, p, H)
        return self.out(outputs[:, -1]).squeeze(-1)  # (B,)


# ----------------------------------------------------------------------------- several steps ahead (exercise 4)

def recursive_forecast(coef: np.ndarray, history: np.ndarray, steps: int) -> np.ndarray:
    """Forecast ``steps`` values (steps,) with AR coefficients ``[w_1 .. w_p, b]``, feeding predictions back.

    ``history`` (n,), n >= p, holds the known past, oldest first; the window for each step is
    the last p values known or forecast so far, in the order of :func:`windows`.
    """
    coef, history = np.asarray(coef, dtype=np.float64), np.asarray(history, dtype=np.float64)
    p = len(coef) - 1
    require_shape("history", history, ("n",))
    if len(history) < p:
        raise ValueError(f"history has {len(history)} values; AR({p}) needs at least {p}")
    window = list(history[-p:])
    out = []
    for _ in range(steps):
        y = float(np.dot(coef[:-1], window) + coef[-1])  # the window is oldest first, as X rows
        out.append(y)
        window = window[1:] + [y]
    return np.array(out)
