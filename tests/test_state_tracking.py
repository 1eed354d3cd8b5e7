"""State tracking (notebook 09b, section 5): the data, parity through the scan, the tracker, the exercise's check."""

import pytest
import torch

from course_utils import CheckFailed
from course_utils.exercises.state_tracking import check_parity_scan_inputs
from course_utils.linear_recurrence import scan_chunked, scan_loop
from course_utils.state_tracking import (
    KINDS,
    StateTracker,
    accuracy_by_length,
    count_mod_batch,
    curriculum_lengths,
    is_held_out,
    parity_scan_inputs,
    train_state_tracker,
)


def test_count_mod_batch_labels_and_one_hot():
    g = torch.Generator().manual_seed(0)
    for modulus in (2, 3):
        x, y = count_mod_batch(50, 13, modulus, generator=g)
        assert x.shape == (50, 13, 2) and y.shape == (50,) and y.dtype == torch.long
        torch.testing.assert_close(x.sum(-1), torch.ones(50, 13))  # one-hot
        torch.testing.assert_close(y, x[..., 1].sum(1).long() % modulus)
        assert set(y.tolist()) == set(range(modulus))


def test_held_out_rule_by_hand_and_the_split():
    bits = torch.tensor([[1, 1] + [0] * 8, [0, 0, 0, 1] + [0] * 6, [1] + [0] * 9])  # values 3, 8, 1
    assert is_held_out(bits).tolist() == [True, False, False]  # 3 = 3, 8 = 1, 1 = 1 (mod 7)
    assert not is_held_out(bits[:, :9]).any()  # shorter than 10: never held out
    g = torch.Generator().manual_seed(1)
    train_bits = count_mod_batch(500, 16, generator=g, held_out="exclude")[0][..., 1].long()
    test_bits = count_mod_batch(500, 16, generator=g, held_out="only")[0][..., 1].long()
    assert not is_held_out(train_bits).any() and is_held_out(test_bits).all()
    share = is_held_out(torch.randint(0, 2, (7000, 40), generator=g)).float().mean().item()
    assert 0.12 < share < 0.17  # about 1 in 7


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"batch_size": 0, "length": 5}, "batch_size must be an int >= 1, got 0"),
        ({"batch_size": 4, "length": 0}, "length must be an int >= 1, got 0"),
        ({"batch_size": 4, "length": 5, "modulus": 1}, "modulus must be an int >= 2"),
        ({"batch_size": 4, "length": 5, "held_out": "some"}, "held_out must be 'any', 'exclude' or 'only'"),
        ({"batch_size": 4, "length": 5, "held_out": "only"}, "needs length >= 10"),
    ],
)
def test_count_mod_batch_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        count_mod_batch(**kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parity_through_the_scan_is_exact_at_every_length(dtype):
    g = torch.Generator().manual_seed(0)
    bits = torch.randint(0, 2, (1000, 3, 2), generator=g).to(dtype)  # (T, B, H)
    a, b, h0 = parity_scan_inputs(bits)
    expected = (-1.0) ** bits.cumsum(0)  # (T, B, H)
    torch.testing.assert_close(scan_loop(a, b, h0), expected, rtol=0, atol=0)
    torch.testing.assert_close(scan_chunked(a, b, h0), expected, rtol=0, atol=0)


def test_a_positive_decay_forgets_the_parity_of_a_run_of_ones():
    # 1^n through h -> 0.9 h + 1 (float32): h_n converges to 10, so odd and even n end up equal
    h = [torch.tensor(0.0)]
    for _ in range(400):
        h.append(0.9 * h[-1] + 1)
    assert h[-1] == h[-2]  # exactly equal in float32: the two parities are the same state
    a, b, h0 = parity_scan_inputs(torch.ones(400, 1, 1))
    signed = scan_loop(a, b, h0).flatten()
    assert signed[-1] == 1 and signed[-2] == -1


def test_curriculum_lengths_grow_then_stay():
    g = torch.Generator().manual_seed(0)
    lengths = curriculum_lengths(400, (2, 24), g)
    assert len(lengths) == 400 and min(lengths) >= 2 and max(lengths) <= 24
    assert max(lengths[:20]) <= 5 and max(lengths[200:]) == 24
    with pytest.raises(ValueError, match="lengths must be"):
        curriculum_lengths(10, (5, 5), g)


@pytest.mark.parametrize("kind", KINDS)
def test_state_tracker_shapes(kind):
    model = StateTracker(kind, 8, modulus=3)
    x, _ = count_mod_batch(4, 11, 3)
    assert model(x).shape == (4, 3)
    with pytest.raises(ValueError, match=r"x has shape \(4, 11, 3\)"):
        model(torch.zeros(4, 11, 3))


def test_state_tracker_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        StateTracker("LSTM", 8)


def test_train_state_tracker_runs_and_is_repeatable():
    runs = [train_state_tracker(KINDS[1], modulus=3, seed=0, steps=20, lengths=(2, 8), device=torch.device("cpu"),
                                progress=False) for _ in range(2)]
    (model, history), (_, again) = runs
    assert len(history.losses) == 20 and history.losses == again.losses  # same seed, same run
    assert model.training  # training leaves the model in training mode
    accuracy = accuracy_by_length(model, [3, 12], 3, n=50, held_out="any")
    assert set(accuracy) == {3, 12} and all(0 <= v <= 1 for v in accuracy.values())
    assert model.training  # accuracy_by_length restores the mode


# ----------------------------------------------------------------------------- the exercise's check

def right(bits):
    return 1 - 2 * bits, torch.zeros_like(bits), torch.ones_like(bits[0])


def test_check_parity_scan_inputs_passes_a_right_answer(capsys):
    check_parity_scan_inputs(right)
    check_parity_scan_inputs(right, seed=1)
    assert "OK (a, b, h0)" in capsys.readouterr().out


def test_check_parity_scan_inputs_passes_another_right_form():
    check_parity_scan_inputs(lambda bits: (torch.where(bits > 0.5, -1.0, 1.0).double(), 0 * bits,
                                           torch.ones(bits.shape[1], 1, dtype=torch.float64)))


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda bits: (1 - bits / 2, torch.zeros_like(bits), torch.ones_like(bits[0])), r"a decay in \(0, 1\]"),
        (lambda bits: (1 - bits, torch.zeros_like(bits), torch.ones_like(bits[0])),
         r"use a_t = 1 - x_t \(0 on a one\)"),
        (lambda bits: (1 - 2 * bits, torch.zeros_like(bits), torch.zeros_like(bits[0])), "start from h0 = 0"),
        (lambda bits: (2 * bits - 1, torch.zeros_like(bits), torch.ones_like(bits[0])), "flip the sign on a zero"),
        (lambda bits: (torch.ones_like(bits), bits, torch.ones_like(bits[0])), "that counts the ones"),
        (lambda bits: (1 - 2 * bits, torch.zeros_like(bits), -torch.ones_like(bits[0])), "start from h0 = -1"),
        (lambda bits: (torch.sigmoid(bits), torch.zeros_like(bits), torch.ones_like(bits[0])),
         "every a_t you return is >= 0"),
    ],
)
def test_check_parity_scan_inputs_names_the_mistake(fn, words):
    with pytest.raises(CheckFailed, match=words):
        check_parity_scan_inputs(fn)


def test_check_parity_scan_inputs_shapes_and_refusal():
    with pytest.raises(CheckFailed, match="return the triple"):
        check_parity_scan_inputs(lambda bits: 1 - 2 * bits)
    with pytest.raises(CheckFailed, match=r"h0 \(T=7, B=5\)"):
        check_parity_scan_inputs(lambda bits: (1 - 2 * bits, 0 * bits, torch.ones(bits.shape[1])))

    def delegates(bits):
        return parity_scan_inputs(bits)

    with pytest.raises(CheckFailed, match="calls parity_scan_inputs"):
        check_parity_scan_inputs(delegates)
