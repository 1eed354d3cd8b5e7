"""course_utils.rnn: numpy and PyTorch RNN against torch.nn.RNN, hand-computed cases, shape errors."""

import numpy as np
import pytest
import torch

from course_utils import CheckFailed
from course_utils.rnn import (
    RNN,
    CharRNN,
    check_rnn_cell,
    check_rnn_forward,
    init_rnn_params,
    one_hot,
    params_from_torch,
    rnn_cell_forward,
    rnn_forward,
    rnn_output,
    softmax,
)


@pytest.fixture
def torch_rnn():
    torch.manual_seed(0)
    return torch.nn.RNN(4, 6).double()


def test_cell_hand_computed():
    x_t = np.array([[1.0, 2.0]])
    h_prev = np.array([[0.5, -0.5]])
    W_xh = np.array([[1.0, 0.0], [0.0, 1.0]])
    W_hh = np.array([[0.0, 2.0], [0.0, 0.0]])  # h_new[0] gets 2 * h_prev[1]
    b_h = np.array([0.1, -0.1])
    expected = np.tanh(np.array([[1.0 - 1.0 + 0.1, 2.0 - 0.1]]))
    np.testing.assert_allclose(rnn_cell_forward(x_t, h_prev, W_xh, W_hh, b_h), expected, rtol=1e-12)


def test_forward_matches_torch(torch_rnn):
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    h0 = torch.randn(1, 3, 6, dtype=torch.float64)
    with torch.no_grad():
        out, h_n = torch_rnn(x, h0)
    p = params_from_torch(torch_rnn)
    hs = rnn_forward(x.numpy(), h0[0].numpy(), p["W_xh"], p["W_hh"], p["b_h"])
    np.testing.assert_allclose(hs, out.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hs[-1], h_n[0].numpy(), rtol=1e-12, atol=1e-12)


def test_forward_is_the_cell_in_a_loop():
    rng = np.random.default_rng(0)
    p = init_rnn_params(3, 5, 2, rng)
    x, h = rng.normal(size=(4, 2, 3)), rng.normal(size=(2, 5))
    hs = rnn_forward(x, h, p["W_xh"], p["W_hh"], p["b_h"])
    for t in range(4):
        h = rnn_cell_forward(x[t], h, p["W_xh"], p["W_hh"], p["b_h"])
        np.testing.assert_allclose(hs[t], h, rtol=1e-12)


def test_float32_stays_float32(torch_rnn):
    p = params_from_torch(torch_rnn, dtype=np.float32)
    hs = rnn_forward(np.zeros((2, 1, 4), np.float32), np.zeros((1, 6), np.float32), p["W_xh"], p["W_hh"], p["b_h"])
    assert hs.dtype == np.float32


def test_torch_module_matches_nn_rnn(torch_rnn):
    ours = RNN.from_torch(torch_rnn)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    for h0 in (None, torch.randn(1, 2, 6, dtype=torch.float64)):
        out_ref, h_ref = torch_rnn(x, h0)
        out, h_n = ours(x, h0)
        torch.testing.assert_close(out, out_ref)
        torch.testing.assert_close(h_n, h_ref)


def test_torch_module_gradients_match_nn_rnn(torch_rnn):
    ours = RNN.from_torch(torch_rnn)
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    torch_rnn(x)[0].sum().backward()
    ours(x)[0].sum().backward()
    torch.testing.assert_close(ours.W_hh.grad, torch_rnn.weight_hh_l0.grad)
    torch.testing.assert_close(ours.W_xh.grad, torch_rnn.weight_ih_l0.grad)
    torch.testing.assert_close(ours.b_h.grad, torch_rnn.bias_ih_l0.grad)  # d/db_ih = d/db_hh = d/db_h


def test_char_rnn_shapes_and_backends():
    torch.manual_seed(0)
    for use_torch in (False, True):
        model = CharRNN(10, 8, use_torch_rnn=use_torch)
        logits, h_n = model(torch.randint(0, 10, (6, 3)))
        assert logits.shape == (6, 3, 10) and h_n.shape == (1, 3, 8)


def test_output_and_softmax():
    hs = np.ones((2, 3, 4))
    W_hy, b_y = np.arange(8.0).reshape(2, 4), np.array([1.0, -1.0])
    np.testing.assert_allclose(rnn_output(hs, W_hy, b_y)[0, 0], [0 + 1 + 2 + 3 + 1, 4 + 5 + 6 + 7 - 1])
    p = softmax(np.array([[1000.0, 1000.0]]))
    np.testing.assert_allclose(p, [[0.5, 0.5]])
    np.testing.assert_array_equal(one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("call, message", [
    (lambda p: rnn_cell_forward(np.zeros(3), np.zeros((1, 5)), p["W_xh"], p["W_hh"], p["b_h"]), "x_t has shape (3,)"),
    (lambda p: rnn_cell_forward(np.zeros((2, 3)), np.zeros((1, 5)), p["W_xh"], p["W_hh"], p["b_h"]), "h_prev"),
    (lambda p: rnn_cell_forward(np.zeros((2, 3)), np.zeros((2, 5)), p["W_xh"], p["W_hh"].T[:4], p["b_h"]), "W_hh"),
    (lambda p: rnn_forward(np.zeros((4, 3)), np.zeros((1, 5)), p["W_xh"], p["W_hh"], p["b_h"]), "expected (T, B, 3)"),
    (lambda p: rnn_forward(np.zeros((4, 2, 3)), np.zeros((5,)), p["W_xh"], p["W_hh"], p["b_h"]), "h_init"),
    (lambda p: rnn_forward(np.zeros((4, 2, 3)), np.zeros((2, 5)), p["W_xh"], p["W_hh"], p["b_h"][:2]), "b_h"),
    (lambda p: rnn_output(np.zeros((4, 2, 3)), p["W_hy"], p["b_y"]), "hs has shape"),
    (lambda p: one_hot(np.array([5]), 3), "ids must lie"),
])
def test_shape_errors_name_the_argument(call, message):
    p = init_rnn_params(3, 5, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(p)


def test_torch_module_shape_errors():
    with pytest.raises(ValueError, match="x has shape"):
        RNN(3, 4)(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="h_0 has shape"):
        RNN(3, 4)(torch.zeros(5, 2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expected a one-layer"):
        params_from_torch(torch.nn.RNN(3, 4, num_layers=2))


def test_check_rnn_cell_accepts_the_reference_and_names_mistakes():
    check_rnn_cell(rnn_cell_forward)  # the reference passes (a wrong one raises, below)
    mistakes = {
        "tanh": lambda x, h, Wx, Wh, b: x @ Wx.T + h @ Wh.T + b,
        "bias": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx.T + h @ Wh.T),
        "W_hh.T": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx.T + h @ Wh + b),
        "ignore h_prev": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx.T + b),
        "has shape": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx.T + h @ Wh.T + b).T,
        "is off": lambda x, h, Wx, Wh, b: np.tanh(x @ Wx.T + h @ Wh.T + b) * 1.01,
    }
    for hint, fn in mistakes.items():
        with pytest.raises(CheckFailed, match=hint.replace(".", r"\.")):
            check_rnn_cell(fn)


def _loop_forward(x, h, Wx, Wh, b):
    """A learner's right answer: the course's cell in a loop (the check allows the cell)."""
    hs = []
    for x_t in x:
        h = rnn_cell_forward(x_t, h, Wx, Wh, b)
        hs.append(h)
    return np.stack(hs)


def test_check_rnn_forward_names_mistakes():
    check_rnn_forward(_loop_forward)
    check_rnn_forward(_loop_forward, T=1)  # h_init-for-every-step is right when T = 1
    with pytest.raises(CheckFailed, match="calls rnn_forward, an existing implementation"):
        check_rnn_forward(lambda x, h, Wx, Wh, b: rnn_forward(x, h, Wx, Wh, b))

    def stale(x, h, Wx, Wh, b):
        return np.stack([rnn_cell_forward(x[t], h, Wx, Wh, b) for t in range(len(x))])

    def with_h_init(x, h, Wx, Wh, b):
        return np.concatenate([h[None], _loop_forward(x, h, Wx, Wh, b)])

    def last_only(x, h, Wx, Wh, b):
        return _loop_forward(x, h, Wx, Wh, b)[-1]

    for fn, hint in [(stale, "feed h_init"), (with_h_init, "without h_init"), (last_only, "not only the last")]:
        with pytest.raises(CheckFailed, match=hint):
            check_rnn_forward(fn)


def test_shape_errors_blame_the_argument_that_is_wrong():
    """A transposed W_xh used to blame x, and a batch-first x blamed h_init."""
    rng = np.random.default_rng(0)
    T, B, n_in, H = 4, 2, 3, 5
    x, h_init = rng.normal(size=(T, B, n_in)), np.zeros((B, H))
    W_xh, W_hh, b_h = rng.normal(size=(H, n_in)), rng.normal(size=(H, H)), np.zeros(H)
    with pytest.raises(ValueError, match=r"^W_xh has shape \(3, 5\), expected \(5, 3\).*looks transposed"):
        rnn_forward(x, h_init, W_xh.T, W_hh, b_h)
    with pytest.raises(ValueError, match=r"^W_xh has shape \(3, 5\).*looks transposed"):
        rnn_cell_forward(x[0], h_init, W_xh.T, W_hh, b_h)
    with pytest.raises(ValueError, match=r"^x has shape \(2, 4, 3\) and h_init \(2, 5\): x looks batch-first"):
        rnn_forward(x.transpose(1, 0, 2), h_init, W_xh, W_hh, b_h)
    with pytest.raises(ValueError, match=r"^W_hh has shape \(5, 3\), expected \(H, H\)"):
        rnn_forward(x, h_init, W_xh, W_hh[:, :3], b_h)
    with pytest.raises(ValueError, match=r"^h_init has shape \(3, 5\), expected \(2, 5\)"):
        rnn_forward(x, np.zeros((3, H)), W_xh, W_hh, b_h)
    square = rng.normal(size=(H, H))  # I == H: a transposed W_xh has the right shape; only values tell
    rnn_forward(rng.normal(size=(T, B, H)), h_init, square.T, W_hh, b_h)
