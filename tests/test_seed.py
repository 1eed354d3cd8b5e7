import random

import numpy as np
import pytest
import torch

from course_utils import seed_everything
from course_utils.core.device import set_cpu_threads
from course_utils.core.seed import seeded, seeded_run


def draw():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_same_seed_same_numbers():
    seed_everything(123)
    first = draw()
    seed_everything(123)
    assert draw() == first


def test_different_seed_different_numbers():
    seed_everything(1)
    first = draw()
    seed_everything(2)
    assert all(a != b for a, b in zip(draw(), first, strict=True))


def test_returns_seeded_generator():
    assert seed_everything(5).random() == np.random.default_rng(5).random()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_rejects_bad_seed(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(bad)


def test_seeded_run_is_apart_from_the_caller():
    """One thread and torch's random state seeded inside; the caller's threads and random numbers untouched."""
    torch.set_num_threads(2)
    try:
        torch.manual_seed(123)
        expected_next = torch.rand(3)
        torch.manual_seed(123)
        with seeded_run(7):
            assert torch.get_num_threads() == 1
            inside = torch.rand(3)
        assert torch.get_num_threads() == 2
        assert torch.equal(torch.rand(3), expected_next)  # as if the block had not run
        with seeded_run(7):
            assert torch.equal(torch.rand(3), inside)  # the block's numbers follow its seed alone
        with seeded(7):  # the same random state, the caller's threads
            assert torch.equal(torch.rand(3), inside) and torch.get_num_threads() == 2
        with pytest.raises(ZeroDivisionError), seeded_run(7):
            raise ZeroDivisionError("inside the block")
        assert torch.get_num_threads() == 2  # put back after an error too
    finally:
        set_cpu_threads()
