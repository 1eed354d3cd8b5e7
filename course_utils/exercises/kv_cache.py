"""Notebook 08c, the exercises on :mod:`course_utils.kv_cache`.

Checks that name the usual mistakes: ``check_attention_step``.
"""

from __future__ import annotations

import math

import torch

from ..core.checks import CheckFailed, check_close, check_type, name_mistake, refuse_reference
from ..kv_cache import attention_step


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
