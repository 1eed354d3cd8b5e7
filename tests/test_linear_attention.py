"""Linear attention with decay: the recurrent, parallel and chunkwise forms agree, in values and gradients."""

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.linear_attention import check_decay_mask, check_linear_attention_step
from course_utils.linear_attention import (
    decay_mask,
    linear_attention_chunkwise,
    linear_attention_parallel,
    linear_attention_recurrent,
    linear_attention_step,
)
from course_utils.linear_recurrence import scan_loop


def qkv(B=2, NH=3, T=11, d_k=4, d_v=5, seed=0, gamma="data"):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, NH, T, d_k, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, NH, T, d_v, generator=g, dtype=torch.float64)
    if gamma == "data":
        gamma = torch.rand(B, NH, T, generator=g, dtype=torch.float64) * 0.6 + 0.4
    return q, k, v, gamma


def test_hand_computed_case():
    # one head, d_k = d_v = 1: S_1 = 2*3 = 6, o_1 = 1*6; S_2 = 0.5*6 + 1*4 = 7, o_2 = 2*7 = 14
    q = torch.tensor([1.0, 2.0]).view(1, 1, 2, 1)
    k = torch.tensor([2.0, 1.0]).view(1, 1, 2, 1)
    v = torch.tensor([3.0, 4.0]).view(1, 1, 2, 1)
    gamma = torch.tensor([0.9, 0.5]).view(1, 1, 2)
    expected = torch.tensor([6.0, 14.0]).view(1, 1, 2, 1)
    torch.testing.assert_close(linear_attention_recurrent(q, k, v, gamma)[0], expected)
    torch.testing.assert_close(linear_attention_parallel(q, k, v, gamma), expected)
    torch.testing.assert_close(linear_attention_chunkwise(q, k, v, gamma, chunk=1)[0], expected)


@pytest.mark.parametrize("gamma", ["data", None, 0.9])
@pytest.mark.parametrize("T, chunk", [(1, 4), (8, 4), (11, 4), (11, 1), (11, 16), (30, 7)])
def test_three_forms_agree_in_float64(T, chunk, gamma):
    q, k, v, gamma = qkv(T=T, seed=T + chunk, gamma=gamma)
    o_rec, S_rec = linear_attention_recurrent(q, k, v, gamma)
    o_chunk, S_chunk = linear_attention_chunkwise(q, k, v, gamma, chunk=chunk)
    torch.testing.assert_close(linear_attention_parallel(q, k, v, gamma), o_rec, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(o_chunk, o_rec, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S_chunk, S_rec, rtol=1e-12, atol=1e-12)


def test_initial_state_carries_over_between_calls():
    q, k, v, gamma = qkv(T=12)
    o_all, S_all = linear_attention_recurrent(q, k, v, gamma)
    _, S_half = linear_attention_chunkwise(q[:, :, :5], k[:, :, :5], v[:, :, :5], gamma[..., :5], chunk=2)
    o_rest, S_rest = linear_attention_chunkwise(q[:, :, 5:], k[:, :, 5:], v[:, :, 5:], gamma[..., 5:], chunk=3,
                                                S0=S_half)
    torch.testing.assert_close(o_rest, o_all[:, :, 5:])
    torch.testing.assert_close(S_rest, S_all)


def test_gradients_agree_and_gradcheck_of_the_chunkwise_form():
    q, k, v, gamma = qkv(B=1, NH=2, T=9, d_k=3, d_v=2)
    grads = []
    for form in (lambda *x: linear_attention_recurrent(*x)[0], linear_attention_parallel,
                 lambda *x: linear_attention_chunkwise(*x, chunk=4)[0]):
        leaves = [x.clone().requires_grad_() for x in (q, k, v, gamma)]
        (form(*leaves) ** 2).sum().backward()
        grads.append([x.grad for x in leaves])
    for other in grads[1:]:
        for g_ref, g in zip(grads[0], other, strict=True):
            torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-10)
    q, k, v, gamma = (x[:, :1, :5].clone().requires_grad_() for x in (q, k, v, gamma))
    assert torch.autograd.gradcheck(lambda *x: linear_attention_chunkwise(*x, chunk=2)[0], (q, k, v, gamma))


def test_scalar_case_is_the_course_scan():
    q, k, v, gamma = qkv(B=1, NH=1, T=20, d_k=1, d_v=1)
    o, _ = linear_attention_recurrent(torch.ones_like(q), k, v, gamma)
    a = gamma.view(20, 1, 1)
    torch.testing.assert_close(o.view(20, 1, 1), scan_loop(a, (k * v).view(20, 1, 1)))


def test_without_decay_it_is_attention_without_softmax():
    q, k, v, _ = qkv(T=10)
    scores = (q @ k.transpose(-1, -2)).masked_fill(~torch.ones(10, 10, dtype=torch.bool).tril(), 0.0)
    torch.testing.assert_close(linear_attention_parallel(q, k, v), scores @ v)
    softmax = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
    assert not torch.allclose(softmax, scores @ v)


def test_decay_mask_hand_values_and_long_sequences():
    D = decay_mask(torch.tensor([0.5, 0.25, 0.5], dtype=torch.float64))
    expected = torch.tensor([[1.0, 0, 0], [0.25, 1.0, 0], [0.125, 0.5, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(D, expected)
    D_long = decay_mask(torch.full((2000,), 0.5, dtype=torch.float64))
    assert torch.isfinite(D_long).all() and D_long[1, 0] == 0.5 and D_long[-1, 0] == 0.0  # underflows to 0, no NaN


def test_bad_inputs_have_clear_errors():
    q, k, v, gamma = qkv()
    with pytest.raises(ValueError, match="gamma must lie in \\(0, 1\\]"):
        linear_attention_parallel(q, k, v, gamma * 3)
    with pytest.raises(ValueError, match="k has shape"):
        linear_attention_recurrent(q, k[..., :3], v)
    with pytest.raises(TypeError, match="gamma must be a tensor"):
        linear_attention_parallel(q, k, v, "0.9")
    with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
        linear_attention_chunkwise(q, k, v, chunk=0)


# ----------------------------------------------------------------------------- the exercises' checks

def right_mask(gamma):
    c = torch.cumsum(gamma.log(), -1)
    T = gamma.shape[-1]
    return (c[..., :, None] - c[..., None, :]).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), -torch.inf).exp()


def mask_parts(gamma):
    c = torch.cumsum(gamma.log(), -1)
    T = gamma.shape[-1]
    return (c[..., :, None] - c[..., None, :]).exp(), torch.ones(T, T, dtype=torch.bool).tril()


def cumprod_mask(gamma):
    P = torch.cumprod(gamma, -1)
    return (P[..., :, None] / P[..., None, :]).tril()


def test_check_mask_accepts_a_right_answer():
    check_decay_mask(right_mask)
    check_decay_mask(right_mask, seed=1)


@pytest.mark.parametrize("wrong, match", [
    (lambda g: mask_parts(g)[0] * mask_parts(g)[1], "inf \\* 0 = NaN"),  # right on short sequences
    (lambda g: (mask_parts(g)[0] * g[..., None, :]) * mask_parts(g)[1], "include gamma_s"),
    (lambda g: mask_parts(g)[0], "causal mask"),
    (lambda g: right_mask(g).transpose(-1, -2), "wrong range"),
    (lambda g: mask_parts(g)[0].triu(), "upper triangle"),
    (cumprod_mask, "log space"),
    (lambda g: decay_mask(g), "calls decay_mask"),
])
def test_check_mask_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check_decay_mask(wrong)


def right_step(S, q, k, v, gamma):
    S = gamma[:, None, None] * S + k[:, :, None] * v[:, None, :]
    return (q[:, :, None] * S).sum(1), S


@pytest.mark.parametrize("wrong, match", [
    (lambda S, q, k, v, g: (
        (q[:, :, None] * (g[:, None, None] * (S + k[:, :, None] * v[:, None, :]))).sum(1),
        g[:, None, None] * (S + k[:, :, None] * v[:, None, :])), "decay after adding"),
    (lambda S, q, k, v, g: ((q[:, :, None] * S).sum(1), right_step(S, q, k, v, g)[1]), "before updating"),
    (lambda S, q, k, v, g: ((q[:, :, None] * (g[:, None, None] * S + v[:, :, None] * k[:, None, :])).sum(1),
                            g[:, None, None] * S + v[:, :, None] * k[:, None, :]), "transpose the outer product"),
    (lambda S, q, k, v, g: right_step(S, q, k, v, torch.ones_like(g)), "forget the decay"),
    (lambda S, q, k, v, g: linear_attention_step(S, q, k, v, g), "calls linear_attention_step"),
])
def test_check_step_names_the_mistake(wrong, match):
    with pytest.raises(CheckFailed, match=match):
        check_linear_attention_step(wrong)


def test_check_step_accepts_a_right_answer():
    check_linear_attention_step(right_step)
    check_linear_attention_step(right_step, seed=1)


def test_check_step_lets_an_unanswered_exercise_say_so():
    def unanswered(S, q, k, v, gamma):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        check_linear_attention_step(unanswered)


def test_check_decay_mask_names_exp_before_masking_by_its_nan_gradient():
    def exp_then_fill(gamma):  # the forward is right (and finite): only the backward breaks
        c = torch.cumsum(gamma.log(), dim=-1)
        T = gamma.shape[-1]
        return (c[..., :, None] - c[..., None, :]).exp().masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)

    with pytest.raises(CheckFailed, match="gradient with respect to gamma contains NaN: .*masked_fill after exp"):
        check_decay_mask(exp_then_fill)
