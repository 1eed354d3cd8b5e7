"""Notebook 09b, sections 1-2 and exercises 1-2: scans as an algorithm, for ``h_t = a_t * h_{t-1} + b_t``.

Step ``t`` of the recurrence is the affine map ``x -> a_t x + b_t``, stored as the pair
``(a_t, b_t)``. Doing ``(a1, b1)`` first and ``(a2, b2)`` second is again an affine map::

    (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)          identity: (1, 0)

This operator is associative (both bracketings give ``(a1 a2 a3, a3 a2 b1 + a3 b2 + b3)``), so
the states ``h_t`` are the prefix "sums" of the pairs under ``o`` (with ``h0`` folded into the
first pair, ``b_1 <- a_1 h0 + b_1``), and any bracketing computes them:

- :func:`hillis_steele_scan`: ``ceil(log2 T)`` steps; step ``k`` combines every element with the
  one ``2^k`` before it (:func:`hillis_steele_step`). Work ``T L - (2^L - 1)`` operator
  applications for ``L = ceil(log2 T)`` steps: O(T log T).
- :func:`blelloch_scan`: pad to ``n = 2^L`` with the identity, an up-sweep (a reduction tree,
  ``L`` steps) and a down-sweep (``L`` steps) that hands every subtree the prefix before it:
  ``2 (n - 1)`` applications in ``2 L`` steps, O(T) work.
- :func:`two_level_scan`: chunks of ``C`` steps; scan inside every chunk (all chunks at once),
  scan the chunks' totals (one chunk after another), then fix up every element with its chunk's
  entering prefix: the structure of :func:`course_utils.linear_recurrence.scan_chunked`.

Every function takes time-major ``a``, ``b`` ``(T, B, H)`` and ``h0`` ``(B, H)`` or None (zeros),
returns ``h_1 .. h_T`` ``(T, B, H)``, and, given a :class:`ScanCost`, adds up the operator
applications (work) and the sequential steps (depth) it ran.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import torch

from .checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from .linear_recurrence import scan_loop
from .shapes import require_shape

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ScanCost:
    """What a scan ran: ``work`` operator applications (one per element combined) in ``depth`` sequential steps."""

    work: int = 0
    depth: int = 0

    def add_step(self, applications: int) -> None:
        """Count one sequential step that applies the operator ``applications`` times (in parallel)."""
        self.work += int(applications)
        self.depth += 1


def combine_affine(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor) -> Pair:
    """``(a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2)``: the map ``x -> a1 x + b1`` first, then ``x -> a2 x + b2``.

    Element by element, any broadcastable shapes.
    """
    return a1 * a2, a2 * b1 + b2


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


def hillis_steele_step(a: torch.Tensor, b: torch.Tensor, offset: int) -> Pair:
    """One Hillis-Steele step: ``x_t <- x_{t - offset} o x_t`` for ``t >= offset``; the first ``offset`` stay.

    ``a``, ``b`` ``(T, ...)``; the elements before the start are the identity ``(1, 0)``.
    """
    a_prev = torch.cat([torch.ones_like(a[:offset]), a[:-offset]])  # (T, ...): a_{t - offset}, 1 before the start
    b_prev = torch.cat([torch.zeros_like(b[:offset]), b[:-offset]])  # (T, ...): b_{t - offset}, 0 before the start
    return combine_affine(a_prev, b_prev, a, b)


def hillis_steele_scan(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None = None, cost: ScanCost | None = None
) -> torch.Tensor:
    """Inclusive scan by doubling offsets 1, 2, 4, ...: ``ceil(log2 T)`` steps, ``T log2 T`` work; returns h (T, B, H).

    Any ``T`` (no padding needed: the identity fills in before the start).
    """
    a, b = _prepare(a, b, h0)
    T, offset = a.shape[0], 1
    while offset < T:
        a, b = hillis_steele_step(a, b, offset)
        if cost is not None:
            cost.add_step(T - offset)  # the first `offset` elements combine with the identity: not counted
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
    T = a.shape[0]
    L = steps_for(T)
    n = 2**L
    a, b = pad_with_identity(a.clone(), b.clone(), n)  # (n, B, H), our own copies to write into
    for d in range(L):  # up-sweep: node (end of a block of 2^(d+1)) <- left half's total o right half's total
        left, right = slice(2**d - 1, n, 2 ** (d + 1)), slice(2 ** (d + 1) - 1, n, 2 ** (d + 1))
        a[right], b[right] = combine_affine(a[left], b[left], a[right], b[right])
        if cost is not None:
            cost.add_step(n // 2 ** (d + 1))
    total = a[-1].clone(), b[-1].clone()  # (B, H): the whole sequence's map
    a[-1], b[-1] = 1.0, 0.0  # the root's prefix-before is the identity
    for d in range(L - 1, -1, -1):  # down-sweep: left child gets the parent's prefix, right gets prefix o left total
        left, right = slice(2**d - 1, n, 2 ** (d + 1)), slice(2 ** (d + 1) - 1, n, 2 ** (d + 1))
        a_left, b_left = a[left].clone(), b[left].clone()  # (n / 2^(d+1), B, H): the left subtrees' totals
        a[left], b[left] = a[right], b[right]
        a[right], b[right] = combine_affine(a[right], b[right], a_left, b_left)
        if cost is not None:
            cost.add_step(n // 2 ** (d + 1))
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
    T = a.shape[0]
    C = max(1, round(math.sqrt(T))) if chunk is None else chunk_size(chunk)
    N = -(-T // C)
    a, b = pad_with_identity(a, b, N * C)
    a_c, b_c = a.unflatten(0, (N, C)), b.unflatten(0, (N, C))  # (N, C, B, H)
    a_in, b_in = [a_c[:, 0]], [b_c[:, 0]]  # level 1: prefixes inside every chunk, all chunks at once
    for c in range(1, C):
        pa, pb = combine_affine(a_in[-1], b_in[-1], a_c[:, c], b_c[:, c])
        a_in.append(pa)
        b_in.append(pb)
        if cost is not None:
            cost.add_step(N)
    a_in, b_in = torch.stack(a_in, 1), torch.stack(b_in, 1)  # (N, C, B, H)
    enter_a, enter_b = [torch.ones_like(a_in[0, 0])], [torch.zeros_like(b_in[0, 0])]  # level 2: chunk totals
    for n in range(1, N):
        ea, eb = combine_affine(enter_a[-1], enter_b[-1], a_in[n - 1, -1], b_in[n - 1, -1])
        enter_a.append(ea)
        enter_b.append(eb)
        if cost is not None:
            cost.add_step(1)
    enter_b = torch.stack(enter_b)[:, None]  # (N, 1, B, H): the prefix map before each chunk
    enter_a = torch.stack(enter_a)[:, None]
    _, h = combine_affine(enter_a, enter_b, a_in, b_in)  # fix-up, every element at once: (N, C, B, H)
    if cost is not None and N > 1:
        cost.add_step((N - 1) * C)  # chunk 0 enters with the identity: not counted
    return h.flatten(0, 1)[:T]


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
    """``{scan: (work, depth)}`` from the formulas, for ``T`` elements (``L = ceil(log2 T)``, ``n = 2^L``)."""
    L = steps_for(T)
    C = max(1, round(math.sqrt(T)))
    N = -(-T // C)
    return {
        "sequential loop": (T - 1, T - 1),
        "Hillis-Steele": (T * L - (2**L - 1), L),
        "Blelloch": (2 * (2**L - 1), 2 * L),
        "two-level (chunks of sqrt T)": (N * (C - 1) + (N - 1) + (N - 1) * C, (C - 1) + (N - 1) + (1 if N > 1 else 0)),
    }


def measured_scan_costs(T: int) -> dict[str, tuple[int, int]]:
    """``{scan: (work, depth)}`` counted by running each scan on a ``(T, 1, 1)`` input."""
    a, b = torch.rand(T, 1, 1, dtype=torch.float64), torch.rand(T, 1, 1, dtype=torch.float64)
    costs = {}
    for name, fn in (("Hillis-Steele", hillis_steele_scan), ("Blelloch", blelloch_scan),
                     ("two-level (chunks of sqrt T)", two_level_scan)):
        cost = ScanCost()
        fn(a, b, cost=cost)
        costs[name] = (cost.work, cost.depth)
    return {"sequential loop": (T - 1, T - 1), **costs}


# ----------------------------------------------------------------------------- exercise 1: the operator

def _combine_affine_mistakes(a1, b1, a2, b2) -> dict[str, Pair]:
    return {
        "apply the maps in the other order, (a2, b2) first: b = a1 b2 + b1. The pair on the left is the earlier "
        "step, so its b1 goes through the later a2": (a1 * a2, a1 * b2 + b1),
        "multiply b1 by its own a1 instead of the later a2 (b = a1 b1 + b2)": (a1 * a2, a1 * b1 + b2),
        "forget to multiply the a's: a composed map scales by a1 a2, not by a2 alone": (a2, a2 * b1 + b2),
        "add the a's instead of multiplying them (a1 + a2): that is the rule for log a, not for a":
            (a1 + a2, a2 * b1 + b2),
        "add the b's without scaling b1 by a2 (b = b1 + b2)": (a1 * a2, b1 + b2),
    }


def check_combine_affine(fn: Any, seed: int = 0) -> None:
    """Test ``fn(a1, b1, a2, b2) -> (a, b)``, the scan's operator (notebook 09b, exercise 1).

    Names the mistake the values match: the order swapped, ``a1 b1`` for ``a2 b1``, ``a2`` for
    ``a1 a2``, a sum of the a's, ``b1`` not scaled; then checks associativity and the identity.
    """
    refuse_reference(fn, ("combine_affine",))
    g = torch.Generator().manual_seed(seed)
    a1, a2, a3 = (torch.rand(4, 3, generator=g, dtype=torch.float64) * 1.5 + 0.2 for _ in range(3))
    b1, b2, b3 = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    got = fn(a1.clone(), b1.clone(), a2.clone(), b2.clone())
    if not (isinstance(got, tuple) and len(got) == 2):
        raise CheckFailed(f"my_combine_affine should return a pair (a, b), but it returned a {type(got).__name__}"
                          + (f" of length {len(got)}" if isinstance(got, (tuple, list)) else ""))
    expected = combine_affine(a1, b1, a2, b2)
    for i, part in enumerate("ab"):
        check_shape(part, got[i], (4, 3))
        mistakes = {hint: pair[i] for hint, pair in _combine_affine_mistakes(a1, b1, a2, b2).items()}
        name_mistake(f"the combined {part}", got[i], expected[i], mistakes)
        check_close(f"the combined {part}", got[i], expected[i], quiet=True)
    left = fn(*fn(a1, b1, a2, b2), a3, b3)
    right = fn(a1, b1, *fn(a2, b2, a3, b3))
    check_close("((x1 o x2) o x3) against (x1 o (x2 o x3))", torch.stack(left), torch.stack(right), quiet=True)
    one, zero = torch.ones_like(a1), torch.zeros_like(b1)
    check_close("(1, 0) o x", torch.stack(fn(one, zero, a1, b1)), torch.stack((a1, b1)), quiet=True)
    print("OK my_combine_affine: the values, associativity, and the identity (1, 0) on both sides")


# ----------------------------------------------------------------------------- exercise 2: a Hillis-Steele step

def _hillis_steele_step_mistakes(a: torch.Tensor, b: torch.Tensor, offset: int) -> dict[str, Pair]:
    def shifted(a_prev, b_prev):
        return combine_affine(a_prev, b_prev, a, b)

    ones, zeros = torch.ones_like(a[:offset]), torch.zeros_like(b[:offset])
    after_a, after_b = torch.cat([a[offset:], ones]), torch.cat([b[offset:], zeros])
    m = {
        "shift the wrong way: x_t must combine with the element offset steps *before* it, x_(t - offset)":
            shifted(after_a, after_b),
        "combine in the wrong order, x_t o x_(t - offset): the earlier element goes on the left":
            combine_affine(a, b, torch.cat([ones, a[:-offset]]), torch.cat([zeros, b[:-offset]])),
        "wrap around with torch.roll: the first offset elements must combine with the identity (1, 0), not "
        "with the end of the sequence": shifted(torch.roll(a, offset, 0), torch.roll(b, offset, 0)),
        "pad the start with zeros for a as well: the identity is (1, 0), and a = 0 wipes out the prefix":
            shifted(torch.cat([zeros, a[:-offset]]), torch.cat([zeros, b[:-offset]])),
    }
    for wrong, label in ((offset + 1, "offset + 1"), (offset - 1, "offset - 1")):
        if 1 <= wrong < a.shape[0]:
            m[f"use an offset of {label}: x_t combines with x_(t - offset), offset = {offset} here"] = \
                hillis_steele_step(a, b, wrong)
    return m


def check_hillis_steele_step(fn: Any, seed: int = 0) -> None:
    """Test ``fn(a (T, B, H), b (T, B, H), offset) -> (a, b)``, one Hillis-Steele step (notebook 09b, exercise 2).

    Names the mistake the values match: the wrong direction, the wrong order, a wrap-around or
    a zero ``a`` at the boundary instead of the identity, an off-by-one offset. Then runs the
    whole scan with ``fn`` and compares it with the loop.
    """
    refuse_reference(fn, ("hillis_steele_step", "hillis_steele_scan", "blelloch_scan", "two_level_scan"))
    g = torch.Generator().manual_seed(seed)
    for T, offset in ((10, 2), (10, 4), (7, 1)):
        a = torch.rand(T, 2, 3, generator=g, dtype=torch.float64) + 0.3  # (T, B, H)
        b = torch.randn(T, 2, 3, generator=g, dtype=torch.float64)
        got = fn(a.clone(), b.clone(), offset)
        name = f"the step's {{}} (T={T}, offset={offset})"
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"my_hillis_steele_step should return a pair (a, b), got a {type(got).__name__}")
        expected = hillis_steele_step(a, b, offset)
        for i, part in enumerate("ab"):
            check_shape(name.format(part), got[i], (T, 2, 3))
            mistakes = {hint: pair[i] for hint, pair in _hillis_steele_step_mistakes(a, b, offset).items()}
            name_mistake(name.format(part), got[i], expected[i], mistakes)
            check_close(name.format(part), got[i], expected[i], quiet=True)
    a = torch.rand(13, 2, 3, generator=g, dtype=torch.float64) + 0.3
    b = torch.randn(13, 2, 3, generator=g, dtype=torch.float64)
    x, offset = (a, b), 1
    while offset < 13:
        x, offset = fn(*x, offset), 2 * offset
    check_close("the whole scan from your steps (T=13), against the loop", x[1], scan_loop(a, b), quiet=True)
    print("OK my_hillis_steele_step: three steps, and a whole scan of 13 steps equals the loop")
