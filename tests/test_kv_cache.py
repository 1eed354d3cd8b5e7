import math
import re

import pytest
import torch

from course_utils import CheckFailed
from course_utils.core.checks import tolerance
from course_utils.exercises.kv_cache import check_attention_step
from course_utils.kv_cache import attention_step, cached_step, generate_ids, positions_processed, time_generation
from course_utils.self_attention import scaled_dot_product_attention
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
