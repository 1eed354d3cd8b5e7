"""Notebook 09b, the exercises on :mod:`course_utils.prefix_scan`.

Checks that name the usual mistakes: ``check_combine_affine``, ``check_hillis_steele_step``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..linear_recurrence import scan_loop
from ..prefix_scan import Pair, combine_affine, hillis_steele_step


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
    fn = refuse_reference(fn, ("combine_affine",))
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
    fn = refuse_reference(fn, ("hillis_steele_step", "hillis_steele_scan", "blelloch_scan", "two_level_scan"))
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
