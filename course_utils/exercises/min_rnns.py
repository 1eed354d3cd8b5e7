"""Notebook 09, the exercises on :mod:`course_utils.min_rnns`.

Checks that name the usual mistakes: ``check_min_gru_step``, ``check_min_lstm_gates``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..min_rnns import MinGRU, min_lstm_gates


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
    fn = refuse_reference(fn, ("min_lstm_gates", "MinLSTM", "recurrence"))
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


def _min_gru_step(x, h_prev, W_z, b_z, W_h, b_h) -> torch.Tensor:
    """One step of the course's :class:`MinGRU` (``candidate="linear"``) with these weights: ``h (B, H)``."""
    layer = MinGRU(W_z.shape[1], W_z.shape[0], candidate="linear").to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.cat([W_z, W_h]))
        layer.linear.bias.copy_(torch.cat([b_z, b_h]))
        return layer(x.unsqueeze(0), h_prev)[1]


def _min_gru_step_mistakes(x, h_prev, W_z, b_z, W_h, b_h) -> dict[str, torch.Tensor]:
    """What the usual wrong minGRU steps return, each ``(B, H)``."""
    a_z, h_tilde = x @ W_z.T + b_z, x @ W_h.T + b_h  # (B, H) each
    z = torch.sigmoid(a_z)
    return {
        "use notebook 04's PyTorch convention, h = z * h_prev + (1 - z) * h~: Feng et al.'s minGRU writes "
        "h = (1 - z) * h_prev + z * h~ (z is the share of the new candidate)": z * h_prev + (1 - z) * h_tilde,
        "squash the candidate with tanh: minGRU's candidate h~ = x W_h^T + b_h is linear (dropping the tanh is one "
        "of the simplifications that make it a linear recurrence in the inputs)":
            (1 - z) * h_prev + z * torch.tanh(h_tilde),
        "leave out the sigmoid on z: z = sigmoid(x W_z^T + b_z) must lie in (0, 1)": (1 - a_z) * h_prev + a_z * h_tilde,
        "return the candidate h~ alone: h mixes it with h_prev through z": h_tilde,
    }


def check_min_gru_step(fn: Any, seed: int = 0) -> None:
    """Test ``fn(x (B, I), h_prev (B, H), W_z, b_z, W_h, b_h) -> h (B, H)``, one plain minGRU step (notebook 09).

    Compared with the course's ``MinGRU(candidate="linear")`` with the same weights, in float32 and
    float64; names the mistake the values match: 04's other z convention, a tanh on h~, no sigmoid on
    z, the candidate alone.
    """
    fn = refuse_reference(fn, ("MinGRU", "SignedMinGRU", "recurrence"))
    g = torch.Generator().manual_seed(seed)
    for B, n_in, H, dtype in ((4, 3, 5, torch.float32), (2, 7, 1, torch.float64)):
        shapes = [(B, n_in), (B, H), (H, n_in), (H,), (H, n_in), (H,)]  # x, h_prev, W_z, b_z, W_h, b_h
        args = [torch.randn(*shape, generator=g, dtype=dtype) for shape in shapes]
        got = fn(*(a.clone() for a in args))
        name = f"h (B={B}, I={n_in}, H={H}, {str(dtype).removeprefix('torch.')})"
        check_shape(name, got, (B, H))
        expected = _min_gru_step(*args)
        name_mistake(name, got, expected, _min_gru_step_mistakes(*args))
        check_close(name, got, expected, quiet=True)
    print("OK my_min_gru_step: float32 and float64 batches equal the course's MinGRU step")
