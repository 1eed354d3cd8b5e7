"""Real nbgrader (a test-only extra) accepts a course notebook and gives its solution full marks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbgrader_api = pytest.importorskip("nbgrader.api", reason="nbgrader is not installed (pip install -e '.[test]')")

NOTEBOOK = "00_setup.ipynb"
pytestmark = pytest.mark.slow  # runs nbgrader's own converters on a notebook: not in `make test-fast`


def nbgrader(root: Path, *args: str) -> None:
    bin_dir = Path(sys.executable).parent  # nbgrader runs `alembic` from PATH
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(bin_dir / "nbgrader"), *args], cwd=root, env=env, capture_output=True, text=True,
                            timeout=600)
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{output}"


def test_generate_assignment_and_autograde(repo, tmp_path):
    root = tmp_path / "course"
    (root / "source" / "ps1").mkdir(parents=True)
    shutil.copy(repo / "notebooks" / NOTEBOOK, root / "source" / "ps1" / NOTEBOOK)
    (root / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "seqmodels"\n')
    nbgrader(root, "db", "assignment", "add", "ps1")
    nbgrader(root, "db", "student", "add", "alice")
    nbgrader(root, "generate_assignment", "ps1", "--force")

    released = (root / "release" / "ps1" / NOTEBOOK).read_text()
    assert "raise NotImplementedError()" in released and "BEGIN HIDDEN TESTS" not in released

    submitted = root / "submitted" / "alice" / "ps1"
    submitted.mkdir(parents=True)
    shutil.copy(repo / "notebooks" / NOTEBOOK, submitted / NOTEBOOK)  # the solution, as a submission
    nbgrader(root, "autograde", "ps1", "--force")

    with nbgrader_api.Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        submission = gb.find_submission("ps1", "alice")
        assert submission.max_score > 0
        assert submission.score == submission.max_score
