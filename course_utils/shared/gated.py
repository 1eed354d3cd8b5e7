"""Notebooks 03 and 04, sections 2-3: what the LSTM and the GRU share (stacked gate blocks, sigmoid).

Both cells stack their gate and candidate blocks in rows, as ``torch.nn.LSTM`` and
``torch.nn.GRU`` do: ``W_x`` is ``(n_blocks * H, I)`` and ``W_h`` is ``(n_blocks * H, H)``.
This module knows that layout (:func:`gate_slices`, :func:`gated_param_count`,
:func:`weights_from_torch`, :func:`require_step_shapes`) and the numerically safe sigmoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.checks import CheckFailed, check_type
from ..core.shapes import require_shape


def gate_slices(hidden_size: int, names: Sequence[str] = ("i", "f", "g", "o")) -> dict[str, slice]:
    """``{gate: rows}`` of the stacked weights, e.g. ``{"i": slice(0, H), "f": slice(H, 2H), ...}``."""
    return {name: slice(k * hidden_size, (k + 1) * hidden_size) for k, name in enumerate(names)}


def reorder_blocks(stacked: np.ndarray, read_as: Sequence[str], layout: Sequence[str]) -> np.ndarray:
    """``stacked`` (rows in ``layout`` order) rearranged so that a correct cell computes what a cell
    reading the rows in the order ``read_as`` computes from ``stacked``: the wrong-gate-order mistake."""
    H = stacked.shape[0] // len(layout)
    blocks = [stacked[k * H:(k + 1) * H] for k in range(len(layout))]
    return np.concatenate([blocks[list(read_as).index(name)] for name in layout])


def read_gate_values(values: Any, goal: str, names: str, wanted: Sequence[float | None],
                     roles: dict[str, str]) -> dict[str, float]:
    """A gate-extremes exercise's answer (notebooks 03 and 04, exercise 2) as ``{gate: value}``.

    Fails unless ``values`` is a tuple of ``len(names)`` numbers in [0, 1] within 0.005 of
    ``wanted`` (None: any value), naming each gate that is off and what it does.
    """
    check_type(f"the gate values for {goal!r}", values, tuple)
    if len(values) != len(names) or not all(isinstance(v, (int, float, np.number)) and 0.0 <= float(v) <= 1.0
                                            for v in values):
        count = {2: "two", 3: "three"}.get(len(names), str(len(names)))
        raise CheckFailed(f"the gate values for {goal!r} should be {count} numbers "
                          f"({', '.join(names)}) in [0, 1], got {values}")
    got = dict(zip(names, (float(v) for v in values), strict=True))
    want = dict(zip(names, wanted, strict=True))
    off = [k for k in names if want[k] is not None and abs(got[k] - want[k]) > 0.005]
    if off:
        raise CheckFailed(f"{goal!r} is off: check gate {', '.join(off)}. " + " ".join(f"({roles[k]}.)" for k in off))
    return got


def gated_param_count(n_blocks: int, input_size: int, hidden_size: int, n_biases: int = 1) -> int:
    """Parameters of a layer of ``n_blocks`` gate/candidate blocks: ``n_blocks * ((I + H) * H + n_biases * H)``."""
    if min(n_blocks, input_size, hidden_size) < 1 or n_biases not in (0, 1, 2):
        raise ValueError(
            f"need n_blocks, input_size, hidden_size >= 1 and n_biases in 0..2, "
            f"got {n_blocks}, {input_size}, {hidden_size}, {n_biases}"
        )
    return n_blocks * ((input_size + hidden_size) * hidden_size + n_biases * hidden_size)


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic function, computed without overflow for large negative ``a``."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def require_step_shapes(x, h_prev, W_x, W_h, biases: dict[str, Any], n_blocks: int) -> tuple[int, int]:
    """Validate one step's arguments of a cell with ``n_blocks`` stacked blocks; returns ``(B, H)``.

    ``biases`` names each bias vector, ``{"b": b}`` for the LSTM, ``{"b_x": b_x, "b_hh": b_hh}``
    for the GRU, so an error names the argument the learner passed.
    """
    require_shape("x", x, ("B", "I"))
    batch, inputs = x.shape
    require_shape("W_h", W_h, (f"{n_blocks}H", "H"))
    hidden = W_h.shape[1]
    require_shape("W_h", W_h, (n_blocks * hidden, hidden))
    require_shape("W_x", W_x, (n_blocks * hidden, inputs))
    for name, b in biases.items():
        require_shape(name, b, (n_blocks * hidden,))
    require_shape("h_prev", h_prev, (batch, hidden))
    return batch, hidden


def weights_from_torch(layer: nn.Module, n_blocks: int = 4) -> dict[str, torch.Tensor]:
    """``{"W_x", "W_h", "b_x", "b_hh"}`` (detached tensors) of a one-layer ``nn.LSTM``/``nn.GRU`` or cell.

    ``b_x`` is PyTorch's ``bias_ih`` and ``b_hh`` its ``bias_hh``, each ``(n_blocks * H,)``; not to be
    confused with the plain RNN's summed bias ``b_h`` ``(H,)`` of notebooks 01-02.
    """
    if isinstance(layer, (nn.LSTM, nn.GRU)):
        if layer.num_layers != 1 or layer.bidirectional or getattr(layer, "proj_size", 0):
            raise ValueError("only a one-layer, one-directional recurrent layer without projection can be copied")
        if layer.batch_first:  # its outputs would be (B, T, H) where the course's are (T, B, H)
            raise ValueError(f"this {type(layer).__name__} has batch_first=True; the course's layers are "
                             "sequence-first (T, B, ...): copy a layer built with batch_first=False")
        suffix = "_l0"
    else:
        suffix = ""
    W_x = getattr(layer, "weight_ih" + suffix).detach()
    W_h = getattr(layer, "weight_hh" + suffix).detach()
    if W_x.shape[0] != n_blocks * layer.hidden_size:
        raise ValueError(f"expected {n_blocks} stacked blocks, got weight_ih of shape {tuple(W_x.shape)}")
    if layer.bias:
        b_x = getattr(layer, "bias_ih" + suffix).detach()
        b_hh = getattr(layer, "bias_hh" + suffix).detach()
    else:
        b_x = b_hh = W_x.new_zeros(W_x.shape[0])
    return {"W_x": W_x, "W_h": W_h, "b_x": b_x, "b_hh": b_hh}
