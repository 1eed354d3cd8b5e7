"""Notebook 08c, section 2: top-k and top-p (nucleus) sampling, and measures of what they give.

- :func:`filter_logits`: ``(B, V)`` logits with every token outside each row's top ``k`` and
  outside the smallest set of likeliest tokens whose probability reaches ``p`` set to ``-inf``;
- :func:`sample_token`: temperature, then the filter, then one draw per row;
- :func:`distinct_ngrams`: the share of distinct character n-grams in samples (diversity);
- exercise: :func:`check_filter_logits`.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.sampling`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .core.shapes import require_shape
from .shared.lm import sample_next


def _validate_filter_args(top_k: int | None, top_p: float | None, temperature: float = 1.0) -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))):
        raise TypeError(f"top_k must be a whole number >= 1 or None, got {top_k!r} ({type(top_k).__name__})")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 (keep at least the likeliest token) or None, got {top_k}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must lie in (0, 1] (the probability mass to keep) or be None, got {top_p!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def top_k_mask(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(B, V) bools, True at each row's ``k`` largest logits (and any tied with the k-th)."""
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[:, -1:]  # (B, 1)
    return logits >= kth


def top_p_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    """(B, V) bools, True at the nucleus: the smallest set of likeliest tokens whose probability reaches ``p``.

    In order of probability, tokens are kept while the mass before them is below ``p``: the
    token that crosses ``p`` is kept, so the likeliest token always is (Holtzman et al., 2020).
    The set is exactly that prefix of the sorted row: tokens tied with the last kept one are
    not added. Among tied tokens the sort is stable, so the lower index comes first.
    """
    probs = torch.softmax(logits.double(), dim=-1)  # (B, V)
    sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)  # (B, V)
    before = sorted_p.cumsum(dim=-1) - sorted_p  # (B, V): mass of the likelier tokens
    return torch.zeros_like(probs, dtype=torch.bool).scatter(1, order, before < p)  # the prefix, in place


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """``logits (B, V)`` with the tokens outside top-k and outside the top-p nucleus set to ``-inf``.

    ``None`` switches a filter off; with both, a token must pass both. Works on logits, so the
    kept tokens' softmax is renormalised over the kept set.
    """
    require_shape("logits", logits, ("B", "V"))
    _validate_filter_args(top_k, top_p)
    keep = torch.ones_like(logits, dtype=torch.bool)  # (B, V)
    if top_k is not None:
        keep &= top_k_mask(logits, top_k)
    if top_p is not None:
        keep &= top_p_mask(logits, top_p)
    return logits.masked_fill(~keep, float("-inf"))


def sample_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of ``logits (B, V)``: divide by ``temperature``, filter, draw. Returns ``(B,)``."""
    require_shape("logits", logits, ("B", "V"))
    _validate_filter_args(top_k, top_p, temperature)
    return sample_next(filter_logits(logits / temperature, top_k, top_p), 1.0, generator)


def distinct_ngrams(texts: Sequence[str], n: int) -> float:
    """Distinct-n: the number of different character n-grams over the number of n-grams, pooled over ``texts``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    if not grams:
        raise ValueError(f"the texts are shorter than n = {n}: no n-grams to count")
    return len(set(grams)) / len(grams)
