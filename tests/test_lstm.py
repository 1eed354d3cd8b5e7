import re

import numpy as np
import pytest
import torch
from learner import as_learner

from course_utils import CheckFailed
from course_utils.data.adding import BASELINE_MSE, HALF_TASK_MSE, adding_problem, adding_yardsticks
from course_utils.exercises.lstm import (
    check_lstm_backward,
    check_lstm_cell,
    check_lstm_cell_backward,
    check_lstm_gate_values,
)
from course_utils.gru import GRU
from course_utils.lstm import (
    LSTM,
    LSTMCell,
    lstm_backward_numpy,
    lstm_backward_torch,
    lstm_cell_backward_autograd,
    lstm_cell_backward_numpy,
    lstm_cell_cache,
    lstm_cell_numpy,
    lstm_cell_torch,
    lstm_forward_cache,
    lstm_forward_numpy,
    lstm_param_count,
    lstm_weights_from_torch,
)
from course_utils.lstm_backward import LSTMHandwrittenBPTT
from course_utils.shared.gated import gate_slices, gated_param_count, sigmoid, weights_from_torch

CPU = torch.device("cpu")


def reference_lstm(input_size=3, hidden_size=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.LSTM(input_size, hidden_size).double()


def test_gate_slices_follow_pytorch_order():
    s = gate_slices(3)
    assert list(s) == ["i", "f", "g", "o"]
    assert [(v.start, v.stop) for v in s.values()] == [(0, 3), (3, 6), (6, 9), (9, 12)]


def test_param_counts_match_the_lecture_example_and_pytorch():
    assert lstm_param_count(100, 50) == 30_200
    assert lstm_param_count(100, 50, n_biases=2) == 30_400
    assert lstm_param_count(100, 50, n_biases=2) == sum(p.numel() for p in torch.nn.LSTM(100, 50).parameters())
    assert sum(p.numel() for p in LSTMCell(100, 50).parameters()) == 30_200
    assert sum(p.numel() for p in LSTMCell(100, 50, peephole=True).parameters()) == 30_200 + 150
    with pytest.raises(ValueError, match="n_biases"):
        gated_param_count(4, 10, 5, n_biases=3)


def test_sigmoid_is_stable_and_correct():
    a = np.array([-1000.0, -2.0, 0.0, 3.0, 1000.0])
    with np.errstate(over="raise"):
        got = sigmoid(a)
    np.testing.assert_allclose(got, torch.sigmoid(torch.from_numpy(a)).numpy(), rtol=1e-12, atol=0)


def test_numpy_sequence_matches_torch_lstm():
    ref = reference_lstm()
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    h0, c0 = torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        out, (hT, cT) = ref(xs, (h0, c0))
    hs, (h, c) = lstm_forward_numpy(xs.numpy(), h0[0].numpy(), c0[0].numpy(), **lstm_weights_from_torch(ref))
    np.testing.assert_allclose(hs, out.numpy(), atol=1e-12)
    np.testing.assert_allclose(c, cT[0].numpy(), atol=1e-12)


def test_hand_computed_step():
    # H = 1, I = 1, weights zero: every gate is sigmoid(bias), g = tanh(bias).
    W_x, W_h = np.zeros((4, 1)), np.zeros((4, 1))
    b = np.array([0.0, np.log(3.0), 0.5, 0.0])  # i = 0.5, f = 0.75, g = tanh(0.5), o = 0.5
    h, c, gates = lstm_cell_numpy(np.ones((1, 1)), np.zeros((1, 1)), np.full((1, 1), 2.0), W_x, W_h, b)
    assert gates["f"][0, 0] == pytest.approx(0.75)
    assert c[0, 0] == pytest.approx(0.75 * 2.0 + 0.5 * np.tanh(0.5))
    assert h[0, 0] == pytest.approx(0.5 * np.tanh(c[0, 0]))


def test_torch_cell_matches_numpy_and_nn_lstmcell():
    torch.manual_seed(1)
    ref = torch.nn.LSTMCell(3, 4).double()
    x, h, c = torch.randn(5, 3).double(), torch.randn(5, 4).double(), torch.randn(5, 4).double()
    w = lstm_weights_from_torch(ref)
    with torch.no_grad():
        h_ref, c_ref = ref(x, (h, c))
        h_t, c_t, gates_t = lstm_cell_torch(x, h, c, *(torch.from_numpy(w[k]) for k in ("W_x", "W_h", "b")))
    h_n, c_n, gates_n = lstm_cell_numpy(x.numpy(), h.numpy(), c.numpy(), **w)
    torch.testing.assert_close(h_t, h_ref)
    torch.testing.assert_close(c_t, c_ref)
    np.testing.assert_allclose(h_n, h_ref.numpy(), atol=1e-12)
    for k in "ifgo":
        np.testing.assert_allclose(gates_t[k].numpy(), gates_n[k], atol=1e-12)


def test_lstm_module_copies_torch_and_returns_gates():
    ref = reference_lstm(seed=2)
    ours = LSTM.from_torch(ref)
    xs = torch.randn(7, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        out, (hT, cT) = ref(xs)
        out2, (h2, c2), gates = ours(xs, return_gates=True)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(c2, cT)  # (1, B, H), as torch.nn.LSTM
    assert set(gates) == set("ifgo") and gates["f"].shape == (7, 3, 4)
    assert ((gates["i"] > 0) & (gates["i"] < 1)).all()


def test_lstm_module_gradients_match_torch():
    ref = reference_lstm(seed=3)
    ours = LSTM.from_torch(ref)
    xs = torch.randn(5, 2, 3, dtype=torch.float64)
    ref(xs)[0].sum().backward()
    ours(xs)[0].sum().backward()
    torch.testing.assert_close(ours.cell.W_h.grad, ref.weight_hh_l0.grad)
    torch.testing.assert_close(ours.cell.W_x.grad, ref.weight_ih_l0.grad)
    torch.testing.assert_close(ours.cell.b.grad, ref.bias_ih_l0.grad)


def test_hand_written_bptt_passes_gradcheck():
    g = torch.Generator().manual_seed(4)
    T, B, H = 5, 3, 4
    args = [torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
            for shape in [(T, B, 4 * H), (B, H), (B, H), (4 * H, H)]]
    assert torch.autograd.gradcheck(LSTMHandwrittenBPTT.apply, args)


def test_fast_path_equals_autograd_through_the_cell():
    """Values and every gradient (through outputs, h_T and c_T) equal the step-by-step autograd loop."""
    torch.manual_seed(5)
    ours = LSTM(3, 4).double()
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    state = (torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64))
    weights = torch.randn(6, 2, 4, dtype=torch.float64)
    results = []
    for stepwise in (False, True):
        x, h0, c0 = (t.clone().requires_grad_() for t in (xs, *state))
        ours.zero_grad()
        if stepwise:
            out, (hT, cT) = ours._forward_stepwise(x, (h0[0], c0[0]), return_gates=False)
        else:
            out, (hT, cT) = ours(x, (h0, c0))
        ((out * weights).sum() + (hT**2).sum() + (3 * cT).sum()).backward()
        results.append([out, hT, cT, x.grad, h0.grad, c0.grad] + [p.grad.clone() for p in ours.parameters()])
    for fast, slow in zip(*results, strict=True):
        torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


def test_peephole_cell_matches_numpy_and_reduces_to_plain_lstm():
    torch.manual_seed(4)
    cell = LSTMCell(3, 4, peephole=True).double()
    x, h, c = torch.randn(2, 3).double(), torch.randn(2, 4).double(), torch.randn(2, 4).double()
    with torch.no_grad():
        plain_h, plain_c = cell(x, (h, c))  # peepholes start at zero
        w = {k: getattr(cell, k).numpy() for k in ("W_x", "W_h", "b")}
        ref_h, _, _ = lstm_cell_numpy(x.numpy(), h.numpy(), c.numpy(), **w)
        np.testing.assert_allclose(plain_h.numpy(), ref_h, atol=1e-12)
        cell.peephole.normal_()
        peep_h, peep_c = cell(x, (h, c))
    ref_h, ref_c, _ = lstm_cell_numpy(x.numpy(), h.numpy(), c.numpy(), **w, peephole=cell.peephole.detach().numpy())
    np.testing.assert_allclose(peep_h.numpy(), ref_h, atol=1e-12)
    np.testing.assert_allclose(peep_c.numpy(), ref_c, atol=1e-12)
    assert not np.allclose(peep_h.numpy(), plain_h.numpy())
    # o peeks at the new cell state: a hand check of one unit.
    a = x.numpy() @ w["W_x"].T + h.numpy() @ w["W_h"].T + w["b"]
    o0 = sigmoid(a[0, 12] + cell.peephole[2, 0].item() * ref_c[0, 0])
    assert ref_h[0, 0] == pytest.approx(o0 * np.tanh(ref_c[0, 0]))


def test_cell_state_jacobian_is_diag_forget_gate():
    torch.manual_seed(5)
    cell = LSTMCell(2, 3).double()
    x, h, c = torch.randn(1, 2).double(), torch.randn(1, 3).double(), torch.randn(1, 3).double()
    jac = torch.autograd.functional.jacobian(lambda cc: cell(x, (h, cc))[1], c)[0, :, 0, :]
    torch.testing.assert_close(jac, torch.diag(cell.step(x, (h, c))[2]["f"][0]).detach())


def test_two_biases_are_redundant_in_lstm():
    ref = reference_lstm(seed=6)
    xs = torch.randn(4, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        before = ref(xs)[0]
        d = torch.randn(16, dtype=torch.float64)
        ref.bias_ih_l0 += d
        ref.bias_hh_l0 -= d
        torch.testing.assert_close(ref(xs)[0], before)


def test_weights_from_torch_rejects_unsupported_layers():
    with pytest.raises(ValueError, match="one-layer"):
        weights_from_torch(torch.nn.LSTM(2, 3, num_layers=2))
    with pytest.raises(ValueError, match="stacked blocks"):
        weights_from_torch(torch.nn.GRU(2, 3), n_blocks=4)
    w = lstm_weights_from_torch(torch.nn.LSTM(2, 3, bias=False))
    assert not w["b"].any()


@pytest.mark.parametrize("layer", [torch.nn.LSTM(2, 3, batch_first=True), torch.nn.GRU(2, 3, batch_first=True)])
def test_from_torch_rejects_batch_first_layers_as_rnn_does(layer):
    """Their outputs are (B, T, H): copied silently, the comparison would differ by ~0.1 with no reason given."""
    course_layer = LSTM if isinstance(layer, torch.nn.LSTM) else GRU
    with pytest.raises(ValueError, match="batch_first=True"):
        course_layer.from_torch(layer)
    with pytest.raises(ValueError, match="batch_first=True"):
        weights_from_torch(layer)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (dict(x=np.zeros((2, 3, 1))), "x"),
        (dict(h_prev=np.zeros((3, 4))), "h_prev"),
        (dict(c_prev=np.zeros((2, 5))), "c_prev"),
        (dict(W_x=np.zeros((16, 2))), "W_x"),
        (dict(W_h=np.zeros((12, 4))), "W_h"),
        (dict(b=np.zeros(15)), "b"),
        (dict(peephole=np.zeros((4, 4))), "peephole"),
    ],
)
def test_shape_errors_name_the_argument(args, name):
    good = dict(x=np.zeros((2, 3)), h_prev=np.zeros((2, 4)), c_prev=np.zeros((2, 4)),
                W_x=np.zeros((16, 3)), W_h=np.zeros((16, 4)), b=np.zeros(16))
    with pytest.raises(ValueError, match=rf"^{name} has shape .*expected"):
        lstm_cell_numpy(**{**good, **args})
    torch_args = {k: torch.from_numpy(v) for k, v in {**good, **args}.items()}
    with pytest.raises(ValueError, match=rf"^{name} has shape"):
        lstm_cell_torch(**torch_args)


def test_module_shape_errors():
    with pytest.raises(ValueError, match=r"xs has shape \(5, 2\), expected \(T, B, 3\)\."):
        LSTM(3, 4)(torch.zeros(5, 2))
    with pytest.raises(ValueError, match="x has shape"):
        LSTMCell(3, 4)(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="input_size"):
        LSTMCell(0, 4)


def test_fast_path_matches_torch_lstm_in_float32():
    """At the benchmark's scale (float32, 60 steps), outputs and gradients agree with torch.nn.LSTM."""
    torch.manual_seed(6)
    ref = torch.nn.LSTM(16, 32)
    ours = LSTM.from_torch(ref)
    xs = torch.randn(60, 8, 16)
    ref_out = ref(xs)[0]
    our_out = ours(xs)[0]
    torch.testing.assert_close(our_out, ref_out, rtol=1e-5, atol=1e-6)
    our_out.square().sum().backward()
    ref_out.square().sum().backward()
    torch.testing.assert_close(ours.cell.W_h.grad, ref.weight_hh_l0.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.cell.W_x.grad, ref.weight_ih_l0.grad, rtol=1e-4, atol=1e-5)


def _sig(a):
    return 1 / (1 + np.exp(-a))


def _lstm_step(x, h_prev, c_prev, W_x, W_h, b, order="ifgo", h_of_c=np.tanh, g_fn=np.tanh, forget="c",
               swap=False, bias=True, h_uses_old_c=False):
    """A learner's LSTM step, right by default; each keyword makes one plausible mistake."""
    H = h_prev.shape[1]
    a = x @ W_x.T + h_prev @ W_h.T + (b if bias else 0)
    block = {name: a[:, k * H:(k + 1) * H] for k, name in enumerate(order)}
    i, f, g, o = _sig(block["i"]), _sig(block["f"]), g_fn(block["g"]), _sig(block["o"])
    c = f * (c_prev if forget == "c" else h_prev) + i * g
    h = o * h_of_c(c_prev if h_uses_old_c else c)
    return (c, h) if swap else (h, c)


LSTM_MISTAKES = {  # keyword -> words the feedback must contain
    "order": ("ifog", "rows as i, f, o, g"),
    "swap": (True, "return (c, h)"),
    "h_of_c": (lambda c: c, "h = o * c"),
    "g_fn": (_sig, "sigmoid instead of tanh"),
    "forget": ("h", "forget gate with h_prev"),
    "bias": (False, "leave out the bias"),
    "h_uses_old_c": (True, "old cell state"),
}


def test_check_lstm_cell_passes_a_right_step_and_the_reference(capsys):
    check_lstm_cell(_lstm_step)
    check_lstm_cell(_lstm_step, seed=3)
    with pytest.raises(CheckFailed, match="calls lstm_cell_numpy, an existing implementation"):
        check_lstm_cell(lambda *args: lstm_cell_numpy(*args)[:2])
    assert "OK h (the new hidden state)" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", LSTM_MISTAKES)
def test_check_lstm_cell_names_each_mistake(mistake):
    value, words = LSTM_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_lstm_cell(lambda *args: _lstm_step(*args, **{mistake: value}))


def test_check_lstm_cell_rejects_a_wrong_return_shape():
    with pytest.raises(CheckFailed, match=r"return two arrays, \(h, c\)"):
        check_lstm_cell(lambda *args: _lstm_step(*args) + (None,))
    with pytest.raises(CheckFailed, match="tuple"):
        check_lstm_cell(lambda *args: _lstm_step(*args)[0])


# ----------------------------------------------------------------------------- the backward pass of one step

def _step_case(seed=0, B=2, n_in=3, H=4):
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
            rng.normal(size=(4 * H, n_in)), rng.normal(size=(4 * H, H)), rng.normal(size=4 * H))
    return args, rng.normal(size=(B, H)), rng.normal(size=(B, H))


def test_backward_by_hand_equals_autograd_and_finite_differences():
    args, dh, dc = _step_case()
    _, _, cache = lstm_cell_cache(*args)
    by_hand = lstm_cell_backward_numpy(dh, dc, cache)
    for got, want in zip(by_hand, lstm_cell_backward_autograd(dh, dc, *args), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # one entry of dW_h by central differences of L = sum(dh * h) + sum(dc * c)
    def loss(W_h):
        h, c, _ = lstm_cell_numpy(args[0], args[1], args[2], args[3], W_h, args[5])
        return np.sum(dh * h) + np.sum(dc * c)
    eps, W_h = 1e-6, args[4]
    bump = np.zeros_like(W_h)
    bump[9, 2] = eps  # row 9: block g (rows 8..11) of H = 4
    assert by_hand[4][9, 2] == pytest.approx((loss(W_h + bump) - loss(W_h - bump)) / (2 * eps), rel=1e-6)


def test_one_step_of_the_handwritten_bptt_is_the_derivation():
    """LSTMHandwrittenBPTT with T = 1 returns the derivation's dA (its x_proj gradient), dh_prev, dc_prev and dW_h."""
    (x, h_prev, c_prev, W_x, W_h, b), dh, dc = _step_case(1)
    _, _, cache = lstm_cell_cache(x, h_prev, c_prev, W_x, W_h, b)
    dx, dh_prev, dc_prev, dW_x, dW_h, db = lstm_cell_backward_numpy(dh, dc, cache)
    x_proj = torch.from_numpy(x @ W_x.T + b)[None].requires_grad_()  # (1, B, 4H)
    h0, c0, Wh = (torch.from_numpy(a).requires_grad_() for a in (h_prev, c_prev, W_h))
    hs, hT, cT = LSTMHandwrittenBPTT.apply(x_proj, h0, c0, Wh)
    torch.autograd.backward((hs, cT), (torch.from_numpy(dh)[None], torch.from_numpy(dc)))
    np.testing.assert_allclose(x_proj.grad[0].sum(0).numpy(), db, atol=1e-12)
    np.testing.assert_allclose((x_proj.grad[0].numpy() @ W_x), dx, atol=1e-12)
    for got, want in ((h0.grad, dh_prev), (c0.grad, dc_prev), (Wh.grad, dW_h)):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)


def _lstm_backward_step(dh, dc, cache, through_h=True, forget=True, g_slope="tanh", order="ifgo", dh_prev="W_h",
                        transpose_dW=False, o_slope="sigmoid"):
    """A learner's backward step, right by default; each keyword makes one plausible mistake."""
    i, f, g, o, c = (cache[k] for k in "ifgoc")
    tc = np.tanh(c)
    dc_total = dc + dh * o * (1 - tc**2) if through_h else dc
    da = {"i": dc_total * g * i * (1 - i), "f": dc_total * cache["c_prev"] * f * (1 - f),
          "g": dc_total * i * ((1 - g**2) if g_slope == "tanh" else g * (1 - g)), "o": dh * tc * (o * (1 - o) if o_slope == "sigmoid" else 1 - o**2)}  # noqa: E501
    dA = np.concatenate([da[k] for k in order], axis=1)
    d_h_prev = {"W_h": dA @ cache["W_h"], "none": dh, "W_x": dA @ cache["W_x"]}[dh_prev]
    dW_h = cache["h_prev"].T @ dA if transpose_dW else dA.T @ cache["h_prev"]
    return (dA @ cache["W_x"], d_h_prev, dc_total * f if forget else dc_total, dA.T @ cache["x"], dW_h, dA.sum(0))


LSTM_BACKWARD_MISTAKES = {  # keyword -> words the feedback must contain
    "through_h": (False, "reaches the loss through h_t"),
    "forget": (False, "forget gate out of dc_prev"),
    "g_slope": ("sigmoid", "sigmoid's derivative"),
    "order": ("ifog", "stack the gate gradients as i, f, o, g"),
    "dh_prev": ("none", "pass dh straight through"),
    "o_slope": ("tanh", "use tanh's derivative 1 - o^2 for the output gate o"),
}


def test_check_lstm_cell_backward_passes_the_derivation(capsys):
    check_lstm_cell_backward(_lstm_backward_step)
    check_lstm_cell_backward(as_learner(lstm_cell_backward_numpy), seed=2)
    assert "equal autograd's" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", LSTM_BACKWARD_MISTAKES)
def test_check_lstm_cell_backward_names_each_mistake(mistake):
    value, words = LSTM_BACKWARD_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_lstm_cell_backward(lambda *args: _lstm_backward_step(*args, **{mistake: value}))


def test_check_lstm_cell_backward_names_shapes_and_gate_blocks():
    with pytest.raises(CheckFailed, match=r"dh_prev has shape \(B, I\).*dA @ W_h"):
        check_lstm_cell_backward(lambda *args: _lstm_backward_step(*args, dh_prev="W_x"))
    with pytest.raises(CheckFailed, match="transposed"):
        check_lstm_cell_backward(lambda *args: _lstm_backward_step(*args, transpose_dW=True))
    with pytest.raises(CheckFailed, match="return six arrays"):
        check_lstm_cell_backward(lambda *args: _lstm_backward_step(*args)[:5])

    def o_block_doubled(*args):  # an unnamed mistake: the check says which gate block is off
        dx, dh_prev, dc_prev, dW_x, dW_h, db = _lstm_backward_step(*args)
        db = db.copy()
        db[15:] *= 2
        return dx, dh_prev, dc_prev, dW_x, dW_h, db
    with pytest.raises(CheckFailed, match="Parts that are off: o. Correct: i, f, g"):
        check_lstm_cell_backward(o_block_doubled)


# ----------------------------------------------------------------------------- what the gates do

LSTM_GATE_MISTAKES = {  # goal -> (wrong (i, f, o), words the feedback must contain)
    "forget and hold": ({"hold": (0.0, 0.0, 0.0)}, "check gate f. (f scales the old memory"),
    "write when holding": ({"hold": (1.0, 1.0, 0.0)}, "check gate i. (i scales what is written"),
    "hide when replacing": ({"replace": (1.0, 0.0, 0.0)}, "check gate o. (o scales what is shown"),
}


LSTM_GATE_GOALS = {"hold": (0.0, 1.0, 0.0), "replace": (1.0, 0.0, 1.0), "reveal": (0.0, 1.0, 1.0)}  # the answers


def test_check_lstm_gate_values_passes_the_answer_and_near_misses(capsys):
    check_lstm_gate_values(lambda goal: LSTM_GATE_GOALS[goal])
    check_lstm_gate_values(lambda goal: tuple(abs(v - 0.001) for v in LSTM_GATE_GOALS[goal]))  # a trained gate
    assert "OK h_t for 'reveal'" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", LSTM_GATE_MISTAKES)
def test_check_lstm_gate_values_names_the_gate(mistake):
    wrong, words = LSTM_GATE_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_lstm_gate_values(lambda goal: wrong.get(goal, LSTM_GATE_GOALS[goal]))
    with pytest.raises(CheckFailed, match=r"three numbers \(i, f, o\) in \[0, 1\]"):
        check_lstm_gate_values(lambda goal: (0.0, 2.0, 0.0))


@pytest.mark.parametrize("return_gates", [False, True])
def test_lstm_module_takes_and_returns_states_like_torch(return_gates):
    """(h_0, c_0) and (h_T, c_T) are (1, B, H), as for torch.nn.LSTM and the course's RNN; (B, H) is refused by name."""
    ref = reference_lstm(seed=9)
    ours = LSTM.from_torch(ref)
    xs = torch.randn(4, 2, 3, dtype=torch.float64)
    state = (torch.randn(1, 2, 4, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64))
    with torch.no_grad():
        out, (hT, cT) = ref(xs, state)
        got = ours(xs, state, return_gates=return_gates)
    torch.testing.assert_close(got[0], out)
    torch.testing.assert_close(got[1][0], hT)
    torch.testing.assert_close(got[1][1], cT)
    with pytest.raises(ValueError, match=r"h_0 has shape \(2, 4\), expected \(1, 2, 4\)"):
        ours(xs, (state[0][0], state[1][0]), return_gates=return_gates)


# ------------------------------------------------------------------------ the backward over a sequence (exercise 5)

def _sequence(seed=0, T=6, B=3, n_in=4, H=5):
    rng = np.random.default_rng(seed)
    args = (rng.normal(size=(T, B, n_in)), rng.normal(size=(B, H)), rng.normal(size=(B, H)),
            0.5 * rng.normal(size=(4 * H, n_in)), 0.5 * rng.normal(size=(4 * H, H)), 0.5 * rng.normal(size=4 * H))
    return args, rng.normal(size=(T, B, H))


def test_sequence_backward_equals_torch_lstm_the_fast_path_and_finite_differences():
    (xs, h0, c0, W_x, W_h, b), dhs = _sequence()
    hs, caches = lstm_forward_cache(xs, h0, c0, W_x, W_h, b)
    np.testing.assert_allclose(hs, lstm_forward_numpy(xs, h0, c0, W_x, W_h, b)[0], atol=0)
    ours, theirs = lstm_backward_numpy(dhs, caches), lstm_backward_torch(dhs, xs, h0, c0, W_x, W_h, b)
    for got, want in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # the course's fast LSTM (LSTMHandwrittenBPTT) gives the same dW_h and dc0
    t = {k: torch.tensor(v, requires_grad=True) for k, v in dict(xs=xs, h0=h0, c0=c0, W_x=W_x, W_h=W_h, b=b).items()}
    hs_fast, _, _ = LSTMHandwrittenBPTT.apply(t["xs"] @ t["W_x"].T + t["b"], t["h0"], t["c0"], t["W_h"])
    hs_fast.backward(torch.from_numpy(dhs))
    np.testing.assert_allclose(t["W_h"].grad.numpy(), ours[4], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t["c0"].grad.numpy(), ours[2], rtol=1e-10, atol=1e-12)
    # finite differences on a few entries of W_h and c0
    for array, grad in ((W_h, ours[4]), (c0, ours[2])):
        for index in [(0, 0), (1, 2), (-1, -1)]:
            old = array[index]
            array[index] = old + 1e-6
            up = np.sum(dhs * lstm_forward_numpy(xs, h0, c0, W_x, W_h, b)[0])
            array[index] = old - 1e-6
            down = np.sum(dhs * lstm_forward_numpy(xs, h0, c0, W_x, W_h, b)[0])
            array[index] = old
            assert abs((up - down) / 2e-6 - grad[index]) < 1e-7


def _learner_sequence_backward(carry_dc=True, dh="add", forwards=False, sum_over_time=True):
    """A learner's loop over time, composed from the test's own step (right by default; a keyword makes one mistake)."""
    def my_lstm_backward(dhs, caches):
        T = len(caches)
        dh_next, dc_next, dxs, totals = np.zeros_like(dhs[0]), np.zeros_like(dhs[0]), [None] * T, None
        for t in (range(T) if forwards else range(T - 1, -1, -1)):
            upstream = {"add": dhs[t] + dh_next, "own": dhs[t], "carried": dhs[t] if t == T - 1 else dh_next}[dh]
            dc = dc_next if carry_dc else 0 * dc_next
            dxs[t], dh_next, dc_next, *p = _lstm_backward_step(upstream, dc, caches[t])
            totals = p if totals is None or not sum_over_time else [a + q for a, q in zip(totals, p, strict=True)]
        return np.stack(dxs), dh_next, dc_next, *totals
    return my_lstm_backward


SEQUENCE_MISTAKES = {  # keywords -> words the feedback must contain
    "no_dc_carry": ({"carry_dc": False}, "drop the dc carry"),
    "dh_not_added": ({"dh": "carried"}, "without adding the step's own upstream dhs[t]"),
    "dh_not_carried": ({"dh": "own"}, "use dhs[t] alone as step t's dh"),
    "forwards": ({"forwards": True}, "iterate forwards in time"),
    "not_summed": ({"sum_over_time": False}, "keep one step's parameter gradients instead of summing them"),
}


def _my_cell_forward(x, h_prev, c_prev, W_x, W_h, b):
    H = h_prev.shape[1]
    a = x @ W_x.T + h_prev @ W_h.T + b
    i, f, o = (1 / (1 + np.exp(-a[:, k * H:(k + 1) * H])) for k in (0, 1, 3))
    c = f * c_prev + i * np.tanh(a[:, 2 * H:3 * H])
    return o * np.tanh(c), c


def test_check_lstm_backward_passes_a_right_loop_and_refuses_the_reference(capsys):
    check_lstm_backward(_learner_sequence_backward())
    check_lstm_backward(_learner_sequence_backward(), seed=1, cell_forward=_my_cell_forward)
    out = capsys.readouterr().out
    assert "equal torch.nn.LSTM's gradients" in out and "equals the finite differences of your own forward" in out
    errors = [float(e) for e in re.findall(r"finite differences of your forward: ([0-9.e+-]+)", out)]
    assert len(errors) == 6 and max(errors) < 1e-7
    with pytest.raises(CheckFailed, match="an existing implementation"):
        check_lstm_backward(as_learner(lstm_backward_numpy))
    with pytest.raises(CheckFailed, match="an existing implementation"):
        check_lstm_backward(_learner_sequence_backward(), cell_forward=lambda *a: lstm_cell_numpy(*a)[:2])


@pytest.mark.parametrize("mistake", SEQUENCE_MISTAKES)
def test_check_lstm_backward_names_each_mistake(mistake):
    keywords, words = SEQUENCE_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_lstm_backward(_learner_sequence_backward(**keywords))


def test_check_lstm_backward_catches_a_wrong_forward_by_finite_differences():
    def forward_without_bias(x, h_prev, c_prev, W_x, W_h, b):
        return _my_cell_forward(x, h_prev, c_prev, W_x, W_h, 0 * b)
    with pytest.raises(CheckFailed, match="vs torch.nn.LSTM"):
        check_lstm_backward(_learner_sequence_backward(), cell_forward=forward_without_bias)


def test_adding_yardsticks_score_one_sixth_and_one_twelfth():
    x, y = adding_problem(20000, 40, seed=3)
    mse = {name: torch.mean((pred - y) ** 2).item() for name, pred in adding_yardsticks(x).items()}
    assert BASELINE_MSE == pytest.approx(1 / 6) and HALF_TASK_MSE == pytest.approx(1 / 12)
    assert mse["constant 1"] == pytest.approx(1 / 6, rel=0.03)
    assert mse["first marker only"] == pytest.approx(1 / 12, rel=0.03)
    assert mse["second marker only"] == pytest.approx(1 / 12, rel=0.03)
    # the two halves together are the target itself
    both = adding_yardsticks(x)["first marker only"] + adding_yardsticks(x)["second marker only"] - 1.0
    torch.testing.assert_close(both, y)
