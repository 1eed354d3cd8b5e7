"""Notebook 07 (and 08's blocks): self-attention and multi-head attention from scratch.

For a sequence X (B, T, D): Q = X W_Q, K = X W_K, V = X W_V and

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

where M is 0 where a query may look and -inf where it may not (causal or padding mask).
Multi-head attention splits D into h heads of d_k = D / h, attends in each, concatenates
the heads and projects with W_O. :class:`MultiHeadAttention` stores its weights like
``torch.nn.MultiheadAttention`` (one ``in_proj`` of shape (3D, D), ``out_proj``) so the two
can be compared weight for weight.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.self_attention`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .core.shapes import require_attention_mask, require_shape


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, the output ``(..., Tq, d_v)`` and the weights ``(..., Tq, Tk)``.

    q (..., Tq, d_k), k (..., Tk, d_k), v (..., Tk, d_v); ``mask`` (broadcastable to
    (..., Tq, Tk)) of bools, True where a query may attend, as in
    ``F.scaled_dot_product_attention``. A float or int mask is a ``TypeError`` (see
    :func:`course_utils.core.shapes.require_attention_mask`).

    A query row that may attend to no key gets all-zero weights and a zero output.
    ``torch.softmax`` of an all ``-inf`` row, and ``torch.nn.MultiheadAttention``, give NaN
    there instead (recent versions of ``F.scaled_dot_product_attention`` give zeros, like us).
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"k has shape {tuple(k.shape)}, expected last size d_k = {q.shape[-1]} as in q")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"v has shape {tuple(v.shape)}, expected {k.shape[-2]} positions as in k")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        require_attention_mask("mask", mask, scores.shape)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)  # fully masked rows: softmax of all -inf is NaN
    return weights @ v, weights


def causal_mask(T: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bools, True on and below the diagonal: position t sees positions 0..t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def average_past_loop(x: torch.Tensor) -> torch.Tensor:
    """Each position's mean of itself and every earlier position, one position at a time: (..., T, C).

    The loop that a lower-triangular matrix product (and a causally masked softmax of zeros)
    computes at once; notebook 07, section 1.
    """
    if x.dim() < 2:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (..., T, C): positions, then features")
    out = torch.empty_like(x)
    for t in range(x.shape[-2]):
        out[..., t, :] = x[..., : t + 1, :].mean(dim=-2)  # (..., C): the mean of positions 0..t
    return out


def padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(B, 1, T) bools, True at real keys: broadcasts over queries (and, unsqueezed, heads)."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths has shape {tuple(lengths.shape)}, expected (B,)")
    return (torch.arange(T, device=lengths.device)[None, :] < lengths[:, None])[:, None, :]


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, h, T, D / h): head i takes features i*d_k .. (i+1)*d_k - 1."""
    if x.dim() != 3 or x.shape[-1] % n_heads:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, D) with D divisible by {n_heads}")
    B, T, D = x.shape
    return x.view(B, T, n_heads, D // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, h, T, d_k) -> (B, T, h * d_k), the inverse of :func:`split_heads`."""
    if x.dim() != 4:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, h, T, d_k)")
    B, h, T, d_k = x.shape
    return x.transpose(1, 2).reshape(B, T, h * d_k)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``torch.nn.MultiheadAttention``'s parameter layout.

    ``in_proj_weight`` (3D, D) stacks W_Q^T, W_K^T, W_V^T (PyTorch's Linear stores W^T),
    ``out_proj`` is W_O. ``forward(x, mask)`` is self-attention; pass ``kv`` for cross-attention.
    """

    def __init__(self, d_model: int, n_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}")
        self.n_heads = n_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model)) if bias else None
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                kv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Output (B, T, D) and per-head weights (B, h, T, Tk).

        ``mask`` of bools, True = may attend: (T, Tk), (B, T, Tk) (the same for every head) or
        (B, h, T, Tk); a (B, Tk) key-padding mask goes in as ``mask[:, None, :]``. ``kv``
        (B, Tk, D): the keys and values of cross-attention (default: x itself).
        """
        D = self.in_proj_weight.shape[1]
        if x.dim() != 3 or x.shape[-1] != D:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected (B, T, {D})")
        if kv is not None:
            require_shape("kv", kv, (x.shape[0], "Tk", D),
                          f"kv is the sequence the queries of x attend to (cross-attention): batch first, with "
                          f"x's batch size and width, and x has shape {tuple(x.shape)}.")
        kv = x if kv is None else kv
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # each (D, D)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        q = split_heads(nn.functional.linear(x, w_q, b_q), self.n_heads)  # (B, h, T, d_k)
        k = split_heads(nn.functional.linear(kv, w_k, b_k), self.n_heads)  # (B, h, Tk, d_k)
        v = split_heads(nn.functional.linear(kv, w_v, b_v), self.n_heads)  # (B, h, Tk, d_k)
        if mask is not None:
            B, T, Tk = x.shape[0], x.shape[1], kv.shape[1]
            if isinstance(mask, torch.Tensor) and mask.dim() == 2 and tuple(mask.shape) == (B, Tk) and B != T:
                raise ValueError(f"mask has shape {tuple(mask.shape)}: a (B, Tk) key-padding mask? Masks here are "
                                 f"(Tq, Tk), (B, Tq, Tk) or (B, h, Tq, Tk); pass mask[:, None, :] for (B, 1, Tk).")
            scores_shape = (B, T, Tk) if getattr(mask, "ndim", 0) == 3 else (B, self.n_heads, T, Tk)
            require_attention_mask("mask", mask, scores_shape)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # (B, 1, Tq, Tk): the same mask for every head
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(out)), weights


# ----------------------------------------------------------------------------- section 7: one layer on text

class OneLayerAttentionLM(nn.Module):
    """Token embedding + learned positions, one causal :class:`MultiHeadAttention` with a residual, a read-out.

    ``attention=False`` drops the attention layer: each position then sees only its own
    token (a bigram model), the baseline of notebook 07, section 7. The position table starts
    at zero, or, with ``position_std > 0``, at random values of that spread (``nn.Embedding``'s
    tokens start at spread 1): distinct positions from the first step, so a head can learn
    to find "the previous position" quickly (notebook 07, section 7).
    """

    def __init__(self, vocab_size: int, context: int, d_model: int = 64, n_heads: int = 4, attention: bool = True,
                 position_std: float = 0.0):
        super().__init__()
        if position_std < 0:
            raise ValueError(f"position_std must be >= 0, got {position_std}")
        self.embed = nn.Embedding(vocab_size, d_model)
        pos = torch.randn(context, d_model) * position_std if position_std else torch.zeros(context, d_model)
        self.pos = nn.Parameter(pos)  # (context, D); zeros draw no random numbers, as before position_std
        self.attn = MultiHeadAttention(d_model, n_heads) if attention else None
        self.readout = nn.Linear(d_model, vocab_size)

    def _inputs(self, ids: torch.Tensor) -> torch.Tensor:
        require_shape("ids", ids, ("B", "T"))
        if ids.shape[1] > self.pos.shape[0]:
            raise ValueError(f"ids has {ids.shape[1]} positions, expected at most the context, {self.pos.shape[0]}")
        return self.embed(ids) + self.pos[: ids.shape[1]]  # (B, T, D)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T), T <= context -> logits (B, T, V)."""
        x = self._inputs(ids)  # (B, T, D)
        if self.attn is not None:
            x = x + self.attn(x, causal_mask(ids.shape[1], ids.device))[0]
        return self.readout(x)

    def attention_weights(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> the causal attention weights of every head, (B, h, T, T) (query t, key s)."""
        if self.attn is None:
            raise ValueError("this model was built with attention=False: it has no attention weights")
        return self.attn(self._inputs(ids), causal_mask(ids.shape[1], ids.device))[1]


def mean_weight_by_offset(weights: torch.Tensor, max_offset: int) -> torch.Tensor:
    """The mean attention weight a query gives the key ``offset`` positions back, for offsets 0..max_offset - 1.

    ``weights`` (..., T, T) (query t, key s) -> (..., max_offset), averaged over the queries
    t >= max_offset - 1, each of which has a key at every offset. A head that always attends
    to the previous position gives 1 at offset 1; a causal head spread evenly gives query t
    1 / (t + 1) at every offset.
    """
    T = weights.shape[-1] if weights.dim() else 0
    require_shape("weights", weights, (None,) * max(weights.dim() - 2, 0) + (T, T),
                  "One row per query t, one column per key s.")
    if not 1 <= max_offset <= T:
        raise ValueError(f"max_offset must be from 1 to T = {T}, got {max_offset}")
    first = max_offset - 1  # the first query with max_offset keys at or behind it
    return torch.stack([weights.diagonal(-offset, dim1=-2, dim2=-1)[..., first - offset:].mean(-1)
                        for offset in range(max_offset)], dim=-1)
