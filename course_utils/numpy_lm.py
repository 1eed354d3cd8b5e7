"""Notebook 02, section 7 (and 01's batching): a character-level language model in numpy.

Batching, Adagrad, evaluation and sampling.

The model is the vanilla RNN of :mod:`course_utils.rnn` with one-hot characters as inputs
and a softmax over the vocabulary as outputs; its gradients come from
:func:`course_utils.bptt.rnn_loss_and_grads`. Notebook 02 trains it in the style of
Karpathy's ``min-char-rnn``: B parallel streams of text, chunks of T characters, the hidden
state carried from one chunk to the next (truncated BPTT), Adagrad updates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .bptt import cross_entropy_loss
from .core.shapes import require_shape
from .rnn import Params, one_hot, rnn_cell_forward, rnn_forward, rnn_output, softmax


def stream_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut a text into ``batch_size`` contiguous streams and chunks of ``seq_len`` steps.

    Args:
        ids: character ids ``(N,)``.

    Returns:
        ``(inputs, targets)``, each ``(n_chunks, seq_len, batch_size)``; targets are the inputs
        shifted by one character. Chunk ``i + 1`` continues chunk ``i`` in every stream, so
        a hidden state can be carried over from one to the next.
    """
    require_shape("ids", ids, ("N",))
    per_stream = (len(ids) - 1) // batch_size
    n_chunks = per_stream // seq_len
    if n_chunks < 1:
        raise ValueError(f"{len(ids)} ids are too few for {batch_size} streams of {seq_len} steps")
    used = n_chunks * seq_len
    starts = np.arange(batch_size) * per_stream  # (B,)
    index = starts[None, :] + np.arange(used)[:, None]  # (used, B)
    inputs = ids[index].reshape(n_chunks, seq_len, batch_size)
    targets = ids[index + 1].reshape(n_chunks, seq_len, batch_size)
    return inputs, targets


def adagrad_step(
    params: Params, grads: Mapping[str, np.ndarray], memory: Params, lr: float, eps: float = 1e-8
) -> None:
    """In place: ``memory += g**2``, ``param -= lr * g / sqrt(memory + eps)`` for every parameter."""
    for name, param in params.items():
        g = grads[name]
        memory.setdefault(name, np.zeros_like(param))
        memory[name] += g * g
        param -= lr * g / np.sqrt(memory[name] + eps)


def char_rnn_loss(
    params: Params, inputs: np.ndarray, targets: np.ndarray, vocab_size: int
) -> float:
    """Mean cross-entropy per character (nats) over ``(n_chunks, T, B)`` chunks, state carried over."""
    require_shape("inputs", inputs, ("n_chunks", "T", "B"))
    require_shape("targets", targets, inputs.shape)
    h = np.zeros((inputs.shape[2], params["W_hh"].shape[0]))  # (B, H)
    total = 0.0
    for x_ids, y_ids in zip(inputs, targets, strict=True):
        x = one_hot(x_ids, vocab_size)  # (T, B, V)
        hs = rnn_forward(x, h, params["W_xh"], params["W_hh"], params["b_h"])
        loss, _ = cross_entropy_loss(rnn_output(hs, params["W_hy"], params["b_y"]), y_ids)
        total += loss * inputs.shape[2]  # undo the batch mean: a sum over T*B characters
        h = hs[-1]
    return total / inputs.size


def sample_chars(
    params: Params,
    prompt_ids: np.ndarray,
    n: int,
    rng: np.random.Generator,
    temperature: float = 1.0,
) -> np.ndarray:
    """Feed ``prompt_ids`` (at least one id), then draw ``n`` ids one at a time; returns ``(n,)`` ids."""
    prompt_ids = np.asarray(prompt_ids)
    if prompt_ids.ndim != 1 or len(prompt_ids) == 0:
        raise ValueError(f"prompt_ids has shape {prompt_ids.shape}, expected (P,) with P >= 1")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    V = params["W_hy"].shape[0]
    h = np.zeros((1, params["W_hh"].shape[0]))  # (1, H)
    for i in prompt_ids[:-1]:
        h = rnn_cell_forward(one_hot(np.array([i]), V), h, params["W_xh"], params["W_hh"], params["b_h"])
    current = int(prompt_ids[-1])
    out = np.empty(n, dtype=np.int64)
    for k in range(n):
        h = rnn_cell_forward(one_hot(np.array([current]), V), h, params["W_xh"], params["W_hh"], params["b_h"])
        p = softmax(rnn_output(h, params["W_hy"], params["b_y"])[0] / temperature)  # (V,)
        current = int(rng.choice(V, p=p))
        out[k] = current
    return out
