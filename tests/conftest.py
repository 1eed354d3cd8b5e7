"""Shared test set-up."""

import os
from pathlib import Path

import matplotlib
import pytest
from pages import CHROMIUM, CHROMIUM_ARGS

matplotlib.use("Agg")

# Grader fixtures are deliberately broken notebooks: nbval must not run them.
collect_ignore_glob = ["fixtures/*"]

REPO = Path(__file__).resolve().parent.parent


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
