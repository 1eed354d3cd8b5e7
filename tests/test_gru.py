import re

import numpy as np
import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.gru import check_gru_cell, check_gru_forward, check_gru_gate_values
from course_utils.gru import (
    GRU,
    GRUCell,
    flip_update_gate,
    gru_cell_numpy,
    gru_cell_torch,
    gru_forward_numpy,
    gru_param_count,
    gru_state_jacobian,
    gru_weights_from_torch,
    set_update_bias,
)
from course_utils.long_range import SequenceToOne, gradient_by_lag
from course_utils.shared.gated import sigmoid


def reference_gru(input_size=3, hidden_size=4, seed=0):
    torch.manual_seed(seed)
    return torch.nn.GRU(input_size, hidden_size).double()


def random_step(seed=0, B=2, n_in=3, H=4):
    rng = np.random.default_rng(seed)
    return dict(x=rng.normal(size=(B, n_in)), h_prev=rng.normal(size=(B, H)), W_x=rng.normal(size=(3 * H, n_in)),
                W_h=rng.normal(size=(3 * H, H)), b_x=rng.normal(size=3 * H), b_hh=rng.normal(size=3 * H))


def test_param_counts():
    assert gru_param_count(100, 50) == 22_650
    assert gru_param_count(100, 50, n_biases=2) == 22_800
    assert gru_param_count(100, 50, n_biases=2) == sum(p.numel() for p in torch.nn.GRU(100, 50).parameters())
    assert sum(p.numel() for p in GRUCell(100, 50).parameters()) == 22_800


def test_numpy_sequence_matches_torch_gru():
    ref = reference_gru()
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        out, hT = ref(xs, h0)
    w = gru_weights_from_torch(ref)
    h = h0[0].numpy()
    for t in range(6):
        h, _ = gru_cell_numpy(xs[t].numpy(), h, **w)
        np.testing.assert_allclose(h, out[t].numpy(), atol=1e-12)
    np.testing.assert_allclose(h, hT[0].numpy(), atol=1e-12)


def test_hand_computed_step():
    # H = I = 1, zero weights: r = sigmoid(b_xr + b_hr), z = sigmoid(b_xz + b_hz), n = tanh(b_xn + r * b_hn).
    zeros = np.zeros((3, 1))
    b_x, b_hh = np.array([0.0, 0.0, 0.2]), np.array([0.0, np.log(3.0), 0.4])  # r = 0.5, z = 0.75
    h, gates = gru_cell_numpy(np.ones((1, 1)), np.full((1, 1), 2.0), zeros, zeros, b_x, b_hh)
    n = np.tanh(0.2 + 0.5 * 0.4)
    assert gates["z"][0, 0] == pytest.approx(0.75)
    assert h[0, 0] == pytest.approx(0.25 * n + 0.75 * 2.0)
    h_before, _ = gru_cell_numpy(np.ones((1, 1)), np.full((1, 1), 2.0), zeros, zeros, b_x, b_hh, reset_after=False)
    assert h_before[0, 0] == pytest.approx(0.25 * np.tanh(0.2 + 0.4) + 0.75 * 2.0)  # b_hn outside r
    h_cand, _ = gru_cell_numpy(np.ones((1, 1)), np.full((1, 1), 2.0), zeros, zeros, b_x, b_hh, z_weights="candidate")
    assert h_cand[0, 0] == pytest.approx(0.25 * 2.0 + 0.75 * n)


def test_reset_before_matches_cho_formula():
    step = random_step(1)
    h, gates = gru_cell_numpy(**step, reset_after=False)
    H = 4
    W_xn, W_hn = step["W_x"][2 * H:], step["W_h"][2 * H:]
    n = np.tanh(step["x"] @ W_xn.T + step["b_x"][2 * H:]
                + (gates["r"] * step["h_prev"]) @ W_hn.T + step["b_hh"][2 * H:])
    np.testing.assert_allclose(gates["n"], n, atol=1e-12)
    assert not np.allclose(h, gru_cell_numpy(**step)[0])


def test_flipped_update_gate_is_the_same_model():
    step = random_step(2)
    h, gates = gru_cell_numpy(**step)
    W_x, W_h, b_x, b_hh = flip_update_gate(step["W_x"], step["W_h"], step["b_x"], step["b_hh"])
    h2, gates2 = gru_cell_numpy(step["x"], step["h_prev"], W_x, W_h, b_x, b_hh, z_weights="candidate")
    np.testing.assert_allclose(h2, h, atol=1e-12)
    np.testing.assert_allclose(gates2["z"], 1 - gates["z"], atol=1e-12)
    np.testing.assert_allclose(gates2["r"], gates["r"])
    assert np.array_equal(step["W_x"], random_step(2)["W_x"])  # the inputs were not modified
    tensors = flip_update_gate(*(torch.from_numpy(step[k]) for k in ("W_x", "W_h", "b_x", "b_hh")))
    np.testing.assert_array_equal(tensors[0].numpy(), W_x)


def test_torch_cell_matches_numpy_in_every_convention():
    step = random_step(3)
    for z_weights in ("h_prev", "candidate"):
        for reset_after in (True, False):
            h_n, g_n = gru_cell_numpy(**step, z_weights=z_weights, reset_after=reset_after)
            h_t, g_t = gru_cell_torch(**{k: torch.from_numpy(v) for k, v in step.items()},
                                      z_weights=z_weights, reset_after=reset_after)
            np.testing.assert_allclose(h_t.numpy(), h_n, atol=1e-12)
            np.testing.assert_allclose(g_t["r"].numpy(), sigmoid(
                step["x"] @ step["W_x"][:4].T + step["b_x"][:4]
                + step["h_prev"] @ step["W_h"][:4].T + step["b_hh"][:4]))


def test_gru_module_copies_torch_with_gradients():
    ref = reference_gru(seed=4)
    ours = GRU.from_torch(ref)
    xs = torch.randn(5, 3, 3, dtype=torch.float64)
    out, hT = ref(xs)
    out2, h2, gates = ours(xs, return_gates=True)
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(h2, hT)  # (1, B, H), as torch.nn.GRU
    assert gates["n"].shape == (5, 3, 4)
    out.sum().backward()
    out2.sum().backward()
    torch.testing.assert_close(ours.cell.W_h.grad, ref.weight_hh_l0.grad)
    torch.testing.assert_close(ours.cell.b_hh.grad, ref.bias_hh_l0.grad)



@pytest.mark.parametrize("z_weights", ["h_prev", "candidate"])
def test_fast_path_equals_the_step_by_step_loop(z_weights):
    """Without gates, GRU.forward takes the one-matmul path: same values and gradients as GRUCell.step."""
    torch.manual_seed(7)
    ours = GRU(3, 4, z_weights=z_weights).double()
    xs = torch.randn(6, 2, 3, dtype=torch.float64)
    h0 = torch.randn(1, 2, 4, dtype=torch.float64)
    results = []
    for stepwise in (False, True):
        ours.zero_grad()
        out, hT = ours._forward_stepwise(xs, h0[0], return_gates=False) if stepwise else ours(xs, h0)
        (out.square().sum() + hT.sum()).backward()
        results.append([out, hT] + [p.grad.clone() for p in ours.parameters()])
    for fast, slow in zip(*results, strict=True):
        torch.testing.assert_close(fast, slow, rtol=1e-12, atol=1e-12)


def test_gru_cell_matches_nn_grucell():
    torch.manual_seed(5)
    ref = torch.nn.GRUCell(3, 4).double()
    ours = GRUCell(3, 4).double()
    with torch.no_grad():
        ours.W_x.copy_(ref.weight_ih)
        ours.W_h.copy_(ref.weight_hh)
        ours.b_x.copy_(ref.bias_ih)
        ours.b_hh.copy_(ref.bias_hh)
    x = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x))  # default state: zeros
    np.testing.assert_allclose(gru_weights_from_torch(ref)["b_hh"], ref.bias_hh.detach().numpy())


@pytest.mark.parametrize(
    ("override", "name"),
    [
        (dict(x=np.zeros(3)), "x"),
        (dict(h_prev=np.zeros((2, 5))), "h_prev"),
        (dict(W_x=np.zeros((12, 2))), "W_x"),
        (dict(W_h=np.zeros((16, 4))), "W_h"),
        (dict(b_x=np.zeros(11)), "b_x"),
        (dict(b_hh=np.zeros((12, 1))), "b_hh"),
    ],
)
def test_shape_errors_name_the_argument(override, name):
    step = {**random_step(), **override}
    with pytest.raises(ValueError, match=rf"^{name} has shape .*expected"):
        gru_cell_numpy(**step)
    with pytest.raises(ValueError, match=rf"^{name} has shape"):
        gru_cell_torch(**{k: torch.from_numpy(np.asarray(v)) for k, v in step.items()})


def test_option_and_module_errors():
    with pytest.raises(ValueError, match="z_weights"):
        gru_cell_numpy(**random_step(), z_weights="old")
    with pytest.raises(ValueError, match="reset_after"):
        GRUCell(3, 4, reset_after="yes")
    with pytest.raises(ValueError, match=r"xs has shape \(4, 3\)"):
        GRU(3, 4)(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="input_size"):
        GRUCell(3, 0)
    with pytest.raises(ValueError, match="stacked blocks"):
        gru_weights_from_torch(torch.nn.LSTM(3, 4))


def _sig(a):
    return 1 / (1 + np.exp(-a))


def _gru_step(x, h_prev, W_x, W_h, b_x, b_hh, order="rzn", z_on="h_prev", reset="after", b_hn_inside=True,
              n_fn=np.tanh, return_n=False):
    """A learner's GRU step, right by default; each keyword makes one plausible mistake."""
    H = h_prev.shape[1]
    rows = {name: slice(k * H, (k + 1) * H) for k, name in enumerate(order)}
    r = _sig(x @ W_x[rows["r"]].T + b_x[rows["r"]] + h_prev @ W_h[rows["r"]].T + b_hh[rows["r"]])
    z = _sig(x @ W_x[rows["z"]].T + b_x[rows["z"]] + h_prev @ W_h[rows["z"]].T + b_hh[rows["z"]])
    W_hn, b_hn, a_xn = W_h[rows["n"]], b_hh[rows["n"]], x @ W_x[rows["n"]].T + b_x[rows["n"]]
    if reset == "before":
        n = n_fn(a_xn + (r * h_prev) @ W_hn.T + b_hn)
    elif b_hn_inside:
        n = n_fn(a_xn + r * (h_prev @ W_hn.T + b_hn))
    else:
        n = n_fn(a_xn + r * (h_prev @ W_hn.T) + b_hn)
    if return_n:
        return n
    return (1 - z) * n + z * h_prev if z_on == "h_prev" else z * n + (1 - z) * h_prev


GRU_MISTAKES = {  # keyword -> words the feedback must contain
    "order": ("zrn", "rows as z, r, n"),
    "z_on": ("n", "the other convention"),
    "reset": ("before", "apply r to h_prev before the recurrent matmul"),
    "b_hn_inside": (False, "leave b_hn outside the reset gate"),
    "n_fn": (lambda a: a, "tanh of the candidate"),
    "return_n": (True, "candidate n instead of the new state"),
}


def test_check_gru_cell_passes_a_right_step_and_the_reference(capsys):
    check_gru_cell(_gru_step)
    check_gru_cell(_gru_step, seed=3)
    with pytest.raises(CheckFailed, match="calls gru_cell_numpy, an existing implementation"):
        check_gru_cell(lambda *args: gru_cell_numpy(*args)[0])
    assert "OK h (the new hidden state)" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", GRU_MISTAKES)
def test_check_gru_cell_names_each_mistake(mistake):
    value, words = GRU_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_gru_cell(lambda *args: _gru_step(*args, **{mistake: value}))


def test_check_gru_cell_names_the_papers_gru_and_a_tuple():
    with pytest.raises(CheckFailed, match="original paper both ways"):
        check_gru_cell(lambda *args: _gru_step(*args, z_on="n", reset="before"))
    with pytest.raises(CheckFailed, match="return h alone"):
        check_gru_cell(lambda *args: (_gru_step(*args), None))


# ----------------------------------------------------------------------------- what the gates do

def _gru_gates_answer(goal):
    return {"copy": (0.3, 1.0), "ignore": (0.0, 0.0), "rnn": (1.0, 0.0)}[goal]


GRU_GATE_MISTAKES = {  # the learner's (r, z) for one goal -> words the feedback must contain
    "the other convention for copy": ({"copy": (1.0, 0.0)}, "z = 1 keeps h_prev"),
    "reset open when ignoring": ({"ignore": (1.0, 0.0)}, "check gate r. (r scales the recurrent part"),
    "reset shut for a plain RNN step": ({"rnn": (0.0, 0.0)}, "r = 0 shuts h_prev out of n"),
}


def test_check_gru_gate_values_passes_any_r_when_copying(capsys):
    check_gru_gate_values(_gru_gates_answer)
    check_gru_gate_values(lambda goal: (0.9, 0.999) if goal == "copy" else _gru_gates_answer(goal))
    assert "OK h_t for 'rnn'" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", GRU_GATE_MISTAKES)
def test_check_gru_gate_values_names_the_gate(mistake):
    wrong, words = GRU_GATE_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_gru_gate_values(lambda goal: wrong.get(goal, _gru_gates_answer(goal)))
    with pytest.raises(CheckFailed, match=r"two numbers \(r, z\)"):
        check_gru_gate_values(lambda goal: (0.0, 1.0, 0.0))


# ----------------------------------------------------------------------------- a sequence

def test_gru_forward_numpy_matches_torch_gru():
    ref = reference_gru(seed=8)
    xs, h0 = torch.randn(5, 2, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        out, hT = ref(xs, h0)
    hs, h = gru_forward_numpy(xs.numpy(), h0[0].numpy(), **gru_weights_from_torch(ref))
    np.testing.assert_allclose(hs, out.numpy(), atol=1e-12)
    np.testing.assert_allclose(h, hT[0].numpy(), atol=1e-12)


def _gru_loop(xs, h0, W_x, W_h, b_x, b_hh, carry=True, store="after", last="h", **step_mistake):
    """A learner's loop over time, right by default; each keyword makes one plausible mistake."""
    h, hs = h0, []
    for x in xs:
        new = _gru_step(x, h if carry else h0, W_x, W_h, b_x, b_hh, **step_mistake)
        hs.append(new if store == "after" else h)
        h = new
    return np.stack(hs), {"h": h, "first": hs[0], "h0": h0}[last]


GRU_FORWARD_MISTAKES = {  # keyword -> words the feedback must contain
    "carry": (False, "start every step from h0"),
    "store": ("before", "input state (h_0 .. h_{T-1})"),
    "last": ("first", "first step's state as h_T"),
    "z_on": ("n", "the other convention"),
    "reset": ("before", "apply r to h_prev before the recurrent matmul"),
}


def test_check_gru_forward_passes_a_right_loop(capsys):
    check_gru_forward(_gru_loop)
    check_gru_forward(_gru_loop, seed=1)
    assert "OK h_T (the last state)" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", GRU_FORWARD_MISTAKES)
def test_check_gru_forward_names_each_mistake(mistake):
    value, words = GRU_FORWARD_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_gru_forward(lambda *args: _gru_loop(*args, **{mistake: value}))


def test_check_gru_forward_names_shapes():
    with pytest.raises(CheckFailed, match="transposed"):
        check_gru_forward(lambda *args: (_gru_loop(*args)[0].transpose(1, 0, 2), _gru_loop(*args)[1]))
    with pytest.raises(CheckFailed, match=r"return two things, \(hs, h_T\)"):
        check_gru_forward(lambda *args: _gru_loop(*args)[:1])


@pytest.mark.parametrize("return_gates", [False, True])
def test_gru_module_takes_and_returns_states_like_torch(return_gates):
    """h_0 and h_T are (1, B, H), as for torch.nn.GRU and the course's RNN; a (B, H) state is refused by name."""
    ref = reference_gru(seed=9)
    ours = GRU.from_torch(ref)
    xs, h0 = torch.randn(4, 2, 3, dtype=torch.float64), torch.randn(1, 2, 4, dtype=torch.float64)
    with torch.no_grad():
        out, hT = ref(xs, h0)
        got = ours(xs, h0, return_gates=return_gates)
    torch.testing.assert_close(got[0], out)
    torch.testing.assert_close(got[1], hT)
    with pytest.raises(ValueError, match=r"h_0 has shape \(2, 4\), expected \(1, 2, 4\)"):
        ours(xs, h0[0], return_gates=return_gates)


# ----------------------------------------------------------------------------- the gradient path (section 4)

def test_state_jacobian_terms_sum_to_autograd_and_carry_is_diag_z():
    step = random_step(seed=5, B=3, n_in=3, H=4)
    terms = gru_state_jacobian(**step)
    t = {k: torch.tensor(v) for k, v in step.items()}
    full = torch.autograd.functional.jacobian(
        lambda h: gru_cell_torch(t["x"], h, t["W_x"], t["W_h"], t["b_x"], t["b_hh"])[0], t["h_prev"])  # (B, H, B, H)
    full = torch.stack([full[b, :, b, :] for b in range(3)]).numpy()
    np.testing.assert_allclose(sum(terms.values()), full, atol=1e-12)
    z = gru_cell_numpy(**step)[1]["z"]
    np.testing.assert_allclose(terms["carry"], z[:, :, None] * np.eye(4)[None], atol=0)
    # a large update bias: z -> 1 and the Jacobian is diag(z) alone
    step["b_x"][4:8] += 16.0
    terms = gru_state_jacobian(**step)
    rest = np.abs(terms["update gate"]).max() + np.abs(terms["candidate"]).max()
    assert rest < 1e-4 and np.diagonal(terms["carry"], axis1=1, axis2=2).min() > 0.999


def test_update_bias_sets_z_and_decides_how_far_gradients_reach():
    gru = torch.nn.GRU(2, 8)
    set_update_bias(gru, 3.0)
    assert torch.all(gru.bias_ih_l0[8:16] == 3.0) and torch.all(gru.bias_hh_l0[8:16] == 0.0)
    x = torch.rand(16, 60, 2)
    reach = {}
    for bias in (4.0, -4.0):
        torch.manual_seed(0)
        model = SequenceToOne("GRU", 2, 16)
        set_update_bias(model.rnn, bias)
        norms = gradient_by_lag(model, x)
        reach[bias] = (norms[50] / norms[0]).item()
    assert reach[4.0] > 0.1 and reach[-4.0] < 1e-20
