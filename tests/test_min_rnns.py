"""minGRU, minLSTM (Feng et al. 2024) and IndRNN: hand cases, the three scans agree, gradients, shapes."""

import re

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.min_rnns import check_min_gru_step, check_min_lstm_gates
from course_utils.min_rnns import (
    METHODS,
    IndRNN,
    LastStep,
    MinGRU,
    MinLSTM,
    SignedMinGRU,
    g,
    log_g,
    min_lstm_gates,
    min_rnn_param_count,
)


def test_g_and_log_g():
    x = torch.tensor([-30.0, -2.0, 0.0, 1.5, 40.0], dtype=torch.float64)
    torch.testing.assert_close(g(x), torch.tensor([torch.sigmoid(torch.tensor(-30.0)).item(),
                                                    1 / (1 + torch.e**2), 0.5, 2.0, 40.5], dtype=torch.float64))
    torch.testing.assert_close(log_g(x), torch.log(g(x)))
    assert torch.isfinite(log_g(torch.tensor([-200.0]))).all()  # no log(0)


def set_weights(model, rows):
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor(rows)[:, :1])
        model.linear.bias.copy_(torch.tensor(rows)[:, 1])


def test_min_gru_hand_case():
    # H = I = 1: k = 0 -> z = 0.5; candidate pre-activation 2x + 1
    model = MinGRU(1, 1, candidate="linear")
    set_weights(model, [[0.0, 0.0], [2.0, 1.0]])
    x = torch.tensor([1.0, -1.0]).view(2, 1, 1)
    h, h_T = model(x, torch.tensor([[4.0]]))
    # h1 = 0.5*4 + 0.5*3 = 3.5; h2 = 0.5*3.5 + 0.5*(-1) = 1.25
    torch.testing.assert_close(h.flatten(), torch.tensor([3.5, 1.25]))
    torch.testing.assert_close(h_T, torch.tensor([[1.25]]))
    model_g = MinGRU(1, 1, candidate="g")
    set_weights(model_g, [[0.0, 0.0], [2.0, 1.0]])
    h = model_g(x, torch.tensor([[4.0]]))[0]
    # the state starts at h0 = 4 itself (not g(4)); candidates g(3) = 3.5, g(-1) = sigmoid(-1)
    h1 = 0.5 * 4.0 + 0.5 * 3.5
    h2 = 0.5 * h1 + 0.5 * torch.sigmoid(torch.tensor(-1.0)).item()
    torch.testing.assert_close(h.flatten(), torch.tensor([h1, h2]))


def test_min_lstm_hand_case():
    # f = sigmoid(ln 3) = 0.75, i = sigmoid(0) = 0.5 -> f' = 0.6, i' = 0.4; candidate x
    model = MinLSTM(1, 1, candidate="linear")
    set_weights(model, [[0.0, torch.log(torch.tensor(3.0)).item()], [0.0, 0.0], [1.0, 0.0]])
    x = torch.tensor([2.0, -1.0]).view(2, 1, 1)
    h = model(x, torch.tensor([[1.0]]))[0]
    # h1 = 0.6*1 + 0.4*2 = 1.4; h2 = 0.6*1.4 - 0.4 = 0.44
    torch.testing.assert_close(h.flatten(), torch.tensor([1.4, 0.44]))


def test_gates_ignore_the_previous_state():
    torch.manual_seed(0)
    model = MinGRU(3, 5, candidate="linear")
    x = torch.randn(6, 2, 3)
    a, b = model.recurrence(x)
    h0 = torch.randn(2, 5)
    h = model(x, h0)[0]
    expected, state = [], h0
    for t in range(6):  # a and b come from x alone; h enters only through a * h
        state = a[t] * state + b[t]
        expected.append(state)
    torch.testing.assert_close(h, torch.stack(expected))


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_three_methods_agree(cls, dtype, rtol):
    torch.manual_seed(0)
    model = cls(3, 8, candidate="g").to(dtype)
    x = torch.randn(64, 4, 3, dtype=dtype)
    reference = model(x, method="loop")[0]
    assert (reference > 0).all()
    for method in METHODS:
        torch.testing.assert_close(model(x, method=method)[0], reference, rtol=rtol, atol=0.0)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
@pytest.mark.parametrize("candidate", ["linear", "g"])
@pytest.mark.parametrize("h0_value", [-60.0, -2.0, 0.0, 0.5, 3.0])
def test_h0_is_the_state_itself_in_every_method(cls, candidate, h0_value):
    torch.manual_seed(4)
    model = cls(3, 4, candidate=candidate).double()
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    h0 = torch.full((2, 4), h0_value, dtype=torch.float64)
    a, b = model.recurrence(x)
    reference = model(x, h0, method="loop")[0]
    torch.testing.assert_close(reference, scan_loop_reference(a, b, h0))  # h_1 = a_1 h0 + b_1: no g on h0
    methods = ["chunked"] + (["log"] if candidate == "g" and h0_value > 0 else [])
    for method in methods:
        got = model(x, h0, method=method)[0]
        torch.testing.assert_close(got, reference, rtol=1e-10, atol=1e-12)


SPLIT_CASES = [(candidate, method, sign) for candidate in ("linear", "g") for method in METHODS for sign in (1.0, -1.0)
               if method != "log" or (candidate == "g" and sign > 0)]  # the log scan: candidate g, h0 > 0 only


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
@pytest.mark.parametrize("candidate, method, sign", SPLIT_CASES)
def test_two_halves_with_h_T_passed_across_equal_one_pass(cls, candidate, method, sign):
    torch.manual_seed(5)
    model = cls(3, 6, candidate=candidate, chunk=4).double()
    x = torch.randn(30, 2, 3, dtype=torch.float64)
    h0 = sign * (torch.rand(2, 6, dtype=torch.float64) + 0.2)  # (B, H), all of one sign
    whole, whole_T = model(x, h0, method=method)
    first, first_T = model(x[:13], h0, method=method)
    second, second_T = model(x[13:], first_T, method=method)  # h_T of the first half goes back in as h0
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second_T, whole_T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(whole, model(x, h0, method="loop")[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_default_state_and_the_log_scan_refuses_a_non_positive_h0(cls):
    torch.manual_seed(6)
    model = cls(3, 4).double()  # candidate g
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    half = torch.full((2, 4), 0.5, dtype=torch.float64)  # the default state for candidate g: g(0) = 0.5
    for method in METHODS:
        torch.testing.assert_close(model(x, method=method)[0], model(x, half, method="loop")[0])
    zero = torch.zeros(2, 4, dtype=torch.float64)
    linear = cls(3, 4, candidate="linear").double()  # its default state is 0
    torch.testing.assert_close(linear(x)[0], linear(x, zero)[0])
    for bad in (zero, -half, torch.cat([half[:1], -half[1:]])):
        with pytest.raises(ValueError, match="method='log' needs a positive initial state h0"):
            model(x, bad, method="log")
        model(x, bad, method="chunked")  # any sign works without logarithms


@pytest.mark.parametrize("method", ["loop", "chunked"])
def test_min_lstm_stays_finite_when_both_gates_underflow(method):
    model = MinLSTM(1, 2, candidate="linear")
    with torch.no_grad():  # rows [f (2), i (2), h~ (2)]: both gates near sigmoid(-120) = 0 in float32
        model.linear.weight.copy_(torch.tensor([[1.0], [1.0], [1.0], [1.0], [1.0], [-1.0]]))
        model.linear.bias.copy_(torch.tensor([-120.0, -125.0, -121.0, -119.0, 0.0, 0.0]))
    x = torch.tensor([0.5, -0.3, 1.0]).view(3, 1, 1)
    h0 = torch.tensor([[1.0, -2.0]])
    assert torch.sigmoid(model.linear(x)[..., :4]).eq(0).all()  # the direct f / (f + i) would be 0 / 0
    got = model(x, h0, method=method)[0]
    assert torch.isfinite(got).all()
    expected = model.double()(x.double(), h0.double(), method="loop")[0]
    torch.testing.assert_close(got, expected.float(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_gradients_agree_across_methods(cls):
    torch.manual_seed(1)
    model = cls(2, 4).double()
    x = torch.randn(40, 3, 2, dtype=torch.float64)
    grads = {}
    for method in METHODS:
        model.zero_grad()
        model(x, method=method)[0].pow(2).sum().backward()
        grads[method] = model.linear.weight.grad.clone()
    torch.testing.assert_close(grads["log"], grads["loop"], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grads["chunked"], grads["loop"], rtol=1e-9, atol=1e-12)


def test_min_lstm_normalised_gates_sum_to_one():
    torch.manual_seed(2)
    model = MinLSTM(3, 4, candidate="linear")
    x = torch.randn(5, 2, 3)
    k_f, k_i, _ = model.linear(x).chunk(3, dim=-1)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    a, _ = model.recurrence(x)
    torch.testing.assert_close(a, f / (f + i))
    torch.testing.assert_close(a + i / (f + i), torch.ones_like(a))
    log_a, _ = model.recurrence(x, log=True)  # the log-space form gives the same a
    torch.testing.assert_close(log_a.exp(), a)


def test_param_counts():
    assert sum(p.numel() for p in MinGRU(7, 5).parameters()) == min_rnn_param_count("minGRU", 7, 5) == 2 * (35 + 5)
    assert sum(p.numel() for p in MinLSTM(7, 5).parameters()) == min_rnn_param_count("minLSTM", 7, 5) == 3 * (35 + 5)
    with pytest.raises(ValueError, match="kind"):
        min_rnn_param_count("GRU", 7, 5)


def test_indrnn_hand_case_and_diagonal_jacobian():
    model = IndRNN(1, 2, u_init=0.5)
    with torch.no_grad():
        model.input.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        model.input.bias.zero_()
    x = torch.tensor([2.0, 1.0]).view(2, 1, 1)
    h, _ = model(x)
    # unit 0: relu(2) = 2, relu(1 + 0.5*2) = 2; unit 1: relu(-2) = 0, relu(-1 + 0) = 0
    torch.testing.assert_close(h[:, 0], torch.tensor([[2.0, 0.0], [2.0, 0.0]]))
    h_prev = torch.tensor([[0.3, 0.7]])
    jac = torch.autograd.functional.jacobian(lambda s: model(x[:1] + 1.0, s)[1], h_prev)[0, :, 0, :]
    torch.testing.assert_close(jac, torch.diag(torch.tensor([0.5, 0.0])))  # u * relu'(.), unit 1 inactive


def test_options_and_shape_errors():
    with pytest.raises(ValueError, match="candidate='g'"):
        MinGRU(2, 3, candidate="linear")(torch.randn(4, 1, 2), method="log")
    with pytest.raises(ValueError, match="method must be"):
        MinGRU(2, 3)(torch.randn(4, 1, 2), method="fast")
    with pytest.raises(ValueError, match=r"x has shape \(4, 1, 5\), expected \(T, B, 2\)"):
        MinLSTM(2, 3)(torch.randn(4, 1, 5))
    with pytest.raises(ValueError, match=r"h0 has shape \(2, 3\), expected \(1, 3\)"):
        MinGRU(2, 3)(torch.randn(4, 1, 2), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"x has shape \(4, 2\), expected \(B, T, I\)"):
        LastStep(MinGRU(2, 3), 3)(torch.randn(4, 2))


def test_last_step_reads_the_final_state():
    torch.manual_seed(3)
    layer = MinGRU(2, 3)
    model = LastStep(layer, 3, method="chunked")
    x = torch.randn(5, 7, 2)  # (B, T, I)
    torch.testing.assert_close(model(x), model.head(layer(x.transpose(0, 1))[1]))


# ----------------------------------------------------------------------------- minLSTM's gates, the exercise

def test_min_lstm_gates_match_the_layer_and_stay_finite():
    k_f, k_i = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    f_n, i_n = min_lstm_gates(k_f, k_i)
    torch.testing.assert_close(f_n, f / (f + i))
    torch.testing.assert_close(i_n, i / (f + i))
    vanishing = torch.full((2,), -150.0)
    f_v, i_v = min_lstm_gates(vanishing, vanishing - 1.0)  # float32: sigmoid(-150) underflows to 0
    assert torch.sigmoid(vanishing).eq(0).all()
    torch.testing.assert_close(f_v, torch.sigmoid(torch.tensor(1.0)).expand(2))


def _gates(k_f, k_i, *, naive=False, unnormalised=False, plus_one=False, softmax=False, swapped=False):
    """A learner's normalised gates, right (in log space) by default; each flag is one plausible mistake."""
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    if naive:
        out = (f / (f + i), i / (f + i))
    elif unnormalised:
        out = (f, i)
    elif plus_one:
        out = (f / (f + i + 1), i / (f + i + 1))
    elif softmax:
        out = tuple(torch.softmax(torch.stack([k_f, k_i]), dim=0))
    else:
        log_f, log_i = -torch.nn.functional.softplus(-k_f), -torch.nn.functional.softplus(-k_i)
        out = (torch.sigmoid(log_f - log_i), torch.sigmoid(log_i - log_f))
    return out[::-1] if swapped else out


GATE_MISTAKES = {  # flag -> words the feedback must contain
    "naive": "sigmoid underflows to 0 in float32 and 0 / 0 is NaN",
    "unnormalised": "leave the gates unnormalised",
    "plus_one": "divide by f + i + 1",
    "softmax": "normalise exp(k) instead of sigmoid(k)",
    "swapped": "return (i', f') instead of (f', i')",
}


def test_check_min_lstm_gates_passes_a_stable_answer_and_refuses_the_reference(capsys):
    check_min_lstm_gates(_gates)
    check_min_lstm_gates(_gates, seed=1)
    assert "OK f' (the last row: both gates vanish)" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="calls min_lstm_gates, an existing implementation"):
        check_min_lstm_gates(lambda k_f, k_i: min_lstm_gates(k_f, k_i))


@pytest.mark.parametrize("mistake", GATE_MISTAKES)
def test_check_min_lstm_gates_names_each_mistake(mistake):
    with pytest.raises(CheckFailed, match=re.escape(GATE_MISTAKES[mistake])):
        check_min_lstm_gates(lambda k_f, k_i: _gates(k_f, k_i, **{mistake: True}))


def test_check_min_lstm_gates_says_what_is_wrong_with_malformed_answers():
    with pytest.raises(CheckFailed, match=r"return the pair \(f', i'\), two tensors of shape \(4, 5\); got a Tensor"):
        check_min_lstm_gates(lambda k_f, k_i: torch.stack(_gates(k_f, k_i)))
    with pytest.raises(CheckFailed, match="f' has shape"):
        check_min_lstm_gates(lambda k_f, k_i: tuple(x.T for x in _gates(k_f, k_i)))


# ----------------------------------------------------------------------------- SignedMinGRU (notebook 09b)

def signed_min_gru_by_hand(model, x, h0):
    """h_t = (1 - 2 z_t) h_(t-1) + z_t h~_t, one step at a time from the weights (float64)."""
    W, bias = model.linear.weight, model.linear.bias
    H = model.hidden_size
    h, hs = h0, []
    for x_t in x:  # (B, I)
        z = torch.sigmoid(x_t @ W[:H].T + bias[:H])
        h_tilde = x_t @ W[H:].T + bias[H:]
        h = (1 - 2 * z) * h + z * h_tilde
        hs.append(h)
    return torch.stack(hs)


def test_signed_min_gru_hand_case():
    model = SignedMinGRU(1, 1)
    # z = sigmoid(k) with k = 20 x: a one gives z ~ 1 (a ~ -1), a zero z = 1/2 (a = 0); h~ = 2x + 1
    set_weights(model, [[20.0, 0.0], [2.0, 1.0]])
    h = model(torch.tensor([1.0, 0.0]).view(2, 1, 1), torch.tensor([[4.0]]))[0].flatten()
    z1 = torch.sigmoid(torch.tensor(20.0)).item()
    h1 = (1 - 2 * z1) * 4 + z1 * 3
    torch.testing.assert_close(h, torch.tensor([h1, 0.0 * h1 + 0.5 * 1.0]))


@pytest.mark.parametrize("candidate", ["linear", "g"])
def test_signed_min_gru_against_the_loop_reference_float64(candidate):
    torch.manual_seed(0)
    model = SignedMinGRU(3, 5, candidate=candidate, chunk=4).double()
    with torch.no_grad():
        model.linear.weight.mul_(4)  # gates far from 1/2: a over most of (-1, 1)
    x = torch.randn(23, 2, 3, dtype=torch.float64)
    h0 = torch.randn(2, 5, dtype=torch.float64)
    state0 = h0  # the state itself for either candidate
    a, b = model.recurrence(x)
    assert (a < -0.5).any() and (a > 0.5).any() and (a.abs() < 1).all()
    if candidate == "linear":
        torch.testing.assert_close(model(x, h0)[0], signed_min_gru_by_hand(model, x, h0))
    for method in ("loop", "chunked"):
        h, h_T = model(x, h0, method=method)
        torch.testing.assert_close(h, scan_loop_reference(a, b, state0))
        torch.testing.assert_close(h_T, h[-1])


def scan_loop_reference(a, b, h0):
    h, hs = h0, []
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        hs.append(h)
    return torch.stack(hs)


def test_signed_min_gru_gradcheck_through_the_chunked_scan():
    torch.manual_seed(1)
    model = SignedMinGRU(2, 3, chunk=3).double()
    x = torch.randn(8, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def run(x, h0, weight, bias):  # the layer as a function of its input, initial state and weights
        weights = {"linear.weight": weight, "linear.bias": bias}
        return torch.func.functional_call(model, weights, (x, h0), {"method": "chunked"})[0]

    weights = tuple(p.detach().clone().requires_grad_() for p in model.parameters())
    assert torch.autograd.gradcheck(run, (x, h0, *weights))


def test_signed_min_gru_refuses_the_log_scan():
    model = SignedMinGRU(2, 3)
    x = torch.randn(5, 1, 2)
    with pytest.raises(ValueError, match="log-space scan needs log a"):
        model(x, method="log")
    with pytest.raises(ValueError, match="use method='chunked' or method='loop'".replace("use", "Use")):
        model.recurrence(x, log=True)
    assert SignedMinGRU(2, 3).candidate == "linear" and min_rnn_param_count("minGRU", 2, 3) == sum(
        p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- exercise 3: one minGRU step


def _min_gru_step(convention="feng", tanh=False, sigmoid=True, candidate_only=False):
    """A learner's minGRU step, right by default; each keyword makes one plausible mistake."""
    def my_min_gru_step(x, h_prev, W_z, b_z, W_h, b_h):
        a_z, h_tilde = x @ W_z.T + b_z, x @ W_h.T + b_h
        z = torch.sigmoid(a_z) if sigmoid else a_z
        h_tilde = torch.tanh(h_tilde) if tanh else h_tilde
        if candidate_only:
            return h_tilde
        return (1 - z) * h_prev + z * h_tilde if convention == "feng" else z * h_prev + (1 - z) * h_tilde
    return my_min_gru_step


def test_check_min_gru_step_passes_the_step_and_names_each_mistake(capsys):
    check_min_gru_step(_min_gru_step())
    check_min_gru_step(_min_gru_step(), seed=1)
    assert "OK my_min_gru_step" in capsys.readouterr().out
    for options, words in [(dict(convention="04"), "notebook 04's PyTorch convention"),
                           (dict(tanh=True), "squash the candidate with tanh"),
                           (dict(sigmoid=False), "leave out the sigmoid on z"),
                           (dict(candidate_only=True), "return the candidate h~ alone")]:
        with pytest.raises(CheckFailed, match=re.escape(words)):
            check_min_gru_step(_min_gru_step(**options))


def test_check_min_gru_step_refuses_the_course_s_min_gru():
    from course_utils.exercises import min_rnns as exercises

    with pytest.raises(CheckFailed, match="reaches course_utils.min_rnns.MinGRU"):
        check_min_gru_step(lambda *args: exercises._min_gru_step(*args))  # a private route to the reference
