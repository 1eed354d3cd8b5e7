"""The course's code is ruff clean (rules in pyproject.toml)."""

import subprocess
import sys


def test_ruff_clean(repo):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "course_utils", "course_tools", "tests", "benchmarks", "notebooks"],
        cwd=repo, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
