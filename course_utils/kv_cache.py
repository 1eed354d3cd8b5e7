"""Notebook 08c, section 1: a KV cache for 08's :class:`~course_utils.transformer.TinyGPT`, with its weights.

At generation step t the new token's query must meet the keys and values of positions
0..t. They do not change once computed (causal mask: position s never sees later tokens),
so keep them per layer and compute only the new token's q, k, v:

    cache[l] = (K, V), each (B, h, t, d_k)  ->  append the new (B, h, 1, d_k), attend, return.

- :func:`attention_step`: one query against the cached keys and values plus its own;
- :func:`cached_step`: one token through a whole TinyGPT at position ``pos`` -> logits ``(B, V)``;
- :func:`generate_ids`: sampling with or without the cache (same draws for the same generator);
- :func:`positions_processed`: the work either way, counted (token positions through the blocks);
- :func:`time_generation`: the seconds either way, interleaved, for the measured speed-up;
- exercise: :func:`check_attention_step`.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.kv_cache`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .sampling import sample_token
from .self_attention import MultiHeadAttention, merge_heads, split_heads
from .shared.timing import seconds
from .transformer import TinyGPT

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: K and V, each (B, h, t, d_k)


def attention_step(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, k_cache: torch.Tensor | None,
                   v_cache: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoding step of attention: the new token's ``q (B, h, 1, d_k)`` against all keys so far.

    Appends ``k_new``, ``v_new`` (B, h, 1, d_k) to the caches (B, h, t, d_k) (``None``: empty)
    and returns ``(out (B, h, 1, d_k), K (B, h, t + 1, d_k), V (B, h, t + 1, d_k))``. No mask:
    the cache holds only the past, so the new query may see every key.
    """
    require_shape("q", q, ("B", "h", 1, "d_k"))
    require_shape("k_new", k_new, tuple(q.shape))
    require_shape("v_new", v_new, tuple(q.shape))
    k = k_new if k_cache is None else torch.cat([k_cache, k_new], dim=2)  # (B, h, t + 1, d_k)
    v = v_new if v_cache is None else torch.cat([v_cache, v_new], dim=2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, 1, t + 1)
    return torch.softmax(scores, dim=-1) @ v, k, v


def cached_attention(attn: MultiHeadAttention, x: torch.Tensor,
                     kv: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``attn``'s self-attention for one new position ``x (B, 1, D)``, given the cached (K, V) of the earlier ones."""
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)  # each (D, D)
    b_q, b_k, b_v = attn.in_proj_bias.chunk(3) if attn.in_proj_bias is not None else (None,) * 3
    q, k, v = (split_heads(nn.functional.linear(x, w, b), attn.n_heads)  # (B, h, 1, d_k) each
               for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v)))
    out, k_all, v_all = attention_step(q, k, v, *(kv if kv is not None else (None, None)))
    return attn.out_proj(merge_heads(out)), (k_all, v_all)  # (B, 1, D)


def cached_step(model: TinyGPT, ids: torch.Tensor, cache: KVCache | None, pos: int) -> tuple[torch.Tensor, KVCache]:
    """One new token per row, ``ids (B, 1)`` at position ``pos``, through ``model``'s blocks.

    Returns the next-token logits ``(B, V)`` and the cache grown by one position. The same
    numbers as ``model(all ids so far)[:, -1]``, with O(t) work instead of O(t^2).
    """
    require_shape("ids", ids, ("B", 1))
    if pos >= model.context:
        raise ValueError(f"pos = {pos}, but the model has positions 0..{model.context - 1} only "
                         f"(context = {model.context}): learned positions stop generation at the context")
    cache = cache if cache is not None else [None] * len(model.blocks)
    if len(cache) != len(model.blocks):
        raise ValueError(f"cache has {len(cache)} layers, expected one per block ({len(model.blocks)})")
    x = model.embed(ids) + model.pos[pos]  # (B, 1, D): the position offset by the tokens already cached
    new_cache = []
    for block, kv in zip(model.blocks, cache, strict=True):
        a, kv = cached_attention(block.attn, block.ln1(x), kv)
        x = x + a  # (B, 1, D)
        x = x + block.mlp(block.ln2(x))
        new_cache.append(kv)
    return model.head(model.ln_f(x))[:, 0], new_cache  # (B, V)


@torch.no_grad()
def generate_ids(model: TinyGPT, prompt: torch.Tensor, n_new: int, *, use_cache: bool = True,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``n_new`` tokens after ``prompt (B, T0)``: ``(B, T0 + n_new)`` ids. Call ``model.eval()`` first.

    ``use_cache=False`` re-runs the whole sequence every step (O(t^2) work per token);
    ``use_cache=True`` feeds one token per step through :func:`cached_step`. Both draw once per
    step with :func:`~course_utils.sampling.sample_token`, so the same generator gives the same
    tokens. The total length must fit the model's context (learned positions end there).
    """
    require_shape("prompt", prompt, ("B", "T0"))
    if prompt.shape[1] + n_new > model.context:
        raise ValueError(f"prompt length {prompt.shape[1]} + n_new {n_new} = {prompt.shape[1] + n_new} exceeds the "
                         f"model's context {model.context}: learned positions exist only up to it")
    ids, cache = prompt, None
    if use_cache:
        for t in range(prompt.shape[1]):  # the prompt, one position at a time, fills the cache
            logits, cache = cached_step(model, prompt[:, t:t + 1], cache, t)
    for step in range(n_new):
        if not use_cache:
            logits = model(ids)[:, -1]  # (B, V): the whole sequence again
        next_id = sample_token(logits, temperature, top_k, top_p, generator)[:, None]  # (B, 1)
        ids = torch.cat([ids, next_id], dim=1)
        if use_cache and step < n_new - 1:  # the last token's logits are never needed
            logits, cache = cached_step(model, next_id, cache, ids.shape[1] - 1)
    return ids


def positions_processed(model: TinyGPT, prompt: torch.Tensor, n_new: int, *, use_cache: bool) -> int:
    """Token positions that go through ``model``'s blocks while generating ``n_new`` greedy tokens: the work, counted.

    Counted by a hook on the token embedding, which every position passes once per forward
    pass. Without the cache, step t re-runs all t positions so far: sum of T0..T0 + n_new - 1
    (quadratic in ``n_new``); with it, each position goes through once: T0 + n_new - 1.
    Unlike a time, the count does not depend on the machine or its load.
    """
    count = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal count
        count += args[0].numel() // args[0].shape[0]  # positions per sequence: (B, t) ids -> t

    handle = model.embed.register_forward_hook(hook)
    try:
        generate_ids(model, prompt, n_new, use_cache=use_cache, top_k=1)
    finally:
        handle.remove()
    return count


def time_generation(model: TinyGPT, prompt: torch.Tensor, n_new: int, *, repeats: int = 3) -> dict[bool, np.ndarray]:
    """Seconds to generate ``n_new`` greedy tokens after ``prompt``, without and with the cache: ``{False: (repeats,),
    True: (repeats,)}``, keyed by ``use_cache``.

    The two ways alternate (re-run, cache, cache, re-run, ...), so a burst of load on a busy
    machine slows both rather than one; compare the fastest repetitions, which a busy machine
    slows least. Greedy (``top_k=1``), so both ways do the same work. Timed by
    :func:`course_utils.shared.timing.seconds`: CPU time on the CPU, the wall clock on a GPU.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(repeats):
        for use_cache in ((False, True) if r % 2 == 0 else (True, False)):
            times[use_cache].append(seconds(
                lambda cached=use_cache: generate_ids(model, prompt, n_new, use_cache=cached, top_k=1), prompt.device))
    return {cached: np.array(t) for cached, t in times.items()}
