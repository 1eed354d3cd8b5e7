"""S6 (Mamba's selective SSM): discretisation by hand, scan against loop in float64, gradients, minGRU as N = 1,
the copying models, the exercise checks and their named mistakes."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from learner import as_learner

from course_utils import CheckFailed
from course_utils.data.selective_copy import IGNORE, copy_targets, selective_copying
from course_utils.exercises.selective_ssm import (
    check_copy_targets,
    check_discretize,
    check_selective_step,
    check_ssd_attention,
)
from course_utils.linear_attention import linear_attention_chunkwise, linear_attention_parallel
from course_utils.min_rnns import MinGRU, SignedMinGRU
from course_utils.selective_ssm import (
    MODEL_KINDS,
    S6,
    CopyModel,
    copy_accuracy,
    copy_loss,
    discretize,
    s6_from_min_gru,
    selective_scan,
    selective_step,
    ssd_attention,
    ssd_qkv,
    train_copying,
)

f64 = torch.float64


def random_inputs(T=9, B=2, D=3, N=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(T, B, D, generator=g, dtype=f64)
    delta = F.softplus(torch.randn(T, B, D, generator=g, dtype=f64))
    A = -torch.rand(D, N, generator=g, dtype=f64) * 2 - 0.1
    B_t, C_t = (torch.randn(T, B, N, generator=g, dtype=f64) for _ in range(2))
    D_skip = torch.randn(D, generator=g, dtype=f64)
    h0 = torch.randn(B, D, N, generator=g, dtype=f64)
    return u, delta, A, B_t, C_t, D_skip, h0


def test_zoh_hand_case_solves_the_ode_exactly():
    # dh/dt = a h + b u, u held constant over a step delta: h(delta) = e^{a delta} h0 + (e^{a delta} - 1)/a b u
    a, b, u, h0, delta = -2.0, 3.0, 0.5, 1.0, 0.7
    Abar, Bbar = discretize(torch.tensor([[delta]], dtype=f64), torch.tensor([[a]], dtype=f64),
                            torch.tensor([[b]], dtype=f64))
    exact = math.exp(a * delta) * h0 + (math.exp(a * delta) - 1) / a * b * u
    assert abs((Abar * h0 + Bbar * u).item() - exact) < 1e-14
    # and a fine Euler integration of the ODE agrees with it
    h, n = h0, 100_000
    for _ in range(n):
        h += delta / n * (a * h + b * u)
    assert abs(h - exact) < 1e-4


def test_euler_rule_agrees_to_first_order():
    A = torch.tensor([[-1.0, -3.0]], dtype=f64)
    B_t = torch.tensor([[1.0, 2.0]], dtype=f64)
    gaps = []
    for delta in (1e-2, 1e-3):
        zoh = discretize(torch.tensor([[delta]], dtype=f64), A, B_t, "zoh")[1]
        euler = discretize(torch.tensor([[delta]], dtype=f64), A, B_t, "euler")[1]
        gaps.append((zoh - euler).abs().max().item())
    assert 80 < gaps[0] / gaps[1] < 120  # the gap shrinks as delta^2


@pytest.mark.parametrize("rule", ["zoh", "euler"])
def test_scan_forms_agree_with_the_step_loop_in_float64(rule):
    args = random_inputs()
    y_ref, h_ref = selective_scan(*args[:-1], args[-1], rule=rule, method="steps")
    for method in ("loop", "chunked"):
        y, h = selective_scan(*args[:-1], args[-1], rule=rule, method=method)
        torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-12)


def test_gradients_of_the_chunked_scan_match_the_step_loop_and_gradcheck():
    args = random_inputs(T=7, B=1, D=2, N=3)
    grads = {}
    for method in ("steps", "chunked"):
        leaves = [a.clone().requires_grad_() for a in args]
        y, h = selective_scan(*leaves[:-1], leaves[-1], method=method)
        ((y**2).sum() + h.sum()).backward()
        grads[method] = [a.grad for a in leaves]
    for g_chunk, g_step in zip(grads["chunked"], grads["steps"], strict=True):
        torch.testing.assert_close(g_chunk, g_step, rtol=1e-10, atol=1e-12)
    leaves = [a.clone().requires_grad_() for a in random_inputs(T=5, B=1, D=2, N=2)]
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a[:-1], a[-1], method="chunked")[0], leaves)


def test_s6_layer_methods_agree_and_count_parameters():
    torch.manual_seed(0)
    layer = S6(5, 6, 3).double()
    x = torch.randn(11, 2, 5, dtype=f64)
    y_ref, h_ref = layer(x, method="steps")
    for method in ("loop", "chunked"):
        torch.testing.assert_close(layer(x, method=method)[0], y_ref, rtol=1e-12, atol=1e-12)
    assert y_ref.shape == (11, 2, 6) and h_ref.shape == (2, 6, 3)
    n_in, D, N = 5, 6, 3
    assert sum(p.numel() for p in layer.parameters()) == 2 * (n_in * D + D) + 2 * (n_in * N + N) + D * N + D
    torch.testing.assert_close(layer.A[0], -torch.arange(1, 4, dtype=f64))  # S4D-real: A_n = -(n + 1)
    lti = S6(5, 6, 3, selective=False)
    assert sum(p.numel() for p in lti.parameters()) == (n_in * D + D) + D * N + D + D + 2 * N


def test_min_gru_is_s6_with_one_state():
    torch.manual_seed(1)
    gru = MinGRU(4, 5, candidate="linear").double()
    s6 = s6_from_min_gru(gru)
    x = torch.randn(13, 3, 4, dtype=f64)
    h0 = torch.randn(3, 5, dtype=f64)
    for method in ("steps", "chunked"):
        y, h_T = s6(x, h0[..., None], method=method)
        torch.testing.assert_close(y, gru(x, h0)[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(h_T[..., 0], gru(x, h0)[1], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="candidate='linear'"):
        s6_from_min_gru(MinGRU(4, 5, candidate="g"))
    with pytest.raises(TypeError, match="course MinGRU"):
        s6_from_min_gru(torch.nn.GRU(4, 5))
    with pytest.raises(TypeError, match="SignedMinGRU, whose a = 1 - 2z can be negative"):  # a subclass, refused
        s6_from_min_gru(SignedMinGRU(4, 5))


def test_shape_errors_name_the_argument():
    u, delta, A, B_t, C_t, D_skip, h0 = random_inputs()
    with pytest.raises(ValueError, match=re.escape("C_t has shape (9, 2, 3), expected (9, 2, 4)")):
        selective_scan(u, delta, A, B_t, C_t[..., :3], D_skip)
    with pytest.raises(ValueError, match=re.escape("x has shape (4, 2, 3), expected (T, B, 5)")):
        S6(5, 6, 3)(torch.randn(4, 2, 3))
    with pytest.raises(ValueError, match="method must be one of"):
        selective_scan(u, delta, A, B_t, C_t, D_skip, method="fast")
    with pytest.raises(ValueError, match="state_size must be a whole number >= 1, got 0"):
        S6(5, 6, 0)
    with pytest.raises(ValueError, match=re.escape("h has shape (2, 3), expected (B, D, N)")):
        selective_step(h0[..., 0], u[0], h0, h0, C_t[0], D_skip)


@pytest.mark.parametrize("rule", ["zoh", "euler"])
def test_ssd_masked_attention_equals_the_scan_with_one_decay_per_channel(rule):
    u, delta, A, B_t, C_t, D_skip, _ = random_inputs(T=17, B=2, D=3, N=4, seed=3)
    a = A[:, 0]  # (D,): one decay per channel
    y_ref, _ = selective_scan(u, delta, a[:, None].expand(3, 4), B_t, C_t, D_skip, rule=rule, method="steps")
    torch.testing.assert_close(ssd_attention(u, delta, a, B_t, C_t, D_skip, rule=rule), y_ref, rtol=1e-12, atol=1e-12)
    q, k, v, gamma = ssd_qkv(u, delta, a, B_t, C_t, rule=rule)
    assert q.shape == k.shape == (2, 3, 17, 4) and v.shape == (2, 3, 17, 1) and gamma.shape == (2, 3, 17)
    for o in (linear_attention_parallel(q, k, v, gamma), linear_attention_chunkwise(q, k, v, gamma, chunk=5)[0]):
        torch.testing.assert_close(o[..., 0].permute(2, 0, 1) + D_skip * u, y_ref, rtol=1e-12, atol=1e-12)
    if rule == "euler":  # Mamba-2's v = Delta u
        torch.testing.assert_close(v[..., 0], (delta * u).permute(1, 2, 0))


def test_ssd_hand_case():
    # T = 2, one channel, N = 1, B = C = 1, Delta = 1, A = -log 2 (decay 1/2), Euler: x = u = (1, 3);
    # y_1 = x_1 = 1, y_2 = (1/2) x_1 + x_2 = 3.5
    ones = torch.ones(2, 1, 1, dtype=f64)
    y = ssd_attention(torch.tensor([1.0, 3.0], dtype=f64).view(2, 1, 1), ones, torch.tensor([-math.log(2)], dtype=f64),
                      ones, ones, torch.zeros(1, dtype=f64), rule="euler")
    torch.testing.assert_close(y.flatten(), torch.tensor([1.0, 3.5], dtype=f64))
    with pytest.raises(ValueError, match=re.escape("A has shape (3, 4), expected (3,)")):
        ssd_attention(*random_inputs()[:6])


def test_copy_loss_and_accuracy_score_only_the_markers():
    targets = torch.full((2, 5), IGNORE)
    targets[:, 3:] = torch.tensor([[1, 2], [2, 2]])
    logits = torch.zeros(2, 5, 3)
    logits[0, 3, 1] = logits[0, 4, 2] = 10.0  # sequence 0 right
    logits[1, 3, 2] = logits[1, 4, 1] = 10.0  # sequence 1: first right, second wrong
    logits[:, :3, 0] = -50.0  # unscored positions: anything
    assert copy_accuracy(logits, targets) == (0.75, 0.5)
    expected = F.cross_entropy(logits[:, 3:].reshape(-1, 3), targets[:, 3:].reshape(-1))
    torch.testing.assert_close(copy_loss(logits, targets), expected)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_copy_models_run_and_train(kind):
    model = CopyModel(kind, 6, 8, state_size=2)
    assert model(selective_copying(3, length=12, n_data=3)).shape == (3, 12, 6)
    result = train_copying(kind, steps=3, batch_size=4, width=8, state_size=2, n_eval=10,
                           task={"length": 12, "n_data": 3})
    assert 0 <= result["per_token"] <= 1 and len(result["losses"]) == 3


# ----------------------------------------------------------------------------- the exercise checks


def good_discretize(delta, A, B_t):
    dA = delta[..., None] * A
    return torch.exp(dA), torch.expm1(dA) / A * B_t[..., None, :]


def test_check_discretize_accepts_a_right_answer(capsys):
    check_discretize(good_discretize)
    check_discretize(good_discretize, seed=1)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, words", [
    (lambda d, A, B: (torch.exp(d[..., None] * A), d[..., None] * B[..., None, :]), "first-order (Euler) rule"),
    (lambda d, A, B: (torch.exp(A).expand(d.shape[0], *A.shape), torch.expm1(d[..., None] * A) / A * B[..., None, :]),
     "exp(A) instead of exp(Delta A)"),
    (lambda d, A, B: (torch.exp(-d[..., None] * A), torch.expm1(-d[..., None] * A) / (-A) * B[..., None, :]),
     "flip the sign of A"),
    (lambda d, A, B: (torch.exp(d[..., None] * A), torch.exp(d[..., None] * A) / A * B[..., None, :]), "forget the -1"),
])
def test_check_discretize_names_the_mistake(wrong, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_discretize(wrong)


def test_check_discretize_refuses_the_library():
    with pytest.raises(CheckFailed, match="calls discretize"):
        check_discretize(lambda d, A, B: discretize(d, A, B))


def good_step(h, u_t, Abar_t, Bbar_t, C_t, D_skip):
    h_new = Abar_t * h + Bbar_t * u_t[..., None]
    return (h_new * C_t[:, None, :]).sum(-1) + D_skip * u_t, h_new


def test_check_selective_step_accepts_a_right_answer(capsys):
    check_selective_step(good_step)
    check_selective_step(good_step, seed=1)
    assert "OK" in capsys.readouterr().out


def no_skip(h, u_t, Abar_t, Bbar_t, C_t, D_skip):
    h_new = Abar_t * h + Bbar_t * u_t[..., None]
    return (h_new * C_t[:, None, :]).sum(-1), h_new


def old_state(h, u_t, Abar_t, Bbar_t, C_t, D_skip):
    return (h * C_t[:, None, :]).sum(-1) + D_skip * u_t, Abar_t * h + Bbar_t * u_t[..., None]


def wrong_axis(h, u_t, Abar_t, Bbar_t, C_t, D_skip):
    h_new = Abar_t * h + Bbar_t * u_t[..., None]
    return (h_new * C_t[:, None, :]).sum(1) + D_skip * u_t, h_new


def no_input(h, u_t, Abar_t, Bbar_t, C_t, D_skip):
    h_new = Abar_t * h + Bbar_t
    return (h_new * C_t[:, None, :]).sum(-1) + D_skip * u_t, h_new


@pytest.mark.parametrize("wrong, words", [
    (no_skip, "forget the skip term D_skip * u_t"),
    (old_state, "read y from the old state h"),
    (wrong_axis, "over the channel axis D (dim 1)"),
    (no_input, "forget to multiply Bbar by the input u_t"),
])
def test_check_selective_step_names_the_mistake(wrong, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_selective_step(wrong)


def test_check_selective_step_refuses_the_library():
    with pytest.raises(CheckFailed, match="calls selective_step"):
        check_selective_step(lambda *a: selective_step(*a))


def test_check_copy_targets_accepts_a_right_answer(capsys):
    def good(tokens, n_data):
        T = tokens.shape[1]
        targets = torch.full_like(tokens, IGNORE)
        for row, target in zip(tokens, targets, strict=True):
            region = row[: T - n_data]
            target[T - n_data:] = region[region != 0]
        return targets

    check_copy_targets(good)
    check_copy_targets(good, seed=1)
    assert "OK" in capsys.readouterr().out


learner_copy_targets = as_learner(copy_targets)  # the right answer, as if typed in the notebook


def blanks_not_ignored(tokens, n_data):
    return learner_copy_targets(tokens, n_data).clamp(min=0)


def one_early(tokens, n_data):
    right = learner_copy_targets(tokens, n_data)
    return torch.cat([right[:, 1:], right[:, :1]], dim=1)


def first_tokens(tokens, n_data):
    targets = torch.full_like(tokens, IGNORE)
    targets[:, -n_data:] = tokens[:, :n_data]
    return targets


@pytest.mark.parametrize("wrong, words", [
    (blanks_not_ignored, "with the blank token 0 instead of IGNORE"),
    (one_early, "one position early"),
    (first_tokens, "as in plain copying"),
])
def test_check_copy_targets_names_the_mistake(wrong, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_copy_targets(wrong)


def test_check_copy_targets_wants_int64():
    with pytest.raises(CheckFailed, match="int64"):
        check_copy_targets(lambda tokens, n_data: torch.zeros(tokens.shape))


def good_ssd(u, delta, a, B_t, C_t):
    c = (delta * a).permute(1, 2, 0).cumsum(-1)  # (B, D, T)
    T = u.shape[0]
    above = torch.ones(T, T, dtype=torch.bool).triu(1)
    L = (c[..., :, None] - c[..., None, :]).masked_fill(above, float("-inf")).exp()  # (B, D, T, T)
    return torch.einsum("bdts,bts,sbd->tbd", L, torch.einsum("tbn,sbn->bts", C_t, B_t), delta * u)


def test_check_ssd_attention_accepts_a_right_answer(capsys):
    check_ssd_attention(good_ssd)
    check_ssd_attention(good_ssd, seed=1)
    assert "OK" in capsys.readouterr().out


def ssd_variant(u, delta, a, B_t, C_t, *, shift=0, sign=1, value="delta", swap=False, causal=True, ratio=False):
    """The SSD form with one of the usual mistakes switched on."""
    T = u.shape[0]
    dA = (delta * a).permute(1, 2, 0)  # (B, D, T)
    c = dA.cumsum(-1)
    log_L = sign * (c[..., :, None] - c[..., None, :]) + (dA[..., None, :] if shift else 0)
    if ratio:  # cumulative products divided: underflows to 0 / 0 on long sequences
        P = dA.exp().cumprod(-1)
        L = P[..., :, None] / P[..., None, :]
    else:
        L = log_L.exp()
    if causal:
        L = L * torch.ones(T, T, dtype=torch.float64).tril()
    scores = torch.einsum("tbn,sbn->bts", B_t if swap else C_t, C_t if swap else B_t)
    return torch.einsum("bdts,bts,sbd->tbd", L, scores, delta * u if value == "delta" else u)


@pytest.mark.parametrize("mistake, words", [
    (dict(shift=1), "include the decay of step s"),
    (dict(sign=-1), "exp(c_s - c_t) instead of exp(c_t - c_s)"),
    (dict(causal=False), "leave out the causal mask"),
    (dict(value="u"), "use u as the value"),
    (dict(swap=True), "swap C and B in the scores"),
    (dict(ratio=True), "contains NaN"),
])
def test_check_ssd_attention_names_the_mistake(mistake, words):
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_ssd_attention(lambda *args: ssd_variant(*args, **mistake))


def test_check_ssd_attention_refuses_the_library():
    with pytest.raises(CheckFailed, match="calls ssd_attention"):
        check_ssd_attention(lambda u, d, a, B, C: ssd_attention(u, d, a, B, C, rule="euler"))
