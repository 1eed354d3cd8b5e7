import re

import pytest
import torch

from course_utils import CheckFailed
from course_utils.data.adding import BASELINE_MSE, adding_batches, adding_problem
from course_utils.exercises.long_range import (
    ADDING_CHALLENGES,
    ADDING_GRADING,
    MIN_KEPT,
    adding_config_kept,
    adding_config_mse,
    check_adding_config,
    kept_fraction,
)
from course_utils.long_range import SequenceToOne, gradient_by_lag
from course_utils.shared.layers import count_parameters

# The outcome-graded exercises (03 and 04, exercise 4): configs a learner might hand in.
GOOD = {"LSTM": {"forget_bias": 2.0, "hidden_size": 32, "lr": 1e-2},
        "GRU": {"update_bias": 2.0, "hidden_size": 32, "lr": 1e-2}}
ADDING_MISTAKES = {  # name -> (kind, config, words the feedback must contain)
    "no forget bias": ("LSTM", {"forget_bias": -2.0, "hidden_size": 32, "lr": 1e-2}, "your forget bias is <= 0"),
    "tiny learning rate": ("LSTM", {"forget_bias": 2.0, "hidden_size": 32, "lr": 1e-4},
                           "a learning rate of 0.0001 is small"),
    "GRU forgets": ("GRU", {"update_bias": -5.0, "hidden_size": 32, "lr": 1e-2}, "your update-gate bias is <= 0"),
    "GRU too few units": ("GRU", {"update_bias": 2.0, "hidden_size": 2, "lr": 1e-2}, "2 units are few"),
    "GRU tiny learning rate": ("GRU", {"update_bias": 2.0, "hidden_size": 32, "lr": 1e-3},
                               "a learning rate of 0.001 is small"),
}
BARELY_MISSES = ("LSTM", {"forget_bias": 2.0, "hidden_size": 32, "lr": 5e-3})  # learns, but not enough: MSE 0.042


def test_adding_problem_structure():
    x, y = adding_problem(500, 20, seed=0)
    assert x.shape == (500, 20, 2) and y.shape == (500, 1)
    markers = x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((500,), 2.0))
    assert torch.equal(markers[:, :10].sum(1), torch.ones(500))  # one marker in each half
    assert ((x[..., 0] >= 0) & (x[..., 0] < 1)).all()
    torch.testing.assert_close(y[:, 0], (x[..., 0] * markers).sum(1))


def test_adding_problem_hand_case_and_seeding():
    x, y = adding_problem(1, 2, seed=3)  # length 2: the markers must be steps 0 and 1
    assert x[0, :, 1].tolist() == [1.0, 1.0]
    assert y.item() == pytest.approx(x[0, :, 0].sum().item())
    a, b = adding_problem(4, 10, seed=7), adding_problem(4, 10, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], adding_problem(4, 10, seed=8)[0])


def test_baseline_mse_is_variance_of_the_target():
    assert BASELINE_MSE == pytest.approx(1 / 6)
    _, y = adding_problem(200_000, 4, seed=1)
    assert torch.mean((y - 1) ** 2).item() == pytest.approx(BASELINE_MSE, abs=0.003)


def test_adding_batches_and_errors():
    batches = adding_batches(3, 5, 8, seed=0)
    assert len(batches) == 3 and batches[0][0].shape == (5, 8, 2) and batches[0][1].shape == (5, 1)
    with pytest.raises(ValueError, match="n must be"):
        adding_problem(0, 10)
    with pytest.raises(ValueError, match="length"):
        adding_problem(3, 1)
    with pytest.raises(ValueError, match="n_batches"):
        adding_batches(0, 5, 8)


@pytest.mark.parametrize(("kind", "per_block"), [("RNN", 1), ("LSTM", 4), ("GRU", 3)])
def test_sequence_to_one_shapes_and_parameter_count(kind, per_block):
    model = SequenceToOne(kind, 2, 8, out_features=3)
    assert model(torch.zeros(4, 6, 2)).shape == (4, 3)
    assert count_parameters(model) == per_block * (2 * 8 + 8 * 8 + 2 * 8) + 8 * 3 + 3
    with pytest.raises(ValueError, match=r"x has shape \(4, 6\), expected \(B, T, 2\)"):
        model(torch.zeros(4, 6))
    with pytest.raises(ValueError, match="kind"):
        SequenceToOne("LSTMX", 2, 8)


def test_lstm_forget_bias_is_set():
    model = SequenceToOne("LSTM", 2, 4, forget_bias=1.0)
    b = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    torch.testing.assert_close(b[4:8], torch.ones(4))
    keep = SequenceToOne("LSTM", 2, 4, forget_bias=None)
    assert not torch.allclose((keep.rnn.bias_ih_l0 + keep.rnn.bias_hh_l0)[4:8], torch.ones(4))


def test_gradient_by_lag_matches_a_hand_computed_linear_rnn():
    # A linear RNN h_t = a * h_{t-1} + x_t read out as y = h_T: dy/dx_t = a^(T-1-t).
    model = SequenceToOne("RNN", 1, 1)
    model.rnn = torch.nn.RNN(1, 1, nonlinearity="relu", batch_first=True)  # relu of positive values: linear
    with torch.no_grad():
        model.rnn.weight_ih_l0.fill_(1.0)
        model.rnn.weight_hh_l0.fill_(0.5)
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.head.weight.fill_(1.0)
        model.head.bias.zero_()
    x = torch.ones(3, 5, 1)
    norms = gradient_by_lag(model, x)
    torch.testing.assert_close(norms, 0.5 ** torch.arange(5.0))
    assert model.training
    with pytest.raises(ValueError, match="x has shape"):
        gradient_by_lag(model, torch.ones(5, 1))


# ----------------------------------------------------------------------------- the outcome-graded exercise

def test_kept_fraction_of_a_gate_with_zero_weights_is_sigmoid_of_the_bias_to_the_half_length():
    for kind in ("LSTM", "GRU"):
        model = SequenceToOne(kind, 2, 3, forget_bias=None)
        rows = slice(3, 6)  # f in (i, f, g, o); z in (r, z, n)
        with torch.no_grad():
            for p in model.rnn.parameters():
                p.zero_()
            model.rnn.bias_ih_l0[rows] = 1.5
        per_step, second_half = kept_fraction(model, adding_problem(4, 9, seed=0)[0])
        keep = torch.sigmoid(torch.tensor(1.5)).item()
        assert per_step == pytest.approx(keep) and second_half == pytest.approx(keep ** 4)  # 9 // 2 = 4 steps


IDEA_LESS = {"LSTM": "forget_bias", "GRU": "update_bias"}  # the gate bias the challenge is about, at <= 0


@pytest.mark.parametrize("kind", list(IDEA_LESS))
@pytest.mark.parametrize("bias", [0.0, -1.0])
def test_a_gate_bias_at_most_zero_fails_on_three_seeds_without_training(kind, bias, capsys):
    config = {**GOOD[kind], IDEA_LESS[kind]: bias}
    for seed in range(3):
        per_step, second_half = adding_config_kept(config, kind, seed=seed)
        assert per_step < 0.51 and second_half < MIN_KEPT / 100  # measured: at most 4e-4 of the state crosses
        with pytest.raises(CheckFailed, match=r"crosses the \d+ steps of the second half \(target: at least 2%\); "
                                              r"not trained: .* Likely culprit: your .*bias is <= 0"):
            check_adding_config(config, kind, seed=seed)


@pytest.mark.parametrize("kind", list(IDEA_LESS))
@pytest.mark.slow
def test_the_intended_gate_bias_passes_on_three_seeds(kind):
    grading, target = ADDING_GRADING[kind], ADDING_CHALLENGES[kind]["target"]
    for seed in range(3):  # measured: LSTM 0.0016, 0.0017, 0.0025; GRU 0.0054, 0.0024, 0.0040 (target 0.02)
        score = grading.score(GOOD[kind], seed=seed)
        assert score.second_half > 1.5 * MIN_KEPT and score.mse < target / 3  # with margin on both
        assert grading.judge(grading.validate(GOOD[kind]), score, seed).met


@pytest.mark.parametrize("kind", list(IDEA_LESS))
def test_the_hints_name_a_gate_bias_that_keeps_too_little_without_training(kind):
    grading, key = ADDING_GRADING[kind], IDEA_LESS[kind]
    for bias in (0.0, -1.0, -10.0):
        hints = grading.hints(grading.validate({**GOOD[kind], key: bias}))
        assert any("bias is <= 0" in h and "at most half" in h for h in hints)
    low = grading.hints(grading.validate({**GOOD[kind], key: 1.0 if kind == "GRU" else 0.5}))
    assert any(f"under {MIN_KEPT:.0%}" in h for h in low)
    assert grading.hints(grading.validate(GOOD[kind])) == []  # the intended setting: nothing to blame


@pytest.mark.slow
def test_check_adding_config_passes_a_good_lstm_config(capsys):
    check_adding_config(GOOD["LSTM"], "LSTM")
    out = capsys.readouterr().out
    assert out.startswith("OK at the start of training your LSTM's forget gate keeps 88% of the cell state per step")
    assert "after 500 steps" in out


@pytest.mark.slow
def test_check_adding_config_passes_a_good_gru_config(capsys):
    check_adding_config(GOOD["GRU"], "GRU")
    assert "OK at the start of training your GRU's update gate" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(ADDING_MISTAKES))
@pytest.mark.slow
def test_check_adding_config_says_how_far_and_names_the_culprit(name):
    kind, config, words = ADDING_MISTAKES[name]
    with pytest.raises(CheckFailed, match=r"times the (target|share to keep)\. Likely culprit: .*" + re.escape(words)):
        check_adding_config(config, kind)


@pytest.mark.slow
def test_a_config_that_barely_misses_is_told_how_far_it_is():
    kind, config = BARELY_MISSES
    mse = adding_config_mse(config, kind)
    target = ADDING_CHALLENGES[kind]["target"]
    assert target <= mse < 3 * target  # close, but not there
    words = rf"test MSE of {mse:.4f} \(target: below {target}.*: \d\.\d times the target"
    with pytest.raises(CheckFailed, match=words):
        check_adding_config(config, kind)


@pytest.mark.slow
def test_adding_config_mse_is_seeded_and_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    first = adding_config_mse(GOOD["LSTM"], "LSTM", seed=4)
    assert torch.equal(torch.rand(3), before)
    assert adding_config_mse(GOOD["LSTM"], "LSTM", seed=4) == first


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"forget_bias": 1.0, "hidden_size": 32}, "exactly the keys forget_bias, hidden_size, lr"),
        ({"forget_bias": 1.0, "hidden_size": 500, "lr": 0.01}, "hidden_size should be a whole number from 1 to 64"),
        ({"forget_bias": 1.0, "hidden_size": 32.0, "lr": 0.01}, "hidden_size should be a whole number"),
        ({"forget_bias": 1.0, "hidden_size": 32, "lr": 0.5}, r"lr should be a number in \(0, 0.1\]"),
        ({"forget_bias": 50.0, "hidden_size": 32, "lr": 0.01}, r"forget_bias should be a number in \[-10, 10\]"),
        ({"update_bias": 1.0, "hidden_size": 32, "lr": 0.01}, "exactly the keys forget_bias"),
    ],
)
def test_check_adding_config_rejects_malformed_configs_before_training(config, words):
    with pytest.raises(CheckFailed, match=words):
        check_adding_config(config, "LSTM")
