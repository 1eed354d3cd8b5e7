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

Section 3, a smaller cache: h query heads share g key/value heads (g divides h).
Multi-query attention (Shazeer 2019) is g = 1, grouped-query attention (Ainslie et al. 2023)
1 < g < h, and g = h is multi-head attention again. The cache holds g heads instead of h:

    q (B, h, T, d_k), k and v (B, g, T, d_k)  ->  query head i meets key/value head i // (h / g).

- :func:`expand_kv`: (B, g, T, d_k) -> (B, h, T, d_k), each group repeated for its h / g query heads;
- :func:`grouped_attention`: attention with g key/value heads (exercise 3);
- :class:`GroupedQueryAttention`: the layer, with :class:`~course_utils.self_attention.MultiHeadAttention`'s
  parameter layout when g = h; :func:`grouped_gpt`: a TinyGPT whose blocks use it;
- :func:`cache_bytes_per_token` and :func:`measured_cache_bytes`: the cache's memory, from the
  model's shapes and from the cache's tensors.

The exercises on this module (checks, challenges) are in :mod:`course_utils.exercises.kv_cache`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .core.shapes import require_shape
from .sampling import sample_token
from .self_attention import MultiHeadAttention, merge_heads, scaled_dot_product_attention, split_heads
from .shared.timing import seconds
from .transformer import TinyGPT

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: K and V, each (B, h, t, d_k) (g heads: section 3)


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


def cached_attention(attn: MultiHeadAttention | GroupedQueryAttention, x: torch.Tensor,
                     kv: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``attn``'s self-attention for one new position ``x (B, 1, D)``, given the cached (K, V) of the earlier ones.

    For a :class:`GroupedQueryAttention` the cache holds its g key/value heads, (B, g, t, d_k).
    """
    if isinstance(attn, GroupedQueryAttention):
        q, k, v = attn.project(x)  # (B, h, 1, d_k), (B, g, 1, d_k) twice
        k_all = k if kv is None else torch.cat([kv[0], k], dim=2)  # (B, g, t + 1, d_k): g heads cached, not h
        v_all = v if kv is None else torch.cat([kv[1], v], dim=2)
        return attn.out_proj(merge_heads(grouped_attention(q, k_all, v_all))), (k_all, v_all)  # (B, 1, D)
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


# ----------------------------------------------------------------------------- section 3: fewer key/value heads

def expand_kv(kv: torch.Tensor, n_heads: int) -> torch.Tensor:
    """``kv (B, g, T, d_k)`` -> ``(B, n_heads, T, d_k)``: key/value head j serves query heads j*r .. j*r + r - 1.

    r = n_heads / g consecutive query heads share a group, so each group is repeated r times
    in place (``repeat_interleave`` along the head axis), not the whole stack tiled r times.
    """
    require_shape("kv", kv, ("B", "g", "T", "d_k"))
    g = kv.shape[1]
    if n_heads % g:
        raise ValueError(f"kv has {g} heads, which does not divide n_heads = {n_heads}")
    return kv.repeat_interleave(n_heads // g, dim=1)


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Attention of ``q (B, h, Tq, d_k)`` over ``k``, ``v (B, g, Tk, d_k)`` shared by groups of h / g query heads.

    Returns ``(B, h, Tq, d_k)``. ``mask``: bools, True = may attend, broadcastable to
    (B, h, Tq, Tk). g = h is multi-head attention, g = 1 multi-query attention.
    """
    require_shape("q", q, ("B", "h", "Tq", "d_k"))
    require_shape("k", k, (q.shape[0], "g", "Tk", q.shape[-1]))
    require_shape("v", v, tuple(k.shape))
    h = q.shape[1]
    return scaled_dot_product_attention(q, expand_kv(k, h), expand_kv(v, h), mask)[0]


class GroupedQueryAttention(nn.Module):
    """Self-attention with ``n_heads`` query heads and ``n_kv_heads`` key/value heads (which must divide it).

    ``in_proj_weight`` ((h + 2g) d_k, D) stacks W_Q^T (D rows), W_K^T and W_V^T (g d_k rows
    each): with g = h it is :class:`~course_utils.self_attention.MultiHeadAttention`'s layout,
    and the two load each other's weights (``load_state_dict``). Every weight is drawn from the
    same uniform distribution whatever g (MultiHeadAttention's Xavier bound), so models of
    different g differ only in their number of key/value heads. ``forward`` returns the output
    and the per-head weights, as MultiHeadAttention does.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, bias: bool = True):
        super().__init__()
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"need n_heads | d_model and n_kv_heads | n_heads, got d_model = {d_model}, "
                             f"n_heads = {n_heads}, n_kv_heads = {n_kv_heads}")
        self.n_heads, self.n_kv_heads = n_heads, n_kv_heads
        d_kv = n_kv_heads * (d_model // n_heads)  # g * d_k
        self.in_proj_weight = nn.Parameter(torch.empty(d_model + 2 * d_kv, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(d_model + 2 * d_kv)) if bias else None
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        bound = math.sqrt(6.0 / (3 * d_model + d_model))  # xavier_uniform_ of MultiHeadAttention's (3D, D)
        nn.init.uniform_(self.in_proj_weight, -bound, bound)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, T, D)`` -> q ``(B, h, T, d_k)``, k and v ``(B, g, T, d_k)``."""
        D = self.in_proj_weight.shape[1]
        require_shape("x", x, ("B", "T", D))
        d_kv = self.n_kv_heads * (D // self.n_heads)
        qkv = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, D + 2 g d_k)
        q, k, v = qkv.split([D, d_kv, d_kv], dim=-1)
        return split_heads(q, self.n_heads), split_heads(k, self.n_kv_heads), split_heads(v, self.n_kv_heads)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Output (B, T, D) and per-head weights (B, h, T, T); ``mask`` (T, T), (B, T, T) or (B, h, T, T) bools."""
        q, k, v = self.project(x)
        if mask is not None and mask.dim() == 3:
            mask = mask[:, None]  # (B, 1, T, T): the same mask for every head
        out, weights = scaled_dot_product_attention(q, expand_kv(k, self.n_heads), expand_kv(v, self.n_heads), mask)
        return self.out_proj(merge_heads(out)), weights


def grouped_gpt(vocab_size: int, context: int, *, d_model: int, n_heads: int, n_kv_heads: int,
                n_layers: int) -> TinyGPT:
    """A :class:`~course_utils.transformer.TinyGPT` whose blocks attend with :class:`GroupedQueryAttention`.

    Everything else (embeddings, LayerNorms, MLPs, head) is TinyGPT's; :func:`cached_step` and
    :func:`generate_ids` work with it, caching g key/value heads per layer.
    """
    model = TinyGPT(vocab_size, context, d_model=d_model, n_heads=n_heads, n_layers=n_layers)
    for block in model.blocks:
        block.attn = GroupedQueryAttention(d_model, n_heads, n_kv_heads)
    return model


def cache_bytes_per_token(model: TinyGPT, dtype: torch.dtype = torch.float32) -> int:
    """Bytes the KV cache grows by per token and sequence, from the model's shapes: 2 (K, V) x layers x g x d_k x size.

    g is the number of key/value heads (h for MultiHeadAttention).
    """
    total = 0
    for block in model.blocks:
        attn = block.attn
        d_k = attn.in_proj_weight.shape[1] // attn.n_heads
        total += 2 * getattr(attn, "n_kv_heads", attn.n_heads) * d_k
    return total * torch.empty((), dtype=dtype).element_size()


def measured_cache_bytes(cache: KVCache) -> int:
    """Bytes held by a cache's tensors (every layer's K and V), counted from the tensors themselves."""
    return sum(t.numel() * t.element_size() for kv in cache for t in kv)
