"""The grader on the real course notebooks: every source notebook scores full marks, every
student version scores 0 without crashing (and the rest of it still runs)."""

import shutil
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.executor import Limits
from course_tools.grading.grade import LEARNER_KERNEL_NOTE, exercises
from course_tools.grading.runner import grade_all

REPO = Path(__file__).resolve().parent.parent
LEARNER_KERNEL = LEARNER_KERNEL_NOTE.split(":")[0]  # "graded in your own kernel"

GRADED = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if exercises(nbformat.read(p, as_version=4))]


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    subs = tmp_path_factory.mktemp("course-submissions")
    for path in GRADED:
        for who, folder in (("source", REPO / "notebooks"), ("student", REPO / "student")):
            (subs / who).mkdir(exist_ok=True)
            shutil.copy(folder / path.name, subs / who / path.name)
    return grade_all(subs, None, Limits(cell_timeout=600, notebook_timeout=1200), jobs=2, progress=False)


def test_every_notebook_with_exercises_is_graded():
    assert len(GRADED) >= 5


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_source_scores_full_marks(rows, path):
    mine = [r for r in rows if r.student == "source" and r.notebook == path.name]
    graded = [r for r in mine if r.max_points > 0]
    assert len(graded) == len(exercises(nbformat.read(path, as_version=4)))
    assert all(r.status == "passed" for r in graded), [(r.exercise, r.message) for r in graded if r.status != "passed"]
    assert not [r for r in mine if r.max_points == 0], [r.message for r in mine if r.max_points == 0]


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_student_version_scores_zero_and_still_runs(rows, path):
    mine = [r for r in rows if r.student == "student" and r.notebook == path.name]
    graded = [r for r in mine if r.max_points > 0]
    assert graded and all(r.points == 0 and r.status == "failed" for r in graded)
    assert all("not attempted" in r.message for r in graded), [r.message for r in graded]
    assert not [r for r in mine if r.max_points == 0], [r.message for r in mine if r.max_points == 0]


def test_every_test_cell_is_decided_where_no_learner_code_runs(rows):
    """A test cell that reads an object made in the learner's kernel (a generator or a model from
    the visible cell, say) would be decided there, where the learner's code can reach the verdict."""
    own = sorted((r.notebook, r.exercise) for r in rows if r.student == "source" and LEARNER_KERNEL in r.message)
    assert own == [], own
