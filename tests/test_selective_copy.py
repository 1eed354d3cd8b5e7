"""The selective-copying task (Gu & Dao 2023, section 3.1): layout, targets, seeds, bad input."""

import re

import pytest
import torch

from course_utils.data.selective_copy import BLANK, IGNORE, copy_targets, copy_vocab_size, selective_copying


def test_layout_of_a_selective_copying_sequence():
    tokens = selective_copying(200, length=20, n_data=4, n_symbols=5, seed=0)
    assert tokens.shape == (200, 20) and tokens.dtype == torch.long
    marker = 5 + 1
    assert (tokens[:, 16:] == marker).all()  # the last n_data positions are markers
    region = tokens[:, :16]
    assert ((region != BLANK).sum(1) == 4).all()  # exactly n_data data tokens, the rest blank
    assert ((region == BLANK) | ((region >= 1) & (region <= 5))).all()
    first_positions = (region != BLANK).float().argmax(1)
    assert first_positions.unique().numel() > 5  # random positions, not fixed
    assert copy_vocab_size(5) == 7


def test_plain_copying_puts_the_data_first():
    tokens = selective_copying(50, length=12, n_data=3, fixed_positions=True, seed=1)
    assert (tokens[:, :3] != BLANK).all() and (tokens[:, 3:9] == BLANK).all()


def test_seed_makes_it_repeatable():
    assert torch.equal(selective_copying(8, seed=3), selective_copying(8, seed=3))
    assert not torch.equal(selective_copying(8, seed=3), selective_copying(8, seed=4))


def test_targets_hand_case():
    M = 3  # n_symbols = 1 + ... : marker id is n_symbols + 1; here n_symbols = 2
    tokens = torch.tensor([[0, 2, 0, 1, 0, 0, M, M], [1, 1, 0, 0, 0, 0, M, M]])
    expected = torch.tensor([[IGNORE] * 6 + [2, 1], [IGNORE] * 6 + [1, 1]])
    assert torch.equal(copy_targets(tokens, 2), expected)


def test_targets_of_generated_sequences_list_the_data_in_order():
    tokens = selective_copying(30, length=16, n_data=3, seed=2)
    targets = copy_targets(tokens, 3)
    for row, target in zip(tokens, targets, strict=True):
        data = row[:13][row[:13] != BLANK]
        assert torch.equal(target[13:], data) and (target[:13] == IGNORE).all()


@pytest.mark.parametrize("kwargs, words", [
    ({"n": 0}, "n must be a whole number >= 1"),
    ({"n": 2, "length": 6, "n_data": 4}, "length must be at least 2 * n_data = 8"),
    ({"n": 2, "n_symbols": 0}, "n_symbols must be a whole number >= 1, got 0"),
])
def test_bad_arguments_are_named(kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        selective_copying(**kwargs)


def test_bad_targets_input():
    with pytest.raises(TypeError, match="int64 tensor of shape"):
        copy_targets(torch.zeros(2, 8), 2)
    with pytest.raises(ValueError, match="exactly n_data = 3 data tokens"):
        copy_targets(selective_copying(2, length=8, n_data=2, seed=0), 3)
