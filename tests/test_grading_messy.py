"""Messy submissions graded fairly (issue 31, item 4).

- answers that lost their nbgrader metadata are found by the functions they define
  (tests/test_grading.py, fixture ``lost_metadata``);
- another course notebook handed in under this one's name is named, not run;
- warnings are reported, not scored (``warns`` in tests/test_grading.py); nbgrader's stderr
  rule is an option (here);
- manually graded cells are refused by release and by the grader, and the model answer never
  runs in place of the learner's;
- time limits come from the source's measured cells.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.cells import NotebookFormatError, grade_id
from course_tools.grading.executor import Limits
from course_tools.grading.grade import looks_like, plan
from course_tools.grading.release import render, student_version
from course_tools.grading.runner import grade_all
from course_tools.grading.timing import cell_limit, notebook_limit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SOURCE = FIXTURES / "homework.ipynb"


# --- the wrong notebook -----------------------------------------------------------------------------

def test_another_course_notebook_is_named_and_not_run(tmp_path):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(REPO / "student" / "01_rnn.ipynb", tmp_path / "subs" / "bob" / "00_setup.ipynb")
    rows = grade_all(tmp_path / "subs", None, Limits(cell_timeout=30, notebook_timeout=60), progress=False)
    note = next(r for r in rows if r.exercise == "notebook")
    assert note.status == "wrong notebook"
    assert "this looks like notebook 01_rnn.ipynb, not 00_setup.ipynb" in note.message
    graded = [r for r in rows if r.max_points > 0]
    assert graded and all(r.status == "not graded" and r.points == 0 for r in graded)


@pytest.mark.parametrize("name", ["00_setup.ipynb", "01_rnn.ipynb"])
def test_the_right_notebook_is_not_taken_for_another(name):
    source = nbformat.read(REPO / "notebooks" / name, as_version=4)
    student = nbformat.read(REPO / "student" / name, as_version=4)
    assert looks_like(student, source, REPO / "notebooks" / name) is None
    assert looks_like(source, source, REPO / "notebooks" / name) is None
    pasted = nbformat.read(FIXTURES / "submissions" / "lost_metadata.ipynb", as_version=4)  # no ids kept
    assert looks_like(pasted, nbformat.read(SOURCE, as_version=4), SOURCE) is None


# --- nbgrader's stderr rule, as an option; time limits from the source -----------------------------

def test_time_limits_from_the_source_and_the_strict_stderr_rule(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    for case in ("full", "infinite_loop", "warns"):
        shutil.copy(FIXTURES / "submissions" / f"{case}.ipynb", subs)
    limits = Limits(cell_timeout=300, notebook_timeout=900, time_factor=10, time_floor=10, strict_stderr=True)
    rows = grade_all(subs, SOURCE, limits, jobs=2, progress=False)
    scores = {s: sum(r.points for r in rows if r.student == s) for s in ("full", "infinite_loop", "warns")}
    assert scores == {"full": 6, "infinite_loop": 3, "warns": 3}
    warned = next(r for r in rows if r.student == "warns" and r.exercise == "square_test")
    assert warned.status == "failed" and "no credit, as in nbgrader" in warned.message
    hung = next(r for r in rows if r.student == "infinite_loop" and r.exercise == "square_test")
    assert hung.status == "timeout" and "10x the time the source notebook's cell took, at least 10 s" in hung.message
    # The source's test cell takes milliseconds: the floor, or on a very busy machine a little more; never
    # the fixed 300 s. (How long it took is not asserted: the machine's speed decides that.)
    limit = int(re.search(r"longer than (\d+) s", hung.message)[1])
    assert 10 <= limit < 300, hung.message


def test_limits_are_a_multiple_of_the_source_cells_time_between_floor_and_ceiling():
    limits = Limits(cell_timeout=300, notebook_timeout=900, time_factor=10, time_floor=30)
    measured = [None, 0.01, 6.2, None, 84.0, 0.5]
    assert [cell_limit(s, limits, measured) for s in measured[1:3]] == [30, 62]
    assert cell_limit(84.0, limits, measured) == 300  # the ceiling
    assert cell_limit(None, limits, measured) == 300  # a learner's own cell: the notebook's largest
    assert cell_limit(None, limits, [None, 0.2, 1.0]) == 30
    assert notebook_limit([None, 1.0, 5.0], limits) == 90  # 10 x 6 s + 30 s
    assert notebook_limit(measured, limits) == 900  # the ceiling


# --- manually graded cells: refused --------------------------------------------------------------

def with_written_answer() -> nbformat.NotebookNode:
    """The homework with a markdown answer cell that nbgrader would have a TA grade by hand."""
    nb = make_fixtures.homework()
    meta = {"nbgrader": {"grade": True, "grade_id": "explain", "locked": False, "points": 2, "schema_version": 3,
                         "solution": True, "task": False}}
    nb.cells.append(nbformat.v4.new_markdown_cell("Why does squaring lose the sign?\n\n### BEGIN SOLUTION\n"
                                                  "Because (-x)^2 = x^2.\n### END SOLUTION", metadata=meta,
                                                  id="explain"))
    return nb


def test_release_refuses_manually_graded_cells(tmp_path, capsys):
    from course_tools.grading.__main__ import main

    with pytest.raises(NotebookFormatError, match="manually graded answer .* does not support"):
        student_version(with_written_answer(), "hw.ipynb")
    task = make_fixtures.homework()
    task.cells.append(nbformat.v4.new_markdown_cell("Describe", metadata={"nbgrader": {
        "grade_id": "t", "task": True, "grade": True, "points": 1, "locked": True, "solution": False,
        "schema_version": 3}}))
    with pytest.raises(NotebookFormatError, match="task cell"):
        student_version(task, "hw.ipynb")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "hw.ipynb").write_text(render(with_written_answer()))
    assert main(["release", "--source-dir", str(tmp_path / "src"), "--out", str(tmp_path / "student")]) == 2
    err = capsys.readouterr().err
    assert "hw.ipynb cell 9 (explain): a manually graded answer (markdown cell" in err
    assert not list((tmp_path / "student").glob("*.ipynb"))


def test_grading_against_a_source_with_a_written_answer_says_why_and_runs_nothing(tmp_path):
    (tmp_path / "hw.ipynb").write_text(render(with_written_answer()))
    (tmp_path / "subs").mkdir()
    shutil.copy(FIXTURES / "submissions" / "full.ipynb", tmp_path / "subs")
    rows = grade_all(tmp_path / "subs", tmp_path / "hw.ipynb", Limits(cell_timeout=30), progress=False)
    assert rows[0].status == "error" and "the source notebook cannot be graded" in rows[0].message
    assert "manually graded answer" in rows[0].message
    assert all(r.status == "not graded" for r in rows[1:])


def test_the_model_answer_never_runs_in_place_of_the_learners():
    source = make_fixtures.homework()
    submission = student_version(source)
    submission.cells = [c for c in submission.cells if grade_id(c) != "square"]  # the answer cell deleted
    cells, _, solutions, notes, origin = plan(source, submission, {})
    model = "return x * x"
    assert not any(model in c.source for c in cells)
    stub = next(c.source for i, c in enumerate(cells) if i in solutions and origin[i] == 4)
    assert stub.endswith("raise NotImplementedError()")
    assert ("integrity", "missing", "solution cell 'square' is missing from the submission; the empty stub was run") \
        in notes
