import math
import re

import pytest
import torch
from torch.nn import functional as F

from course_utils import CheckFailed
from course_utils.core.checks import tolerance
from course_utils.exercises.kv_cache import check_attention_step, check_grouped_attention
from course_utils.kv_cache import (
    GroupedQueryAttention,
    attention_step,
    cache_bytes_per_token,
    cached_step,
    expand_kv,
    generate_ids,
    grouped_attention,
    grouped_gpt,
    measured_cache_bytes,
    positions_processed,
    time_generation,
)
from course_utils.self_attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from course_utils.transformer import TinyGPT


def _model(dtype=torch.float64, context=12):
    torch.manual_seed(0)
    return TinyGPT(7, context, d_model=16, n_heads=4, n_layers=2).to(dtype).eval()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cached_logits_equal_full_forward_at_every_step(dtype):
    model = _model(dtype)
    ids = torch.randint(0, 7, (3, 12), generator=torch.Generator().manual_seed(1))
    rtol, atol = tolerance(dtype)
    with torch.no_grad():
        full = model(ids)  # (B, T, V)
        cache = None
        for t in range(ids.shape[1]):
            logits, cache = cached_step(model, ids[:, t:t + 1], cache, t)
            torch.testing.assert_close(logits, full[:, t], rtol=rtol, atol=10 * atol)
    assert cache[0][0].shape == (3, 4, 12, 4)


def test_attention_step_is_the_last_row_of_causal_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    full, _ = scaled_dot_product_attention(q, k, v, torch.ones(6, 6, dtype=torch.bool).tril())
    out, k_all, v_all = attention_step(q[:, :, -1:], k[:, :, -1:], v[:, :, -1:], k[:, :, :-1], v[:, :, :-1])
    torch.testing.assert_close(out, full[:, :, -1:], rtol=1e-12, atol=1e-12)
    assert torch.equal(k_all, k) and torch.equal(v_all, v)
    first, _, _ = attention_step(q[:, :, :1], k[:, :, :1], v[:, :, :1], None, None)
    torch.testing.assert_close(first, v[:, :, :1])  # one key: weight 1


def test_generation_is_the_same_with_and_without_cache():
    model = _model(torch.float64, context=20)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    for kwargs in ({}, {"top_k": 3}, {"top_p": 0.8, "temperature": 0.7}):
        a = generate_ids(model, prompt, 17, use_cache=True, generator=torch.Generator().manual_seed(5), **kwargs)
        b = generate_ids(model, prompt, 17, use_cache=False, generator=torch.Generator().manual_seed(5), **kwargs)
        assert a.shape == (2, 20) and torch.equal(a, b)


def test_positions_processed_counted_by_hand():
    model = _model(context=12)
    prompt = torch.tensor([[1, 2]])  # T0 = 2, then 5 new tokens
    # Without the cache, the steps re-run 2, 3, 4, 5, 6 positions; with it, the prompt's 2, then the 4 new
    # tokens whose logits are needed (the last one's are not).
    assert positions_processed(model, prompt, 5, use_cache=False) == 2 + 3 + 4 + 5 + 6
    assert positions_processed(model, prompt, 5, use_cache=True) == 2 + 4
    n = 11  # up to the context: the cache never steps past it
    assert positions_processed(model, prompt[:, :1], n, use_cache=False) == n * (n + 1) // 2
    assert positions_processed(model, prompt[:, :1], n, use_cache=True) == n
    assert not model.embed._forward_hooks  # the counting hook is removed


def test_time_generation_interleaves_and_returns_both_ways():
    model = _model(torch.float32, context=12)
    times = time_generation(model, torch.zeros(1, 1, dtype=torch.long), 8, repeats=3)
    assert set(times) == {False, True}
    assert all(t.shape == (3,) and (t > 0).all() for t in times.values())
    with pytest.raises(ValueError, match="repeats must be at least 1, got 0"):
        time_generation(model, torch.zeros(1, 1, dtype=torch.long), 8, repeats=0)


def test_context_limit_is_a_clear_error():
    model = _model(context=8)
    with pytest.raises(ValueError, match="exceeds the model's context 8"):
        generate_ids(model, torch.zeros(1, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match=re.escape("positions 0..7 only")):
        cached_step(model, torch.zeros(1, 1, dtype=torch.long), None, 8)
    with pytest.raises(ValueError, match="ids"):
        cached_step(model, torch.zeros(1, 2, dtype=torch.long), None, 0)


def _right(q, k_new, v_new, k_cache, v_cache):
    k = torch.cat([k_cache, k_new], 2)
    v = torch.cat([v_cache, v_new], 2)
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
    return w @ v, k, v


def test_check_accepts_a_solution():
    check_attention_step(_right)
    check_attention_step(_right, seed=1)


def _not_appended(q, k_new, v_new, k_cache, v_cache):
    w = torch.softmax(q @ k_cache.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
    return w @ v_cache, torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)


def _cache_returned(q, k_new, v_new, k_cache, v_cache):
    out, _, _ = _right(q, k_new, v_new, k_cache, v_cache)
    return out, k_cache, v_cache


def _wrong_scale(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1], -1) @ v, k, v


def _model_width(q, k_new, v_new, k_cache, v_cache):
    k, v = torch.cat([k_cache, k_new], 2), torch.cat([v_cache, v_new], 2)
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[1] * q.shape[-1]), -1) @ v, k, v


@pytest.mark.parametrize("fn,words", [
    (_not_appended, "without appending the new token's k_new and v_new"),
    (_cache_returned, "append k_new along the time axis"),
    (_wrong_scale, "by d_k instead of sqrt(d_k)"),
    (_model_width, "sqrt(h * d_k), the model's width"),
])
def test_check_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_attention_step(fn)


def test_check_refuses_the_reference():
    def delegate(q, k_new, v_new, k_cache, v_cache):
        return attention_step(q, k_new, v_new, k_cache, v_cache)

    with pytest.raises(CheckFailed, match="calls attention_step"):
        check_attention_step(delegate)


# --- section 3: grouped-query and multi-query attention ---------------------------------------------------------


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_expand_kv_repeats_each_group_in_place():
    kv = torch.arange(2.0)[None, :, None, None].expand(1, 2, 3, 1)  # (B, g, T, d_k): head j holds j
    assert expand_kv(kv, 6)[0, :, 0, 0].tolist() == [0, 0, 0, 1, 1, 1]  # not 0, 1, 0, 1, 0, 1 (tiling)
    assert torch.equal(expand_kv(kv, 2), kv)
    with pytest.raises(ValueError, match="does not divide n_heads = 5"):
        expand_kv(kv, 5)


@pytest.mark.parametrize("g", [6, 3, 2, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_grouped_attention_equals_sdpa_on_expanded_keys_and_values(g, causal):
    q, k, v = _rand(2, 6, 7, 4, seed=1), _rand(2, g, 7, 4, seed=2), _rand(2, g, 7, 4, seed=3)
    mask = causal_mask(7) if causal else None
    ours = grouped_attention(q, k, v, mask)
    reference = F.scaled_dot_product_attention(q, k.repeat_interleave(6 // g, 1), v.repeat_interleave(6 // g, 1),
                                               attn_mask=mask)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    native = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)  # torch >= 2.5
    torch.testing.assert_close(ours, native, rtol=1e-12, atol=1e-12)
    # by hand: query head i meets group i // (h / g)
    for i in range(6):
        j = i // (6 // g)
        head = scaled_dot_product_attention(q[:, i], k[:, j], v[:, j], mask)[0]
        torch.testing.assert_close(ours[:, i], head, rtol=1e-12, atol=1e-12)


def test_grouped_attention_with_g_equal_h_is_multi_head_weight_for_weight():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4).double()
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    gqa = GroupedQueryAttention(16, 4, 4).double()
    gqa.load_state_dict(mha.state_dict())
    x = _rand(3, 5, 16)
    for mask in (None, causal_mask(5), causal_mask(5).expand(3, 5, 5)):
        out, weights = gqa(x, mask)
        expected_out, expected_weights = mha(x, mask)
        torch.testing.assert_close(out, expected_out, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(weights, expected_weights, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("g", [4, 2, 1])
def test_grouped_query_attention_shapes_and_parameters(g):
    attn = GroupedQueryAttention(16, 4, g)
    assert attn.in_proj_weight.shape == (16 + 2 * g * 4, 16)  # W_Q (D rows), W_K and W_V (g d_k rows each)
    q, k, v = attn.project(torch.randn(2, 5, 16))
    assert q.shape == (2, 4, 5, 4) and k.shape == v.shape == (2, g, 5, 4)
    bound = math.sqrt(6 / (4 * 16))  # MultiHeadAttention's Xavier bound, whatever g
    assert attn.in_proj_weight.abs().max() <= bound and attn.in_proj_weight.abs().max() > 0.9 * bound
    with pytest.raises(ValueError, match="n_kv_heads = 3"):
        GroupedQueryAttention(16, 4, 3)


@pytest.mark.parametrize("g", [4, 2, 1])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_grouped_cache_equals_full_forward_and_holds_g_heads(g, dtype):
    torch.manual_seed(0)
    model = grouped_gpt(7, 12, d_model=16, n_heads=4, n_kv_heads=g, n_layers=2).to(dtype).eval()
    ids = torch.randint(0, 7, (3, 12), generator=torch.Generator().manual_seed(1))
    rtol, atol = tolerance(dtype)
    with torch.no_grad():
        full = model(ids)
        cache = None
        for t in range(12):
            logits, cache = cached_step(model, ids[:, t:t + 1], cache, t)
            torch.testing.assert_close(logits, full[:, t], rtol=rtol, atol=10 * atol)
    assert [kv[0].shape for kv in cache] == [(3, g, 12, 4)] * 2  # (B, g, t, d_k) per layer
    a = generate_ids(model, ids[:, :2], 10, use_cache=True, generator=torch.Generator().manual_seed(5))
    b = generate_ids(model, ids[:, :2], 10, use_cache=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize("g", [4, 2, 1])
def test_cache_bytes_per_token_from_shapes_and_from_the_cache(g):
    model = grouped_gpt(7, 12, d_model=16, n_heads=4, n_kv_heads=g, n_layers=3).eval()
    assert cache_bytes_per_token(model) == 2 * 3 * g * 4 * 4  # K and V, 3 layers, g heads, d_k 4, float32
    assert cache_bytes_per_token(model, torch.float64) == 2 * cache_bytes_per_token(model)
    cache = None
    with torch.no_grad():
        for t in range(5):
            _, cache = cached_step(model, torch.zeros(2, 1, dtype=torch.long), cache, t)
    assert measured_cache_bytes(cache) == cache_bytes_per_token(model) * 5 * 2  # 5 tokens, batch 2
    assert cache_bytes_per_token(_model(torch.float32)) == 2 * 2 * 4 * 4 * 4  # TinyGPT: MultiHeadAttention, g = h


def _grouped(*, expand="interleave", axis=1, share_queries=None, mask=True, scale="head"):
    """A learner's grouped attention, right by default; each keyword makes one of the usual mistakes."""
    def my_grouped_attention(q, k, v, mask_=None):
        g, r = k.shape[1], q.shape[1] // k.shape[1]
        if share_queries == "first":
            q = q[:, ::r]
        elif share_queries == "mean":
            q = q.view(q.shape[0], k.shape[1], r, *q.shape[2:]).mean(2)
        elif share_queries is None:
            if expand == "interleave":
                k, v = (t.repeat_interleave(r, dim=axis) for t in (k, v))
            elif expand == "tile":
                k, v = (t.repeat(1, r, 1, 1) for t in (k, v))
            elif expand == "no dim":
                k, v = (t.repeat_interleave(r) for t in (k, v))
        width = {"head": q.shape[-1], "keys": g * q.shape[-1], "model": q.shape[1] * q.shape[-1]}[scale]
        scores = q @ k.transpose(-2, -1) / math.sqrt(width)
        if mask and mask_ is not None:
            scores = scores.masked_fill(~mask_, float("-inf"))
        out = torch.softmax(scores, -1) @ v
        return out.repeat_interleave(r, dim=1) if share_queries in ("first", "mean") else out
    return my_grouped_attention


def _reduced_queries(q, k, v, mask=None):  # shares the queries and returns g heads
    q = q[:, :: q.shape[1] // k.shape[1]]
    return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1) @ v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_check_grouped_attention_passes_a_right_answer(seed, capsys):
    check_grouped_attention(_grouped(), seed=seed)
    assert "OK my_grouped_attention" in capsys.readouterr().out

    def with_expand(q, k, v, mask=None):  # the same by expand + reshape, another right way
        B, g, Tk, d_k = k.shape
        r = q.shape[1] // g
        k, v = (t[:, :, None].expand(B, g, r, Tk, d_k).reshape(B, g * r, Tk, d_k) for t in (k, v))
        return _grouped()(q, k, v, mask)

    check_grouped_attention(with_expand, seed=seed)


@pytest.mark.parametrize(("fn", "words"), [
    (_grouped(expand="tile"), "tile k and v with .repeat"),
    (_grouped(axis=2), "expanded along another axis than the heads"),
    (_grouped(axis=0), "expanded along another axis than the heads"),
    (_grouped(axis=3), "expanded along another axis than the heads"),
    (_grouped(expand="no dim"), "with no dim (which flattens)"),
    (_grouped(share_queries="first"), "share the queries instead of the keys and values"),
    (_grouped(share_queries="mean"), "share the queries instead of the keys and values"),
    (_reduced_queries, "it is the keys and values that are shared"),
    (_grouped(mask=False), "leave out the mask"),
    (_grouped(scale="keys"), "sqrt(g * d_k), the width of the keys"),
    (_grouped(scale="model"), "sqrt(h * d_k), the model's width"),
])
def test_check_grouped_attention_names_each_mistake(fn, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_grouped_attention(fn)


def test_check_grouped_attention_refuses_the_course_and_torch():
    with pytest.raises(CheckFailed, match="calls grouped_attention, an existing implementation"):
        check_grouped_attention(lambda q, k, v, mask=None: grouped_attention(q, k, v, mask))
    with pytest.raises(CheckFailed, match="scaled_dot_product_attention"):
        check_grouped_attention(lambda q, k, v, mask=None: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, enable_gqa=True))
    alias = GroupedQueryAttention.__module__  # reached without naming it: importlib and getattr

    def sneaky(q, k, v, mask=None):
        import importlib
        return getattr(importlib.import_module(alias), "grouped" + "_attention")(q, k, v, mask)

    with pytest.raises(CheckFailed, match="grouped_attention"):
        check_grouped_attention(sneaky)
