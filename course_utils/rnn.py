"""Notebook 01, sections 3-6: the vanilla (Elman) RNN, in numpy and in PyTorch, batched and sequence-first.

The recurrence, for time steps t = 0, 1, ..., T-1 and an initial state h_{-1}::

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)      # the hidden state
    o_t = W_hy h_t + b_y                           # the output logits (g(o_t) is applied by the loss)

Conventions (the same as ``torch.nn.RNN`` with its default ``batch_first=False``):

- a sequence ``x`` has shape ``(T, B, input_size)``: time first, then the batch;
- a state ``h`` has shape ``(B, hidden_size)``; hidden states over time ``(T, B, hidden_size)``;
- weights are stored output-by-input, as in ``torch.nn``: ``W_xh (H, I)``, ``W_hh (H, H)``,
  ``b_h (H,)``, ``W_hy (O, H)``, ``b_y (O,)``. With a batch of row vectors the cell is
  ``h_t = tanh(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)``.
- The initial state is called ``h_init`` here (PyTorch calls it ``h_0``; in the course's
  notation, which numbers inputs from 0, it is h_{-1}).

``torch.nn.RNN`` has two bias vectors, ``bias_ih_l0`` and ``bias_hh_l0``, that are simply
added: our single ``b_h`` equals their sum (see :func:`params_from_torch`).

Main entry points:

- numpy: :func:`init_rnn_params`, :func:`rnn_cell_forward`, :func:`rnn_forward`, :func:`rnn_output`;
- PyTorch: :class:`RNN` (a from-scratch ``torch.nn.RNN`` look-alike), :class:`CharRNN`
  (one-hot characters in, logits out);
- :func:`params_from_torch` copies a ``torch.nn.RNN``'s weights into numpy arrays;
- :func:`check_rnn_cell` and :func:`check_rnn_forward` test a learner's implementation and
  name the usual mistakes;
- exercise 4: :func:`sequence_loss` (the next-character loss of raw ``(T, B, V)`` logits)
  and :func:`check_sequence_loss`;
- exercise 5, graded by outcome: :func:`check_char_rnn_config` trains a :class:`CharRNN` with
  the learner's hyperparameters (:func:`char_rnn_config_loss`) and compares its validation
  loss with the bigram model's on the same held-out tenth (:func:`bigram_val_loss`).

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.rnn`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .shared.lm import corpus_data

Params = dict[str, np.ndarray]  # keys "W_xh", "W_hh", "b_h", "W_hy", "b_y"
PARAM_NAMES = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")


def _rnn_shapes(x: np.ndarray, h: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray,
                *, names: tuple[str, str], sequence: bool) -> None:
    """Check the arguments of a step (``x`` is ``(B, I)``) or a sequence (``(T, B, I)``).

    Each size is read from the argument that defines it, so an error names the argument
    that is wrong: H from ``W_hh`` (square), I and B from ``x``. A transposed ``W_xh``
    is recognised when I != H; when I == H its shape cannot tell, only its values can.
    """
    x_name, h_name = names
    require_shape("W_hh", W_hh, ("H", "H"))
    if W_hh.shape[0] != W_hh.shape[1]:
        raise ValueError(f"W_hh has shape {W_hh.shape}, expected (H, H): it maps the hidden state to itself.")
    H = W_hh.shape[0]
    I_hint = W_xh.shape[1] if np.ndim(W_xh) == 2 and W_xh.shape[0] == H else "input_size"  # for the message only
    if sequence:
        axes, hint = ("T", "B", I_hint), "Sequences are (T, B, input_size): time first, then the batch."
    else:
        axes = ("B", I_hint)
        hint = "Inputs are batched: add a batch axis, e.g. x_t[None]." if np.ndim(x) == 1 else ""
    if np.ndim(x) != len(axes):
        require_shape(x_name, x, axes, hint)  # raises: x has the wrong number of axes
    n_in, B = x.shape[-1], x.shape[-2]
    if W_xh.shape == (n_in, H) and n_in != H:
        raise ValueError(f"W_xh has shape {W_xh.shape}, expected {(H, n_in)} = (hidden_size, input_size): it looks "
                         "transposed. Weights are stored output-by-input, like torch.nn's weight_ih.")
    where = f"(hidden_size, input_size), with H = {H} from W_hh and I = {n_in} from {x_name}."
    require_shape("W_xh", W_xh, (H, n_in), where)
    require_shape("b_h", b_h, (H,))
    if sequence and np.shape(h) == (x.shape[0], H) and x.shape[0] != B:
        raise ValueError(f"{x_name} has shape {x.shape} and {h_name} {np.shape(h)}: {x_name} looks batch-first "
                         f"(B, T, input_size). Sequences are time-first: pass {x_name}.transpose(1, 0, 2).")
    require_shape(h_name, h, (B, H))


# ----------------------------------------------------------------------------- numpy


def init_rnn_params(
    input_size: int,
    hidden_size: int,
    output_size: int,
    rng: np.random.Generator,
    dtype: type = np.float64,
) -> Params:
    """Random parameters, uniform in ``[-1/sqrt(H), 1/sqrt(H)]`` like ``torch.nn.RNN``; biases zero."""
    k = 1.0 / np.sqrt(hidden_size)

    def uniform(*shape: int) -> np.ndarray:
        return rng.uniform(-k, k, size=shape).astype(dtype)

    return {
        "W_xh": uniform(hidden_size, input_size),  # (H, I)
        "W_hh": uniform(hidden_size, hidden_size),  # (H, H)
        "b_h": np.zeros(hidden_size, dtype=dtype),  # (H,)
        "W_hy": uniform(output_size, hidden_size),  # (O, H)
        "b_y": np.zeros(output_size, dtype=dtype),  # (O,)
    }


def rnn_cell_forward(
    x_t: np.ndarray, h_prev: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray
) -> np.ndarray:
    """One step: ``h_t = tanh(x_t W_xh^T + h_prev W_hh^T + b_h)``.

    Args:
        x_t: inputs at this step, ``(B, I)``.
        h_prev: the previous hidden state, ``(B, H)``.
        W_xh ``(H, I)``, W_hh ``(H, H)``, b_h ``(H,)``.

    Returns:
        h_t, ``(B, H)``.
    """
    _rnn_shapes(x_t, h_prev, W_xh, W_hh, b_h, names=("x_t", "h_prev"), sequence=False)
    return np.tanh(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)  # (B, H)


def rnn_forward(
    x: np.ndarray, h_init: np.ndarray, W_xh: np.ndarray, W_hh: np.ndarray, b_h: np.ndarray
) -> np.ndarray:
    """Run the cell over a sequence: the same weights at every step.

    Args:
        x: the input sequence, ``(T, B, I)``.
        h_init: the state before the first step, ``(B, H)`` (zeros for a fresh sequence).

    Returns:
        hs, every hidden state ``h_0 .. h_{T-1}``, ``(T, B, H)``; ``hs[-1]`` is the final state.
    """
    _rnn_shapes(x, h_init, W_xh, W_hh, b_h, names=("x", "h_init"), sequence=True)
    # The same as calling rnn_cell_forward at every step, but the input term does not depend
    # on h, so it is computed for all steps in one matrix product, outside the loop.
    x_proj = x @ W_xh.T + b_h  # (T, B, H)
    hs = np.empty_like(x_proj)  # (T, B, H)
    h = h_init
    for t in range(x.shape[0]):
        h = np.tanh(x_proj[t] + h @ W_hh.T)  # (B, H)
        hs[t] = h
    return hs


def rnn_output(hs: np.ndarray, W_hy: np.ndarray, b_y: np.ndarray) -> np.ndarray:
    """Output logits ``o_t = W_hy h_t + b_y`` for every step: ``(..., H) -> (..., O)``."""
    require_shape("W_hy", W_hy, ("output_size", "hidden_size"))
    n_out, H = W_hy.shape
    require_shape("b_y", b_y, (n_out,))
    if hs.shape[-1:] != (H,):
        raise ValueError(f"hs has shape {hs.shape}, expected (..., {H}) to match W_hy {W_hy.shape}.")
    return hs @ W_hy.T + b_y


def softmax(z: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(ids: np.ndarray, size: int, dtype: type = np.float64) -> np.ndarray:
    """``(...,)`` integer ids -> ``(..., size)`` one-hot vectors."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"ids must lie in 0..{size - 1}, got {ids.min()}..{ids.max()}")
    return np.eye(size, dtype=dtype)[ids]


def _require_simple_rnn(rnn: nn.RNN) -> None:
    if rnn.num_layers != 1 or rnn.bidirectional or rnn.nonlinearity != "tanh" or rnn.batch_first:
        raise ValueError("expected a one-layer, unidirectional, tanh, sequence-first torch.nn.RNN")


def params_from_torch(rnn: nn.RNN, dtype: type = np.float64) -> Params:
    """Copy a one-layer tanh ``torch.nn.RNN``'s weights into numpy (``b_h = b_ih + b_hh``).

    The output layer is not part of ``nn.RNN``: the returned dict has only W_xh, W_hh and b_h.
    """
    _require_simple_rnn(rnn)

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(dtype)

    b_h = arr(rnn.bias_ih_l0) + arr(rnn.bias_hh_l0) if rnn.bias else np.zeros(rnn.hidden_size, dtype=dtype)
    return {"W_xh": arr(rnn.weight_ih_l0), "W_hh": arr(rnn.weight_hh_l0), "b_h": b_h}


# ----------------------------------------------------------------------------- PyTorch


class RNN(nn.Module):
    """A one-layer tanh RNN written out step by step; same call as ``torch.nn.RNN``.

    ``forward(x, h_0=None)`` takes ``x (T, B, I)`` and ``h_0 (1, B, H)`` (zeros if omitted) and
    returns ``(out (T, B, H), h_n (1, B, H))`` exactly as ``nn.RNN`` does, so either can be used
    inside a model. Parameters: ``W_xh (H, I)``, ``W_hh (H, H)``, ``b_h (H,)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1.0 / hidden_size**0.5  # nn.RNN's initialisation
        self.W_xh = nn.Parameter(torch.empty(hidden_size, input_size).uniform_(-k, k))
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size).uniform_(-k, k))
        self.b_h = nn.Parameter(torch.zeros(hidden_size))

    @classmethod
    def from_torch(cls, rnn: nn.RNN) -> RNN:
        """A copy of a one-layer tanh ``nn.RNN``'s weights (its two biases summed into ``b_h``)."""
        _require_simple_rnn(rnn)
        model = cls(rnn.input_size, rnn.hidden_size).to(device=rnn.weight_ih_l0.device, dtype=rnn.weight_ih_l0.dtype)
        with torch.no_grad():
            model.W_xh.copy_(rnn.weight_ih_l0)
            model.W_hh.copy_(rnn.weight_hh_l0)
            model.b_h.copy_(rnn.bias_ih_l0 + rnn.bias_hh_l0 if rnn.bias else torch.zeros_like(model.b_h))
        return model

    def forward(self, x: torch.Tensor, h_0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        require_shape("x", x, ("T", "B", self.input_size), "Sequences are (T, B, input_size): time first.")
        T, B, _ = x.shape
        if h_0 is None:
            h_0 = x.new_zeros(1, B, self.hidden_size)
        require_shape("h_0", h_0, (1, B, self.hidden_size))
        x_proj = x @ self.W_xh.T + self.b_h  # (T, B, H): the input part of every step at once
        h = h_0[0]  # (B, H)
        W_hh_T = self.W_hh.T
        outputs = []
        for x_t in x_proj.unbind(0):  # (B, H); unbind, not x_proj[t], whose backward grows with T^2
            h = torch.tanh(torch.addmm(x_t, h, W_hh_T))  # (B, H)
            outputs.append(h)
        out = torch.stack(outputs)  # (T, B, H)
        return out, h.unsqueeze(0)


class CharRNN(nn.Module):
    """Character model: one-hot ids -> RNN -> logits over the vocabulary at every step.

    ``forward(ids (T, B) long, h_0=None) -> (logits (T, B, V), h_n (1, B, H))``. The
    recurrent layer is the from-scratch :class:`RNN`, or ``torch.nn.RNN`` with
    ``use_torch_rnn=True`` (faster: one fused kernel).
    """

    def __init__(self, vocab_size: int, hidden_size: int, use_torch_rnn: bool = False):
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = nn.RNN(vocab_size, hidden_size) if use_torch_rnn else RNN(vocab_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)  # W_hy (V, H), b_y (V,)

    def forward(self, ids: torch.Tensor, h_0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        require_shape("ids", ids, ("T", "B"))
        x = nn.functional.one_hot(ids, self.vocab_size).to(self.head.weight.dtype)  # (T, B, V)
        out, h_n = self.rnn(x, h_0)  # (T, B, H), (1, B, H)
        return self.head(out), h_n


# ----------------------------------------------------------------------------- the sequence loss (exercise 4)


def sequence_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-character cross-entropy (nats) of a model that read ``ids``.

    Args:
        logits: ``(T, B, V)``, the model's outputs after reading ``ids[0..t]`` at step ``t``.
        ids: ``(T, B)``, the characters it read.

    Returns:
        A 0-d tensor: the mean of ``-log softmax(logits[t])[ids[t + 1]]`` over the
        ``(T - 1) * B`` predictions that have a next character (the last step has none).
    """
    require_shape("logits", logits, ("T", "B", "V"))
    require_shape("ids", ids, logits.shape[:2])
    V = logits.shape[-1]
    return nn.functional.cross_entropy(logits[:-1].reshape(-1, V), ids[1:].reshape(-1))


# ----------------------------------------------------------------------------- the course corpus, split by seed


def char_rnn_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation ids of the corpus: a tenth held out, the last tenth for seed 0.

    Seed ``s`` holds out the tenth number ``9 - s % 10``; the training text is the rest, joined.
    """
    data = corpus_data()
    ids = torch.cat([data.train, data.val])  # the whole corpus
    size = len(ids) // 10
    fold = 9 - seed % 10
    val = ids[fold * size:(fold + 1) * size]
    return torch.cat([ids[: fold * size], ids[(fold + 1) * size:]]), val
