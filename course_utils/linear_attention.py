"""Notebook 09b, sections 3-4 and exercises 3-4: linear attention with decay is an RNN with a matrix state.

With queries ``q_t``, keys ``k_t`` ``(d_k,)``, values ``v_t`` ``(d_v,)`` and a decay
``gamma_t`` in ``(0, 1]`` per step, the state and the output are::

    S_t = gamma_t S_{t-1} + k_t v_t^T        (d_k, d_v)        S_0 = 0 (or a given S0)
    o_t = S_t^T q_t                          (d_v,)            i.e. o_t^T = q_t^T S_t

``gamma = 1`` is plain causal linear attention (Katharopoulos et al. 2020, without the feature
map and the normaliser); a constant ``gamma`` is RetNet's retention; a ``gamma_t`` computed from
the input is Mamba-2's (GLA's gate is a vector per key dimension, not covered here). The same
outputs three ways:

- :func:`linear_attention_recurrent`: the loop over ``t``, a constant-size state.
- :func:`linear_attention_parallel`: ``O = ((Q K^T) * D) V`` with the decay mask
  ``D_ts = gamma_{s+1} ... gamma_t`` for ``s <= t``, else 0 (:func:`decay_mask`, in log space).
  A ``(T, T)`` matrix per head.
- :func:`linear_attention_chunkwise`: chunks of ``C`` steps, inside a chunk the parallel form,
  between chunks the recurrence on ``S``: the chunked scan of :mod:`course_utils.linear_recurrence` with a
  matrix state (pass 1: every chunk's decay and ``sum gamma.. k v^T`` at once; pass 2: the states
  entering each chunk, one chunk after another; pass 3: every chunk's outputs at once).

Shapes: ``q``, ``k`` ``(B, NH, T, d_k)``, ``v`` ``(B, NH, T, d_v)`` (batch, heads, time, features,
the layout of ``torch.nn.functional.scaled_dot_product_attention``), ``gamma`` ``(B, NH, T)``, a
number, or None (1).

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.linear_attention`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .core.shapes import require_shape
from .prefix_scan import chunk_size


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int, int]:
    require_shape("q", q, ("B", "NH", "T", "d_k"))
    B, NH, T, d_k = q.shape
    require_shape("k", k, (B, NH, T, d_k))
    require_shape("v", v, (B, NH, T, "d_v"))
    return B, NH, T, d_k, v.shape[-1]


def log_decay(gamma: Any, like: torch.Tensor) -> torch.Tensor:
    """``log gamma`` as a ``(B, NH, T)`` tensor for ``like`` ``(B, NH, T, d)``; ``gamma`` a tensor, a number or None.

    Raises ``ValueError`` unless every ``gamma`` lies in ``(0, 1]`` (a decay, not a growth).
    """
    B, NH, T, _ = like.shape
    if gamma is None:
        return like.new_zeros(B, NH, T)
    if not isinstance(gamma, torch.Tensor):
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise TypeError(f"gamma must be a tensor (B, NH, T), a number or None, got {type(gamma).__name__}")
        gamma = torch.full((B, NH, T), float(gamma), dtype=like.dtype, device=like.device)
    require_shape("gamma", gamma, (B, NH, T))
    if not ((gamma > 0) & (gamma <= 1)).all():
        raise ValueError(f"gamma must lie in (0, 1], got values from {gamma.min().item():.3g} to "
                         f"{gamma.max().item():.3g}")
    return gamma.to(like.dtype).log()


def linear_attention_step(
    S: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``S <- gamma S + k v^T``, then ``o = S^T q``; ``S`` ``(..., d_k, d_v)``, ``q``, ``k`` ``(..., d_k)``,
    ``v`` ``(..., d_v)``, ``gamma`` ``(...)``. Returns ``(o (..., d_v), S (..., d_k, d_v))``."""
    S = gamma[..., None, None] * S + k[..., :, None] * v[..., None, :]  # (..., d_k, d_v)
    o = (q[..., :, None] * S).sum(-2)  # (..., d_v): q^T S
    return o, S


def linear_attention_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: Any = None, S0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrent form, a loop over ``t`` (:func:`linear_attention_step`); returns ``(O (B, NH, T, d_v), S_T)``."""
    B, NH, T, d_k, d_v = _check_qkv(q, k, v)
    gamma = log_decay(gamma, q).exp()  # (B, NH, T)
    S = q.new_zeros(B, NH, d_k, d_v) if S0 is None else S0
    require_shape("S0", S, (B, NH, d_k, d_v))
    outputs = []
    for q_t, k_t, v_t, g_t in zip(q.unbind(2), k.unbind(2), v.unbind(2), gamma.unbind(2), strict=True):
        o_t, S = linear_attention_step(S, q_t, k_t, v_t, g_t)
        outputs.append(o_t)
    return torch.stack(outputs, 2), S  # (B, NH, T, d_v), (B, NH, d_k, d_v)


def decay_mask(gamma: torch.Tensor) -> torch.Tensor:
    """``D_ts = gamma_{s+1} ... gamma_t`` for ``s <= t`` (1 on the diagonal), else 0: ``(..., T)`` -> ``(..., T, T)``.

    In log space, ``exp(c_t - c_s)`` with ``c_t = sum_{r<=t} log gamma_r``: a ratio of cumulative
    products would underflow to 0 / 0 on long sequences.
    """
    if not isinstance(gamma, torch.Tensor) or gamma.dim() < 1:
        raise TypeError(f"gamma must be a tensor (..., T), got {type(gamma).__name__}")
    c = torch.cumsum(gamma.log(), dim=-1)  # (..., T)
    log_D = c[..., :, None] - c[..., None, :]  # (..., T, T): row t, column s
    T = gamma.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool, device=gamma.device).tril()
    return log_D.masked_fill(~causal, float("-inf")).exp()


def linear_attention_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: Any = None) -> torch.Tensor:
    """The masked parallel form ``O = ((Q K^T) * D) V``: ``(B, NH, T, T)`` scores; returns O ``(B, NH, T, d_v)``."""
    _check_qkv(q, k, v)
    D = decay_mask(log_decay(gamma, q).exp())  # (B, NH, T, T)
    return ((q @ k.transpose(-1, -2)) * D) @ v  # (B, NH, T, d_v)


def linear_attention_chunkwise(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gamma: Any = None, chunk: int = 64,
    S0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunkwise form: parallel inside chunks of ``chunk`` steps, recurrent between them; ``(O, S_T)``.

    ``T`` is padded to a multiple of ``chunk`` with the identity step (``gamma = 1``, ``k = v = q = 0``).
    """
    B, NH, T, d_k, d_v = _check_qkv(q, k, v)
    C = chunk_size(chunk)
    log_g = log_decay(gamma, q)  # (B, NH, T)
    N = -(-T // C)
    pad = N * C - T
    q, k, v = (F.pad(x, (0, 0, 0, pad)).unflatten(2, (N, C)) for x in (q, k, v))  # (B, NH, N, C, d)
    log_g = F.pad(log_g, (0, pad)).unflatten(2, (N, C))  # (B, NH, N, C): log 1 = 0 on the padding
    c = torch.cumsum(log_g, dim=-1)  # (B, NH, N, C): log of gamma_(chunk start) ... gamma_t
    # pass 1, all chunks at once: the chunk's own state from S = 0, and its total decay
    to_end = (c[..., -1:] - c).exp()  # (B, NH, N, C): gamma_{s+1} ... gamma_(chunk end)
    S_chunk = (k * to_end[..., None]).transpose(-1, -2) @ v  # (B, NH, N, d_k, d_v)
    P = c[..., -1].exp()  # (B, NH, N)
    # pass 2, chunk after chunk: the state entering each chunk
    S = q.new_zeros(B, NH, d_k, d_v) if S0 is None else S0
    require_shape("S0", S, (B, NH, d_k, d_v))
    entering = []
    for n in range(N):
        entering.append(S)
        S = P[..., n, None, None] * S + S_chunk[..., n, :, :]
    S_enter = torch.stack(entering, 2)  # (B, NH, N, d_k, d_v)
    # pass 3, all chunks at once: inside the chunk (parallel form) + from the entering state
    intra = ((q @ k.transpose(-1, -2)) * decay_mask(log_g.exp())) @ v  # (B, NH, N, C, d_v)
    inter = (q * c.exp()[..., None]) @ S_enter  # (B, NH, N, C, d_v)
    return (intra + inter).flatten(2, 3)[:, :, :T], S  # (B, NH, T, d_v), (B, NH, d_k, d_v)
