"""Notebook 09b, sections 1-2 and exercises 1-2: scans as an algorithm, for ``h_t = a_t * h_{t-1} + b_t``.

Step ``t`` of the recurrence is the affine map ``x -> a_t x + b_t``, stored as the pair
``(a_t, b_t)``. Doing ``(a1, b1)`` first and ``(a2, b2)`` second is again an affine map::

    (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)          identity: (1, 0)

This operator is associative (both bracketings give ``(a1 a2 a3, a3 a2 b1 + a3 b2 + b3)``), so
the states ``h_t`` are the prefix "sums" of the pairs under ``o`` (with ``h0`` folded into the
first pair, ``b_1 <- a_1 h0 + b_1``), and any bracketing computes them:

- :func:`sequential_scan`: the loop, one pair after another: ``T - 1`` applications in ``T - 1`` rounds.
- :func:`hillis_steele_scan`: ``ceil(log2 T)`` steps; step ``k`` combines every element with the
  one ``2^k`` before it (:func:`hillis_steele_step`). Work ``T L`` operator applications for
  ``L = ceil(log2 T)`` steps, of which ``2^L - 1`` combine with the identity before the start: O(T log T).
- :func:`blelloch_scan`: pad to ``n = 2^L`` with the identity, an up-sweep (a reduction tree,
  ``L`` steps) and a down-sweep (``L`` steps) that hands every subtree the prefix before it:
  ``2 (n - 1)`` applications (padding included) in ``2 L`` steps, O(T) work.
- :func:`two_level_scan`: chunks of ``C`` steps; scan inside every chunk (all chunks at once),
  scan the chunks' totals (one chunk after another), then fix up every element with its chunk's
  entering prefix: the structure of :func:`course_utils.linear_recurrence.scan_chunked`, which
  keeps only the chunks' totals and runs the recurrence inside the chunks again instead of
  storing their prefixes (depth about ``3 sqrt(T)`` against ``2 sqrt(T)``, less memory).

Every function takes time-major ``a``, ``b`` ``(T, B, H)`` and ``h0`` ``(B, H)`` or None (zeros),
returns ``h_1 .. h_T`` ``(T, B, H)``, and, given a :class:`ScanCost`, counts what it ran: every
call of the operator goes through :func:`counting_combine`, which adds the pairs it combined
(work: time positions, each over all ``B H`` lanes, identity fillers included, and separately
how many of them had an identity filler on one side) and one round (depth: the calls run one
after another, the pairs of a call all at once). Nothing is tallied by hand.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.prefix_scan`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .core.shapes import require_shape

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ScanCost:
    """What a scan ran, counted by :func:`counting_combine`: ``work`` pairs combined by the operator (time
    positions; identity fillers included), ``with_identity`` of them with an identity filler ``(1, 0)`` on one
    side (padding, before the start, the root's empty prefix), and ``depth`` rounds (operator calls, one after
    another)."""

    work: int = 0
    depth: int = 0
    with_identity: int = 0


def combine_affine(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> Pair:
    """``(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)``: the map ``x -> a1 x + b1`` first, then ``x -> a2 x + b2``.

    Element by element, any broadcastable shapes.
    """
    return a1 * a2, a2 * b1 + b2


Combine = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], Pair]


def counting_combine(cost: ScanCost | None, lanes: int) -> Combine:
    """:func:`combine_affine`, counting into ``cost`` what each call combines (``combine_affine`` itself if None).

    A call's operands broadcast to ``(..., lanes)`` numbers, ``lanes = B H`` per time position: the call
    adds ``numel / lanes`` pairs to ``cost.work``, the pairs whose left or right operand is the identity
    ``(1, 0)`` in every lane to ``cost.with_identity``, and one round to ``cost.depth``.
    """
    if cost is None:
        return combine_affine

    def combine(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> Pair:
        shape = torch.broadcast_shapes(a1.shape, b1.shape, a2.shape, b2.shape)
        identity = ((a1 == 1) & (b1 == 0)).expand(shape) | ((a2 == 1) & (b2 == 0)).expand(shape)
        pairs = identity.reshape(-1, lanes)  # (positions, B H)
        cost.work += pairs.shape[0]
        cost.with_identity += int(pairs.all(dim=1).sum())
        cost.depth += 1
        return combine_affine(a1, b1, a2, b2)

    return combine


def _prepare(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None) -> Pair:
    """Check shapes and fold ``h0`` into the first pair: ``b_1 <- a_1 h0 + b_1`` (not counted as work)."""
    require_shape("a", a, ("T", "B", "H"))
    if a.shape[0] < 1:
        raise ValueError(f"a has {a.shape[0]} time steps; a scan needs at least one")
    require_shape("b", b, tuple(a.shape))
    if h0 is None:
        return a, b
    require_shape("h0", h0, tuple(a.shape[1:]))
    return a, torch.cat([(a[0] * h0 + b[0])[None], b[1:]])  # (T, B, H)


def steps_for(T: int) -> int:
    """``L = ceil(log2 T)``: the doubling steps a log-depth scan of ``T`` elements needs (0 for T = 1)."""
    return max(0, math.ceil(math.log2(T))) if T > 0 else 0


def sequential_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, cost: ScanCost | None = None
) -> torch.Tensor:
    """The loop written with the operator: ``x_t <- x_{t-1} o x_t``, one pair per round; returns h (T, B, H)."""
    a, b = _prepare(a, b, h0)
    combine = counting_combine(cost, a[0].numel())
    prefix, hs = (a[0], b[0]), [b[0]]
    for a_t, b_t in zip(a[1:], b[1:], strict=True):  # each (B, H)
        prefix = combine(*prefix, a_t, b_t)
        hs.append(prefix[1])
    return torch.stack(hs)  # (T, B, H)


def hillis_steele_step(a: torch.Tensor, b: torch.Tensor, offset: int, combine: Combine = combine_affine) -> Pair:
    """One Hillis-Steele step: ``x_t <- x_{t - offset} o x_t`` for ``t >= offset``; the first ``offset`` stay.

    ``a``, ``b`` ``(T, ...)``; the elements before the start are the identity ``(1, 0)``. ``combine``: the
    operator (a :func:`counting_combine` to count).
    """
    a_prev = torch.cat([torch.ones_like(a[:offset]), a[:-offset]])  # (T, ...): a_{t - offset}, 1 before the start
    b_prev = torch.cat([torch.zeros_like(b[:offset]), b[:-offset]])  # (T, ...): b_{t - offset}, 0 before the start
    return combine(a_prev, b_prev, a, b)


def hillis_steele_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, cost: ScanCost | None = None
) -> torch.Tensor:
    """Inclusive scan by doubling offsets 1, 2, 4, ...: ``ceil(log2 T)`` steps, ``T log2 T`` work; returns h (T, B, H).

    Any ``T`` (no padding needed: the identity fills in before the start; each step still combines all
    ``T`` positions, the first ``offset`` of them with the identity).
    """
    a, b = _prepare(a, b, h0)
    combine = counting_combine(cost, a[0].numel())
    T, offset = a.shape[0], 1
    while offset < T:
        a, b = hillis_steele_step(a, b, offset, combine)
        offset *= 2
    return b  # (T, B, H): b of the prefix map from h = 0 is h_t


def pad_with_identity(a: torch.Tensor, b: torch.Tensor, length: int) -> Pair:
    """Append identity pairs ``(1, 0)`` along time up to ``length`` steps: they leave every prefix unchanged."""
    extra = length - a.shape[0]
    if extra < 0:
        raise ValueError(f"length must be at least the {a.shape[0]} steps of a, got {length}")
    ones = torch.ones((extra, *a.shape[1:]), dtype=a.dtype, device=a.device)
    zeros = torch.zeros((extra, *b.shape[1:]), dtype=b.dtype, device=b.device)
    return torch.cat([a, ones]), torch.cat([b, zeros])


def blelloch_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, cost: ScanCost | None = None
) -> torch.Tensor:
    """Work-efficient scan (Blelloch 1990): up-sweep, then down-sweep; ``2 (n - 1)`` work, ``2 log2 n`` steps.

    ``T`` is padded to ``n = 2^ceil(log2 T)`` with the identity. The down-sweep gives the
    exclusive prefixes; the inclusive ones are those shifted by one, the last being the total
    the up-sweep left at the root. Returns h (T, B, H).
    """
    a, b = _prepare(a, b, h0)
    combine = counting_combine(cost, a[0].numel())
    T = a.shape[0]
    L = steps_for(T)
    n = 2**L
    a, b = pad_with_identity(a.clone(), b.clone(), n)  # (n, B, H), our own copies to write into
    for d in range(L):  # up-sweep: node (end of a block of 2^(d+1)) <- left half's total o right half's total
        left, right = slice(2**d - 1, n, 2 ** (d + 1)), slice(2 ** (d + 1) - 1, n, 2 ** (d + 1))
        a[right], b[right] = combine(a[left], b[left], a[right], b[right])
    total = a[-1].clone(), b[-1].clone()  # (B, H): the whole sequence's map
    a[-1], b[-1] = 1.0, 0.0  # the root's prefix-before is the identity
    for d in range(L - 1, -1, -1):  # down-sweep: left child gets the parent's prefix, right gets prefix o left total
        left, right = slice(2**d - 1, n, 2 ** (d + 1)), slice(2 ** (d + 1) - 1, n, 2 ** (d + 1))
        a_left, b_left = a[left].clone(), b[left].clone()  # (n / 2^(d+1), B, H): the left subtrees' totals
        a[left], b[left] = a[right], b[right]
        a[right], b[right] = combine(a[right], b[right], a_left, b_left)
    h = torch.cat([b[1:], total[1][None]])  # (n, B, H): inclusive prefix t = exclusive prefix t + 1
    return h[:T]


def two_level_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, chunk: int | None = None,
    cost: ScanCost | None = None,
) -> torch.Tensor:
    """The chunked scan written with the operator: scan in chunks, scan the chunk totals, fix up; h (T, B, H).

    ``T`` is padded with the identity to a multiple of ``chunk`` (default ``round(sqrt(T))``).
    Work about ``2 T``, depth ``(C - 1) + (N - 1) + 1`` for ``N`` chunks of ``C``.
    """
    a, b = _prepare(a, b, h0)
    combine = counting_combine(cost, a[0].numel())
    T = a.shape[0]
    C = max(1, round(math.sqrt(T))) if chunk is None else chunk_size(chunk)
    N = -(-T // C)
    a, b = pad_with_identity(a, b, N * C)
    a_c, b_c = a.unflatten(0, (N, C)), b.unflatten(0, (N, C))  # (N, C, B, H)
    a_in, b_in = [a_c[:, 0]], [b_c[:, 0]]  # level 1: prefixes inside every chunk, all chunks at once
    for c in range(1, C):
        pa, pb = combine(a_in[-1], b_in[-1], a_c[:, c], b_c[:, c])
        a_in.append(pa)
        b_in.append(pb)
    a_in, b_in = torch.stack(a_in, 1), torch.stack(b_in, 1)  # (N, C, B, H)
    enter_a, enter_b = [torch.ones_like(a_in[0, 0])], [torch.zeros_like(b_in[0, 0])]  # level 2: chunk totals
    for n in range(1, N):
        ea, eb = combine(enter_a[-1], enter_b[-1], a_in[n - 1, -1], b_in[n - 1, -1])
        enter_a.append(ea)
        enter_b.append(eb)
    enter_b = torch.stack(enter_b)[:, None]  # (N, 1, B, H): the prefix map before each chunk
    enter_a = torch.stack(enter_a)[:, None]
    _, h = combine(enter_a, enter_b, a_in, b_in)  # fix-up, every element at once (chunk 0 with the identity)
    return h.flatten(0, 1)[:T]  # (T, B, H)


def chunk_size(chunk: Any) -> int:
    """``chunk`` as a chunk length for the chunked scans: an integer >= 1, else a ValueError that says so."""
    try:
        value = operator.index(chunk)
    except TypeError:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}") from None
    if value < 1:
        raise ValueError(f"chunk must be an integer >= 1, got {chunk!r}")
    return value


def scan_cost_formulas(T: int) -> dict[str, tuple[int, int]]:
    """``{scan: (work, depth)}`` in closed form for ``T`` elements: every pair the operator combines, padding and
    other identity fillers included (``L = ceil(log2 T)``, ``n = 2^L``; ``N`` chunks of ``C = round(sqrt T)``)."""
    L = steps_for(T)
    C = max(1, round(math.sqrt(T)))
    N = -(-T // C)
    return {
        "sequential loop": (T - 1, T - 1),
        "Hillis-Steele": (T * L, L),
        "Blelloch": (2 * (2**L - 1), 2 * L),
        "two-level (chunks of sqrt T)": (N * (C - 1) + (N - 1) + N * C, (C - 1) + (N - 1) + 1),
    }


SCANS_COUNTED = {"sequential loop": sequential_scan, "Hillis-Steele": hillis_steele_scan, "Blelloch": blelloch_scan,
                 "two-level (chunks of sqrt T)": two_level_scan}


def measured_scan_costs(T: int, B: int = 1, H: int = 1) -> dict[str, ScanCost]:
    """``{scan: ScanCost}`` counted by running each scan on random ``(T, B, H)`` inputs (float64, ``a`` in
    (0.5, 1), ``b`` in (0.5, 1): no real pair is the identity)."""
    g = torch.Generator().manual_seed(T)
    a = torch.rand(T, B, H, generator=g, dtype=torch.float64) * 0.5 + 0.5
    b = torch.rand(T, B, H, generator=g, dtype=torch.float64) * 0.5 + 0.5
    costs = {}
    for name, fn in SCANS_COUNTED.items():
        costs[name] = ScanCost()
        fn(a, b, cost=costs[name])
    return costs
