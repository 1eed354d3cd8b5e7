"""course_utils.rnn: numpy and PyTorch RNN against torch.nn.RNN, hand-computed cases, shape errors."""

import math
import re

import numpy as np
import pytest
import torch
from learner import as_learner

from course_utils import CheckFailed
from course_utils.exercises.rnn import (
    bigram_val_loss,
    char_rnn_config_loss,
    check_char_rnn_config,
    check_rnn_cell,
    check_rnn_forward,
    check_sequence_loss,
)
from course_utils.rnn import (
    RNN,
    CharRNN,
    char_rnn_split,
    init_rnn_params,
    one_hot,
    params_from_torch,
    rnn_cell_forward,
    rnn_forward,
    rnn_output,
    sequence_loss,
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
    check_rnn_cell(as_learner(rnn_cell_forward))  # the reference passes (a wrong one raises, below)
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


# ----------------------------------------------------------------------------- the sequence loss (exercise 4)


def _loss(shift=1, axis=-1, reduce="mean", max_shift=True, sign=1.0):
    """A learner's sequence loss, right by default; each keyword makes one plausible mistake."""
    def loss(logits, ids):
        z, y = (logits[:-1], ids[1:]) if shift == 1 else (logits, ids) if shift == 0 else (logits[1:], ids[:-1])
        m = z.max(dim=axis, keepdim=True).values if max_shift else 0.0
        log_p = z - m - (z - m).exp().sum(dim=axis, keepdim=True).log()  # (T - 1, B, V)
        picked = -log_p.gather(-1, y[..., None])[..., 0]  # (T - 1, B)
        per = {"mean": picked.mean(), "sum": picked.sum(), "batch": picked.sum(0).mean()}[reduce]
        return sign * per
    return loss


SEQUENCE_LOSS_MISTAKES = {  # keyword arguments -> words the feedback must contain
    "no shift": (dict(shift=0), "forget to shift the targets"),
    "wrong shift": (dict(shift=-1), "shift the wrong way"),
    "time axis": (dict(axis=0), "over the time axis (dim=0)"),
    "batch axis": (dict(axis=1), "over the batch axis (dim=1)"),
    "sum": (dict(reduce="sum"), "sum the losses instead of averaging"),
    "batch mean only": (dict(reduce="batch"), "average over the batch only"),
    "sign": (dict(sign=-1.0), "instead of its negative"),
    "overflow": (dict(max_shift=False), "exp overflowed. Subtract each row's max"),
}


def test_sequence_loss_matches_a_hand_computed_case():
    logits = torch.zeros(3, 1, 4)  # uniform predictions: every loss is log 4
    logits[0, 0, 2] = math.log(3.0)  # step 0 gives id 2 a probability of 3/6
    ids = torch.tensor([[0], [2], [1]])  # (T, B): step 0 predicts ids[1] = 2, step 1 predicts ids[2] = 1
    expected = (-math.log(0.5) + math.log(4.0)) / 2
    assert sequence_loss(logits, ids).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"ids has shape \(3, 2\), expected \(3, 1\)"):
        sequence_loss(logits, ids.repeat(1, 2))


def test_check_sequence_loss_passes_a_right_answer(capsys):
    check_sequence_loss(_loss())
    check_sequence_loss(_loss(), seed=1)
    assert "OK my_sequence_loss on large logits" in capsys.readouterr().out


@pytest.mark.parametrize("mistake", SEQUENCE_LOSS_MISTAKES)
def test_check_sequence_loss_names_each_mistake(mistake):
    options, words = SEQUENCE_LOSS_MISTAKES[mistake]
    with pytest.raises(CheckFailed, match=re.escape(words)):
        check_sequence_loss(_loss(**options))


def test_check_sequence_loss_refuses_the_library_and_odd_answers():
    with pytest.raises(CheckFailed, match="calls cross_entropy, an existing implementation"):
        check_sequence_loss(lambda z, y: torch.nn.functional.cross_entropy(z[:-1].reshape(-1, 7), y[1:].reshape(-1)))
    with pytest.raises(CheckFailed, match="should be a number .* Did you forget a `return`"):
        check_sequence_loss(lambda z, y: None)
    with pytest.raises(CheckFailed, match=r"has shape \(5, 3, 1\), expected a single number"):
        check_sequence_loss(lambda z, y: -(z[:-1] - z[:-1].logsumexp(-1, keepdim=True)).gather(-1, y[1:, :, None]))


# ----------------------------------------------------------------------------- the outcome-graded exercise (5)

GOOD_CONFIG = {"hidden_size": 128, "lr": 1e-2, "seq_len": 32}
CONFIG_MISTAKES = {  # name -> (config, words the feedback must contain)
    "Adam's default learning rate": ({"hidden_size": 128, "lr": 1e-3, "seq_len": 32},
                                     "a learning rate of 0.001 is small"),
    "too few units": ({"hidden_size": 16, "lr": 1e-2, "seq_len": 32}, "16 hidden units are few"),
    "short windows": ({"hidden_size": 128, "lr": 1e-2, "seq_len": 4}, "windows of 4 characters are short"),
}
BARELY_MISSES = {"hidden_size": 128, "lr": 3e-3, "seq_len": 32}  # learns, but not enough in 150 steps


def test_check_char_rnn_config_passes_a_good_config(capsys):
    check_char_rnn_config(GOOD_CONFIG)
    assert "OK after 150 steps your CharRNN reaches a validation loss" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(CONFIG_MISTAKES))
def test_check_char_rnn_config_says_how_far_and_names_the_culprit(name):
    config, words = CONFIG_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"nats above it, \d\.\d\d times the target\. Likely culprit: .*"
                       + re.escape(words)):
        check_char_rnn_config(config)


def test_a_char_rnn_config_that_barely_misses_is_told_how_far_it_is():
    target = bigram_val_loss()
    with pytest.raises(CheckFailed, match=r"nats above it, 1\.\d\d times the target") as failure:
        check_char_rnn_config(BARELY_MISSES)  # one training run: the numbers are read back from the message
    found = re.search(r"validation loss of (\d\.\d{3}) nats per character \(target: below (\d\.\d{3})",
                      str(failure.value))
    loss = float(found.group(1))
    assert found.group(2) == f"{target:.3f}" and target <= loss < 1.2 * target  # close, but not there


def test_char_rnn_config_loss_is_seeded_and_leaves_the_global_random_state_alone():
    config = {"hidden_size": 16, "lr": 1e-2, "seq_len": 4}
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = char_rnn_config_loss(config, seed=3)
    assert torch.equal(torch.rand(3), before)
    assert char_rnn_config_loss(config, seed=3) == first


def test_char_rnn_split_holds_out_a_different_tenth_per_seed():
    train0, val0 = char_rnn_split(0)
    train1, val1 = char_rnn_split(1)
    assert len(train0) + len(val0) == len(train1) + len(val1)
    assert not torch.equal(val0, val1)
    assert torch.equal(train0[8 * len(val1): 9 * len(val1)], val1)  # seed 0 trains on seed 1's tenth
    assert 2.0 < bigram_val_loss(0) < 3.0


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"hidden_size": 128, "lr": 0.01}, "exactly the keys hidden_size, lr, seq_len"),
        ({"hidden_size": 512, "lr": 0.01, "seq_len": 32}, "hidden_size should be a whole number from 4 to 128"),
        ({"hidden_size": 128.0, "lr": 0.01, "seq_len": 32}, "hidden_size should be a whole number"),
        ({"hidden_size": 128, "lr": 0.5, "seq_len": 32}, "lr should be a number from 1e-05 to 0.1"),
        ({"hidden_size": 128, "lr": 0.01, "seq_len": 100}, "seq_len should be a whole number from 2 to 32"),
        ([128, 0.01, 32], "return a dict"),
    ],
)
def test_check_char_rnn_config_rejects_malformed_configs_before_training(config, words):
    with pytest.raises(CheckFailed, match=words):
        check_char_rnn_config(config)


def test_check_rnn_cell_names_the_missing_transpose():
    with pytest.raises(CheckFailed, match=r"shape error in a matrix product .*x_t @ W_xh\.T"):
        check_rnn_cell(lambda x, h, Wx, Wh, b: np.tanh(x @ Wx + h @ Wh.T + b))
    with pytest.raises(CheckFailed, match=r"x_t @ W_xh\.T"):  # the same in torch
        check_rnn_cell(lambda x, h, Wx, Wh, b: torch.tanh(torch.as_tensor(x) @ torch.as_tensor(Wx)))
