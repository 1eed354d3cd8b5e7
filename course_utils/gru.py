"""Notebook 04, sections 1-4 and exercises 1-3: the GRU cell, in numpy and PyTorch, in ``torch.nn.GRU``'s convention.

The course's convention is PyTorch's (the cuDNN variant of the GRU)::

    r = sigmoid(x @ W_xr.T + b_xr + h_prev @ W_hr.T + b_hr)        reset gate   (B, H)
    z = sigmoid(x @ W_xz.T + b_xz + h_prev @ W_hz.T + b_hz)        update gate  (B, H)
    n = tanh(x @ W_xn.T + b_xn + r * (h_prev @ W_hn.T + b_hn))     candidate    (B, H)
    h = (1 - z) * n + z * h_prev                                   new state    (B, H)

The blocks are stacked in rows in the order r, z, n: ``W_x`` (3H, I) is ``weight_ih_l0``,
``W_h`` (3H, H) is ``weight_hh_l0``, ``b_x`` and ``b_hh`` (3H,) are ``bias_ih_l0`` and
``bias_hh_l0``. Unlike the LSTM, the two biases cannot be merged: ``b_hn`` sits inside
``r * (...)``.

Two variations exist in the literature, both available here:

- ``z_weights="candidate"``: ``h = (1 - z) * h_prev + z * n`` (Chung et al. 2014, and
  Coursera's Deep Learning Specialization). Replacing z by 1 - z, i.e. negating the z rows of
  ``W_x``, ``W_h``, ``b_x`` and ``b_hh``, turns one into the other exactly.
- ``reset_after=False``: ``n = tanh(x @ W_xn.T + b_xn + (r * h_prev) @ W_hn.T + b_hn)``,
  the reset gate applied *before* the recurrent matmul (Cho et al. 2014). This is a
  different function, not a relabelling.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.gru`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .shared.gated import (
    gate_slices,
    gated_param_count,
    require_step_shapes,
    sigmoid,
    weights_from_torch,
)

GRU_GATES = ("r", "z", "n")  # torch.nn.GRU's row blocks, in order
ZWeights = Literal["h_prev", "candidate"]


def gru_param_count(input_size: int, hidden_size: int, n_biases: int = 1) -> int:
    """Parameters of one GRU layer: ``3 * ((I + H) * H + n_biases * H)``; ``torch.nn.GRU`` has ``n_biases=2``."""
    return gated_param_count(3, input_size, hidden_size, n_biases)


def _check_gru_options(z_weights: str, reset_after: bool) -> None:
    if z_weights not in ("h_prev", "candidate"):
        raise ValueError(f"z_weights must be 'h_prev' or 'candidate', got {z_weights!r}")
    if not isinstance(reset_after, bool):
        raise ValueError(f"reset_after must be True or False, got {reset_after!r}")


def gru_cell_numpy(
    x: np.ndarray,
    h_prev: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b_x: np.ndarray,
    b_hh: np.ndarray,
    *,
    z_weights: ZWeights = "h_prev",
    reset_after: bool = True,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One GRU step in numpy, for a batch.

    Args:
        x: ``(B, I)``; h_prev: ``(B, H)``; W_x: ``(3H, I)``; W_h: ``(3H, H)``; b_x, b_hh: ``(3H,)``.
        z_weights: which term z multiplies: ``"h_prev"`` (PyTorch, the course) or ``"candidate"``.
        reset_after: apply r after the recurrent matmul (PyTorch, cuDNN) or before it (Cho et al.).

    Returns:
        ``(h, gates)``: h ``(B, H)`` and ``{"r", "z", "n": (B, H)}``.
    """
    _check_gru_options(z_weights, reset_after)
    _, hidden = require_step_shapes(x, h_prev, W_x, W_h, {"b_x": b_x, "b_hh": b_hh}, 3)
    s = gate_slices(hidden, GRU_GATES)
    a_x = x @ W_x.T + b_x  # (B, 3H) input part of every block
    r = sigmoid(a_x[:, s["r"]] + h_prev @ W_h[s["r"]].T + b_hh[s["r"]])  # (B, H)
    z = sigmoid(a_x[:, s["z"]] + h_prev @ W_h[s["z"]].T + b_hh[s["z"]])  # (B, H)
    if reset_after:
        n = np.tanh(a_x[:, s["n"]] + r * (h_prev @ W_h[s["n"]].T + b_hh[s["n"]]))
    else:
        n = np.tanh(a_x[:, s["n"]] + (r * h_prev) @ W_h[s["n"]].T + b_hh[s["n"]])
    h = (1 - z) * n + z * h_prev if z_weights == "h_prev" else (1 - z) * h_prev + z * n  # (B, H)
    return h, {"r": r, "z": z, "n": n}


def gru_cell_torch(
    x: torch.Tensor,
    h_prev: torch.Tensor,
    W_x: torch.Tensor,
    W_h: torch.Tensor,
    b_x: torch.Tensor,
    b_hh: torch.Tensor,
    *,
    z_weights: ZWeights = "h_prev",
    reset_after: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The same step as :func:`gru_cell_numpy`, in PyTorch (differentiable, any device)."""
    _check_gru_options(z_weights, reset_after)
    require_step_shapes(x, h_prev, W_x, W_h, {"b_x": b_x, "b_hh": b_hh}, 3)
    a_x = x @ W_x.T + b_x  # (B, 3H)
    if reset_after:
        return gru_step_from_preactivations(a_x, h_prev @ W_h.T + b_hh, h_prev, z_weights)
    W_hr, W_hz, W_hn = W_h.chunk(3, dim=0)  # each (H, H)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    a_xr, a_xz, a_xn = a_x.chunk(3, dim=1)  # each (B, H)
    r = torch.sigmoid(a_xr + h_prev @ W_hr.T + b_hr)
    z = torch.sigmoid(a_xz + h_prev @ W_hz.T + b_hz)
    n = torch.tanh(a_xn + (r * h_prev) @ W_hn.T + b_hn)  # the reset gate acts before W_hn
    return _update(h_prev, z, n, z_weights), {"r": r, "z": z, "n": n}


def gru_step_from_preactivations(
    a_x: torch.Tensor, a_h: torch.Tensor, h_prev: torch.Tensor, z_weights: ZWeights = "h_prev"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One GRU step (``reset_after=True``) from ``a_x = x W_x^T + b_x`` and ``a_h = h_prev W_h^T + b_hh``, each (B, 3H).

    :class:`GRU` computes ``a_x`` for all steps in one matmul and calls this once per step.
    """
    a_xr, a_xz, a_xn = a_x.chunk(3, dim=1)  # each (B, H)
    a_hr, a_hz, a_hn = a_h.chunk(3, dim=1)
    r, z = torch.sigmoid(a_xr + a_hr), torch.sigmoid(a_xz + a_hz)
    n = torch.tanh(a_xn + r * a_hn)
    return _update(h_prev, z, n, z_weights), {"r": r, "z": z, "n": n}


def _update(h_prev: torch.Tensor, z: torch.Tensor, n: torch.Tensor, z_weights: ZWeights) -> torch.Tensor:
    """The new state: z weights ``h_prev`` (PyTorch's convention) or the candidate ``n``."""
    return (1 - z) * n + z * h_prev if z_weights == "h_prev" else (1 - z) * h_prev + z * n


def flip_update_gate(W_x: np.ndarray, W_h: np.ndarray, b_x: np.ndarray, b_hh: np.ndarray):
    """Weights for the other z convention: negate the z rows, so that ``z' = sigmoid(-a_z) = 1 - z``.

    Returns new arrays ``(W_x, W_h, b_x, b_hh)``; works for numpy arrays and tensors alike.
    """
    hidden = W_h.shape[1]
    rows = gate_slices(hidden, GRU_GATES)["z"]
    flipped = []
    for w in (W_x, W_h, b_x, b_hh):
        w = w.copy() if isinstance(w, np.ndarray) else w.clone()
        w[rows] = -w[rows]
        flipped.append(w)
    return tuple(flipped)


def gru_weights_from_torch(gru: nn.GRU | nn.GRUCell) -> dict[str, np.ndarray]:
    """``{"W_x", "W_h", "b_x", "b_hh"}`` as numpy arrays from a one-layer ``nn.GRU`` (or ``nn.GRUCell``)."""
    return {k: v.cpu().numpy().copy() for k, v in weights_from_torch(gru, 3).items()}


class GRUCell(nn.Module):
    """A GRU cell with ``W_x (3H, I)``, ``W_h (3H, H)``, ``b_x``, ``b_hh (3H,)``; initialised like ``nn.GRUCell``."""

    def __init__(
        self, input_size: int, hidden_size: int, *, z_weights: ZWeights = "h_prev", reset_after: bool = True
    ) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size} and {hidden_size}")
        _check_gru_options(z_weights, reset_after)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.z_weights, self.reset_after = z_weights, reset_after
        k = hidden_size**-0.5
        self.W_x = nn.Parameter(torch.empty(3 * hidden_size, input_size).uniform_(-k, k))
        self.W_h = nn.Parameter(torch.empty(3 * hidden_size, hidden_size).uniform_(-k, k))
        self.b_x = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-k, k))
        self.b_hh = nn.Parameter(torch.empty(3 * hidden_size).uniform_(-k, k))

    def step(self, x: torch.Tensor, h_prev: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step: ``(h, gates)``; ``h_prev`` defaults to zeros."""
        require_shape("x", x, ("B", self.input_size))
        if h_prev is None:
            h_prev = x.new_zeros(x.shape[0], self.hidden_size)
        return gru_cell_torch(
            x, h_prev, self.W_x, self.W_h, self.b_x, self.b_hh, z_weights=self.z_weights, reset_after=self.reset_after
        )

    def forward(self, x: torch.Tensor, h_prev: torch.Tensor | None = None) -> torch.Tensor:
        """``h`` after one step, like ``torch.nn.GRUCell``."""
        return self.step(x, h_prev)[0]


class GRU(nn.Module):
    """A :class:`GRUCell` unrolled over a time-major sequence ``(T, B, I)``, like ``torch.nn.GRU``."""

    def __init__(self, input_size: int, hidden_size: int, **cell_options) -> None:
        super().__init__()
        self.cell = GRUCell(input_size, hidden_size, **cell_options)

    def forward(self, xs: torch.Tensor, h_0: torch.Tensor | None = None, *, return_gates: bool = False):
        """Returns ``(outputs (T, B, H), h_T (1, B, H))``, plus ``{gate: (T, B, H)}`` if ``return_gates``.

        ``h_0`` and ``h_T`` are ``(1, B, H)``, with ``torch.nn.GRU``'s leading layer axis (and the
        course's ``RNN``'s); ``h_0`` defaults to zeros.
        """
        require_shape("xs", xs, ("T", "B", self.cell.input_size))
        cell = self.cell
        T, B, _ = xs.shape
        h_0 = xs.new_zeros(1, B, cell.hidden_size) if h_0 is None else h_0
        require_shape("h_0", h_0, (1, B, cell.hidden_size))
        if not cell.reset_after or return_gates:
            return self._forward_stepwise(xs, h_0[0], return_gates)
        # The same arithmetic as GRUCell.step, faster: the input part of all T steps in one
        # matmul before the loop, then per step one addmm for the recurrent part.
        x_proj = torch.addmm(cell.b_x, xs.reshape(T * B, -1), cell.W_x.T).view(T, B, -1)  # (T, B, 3H)
        W_h_T = cell.W_h.T  # (H, 3H)
        h, outputs = h_0[0], []  # h: (B, H)
        for a_x in x_proj.unbind(0):  # (B, 3H); unbind, not x_proj[t]: cheaper backward
            h, _ = gru_step_from_preactivations(a_x, torch.addmm(cell.b_hh, h, W_h_T), h, cell.z_weights)
            outputs.append(h)
        return torch.stack(outputs), h[None]  # (T, B, H), (1, B, H)

    def _forward_stepwise(self, xs: torch.Tensor, h: torch.Tensor, return_gates: bool):
        """The plain loop over :meth:`GRUCell.step` (``reset_after=False``, or gates wanted); ``h`` (B, H)."""
        outputs, gates = [], {k: [] for k in GRU_GATES}
        for x in xs:  # x: (B, I)
            h, step_gates = self.cell.step(x, h)
            outputs.append(h)
            for k in GRU_GATES:
                gates[k].append(step_gates[k])
        if return_gates:
            return torch.stack(outputs), h[None], {k: torch.stack(v) for k, v in gates.items()}
        return torch.stack(outputs), h[None]

    @classmethod
    def from_torch(cls, gru: nn.GRU) -> GRU:
        """A copy of a one-layer ``nn.GRU``, on its device and in its dtype."""
        w = weights_from_torch(gru, 3)
        model = cls(gru.input_size, gru.hidden_size).to(device=w["W_x"].device, dtype=w["W_x"].dtype)
        with torch.no_grad():
            for name, value in w.items():
                getattr(model.cell, name).copy_(value)
        return model


# ----------------------------------------------------------------------------- a sequence (exercise 3)

def gru_forward_numpy(
    xs: np.ndarray, h0: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b_x: np.ndarray, b_hh: np.ndarray,
    **options,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`gru_cell_numpy` over ``xs (T, B, I)`` from ``h0 (B, H)``: ``(hs (T, B, H), h_T (B, H))``.

    ``options`` (``z_weights``, ``reset_after``) go to every step.
    """
    require_shape("xs", xs, ("T", "B", "I"))
    h, hs = h0, []
    for x in xs:  # x: (B, I)
        h, _ = gru_cell_numpy(x, h, W_x, W_h, b_x, b_hh, **options)
        hs.append(h)
    return np.stack(hs), h


# ----------------------------------------------------------------------------- the gradient path (section 4)

def gru_state_jacobian(
    x: np.ndarray, h_prev: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b_x: np.ndarray, b_hh: np.ndarray
) -> dict[str, np.ndarray]:
    """``dh_t/dh_{t-1}`` of one step (PyTorch's convention), split into its three paths, each ``(B, H, H)``.

    With ``h = (1 - z) * n + z * h_prev``::

        dh/dh_prev = diag(z)                            "carry": the old state copied through
                   + diag(h_prev - n) dz/dh_prev        "update gate": z depends on h_prev
                   + diag(1 - z) dn/dh_prev             "candidate": through W_hn and the reset gate

    ``dz/dh_prev = diag(z (1 - z)) W_hz``, ``dn/dh_prev = diag(1 - n^2) (diag(W_hn h_prev + b_hn)
    diag(r (1 - r)) W_hr + diag(r) W_hn)``. Entry ``[b, i, j]`` is ``dh_i / dh_prev_j`` for batch row b;
    the three terms sum to the Jacobian autograd computes (``tests/test_gru.py``). ``diag(z_t)``
    is the GRU's counterpart of the LSTM's ``diag(f_t)`` along its cell state.
    """
    h_new, gates = gru_cell_numpy(x, h_prev, W_x, W_h, b_x, b_hh)
    r, z, n = gates["r"], gates["z"], gates["n"]  # (B, H) each
    s = gate_slices(h_new.shape[1], GRU_GATES)
    a_hn = h_prev @ W_h[s["n"]].T + b_hh[s["n"]]  # (B, H): what the reset gate scales
    dz = (z * (1 - z))[:, :, None] * W_h[s["z"]][None]  # (B, H, H): dz_i/dh_prev_j
    dr = (r * (1 - r))[:, :, None] * W_h[s["r"]][None]  # (B, H, H)
    dn = (1 - n**2)[:, :, None] * (a_hn[:, :, None] * dr + r[:, :, None] * W_h[s["n"]][None])  # (B, H, H)
    return {"carry": z[:, :, None] * np.eye(h_new.shape[1]), "update gate": (h_prev - n)[:, :, None] * dz,
            "candidate": (1 - z)[:, :, None] * dn}


def set_update_bias(gru: nn.GRU, value: float) -> None:
    """Set the update gate's bias of a one-layer ``nn.GRU``: ``b_xz = value``, ``b_hz = 0`` (z near sigmoid(value))."""
    rows = gate_slices(gru.hidden_size, GRU_GATES)["z"]
    with torch.no_grad():
        gru.bias_ih_l0[rows] = value
        gru.bias_hh_l0[rows] = 0.0
