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
  notation, which numbers inputs from 0 as the lecture does, it is h_{-1}).

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
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from .checks import (
    CheckFailed,
    check_close,
    check_scalar,
    check_shape,
    learning_rate_hints,
    name_mistake,
    outcome_verdict,
    refuse_reference,
)
from .data.text import CharVocab, load_corpus
from .lm import next_token_loss, ngram_probabilities, random_windows, validation_windows
from .seed import seeded_run
from .shapes import require_shape
from .training import evaluate, fit

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


# ----------------------------------------------------------------------------- exercise checks


def _cell_case(rng: np.random.Generator, B: int = 3, n_in: int = 4, H: int = 5) -> tuple[np.ndarray, ...]:
    return (
        rng.normal(size=(B, n_in)),
        rng.normal(size=(B, H)) * 0.5,
        rng.normal(size=(H, n_in)) * 0.5,
        rng.normal(size=(H, H)) * 0.5,
        rng.normal(size=H) * 0.5,
    )


def check_rnn_cell(fn: Callable[..., np.ndarray], seed: int = 0) -> None:
    """Test ``fn(x_t, h_prev, W_xh, W_hh, b_h) -> h_t`` against :func:`rnn_cell_forward`.

    Fails with a message that names the shape that is wrong, or the usual mistake that the
    values match (no tanh, no bias, a transposed W_hh, h_prev ignored, ...). Returns the
    largest absolute difference.
    """
    refuse_reference(fn, ("rnn_cell_forward", "rnn_forward", "RNN"))
    x_t, h_prev, W_xh, W_hh, b_h = _cell_case(np.random.default_rng(seed))
    got = fn(x_t, h_prev, W_xh, W_hh, b_h)
    expected = rnn_cell_forward(x_t, h_prev, W_xh, W_hh, b_h)
    check_shape("h_t", got, expected.shape)
    got_np = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    a_x, a_h = x_t @ W_xh.T, h_prev @ W_hh.T
    name_mistake("h_t", got_np, expected, {
        "forget the tanh (h_t is the pre-activation)": a_x + a_h + b_h,
        "leave out the bias b_h": np.tanh(a_x + a_h),
        "use W_hh.T instead of W_hh (h_prev @ W_hh instead of h_prev @ W_hh.T)": np.tanh(a_x + h_prev @ W_hh + b_h),
        "ignore h_prev (no recurrent term)": np.tanh(a_x + b_h),
        "ignore x_t (no input term)": np.tanh(a_h + b_h),
        "use a sigmoid instead of tanh": 1 / (1 + np.exp(-(a_x + a_h + b_h))),
    })
    check_close("h_t", got, expected)


def check_rnn_forward(fn: Callable[..., np.ndarray], seed: int = 0, T: int = 4) -> None:
    """Test ``fn(x, h_init, W_xh, W_hh, b_h) -> hs (T, B, H)`` against :func:`rnn_forward`."""
    refuse_reference(fn, ("rnn_forward", "RNN"))  # calling rnn_cell_forward in the loop is allowed
    rng = np.random.default_rng(seed)
    x_t, h_init, W_xh, W_hh, b_h = _cell_case(rng)
    x = rng.normal(size=(T, *x_t.shape))  # (T, B, I)
    got = fn(x, h_init, W_xh, W_hh, b_h)
    expected = rnn_forward(x, h_init, W_xh, W_hh, b_h)
    shape = tuple(getattr(got, "shape", ()))
    B, H = h_init.shape
    if shape == (T + 1, B, H):
        raise CheckFailed(f"hs has shape {shape}, expected {(T, B, H)}: return h_0..h_{{T-1}}, without h_init.")
    if shape == (B, H):
        raise CheckFailed(f"hs has shape {shape}, expected {(T, B, H)}: return every hidden state, not only the last.")
    check_shape("hs", got, expected.shape)
    got_np = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    stale = np.stack([rnn_cell_forward(x[t], h_init, W_xh, W_hh, b_h) for t in range(T)])
    name_mistake("hs", got_np, expected, {"feed h_init to every step instead of the previous hidden state": stale})
    if np.allclose(got_np[0], expected[0]) and not np.allclose(got_np, expected):
        bad = int(np.argmax([not np.allclose(got_np[t], expected[t]) for t in range(T)]))
        raise CheckFailed(f"hs[0] is right but hs[{bad}] is off: is h carried from one step to the next?")
    check_close("hs", got, expected)


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


def _np_log_softmax(z: np.ndarray, axis: int = -1, shift: bool = True) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True) if shift else 0.0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return z - m - np.log(np.exp(z - m).sum(axis=axis, keepdims=True))


def _picked(log_p: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``log_p[t, b, ids[t, b]]``: the log-probability of each target, ``(T', B)``."""
    return np.take_along_axis(log_p, ids[..., None], axis=-1)[..., 0]


def _sequence_loss_mistakes(z: np.ndarray, ids: np.ndarray) -> dict[str, float]:
    """What the usual wrong losses give for logits ``z (T, B, V)`` and ``ids (T, B)``."""
    right = -_picked(_np_log_softmax(z[:-1]), ids[1:])  # (T - 1, B)
    return {
        "forget to shift the targets: logits[t] predicts the NEXT character, so pair logits[:-1] with ids[1:], "
        "not logits with ids": -_picked(_np_log_softmax(z), ids).mean(),
        "shift the wrong way (logits[1:] with ids[:-1]); logits[t] predicts ids[t + 1]":
            -_picked(_np_log_softmax(z[1:]), ids[:-1]).mean(),
        "take the log-softmax over the time axis (dim=0) instead of the vocabulary axis (dim=-1)":
            -_picked(_np_log_softmax(z[:-1], axis=0), ids[1:]).mean(),
        "take the log-softmax over the batch axis (dim=1) instead of the vocabulary axis (dim=-1)":
            -_picked(_np_log_softmax(z[:-1], axis=1), ids[1:]).mean(),
        "sum the losses instead of averaging them over the (T - 1) * B predictions": right.sum(),
        "sum over time and average over the batch only; the loss is a mean per character": right.sum(0).mean(),
        "return the log-likelihood instead of its negative (the loss is -log p)": -right.mean(),
    }


def check_sequence_loss(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0) -> None:
    """Test ``fn(logits (T, B, V), ids (T, B)) -> loss`` against :func:`sequence_loss`.

    Names the usual mistakes: targets not shifted (or shifted the wrong way), the
    log-softmax over the wrong axis, a sum instead of a mean, the sign, and an exp that
    overflows for large logits because the max was not subtracted.
    """
    refuse_reference(fn, ("sequence_loss", "next_token_loss", "cross_entropy", "log_softmax", "nll_loss",
                          "CrossEntropyLoss", "NLLLoss", "LogSoftmax"))
    rng = np.random.default_rng(seed)
    T, B, V = 6, 3, 7
    ids = torch.from_numpy(rng.integers(0, V, size=(T, B)))  # (T, B)
    cases = {"logits of size about 1": torch.from_numpy(rng.normal(size=(T, B, V))),  # (T, B, V)
             "large logits (every value + 1000)": torch.from_numpy(rng.normal(size=(T, B, V)) + 1000.0)}
    for label, logits in cases.items():
        name = f"my_sequence_loss on {label}"
        got = fn(logits.clone(), ids.clone())
        if isinstance(got, bool) or not isinstance(got, (torch.Tensor, np.ndarray, np.floating, float, int)):
            raise CheckFailed(f"{name} should be a number (a 0-d tensor), but it is a {type(got).__name__}."
                              + (" Did you forget a `return`?" if got is None else ""))
        if (got.numel() if isinstance(got, torch.Tensor) else np.size(got)) != 1:
            raise CheckFailed(f"{name} has shape {tuple(np.shape(got))}, expected a single number (a 0-d tensor): "
                              "the mean over every time step and every sequence of the batch.")
        value = float(got)
        if not np.isfinite(value):
            raise CheckFailed(f"{name} is {value}: exp overflowed. Subtract each row's max before exp "
                              "(log softmax(z) = z - m - log(sum(exp(z - m))), m = max(z)).")
        expected = float(sequence_loss(logits, ids))
        name_mistake(name, np.asarray(value, dtype=np.float64), np.asarray(expected),
                     _sequence_loss_mistakes(logits.numpy(), ids.numpy()))
        check_scalar(name, got, expected, rtol=1e-6)


# ----------------------------------------------------------------------------- the outcome-graded exercise (5)

# What the learner chooses, and the bounds that keep the check at a few seconds.
CHAR_RNN_CONFIG_RANGES = {"hidden_size": (4, 128), "lr": (1e-5, 0.1), "seq_len": (2, 32)}
# The budget: Adam steps on batches of random windows (time-first), from a zero state.
CHAR_RNN_CHALLENGE = {"steps": 150, "batch_size": 32, "val_context": 64}


def _validate_char_rnn_config(config: dict) -> dict:
    keys = tuple(CHAR_RNN_CONFIG_RANGES)
    if not isinstance(config, dict) or set(config) != set(keys):
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")
    for key, (low, high) in CHAR_RNN_CONFIG_RANGES.items():
        value = config[key]
        whole = key != "lr"
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            what = "a whole number" if whole else "a number"
            raise CheckFailed(f"{key} should be {what} from {low:g} to {high:g}, got {value!r}")
    return {key: config[key] for key in keys}


@lru_cache(maxsize=1)
def _corpus_ids() -> tuple[int, torch.Tensor]:
    """The course corpus as ids (and the vocabulary size), read once."""
    text = load_corpus()
    vocab = CharVocab.from_text(text)
    return vocab.size, torch.from_numpy(vocab.encode(text))


def char_rnn_split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Training and validation ids of the corpus: a tenth held out, the last tenth for seed 0.

    Seed ``s`` holds out the tenth number ``9 - s % 10``; the training text is the rest, joined.
    """
    _, ids = _corpus_ids()
    size = len(ids) // 10
    fold = 9 - seed % 10
    val = ids[fold * size:(fold + 1) * size]
    return torch.cat([ids[: fold * size], ids[(fold + 1) * size:]]), val


def bigram_val_loss(seed: int = 0) -> float:
    """The target: the validation loss (nats per character) of the bigram model of :func:`char_rnn_split`."""
    vocab_size, _ = _corpus_ids()
    train, val = (part.numpy() for part in char_rnn_split(seed))
    _, bigram = ngram_probabilities(train, vocab_size)  # (V, V)
    return float(-np.log(bigram[val[:-1], val[1:]]).mean())


def char_rnn_config_loss(config: dict, *, seed: int = 0) -> float:
    """Train a :class:`CharRNN` with ``config`` for :data:`CHAR_RNN_CHALLENGE`; return its validation loss.

    Everything random (the weights, the training windows, the split) follows ``seed``, on
    the CPU and one thread, without touching the notebook's random state. The loss is the
    mean next-character cross-entropy over fixed windows of ``val_context`` characters.
    """
    c = _validate_char_rnn_config(config)
    with seeded_run(seed):
        return _train_char_rnn(c, seed)


def _train_char_rnn(c: dict, seed: int) -> float:
    cpu, task = torch.device("cpu"), CHAR_RNN_CHALLENGE
    vocab_size, _ = _corpus_ids()
    train, val = char_rnn_split(seed)
    model = CharRNN(vocab_size, c["hidden_size"], use_torch_rnn=True)
    g = torch.Generator().manual_seed(10_000 + seed)
    batches = [random_windows(train, c["seq_len"], task["batch_size"], g) for _ in range(task["steps"])]
    time_first = [(x.T, y.T) for x, y in batches]  # CharRNN reads (T, B)
    fit(model, time_first, next_token_loss, torch.optim.Adam(model.parameters(), lr=c["lr"]), clip_grad_norm=1.0,
        device=cpu, progress=False)
    val_batches = validation_windows(val, task["val_context"], n_batches=4, batch_size=64, seed=20_000 + seed)
    return evaluate(model, [(x.T, y.T) for x, y in val_batches], next_token_loss, device=cpu)


def _char_rnn_hints(c: dict) -> list[str]:
    """What in a config that missed the target is the likely culprit."""
    hints = []
    hints += learning_rate_hints(c["lr"], 5e-3, 3e-2, CHAR_RNN_CHALLENGE["steps"], large_note=", even with clipping")
    if c["hidden_size"] < 64:
        hints.append(f"{c['hidden_size']} hidden units are few to hold what the last characters were")
    if c["seq_len"] < 16:
        hints.append(f"windows of {c['seq_len']} characters are short: the RNN never learns to carry its state "
                     f"over the {CHAR_RNN_CHALLENGE['val_context']} characters it is measured on, and each step "
                     "sees few characters")
    return hints


def check_char_rnn_config(config: dict, *, seed: int = 0) -> None:
    """Grade hyperparameters by outcome: the trained CharRNN must beat the bigram model on held-out text.

    Fails with the validation loss reached, the target, how far it is, and the likely
    culprits in ``config``.
    """
    got = char_rnn_config_loss(config, seed=seed)  # validates the config first
    target = bigram_val_loss(seed)
    where = (f"after {CHAR_RNN_CHALLENGE['steps']} steps your CharRNN reaches a validation loss of {got:.3f} nats per "
             f"character (target: below {target:.3f}, the bigram model's loss on the same held-out text)")
    outcome_verdict(where, got < target, f"{got - target:.3f} nats above it, {got / target:.2f} times the target",
                    lambda: _char_rnn_hints(_validate_char_rnn_config(config)))
