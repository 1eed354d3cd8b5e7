"""Every notebook: the one shape validator behind every helper's and every check's shape error.

A helper that gets an argument of the wrong shape raises ``ValueError`` through
:func:`require_shape`, naming the argument, the shape it got and the shape it expected::

    require_shape("h_prev", h_prev, ("B", H))   # "h_prev has shape (3, 5), expected (B, 4)."

The graded checks (:func:`course_utils.core.checks.check_shape`) use the same matching and
wording, with their own exception so that a test cell's failure reads as a check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Dim = int | str | None  # an exact size, a name for any size ("B", "T"), or None for any size


def shape_of(value: Any) -> tuple[int, ...]:
    """The shape of an array or tensor as a tuple of ints (``()`` for a scalar or a non-array)."""
    return tuple(int(s) for s in getattr(value, "shape", ()))


def format_shape(expected: Sequence[Dim]) -> str:
    """``(B, 4)``, ``(*, 3)``, ``(5,)``: how an expected shape is shown in messages."""
    parts = ["*" if e is None else str(e) for e in expected]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def shape_matches(shape: Sequence[int], expected: Sequence[Dim]) -> bool:
    """True if ``shape`` has as many axes as ``expected`` and every int of ``expected`` matches."""
    return len(shape) == len(expected) and all(
        e is None or isinstance(e, str) or int(s) == int(e) for s, e in zip(shape, expected, strict=True)
    )


def shape_message(name: str, shape: Sequence[int], expected: Sequence[Dim], hint: str = "") -> str:
    """``"x has shape (4, 6), expected (B, T, 2)."`` plus an optional hint."""
    return f"{name} has shape {tuple(shape)}, expected {format_shape(expected)}." + (f" {hint}" if hint else "")


def require_shape(name: str, value: Any, expected: Sequence[Dim], hint: str = "") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value.shape`` matches ``expected``.

    ``expected`` mixes ints (must match) with names such as ``"B"`` or ``None`` (any size).
    """
    shape = shape_of(value)
    if not shape_matches(shape, expected):
        raise ValueError(shape_message(name, shape, expected, hint))


def require_attention_mask(name: str, mask: Any, scores_shape: Sequence[int], hint: str = "") -> None:
    """Check an attention mask: bools, True where a query may attend, broadcastable to ``scores_shape``.

    Notebooks 06-08 use this one convention (that of ``F.scaled_dot_product_attention``'s
    bool masks). A float mask (0 or -inf, added to the scores) or an int mask is refused with
    a ``TypeError`` that says how to convert it, rather than silently misread; a mask that does
    not broadcast to the scores (..., Tq, Tk) is a ``ValueError``, which for a (B, Tk)
    key-padding mask says how to reshape it.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        dtype = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"{name} must be a torch.bool tensor (True = may attend), got {dtype}. A float mask of "
                        f"0 and -inf (another convention) converts with {name} == 0; 0/1 ints with .bool().")
    shape, got = tuple(int(s) for s in scores_shape), tuple(mask.shape)
    try:
        torch.broadcast_shapes(got, shape)
    except RuntimeError:
        if len(shape) >= 3 and got == (shape[0], shape[-1]):  # (B, Tk): one row of keys per sequence
            index = ", ".join([":"] + ["None"] * (len(shape) - 2) + [":"])
            hint = (f"A (B, Tk) key-padding mask? Give it an axis for the queries: {name}[{index}] has shape "
                    f"{(shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)}. " + hint).strip()
        raise ValueError(f"{name} has shape {got}, which does not broadcast to the scores' "
                         f"{shape} (..., Tq, Tk)." + (f" {hint}" if hint else "")) from None
