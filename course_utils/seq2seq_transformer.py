"""Notebook 08b, sections 1-6: the encoder-decoder transformer, with cross-attention, on the dates task.

    memory = Encoder(src_embed(x) + PE)                   (B, S, D), padding keys masked
    y      = tgt_embed(y_in) + PE                          (B, T, D)
    each decoder layer (pre-LayerNorm, like notebook 08's Block):
        y = y + SelfAttn(LN1(y), causal mask)              queries, keys, values from y
        y = y + CrossAttn(LN2(y), kv=memory, padding mask) queries from y, keys/values from memory
        y = y + MLP(LN3(y))
    logits = Linear(LN(y))                                 (B, T, V)

An encoder layer is notebook 08's :class:`~course_utils.transformer.Block` given a padding
mask instead of a causal one. Attention is notebook 07's
:class:`~course_utils.self_attention.MultiHeadAttention`. :class:`Seq2SeqTransformer` has the
interface of notebook 06's ``AttentionSeq2Seq`` (``forward(src, lengths, tgt_in)``,
``greedy(src, lengths, steps)``), so 06's loss and exact-match helpers serve both.
Section 4's training (:func:`train_comparison_model`) is also what ``benchmarks/seq2seq_seeds.py``
runs for the other seeds.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.seq2seq_transformer`.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import AttentionSeq2Seq, dates_batches, teacher_forcing_loss
from .core.device import get_device
from .core.seed import seed_everything
from .core.shapes import require_shape
from .core.training import History, fit
from .data.dates import (
    SOURCE_CHARS,
    TARGET_CHARS,
    encode_source,
    encode_target,
    make_pairs,
    split_days_with_validation,
)
from .self_attention import MultiHeadAttention, causal_mask, padding_mask
from .transformer import MLP, Block, sinusoidal_positions

EncoderLayer = Block  # x + SelfAttn(LN1(x), padding mask), then x + MLP(LN2(x)): 08's block, another mask


class DecoderLayer(nn.Module):
    """A pre-LayerNorm decoder layer: causal self-attention, cross-attention to the encoder, MLP."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ln3 = nn.LayerNorm(d_model)
        self.mlp = MLP(d_model)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, T, D), memory (B, S, D); tgt_mask (T, T), memory_mask (B, 1, S) bools, True = may attend.

        Returns the new y (B, T, D) and the cross-attention weights (B, h, T, S).
        """
        y = y + self.self_attn(self.ln1(y), tgt_mask)[0]  # (B, T, D)
        out, weights = self.cross_attn(self.ln2(y), memory_mask, kv=memory)  # (B, T, D), (B, h, T, S)
        y = y + out
        return y + self.mlp(self.ln3(y)), weights


class Seq2SeqTransformer(nn.Module):
    """Embeddings with sinusoidal positions, an encoder stack, a decoder stack and a read-out."""

    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 64, n_heads: int = 4, n_encoder: int = 2,
                 n_decoder: int = 2, max_len: int = 64):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=0)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model)
        self.register_buffer("pos", sinusoidal_positions(max_len, d_model), persistent=False)  # (max_len, D)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_heads) for _ in range(n_encoder))
        self.ln_enc = nn.LayerNorm(d_model)
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_heads) for _ in range(n_decoder))
        self.ln_dec = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, tgt_vocab)

    def encode(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids padded with 0, lengths (B,) -> memory (B, S, D) and its mask (B, 1, S)."""
        require_shape("src", src, ("B", "S"))
        require_shape("lengths", lengths, (src.shape[0],))
        if src.shape[1] > len(self.pos):
            raise ValueError(f"src has {src.shape[1]} positions, more than the model's max_len = {len(self.pos)}")
        mask = padding_mask(lengths.to(src.device), src.shape[1])  # (B, 1, S)
        x = self.src_embed(src) + self.pos[: src.shape[1]]  # (B, S, D)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.ln_enc(x), mask

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor,
               memory_mask: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """tgt_in (B, T) -> logits (B, T, V) and each layer's cross-attention weights (B, h, T, S)."""
        T = tgt_in.shape[1]
        y = self.tgt_embed(tgt_in) + self.pos[:T]  # (B, T, D)
        mask, weights = causal_mask(T, tgt_in.device), []
        for layer in self.decoder:
            y, w = layer(y, memory, mask, memory_mask)
            weights.append(w)
        return self.head(self.ln_dec(y)), weights

    def forward(self, src: torch.Tensor, lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for the target inputs ``tgt_in`` (B, T)."""
        memory, mask = self.encode(src, lengths)
        return self.decode(tgt_in, memory, mask)[0]

    @torch.no_grad()
    def greedy(self, src: torch.Tensor, lengths: torch.Tensor, steps: int,
               bos: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: tokens (B, steps) and the last layer's cross-attention (B, h, steps, S)."""
        memory, mask = self.encode(src, lengths)
        ids = torch.full((src.shape[0], 1), bos, dtype=torch.long, device=src.device)  # (B, 1)
        for _ in range(steps):
            logits, _ = self.decode(ids, memory, mask)  # (B, t, V): the whole prefix again (T is tiny)
            ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
        _, weights = self.decode(ids[:, :-1], memory, mask)
        return ids[:, 1:], weights[-1]


def next_log_probs_fn(model: Seq2SeqTransformer):
    """``(prefixes (N, K, t), (memory (N, S, D), mask (N, 1, S))) -> log-probs (N, K, V)``, for beam search."""

    @torch.no_grad()
    def next_log_probs(prefixes: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        memory, mask = state
        N, K, t = prefixes.shape
        logits, _ = model.decode(prefixes.reshape(N * K, t), memory.repeat_interleave(K, dim=0),
                                 mask.repeat_interleave(K, dim=0))  # (N K, t, V)
        return torch.log_softmax(logits[:, -1].float(), dim=-1).view(N, K, -1)

    return next_log_probs


# ----------------------------------------------------------------------------- section 4: side by side with 06's model

# 06's budget: 240 Adam steps of 128 dates, gradient norm clipped at 1; each model its own learning rate.
COMPARISON_BUDGET = {"steps": 240, "batch_size": 128}
COMPARISON_LR = {"GRU + attention (06)": 3e-3, "transformer": 1e-2}


def comparison_task() -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Section 1's splits as ``{"train" | "val" | "test": (src (N, S), lengths (N,), tgt (N, 10))}``.

    06's day split (seed 0) with 2,000 of its training days held out for validation; 30,000
    training pairs (seed 1), 1,000 validation pairs (seed 3), 2,000 test pairs (seed 2).
    """
    train_days, val_days, test_days = split_days_with_validation(n_test_days=5000, n_val_days=2000, seed=0)
    pairs = {"train": make_pairs(train_days, 30_000, seed=1), "val": make_pairs(val_days, 1000, seed=3),
             "test": make_pairs(test_days, 2000, seed=2)}
    out = {}
    for split, split_pairs in pairs.items():
        src, lengths = encode_source([text for text, _ in split_pairs])  # (N, S), (N,)
        out[split] = (src, lengths, encode_target([iso for _, iso in split_pairs]))
    return out


def comparison_model(name: str) -> nn.Module:
    """A fresh model of section 4: 06's GRU + additive attention, or the small encoder-decoder transformer."""
    if name == "transformer":
        return Seq2SeqTransformer(len(SOURCE_CHARS), len(TARGET_CHARS), d_model=32, n_heads=4, n_encoder=2,
                                  n_decoder=2)
    if name == "GRU + attention (06)":
        return AttentionSeq2Seq(len(SOURCE_CHARS), len(TARGET_CHARS), embed=32, hidden=64, attention="additive")
    raise ValueError(f"name must be one of {', '.join(map(repr, COMPARISON_LR))}, got {name!r}")


def train_comparison_model(name: str, train: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *, seed: int = 0,
                           device: torch.device | None = None, steps: int | None = None,
                           progress: bool = True) -> tuple[nn.Module, History]:
    """Train one model of section 4 on ``train`` = ``(src (N, S), lengths (N,), tgt (N, 10))``.

    ``seed`` sets the initial weights (``seed_everything(seed)``) and the batches
    (:func:`~course_utils.attention.dates_batches` with seed ``1000 * seed``), so both models
    of one seed read the same batches in the same order; seed 0 is the notebook's run.
    Adam at :data:`COMPARISON_LR` ``[name]``, :data:`COMPARISON_BUDGET` (``steps`` overrides
    its number of steps), gradient norm clipped at 1. Returns the model and its ``History``.
    """
    steps = COMPARISON_BUDGET["steps"] if steps is None else steps
    seed_everything(seed)
    model = comparison_model(name).to(device or get_device())

    def batches(epoch: int):
        return dates_batches(*train, steps=steps, batch_size=COMPARISON_BUDGET["batch_size"],
                             seed=1000 * seed + epoch)

    optimizer = torch.optim.Adam(model.parameters(), lr=COMPARISON_LR[name])
    history = fit(model, batches, teacher_forcing_loss, optimizer, epochs=1, clip_grad_norm=1.0, device=device,
                  progress=progress, desc=name)
    return model, history


# ----------------------------------------------------------------------------- the check against torch.nn

def _copy_attention(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    ours.in_proj_weight.copy_(ref.in_proj_weight)
    ours.in_proj_bias.copy_(ref.in_proj_bias)
    ours.out_proj.load_state_dict(ref.out_proj.state_dict())


@torch.no_grad()
def load_torch_layer(ours: nn.Module, ref: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> None:
    """Copy the weights of torch's (pre-LN, GELU) encoder or decoder layer into ours, in place."""
    if isinstance(ref, nn.TransformerDecoderLayer) and isinstance(ours, DecoderLayer):
        _copy_attention(ours.self_attn, ref.self_attn)
        _copy_attention(ours.cross_attn, ref.multihead_attn)
        norms = (ours.ln1, ours.ln2, ours.ln3), (ref.norm1, ref.norm2, ref.norm3)
    elif isinstance(ref, nn.TransformerEncoderLayer) and isinstance(ours, Block):
        _copy_attention(ours.attn, ref.self_attn)
        norms = (ours.ln1, ours.ln2), (ref.norm1, ref.norm2)
    else:
        raise TypeError(f"load_torch_layer copies nn.TransformerDecoderLayer into DecoderLayer or "
                        f"nn.TransformerEncoderLayer into EncoderLayer, got {type(ref).__name__} into "
                        f"{type(ours).__name__}")
    for mine, theirs in zip(*norms, strict=True):
        mine.load_state_dict(theirs.state_dict())
    ours.mlp.fc.load_state_dict(ref.linear1.state_dict())
    ours.mlp.proj.load_state_dict(ref.linear2.state_dict())


def torch_layer(kind: str, d_model: int, n_heads: int) -> nn.Module:
    """torch's pre-LN layer with our settings: GELU MLP of 4 D, no dropout, batch first."""
    cls = {"encoder": nn.TransformerEncoderLayer, "decoder": nn.TransformerDecoderLayer}[kind]
    return cls(d_model, n_heads, dim_feedforward=4 * d_model, dropout=0.0, activation="gelu", batch_first=True,
               norm_first=True)
