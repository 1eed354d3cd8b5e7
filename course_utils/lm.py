"""Notebooks 01-04, 05b, 07 and 08: language modelling, written once for every model that predicts the next token.

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
- the baselines without memory: :func:`ngram_probabilities`;
- notebook 01's sampling exercise: :func:`check_sample_next`;
- one-to-many generation (the loop of notebook 05b, section 4): :func:`spell`, a name spelt
  token by token from a class's initial state, with an optional top-k cut; checks for
  generation exercises, which take the trained speller as an argument: :func:`check_spell`
  and, graded by outcome, :func:`check_generation_settings` (a temperature and top-k that
  give new names, spelt as plausibly as real ones: :func:`generation_stats`, :func:`bigram_bits`).

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

from .checks import CheckFailed, refuse_reference, require_keys
from .data.names import load_surnames, stratified_split
from .data.text import CharVocab, load_corpus
from .device import get_device
from .layers import recurrent_layer
from .shapes import require_shape
from .training import evaluate, fit

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
    """The course's corpus as :class:`CharData`, read once: the text the challenges of 01-08c train on."""
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


# ----------------------------------------------------------------------------- notebook 05b's exercises 3 and 4

# A one-to-many speller (notebook 05b's ConditionalCharLM, or the stand-in BigramSpeller) has
# ``initial_state(cond) -> (1, B, H)``, ``embed``, a batch-first ``rnn(x, h) -> (o, h)`` and a
# read-out ``out``; token 0 starts and ends a name.
END = 0


def _top_k(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """``logits (B, V)`` with everything below each row's ``top_k`` largest set to -inf."""
    if top_k is None or top_k >= logits.shape[-1]:
        return logits
    kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, float("-inf"))


@torch.no_grad()
def _spell(model: nn.Module, cond: torch.Tensor, temperature: float, max_len: int, generator: torch.Generator | None,
           top_k: int | None = None, mistake: str | None = None) -> list[list[int]]:
    """Spell one name per entry of ``cond (B,)``; ``mistake`` makes one of the exercise's mistakes."""
    h = model.initial_state(cond)  # (1, B, H)
    if mistake == "zero state":
        h = torch.zeros_like(h)
    start = torch.full((len(cond), 1), END, dtype=torch.long, device=cond.device)  # (B, 1)
    token, drawn = start, []
    for _ in range(max_len):
        o, h = model.rnn(model.embed(token), h)  # (B, 1, H)
        next_id = sample_next(_top_k(model.out(o[:, 0]), top_k), temperature, generator)  # (B,)
        drawn.append(next_id.cpu())
        token = start if mistake == "no feedback" else next_id[:, None]
    rows = torch.stack(drawn, dim=1).tolist()  # (B, max_len)
    if mistake == "no stop":
        return rows
    names = [row[: row.index(END)] if END in row else row for row in rows]
    if mistake == "end token kept":
        return [name + [END] if len(name) < max_len else name for name in names]
    if mistake == "start token kept":
        return [[END] + name for name in names]
    return names


def spell(model: nn.Module, cond: torch.Tensor, temperature: float = 1.0, max_len: int = 20,
          generator: torch.Generator | None = None, top_k: int | None = None) -> list[list[int]]:
    """Sample one name per class in ``cond (B,)``: token ids without the start and end tokens.

    Starts from ``model.initial_state(cond)`` and token 0, draws each next token with
    :func:`sample_next` (from the ``top_k`` most likely, if given), feeds it back, and stops
    a name at token 0 or after ``max_len`` tokens. Call ``model.eval()`` first.
    """
    require_shape("cond", cond, ("B",))
    return _spell(model, cond, temperature, max_len, generator, top_k)


class _PickLanguage(nn.Module):
    """BigramSpeller's "recurrence": keeps the one-hot language state and picks its block of the input."""

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = x.shape  # x (B, T, C * V), h (1, B, C)
        blocks = x.view(batch, steps, h.shape[-1], -1)  # (B, T, C, V)
        return (blocks * h[0][:, None, :, None]).sum(2), h  # (B, T, V): the language's row; a zero state gives zeros


class BigramSpeller(nn.Module):
    """A small stand-in for notebook 05b's ``ConditionalCharLM``, with the same interface.

    No memory beyond the last token: the next token's logits are the log probabilities of a
    bigram table for the language, counted from ``names`` (token ids) with ``labels``, each
    row smoothed with ``prior`` pseudo-counts spread like the pooled (all-language, add-one)
    table. ``initial_state(cond)`` is the one-hot language ``(1, B, C)``; ``embed`` maps a
    token to its rows for every language ``(C * V,)``; ``rnn`` picks the state's language
    (a zero state gives zero logits: uniform draws); ``out`` is the identity on ``V``. So
    :func:`spell`, ``forward`` and ``sample`` work as for the GRU, in a fraction of the time,
    and building one draws no random numbers.
    """

    def __init__(self, names: Sequence[Sequence[int]], labels: Sequence[int], vocab_size: int, n_classes: int,
                 prior: float = 10.0) -> None:
        super().__init__()
        counts = np.zeros((n_classes, vocab_size, vocab_size))  # (C, V, V): counts[c, a, b] for b after a
        for seq, c in zip(names, labels, strict=True):
            full = np.concatenate([[END], seq, [END]]).astype(int)
            np.add.at(counts[int(c)], (full[:-1], full[1:]), 1)
        pooled = counts.sum(0) + 1  # (V, V)
        smoothed = counts + prior * pooled / pooled.sum(1, keepdims=True)  # (C, V, V)
        log_p = np.log(smoothed / smoothed.sum(2, keepdims=True))  # (C, V, V)
        table = torch.tensor(log_p.transpose(1, 0, 2).reshape(vocab_size, -1), dtype=torch.float32)  # (V, C * V)
        self.n_classes = n_classes
        self.embed = nn.Embedding.from_pretrained(table)
        self.rnn = _PickLanguage()
        self.out = nn.utils.skip_init(nn.Linear, vocab_size, vocab_size)  # no random initialisation
        with torch.no_grad():
            self.out.weight.copy_(torch.eye(vocab_size))
            self.out.bias.zero_()

    def initial_state(self, cond: torch.Tensor) -> torch.Tensor:
        """The one-hot language, ``(1, B, C)``."""
        return F.one_hot(cond, self.n_classes).float()[None]

    def forward(self, cond: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, T, V)`` for ``inputs (B, T)`` in the languages ``cond (B,)``."""
        outputs, _ = self.rnn(self.embed(inputs), self.initial_state(cond))
        return self.out(outputs)

    def sample(self, cond: torch.Tensor, temperature: float = 1.0, max_len: int = 20,
               generator: torch.Generator | None = None) -> list[list[int]]:
        """One name per language in ``cond``, as :func:`spell`."""
        return spell(self, cond, temperature, max_len, generator)


_NAMES_SPELLER: dict = {}


def names_speller() -> tuple[BigramSpeller, list[np.ndarray], np.ndarray, int]:
    """The checks' speller: a :class:`BigramSpeller` of the training surnames (notebook 05b's data and split).

    Returns ``(speller, ids, train_idx, n_classes)``; built once per process, without random numbers.
    """
    if not _NAMES_SPELLER:
        names, labels, classes = load_surnames()
        vocab = CharVocab.from_text("".join(names))
        ids = [vocab.encode(n) + 1 for n in names]
        train_idx, _, _ = stratified_split(labels, (0.8, 0.1, 0.1), seed=0)
        speller = BigramSpeller([ids[i] for i in train_idx], labels[train_idx], vocab.size + 1, len(classes)).eval()
        _NAMES_SPELLER["value"] = (speller, ids, train_idx, len(classes))
    return _NAMES_SPELLER["value"]


def _as_id_list(name: str, got: object) -> list[int]:
    if isinstance(got, torch.Tensor | np.ndarray):
        if got.ndim != 1:
            raise CheckFailed(f"{name} has shape {tuple(got.shape)}: return one name, a list of token ids.")
        got = got.tolist()
    if not isinstance(got, list | tuple) or not all(isinstance(i, int | np.integer) for i in got):
        raise CheckFailed(f"{name} should be a list of token ids (ints), but it is {type(got).__name__}"
                          + (" (did you forget a `return`?)" if got is None else f": {str(got)[:80]}"))
    return [int(i) for i in got]


_SPELL_MISTAKES = {
    "no feedback": "feed the start token 0 at every step instead of the token you just drew",
    "no stop": "keep drawing after the end token 0: stop the name as soon as you draw it",
    "end token kept": "keep the end token 0 at the end of the name",
    "start token kept": "keep the start token 0 at the front of the name",
    "zero state": "start from zeros instead of the language's state, model.initial_state(cond)",
}


def check_spell(fn, seed: int = 0) -> None:
    """Test ``fn(model, lang, temperature, max_len, generator) -> ids`` (one name) against :func:`spell`.

    The model is :func:`names_speller`'s stand-in, built from the course's surnames. With the
    same seeded generator, a loop that draws once per step with ``sample_next`` spells exactly
    the reference's name. Names the usual mistakes: the drawn token not fed back, no stop at
    the end token, the start or end token returned, the language ignored.
    """
    refuse_reference(fn, ("spell", "_spell", "sample", "generate"))
    model, _, _, n_classes = names_speller()
    rng = np.random.default_rng(seed)
    langs, temperature, max_len = rng.integers(0, n_classes, size=6).tolist(), (0.8, 1.0)[seed % 2], 12
    for k, lang in enumerate(langs):
        name = f"the name spelt for class {lang} (temperature {temperature}, generator seed {seed * 100 + k})"
        cond = torch.tensor([lang])

        def generator(seed_k: int = seed * 100 + k) -> torch.Generator:
            return torch.Generator().manual_seed(seed_k)

        with torch.no_grad():
            got = _as_id_list(name, fn(model, lang, temperature, max_len, generator()))
        expected = _spell(model, cond, temperature, max_len, generator())[0]
        if got == expected:
            continue
        for mistake, hint in _SPELL_MISTAKES.items():
            if got == _spell(model, cond, temperature, max_len, generator(), mistake=mistake)[0]:
                raise CheckFailed(f"{name} is {got}: it matches what you get when you {hint}.")
        if len(got) > max_len:
            raise CheckFailed(f"{name} has {len(got)} tokens: stop after max_len = {max_len}.")
        raise CheckFailed(f"{name} is {got}, expected {expected}. Draw once per step with "
                          "sample_next(logits, temperature, generator) and feed the drawn token back.")
    print(f"OK my_spell: {len(langs)} names at temperature {temperature} match the reference draw for draw")


# The outcome-graded exercise: names that are new (few copies of a training name) and
# plausible (spelt like real names: few bits per character under a bigram model of them).
# Measured with names_speller() on seeds 0-4 (repeats, bits; target bits 3.700): the reference
# {"temperature": 1.0, "top_k": 12} gives 0.072-0.105 and 3.578-3.646; T = 1 without a cut
# misspells (3.757-3.815 bits), T = 0.5 plays safe (0.235-0.300 repeats).
GENERATION_CHALLENGE = {"per_class": 50, "max_len": 24, "max_copies": 0.15}


def _validate_generation_settings(settings: dict, vocab_size: int) -> tuple[float, int | None]:
    require_keys(settings, ("temperature", "top_k"))
    temperature, top_k = settings["temperature"], settings["top_k"]
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0.05 <= temperature <= 5:
        raise CheckFailed(f"temperature should be a number from 0.05 to 5, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= vocab_size):
        raise CheckFailed(f"top_k should be None (no cut) or a whole number from 1 to {vocab_size}, got {top_k!r}")
    return float(temperature), top_k


def bigram_bits(names: Sequence[Sequence[int]], train_names: Sequence[Sequence[int]], vocab_size: int) -> float:
    """Bits per token of ``names`` (end token included) under add-one bigram counts of ``train_names``."""
    def joined(seqs: Sequence[Sequence[int]]) -> np.ndarray:  # 0 name 0 name ... 0: every pair of every name
        return np.concatenate([np.concatenate([[END], seq]) for seq in seqs] + [[END]]).astype(int)

    train = joined(train_names)
    counts = np.ones((vocab_size, vocab_size))  # (V, V): counts[a, b] for b after a, one pseudo-count each
    np.add.at(counts, (train[:-1], train[1:]), 1)
    log_p = np.log2(counts / counts.sum(1, keepdims=True))  # (V, V)
    full = joined(names)
    return float(-log_p[full[:-1], full[1:]].mean())


def generation_stats(settings: dict, model: nn.Module, ids: Sequence[np.ndarray], train_idx: np.ndarray,
                     n_classes: int, *, seed: int = 0) -> dict[str, float]:
    """Sample names with ``settings`` and measure them: ``copies`` and ``bits`` (and their targets).

    ``copies``: the share of samples that spell a training name or repeat an earlier sample. ``bits``: bits per token of
    the samples under the bigram model of the training names; its target, ``target_bits``,
    is the same measure for the real names that are not in training (``ids`` outside
    ``train_idx``). The draws follow ``seed`` and touch no global random state.
    """
    temperature, top_k = _validate_generation_settings(settings, model.out.out_features)
    task = GENERATION_CHALLENGE
    device = next(model.parameters()).device
    model.eval()
    cond = torch.arange(n_classes, device=device).repeat_interleave(task["per_class"])  # (C * per_class,)
    samples = _spell(model, cond, temperature, task["max_len"], torch.Generator().manual_seed(30_000 + seed), top_k)
    train = [ids[i] for i in train_idx]
    train_set = {tuple(int(c) for c in seq) for seq in train}
    held_out = [ids[i] for i in sorted(set(range(len(ids))) - {int(i) for i in train_idx})]
    vocab_size = model.out.out_features
    seen, copies = set(train_set), []
    for s in samples:
        copies.append(tuple(s) in seen)
        seen.add(tuple(s))
    return {"copies": float(np.mean(copies)),
            "bits": bigram_bits(samples, train, vocab_size), "target_bits": bigram_bits(held_out, train, vocab_size),
            "mean_length": float(np.mean([len(s) for s in samples]))}


def check_generation_settings(settings: dict, *, seed: int = 0) -> None:
    """Grade a temperature and top-k by outcome: the samples must be new and as plausible as real names.

    Samples with :func:`names_speller`'s stand-in (seeded by ``seed``). Fails with the
    measured share of copies and bits per character, the targets, how far, and the likely
    culprit in ``settings``.
    """
    model, ids, train_idx, n_classes = names_speller()
    _check_generation_settings(settings, model, ids, train_idx, n_classes, seed=seed)


def _check_generation_settings(settings: dict, model: nn.Module, ids: Sequence[np.ndarray], train_idx: np.ndarray,
                               n_classes: int, *, seed: int = 0) -> None:
    stats = generation_stats(settings, model, ids, train_idx, n_classes, seed=seed)
    temperature, top_k = _validate_generation_settings(settings, model.out.out_features)
    max_copies, n = GENERATION_CHALLENGE["max_copies"], GENERATION_CHALLENGE["per_class"] * n_classes
    where = (f"of {n} names sampled with temperature {temperature:g} and top_k {top_k}, {stats['copies']:.1%} copy a "
             f"training name or an earlier sample (target: at most {max_copies:.0%}) and their spelling costs "
             f"{stats['bits']:.3f} bits "
             f"per character under the bigram model of the training names (target: at most {stats['target_bits']:.3f}"
             ", what real names it never saw cost)")
    problems = []
    if stats["copies"] > max_copies:
        problems.append(f"{stats['copies'] / max_copies:.1f} times the share of copies allowed: the samples play safe "
                        "(a low temperature or a small top_k keeps to the commonest names; raise them)")
    if stats["bits"] > stats["target_bits"]:
        problems.append(f"{stats['bits'] - stats['target_bits']:.3f} bits per character above the plausibility "
                        f"target ({stats['bits'] / stats['target_bits']:.2f} times it): the samples misspell "
                        "(a high temperature gives rare, unlikely characters a chance; lower it, or cut the tail "
                        "with top_k)")
    if problems:
        raise CheckFailed(f"{where}: " + "; ".join(problems) + ".")
    print(f"OK {where}.")
