"""Notebook 06, section 2: attention pooling by similarity, Nadaraya-Watson kernel regression.

The simplest attention has no parameters to learn. Given pairs (key k_i, value v_i) and a
query q, predict the weighted average of the values, each weighted by how close its key is
to the query (Nadaraya 1964, Watson 1964):

    f(q) = sum_i a_i(q) v_i,   a_i(q) = K(q - k_i) / sum_j K(q - k_j)

With the Gaussian kernel K(u) = exp(-u^2 / (2 sigma^2)) the weights are a softmax over the
keys of the scores -(q - k_i)^2 / (2 sigma^2). The bandwidth sigma sets how far the
average reaches: sigma -> infinity gives the plain mean of the values, sigma -> 0 the
value of the nearest key. Everything here is 1-D: queries (Q,), keys and values (K,).

The exercise on this module is in :mod:`course_utils.exercises.kernel_regression`.
"""

from __future__ import annotations

import numpy as np
import torch

from .core.shapes import require_shape
from .forecasting import rmse


def gaussian_scores(queries: torch.Tensor, keys: torch.Tensor, sigma: float) -> torch.Tensor:
    """The scores -(q - k)^2 / (2 sigma^2) of every query against every key: (Q, K)."""
    require_shape("queries", queries, ("Q",))
    require_shape("keys", keys, ("K",))
    if not sigma > 0:
        raise ValueError(f"sigma should be a positive bandwidth, got {sigma!r}")
    return -((queries[:, None] - keys[None, :]) ** 2) / (2 * sigma**2)  # (Q, K)


def gaussian_weights(queries: torch.Tensor, keys: torch.Tensor, sigma: float) -> torch.Tensor:
    """Attention weights (Q, K) of a Gaussian kernel: a softmax over the keys, each row sums to 1.

    ``torch.softmax`` subtracts each row's largest score before ``exp``, so the nearest key
    gets exp(0) = 1 and the ratio stays finite however small sigma is.
    """
    return torch.softmax(gaussian_scores(queries, keys, sigma), dim=-1)  # (Q, K)


def nadaraya_watson(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                    sigma: float) -> torch.Tensor:
    """Nadaraya-Watson estimate at each query: the kernel-weighted average of the values, (Q,)."""
    require_shape("values", values, (len(keys),))
    return gaussian_weights(queries, keys, sigma) @ values  # (Q, K) @ (K,) -> (Q,)


def nadaraya_watson_loop(queries: np.ndarray, keys: np.ndarray, values: np.ndarray, sigma: float) -> np.ndarray:
    """The same estimate as an explicit ratio of kernel sums, one query at a time, in float64: (Q,).

    Written as the formula reads, exp of the raw scores with no shift: a reference for
    moderate sigma, and the version that gives 0 / 0 = NaN once every exp underflows
    (a query farther than about 38.6 sigma from every key, since exp(-745.2) is 0 in float64).
    """
    queries, keys, values = (np.asarray(a, dtype=np.float64) for a in (queries, keys, values))
    out = np.empty(len(queries))
    with np.errstate(invalid="ignore"):  # 0 / 0 is the point of the demonstration
        for n, q in enumerate(queries):
            kernel = np.exp(-((q - keys) ** 2) / (2 * sigma**2))  # (K,)
            out[n] = np.sum(kernel * values) / np.sum(kernel)
    return out


def nearest_neighbour(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The sigma -> 0 limit: the value of the key nearest each query, or the mean over equally near keys: (Q,)."""
    distance = (queries[:, None] - keys[None, :]).abs()  # (Q, K)
    nearest = (distance == distance.min(dim=-1, keepdim=True).values).to(values.dtype)  # (Q, K): 1 at the nearest
    return (nearest @ values) / nearest.sum(dim=-1)


def split_indices(n: int, seed: int, fractions: tuple[float, float] = (0.6, 0.2)) -> tuple[np.ndarray, ...]:
    """A random split of ``range(n)`` into training, validation and test indices (each sorted).

    ``fractions`` are the training and validation shares; the test set is the rest.
    """
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return tuple(np.sort(p) for p in parts)


def validation_errors(x: torch.Tensor, y: torch.Tensor, train: np.ndarray, val: np.ndarray,
                      sigmas: list[float]) -> dict[str, float | dict[float, float]]:
    """Validation RMSE of the two limits and of the kernel at each bandwidth, from the training pairs.

    ``x``, ``y`` (N,) float64; ``train``, ``val`` index arrays. Returns ``{"mean": rmse of the
    training mean, "nearest": rmse of the nearest training key's value, "kernel": {sigma: rmse}}``.
    """
    keys, values, queries, target = x[train], y[train], x[val], y[val]
    return {"mean": rmse(values.mean().expand(len(val)), target),
            "nearest": rmse(nearest_neighbour(queries, keys, values), target),
            "kernel": {s: rmse(nadaraya_watson(queries, keys, values, s), target) for s in sigmas}}
