"""Notebook 06, the exercise on :mod:`course_utils.kernel_regression`.

``check_nadaraya_watson`` names the usual mistakes of a Gaussian attention pooling.
"""

from __future__ import annotations

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..kernel_regression import gaussian_scores, nadaraya_watson


def _nw_mistakes(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                 sigma: float) -> dict[str, torch.Tensor]:
    """What the usual wrong Nadaraya-Watson estimates return, (Q,) each (NaNs kept: name_mistake matches them)."""
    diff2 = (queries[:, None] - keys[None, :]) ** 2  # (Q, K)
    scores = -diff2 / (2 * sigma**2)
    kernel = torch.exp(scores)  # no max-shift: all zeros in a row once every score is below -745
    return {
        "take the softmax over the queries (dim=0) instead of over the keys (dim=-1): each query's weights "
        "must sum to 1 over the keys": torch.softmax(scores, dim=0) @ values,
        "drop the minus sign: the score is -(q - k)^2 / (2 sigma^2), so that near keys get the largest weights":
            torch.softmax(diff2 / (2 * sigma**2), dim=-1) @ values,
        "divide by 2 sigma instead of 2 sigma^2: the Gaussian kernel is exp(-(q - k)^2 / (2 sigma^2))":
            torch.softmax(-diff2 / (2 * sigma), dim=-1) @ values,
        "divide by sigma^2 instead of 2 sigma^2: the Gaussian kernel is exp(-(q - k)^2 / (2 sigma^2))":
            torch.softmax(-diff2 / sigma**2, dim=-1) @ values,
        "leave the weights unnormalised (sum of kernel * value): divide by the sum of the kernel over the keys, "
        "so each query's weights sum to 1": kernel @ values,
        "exponentiate the scores without subtracting each query's largest score first: for a small sigma every "
        "exp underflows to 0 and 0 / 0 is NaN (torch.softmax shifts for you)": (kernel @ values) / kernel.sum(-1),
    }


def _fixture(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries (6,), keys (9,) and noisy values (9,) in float64; no two keys equally near a query."""
    g = torch.Generator().manual_seed(seed)
    keys = torch.sort(torch.rand(9, generator=g, dtype=torch.float64) * 5).values  # (K,)
    values = torch.sin(keys) + 0.3 * torch.randn(9, generator=g, dtype=torch.float64)  # (K,)
    queries = torch.rand(6, generator=g, dtype=torch.float64) * 5  # (Q,)
    return queries, keys, values


def _call(fn, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, sigma: float) -> torch.Tensor:
    got = fn(queries.clone(), keys.clone(), values.clone(), sigma)
    if isinstance(got, tuple):
        raise CheckFailed(f"return the estimates alone (one tensor of shape {(len(queries),)}), not a tuple")
    check_shape("estimates", got, (len(queries),))
    return got


def check_nadaraya_watson(fn, seed: int = 0) -> None:
    """Test ``fn(queries (Q,), keys (K,), values (K,), sigma) -> estimates (Q,)`` against :func:`nadaraya_watson`.

    Two calls on float64 data: a moderate bandwidth (sigma = 0.7), then a tiny one (sigma = 0.005)
    with queries 0.3 to 1.1 beyond the keys' ends, where a kernel ratio without the
    max-shift is 0 / 0. Fails naming the usual mistakes: the softmax over the queries, the
    minus sign dropped, sigma or sigma^2 where 2 sigma^2 is meant, unnormalised weights, no max-shift.
    """
    fn = refuse_reference(fn, ("nadaraya_watson", "nadaraya_watson_loop", "gaussian_weights", "gaussian_scores",
                               "nearest_neighbour"))
    queries, keys, values = _fixture(seed)
    sigma = 0.7
    got = _call(fn, queries, keys, values, sigma)
    expected = nadaraya_watson(queries, keys, values, sigma)
    name_mistake("estimates", got, expected, _nw_mistakes(queries, keys, values, sigma))
    check_close("estimates (sigma = 0.7)", got, expected, quiet=True)

    far = torch.cat([keys.min() - torch.tensor([0.3, 0.8], dtype=torch.float64),
                     keys.max() + torch.tensor([0.4, 1.1], dtype=torch.float64)])  # (4,): beyond both ends
    sigma = 0.005
    assert bool((gaussian_scores(far, keys, sigma).max(-1).values < -745.2).all())  # exp underflows: 0 / 0
    got = _call(fn, far, keys, values, sigma)
    expected = nadaraya_watson(far, keys, values, sigma)  # the nearest key's value
    name_mistake("estimates", got, expected, _nw_mistakes(far, keys, values, sigma))
    if torch.as_tensor(got).isnan().any():
        raise CheckFailed("estimates are NaN for a small sigma (0.005): subtract each query's largest score before "
                          "exp, or use torch.softmax, which does")
    check_close("estimates (sigma = 0.005, the nearest key's value)", got, expected, quiet=True)
    print(f"OK my_nadaraya_watson: {len(queries)} queries at sigma = 0.7, {len(far)} far ones at sigma = 0.005")
