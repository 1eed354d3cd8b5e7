"""Shared test set-up."""

from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

# Grader fixtures are deliberately broken notebooks: nbval must not run them.
collect_ignore_glob = ["fixtures/*"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO
