"""Notebook 08c, the exercises on :mod:`course_utils.kv_cache`.

Checks that name the usual mistakes: ``check_attention_step`` (exercise 1), ``check_grouped_attention``
(exercise 3).
"""

from __future__ import annotations

import math

import torch

from ..core.checks import CheckFailed, check_close, check_type, name_mistake, refuse_reference
from ..kv_cache import attention_step, grouped_attention


def _attention_step_mistakes(q, k_new, v_new, k_cache, v_cache) -> dict[str, torch.Tensor]:
    """What the usual wrong steps return (the output only) for the given tensors."""
    d_k = q.shape[-1]
    k_all, v_all = torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)

    def attend(k, v, scale):
        return torch.softmax(q @ k.transpose(-2, -1) / scale, dim=-1) @ v

    return {
        "attend to the cache only, without appending the new token's k_new and v_new (a token must see itself)":
            attend(k_cache, v_cache, math.sqrt(d_k)),
        "attend to the new token only: concatenate the cache and the new key/value along the time axis (dim=2)":
            v_new,
        "divide the scores by d_k instead of sqrt(d_k)": attend(k_all, v_all, d_k),
        "divide the scores by sqrt(h * d_k), the model's width, instead of the head's sqrt(d_k)":
            attend(k_all, v_all, math.sqrt(d_k * q.shape[1])),
        "forget to scale the scores by 1 / sqrt(d_k)": attend(k_all, v_all, 1.0),
        "take the softmax over the query axis instead of the keys (dim=-1)":
            torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(d_k), dim=-2) @ v_all,
    }


def check_attention_step(fn, seed: int = 0) -> None:
    """Test ``fn(q, k_new, v_new, k_cache, v_cache) -> (out, K, V)`` against :func:`attention_step` (exercise 1).

    Names the usual mistakes: the new key and value not appended, the cache dropped, scaling by
    d_k, by the model's width or not at all, the softmax over the wrong axis.
    """
    fn = refuse_reference(fn, ("attention_step", "scaled_dot_product_attention", "cached_attention"))
    g = torch.Generator().manual_seed(seed)
    B, h, t, d_k = 2, 3, 5 + seed, 4
    q, k_new, v_new = (torch.randn(B, h, 1, d_k, generator=g, dtype=torch.float64) for _ in range(3))
    k_cache, v_cache = (torch.randn(B, h, t, d_k, generator=g, dtype=torch.float64) for _ in range(2))
    got = fn(q, k_new, v_new, k_cache.clone(), v_cache.clone())
    if not isinstance(got, tuple) or len(got) != 3:
        raise CheckFailed("return a tuple (out, K, V): the output and the caches with the new position appended.")
    out, k_all, v_all = got
    for label, value in (("out", out), ("K", k_all), ("V", v_all)):
        check_type(f"the {label} of my_attention_step", value, torch.Tensor)
    exp_out, exp_k, exp_v = attention_step(q, k_new, v_new, k_cache, v_cache)
    if tuple(k_all.shape) == tuple(k_cache.shape):
        raise CheckFailed(f"the K you return has shape {tuple(k_all.shape)}, the cache's: append k_new along the "
                          f"time axis (dim=2), giving {tuple(exp_k.shape)}.")
    check_close("the K of my_attention_step (cache, then the new key)", k_all, exp_k, quiet=True)
    check_close("the V of my_attention_step (cache, then the new value)", v_all, exp_v, quiet=True)
    mistakes = _attention_step_mistakes(q, k_new, v_new, k_cache, v_cache)
    name_mistake("the out of my_attention_step", out, exp_out, mistakes)
    check_close("the out of my_attention_step", out, exp_out, quiet=True)
    print(f"OK my_attention_step: (B, h, t, d_k) = {(B, h, t, d_k)}, output and grown caches match")


def _attend(q, k, v, mask=None) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_k)) v with bool ``mask`` (True = may attend), heads already matched."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _grouped_mistakes(q, k, v, mask) -> dict[str, torch.Tensor | None]:
    """What the usual wrong grouped attentions return for the given tensors (None: the same as the answer here)."""
    B, h, Tq, d_k = q.shape
    g = k.shape[1]
    r = h // g
    tiled = ("tile k and v with .repeat (query head i then meets key/value head i % g); query heads j*r .. j*r + r - 1 "
             "share head j, so repeat each head in place: repeat_interleave(h // g, dim=1)")
    share = ("share the queries instead of the keys and values: every query head keeps its own query; it is k and v "
             "that have g heads, each serving h / g consecutive query heads")
    first_q = q[:, ::r]  # (B, g, Tq, d_k): one query per group
    mean_q = q.view(B, g, r, Tq, d_k).mean(2)
    return {
        tiled: _attend(q, k.repeat(1, r, 1, 1), v.repeat(1, r, 1, 1), mask) if 1 < g < h else None,
        share + " (here: each group's first query)": _attend(first_q, k, v, mask).repeat_interleave(r, 1)
        if g < h else None,
        share + " (here: each group's mean query)": _attend(mean_q, k, v, mask).repeat_interleave(r, 1)
        if g < h else None,
        "leave out the mask (True = may attend; masked scores get -inf before the softmax)":
            _attend(q, k.repeat_interleave(r, 1), v.repeat_interleave(r, 1)) if mask is not None else None,
        "divide the scores by sqrt(g * d_k), the width of the keys, instead of the head's sqrt(d_k)":
            _attend(q / math.sqrt(g), k.repeat_interleave(r, 1), v.repeat_interleave(r, 1), mask) if g > 1 else None,
        "divide the scores by sqrt(h * d_k), the model's width, instead of the head's sqrt(d_k)":
            _attend(q / math.sqrt(h), k.repeat_interleave(r, 1), v.repeat_interleave(r, 1), mask),
    }


def _grouped_cases(seed: int) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    """(label, (q, k, v, mask)): GQA with a causal mask, a decoding step, MQA and MHA, float64."""
    gen = torch.Generator().manual_seed(300 + seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    B, d_k, T = 2, 4, 5 + seed
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    return [
        ("h = 6 query heads, g = 3 key/value heads, causal mask", (rand(B, 6, T, d_k), rand(B, 3, T, d_k),
                                                                   rand(B, 3, T, d_k), causal)),
        ("h = 6, g = 2, one new query against 7 cached keys (a decoding step, no mask)",
         (rand(B, 6, 1, d_k), rand(B, 2, 7, d_k), rand(B, 2, 7, d_k), None)),
        ("h = 4, g = 1 (multi-query), causal mask", (rand(B, 4, T, d_k), rand(B, 1, T, d_k), rand(B, 1, T, d_k),
                                                    causal)),
        ("h = g = 4 (multi-head), causal mask", (rand(B, 4, T, d_k), rand(B, 4, T, d_k), rand(B, 4, T, d_k), causal)),
    ]


def check_grouped_attention(fn, seed: int = 0) -> None:
    """Test ``fn(q (B, h, Tq, d_k), k, v (B, g, Tk, d_k), mask) -> (B, h, Tq, d_k)`` (notebook 08c, exercise 3).

    Compared with :func:`~course_utils.kv_cache.grouped_attention` on grouped-query attention
    with a causal mask, a decoding step, multi-query (g = 1) and multi-head (g = h) attention.
    Names the usual mistakes: tiling k and v with ``repeat`` (query heads meet the wrong group),
    expanding along another axis than the heads, sharing the queries instead of the keys and
    values, the mask left out, the scale of the grouped width.
    """
    fn = refuse_reference(fn, ("grouped_attention", "expand_kv", "scaled_dot_product_attention",
                               "GroupedQueryAttention"))
    for label, (q, k, v, mask) in _grouped_cases(seed):
        h, g = q.shape[1], k.shape[1]
        try:
            out = fn(q.clone(), k.clone(), v.clone(), mask)
        except (RuntimeError, ValueError, IndexError) as error:
            raise CheckFailed(
                f"my_grouped_attention raised {type(error).__name__} ({error}) with {label}. The usual cause: k and "
                f"v expanded along another axis than the heads. They are (B, g, Tk, d_k): repeat each of their g "
                f"heads h / g times along dim=1 to get (B, h, Tk, d_k), like q's heads; along the batch (0), time "
                f"(2) or feature (3) axis, or with no dim (which flattens), the shapes no longer match q's.") from error
        check_type("the output of my_grouped_attention", out, torch.Tensor)
        expected = grouped_attention(q, k, v, mask)  # (B, h, Tq, d_k)
        if out.dim() == 4 and out.shape[1] == g != h:
            raise CheckFailed(f"with {label}, your output has shape {tuple(out.shape)}: g = {g} heads, not h = {h}. "
                              "The queries keep their h heads and each gives its own output; it is the keys and "
                              "values that are shared, so expand k and v (not reduce q) to h heads.")
        if tuple(out.shape) != tuple(expected.shape):
            raise CheckFailed(f"with {label}, your output has shape {tuple(out.shape)}, expected "
                              f"{tuple(expected.shape)} = (B, h, Tq, d_k). Expand k and v along the head axis "
                              "(dim=1), not along the batch (0) or time (2) axis.")
        name = f"the output of my_grouped_attention ({label})"
        name_mistake(name, out.detach(), expected, _grouped_mistakes(q, k, v, mask))
        check_close(name, out.detach(), expected, quiet=True)
    print("OK my_grouped_attention: grouped-query (g = 3, 2), multi-query (g = 1) and multi-head (g = h) attention")
