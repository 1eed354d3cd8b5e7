"""Notebook 08, sections 1-5: the transformer, with positional encodings, a pre-LayerNorm block and a tiny GPT.

    x = token_embedding + position_encoding                  (B, T, D)
    x = x + MultiHeadAttention(LayerNorm(x), causal mask)    each block
    x = x + MLP(LayerNorm(x))
    logits = Linear(LayerNorm(x))                            (B, T, V)

Attention is :class:`course_utils.self_attention.MultiHeadAttention` (notebook 07); the data,
loss, training and generation are those of every language model (:mod:`course_utils.shared.lm`),
whose :class:`~course_utils.shared.lm.RecurrentLM` is the baseline the tiny GPT is compared with.
:func:`train_char_lm` takes any text, so the same code trains on another corpus.
:func:`saved_activation_bytes` measures what a training step keeps for its backward pass
(section 5: the tiny GPT's memory against the LSTM's as the sequence grows).

Section 6, attention without the T x T matrix: :func:`online_softmax` (Milakov & Gimelshein 2018)
keeps a running max m and a running sum l in one pass; :func:`online_softmax_update` carries
(m, l, acc) over one block of keys, and :func:`tiled_attention` loops it over the key blocks
(FlashAttention's idea, Dao et al. 2022), exact attention whose intermediates grow as T x block,
not T x T. :class:`PeakBytes` counts, from their shapes, the bytes the intermediates of
:func:`full_attention` and :func:`tiled_attention` hold at once.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.transformer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn import functional as F

from .core.device import get_device
from .core.shapes import require_shape
from .self_attention import MultiHeadAttention, causal_mask
from .shared.lm import (
    CharData,
    LMRun,
    RecurrentLM,
    train_lm,
)


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
        require_shape("ids", ids, ("B", "T"))
        if ids.shape[1] > self.context:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T) with T <= {self.context}, "
                             "the model's context")
        T = ids.shape[1]
        x = self.embed(ids) + self.pos[:T]  # (B, T, D)
        mask = causal_mask(T, ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


def train_char_lm(text: str, kind: str = "gpt", *, steps: int, context: int = 64, seed: int = 0,
                  device: torch.device | None = None, progress: bool = True,
                  **model_kwargs) -> tuple[nn.Module, CharData, LMRun]:
    """Train a character language model on any ``text`` for ``steps`` steps: ``kind`` is ``"gpt"`` or ``"lstm"``.

    ``model_kwargs`` go to :class:`TinyGPT` or :class:`~course_utils.shared.lm.RecurrentLM` (for the
    LSTM, ``embed_size`` and ``hidden_size`` default to 64 and 128). Returns the model, the
    data (with its vocabulary, for :func:`course_utils.shared.lm.generate`) and the run.
    """
    device = device or get_device()
    data = CharData.from_text(text)
    torch.manual_seed(seed)
    if kind == "gpt":
        model = TinyGPT(data.vocab.size, context, **model_kwargs)
    elif kind == "lstm":
        model = RecurrentLM("lstm", data.vocab.size, **{"embed_size": 64, "hidden_size": 128, **model_kwargs})
    else:
        raise ValueError(f"kind must be 'gpt' or 'lstm', got {kind!r}")
    model.to(device)
    run = train_lm(model, data, steps=steps, context=context, seed=seed, device=device, progress=progress)
    return model, data, run


def saved_activation_bytes(loss_fn: Callable[[], torch.Tensor], exclude: Iterable[torch.Tensor] = ()) -> int:
    """Measured bytes that autograd keeps for the backward pass of ``loss_fn()``, then runs that backward pass.

    ``loss_fn`` builds a graph and returns a scalar loss. While it runs, a
    :func:`torch.autograd.graph.saved_tensors_hooks` hook sees every tensor an operation
    saves for its gradient; the distinct storages among them are counted once each (a view
    shares its base's storage), leaving out those of ``exclude`` (pass the model's
    parameters: they exist whether or not we train). This is the activation memory a
    training step holds at the end of its forward pass, the peak the backward pass then
    frees step by step; gradients accumulate in ``.grad`` as after any ``backward()``.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    saved: dict[int, torch.Tensor] = {}  # storage address -> a tensor on it (held, so no address is reused)

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in skip:
            saved.setdefault(t.untyped_storage().data_ptr(), t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
        got = f"shape {tuple(loss.shape)}, requires_grad={loss.requires_grad}" if isinstance(loss, torch.Tensor) \
            else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor that requires grad (a loss), got {got}")
    total = sum(t.untyped_storage().nbytes() for t in saved.values())
    saved.clear()
    loss.backward()
    return total


# ----------------------------------------------------------------------------- exercise 3: a learning-rate schedule

def warmup_cosine_lr(step: int, warmup_steps: int, peak_lr: float, total_steps: int) -> float:
    """The learning rate of optimiser step ``step`` (0, 1, ..., total_steps - 1).

    Linear warm-up, ``peak_lr * (step + 1) / warmup_steps`` for the first ``warmup_steps``
    steps (so step 0 already moves, and step warmup_steps - 1 is at the peak), then a cosine
    from ``peak_lr`` down to 0 over the remaining steps.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)  # 0 -> 1
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class PeakBytes:
    """The most bytes that an attention's intermediate tensors held at once, counted from their shapes.

    Not a measurement of the process's memory: each function below calls :meth:`live` with the
    tensors alive together at its largest moment (the inputs and the output, the same for every
    method, are left out), and the meter keeps the maximum of their ``numel * element_size``.
    """

    def __init__(self) -> None:
        self.peak = 0

    def live(self, *tensors: torch.Tensor) -> None:
        """Record that ``tensors`` are alive at once."""
        self.peak = max(self.peak, sum(t.numel() * t.element_size() for t in tensors))


def _causal_fill(scores: torch.Tensor, start: int) -> torch.Tensor:
    """``scores`` (..., Tq, Bk) for keys start..start+Bk-1 with -inf where a key is after its query."""
    rows = torch.arange(scores.shape[-2], device=scores.device)[:, None]  # (Tq, 1)
    cols = torch.arange(start, start + scores.shape[-1], device=scores.device)[None, :]  # (1, Bk)
    return scores.masked_fill(cols > rows, float("-inf"))


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False,
                   meter: PeakBytes | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v with the whole (..., Tq, Tk) score matrix, as notebook 07 computes it.

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, d_v) -> (..., Tq, d_v). ``meter`` is told the
    scores and the weights, both (..., Tq, Tk), which are alive together.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        scores = _causal_fill(scores, 0)
    weights = torch.softmax(scores, dim=-1)  # (..., Tq, Tk)
    if meter is not None:
        meter.live(scores, weights)
    return weights @ v


def online_softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with its normaliser found in one pass (Milakov & Gimelshein 2018).

    Reading x one column at a time, keep the running max m and the running sum
    total = sum_j exp(x_j - m); when a new max arrives, the old sum is rescaled by exp(m_old - m_new).
    A second pass writes exp(x - m) / l. Rows of -inf only give NaN, as ``torch.softmax`` does.
    """
    m = torch.full_like(x[..., :1], float("-inf"))  # (..., 1)
    total = torch.zeros_like(x[..., :1])  # (..., 1)
    for j in range(x.shape[-1]):
        xj = x[..., j : j + 1]  # (..., 1)
        m_new = torch.maximum(m, xj)
        shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)  # -inf - -inf would be NaN
        total = total * torch.exp(m - shift) + torch.exp(xj - shift)
        m = m_new
    return torch.exp(x - m) / total


def online_softmax_update(
    m: torch.Tensor, total: torch.Tensor, acc: torch.Tensor, scores: torch.Tensor, v: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one block of keys into the running (m, l, acc) of each query row; return the new three.

    m, total (..., Tq, 1): the running max of the scores seen and the running sum l of exp(score - m);
    acc (..., Tq, d_v): the running sum of exp(score - m) v; scores (..., Tq, Bk) for this
    block (-inf where masked), v (..., Bk, d_v). Start from m = -inf, total = 0, acc = 0; after the
    last block the attention output is acc / total. A row whose scores are all -inf so far keeps
    m = -inf and total = acc = 0 (its shift is taken as 0, not -inf, so no NaN appears).
    """
    m_new = torch.maximum(m, scores.amax(dim=-1, keepdim=True))  # (..., Tq, 1)
    shift = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    rescale = torch.exp(m - shift)  # (..., Tq, 1): 0 when m = -inf
    p = torch.exp(scores - shift)  # (..., Tq, Bk)
    return m_new, total * rescale + p.sum(dim=-1, keepdim=True), acc * rescale + p @ v


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = False, block: int = 64,
                    meter: PeakBytes | None = None) -> torch.Tensor:
    """Exact attention over blocks of ``block`` keys, never holding the (Tq, Tk) matrix (FlashAttention's idea).

    q (..., Tq, d), k (..., Tk, d), v (..., Tk, d_v) -> (..., Tq, d_v), equal to
    ``F.scaled_dot_product_attention(q, k, v, is_causal=causal)`` up to rounding. Every query
    row carries (m, l, acc) through :func:`online_softmax_update`; ``meter`` is told that state
    with one block's scores and their exponentials, (..., Tq, block) each. A row that may
    attend to no key gets zeros.
    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    m = q.new_full((*q.shape[:-1], 1), float("-inf"))  # (..., Tq, 1)
    total = q.new_zeros((*q.shape[:-1], 1))  # (..., Tq, 1)
    acc = q.new_zeros((*q.shape[:-1], v.shape[-1]))  # (..., Tq, d_v)
    for start in range(0, k.shape[-2], block):
        scores = q @ k[..., start : start + block, :].transpose(-2, -1) * scale  # (..., Tq, Bk)
        if causal:
            scores = _causal_fill(scores, start)
        if meter is not None:
            meter.live(m, total, acc, scores, scores)  # the state, the scores and p = exp(scores - m), same shape
        m, total, acc = online_softmax_update(m, total, acc, scores, v[..., start : start + block, :])
    return torch.where(total > 0, acc / total, torch.zeros_like(acc))
