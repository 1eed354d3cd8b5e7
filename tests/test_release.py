"""The committed student versions are exactly what `release` writes from notebooks/."""

import nbformat

from course_tools.grading.cells import grade_id, is_grade, is_solution
from course_tools.grading.release import release


def test_student_versions_are_up_to_date(repo, tmp_path):
    release(repo / "notebooks", tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.ipynb")}
    committed = {p.name: p.read_text() for p in (repo / "student").glob("*.ipynb")}
    assert sorted(committed) == sorted(fresh), "run `python -m course_tools.grading release`"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"student/ is stale for {stale}: run `python -m course_tools.grading release`"


def test_student_versions_hold_no_solutions(repo):
    for path in sorted((repo / "student").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            lines = {line.strip() for line in cell.source.splitlines()}
            assert not lines & {"### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"}, f"{path.name} {grade_id(cell)}"
            if is_solution(cell) and cell.cell_type == "code":
                assert "raise NotImplementedError()" in cell.source, f"{path.name} {grade_id(cell)}"
            assert cell.cell_type != "code" or not cell.outputs


def test_every_exercise_has_points(repo):
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        solutions = [c for c in nb.cells if is_solution(c)]
        tests = [c for c in nb.cells if is_grade(c)]
        assert len(tests) >= len([c for c in solutions if c.cell_type == "code"]), path.name


def test_student_versions_open_with_their_exercises_points_and_time(repo):
    """Issue 20: each notebook's total shows at the top of its student version."""
    nb = nbformat.read(repo / "student" / "02_bptt.ipynb", as_version=4)
    summary = nb.cells[1]
    assert summary.cell_type == "markdown" and summary.id == "exercise-summary"
    assert summary.source.startswith("**Graded exercises in this notebook: 15 points, about 75 minutes.**")
    assert summary.source.count("\n- Exercise ") == 5
    setup = nbformat.read(repo / "student" / "00_setup.ipynb", as_version=4).cells[1].source
    assert setup.startswith("**Graded exercises in this notebook: 1 point, about 10 minutes.**")
    source = nbformat.read(repo / "notebooks" / "02_bptt.ipynb", as_version=4)
    assert all(c.get("id") != "exercise-summary" for c in source.cells)  # only the student version has it
