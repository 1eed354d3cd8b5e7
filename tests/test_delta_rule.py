"""The delta rule: a hand-computed step, the online-regression gradient step, linear attention for orthonormal keys,
the reflection at beta = 2, exact counting modulo m by Householder products, the exercise check and its named
mistakes."""

import re

import pytest
import torch
from learner import as_learner

from course_utils import CheckFailed
from course_utils.delta_rule import (
    delta_rule_recurrent,
    delta_rule_step,
    householder_count_inputs,
    transposition_key,
)
from course_utils.exercises.delta_rule import check_delta_rule_step
from course_utils.linear_attention import linear_attention_recurrent

f64 = torch.float64


def inputs(B=2, NH=3, T=9, d_k=4, d_v=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, NH, T, d_k, generator=g, dtype=f64) for _ in range(2))
    v = torch.randn(B, NH, T, d_v, generator=g, dtype=f64)
    beta = torch.rand(B, NH, T, generator=g, dtype=f64) * 2
    gamma = torch.rand(B, NH, T, generator=g, dtype=f64) * 0.5 + 0.5
    return q, k, v, beta, gamma


def test_hand_computed_step():
    # d_k = 2, d_v = 1, k = (3, 4) -> (0.6, 0.8); S = (1, 0): k^T S = 0.6;
    # S_new = S - beta k (k^T S) + beta k v = (1, 0) - 0.5 (0.36, 0.48) + 0.5 (0.6, 0.8) * 2 = (1.42, 0.56)
    S = torch.tensor([[1.0], [0.0]], dtype=f64)
    o, S_new = delta_rule_step(S, torch.tensor([1.0, 1.0], dtype=f64), torch.tensor([3.0, 4.0], dtype=f64),
                               torch.tensor([2.0], dtype=f64), 0.5)
    torch.testing.assert_close(S_new, torch.tensor([[1.42], [0.56]], dtype=f64))
    torch.testing.assert_close(o, torch.tensor([1.98], dtype=f64))


def test_step_is_a_gradient_step_on_the_regression_loss():
    q, k, v, beta, gamma = inputs()
    out, S_T = delta_rule_recurrent(q, k, v, beta, gamma)
    S, outputs = torch.zeros(2, 3, 4, 5, dtype=f64), []
    for t in range(9):
        key = k[:, :, t] / k[:, :, t].norm(dim=-1, keepdim=True)
        decayed = (gamma[:, :, t, None, None] * S).requires_grad_()
        loss = 0.5 * ((torch.einsum("bhkv,bhk->bhv", decayed, key) - v[:, :, t]) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, decayed)
        S = (decayed - beta[:, :, t, None, None] * grad).detach()
        outputs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, :, t]))
    torch.testing.assert_close(out, torch.stack(outputs, 2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S_T, S, rtol=1e-12, atol=1e-12)


def test_orthonormal_keys_give_linear_attention():
    q, _, v, beta, gamma = inputs(T=4, d_k=4)
    k = torch.eye(4, dtype=f64).expand(2, 3, 4, 4)  # k_t = e_t: nothing is stored under a key before it is written
    out, S = delta_rule_recurrent(q, k, v, beta, gamma)
    out_la, S_la = linear_attention_recurrent(q, k, beta[..., None] * v, gamma)
    torch.testing.assert_close(out, out_la, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(S, S_la, rtol=1e-12, atol=1e-12)


def test_delta_rule_overwrites_where_linear_attention_adds():
    k = torch.tensor([1.0, 0.0], dtype=f64).expand(1, 1, 2, 2)  # the same key twice
    v = torch.tensor([[3.0], [5.0]], dtype=f64).view(1, 1, 2, 1)
    out, _ = delta_rule_recurrent(k, k, v, 1.0)
    assert out[0, 0, :, 0].tolist() == [3.0, 5.0]
    assert linear_attention_recurrent(k, k, v)[0][0, 0, :, 0].tolist() == [3.0, 8.0]


def test_transition_eigenvalues():
    g = torch.Generator().manual_seed(0)
    for beta in (0.0, 0.5, 1.0, 1.5, 2.0):
        k = torch.randn(5, generator=g, dtype=f64)
        k = k / k.norm()
        M = torch.eye(5, dtype=f64) - beta * torch.outer(k, k)
        eig = torch.linalg.eigvalsh(M)
        torch.testing.assert_close(eig, torch.tensor(sorted([1 - beta] + [1.0] * 4), dtype=f64))
    M = torch.eye(5, dtype=f64) - 2 * torch.outer(k, k)
    torch.testing.assert_close(M @ M, torch.eye(5, dtype=f64))  # a reflection


@pytest.mark.parametrize("modulus", [2, 3, 5])
def test_householder_counting_is_exact(modulus):
    bits = torch.randint(0, 2, (64, 40), generator=torch.Generator().manual_seed(modulus))
    q, k, v, beta, S0 = householder_count_inputs(bits, modulus)
    steps = (modulus - 1) * 40
    assert k.shape == q.shape == v.shape == (64, 1, steps, modulus) and S0.shape == (64, 1, modulus, modulus)
    out, S = delta_rule_recurrent(q, k, v, beta, S0=S0)
    read = out[:, 0, modulus - 2 :: modulus - 1]  # (B, T, m): after every bit
    expected = torch.nn.functional.one_hot(bits.cumsum(1) % modulus, modulus).to(f64)
    torch.testing.assert_close(read, expected, rtol=0, atol=1e-12)


def test_beta_capped_at_one_loses_the_count():
    q, k, v, beta, S0 = householder_count_inputs(torch.ones(1, 3, dtype=torch.long), 2, beta_max=1.0)
    out, _ = delta_rule_recurrent(q, k, v, beta, S0=S0)
    torch.testing.assert_close(out[0, 0, :, 0], torch.full((3,), 0.5, dtype=f64))  # a projection: stuck halfway


def test_transposition_key_swaps():
    k = transposition_key(0, 2, 3)
    swap = torch.eye(3, dtype=f64) - 2 * torch.outer(k, k)
    torch.testing.assert_close(swap, torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=f64))
    with pytest.raises(ValueError, match="two different coordinates"):
        transposition_key(1, 1, 3)


def test_shape_errors_name_the_argument():
    q, k, v, beta, _ = inputs()
    with pytest.raises(ValueError, match=re.escape("beta has shape (2, 3), expected (2, 3, 9)")):
        delta_rule_recurrent(q, k, v, beta[..., 0])
    with pytest.raises(ValueError, match="v has shape"):
        delta_rule_step(torch.zeros(2, 4, 5, dtype=f64), q[:, 0, 0], k[:, 0, 0], v[:, 0, 0, :4], 1.0)
    with pytest.raises(ValueError, match="modulus must be an int >= 2"):
        householder_count_inputs(torch.zeros(2, 3), 1)


# ----------------------------------------------------------------------------- the exercise check

good_step = as_learner(delta_rule_step)


def test_check_accepts_a_right_answer(capsys):
    check_delta_rule_step(good_step)
    check_delta_rule_step(good_step, seed=1)
    assert "OK" in capsys.readouterr().out


def written_out(S, q, k, v, beta, *, normalise=True, erase=None, write=None, side="left", outer="kv"):
    """A step written out, with one of the usual mistakes switched on."""
    b = beta[:, None, None]
    key = k / k.norm(dim=-1, keepdim=True) if normalise else k
    erase_term = (key[:, :, None] * key[:, None, :]) @ S if side == "left" else S @ (key[:, :, None] * key[:, None, :])
    write_term = key[:, :, None] * v[:, None, :] if outer == "kv" else v[:, :, None] * key[:, None, :]
    S_new = S - (b if erase is None else erase) * erase_term + (b if write is None else write) * write_term
    return (q[:, None, :] @ S_new)[:, 0], S_new


@pytest.mark.parametrize("mistake, words", [
    (dict(normalise=False), "use k as given: normalise it first"),
    (dict(write=1.0), "apply beta to the erase term only"),
    (dict(erase=1.0), "apply beta to the write term only"),
    (dict(erase=0.0), "leave out the erase term"),
    (dict(side="right"), "multiply by the transition on the wrong side"),
    (dict(outer="vk"), "transpose the outer product of the write"),
])
def test_check_names_the_mistake(mistake, words):
    def wrong(S, q, k, v, beta):
        return written_out(S, q, k, v, beta, **mistake)

    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_delta_rule_step(wrong)


def test_check_names_reading_the_old_state():
    def old_read(S, q, k, v, beta):
        _, S_new = written_out(S, q, k, v, beta)
        return (q[:, None, :] @ S)[:, 0], S_new
    with pytest.raises(CheckFailed, match="read the old state"):
        check_delta_rule_step(old_read)


def test_check_explains_a_shape_error_from_the_wrong_side():
    def wrong_side_matmul(S, q, k, v, beta):
        key = k / k.norm(dim=-1, keepdim=True)
        transition = torch.eye(k.shape[1], dtype=k.dtype) - beta[:, None, None] * key[:, :, None] * key[:, None, :]
        S_new = S @ transition + beta[:, None, None] * key[:, :, None] * v[:, None, :]
        return (q[:, None, :] @ S_new)[:, 0], S_new
    with pytest.raises(CheckFailed, match="multiply by the transition on the wrong side"):
        check_delta_rule_step(wrong_side_matmul)  # caught on the square case first


def test_check_refuses_the_library():
    with pytest.raises(CheckFailed, match="calls delta_rule_step"):
        check_delta_rule_step(lambda S, q, k, v, beta: delta_rule_step(S, q, k, v, beta))
