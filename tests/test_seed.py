import random

import numpy as np
import pytest
import torch

from course_utils import seed_everything


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
