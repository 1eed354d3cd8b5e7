"""Notebook 03, sections 1-4 (and 04's comparison): the LSTM cell, from scratch, laid out like ``torch.nn.LSTM``.

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
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .checks import CheckFailed, check_close, check_shape, check_type, name_mistake
from .gated import check_step_shapes, gate_slices, gated_param_count, reorder_blocks, sigmoid, weights_from_torch
from .lstm_backward import LSTMHandwrittenBPTT
from .shapes import require_shape

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
    batch, hidden = check_step_shapes(x, h_prev, W_x, W_h, {"b": b}, 4)
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
            "b": (w["b_x"] + w["b_h"]).cpu().numpy()}


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
    batch, hidden = check_step_shapes(x, h_prev, W_x, W_h, {"b": b}, 4)
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

        ``state`` and ``h_T, c_T`` are ``(B, H)`` (``torch.nn.LSTM`` adds a leading layer axis).
        """
        require_shape("xs", xs, ("T", "B", self.cell.input_size))
        if self.cell.peephole is not None or return_gates:
            return self._forward_stepwise(xs, state, return_gates)
        cell = self.cell
        T, B, _ = xs.shape
        if state is None:
            zeros = xs.new_zeros(B, cell.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        require_shape("h", h0, (B, cell.hidden_size))
        require_shape("c", c0, (B, cell.hidden_size))
        # The same arithmetic as LSTMCell.step, faster: the input part of all T steps in one
        # matmul, then the recurrence with its backward pass written out by hand
        # (course_utils/lstm_backward.py: this is the path that runs for a plain LSTM).
        x_proj = torch.addmm(cell.b, xs.reshape(T * B, -1), cell.W_x.T).view(T, B, -1)  # (T, B, 4H)
        outputs, h, c = LSTMHandwrittenBPTT.apply(x_proj, h0, c0, cell.W_h)
        return outputs, (h, c)

    def _forward_stepwise(self, xs: torch.Tensor, state, return_gates: bool):
        """The plain loop over :meth:`LSTMCell.step`, with autograd (peepholes, or gates wanted)."""
        outputs, gates = [], {k: [] for k in LSTM_GATES}
        for x in xs:  # x: (B, I)
            h, c, step_gates = self.cell.step(x, state)
            state = (h, c)
            outputs.append(h)
            for k in LSTM_GATES:
                gates[k].append(step_gates[k])
        result = (torch.stack(outputs), state)  # (T, B, H)
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
            model.cell.b.copy_(w["b_x"] + w["b_h"])
        return model


# ----------------------------------------------------------------------------- the exercise's check

def _lstm_mistakes(x, h_prev, c_prev, W_x, W_h, b) -> dict[str, np.ndarray]:
    """``{hint: stacked (h, c)}`` that the usual wrong LSTM steps return (notebook 03, exercise 1)."""
    h, c, gates = lstm_cell_numpy(x, h_prev, c_prev, W_x, W_h, b)
    i, f, o = gates["i"], gates["f"], gates["o"]
    a_g = (x @ W_x.T + h_prev @ W_h.T + b)[:, gate_slices(h.shape[1])["g"]]  # (B, H)
    c_sigmoid_g = f * c_prev + i * sigmoid(a_g)
    c_forget_h = f * h_prev + i * gates["g"]
    mistakes = {"return (c, h) instead of (h, c)": np.stack([c, h])}
    for read in (("i", "f", "o", "g"), ("i", "g", "f", "o"), ("f", "i", "g", "o")):  # ("i", "g", "f", "o"): TF 1's
        weights = (reorder_blocks(w, read, LSTM_GATES) for w in (W_x, W_h, b))
        h2, c2, _ = lstm_cell_numpy(x, h_prev, c_prev, *weights)
        mistakes[f"read the stacked rows as {', '.join(read)} (PyTorch's order is i, f, g, o)"] = np.stack([h2, c2])
    mistakes |= {
        "compute h = o * c, without the tanh of c": np.stack([o * c, c]),
        "use the old cell state in h (o * tanh(c_prev)) instead of the new c": np.stack([o * np.tanh(c_prev), c]),
        "squash the candidate g with a sigmoid instead of tanh": np.stack([o * np.tanh(c_sigmoid_g), c_sigmoid_g]),
        "multiply the forget gate with h_prev instead of c_prev": np.stack([o * np.tanh(c_forget_h), c_forget_h]),
        "leave out the bias b": np.stack(lstm_cell_numpy(x, h_prev, c_prev, W_x, W_h, 0 * b)[:2]),
    }
    return mistakes


def check_lstm_cell(fn, seed: int = 0) -> None:
    """Test ``fn(x, h_prev, c_prev, W_x, W_h, b) -> (h, c)`` against :func:`lstm_cell_numpy`.

    Fails naming the shape that is wrong or the usual mistake the values match: (c, h)
    returned, another gate order, ``h = o * c``, the old cell state in h, a sigmoid
    candidate, the forget gate on h_prev, no bias.
    """
    rng = np.random.default_rng(seed)
    B, n_in, H = 3, 4, 5
    args = (rng.normal(size=(B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
            rng.normal(size=(4 * H, n_in)), rng.normal(size=(4 * H, H)), rng.normal(size=4 * H))
    result = fn(*[a.copy() for a in args])
    check_type("the result", result, tuple)
    if len(result) != 2:
        raise CheckFailed(f"return two arrays, (h, c); got a tuple of {len(result)}")
    h_got, c_got = result
    check_shape("h", h_got, (B, H))
    check_shape("c", c_got, (B, H))
    h_exp, c_exp, _ = lstm_cell_numpy(*args)
    got = np.stack([np.asarray(h_got, dtype=np.float64), np.asarray(c_got, dtype=np.float64)])
    name_mistake("(h, c)", got, np.stack([h_exp, c_exp]), _lstm_mistakes(*args))
    check_close("c (the new cell state)", c_got, c_exp)
    check_close("h (the new hidden state)", h_got, h_exp)
