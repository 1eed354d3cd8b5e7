"""Notebook 09, the exercises on :mod:`course_utils.linear_recurrence`.

Checks that name the usual mistakes: ``check_scan_cumprod``.
"""

from __future__ import annotations

import dis
from types import CodeType
from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..linear_recurrence import scan_loop


def _loops(code: CodeType) -> bool:
    """Whether a function's code (nested functions and comprehensions included) runs a ``for`` or ``while`` loop."""
    loop_ops = ("FOR_ITER", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
    if any(ins.opname in loop_ops for ins in dis.get_instructions(code)):
        return True
    return any(isinstance(const, CodeType) and _loops(const) for const in code.co_consts)


def _cumprod_mistakes(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong cumulative forms return, each ``(T, B, H)``."""
    A = torch.cumprod(a, dim=0)  # (T, B, H)
    A_before = torch.cat([torch.ones_like(A[:1]), A[:-1]])  # (T, B, H): A_{t-1}, with A_0 = 1
    A_batch = torch.cumprod(a, dim=1)
    return {
        "drop the h0 term (A_t * h0): the recurrence starts from h0, not from 0": A * torch.cumsum(b / A, dim=0),
        "divide b_s by A_{s-1} instead of A_s (an off-by-one in the cumulative product), so a_t multiplies its own "
        "b_t: h_t = a_t h_(t-1) + b_t adds b_t after the multiplication": A * (h0 + torch.cumsum(b / A_before, dim=0)),
        "multiply h0 by A_{t-1} instead of A_t (an off-by-one: a_1 already acts on h0)":
            A_before * h0 + A * torch.cumsum(b / A, dim=0),
        "take the cumulative product and sum over the batch axis (dim=1) instead of time (dim=0)":
            A_batch * (h0 + torch.cumsum(b / A_batch, dim=1)),
    }


def check_scan_cumprod(fn: Any, seed: int = 0) -> None:
    """Test ``fn(a (T, B, H), b (T, B, H), h0 (B, H)) -> h (T, B, H)``, the recurrence without a loop (notebook 09).

    Refuses a loop over time and the course's scans; names the mistake the values match: no
    ``h0`` term, an off-by-one in the cumulative product, the wrong axis.
    """
    code = getattr(fn, "__code__", None)  # the learner's own function, before refuse_reference wraps it
    fn = refuse_reference(fn, ("scan_cumprod", "scan_loop", "scan_loop_indexed", "scan_log", "scan_chunked",
                               "ChunkedScan"))
    if isinstance(code, CodeType) and _loops(code):  # a grader's wrapper may hold something else: skip then
        raise CheckFailed(f"{getattr(fn, '__name__', 'your function')} runs a loop: the exercise is to compute every "
                          "h_t at once, with torch.cumprod and torch.cumsum over time (dim=0), no loop over t")
    g = torch.Generator().manual_seed(seed)
    for T, B, H in ((12, 3, 4), (1, 2, 3)):
        a = torch.rand(T, B, H, generator=g, dtype=torch.float64) * 0.5 + 0.5  # (T, B, H), in [0.5, 1)
        b = torch.randn(T, B, H, generator=g, dtype=torch.float64)  # (T, B, H), any sign
        h0 = torch.randn(B, H, generator=g, dtype=torch.float64)  # (B, H)
        got = fn(a.clone(), b.clone(), h0.clone())
        name = f"h (T={T}, B={B}, H={H})"
        if isinstance(got, torch.Tensor) and tuple(got.shape) == (T + 1, B, H):
            raise CheckFailed(f"{name} has shape {tuple(got.shape)}, expected {(T, B, H)}: return h_1 .. h_T, "
                              "without h0 (as scan_loop does)")
        check_shape(name, got, (T, B, H))
        expected = scan_loop(a, b, h0)  # (T, B, H)
        name_mistake(name, got, expected, _cumprod_mistakes(a, b, h0) if T > 1 else {})
        check_close(name, got, expected)
