"""Notebook 09, the exercises on :mod:`course_utils.min_rnns`.

Checks that name the usual mistakes: ``check_min_lstm_gates``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..min_rnns import min_lstm_gates


def _min_lstm_gate_mistakes(k_f: torch.Tensor, k_i: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the usual wrong gates return, each ``(2, B, H)`` (f' stacked on i')."""
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    e_f, e_i = torch.exp(k_f.double()), torch.exp(k_i.double())
    right = torch.stack(min_lstm_gates(k_f, k_i))
    return {
        "compute f / (f + i) directly: where both gates vanish (k_f and k_i near -120), sigmoid underflows to 0 "
        "in float32 and 0 / 0 is NaN. Work with log f = -softplus(-k_f) and log i = -softplus(-k_i): "
        "f' = sigmoid(log f - log i)": torch.stack([f / (f + i), i / (f + i)]),
        "leave the gates unnormalised (f' = f, i' = i): f' + i' must be 1": torch.stack([f, i]),
        "divide by f + i + 1 instead of f + i: f' + i' must be 1": torch.stack([f / (f + i + 1), i / (f + i + 1)]),
        "normalise exp(k) instead of sigmoid(k) (a softmax of the pre-activations): f' = f / (f + i) with "
        "f = sigmoid(k_f)": torch.stack([e_f / (e_f + e_i), e_i / (e_f + e_i)]).float(),
        "return (i', f') instead of (f', i')": right.flip(0),
    }


def check_min_lstm_gates(fn: Any, seed: int = 0) -> None:
    """Test ``fn(k_f (B, H), k_i (B, H)) -> (f', i')`` in float32, vanishing gates included (notebook 09).

    Names the mistake the values match: the direct ``f / (f + i)`` (NaN where both gates
    underflow), no normalisation, ``f + i + 1``, a softmax of the pre-activations, swapped gates.
    """
    refuse_reference(fn, ("min_lstm_gates", "MinLSTM", "recurrence"))
    g = torch.Generator().manual_seed(seed)
    k_f = torch.randn(4, 5, generator=g) * 3  # (B, H), float32
    k_i = torch.randn(4, 5, generator=g) * 3
    k_f[-1], k_i[-1] = -120.0 - 5 * torch.rand(5, generator=g), -118.0 - 5 * torch.rand(5, generator=g)  # gates ~0
    got = fn(k_f.clone(), k_i.clone())
    if not isinstance(got, tuple) or len(got) != 2:
        raise CheckFailed(f"return the pair (f', i'), two tensors of shape {tuple(k_f.shape)}; got a "
                          f"{type(got).__name__}" + (f" of {len(got)}" if isinstance(got, tuple) else ""))
    for name, value in zip(("f'", "i'"), got, strict=True):
        check_shape(name, value, tuple(k_f.shape))
    expected = tuple(x.float() for x in min_lstm_gates(k_f.double(), k_i.double()))  # float64, rounded
    name_mistake("(f', i')", torch.stack(got), torch.stack(expected), _min_lstm_gate_mistakes(k_f, k_i))
    for name, value, want in zip(("f'", "i'"), got, expected, strict=True):
        check_close(f"{name} (the last row: both gates vanish)", value, want, rtol=1e-5, atol=1e-6)
