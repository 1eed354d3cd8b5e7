"""Shared test set-up."""

import os
from pathlib import Path

import matplotlib
import pytest
from pages import CHROMIUM, CHROMIUM_ARGS

from course_utils.device import set_cpu_threads

matplotlib.use("Agg")

# Grader fixtures are deliberately broken notebooks: nbval must not run them.
collect_ignore_glob = ["fixtures/*"]

REPO = Path(__file__).resolve().parent.parent

# `make test` runs on two pytest-xdist workers (`-n 2 --dist loadgroup`). Each file is one group,
# so a notebook's cells share one kernel and a module's fixtures are built once; the two files
# that run two notebooks at once themselves share a group, so they never overlap each other.
TWO_AT_ONCE = {"test_course_grading.py", "test_website.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("two-at-once" if name in TWO_AT_ONCE else name))


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
