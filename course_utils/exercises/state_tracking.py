"""Notebook 09b, the exercises on :mod:`course_utils.state_tracking`.

Checks that name the usual mistakes: ``check_parity_scan_inputs``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..linear_recurrence import scan_loop


def _scan_of(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    return scan_loop(a, b, h0)  # (T, B, H)


def _parity_mistakes(bits: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong ``(a, b, h0)`` give through the scan, each ``h`` ``(T, B, H)``."""
    zeros, ones = torch.zeros_like(bits), torch.ones_like(bits[0])
    return {
        "use a_t = 1 - x_t (0 on a one) instead of 1 - 2 x_t: a one must flip the sign (a = -1), not erase the "
        "state (a = 0)": _scan_of(1 - bits, zeros, ones),
        "use a_t = 1 - x_t / 2, a decay in (0, 1]: with a_t > 0 the state never changes sign, so it cannot "
        "alternate; a one needs a_t = -1": _scan_of(1 - bits / 2, zeros, ones),
        "start from h0 = 0: with b = 0 every h_t is then 0, whatever the bits (h0 = 1)": _scan_of(
            1 - 2 * bits, zeros, torch.zeros_like(ones)),
        "flip the sign on a zero (a_t = 2 x_t - 1) instead of on a one (a_t = 1 - 2 x_t)": _scan_of(
            2 * bits - 1, zeros, ones),
        "put the bit into b (a_t = 1, b_t = x_t): that counts the ones, it does not track their parity": _scan_of(
            torch.ones_like(bits), bits, ones),
        "start from h0 = -1 instead of 1: h_t must be (-1)^(ones so far), +1 before any one": _scan_of(
            1 - 2 * bits, zeros, -ones),
    }


def check_parity_scan_inputs(fn: Any, seed: int = 0) -> None:
    """Test ``fn(bits (T, B, 1)) -> (a (T, B, 1), b (T, B, 1), h0 (B, 1))`` (notebook 09b, exercise 5).

    Runs the scan on what ``fn`` returns (float64, lengths 1, 7 and 200) and compares
    ``h_t`` with ``(-1)^(ones in x_1 .. x_t)``; names the mistake it matches: a decay in
    ``(0, 1)`` or a ``0`` on a one, ``h0 = 0`` or ``-1``, the flip on zeros, a count in ``b``.
    """
    fn = refuse_reference(fn, ("parity_scan_inputs",))
    g = torch.Generator().manual_seed(seed)
    for T, B in ((7, 5), (1, 3), (200, 4)):
        bits = torch.randint(0, 2, (T, B, 1), generator=g).double()  # (T, B, 1)
        got = fn(bits.clone())
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailed("return the triple (a, b, h0): a and b of shape (T, B, 1), h0 of shape (B, 1); got a "
                              f"{type(got).__name__}" + (f" of {len(got)}" if isinstance(got, tuple) else ""))
        a, b, h0 = got
        for name, value, shape in (("a", a, (T, B, 1)), ("b", b, (T, B, 1)), ("h0", h0, (B, 1))):
            check_shape(f"{name} (T={T}, B={B})", value, shape)
        a, b, h0 = (torch.as_tensor(v).double() for v in (a, b, h0))
        expected = (-1.0) ** bits.cumsum(0)  # (T, B, 1)
        h = _scan_of(a, b, h0)
        name = f"h_t from your (a, b, h0), T={T}"
        name_mistake(name, h, expected, _parity_mistakes(bits) if T > 1 else {})
        if T > 1 and bool((a >= 0).all()) and not torch.allclose(h, expected):
            raise CheckFailed(f"{name} is off, and every a_t you return is >= 0: then h_t never changes sign. "
                              "A one must flip the sign of the state: a_t = -1 where x_t = 1")
        check_close(name, h, expected, quiet=True)
    print("OK (a, b, h0): the scan gives h_t = (-1)^(ones so far) at lengths 7, 1 and 200")
