"""Notebook 09c, section 5: the delta rule (DeltaNet, gated DeltaNet), a matrix-state RNN, not diagonal.

The convention of notebook 09b's linear attention (:mod:`course_utils.linear_attention`): the state
``S`` is ``(d_k, d_v)`` and the output is ``o_t = S_t^T q_t``. One step, with the key normalised first
(as DeltaNet does), a write strength ``beta_t`` and an optional decay ``gamma_t`` (gated DeltaNet)::

    k_t <- k_t / ||k_t||
    S_t = gamma_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T        (d_k, d_v)
    o_t = S_t^T q_t                                                       (d_v,)

With ``gamma = 1`` the update is one gradient step of size ``beta_t`` on the regression loss
``1/2 ||S^T k_t - v_t||^2`` (its gradient is ``k_t (k_t^T S - v_t^T)``): the state is corrected towards
storing ``v_t`` under the key ``k_t``, where linear attention only adds ``k_t v_t^T``. The transition
``I - beta k k^T`` has the eigenvalue ``1 - beta`` along ``k`` and 1 across it: ``beta`` in ``[0, 1]``
keeps it in ``[0, 1]``; ``beta`` in ``[0, 2]`` reaches ``-1``, and ``beta = 2`` is a reflection (a
Householder matrix), which is what state tracking needs.

- :func:`delta_rule_step`, :func:`delta_rule_recurrent`: the step and the loop over ``t``, shapes as in
  09b (``q``, ``k`` ``(B, NH, T, d_k)``, ``v`` ``(B, NH, T, d_v)``, ``beta``, ``gamma`` ``(B, NH, T)``).
- :func:`householder_count_inputs`: hand-made inputs with which the delta rule counts ones modulo ``m``
  exactly, ``m - 1`` reflections per input bit (one for parity).

The exercises on this module (checks) are in :mod:`course_utils.exercises.delta_rule`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from .core.shapes import require_shape


def _per_step(name: str, value: Any, like: torch.Tensor, default: float) -> torch.Tensor:
    """``value`` as a tensor of ``like``'s shape without its last axis; a number or None fills it."""
    shape = like.shape[:-1]
    if value is None:
        value = default
    if not isinstance(value, torch.Tensor):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a tensor, a number or None, got {type(value).__name__}")
        return torch.full(shape, float(value), dtype=like.dtype, device=like.device)
    require_shape(name, value, tuple(shape))
    return value.to(like.dtype)


def delta_rule_step(
    S: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: Any, gamma: Any = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step: ``S <- gamma (I - beta k k^T) S + beta k v^T`` (``k`` normalised), then ``o = S^T q``.

    ``S`` ``(..., d_k, d_v)``, ``q``, ``k`` ``(..., d_k)``, ``v`` ``(..., d_v)``, ``beta`` and ``gamma``
    ``(...)`` or numbers (``gamma`` None: 1, DeltaNet). Returns ``(o (..., d_v), S (..., d_k, d_v))``.
    """
    require_shape("S", S, (*k.shape, "d_v"))
    require_shape("v", v, (*k.shape[:-1], S.shape[-1]))
    require_shape("q", q, tuple(k.shape))
    beta, gamma = _per_step("beta", beta, k, 1.0), _per_step("gamma", gamma, k, 1.0)
    k = F.normalize(k, dim=-1)  # (..., d_k), unit length
    b = beta[..., None, None]
    kS = (k[..., :, None] * S).sum(-2)  # (..., d_v): k^T S, what the state holds under the key k
    S = gamma[..., None, None] * (S - b * k[..., :, None] * kS[..., None, :])  # gamma (I - beta k k^T) S
    S = S + b * k[..., :, None] * v[..., None, :]  # + beta k v^T: (..., d_k, d_v)
    o = (q[..., :, None] * S).sum(-2)  # (..., d_v): S^T q
    return o, S


def delta_rule_recurrent(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, beta: Any, gamma: Any = None, S0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loop over ``t`` of :func:`delta_rule_step`; returns ``(O (B, NH, T, d_v), S_T (B, NH, d_k, d_v))``.

    ``q``, ``k`` ``(B, NH, T, d_k)``, ``v`` ``(B, NH, T, d_v)``, ``beta``, ``gamma`` ``(B, NH, T)`` or numbers;
    ``S0`` ``(B, NH, d_k, d_v)`` (zeros if None).
    """
    require_shape("q", q, ("B", "NH", "T", "d_k"))
    B, NH, T, d_k = q.shape
    require_shape("k", k, (B, NH, T, d_k))
    require_shape("v", v, (B, NH, T, "d_v"))
    d_v = v.shape[-1]
    beta, gamma = _per_step("beta", beta, q, 1.0), _per_step("gamma", gamma, q, 1.0)  # (B, NH, T)
    S = q.new_zeros(B, NH, d_k, d_v) if S0 is None else S0
    require_shape("S0", S, (B, NH, d_k, d_v))
    outputs = []
    for t in range(T):
        o_t, S = delta_rule_step(S, q[:, :, t], k[:, :, t], v[:, :, t], beta[:, :, t], gamma[:, :, t])
        outputs.append(o_t)
    return torch.stack(outputs, 2), S  # (B, NH, T, d_v), (B, NH, d_k, d_v)


def transposition_key(i: int, j: int, size: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The unit key ``(e_i - e_j) / sqrt(2)`` of length ``size``: ``I - 2 k k^T`` swaps coordinates ``i`` and ``j``."""
    if not (0 <= i < size and 0 <= j < size and i != j):
        raise ValueError(f"need two different coordinates in 0 .. {size - 1}, got {i} and {j}")
    k = torch.zeros(size, dtype=dtype)
    k[i], k[j] = 1 / math.sqrt(2), -1 / math.sqrt(2)
    return k


def householder_count_inputs(
    bits: torch.Tensor, modulus: int, *, beta_max: float = 2.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Delta-rule inputs that count the ones of ``bits`` modulo ``m = modulus``: ``(q, k, v, beta, S0)``.

    ``bits`` ``(B, T)`` of 0 and 1. Every bit becomes ``m - 1`` delta-rule steps with the keys of the
    transpositions ``(0, 1), (1, 2), ..., (m-2, m-1)`` (:func:`transposition_key`), ``beta = beta_max * bit``
    and ``v = 0``: with ``beta_max = 2`` each step on a one is a reflection that swaps two coordinates, and
    their product is the cyclic permutation ``P`` with ``P e_i = e_(i-1 mod m)``. The state starts at
    ``S0 = I`` ``(m, m)``, so after ``n`` ones it is ``P^n``, and the output for ``q = e_0`` is
    ``(P^n)^T e_0 = e_(n mod m)``: read it after every ``m - 1`` steps, its argmax is the count.
    Shapes: ``q``, ``k`` ``(B, 1, (m-1) T, m)``, ``v`` ``(B, 1, (m-1) T, m)``, ``beta`` ``(B, 1, (m-1) T)``,
    ``S0`` ``(B, 1, m, m)``; float64 unless ``bits`` is another float dtype.
    """
    require_shape("bits", bits, ("B", "T"))
    if isinstance(modulus, bool) or not isinstance(modulus, int) or modulus < 2:
        raise ValueError(f"modulus must be an int >= 2, got {modulus!r}")
    dtype = bits.dtype if bits.is_floating_point() else torch.float64
    B, T = bits.shape
    m, steps = modulus, (modulus - 1) * bits.shape[1]
    keys = torch.stack([transposition_key(i, i + 1, m, dtype) for i in range(m - 1)])  # (m-1, m)
    k = keys.repeat(T, 1).expand(B, 1, steps, m).to(bits.device).clone()  # (B, 1, (m-1) T, m)
    q = torch.zeros_like(k)
    q[..., 0] = 1.0  # read row 0 of the state
    beta = (beta_max * bits.to(dtype)).repeat_interleave(m - 1, dim=1)[:, None]  # (B, 1, (m-1) T)
    S0 = torch.eye(m, dtype=dtype, device=bits.device).expand(B, 1, m, m).clone()
    return q, k, torch.zeros_like(k), beta, S0
