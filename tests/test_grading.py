"""The grader: student versions, scoring, and submissions that try to break it.

The fixtures are small notebooks in tests/fixtures/grading/ (written by make_fixtures.py):
homework.ipynb is the source (3 exercises, 2 + 3 + 1 points) and submissions/ holds one
notebook per case. All of them are graded once, in parallel, and the rows are checked.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.cells import NotebookFormatError, remove_hidden_tests, replace_solution
from course_tools.grading.executor import CellResult, Limits
from course_tools.grading.grade import credit
from course_tools.grading.gradebook import summary, write_gradebook
from course_tools.grading.release import render, student_version
from course_tools.grading.runner import grade_all

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402

SOURCE = FIXTURES / "homework.ipynb"
LIMITS = Limits(cell_timeout=20, notebook_timeout=150, memory_mb=3072, max_output_kb=64)

# case -> (points out of 6, {exercise: status} for the exercises that are not "passed")
EXPECTED = {
    "full": (6, {}),
    "empty": (0, {"add_one_test": "failed", "square_test": "failed", "mean_test": "failed"}),
    "partial": (3, {"square_test": "failed"}),
    "hardcoded": (4, {"add_one_test": "failed"}),
    "edited_test": (3, {"square_test": "failed"}),
    "deleted_test": (4, {"add_one_test": "failed"}),
    "infinite_loop": (3, {"square_test": "timeout"}),
    "os_exit": (4, {"add_one_test": "kernel died"}),
    "memory_bomb": (3, {"square_test": "failed"}),
    "print_flood": (6, {}),
    "always_equal": (3, {"square_test": "failed"}),
    "own_helper_cell": (6, {}),
    "warns": (6, {}),  # reported, not scored (nbgrader gives 0: --strict-stderr)
    "lost_metadata": (6, {}),  # answers found by the functions they define
    "truncated_json": (0, {"add_one_test": "not graded", "square_test": "not graded", "mean_test": "not graded"}),
    "wrong_nbformat": (0, {"add_one_test": "not graded", "square_test": "not graded", "mean_test": "not graded"}),
    "no_cells": (0, {"add_one_test": "not graded", "square_test": "not graded", "mean_test": "not graded"}),
}


@pytest.fixture(scope="module")
def rows():
    return grade_all(FIXTURES / "submissions", SOURCE, LIMITS, jobs=2, progress=False)


def by_student(rows, student):
    return [r for r in rows if r.student == student]


def test_fixtures_are_up_to_date(tmp_path):
    make_fixtures.write(tmp_path)
    for path in sorted(tmp_path.rglob("*.ipynb")):
        committed = FIXTURES / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), f"run python {FIXTURES}/make_fixtures.py"


def test_every_case_is_graded(rows):
    assert sorted({r.student for r in rows}) == sorted(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_score_and_statuses(rows, case):
    check_case(rows, case)


def check_case(rows, case):
    """``case`` scored EXPECTED[case]: its points, and the status of each exercise (tests/test_grading_load.py too)."""
    points, failures = EXPECTED[case]
    mine = [r for r in by_student(rows, case) if r.max_points > 0]
    assert [r.exercise for r in mine] == ["add_one_test", "square_test", "mean_test"]
    assert sum(r.points for r in mine) == points
    assert sum(r.max_points for r in mine) == 6
    statuses = {r.exercise: r.status for r in mine if r.status != "passed"}
    assert statuses == failures
    for r in mine:
        assert (r.points == r.max_points) == (r.status == "passed")


def message(rows, case, exercise):
    return next(r.message for r in by_student(rows, case) if r.exercise == exercise)


def check_limit_messages(rows):
    """The messages of the cases that hit a limit, of those graded (tests/test_grading_load.py checks the
    time-dependent ones under load too)."""
    graded = {r.student for r in rows}
    assert "longer than 20 s" in message(rows, "infinite_loop", "square_test")
    assert "os_exit" not in graded or "kernel died" in message(rows, "os_exit", "add_one_test")
    assert "MemoryError" in message(rows, "memory_bomb", "square_test")
    assert "Unable to allocate 256. MiB" in message(rows, "memory_bomb", "square_test")  # numpy, at the cap


def test_messages_say_what_is_wrong(rows):
    check_limit_messages(rows)
    assert "NotImplementedError" in message(rows, "empty", "square_test")
    assert "square is off" in message(rows, "partial", "square_test")
    assert "shape (3,), expected (2, 2)" in message(rows, "hardcoded", "add_one_test")  # hidden test
    assert "should be a numpy array or a torch tensor" in message(rows, "always_equal", "square_test")
    assert "not valid JSON" in message(rows, "truncated_json", "notebook")
    assert "nbformat 3 is not supported" in message(rows, "wrong_nbformat", "notebook")
    assert "no list of cells" in message(rows, "no_cells", "notebook")
    warned = message(rows, "warns", "square_test")
    assert "stderr (reported, not scored)" in warned and "squaring may overflow" in warned


def test_answers_that_lost_their_metadata_are_found_by_name_and_the_feedback_says_so(rows):
    notes = {r.exercise: r for r in by_student(rows, "lost_metadata") if r.max_points == 0}
    assert set(notes) == {"add_one", "square", "mean_of"}, notes
    assert all(r.status == "matched by name" for r in notes.values())
    assert "your cell that defines square() was graded as its answer" in notes["square"].message
    assert "lost its grader metadata" in notes["square"].message


def test_tampering_is_reported_not_scored(rows):
    notes = {r.student: r.message for r in rows if r.status == "tampered"}
    assert set(notes) == {"edited_test", "deleted_test"}
    assert "'square_test' was edited" in notes["edited_test"]
    assert "'add_one_test' was deleted" in notes["deleted_test"]
    assert all(r.points == r.max_points == 0 for r in rows if r.status == "tampered")


def test_gradebook_files(rows, tmp_path):
    write_gradebook(rows, tmp_path)
    book = json.loads((tmp_path / "gradebook.json").read_text())
    assert len(book) == len(rows)
    assert set(book[0]) == {"student", "notebook", "exercise", "points", "max_points", "status", "message"}
    csv_lines = (tmp_path / "gradebook.csv").read_text().splitlines()
    assert csv_lines[0] == "student,notebook,exercise,points,max_points,status,message"
    assert len(csv_lines) == len(rows) + 1
    feedback = (tmp_path / "feedback" / "partial.md").read_text()
    assert "homework.ipynb: 3 / 6 points" in feedback and "square is off" in feedback
    assert "partial" in summary(rows) and "3 / 6" in summary(rows)
    first = {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    write_gradebook(rows, tmp_path)  # writing again changes nothing and leaves no temp files
    assert {p.name: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == first


def test_gradebook_exports_for_lms(rows, tmp_path):
    """One row per student for Moodle/spreadsheets, Canvas' import layout, Gradescope's results.json."""
    write_gradebook(rows, tmp_path)
    with open(tmp_path / "grades_wide.csv", newline="") as f:
        wide = list(csv.DictReader(f))
    assert [r["student"] for r in wide] == sorted(EXPECTED)
    partial = next(r for r in wide if r["student"] == "partial")
    assert partial["homework: square_test"] == "0" and partial["homework: add_one_test"] == "2"
    assert partial["homework total"] == partial["total"] == "3"
    assert all(float(r["total"]) == EXPECTED[r["student"]][0] for r in wide)

    with open(tmp_path / "canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "homework"]
    assert canvas[1] == ["Points Possible", "", "", "", "", "6"]
    assert ["partial", "", "", "partial", "", "3"] in canvas

    results = json.loads((tmp_path / "gradescope" / "partial" / "results.json").read_text())
    assert results["score"] == 3 and [t["max_score"] for t in results["tests"]] == [2, 3, 1]
    square = next(t for t in results["tests"] if t["name"] == "homework: square_test")
    assert square["status"] == "failed" and square["score"] == 0 and "square is off" in square["output"]
    tampered = json.loads((tmp_path / "gradescope" / "edited_test" / "results.json").read_text())
    assert "was edited" in tampered["output"]  # notes without points go to the overall output


def test_learners_check_their_own_copy_on_the_visible_tests(repo, tmp_path, capsys):
    from course_tools.grading.__main__ import main

    assert main(["check", str(repo / "student" / "00_setup.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "00_setup.ipynb: 0 / 0.5 points" in out and "not attempted" in out and "Visible tests only" in out
    assert "softmax_hidden_test" not in out  # the hidden half is the instructor's
    solved = nbformat.read(repo / "student" / "00_setup.ipynb", as_version=4)
    source = nbformat.read(repo / "notebooks" / "00_setup.ipynb", as_version=4)
    answer = next(c.source for c in source.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution"))
    for cell in solved.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            cell.source = answer
    mine = tmp_path / "00_setup.ipynb"
    nbformat.write(solved, mine)
    assert main(["check", str(mine)]) == 0
    out = capsys.readouterr().out
    assert "00_setup.ipynb: 0.5 / 0.5 points" in out and "tampered" not in out
    assert "cell errors" not in out  # every lecture cell ran: the sandbox holds what the notebook reads
    assert main(["check", str(tmp_path / "missing.ipynb")]) == 2


def copy_submissions(cases, folder: Path) -> Path:
    """``folder`` holding the fixture submissions of ``cases``."""
    folder.mkdir()
    for case in cases:
        (folder / f"{case}.ipynb").write_text((FIXTURES / "submissions" / f"{case}.ipynb").read_text())
    return folder


def test_serial_and_parallel_agree_and_regrading_is_idempotent(rows, tmp_path):
    # `rows` graded every case two at a time; grading again, one at a time, gives the same rows. Two cases
    # stand for all: each submission is graded alone in its own worker process, so --jobs only changes
    # how many run at once, the order they finish in and the threads each kernel gets. partial has passed
    # and failed exercises with messages; truncated_json cannot be read; both check that rows keep their order.
    cases = ("partial", "truncated_json")
    serial = grade_all(copy_submissions(cases, tmp_path / "subs"), SOURCE, LIMITS, jobs=1, progress=False)
    assert serial == [r for r in rows if r.student in cases]


def test_extra_hidden_tests_from_the_instructor(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nb = make_fixtures.answered({**make_fixtures.SOLUTIONS, "mean_of": "    return float(sum(x) / len(x))"})
    (subs / "loops.ipynb").write_text(render(nb))
    (subs / "full.ipynb").write_text((FIXTURES / "submissions" / "full.ipynb").read_text())
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "mean_test.py").write_text('check_scalar("mean_of a matrix", mean_of(np.ones((2, 3))), 1.0)\n')
    rows = grade_all(subs, SOURCE, LIMITS, jobs=2, extra_tests=extra, progress=False)
    mean = {r.student: r for r in rows if r.exercise == "mean_test"}
    assert mean["full"].status == "passed"
    assert mean["loops"].status == "failed"  # sum over rows of a matrix is not the mean of all entries


def test_partial_credit_shown_by_a_test_cell(tmp_path):
    # nbgrader's rule: a number on a test cell's last line is the points it earns
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "full.ipynb").write_text((FIXTURES / "submissions" / "full.ipynb").read_text())
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "square_test.py").write_text("1.5\n")
    (extra / "mean_test.py").write_text("'not a number'\n")
    rows = grade_all(subs, SOURCE, LIMITS, jobs=1, extra_tests=extra, progress=False)
    got = {r.exercise: (r.points, r.max_points, r.status) for r in rows}
    assert got["square_test"] == (1.5, 3, "partial")
    assert got["mean_test"] == (1, 1, "passed")
    assert got["add_one_test"] == (2, 2, "passed")


def test_credit_follows_nbgrader():
    assert credit(CellResult("ok"), 3) == (3, "passed", "")
    assert credit(CellResult("ok", value="3"), 3)[:2] == (3, "passed")
    assert credit(CellResult("ok", value="0.0"), 3)[:2] == (0, "partial")
    assert credit(CellResult("ok", value="-2"), 3)[:2] == (3, "passed")  # nbgrader: full marks, with a warning
    assert credit(CellResult("ok", value="7"), 3)[:2] == (0, "error")
    warned = CellResult("ok", stderr="UserWarning: careful\n  warnings.warn")
    points, status, message = credit(warned, 3)  # reported, not scored
    assert (points, status) == (3, "passed") and "UserWarning: careful" in message and "not scored" in message
    points, status, message = credit(warned, 3, strict_stderr=True)  # nbgrader's rule
    assert (points, status) == (0, "failed") and "UserWarning: careful" in message
    assert credit(CellResult("ok", value="1", stderr="DeprecationWarning: x"), 3)[:2] == (1, "partial")


def test_submission_without_a_source(tmp_path):
    (tmp_path / "alice.ipynb").write_text((FIXTURES / "submissions" / "full.ipynb").read_text())
    rows = grade_all(tmp_path, None, LIMITS, progress=False)
    assert [(r.student, r.status) for r in rows] == [("alice", "error")]
    assert "no source notebook" in rows[0].message


def test_missing_submissions_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder of submissions"):
        grade_all(tmp_path / "nope", SOURCE)


# --- student versions -------------------------------------------------------------


def test_student_version_stubs_solutions_and_drops_hidden_tests():
    source = nbformat.read(SOURCE, as_version=4)
    student = student_version(source)
    text = render(student)
    assert "return x + 1" not in text and "HIDDEN" not in text and "add_one on 2-d" not in text
    assert text.count("raise NotImplementedError()") == 3
    add_one = next(c for c in student.cells if c.get("id") == "add_one")
    assert add_one.source == 'def add_one(x):\n    """x + 1, element-wise."""\n    raise NotImplementedError()'
    ids = [c.get("id") for c in source.cells]  # the same cells, with the exercise summary after the title
    assert [c.get("id") for c in student.cells] == [ids[0], "exercise-summary", *ids[1:]]
    assert student.cells[1].source.startswith("**Graded exercises in this notebook: 6 points.**")


def test_markers():
    assert replace_solution("x = 1", "code", "w") == "raise NotImplementedError()"
    assert replace_solution("a\n### BEGIN SOLUTION\nb\n### END SOLUTION", "markdown", "w") == "a\nYOUR ANSWER HERE"
    assert remove_hidden_tests("v\n### BEGIN HIDDEN TESTS\nh\n### END HIDDEN TESTS\n", "w") == "v"
    with pytest.raises(NotebookFormatError, match="never closed"):
        replace_solution("### BEGIN SOLUTION\nx", "code", "nb cell 3")
    with pytest.raises(NotebookFormatError, match="without"):
        remove_hidden_tests("### END HIDDEN TESTS", "nb cell 3")


def test_duplicate_grade_ids_are_an_error():
    nb = make_fixtures.homework()
    nb.cells[4].metadata["nbgrader"]["grade_id"] = "add_one"
    with pytest.raises(NotebookFormatError, match="grade_id 'add_one' already used"):
        student_version(nb)


def test_solution_markers_outside_solution_cells_are_an_error():
    nb = make_fixtures.homework()
    nb.cells[0].source = "Write your code between `### BEGIN SOLUTION` and `### END SOLUTION`."
    with pytest.raises(NotebookFormatError, match="solution markers outside a solution cell"):
        student_version(nb)
