"""Shared test set-up."""

import os
from pathlib import Path

import matplotlib
import pytest
from pages import CHROMIUM, CHROMIUM_ARGS

from course_utils.core.device import set_cpu_threads

matplotlib.use("Agg")

# Grader fixtures are deliberately broken notebooks: nbval must not run them.
collect_ignore_glob = ["fixtures/*"]

REPO = Path(__file__).resolve().parent.parent

# `make test` runs on two pytest-xdist workers (`-n 2 --dist loadfile`): each file goes whole to
# one worker, so a notebook's cells share one kernel and a module's fixtures are built once.
# (`--dist loadgroup` would let files share a worker, but pytest-xdist 3.8's groups do not take
# effect under pytest 9, whose node ids no longer come from the attribute xdist rewrites.)


def pytest_configure(config):
    set_cpu_threads()  # the course's thread policy (COURSE_THREADS=1): two workers, two cores


ARTIFACTS = REPO / "test-artifacts"  # screenshots the browser tests leave for a person to look at


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright; skipped (failed on CI) where Chromium is missing."""
    if not CHROMIUM.exists():
        message = "Chromium is not installed: run `make test` as root or `sudo apt-get install chromium`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
