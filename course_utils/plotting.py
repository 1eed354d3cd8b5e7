"""Plots the notebooks share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .training import History


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """Moving average over ``window`` steps (``window=1`` returns the values unchanged)."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def plot_losses(
    curves: History | Sequence[float] | Mapping[str, History | Sequence[float]],
    *,
    ax: plt.Axes | None = None,
    smooth_window: int = 1,
    logy: bool = False,
    xlabel: str = "step",
    title: str | None = None,
) -> plt.Axes:
    """Plot one loss curve or several side by side.

    ``curves`` is a :class:`History`, a list of losses, or ``{label: either}`` to compare
    models. Validation losses in a History are drawn as markers at the end of each epoch.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    if not isinstance(curves, Mapping):
        curves = {"train": curves}
    for label, curve in curves.items():
        losses = curve.losses if isinstance(curve, History) else list(curve)
        y = smooth(losses, smooth_window)
        x = np.arange(len(y)) + (len(losses) - len(y))  # align the smoothed curve's end
        (line,) = ax.plot(x, y, label=label)
        if isinstance(curve, History) and curve.val_losses:
            epochs = len(curve.val_losses)
            steps = np.linspace(len(losses) / epochs, len(losses), epochs) - 1
            ax.plot(steps, curve.val_losses, "o--", color=line.get_color(), label=f"{label} (val)")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
