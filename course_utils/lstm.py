"""The LSTM cell, from scratch in numpy and in PyTorch, laid out like ``torch.nn.LSTM``.

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

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

GATES = ("i", "f", "g", "o")  # torch.nn.LSTM's row blocks, in order


def check_shape_arg(name: str, value: np.ndarray | torch.Tensor, expected: Sequence[int | None]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value.shape`` matches ``expected`` (None: any size)."""
    shape = tuple(value.shape)
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected, strict=True)):
        wanted = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} has shape {shape}, expected {wanted}")


def gate_slices(hidden_size: int, names: Sequence[str] = GATES) -> dict[str, slice]:
    """``{gate: rows}`` of the stacked weights, e.g. ``{"i": slice(0, H), "f": slice(H, 2H), ...}``."""
    return {name: slice(k * hidden_size, (k + 1) * hidden_size) for k, name in enumerate(names)}


def gated_param_count(n_blocks: int, input_size: int, hidden_size: int, n_biases: int = 1) -> int:
    """Parameters of a layer of ``n_blocks`` gate/candidate blocks: ``n_blocks * ((I + H) * H + n_biases * H)``."""
    if min(n_blocks, input_size, hidden_size) < 1 or n_biases not in (0, 1, 2):
        raise ValueError(
            f"need n_blocks, input_size, hidden_size >= 1 and n_biases in 0..2, "
            f"got {n_blocks}, {input_size}, {hidden_size}, {n_biases}"
        )
    return n_blocks * ((input_size + hidden_size) * hidden_size + n_biases * hidden_size)


def lstm_param_count(input_size: int, hidden_size: int, n_biases: int = 1) -> int:
    """Parameters of one LSTM layer: four blocks of ``[W_x | W_h]`` plus ``n_biases`` bias vectors each.

    ``n_biases=1`` is the textbook count ``4 * ((I + H) * H + H)``; ``n_biases=2`` is what
    ``torch.nn.LSTM`` stores (``b_ih`` and ``b_hh``).
    """
    return gated_param_count(4, input_size, hidden_size, n_biases)


def sigmoid(a: np.ndarray) -> np.ndarray:
    """Logistic function, computed without overflow for large negative ``a``."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _check_step_shapes(x, h_prev, W_x, W_h, b, n_blocks: int) -> tuple[int, int]:
    check_shape_arg("x", x, (None, None))
    batch, inputs = x.shape
    check_shape_arg("W_h", W_h, (None, None))
    hidden = W_h.shape[1]
    check_shape_arg("W_h", W_h, (n_blocks * hidden, hidden))
    check_shape_arg("W_x", W_x, (n_blocks * hidden, inputs))
    check_shape_arg("b", b, (n_blocks * hidden,))
    check_shape_arg("h_prev", h_prev, (batch, hidden))
    return batch, hidden


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
    batch, hidden = _check_step_shapes(x, h_prev, W_x, W_h, b, 4)
    check_shape_arg("c_prev", c_prev, (batch, hidden))
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H) pre-activations of all four blocks
    s = gate_slices(hidden)
    a_i, a_f, a_g, a_o = (a[:, s[k]] for k in GATES)  # each (B, H)
    if peephole is not None:
        check_shape_arg("peephole", peephole, (3, hidden))
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
    check_shape_arg("xs", xs, (None, None, None))
    h, c, hs = h0, c0, []
    for x in xs:  # x: (B, I)
        h, c, _ = lstm_cell_numpy(x, h, c, W_x, W_h, b)
        hs.append(h)
    return np.stack(hs), (h, c)


def weights_from_torch(layer: nn.Module, n_blocks: int = 4) -> dict[str, torch.Tensor]:
    """``{"W_x", "W_h", "b_x", "b_h"}`` (detached tensors) of a one-layer ``nn.LSTM``/``nn.GRU`` or cell."""
    if isinstance(layer, (nn.LSTM, nn.GRU)):
        if layer.num_layers != 1 or layer.bidirectional or getattr(layer, "proj_size", 0):
            raise ValueError("only a one-layer, one-directional recurrent layer without projection can be copied")
        suffix = "_l0"
    else:
        suffix = ""
    W_x = getattr(layer, "weight_ih" + suffix).detach()
    W_h = getattr(layer, "weight_hh" + suffix).detach()
    if W_x.shape[0] != n_blocks * layer.hidden_size:
        raise ValueError(f"expected {n_blocks} stacked blocks, got weight_ih of shape {tuple(W_x.shape)}")
    if layer.bias:
        b_x = getattr(layer, "bias_ih" + suffix).detach()
        b_h = getattr(layer, "bias_hh" + suffix).detach()
    else:
        b_x = b_h = W_x.new_zeros(W_x.shape[0])
    return {"W_x": W_x, "W_h": W_h, "b_x": b_x, "b_h": b_h}


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
    batch, hidden = _check_step_shapes(x, h_prev, W_x, W_h, b, 4)
    check_shape_arg("c_prev", c_prev, (batch, hidden))
    a = x @ W_x.T + h_prev @ W_h.T + b  # (B, 4H)
    a_i, a_f, a_g, a_o = a.chunk(4, dim=1)  # each (B, H), in the order i, f, g, o
    if peephole is not None:
        check_shape_arg("peephole", peephole, (3, hidden))
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
        check_shape_arg("x", x, (None, self.input_size))
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
        check_shape_arg("xs", xs, (None, None, self.cell.input_size))
        if self.cell.peephole is not None or return_gates:
            return self._forward_stepwise(xs, state, return_gates)
        cell = self.cell
        T, B, _ = xs.shape
        if state is None:
            zeros = xs.new_zeros(B, cell.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        check_shape_arg("h", h0, (B, cell.hidden_size))
        check_shape_arg("c", c0, (B, cell.hidden_size))
        # The same arithmetic as LSTMCell.step, faster: the input part of all T steps in one
        # matmul, then the recurrence with its backward pass written out (LSTMSequence).
        x_proj = torch.addmm(cell.b, xs.reshape(T * B, -1), cell.W_x.T).view(T, B, -1)  # (T, B, 4H)
        outputs, h, c = LSTMSequence.apply(x_proj, h0, c0, cell.W_h)
        return outputs, (h, c)

    def _forward_stepwise(self, xs: torch.Tensor, state, return_gates: bool):
        """The plain loop over :meth:`LSTMCell.step`, with autograd (peepholes, or gates wanted)."""
        outputs, gates = [], {k: [] for k in GATES}
        for x in xs:  # x: (B, I)
            h, c, step_gates = self.cell.step(x, state)
            state = (h, c)
            outputs.append(h)
            for k in GATES:
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


class LSTMSequence(torch.autograd.Function):
    """All T steps of the plain LSTM, with backpropagation through time written out by hand.

    ``LSTMSequence.apply(x_proj, h0, c0, W_h)`` takes the input part of every pre-activation,
    ``x_proj = x @ W_x.T + b`` ``(T, B, 4H)``, the state ``(B, H)`` and ``W_h`` ``(4H, H)``, and
    returns ``(hs (T, B, H), h_T, c_T)``. Autograd would record about a dozen operations per
    step and replay them backwards; this backward does the same calculus in a few fused
    operations per step and computes ``dL/dW_h`` with one matmul over all steps. It is
    checked against autograd (``gradcheck``) and ``torch.nn.LSTM`` in ``tests/test_lstm.py``.
    """

    @staticmethod
    def forward(ctx, x_proj: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, W_h: torch.Tensor):
        T, B, H4 = x_proj.shape
        H = H4 // 4
        # tanh(a) = 2 sigmoid(2a) - 1: doubling g's pre-activation lets one sigmoid serve all four blocks
        scale = x_proj.new_ones(H4)
        scale[2 * H : 3 * H] = 2.0
        x_scaled, W_scaled = x_proj * scale, W_h.T * scale  # (T, B, 4H), (H, 4H)
        acts = torch.empty_like(x_proj)  # (T, B, 4H): i, f, g, o after their nonlinearities
        cs, tanh_cs, hs = (x_proj.new_empty(T, B, H) for _ in range(3))  # c_t, tanh(c_t), h_t
        h, c = h0, c0
        for t in range(T):
            act = torch.sigmoid(torch.addmm(x_scaled[t], h, W_scaled), out=acts[t])  # (B, 4H)
            i, f, g, o = act.chunk(4, dim=1)
            g.mul_(2).sub_(1)  # now tanh(a_g)
            c = torch.addcmul(f * c, i, g, out=cs[t])  # f * c + i * g
            h = torch.mul(o, torch.tanh(c, out=tanh_cs[t]), out=hs[t])
        ctx.save_for_backward(acts, cs, tanh_cs, hs, h0, c0, W_h)
        return hs, h.clone(), c.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_hs: torch.Tensor, grad_hT: torch.Tensor, grad_cT: torch.Tensor):
        acts, cs, tanh_cs, hs, h0, c0, W_h = ctx.saved_tensors
        T, B, H = hs.shape
        i, f, g, o = acts.chunk(4, dim=2)  # each (T, B, H)
        c_prev = torch.cat([c0[None], cs[:-1]])  # (T, B, H)
        # Local derivatives of every step at once. With dc_t the total gradient reaching c_t:
        #   dA_i = dc g i(1-i),  dA_f = dc c_prev f(1-f),  dA_g = dc i (1-g^2),  dA_o = dh tanh(c) o(1-o)
        by_dc = torch.stack([g * torch.addcmul(i, i, i, value=-1),
                             c_prev * torch.addcmul(f, f, f, value=-1),
                             torch.addcmul(i, i * g, g, value=-1)], dim=2)  # (T, B, 3, H)
        by_dh = tanh_cs * torch.addcmul(o, o, o, value=-1)  # (T, B, H)
        dc_by_dh = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # dc_t/dh_t = o (1 - tanh(c)^2)
        dA = torch.empty_like(acts)  # (T, B, 4H): dL/d pre-activations
        dh = grad_hs[T - 1] + grad_hT  # (B, H)
        dc = grad_cT.clone()  # (B, H)
        for t in range(T - 1, -1, -1):
            dc.addcmul_(dh, dc_by_dh[t])
            torch.mul(dc[:, None, :], by_dc[t], out=dA[t, :, : 3 * H].view(B, 3, H))
            torch.mul(dh, by_dh[t], out=dA[t, :, 3 * H :])
            dc.mul_(f[t])  # dL/dc_{t-1}
            dh = torch.addmm(grad_hs[t - 1], dA[t], W_h) if t > 0 else dA[t] @ W_h  # dL/dh_{t-1}
        h_prev = torch.cat([h0[None], hs[:-1]])  # (T, B, H)
        dW_h = dA.view(T * B, 4 * H).T @ h_prev.view(T * B, H)  # (4H, H), all steps in one matmul
        return dA, dh, dc, dW_h


def set_forget_bias(lstm: nn.LSTM, value: float = 1.0) -> None:
    """Set the forget gate's total bias ``b_f = b_ih[f] + b_hh[f]`` of a one-layer ``nn.LSTM`` to ``value``.

    A positive forget bias starts training with ``f`` near ``sigmoid(value)`` instead of
    0.5, so the cell state (and its gradient) decays slowly from the first step on
    (recommended by Jozefowicz et al. 2015).
    """
    rows = gate_slices(lstm.hidden_size)["f"]
    with torch.no_grad():
        lstm.bias_ih_l0[rows] = value
        lstm.bias_hh_l0[rows] = 0.0


# --- A character-level language model, for the experiments on real text in 03 and 04 ---

RECURRENT_LAYERS = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def recurrent_layer(kind: str, input_size: int, hidden_size: int, *, forget_bias: float | None = 1.0) -> nn.Module:
    """A batch-first ``torch.nn.RNN``, ``LSTM`` or ``GRU``; an LSTM gets its forget bias set (see below)."""
    if kind not in RECURRENT_LAYERS:
        raise ValueError(f"kind must be one of {', '.join(RECURRENT_LAYERS)}, got {kind!r}")
    layer = RECURRENT_LAYERS[kind](input_size, hidden_size, batch_first=True)
    if kind == "LSTM" and forget_bias is not None:
        set_forget_bias(layer, forget_bias)
    return layer


class CharLM(nn.Module):
    """Embedding, a recurrent layer, a linear read-out: next-character logits at every position.

    ``forward(ids)`` takes ``(B, T)`` character ids and returns ``(B, T, vocab_size)`` logits.
    """

    def __init__(self, kind: str, vocab_size: int, embed_size: int, hidden_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = recurrent_layer(kind, embed_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T)")
        outputs, _ = self.rnn(self.embed(ids))  # (B, T, H)
        return self.head(outputs)  # (B, T, V)


def char_lm_batches(
    ids: np.ndarray | torch.Tensor, n_batches: int, batch_size: int, seq_len: int, *, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n_batches`` random windows of ``ids``: inputs ``(B, L)`` and targets shifted by one ``(B, L)``."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() != 1:
        raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (N,)")
    if len(ids) < seq_len + 2:
        raise ValueError(f"ids has {len(ids)} characters, too few for windows of seq_len + 1 = {seq_len + 1}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - seq_len - 1, (n_batches, batch_size), generator=g)
    offsets = torch.arange(seq_len + 1)
    windows = [ids[s[:, None] + offsets] for s in starts]  # each (B, L + 1)
    return [(w[:, :-1], w[:, 1:]) for w in windows]


def char_lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of next-character prediction, a ``loss_fn`` for ``fit``."""
    x, y = batch  # (B, L), (B, L)
    logits = model(x)  # (B, L, V)
    return nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())


@torch.no_grad()
def char_accuracy(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Share of positions where the most likely next character is the right one (model in eval mode)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    right = total = 0
    for x, y in batches:
        pred = model(x.to(device)).argmax(dim=-1)  # (B, L)
        right += (pred == y.to(device)).sum().item()
        total += y.numel()
    model.train(was_training)
    return right / total
