"""Notebook 09b, the exercises on :mod:`course_utils.linear_attention`.

Checks that name the usual mistakes: ``check_decay_mask``, ``check_linear_attention_step``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.checks import CheckFailed, check_close, check_shape, name_mistake, refuse_reference
from ..linear_attention import decay_mask, linear_attention_parallel, linear_attention_step


def _decay_mask_mistakes(gamma: torch.Tensor) -> dict[str, torch.Tensor]:
    c = torch.cumsum(gamma.log(), -1)
    T = gamma.shape[-1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    full = (c[..., :, None] - c[..., None, :]).exp()  # (..., T, T), no mask
    with_s = full * gamma[..., None, :]  # gamma_s ... gamma_t
    return {
        "include gamma_s: D_ts is the product gamma_(s+1) ... gamma_t, so the diagonal D_tt is 1 (k_t v_t^T is "
        "added after the decay of step t)": with_s.masked_fill(~causal, 0.0),
        "leave out the causal mask: D_ts must be 0 for s > t (a query may not read later keys)": full,
        "take the product over the wrong range, row s and column t swapped (D_st instead of D_ts): rows are the "
        "query's step t, columns the key's step s <= t":
            (c[..., None, :] - c[..., :, None]).exp().masked_fill(~causal.T, 0.0),
        "keep the upper triangle (triu): keep s <= t, the lower triangle (tril)": full.triu(),
        "put gamma_t^(t-s) (the first step's decay for every step): the decays differ from step to step":
            gamma[..., :1, None] ** (torch.arange(T)[:, None] - torch.arange(T)[None, :]).clamp(min=0)
            * causal,
    }


def check_decay_mask(fn: Any, seed: int = 0) -> None:
    """Test ``fn(gamma (..., T)) -> D (..., T, T)``, the decay mask of the parallel form (notebook 09b, exercise 3).

    Names the mistake the values match: ``gamma_s`` included, no causal mask, the range or the
    triangle swapped, one decay for all steps; then a long sequence (T = 400, decays near 0.1).
    """
    fn = refuse_reference(fn, ("decay_mask", "linear_attention_parallel", "linear_attention_chunkwise"))
    g = torch.Generator().manual_seed(seed)
    for shape in ((6,), (2, 3, 9)):
        gamma = torch.rand(*shape, generator=g, dtype=torch.float64) * 0.6 + 0.35  # (..., T) in (0.35, 0.95)
        T = shape[-1]
        got = fn(gamma.clone())
        name = f"D for gamma of shape {shape}"
        check_shape(name, got, (*shape[:-1], T, T))
        expected = decay_mask(gamma)
        name_mistake(name, got, expected, _decay_mask_mistakes(gamma))
        check_close(name, got, expected, quiet=True)
    gamma = torch.rand(400, generator=g, dtype=torch.float64) * 0.1 + 0.05  # products reach 1e-400: below float64
    got = fn(gamma.clone())
    if isinstance(got, torch.Tensor) and torch.isnan(got).any():
        raise CheckFailed("D for a long sequence (T = 400, gamma near 0.1) contains NaN. Either a ratio of cumulative "
                          "products underflowed to 0 / 0 (work in log space: exp(c_t - c_s), c = cumsum(log gamma)), "
                          "or exp(c_t - c_s) above the diagonal overflowed to inf and inf * 0 = NaN (fill those "
                          "entries with -inf before the exp, or use torch.where)")
    check_close("D for a long sequence (T = 400)", got, decay_mask(gamma), quiet=True)
    leaf = gamma.clone().requires_grad_()
    with torch.enable_grad():
        got = fn(leaf)
        if isinstance(got, torch.Tensor) and got.requires_grad:
            got.sum().backward()
    if leaf.grad is not None and not torch.isfinite(leaf.grad).all():
        raise CheckFailed("D for a long sequence (T = 400) is right, but its gradient with respect to gamma contains "
                          "NaN: exp(c_t - c_s) above the diagonal overflows to inf, and zeroing it afterwards "
                          "(masked_fill after exp) gives the backward pass 0 * inf = NaN. Fill those entries of "
                          "c_t - c_s with -inf before the exp, so exp gives exactly 0 in both passes")
    print("OK my_decay_mask: two shapes, a long sequence, and its gradient")


def _linear_attention_step_mistakes(S, q, k, v, gamma) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    kv = k[..., :, None] * v[..., None, :]
    g = gamma[..., None, None]
    right = g * S + kv
    mistakes = {
        "apply the decay after adding k v^T (gamma (S + k v^T)): the new key enters undecayed":
            ((q[..., :, None] * (g * (S + kv))).sum(-2), g * (S + kv)),
        "read the state before updating it (o = S_prev^T q): o_t includes step t's own key and value":
            ((q[..., :, None] * S).sum(-2), right),
        "forget the decay (S + k v^T)": ((q[..., :, None] * (S + kv)).sum(-2), S + kv),
    }
    if S.shape[-1] == S.shape[-2]:  # mistakes that only run when d_k = d_v
        S_q = (right * q[..., None, :]).sum(-1)  # (..., d_k): S q
        mistakes["multiply q by the wrong side of S (S q instead of S^T q)"] = (S_q, right)
        vk = v[..., :, None] * k[..., None, :]
        mistakes["transpose the outer product (v k^T instead of k v^T): S has rows for the d_k key features"] = (
            (q[..., :, None] * (g * S + vk)).sum(-2), g * S + vk)
    return mistakes


def check_linear_attention_step(fn: Any, seed: int = 0) -> None:
    """Test ``fn(S, q, k, v, gamma) -> (o, S_new)``, one recurrent step (notebook 09b, exercise 4).

    Names the mistake the values match: the decay after the update, ``o`` read from the old state,
    no decay, ``S q`` for ``S^T q``, a transposed outer product; then runs the step over a sequence
    and compares with the parallel form.
    """
    fn = refuse_reference(fn, ("linear_attention_step", "linear_attention_recurrent", "linear_attention_parallel",
                          "linear_attention_chunkwise"))
    g = torch.Generator().manual_seed(seed)
    for B, d_k, d_v in ((3, 4, 4), (2, 3, 5)):
        S = torch.randn(B, d_k, d_v, generator=g, dtype=torch.float64)
        q, k = (torch.randn(B, d_k, generator=g, dtype=torch.float64) for _ in range(2))
        v = torch.randn(B, d_v, generator=g, dtype=torch.float64)
        gamma = torch.rand(B, generator=g, dtype=torch.float64) * 0.5 + 0.4
        try:
            got = fn(S.clone(), q.clone(), k.clone(), v.clone(), gamma.clone())
        except NotImplementedError:
            raise
        except RuntimeError as error:
            raise CheckFailed(f"my_linear_attention_step raised RuntimeError with d_k={d_k}, d_v={d_v}: {error}. "
                              "Is an outer product or a product with S transposed? S is (B, d_k, d_v)") from error
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(f"my_linear_attention_step should return a pair (o, S), got a {type(got).__name__}")
        expected = linear_attention_step(S, q, k, v, gamma)
        for i, part in enumerate(("o", "S")):
            name = f"{part} (B={B}, d_k={d_k}, d_v={d_v})"
            check_shape(name, got[i], tuple(expected[i].shape))
            mistakes = {hint: pair[i] for hint, pair in _linear_attention_step_mistakes(S, q, k, v, gamma).items()}
            name_mistake(name, got[i], expected[i], mistakes)
            check_close(name, got[i], expected[i], quiet=True)
    q, k = (torch.randn(2, 1, 7, 3, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(2, 1, 7, 2, generator=g, dtype=torch.float64)
    gamma = torch.rand(2, 1, 7, generator=g, dtype=torch.float64) * 0.5 + 0.4
    S, outputs = q.new_zeros(2, 3, 2), []
    for t in range(7):
        o, S = fn(S, q[:, 0, t], k[:, 0, t], v[:, 0, t], gamma[:, 0, t])
        outputs.append(o)
    check_close("O from your steps (T=7), against the parallel form", torch.stack(outputs, 1)[:, None],
                linear_attention_parallel(q, k, v, gamma), quiet=True)
    print("OK my_linear_attention_step: two shapes, and 7 steps equal the parallel form")
