"""Notebook 01, the exercises on :mod:`course_utils.rnn`.

Checks that name the usual mistakes: ``check_rnn_cell``, ``check_rnn_forward``,
``check_sequence_loss``.
Graded by outcome (the learner's setting is trained, seeded): ``check_char_rnn_config``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..core.checks import (
    Challenge,
    CheckFailed,
    Verdict,
    check_close,
    check_scalar,
    check_shape,
    learning_rate_hints,
    matmul_shape_error,
    name_mistake,
    refuse_reference,
    require_keys,
)
from ..core.seed import seeded_run
from ..core.training import evaluate, fit
from ..rnn import CharRNN, char_rnn_split, rnn_cell_forward, rnn_forward, sequence_loss
from ..shared.lm import corpus_data, next_token_loss, ngram_probabilities, random_windows, validation_windows


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
    fn = refuse_reference(fn, ("rnn_cell_forward", "rnn_forward", "RNN"))
    x_t, h_prev, W_xh, W_hh, b_h = _cell_case(np.random.default_rng(seed))
    try:
        got = fn(x_t, h_prev, W_xh, W_hh, b_h)
    except (ValueError, RuntimeError) as error:
        if matmul_shape_error(error):
            raise CheckFailed(
                f"my_rnn_cell raised a shape error in a matrix product ({str(error).splitlines()[0][:90]}): the "
                f"weights are stored one row per hidden unit, as in PyTorch, W_xh {W_xh.shape} = (H, I), so the input "
                f"term is x_t @ W_xh.T, shape (B, H) = {(x_t.shape[0], W_xh.shape[0])}; likewise h_prev @ W_hh.T"
            ) from error
        raise
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
    fn = refuse_reference(fn, ("rnn_forward", "RNN"))  # calling rnn_cell_forward in the loop is allowed
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
    fn = refuse_reference(fn, ("sequence_loss", "next_token_loss", "cross_entropy", "log_softmax", "nll_loss",
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


# What the learner chooses, and the bounds that keep the check at a few seconds.
CHAR_RNN_CONFIG_RANGES = {"hidden_size": (4, 128), "lr": (1e-5, 0.1), "seq_len": (2, 32)}


# The budget: Adam steps on batches of random windows (time-first), from a zero state.
CHAR_RNN_CHALLENGE = {"steps": 150, "batch_size": 32, "val_context": 64}


def _validate_char_rnn_config(config: dict) -> dict:
    keys = tuple(CHAR_RNN_CONFIG_RANGES)
    require_keys(config, keys)
    for key, (low, high) in CHAR_RNN_CONFIG_RANGES.items():
        value = config[key]
        whole = key != "lr"
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            what = "a whole number" if whole else "a number"
            raise CheckFailed(f"{key} should be {what} from {low:g} to {high:g}, got {value!r}")
    return {key: config[key] for key in keys}


def bigram_val_loss(seed: int = 0) -> float:
    """The target: the validation loss (nats per character) of the bigram model of :func:`char_rnn_split`."""
    vocab_size = corpus_data().vocab.size
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
    vocab_size = corpus_data().vocab.size
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


def _judge_char_rnn(c: dict, got: float, seed: int) -> Verdict:
    """What check_char_rnn_config measured, against the target."""
    target = bigram_val_loss(seed)
    where = (f"after {CHAR_RNN_CHALLENGE['steps']} steps your CharRNN reaches a validation loss of {got:.3f} nats per "
             f"character (target: below {target:.3f}, the bigram model's loss on the same held-out text)")
    return Verdict(where, got < target, f"{got - target:.3f} nats above it, {got / target:.2f} times the target")


CHAR_RNN_GRADING = Challenge(_validate_char_rnn_config, char_rnn_config_loss, _judge_char_rnn, _char_rnn_hints)


def check_char_rnn_config(config: dict, *, seed: int = 0) -> None:
    """Grade hyperparameters by outcome: the trained CharRNN must beat the bigram model on held-out text.

    Fails with the validation loss reached, the target, how far it is, and the likely
    culprits in ``config``.
    """
    CHAR_RNN_GRADING.check(config, seed=seed)
