"""Notebook 08c, the exercises on :mod:`course_utils.sampling`.

Checks that name the usual mistakes: ``check_filter_logits``.
"""

from __future__ import annotations

import torch

from ..core.checks import CheckFailed, check_close, check_shape, check_type, name_mistake, refuse_reference
from ..sampling import filter_logits, top_k_mask, top_p_mask


def _filter_mistakes(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> dict[str, torch.Tensor | None]:
    """What the usual wrong filters return for ``logits (B, V)``."""
    probs = torch.softmax(logits, dim=-1)
    right = filter_logits(logits, top_k, top_p)
    keep = torch.isfinite(right)
    mistakes: dict[str, torch.Tensor | None] = {
        "return probabilities (softmax, with zeros outside the kept set) instead of logits with -inf":
            probs.masked_fill(~keep, 0.0),
        "return probabilities (the softmax of the filtered logits) instead of the filtered logits":
            torch.softmax(right, dim=-1),
        "set the dropped logits to 0 instead of -inf (a logit of 0 still has probability e^0 / Z)":
            logits.masked_fill(~keep, 0.0),
    }
    if top_p is not None:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(dim=-1)
        for hint, kept_sorted in {
            "keep the tokens whose cumulative probability (including themselves) is below p or at most p: that drops "
            "the token that crosses p, and can drop even the likeliest; the token that crosses p must be kept "
            "(compare the mass *before* each token with p)": cum <= top_p,
            "keep every token tied with the last one kept: the nucleus is the *smallest* set whose probability "
            "reaches p, so of tokens tied where it ends only as many are kept as the set needs":
                sorted_p >= sorted_p.masked_fill(~(cum - sorted_p < top_p), float("inf")).min(-1, keepdim=True).values,
        }.items():
            nucleus = torch.zeros_like(keep).scatter(1, order, kept_sorted)
            if top_k is not None:
                nucleus &= top_k_mask(logits, top_k)
            mistakes[hint] = logits.masked_fill(~nucleus, float("-inf"))
    if top_k is not None and logits.shape[0] > 1:
        flat = logits.flatten()
        kth = flat.topk(min(top_k, flat.numel())).values[-1]
        batch_keep = logits >= kth
        if top_p is not None:
            batch_keep &= top_p_mask(logits, top_p)
        mistakes["take the k largest logits of the whole batch instead of each row's (topk along dim=-1)"] = \
            logits.masked_fill(~batch_keep, float("-inf"))
    return mistakes


def _filter_cases(seed: int) -> list[tuple[str, torch.Tensor, int | None, float | None]]:
    g = torch.Generator().manual_seed(seed)
    rows = torch.randn(4, 12, generator=g, dtype=torch.float64) * 2
    rows[1] += 4 * torch.arange(12) / 12  # rows on different scales: a batch-wide top-k keeps row 1 only
    halves = torch.tensor([[2.0, 1.0, 0.0, 0.0, -1.0]], dtype=torch.float64).log1p()  # plain row, no exact ties at p
    eighths = torch.tensor([[0.125, 0.5, 0.125, 0.25]], dtype=torch.float64).log()  # two tokens tie where the set ends
    return [
        ("top_k=3 on 4 rows", rows, 3, None),
        ("top_p=0.6 on 4 rows", rows, None, 0.6),
        ("top_p=0.9 on 4 rows", rows * 0.5, None, 0.9),
        ("top_k=5, top_p=0.8 on 4 rows", rows, 5, 0.8),
        ("top_p=0.05 (less than the likeliest token's probability)", halves, None, 0.05),
        ("top_k=1 (greedy)", rows, 1, None),
        ("top_p=0.8 on probabilities 1/8, 1/2, 1/8, 1/4 (a tie where the nucleus ends)", eighths, None, 0.8),
    ]


def _other_smallest_set(got_keep: torch.Tensor, expected_keep: torch.Tensor, logits: torch.Tensor) -> bool:
    """True when ``got_keep`` is also a smallest set of likeliest tokens: same size per row, none
    dropped likelier than one kept (it differs from the expected set only in which tied tokens it keeps)."""
    probs = torch.softmax(logits, dim=-1)
    same_size = torch.equal(got_keep.sum(-1), expected_keep.sum(-1))
    lowest_kept = probs.masked_fill(~got_keep, float("inf")).min(-1).values
    highest_dropped = probs.masked_fill(got_keep, float("-inf")).max(-1).values
    return same_size and bool((lowest_kept >= highest_dropped).all())


def check_filter_logits(fn, seed: int = 0) -> None:
    """Test ``fn(logits (B, V), top_k, top_p) -> (B, V)`` against :func:`filter_logits` (notebook 08c, exercise 2).

    Names the usual mistakes: probabilities returned instead of logits, dropped logits set to
    0, the token that crosses ``p`` dropped (cumulative mass including the token compared with
    ``p``), every token tied with the last one kept (the nucleus is the smallest set; which of
    the tied tokens is kept is free), top-k over the whole batch instead of per row.
    """
    fn = refuse_reference(fn, ("filter_logits", "top_k_mask", "top_p_mask", "_top_k", "sample_token"))
    for label, logits, k, p in _filter_cases(seed):
        name = f"my_filter_logits with {label}"
        got = fn(logits.clone(), k, p)
        check_type(name, got, torch.Tensor)
        check_shape(name, got, tuple(logits.shape))
        expected = filter_logits(logits, k, p)
        if k is None and _other_smallest_set(torch.isfinite(got), torch.isfinite(expected), logits):
            expected = logits.masked_fill(~torch.isfinite(got), float("-inf"))  # which of tied tokens: either
        name_mistake(name, got, expected, _filter_mistakes(logits, k, p))
        if not torch.equal(torch.isfinite(got), torch.isfinite(expected)):
            row = int((torch.isfinite(got) != torch.isfinite(expected)).any(-1).nonzero()[0, 0])
            raise CheckFailed(f"{name} keeps tokens {torch.isfinite(got[row]).nonzero()[:, 0].tolist()} of row {row}; "
                              f"expected {torch.isfinite(expected[row]).nonzero()[:, 0].tolist()}.")
        kept = torch.isfinite(expected)
        check_close(f"the kept logits of {name}", got[kept], expected[kept], quiet=True)
    print(f"OK my_filter_logits: {len(_filter_cases(seed))} cases (top-k, top-p, both, a tiny p, greedy, a tie)")
