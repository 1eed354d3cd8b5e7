"""Every notebook (00, section 3): one call to make a run repeatable, one block to make a run apart."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python's ``random``, numpy's global state and torch (CPU and every GPU).

    On the CPU this makes a notebook's numbers the same on every run. GPU kernels may
    still differ in the last bits, which is why the course compares results with
    tolerances, never with hard-coded seeded outputs.

    Returns:
        A fresh ``numpy.random.Generator`` seeded with ``seed``, for code that prefers
        an explicit generator to the global state.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU random state seeded by ``seed``, then put the caller's state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def seeded_run(seed: int) -> Iterator[None]:
    """Run a block on one CPU thread with torch's random state seeded by ``seed``, then put both back.

    The outcome-graded exercises train inside it: the result depends on ``seed`` alone, the same
    on every machine, and the notebook's own random numbers and thread setting are untouched.
    A model this small trains fastest on one thread anyway.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with seeded(seed):
            yield
    finally:
        torch.set_num_threads(threads)
