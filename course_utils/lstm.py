"""Notebook 03, sections 1-4, 6 and exercises 1-3 and 5 (and 04's comparison): the LSTM cell, like ``torch.nn.LSTM``.

In numpy and in PyTorch.

One step, for a batch of B inputs (Hochreiter & Schmidhuber 1997, with the forget gate of
Gers et al. 2000)::

    i = sigmoid(x @ W_xi.T + h_prev @ W_hi.T + b_i)    input gate        (B, H)
    f = sigmoid(x @ W_xf.T + h_prev @ W_hf.T + b_f)    forget gate       (B, H)
    g = tanh(   x @ W_xg.T + h_prev @ W_hg.T + b_g)    candidate         (B, H)
    o = sigmoid(x @ W_xo.T + h_prev @ W_ho.T + b_o)    output gate       (B, H)
    c = f * c_prev + i * g                              cell state        (B, H)
    h = o * tanh(c)                                     hidden state      (B, H)

The four weight blocks are stacked in rows in PyTorch's order i, f, g, o:
``W_x = [W_xi; W_xf; W_xg; W_xo]`` has shape (4H, I) (``weight_ih_l0``), ``W_h`` (4H, H)
(``weight_hh_l0``). PyTorch keeps two bias vectors, ``b_ih`` and ``b_hh``; they are only
ever added, so the cell uses their sum ``b`` (4H,).

A *peephole* LSTM (Gers & Schmidhuber 2000) lets the gates see the cell state through
diagonal weights: ``p_i * c_prev`` and ``p_f * c_prev`` are added inside i and f, and
``p_o * c`` (the new cell state) inside o.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.lstm`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .lstm_backward import LSTMHandwrittenBPTT
from .shared.gated import (
    gate_slices,
    gated_param_count,
    require_step_shapes,
    sigmoid,
    weights_from_torch,
)

LSTM_GATES = ("i", "f", "g", "o")  # torch.nn.LSTM's row blocks, in order


def lstm_param_count(input_size: int, hidden_size: int, n_biases: int = 1) -> int:
    """Parameters of one LSTM layer: four blocks of ``[W_x | W_h]`` plus ``n_biases`` bias vectors each.

    ``n_biases=1`` is the textbook count ``4 * ((I + H) * H + H)``; ``n_biases=2`` is what
    ``torch.nn.LSTM`` stores (``b_ih`` and ``b_hh``).
    """
    return gated_param_count(4, input_size, hidden_size, n_biases)


def lstm_cell_numpy(
    x: np.ndarray,
    h_prev: np.ndarray,
    c_prev: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b: np.ndarray,
    peephole: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One LSTM step in numpy, for a batch.

    Args:
        x: ``(B, I)`` inputs; h_prev, c_prev: ``(B, H)``.
        W_x: ``(4H, I)``, W_h: ``(4H, H)``, b: ``(4H,)``, rows in the order i, f, g, o.
        peephole: optional ``(3, H)``: the diagonal peephole weights ``p_i, p_f, p_o``.

    Returns:
        ``(h, c, gates)`` with h, c ``(B, H)`` and ``gates = {"i", "f", "g", "o": (B, H)}``.
    """
    batch, hidden = require_step_shapes(x, h_prev, W_x, W_h, {"b": b}, 4)
    require_shape("c_prev", c_prev, (batch, hidden))
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H) pre-activations of all four blocks
    s = gate_slices(hidden)
    a_i, a_f, a_g, a_o = (a[:, s[k]] for k in LSTM_GATES)  # each (B, H)
    if peephole is not None:
        require_shape("peephole", peephole, (3, hidden))
        a_i = a_i + peephole[0] * c_prev
        a_f = a_f + peephole[1] * c_prev
    i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
    c = f * c_prev + i * g  # (B, H)
    if peephole is not None:
        a_o = a_o + peephole[2] * c  # the output gate peeks at the new cell state
    o = sigmoid(a_o)
    h = o * np.tanh(c)  # (B, H)
    return h, c, {"i": i, "f": f, "g": g, "o": o}


def lstm_forward_numpy(
    xs: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    W_x: np.ndarray,
    W_h: np.ndarray,
    b: np.ndarray,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Run :func:`lstm_cell_numpy` over ``xs`` of shape ``(T, B, I)``.

    Returns ``(hs, (h_T, c_T))`` with ``hs`` of shape ``(T, B, H)``, like ``torch.nn.LSTM``.
    """
    require_shape("xs", xs, ("T", "B", "I"))
    h, c, hs = h0, c0, []
    for x in xs:  # x: (B, I)
        h, c, _ = lstm_cell_numpy(x, h, c, W_x, W_h, b)
        hs.append(h)
    return np.stack(hs), (h, c)


def lstm_weights_from_torch(lstm: nn.LSTM | nn.LSTMCell) -> dict[str, np.ndarray]:
    """``{"W_x", "W_h", "b"}`` as numpy arrays from a one-layer ``nn.LSTM`` (or ``nn.LSTMCell``).

    ``b`` is ``b_ih + b_hh``: the two bias vectors PyTorch stores enter every gate as a sum.
    """
    w = weights_from_torch(lstm, 4)
    return {"W_x": w["W_x"].cpu().numpy().copy(), "W_h": w["W_h"].cpu().numpy().copy(),
            "b": (w["b_x"] + w["b_hh"]).cpu().numpy()}


def lstm_cell_torch(
    x: torch.Tensor,
    h_prev: torch.Tensor,
    c_prev: torch.Tensor,
    W_x: torch.Tensor,
    W_h: torch.Tensor,
    b: torch.Tensor,
    peephole: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """The same step as :func:`lstm_cell_numpy`, in PyTorch (differentiable, any device)."""
    batch, hidden = require_step_shapes(x, h_prev, W_x, W_h, {"b": b}, 4)
    require_shape("c_prev", c_prev, (batch, hidden))
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)  # each (B, H), in the order i, f, g, o
    if peephole is not None:
        require_shape("peephole", peephole, (3, hidden))
        a_i = a_i + peephole[0] * c_prev
        a_f = a_f + peephole[1] * c_prev
    i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
    c = f * c_prev + i * g  # (B, H)
    if peephole is not None:
        a_o = a_o + peephole[2] * c
    o = torch.sigmoid(a_o)
    h = o * torch.tanh(c)  # (B, H)
    return h, c, {"i": i, "f": f, "g": g, "o": o}


class LSTMCell(nn.Module):
    """An LSTM cell with parameters ``W_x (4H, I)``, ``W_h (4H, H)``, ``b (4H,)``, optionally peepholes.

    Initialised like ``torch.nn.LSTMCell``: every weight uniform in ``±1/sqrt(H)``; the
    peephole weights start at zero, so a new peephole cell computes the plain LSTM.
    """

    def __init__(self, input_size: int, hidden_size: int, *, peephole: bool = False) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        k = hidden_size**-0.5
        self.W_x = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-k, k))
        self.W_h = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-k, k))
        self.b = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-k, k))
        self.peephole = nn.Parameter(torch.zeros(3, hidden_size)) if peephole else None

    def step(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """One step: ``(h, c, gates)``; ``state`` defaults to zeros."""
        require_shape("x", x, ("B", self.input_size))
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return lstm_cell_torch(x, *state, self.W_x, self.W_h, self.b, self.peephole)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, c)`` after one step, like ``torch.nn.LSTMCell``."""
        h, c, _ = self.step(x, state)
        return h, c


class LSTM(nn.Module):
    """An :class:`LSTMCell` unrolled over a time-major sequence ``(T, B, I)``, like ``torch.nn.LSTM``."""

    def __init__(self, input_size: int, hidden_size: int, *, peephole: bool = False) -> None:
        super().__init__()
        self.cell = LSTMCell(input_size, hidden_size, peephole=peephole)

    def forward(
        self,
        xs: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        return_gates: bool = False,
    ):
        """Returns ``(outputs (T, B, H), (h_T, c_T))``, plus ``{gate: (T, B, H)}`` if ``return_gates``.

        ``state = (h_0, c_0)`` and ``h_T, c_T`` are ``(1, B, H)``, with ``torch.nn.LSTM``'s leading
        layer axis (and the course's ``RNN``'s); ``state`` defaults to zeros.
        """
        require_shape("xs", xs, ("T", "B", self.cell.input_size))
        cell = self.cell
        T, B, _ = xs.shape
        if state is None:
            zeros = xs.new_zeros(1, B, cell.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        require_shape("h_0", h0, (1, B, cell.hidden_size))
        require_shape("c_0", c0, (1, B, cell.hidden_size))
        if cell.peephole is not None or return_gates:
            return self._forward_stepwise(xs, (h0[0], c0[0]), return_gates)
        # The same arithmetic as LSTMCell.step, faster: the input part of all T steps in one
        # matmul, then the recurrence with its backward pass written out by hand
        # (course_utils/lstm_backward.py: this is the path that runs for a plain LSTM).
        x_proj = torch.addmm(cell.b, xs.reshape(T * B, -1), cell.W_x.T).view(T, B, -1)  # (T, B, 4H)
        outputs, h, c = LSTMHandwrittenBPTT.apply(x_proj, h0[0], c0[0], cell.W_h)
        return outputs, (h[None], c[None])  # (T, B, H), ((1, B, H), (1, B, H))

    def _forward_stepwise(self, xs: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], return_gates: bool):
        """The plain loop over :meth:`LSTMCell.step`, with autograd (peepholes, or gates wanted); state (B, H)."""
        outputs, gates = [], {k: [] for k in LSTM_GATES}
        for x in xs:  # x: (B, I)
            h, c, step_gates = self.cell.step(x, state)
            state = (h, c)
            outputs.append(h)
            for k in LSTM_GATES:
                gates[k].append(step_gates[k])
        result = (torch.stack(outputs), (state[0][None], state[1][None]))  # (T, B, H), ((1, B, H), (1, B, H))
        if return_gates:
            return (*result, {k: torch.stack(v) for k, v in gates.items()})
        return result

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> LSTM:
        """A copy of a one-layer ``nn.LSTM`` (same device and dtype): ``W_x`` = ``weight_ih_l0``, etc."""
        w = weights_from_torch(lstm, 4)
        model = cls(lstm.input_size, lstm.hidden_size).to(device=w["W_x"].device, dtype=w["W_x"].dtype)
        with torch.no_grad():
            model.cell.W_x.copy_(w["W_x"])
            model.cell.W_h.copy_(w["W_h"])
            model.cell.b.copy_(w["b_x"] + w["b_hh"])
        return model


# ----------------------------------------------------------------------------- the backward pass of one step

LSTM_BACKWARD_NAMES = ("dx", "dh_prev", "dc_prev", "dW_x", "dW_h", "db")  # what a step's backward returns


def lstm_cell_cache(
    x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One step of :func:`lstm_cell_numpy`, returning ``(h, c, cache)``: the cache is what its backward needs.

    ``cache`` holds ``x (B, I)``, ``h_prev``, ``c_prev (B, H)``, ``W_x (4H, I)``, ``W_h (4H, H)``,
    the gates ``i, f, g, o (B, H)`` and the new cell state ``c (B, H)``.
    """
    h, c, gates = lstm_cell_numpy(x, h_prev, c_prev, W_x, W_h, b)
    return h, c, {"x": x, "h_prev": h_prev, "c_prev": c_prev, "W_x": W_x, "W_h": W_h, **gates, "c": c}


def lstm_gate_gradients(delta_c: np.ndarray, dh: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
    """``dA (B, 4H)``: dL/d each block's pre-activation, stacked i, f, g, o, from ``delta_c`` (all that reaches c_t)."""
    i, f, g, o, c, c_prev = (cache[k] for k in ("i", "f", "g", "o", "c", "c_prev"))
    da = {  # (B, H) each
        "i": delta_c * g * i * (1 - i),  # c = f * c_prev + i * g; sigmoid' = i (1 - i)
        "f": delta_c * c_prev * f * (1 - f),
        "g": delta_c * i * (1 - g**2),  # g is a tanh: tanh' = 1 - g^2
        "o": dh * np.tanh(c) * o * (1 - o),  # h = o * tanh(c)
    }
    return np.concatenate([da[k] for k in LSTM_GATES], axis=1)


def lstm_cell_backward_numpy(
    dh: np.ndarray, dc: np.ndarray, cache: dict[str, np.ndarray]
) -> tuple[np.ndarray, ...]:
    """The backward pass of one LSTM step, by hand: ``(dx, dh_prev, dc_prev, dW_x, dW_h, db)``.

    Args:
        dh, dc: ``(B, H)``, the gradients of the loss with respect to the step's ``h`` and ``c``
            that arrive from later (the next step and the output at this step).
        cache: from :func:`lstm_cell_cache`.

    Returns:
        ``dx (B, I)``, ``dh_prev (B, H)``, ``dc_prev (B, H)``, ``dW_x (4H, I)``, ``dW_h (4H, H)``,
        ``db (4H,)``, the stacked gradients in the order i, f, g, o.
    """
    delta_c = dc + dh * cache["o"] * (1 - np.tanh(cache["c"]) ** 2)  # (B, H): c_t reaches the loss directly and via h_t
    dA = lstm_gate_gradients(delta_c, dh, cache)  # (B, 4H)
    dc_prev = delta_c * cache["f"]  # c_t = f * c_prev + ...
    return dA @ cache["W_x"], dA @ cache["W_h"], dc_prev, dA.T @ cache["x"], dA.T @ cache["h_prev"], dA.sum(axis=0)


def lstm_cell_backward_autograd(
    dh: np.ndarray, dc: np.ndarray, x: np.ndarray, h_prev: np.ndarray, c_prev: np.ndarray,
    W_x: np.ndarray, W_h: np.ndarray, b: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """The backward of one step by autograd (torch, float64): returns as :func:`lstm_cell_backward_numpy`."""
    inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, h_prev, c_prev, W_x, W_h, b)]
    h, c, _ = lstm_cell_torch(*inputs)
    upstream = (torch.as_tensor(dh, dtype=torch.float64), torch.as_tensor(dc, dtype=torch.float64))
    torch.autograd.backward((h, c), upstream)
    return tuple(t.grad.numpy() for t in inputs)  # dx, dh_prev, dc_prev, dW_x, dW_h, db


# ----------------------------------------------------------------------------- the backward pass over a sequence

LSTM_SEQUENCE_BACKWARD_NAMES = ("dxs", "dh0", "dc0", "dW_x", "dW_h", "db")  # what the sequence's backward returns


def lstm_forward_cache(
    xs: np.ndarray, h0: np.ndarray, c0: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """:func:`lstm_forward_numpy` keeping the caches: ``(hs (T, B, H), caches)``, a :func:`lstm_cell_cache` per step."""
    require_shape("xs", xs, ("T", "B", "I"))
    h, c, hs, caches = h0, c0, [], []
    for x in xs:  # x: (B, I)
        h, c, cache = lstm_cell_cache(x, h, c, W_x, W_h, b)
        hs.append(h)
        caches.append(cache)
    return np.stack(hs), caches


def lstm_backward_numpy(dhs: np.ndarray, caches: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Backpropagation through time for :func:`lstm_forward_cache`, by hand: ``(dxs, dh0, dc0, dW_x, dW_h, db)``.

    ``dhs (T, B, H)`` is dL/dh_t from each step's output alone. Going from t = T-1 down to 0, the
    gradient reaching h_t is ``dhs[t]`` plus what step t+1 sends back (``dh_prev``), the one
    reaching c_t is what step t+1 sends back along the cell (``dc_prev``); the weights' gradients
    are summed over the steps. Returns ``dxs (T, B, I)``, ``dh0``, ``dc0 (B, H)``, ``dW_x``,
    ``dW_h``, ``db`` as :func:`lstm_cell_backward_numpy`.
    """
    dh_next, dc_next = np.zeros_like(dhs[0]), np.zeros_like(dhs[0])  # (B, H): nothing comes back from after T-1
    dxs = [None] * len(caches)
    dW_x, dW_h, db = (np.zeros_like(caches[0]["W_x"]), np.zeros_like(caches[0]["W_h"]),
                      np.zeros(caches[0]["W_h"].shape[0]))
    for t in reversed(range(len(caches))):
        dxs[t], dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_cell_backward_numpy(dhs[t] + dh_next, dc_next, caches[t])
        dW_x, dW_h, db = dW_x + dWx_t, dW_h + dWh_t, db + db_t
    return np.stack(dxs), dh_next, dc_next, dW_x, dW_h, db


def lstm_backward_torch(
    dhs: np.ndarray, xs: np.ndarray, h0: np.ndarray, c0: np.ndarray, W_x: np.ndarray, W_h: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, ...]:
    """The same gradients from ``torch.nn.LSTM`` and autograd in float64 (``b`` goes into ``bias_ih``, ``bias_hh`` = 0).

    Returns as :func:`lstm_backward_numpy`.
    """
    T, B, n_in = xs.shape
    lstm = nn.LSTM(n_in, h0.shape[1]).double()
    with torch.no_grad():
        for name, value in (("weight_ih_l0", W_x), ("weight_hh_l0", W_h), ("bias_ih_l0", b), ("bias_hh_l0", 0 * b)):
            getattr(lstm, name).copy_(torch.from_numpy(np.asarray(value, dtype=np.float64)))
    inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (xs, h0[None], c0[None])]
    hs, _ = lstm(inputs[0], (inputs[1], inputs[2]))  # (T, B, H)
    hs.backward(torch.as_tensor(dhs, dtype=torch.float64))
    return (inputs[0].grad.numpy(), inputs[1].grad[0].numpy(), inputs[2].grad[0].numpy(),
            lstm.weight_ih_l0.grad.numpy(), lstm.weight_hh_l0.grad.numpy(), lstm.bias_ih_l0.grad.numpy())
