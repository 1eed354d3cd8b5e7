"""Every notebook: the plots the notebooks share (loss curves; 05a's confusion matrix)."""

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


def plot_confusion(cm: np.ndarray, classes: Sequence[str], ax=None, title: str | None = None):
    """Row-normalised confusion matrix (each row: where the examples of one class went)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    rates = cm / cm.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax
