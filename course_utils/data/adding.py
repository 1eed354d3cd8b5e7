"""Notebooks 02, 03, 04 and 09 (sections 6, 5, 4 and 5): the adding problem, a long-range memory task.

The adding problem (Hochreiter & Schmidhuber 1997), in its common modern form: each
input step carries two numbers, a value drawn from U[0, 1] and a marker that is 1 at
exactly two steps and 0 elsewhere. The target is the sum of the two marked values. One
marker lies in the first half of the sequence and one in the second, so the model must
carry a value across at least half the sequence. Predicting the constant 1 (the mean of
the target) gives an MSE of Var(u1 + u2) = 2/12 = 1/6: that is the trivial baseline.
Remembering only one of the two marked values, and answering it plus the other's mean 1/2,
leaves the error u_other - 1/2, an MSE of Var(u) = 1/12: a model near 1/12 has learned half
the task (:func:`adding_yardsticks`).
"""

from __future__ import annotations

import torch

BASELINE_MSE = 1.0 / 6.0  # MSE of always predicting 1: Var(U1 + U2) = 2 * 1/12
HALF_TASK_MSE = 1.0 / 12.0  # MSE of remembering one marked value only: u2 + 1/2 misses by u1 - 1/2, Var(U1) = 1/12


def adding_problem(n: int, length: int, *, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` adding-problem sequences of ``length`` steps.

    Returns:
        x: ``(n, length, 2)`` float32; ``x[..., 0]`` the values, ``x[..., 1]`` the markers.
        y: ``(n, 1)`` float32, the sum of the two marked values.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if length < 2:
        raise ValueError(f"length must be at least 2 (one marker per half), got {length}")
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    values = torch.rand(n, length, generator=g)  # (n, T)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=g)  # (n,) a step in [0, T/2)
    second = torch.randint(half, length, (n,), generator=g)  # (n,) a step in [T/2, T)
    markers = torch.zeros(n, length)  # (n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (n, T, 2)
    y = (values * markers).sum(dim=1, keepdim=True)  # (n, 1)
    return x, y


def adding_batches(
    n_batches: int, batch_size: int, length: int, *, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A list of ``n_batches`` fresh ``(x, y)`` batches for :func:`course_utils.fit`."""
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"n_batches and batch_size must be at least 1, got {n_batches} and {batch_size}")
    x, y = adding_problem(n_batches * batch_size, length, seed=seed)
    return list(zip(x.split(batch_size), y.split(batch_size), strict=True))


def adding_yardsticks(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The predictions ``(n, 1)`` of three models that solve the adding problem partly, for ``x (n, T, 2)``.

    ``"constant 1"`` (nothing remembered: MSE 1/6), ``"first marker only"`` and ``"second marker
    only"`` (that value plus the other's mean 1/2: MSE 1/12 each).
    """
    marked = x[..., 0] * x[..., 1]  # (n, T): the values at the two markers, zeros elsewhere
    half = x.shape[1] // 2
    first, second = marked[:, :half].sum(1, keepdim=True), marked[:, half:].sum(1, keepdim=True)  # (n, 1) each
    return {"constant 1": torch.ones_like(first), "first marker only": first + 0.5,
            "second marker only": second + 0.5}
