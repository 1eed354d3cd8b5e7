"""Notebooks 01-04, 05b, 05e, 07 and 08: language modelling, written once for every model that predicts the next token.

- data: :class:`CharData` (a text as ids, split into train and validation) and
  :func:`random_windows` / :func:`lm_batches` (random windows, targets shifted by one);
- the loss: :func:`next_token_loss`, mean cross-entropy in nats per token, for ``fit``;
- a recurrent model: :class:`RecurrentLM` (embedding, a ``torch.nn`` recurrent layer, a
  linear read-out); the tiny GPT of notebook 08 has the same interface, ``ids (B, T) ->
  logits (B, T, V)``;
- training: :func:`train_lm`, a fixed number of steps of :func:`course_utils.fit` on random
  windows, with the validation loss every ``eval_every`` steps;
- evaluation and generation: :func:`estimate_loss`, :func:`char_accuracy`,
  :func:`temperature_softmax`, :func:`sample_next`, :func:`generate`;
- the baselines without memory: :func:`ngram_probabilities`.

Notebook 05b's one-to-many loop, :func:`course_utils.output_types.spell`, draws with :func:`sample_next`.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.lm`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.device import get_device
from ..core.shapes import require_shape
from ..core.training import evaluate, fit
from ..data.text import CharVocab, load_corpus
from .layers import recurrent_layer

LMBatch = tuple[torch.Tensor, torch.Tensor]  # inputs and next-token targets, both (B, T) (or (T, B))


# ----------------------------------------------------------------------------- data


@dataclass
class CharData:
    """A text as ids, split into a training head and a validation tail."""

    vocab: CharVocab
    train: torch.Tensor  # (N,)
    val: torch.Tensor  # (M,)

    @classmethod
    def from_text(cls, text: str, val_fraction: float = 0.1) -> CharData:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
        vocab = CharVocab.from_text(text)
        ids = torch.from_numpy(vocab.encode(text))
        split = int(len(ids) * (1 - val_fraction))
        return cls(vocab, ids[:split], ids[split:])


@functools.lru_cache(maxsize=1)
def corpus_data() -> CharData:
    """The course's corpus as :class:`CharData`, read once: the text the challenges of 01-08d train on."""
    return CharData.from_text(load_corpus())


def random_windows(ids: np.ndarray | torch.Tensor, context: int, batch_size: int,
                   generator: torch.Generator) -> LMBatch:
    """Inputs and next-token targets from ``batch_size`` random windows: two ``(batch_size, context)`` tensors."""
    ids = torch.as_tensor(ids, dtype=torch.long)
    require_shape("ids", ids, ("N",))
    if len(ids) <= context + 1:
        raise ValueError(f"ids has {len(ids)} tokens, expected more than context + 1 = {context + 1}")
    start = torch.randint(0, len(ids) - context - 1, (batch_size,), generator=generator)  # (B,)
    window = ids[start[:, None] + torch.arange(context + 1)]  # (B, T + 1)
    return window[:, :-1], window[:, 1:]


def lm_batches(ids: np.ndarray | torch.Tensor, n_batches: int, batch_size: int, seq_len: int, *,
               seed: int = 0) -> list[LMBatch]:
    """``n_batches`` batches of :func:`random_windows`, drawn with ``seed``: a fixed list for ``fit``."""
    g = torch.Generator().manual_seed(seed)
    return [random_windows(ids, seq_len, batch_size, g) for _ in range(n_batches)]


def validation_windows(ids: np.ndarray | torch.Tensor, context: int, n_batches: int = 10, batch_size: int = 64,
                       seed: int = 1234) -> list[LMBatch]:
    """The fixed validation batches of every language model: the same windows on every call."""
    return lm_batches(ids, n_batches, batch_size, context, seed=seed)


# ----------------------------------------------------------------------------- loss and model


def next_token_loss(model: nn.Module, batch: LMBatch) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of next-token prediction: a ``loss_fn`` for ``fit``.

    ``model(x)`` returns logits ``(..., V)`` for inputs ``x`` of any layout (``(B, T)`` or
    ``(T, B)``), or a tuple whose first element they are (a recurrent model's ``(logits, h)``).
    """
    x, y = batch
    logits = model(x)
    if isinstance(logits, tuple):
        logits = logits[0]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class RecurrentLM(nn.Module):
    """Embedding, a recurrent layer (``"rnn"``, ``"lstm"``, ``"gru"``), a linear read-out.

    ``forward(ids)`` takes ``(B, T)`` token ids and returns ``(B, T, vocab_size)`` logits.
    An LSTM starts with forget-gate bias ``forget_bias`` (``None`` keeps PyTorch's).
    """

    def __init__(self, kind: str, vocab_size: int, embed_size: int, hidden_size: int, *, num_layers: int = 1,
                 forget_bias: float | None = 1.0) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = recurrent_layer(kind, embed_size, hidden_size, num_layers=num_layers, forget_bias=forget_bias)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        require_shape("ids", ids, ("B", "T"))
        outputs, _ = self.rnn(self.embed(ids))  # (B, T, H)
        return self.head(outputs)  # (B, T, V)


# ----------------------------------------------------------------------------- training and evaluation


def estimate_loss(model: nn.Module, ids: torch.Tensor, context: int, device: torch.device | None = None) -> float:
    """Mean next-token loss over :func:`validation_windows` of ``ids`` (:func:`course_utils.evaluate`)."""
    return evaluate(model, validation_windows(ids, context), next_token_loss, device)


@torch.no_grad()
def char_accuracy(model: nn.Module, batches: Sequence[LMBatch]) -> float:
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


@dataclass
class LMRun:
    """What :func:`train_lm` records."""

    steps: list[int] = field(default_factory=list)  # at each evaluation
    seconds: list[float] = field(default_factory=list)  # training time so far (evaluation excluded)
    val_losses: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)  # every step


def train_lm(model: nn.Module, data: CharData, *, steps: int, context: int, batch_size: int = 32,
             lr: float = 3e-3, eval_every: int = 50, seed: int = 0, clip_grad_norm: float = 1.0,
             device: torch.device | None = None, progress: bool = True, desc: str = "train") -> LMRun:
    """Train a language model for ``steps`` Adam steps on random windows of ``data.train``.

    It is :func:`course_utils.fit` with one "epoch" per ``eval_every`` steps: after each, the
    loss on :func:`validation_windows` (those of :func:`estimate_loss`) is recorded with the
    step count and the training time so far. Models are compared at equal steps; the time
    is reported beside them, never used as the budget.
    """
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps and eval_every must be >= 1, got {steps} and {eval_every}")
    device = device or get_device()
    g = torch.Generator().manual_seed(seed)
    n_chunks = math.ceil(steps / eval_every)
    counts = [min(eval_every, steps - k * eval_every) for k in range(n_chunks)]

    def chunk(k: int) -> list[LMBatch]:
        return [random_windows(data.train, context, batch_size, g) for _ in range(counts[k])]

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = fit(model, chunk, next_token_loss, optimizer, epochs=n_chunks,
                  val_data=validation_windows(data.val, context), clip_grad_norm=clip_grad_norm, device=device,
                  progress=progress, desc=desc, total_steps=steps)
    return LMRun(steps=np.cumsum(counts).tolist(), seconds=history.epoch_seconds,
                 val_losses=history.val_losses, train_losses=history.losses)


# ----------------------------------------------------------------------------- sampling


def temperature_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / temperature)`` over the last axis, computed stably."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    scaled = logits / temperature
    scaled = scaled - scaled.max(dim=-1, keepdim=True).values
    e = scaled.exp()
    return e / e.sum(dim=-1, keepdim=True)


def sample_next(logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of ``logits`` (B, V), drawn from ``softmax(logits / temperature)``: ``(B,)``."""
    require_shape("logits", logits, ("B", "V"))
    probs = temperature_softmax(logits.float(), temperature)
    if generator is not None:  # draw on the generator's device, so a CPU seed works for GPU logits
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)


@torch.no_grad()
def generate(model: nn.Module, vocab: CharVocab, prompt: str, n_chars: int, context: int,
             temperature: float = 1.0, seed: int = 0) -> str:
    """Sample ``n_chars`` characters after ``prompt``, feeding back the last ``context`` of them (eval mode).

    Each character is drawn from ``softmax(logits / temperature)``: ``temperature`` must be
    positive (small values approach the argmax, large ones uniform guessing). The prompt must
    be non-empty and use only characters of ``vocab``; ``n_chars = 0`` returns the prompt.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) \
            or not temperature > 0:
        raise ValueError(f"temperature must be positive (a number > 0), got {temperature!r}; for the most likely "
                         "character at every step use a small temperature such as 0.01")
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string (the model needs at least one character to start "
                         f"from), got {prompt!r}")
    unknown = sorted(set(prompt) - set(vocab.chars))
    if unknown:
        raise ValueError(f"prompt {prompt!r} contains characters that are not in the vocabulary: "
                         f"{', '.join(map(repr, unknown))}; the model knows only the {vocab.size} characters "
                         "of its training text")
    for arg, value, least in (("n_chars", n_chars, 0), ("context", context, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{arg} must be a whole number >= {least}, got {value!r}")
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    ids = torch.from_numpy(vocab.encode(prompt)).to(device)[None]  # (1, T)
    model.eval()
    for _ in range(n_chars):
        logits = model(ids[:, -context:])[:, -1]  # (1, V)
        ids = torch.cat([ids, sample_next(logits, temperature, g)[:, None]], dim=1)  # (1, T + 1)
    return vocab.decode(ids[0].cpu())


def ngram_probabilities(ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The models without memory, fitted on ``ids`` with add-one smoothing (notebooks 01 and 02).

    Returns ``unigram (V,)``, ``P(next = b)``, and ``bigram (V, V)``, ``bigram[a, b] = P(next = b | current = a)``.
    """
    ids = np.asarray(ids)
    unigram = (np.bincount(ids, minlength=vocab_size) + 1) / (len(ids) + vocab_size)  # (V,)
    bigram = np.ones((vocab_size, vocab_size))  # one pseudo-count per pair
    np.add.at(bigram, (ids[:-1], ids[1:]), 1)
    return unigram, bigram / bigram.sum(axis=1, keepdims=True)  # (V,), (V, V)
