"""Notebook 08e: rotary position embeddings (RoPE; Su et al. 2021, "RoFormer") and a length-extrapolation test.

RoPE adds no vector to the token embedding. It rotates each query and each key inside
attention, by an angle that grows with the position m. The d features of a head form d/2
pairs; pair j turns by m * theta_j with theta_j = base^(-2j/d) (base 10000, the frequencies of
notebook 08's sinusoidal encodings):

    (x_a, x_b) -> (x_a cos(m theta_j) - x_b sin(m theta_j),  x_a sin(m theta_j) + x_b cos(m theta_j))

Since R(m theta)^T R(n theta) = R((n - m) theta), the score q_m . k_n after rotation depends on
the positions only through n - m. Which features form pair j is a convention:
``"interleaved"`` (x_2j, x_2j+1), RoFormer's and this course's, or ``"halves"`` (x_j, x_j+d/2),
GPT-NeoX's. Both give the relative property; they differ by a fixed permutation of the
features, which the learned W_Q and W_K absorb, but a model must use one throughout.

- :func:`rope_frequencies`, :func:`rope_angles`, :func:`apply_rope`: the rotation itself;
- :func:`rotary_attention`: scaled dot-product attention with q and k rotated (v is not);
- :class:`RotaryMultiHeadAttention`, :class:`RotaryBlock`: notebook 07's attention and 08's block with RoPE;
- :class:`PositionsGPT`: 08's tiny GPT with ``"learned"``, ``"sinusoidal"`` or ``"rope"`` positions and
  a ``max_len`` longer than it is trained on; :func:`loss_by_position` scores it on longer windows, and
  :func:`sliding_window_mask` lets each position see only its last T keys.

The exercise on this module (its check) is in :mod:`course_utils.exercises.rope`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .core.shapes import require_shape
from .self_attention import MultiHeadAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads
from .transformer import Block, sinusoidal_positions

PAIRINGS = ("interleaved", "halves")


def rope_frequencies(d: int, base: float = 10000.0) -> torch.Tensor:
    """(d/2,) angular frequencies theta_j = base^(-2j/d), j = 0 .. d/2 - 1 (float64)."""
    if d % 2:
        raise ValueError(f"d must be even (the features rotate in pairs), got d = {d}")
    return base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)


def rope_angles(positions: torch.Tensor, d: int, base: float = 10000.0) -> torch.Tensor:
    """(T, d/2) angles m * theta_j for the integer ``positions`` m (T,), in float64."""
    require_shape("positions", positions, ("T",))
    return positions.to(torch.float64)[:, None] * rope_frequencies(d, base)[None, :]  # (T, d/2)


def _pairs(x: torch.Tensor, pairing: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two members (x_a, x_b) of every pair, each (..., d/2)."""
    if pairing == "interleaved":
        return x[..., 0::2], x[..., 1::2]
    if pairing == "halves":
        return x.chunk(2, dim=-1)
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")


def _unpair(a: torch.Tensor, b: torch.Tensor, pairing: str) -> torch.Tensor:
    """Inverse of :func:`_pairs`: (..., d/2) twice -> (..., d)."""
    if pairing == "interleaved":
        return torch.stack((a, b), dim=-1).flatten(-2)
    return torch.cat((a, b), dim=-1)


def apply_rope(x: torch.Tensor, positions: torch.Tensor | None = None, *, base: float = 10000.0,
               pairing: str = "interleaved") -> torch.Tensor:
    """Rotate the pairs of features of ``x`` (..., T, d) by m * theta_j, m the position of each row.

    ``positions`` (T,) defaults to 0 .. T-1. ``pairing`` is ``"interleaved"`` (the course's,
    RoFormer's) or ``"halves"``. Returns a tensor of x's shape and dtype.
    """
    if x.dim() < 2:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (..., T, d)")
    T, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(T, device=x.device)
    require_shape("positions", positions, (T,))
    angle = rope_angles(positions, d, base).to(device=x.device)  # (T, d/2), float64
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)  # (T, d/2) each
    a, b = _pairs(x, pairing)  # (..., T, d/2) each
    return _unpair(a * cos - b * sin, a * sin + b * cos, pairing)


def rotary_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *,
                     base: float = 10000.0, pairing: str = "interleaved") -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with RoPE: q (..., Tq, d) and k (..., Tk, d) rotated by their positions, v as it is.

    Queries sit at positions Tk - Tq .. Tk - 1 (the last ones, as when a cache holds the
    earlier keys), keys at 0 .. Tk - 1. Returns the output (..., Tq, d_v) and the weights.
    """
    Tq, Tk = q.shape[-2], k.shape[-2]
    q_pos = torch.arange(Tk - Tq, Tk, device=q.device)  # (Tq,)
    q = apply_rope(q, q_pos, base=base, pairing=pairing)
    k = apply_rope(k, base=base, pairing=pairing)
    return scaled_dot_product_attention(q, k, v, mask)


class RotaryMultiHeadAttention(MultiHeadAttention):
    """Notebook 07's :class:`~course_utils.self_attention.MultiHeadAttention`, with RoPE on each head's q and k."""

    def __init__(self, d_model: int, n_heads: int, bias: bool = True, base: float = 10000.0):
        super().__init__(d_model, n_heads, bias)
        self.base = base

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                kv: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention only: x (B, T, D), mask (T, T) bools -> output (B, T, D), weights (B, h, T, T)."""
        if kv is not None:
            raise ValueError("RotaryMultiHeadAttention is self-attention: queries and keys share positions")
        require_shape("x", x, ("B", "T", self.in_proj_weight.shape[1]))
        q, k, v = (split_heads(t, self.n_heads)  # (B, h, T, d_k) each
                   for t in F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        out, weights = rotary_attention(q, k, v, mask, base=self.base)
        return self.out_proj(merge_heads(out)), weights


class RotaryBlock(Block):
    """Notebook 08's pre-LayerNorm :class:`~course_utils.transformer.Block` whose attention rotates q and k."""

    def __init__(self, d_model: int, n_heads: int, base: float = 10000.0):
        super().__init__(d_model, n_heads)
        self.attn = RotaryMultiHeadAttention(d_model, n_heads, base=base)


def sliding_window_mask(T: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """(T, T) bools, True where 0 <= m - n < ``window``: query m sees itself and the ``window - 1`` keys before it."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    offset = torch.arange(T, device=device)[:, None] - torch.arange(T, device=device)[None, :]  # (T, T): m - n
    return (offset >= 0) & (offset < window)


class PositionsGPT(nn.Module):
    """08's tiny GPT with a choice of positions, able to read up to ``max_len`` tokens.

    ``positions``:
    - ``"learned"``: a trained (max_len, D) table added to the embeddings. Rows the training
      windows never reach get no gradient and keep their random initialisation;
    - ``"sinusoidal"``: 08's fixed encodings, computed for any position below ``max_len``;
    - ``"rope"``: nothing added; every block's attention rotates q and k (:class:`RotaryBlock`).
    """

    def __init__(self, vocab_size: int, max_len: int, positions: str, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2):
        super().__init__()
        if positions not in ("learned", "sinusoidal", "rope"):
            raise ValueError(f"positions must be 'learned', 'sinusoidal' or 'rope', got {positions!r}")
        self.positions, self.max_len = positions, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        if positions == "learned":
            self.pos = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            pe = sinusoidal_positions(max_len, d_model) if positions == "sinusoidal" else torch.zeros(max_len, d_model)
            self.register_buffer("pos", pe, persistent=False)
        block = RotaryBlock if positions == "rope" else Block
        self.blocks = nn.ModuleList(block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, ids: torch.Tensor, window: int | None = None) -> torch.Tensor:
        """ids (B, T) with T <= max_len -> logits (B, T, V); ``window``: each position sees its last ``window`` keys."""
        require_shape("ids", ids, ("B", "T"))
        T = ids.shape[1]
        if T > self.max_len:
            raise ValueError(f"ids has shape {tuple(ids.shape)}, expected (B, T) with T <= max_len = {self.max_len}")
        x = self.embed(ids) + self.pos[:T]  # (B, T, D)
        mask = causal_mask(T, ids.device) if window is None else sliding_window_mask(T, window, ids.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln_f(x))


@torch.no_grad()
def loss_by_position(model: PositionsGPT, ids: torch.Tensor, length: int, n_windows: int = 64,
                     window: int | None = None) -> torch.Tensor:
    """(length,) mean next-token loss (nats) at each position of ``n_windows`` windows of ``ids``.

    The windows start at evenly spaced offsets, so every model reads the same text; the model is
    evaluated in eval mode, its mode restored. ``window`` goes to :meth:`PositionsGPT.forward`.
    """
    require_shape("ids", ids, ("N",))
    if len(ids) < length + 1 + n_windows:
        raise ValueError(f"ids has {len(ids)} tokens, too few for {n_windows} windows of {length} + 1")
    device = next(model.parameters()).device
    starts = torch.linspace(0, len(ids) - length - 2, n_windows).long()  # (n,)
    text = ids[starts[:, None] + torch.arange(length + 1)].to(device)  # (n, length + 1)
    was_training = model.training
    model.eval()
    logits = model(text[:, :-1], window=window)  # (n, length, V)
    model.train(was_training)
    loss = F.cross_entropy(logits.transpose(1, 2), text[:, 1:], reduction="none")  # (n, length)
    return loss.mean(0).cpu()
