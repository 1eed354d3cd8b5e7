"""The transformer: positional encodings, a pre-LayerNorm block, a tiny GPT, and its training.

    x = token_embedding + position_encoding                  (B, T, D)
    x = x + MultiHeadAttention(LayerNorm(x), causal mask)    each block
    x = x + MLP(LayerNorm(x))
    logits = Linear(LayerNorm(x))                            (B, T, V)

Attention is :class:`course_utils.self_attention.MultiHeadAttention` (notebook 07). The
language-model entry point :func:`train_char_lm` takes any text, so the same code trains on
another corpus; :class:`LSTMLanguageModel` is the recurrent baseline it is compared with.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .device import get_device
from .self_attention import MultiHeadAttention, causal_mask
from .text import CharVocab


def sinusoidal_positions(T: int, D: int) -> torch.Tensor:
    """(T, D) encodings of Vaswani et al. (2017): PE[t, 2i] = sin(t / 10000^(2i/D)), PE[t, 2i+1] = cos(...)."""
    if D % 2:
        raise ValueError(f"D must be even for sin/cos pairs, got D = {D}")
    t = torch.arange(T, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, D, 2, dtype=torch.float32) / D)  # (D/2,)
    pe = torch.zeros(T, D)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq)
    return pe


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(D, 4D), GELU, Linear(4D, D)."""

    def __init__(self, d_model: int, expansion: int = 4):
        super().__init__()
        self.fc = nn.Linear(d_model, expansion * d_model)
        self.proj = nn.Linear(expansion * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x))."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = MultiHeadAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), mask (T, T) or (B, T, T) bools, True = may attend."""
        x = x + self.attn(self.ln1(x), mask)[0]  # (B, T, D)
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer language model over token ids.

    ``positions``: ``"learned"`` (a trained (context, D) table), ``"sinusoidal"`` (fixed) or
    ``None`` (no order information at all: the model sees a bag of previous tokens).
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 positions: str | None = "learned"):
        super().__init__()
        if positions not in ("learned", "sinusoidal", None):
            raise ValueError(f"positions must be 'learned', 'sinusoidal' or None, got {positions!r}")
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.positions = positions
        if positions == "learned":
            self.pos = nn.Parameter(torch.randn(context, d_model) * 0.02)
        else:
            pe = sinusoidal_positions(context, d_model) if positions == "sinusoidal" else torch.zeros(context, d_model)
            self.register_buffer("pos", pe, persistent=False)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) with T <= context -> logits (B, T, V)."""
        if ids.dim() != 2 or ids.shape[1] > self.context:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T) with T <= {self.context}")
        T = ids.shape[1]
        x = self.embed(ids) + self.pos[:T]  # (B, T, D)
        mask = causal_mask(T, ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


class LSTMLanguageModel(nn.Module):
    """The recurrent baseline: embedding, ``torch.nn.LSTM``, linear read-out."""

    def __init__(self, vocab_size: int, embed: int = 64, hidden: int = 128, n_layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, n_layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> logits (B, T, V)."""
        if ids.dim() != 2:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T)")
        out, _ = self.lstm(self.embed(ids))  # (B, T, H)
        return self.head(out)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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


def random_windows(ids: torch.Tensor, context: int, batch_size: int, generator: torch.Generator):
    """Inputs and next-character targets from random windows: two (batch_size, context) tensors."""
    if len(ids) <= context + 1:
        raise ValueError(f"ids has {len(ids)} tokens, expected more than context + 1 = {context + 1}")
    start = torch.randint(0, len(ids) - context - 1, (batch_size,), generator=generator)
    offsets = torch.arange(context + 1)
    window = ids[start[:, None] + offsets]  # (B, T + 1)
    return window[:, :-1], window[:, 1:]


def lm_loss(model: nn.Module, batch) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of a batch ``(x, y)``."""
    x, y = batch
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


@torch.no_grad()
def estimate_loss(model: nn.Module, ids: torch.Tensor, context: int, batch_size: int = 64, n_batches: int = 10,
                  seed: int = 1234, device: torch.device | None = None) -> float:
    """Mean loss over ``n_batches`` fixed random windows of ``ids`` (the same windows every call)."""
    device = device or get_device()
    was_training = model.training
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = [lm_loss(model, tuple(t.to(device) for t in random_windows(ids, context, batch_size, g)))
              for _ in range(n_batches)]
    model.train(was_training)
    return float(sum(loss.item() for loss in losses) / n_batches)


@dataclass
class LMRun:
    """What :func:`train_lm` records."""

    steps: list[int] = field(default_factory=list)  # at each evaluation
    seconds: list[float] = field(default_factory=list)  # training time so far (evaluation excluded)
    val_losses: list[float] = field(default_factory=list)
    train_losses: list[float] = field(default_factory=list)  # every step


def train_lm(model: nn.Module, data: CharData, *, context: int, batch_size: int = 32, lr: float = 3e-3,
             max_steps: int | None = None, max_seconds: float | None = None, eval_every: int = 50,
             seed: int = 0, clip_grad_norm: float = 1.0, device: torch.device | None = None) -> LMRun:
    """Train a language model on random windows until ``max_steps`` or ``max_seconds`` of training.

    A time budget lets models of different speed be compared at equal compute time; the
    validation loss is measured every ``eval_every`` steps and at the end, its time not counted.
    (``course_utils.fit`` trains by epochs; this loop stops on a clock.)
    """
    if max_steps is None and max_seconds is None:
        raise ValueError("give max_steps or max_seconds")
    device = device or get_device()
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    run, elapsed, step = LMRun(), 0.0, 0
    model.train()
    while (max_steps is None or step < max_steps) and (max_seconds is None or elapsed < max_seconds):
        t0 = time.perf_counter()
        x, y = random_windows(data.train, context, batch_size, g)
        loss = lm_loss(model, (x.to(device), y.to(device)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        run.train_losses.append(loss.item())  # .item() waits for the device, so the clock is honest
        elapsed += time.perf_counter() - t0
        step += 1
        if step % eval_every == 0:
            _record(run, model, data, context, step, elapsed, device)
    if not run.steps or run.steps[-1] != step:
        _record(run, model, data, context, step, elapsed, device)
    return run


def _record(run: LMRun, model, data, context, step, elapsed, device) -> None:
    run.steps.append(step)
    run.seconds.append(elapsed)
    run.val_losses.append(estimate_loss(model, data.val, context, device=device))


@torch.no_grad()
def generate(model: nn.Module, vocab: CharVocab, prompt: str, n_chars: int, context: int,
             temperature: float = 1.0, seed: int = 0) -> str:
    """Sample ``n_chars`` characters after ``prompt``, feeding back the last ``context`` of them."""
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    ids = torch.from_numpy(vocab.encode(prompt)).to(device)[None]  # (1, T)
    model.eval()
    for _ in range(n_chars):
        logits = model(ids[:, -context:])[0, -1] / temperature  # (V,)
        nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)
        ids = torch.cat([ids, nxt[None]], dim=1)
    return vocab.decode(ids[0].cpu())


def train_char_lm(text: str, kind: str = "gpt", *, context: int = 64, max_seconds: float | None = None,
                  max_steps: int | None = None, seed: int = 0, device: torch.device | None = None,
                  **model_kwargs) -> tuple[nn.Module, CharData, LMRun]:
    """Train a character language model on any ``text``: ``kind`` is ``"gpt"`` or ``"lstm"``.

    Returns the model, the data (with its vocabulary, for :func:`generate`) and the run.
    """
    device = device or get_device()
    data = CharData.from_text(text)
    torch.manual_seed(seed)
    if kind == "gpt":
        model = TinyGPT(data.vocab.size, context, **model_kwargs)
    elif kind == "lstm":
        model = LSTMLanguageModel(data.vocab.size, **model_kwargs)
    else:
        raise ValueError(f"kind must be 'gpt' or 'lstm', got {kind!r}")
    model.to(device)
    run = train_lm(model, data, context=context, max_steps=max_steps, max_seconds=max_seconds, seed=seed,
                   device=device)
    return model, data, run
