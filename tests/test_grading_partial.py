"""Issue 14, item 4: an exercise's visible and hidden checks are graded cells of their own, so a
solution that passes the visible checks and fails a hidden one keeps the visible half."""

from __future__ import annotations

import nbformat

from course_tools.grading.cells import grade_id, is_grade
from course_tools.grading.executor import Limits
from course_tools.grading.runner import grade_all

NB = nbformat.v4


def homework(answer: str) -> nbformat.NotebookNode:
    solution = {"grade": False, "grade_id": "add_one", "locked": False, "schema_version": 3, "solution": True,
                "task": False}
    test = {"grade": True, "grade_id": "add_one_test", "locked": True, "points": 1, "schema_version": 3,
            "solution": False, "task": False}
    hidden = dict(test, grade_id="add_one_hidden_test")
    return NB.new_notebook(cells=[
        NB.new_markdown_cell("### Exercise 1 (2 points, about 5 minutes): add one"),
        NB.new_code_cell("import numpy as np\nfrom course_utils.core.checks import check_close"),
        NB.new_code_cell(f"def add_one(x):\n    ### BEGIN SOLUTION\n    {answer}\n    ### END SOLUTION",
                         metadata={"nbgrader": solution}),
        NB.new_code_cell('check_close("add_one", add_one(np.arange(3.0)), np.arange(1.0, 4.0))',
                         metadata={"nbgrader": test}),
        NB.new_code_cell("# Hidden tests: they run when your notebook is graded.\n### BEGIN HIDDEN TESTS\n"
                         'check_close("add_one on 2-d", add_one(np.ones((2, 2))), np.full((2, 2), 2.0))\n'
                         "### END HIDDEN TESTS", metadata={"nbgrader": hidden}),
    ])


def test_failing_a_hidden_check_keeps_the_visible_points(tmp_path):
    nbformat.write(homework("return x + 1"), tmp_path / "source.ipynb")
    (tmp_path / "subs").mkdir()
    nbformat.write(homework("return x + 1 if x.ndim == 1 else x"), tmp_path / "subs" / "only_1d.ipynb")
    nbformat.write(homework("return x + 1"), tmp_path / "subs" / "right.ipynb")
    rows = grade_all(tmp_path / "subs", tmp_path / "source.ipynb", Limits(cell_timeout=60, notebook_timeout=300),
                     progress=False)
    got = {(r.student, r.exercise): (r.points, r.status) for r in rows if r.max_points > 0}
    assert got[("only_1d", "add_one_test")] == (1, "passed")
    assert got[("only_1d", "add_one_hidden_test")] == (0, "failed")
    assert got[("right", "add_one_test")] == (1, "passed") and got[("right", "add_one_hidden_test")] == (1, "passed")


def test_every_course_exercise_has_its_hidden_checks_in_a_cell_of_their_own(repo):
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        cells = nbformat.read(path, as_version=4).cells
        for i, cell in enumerate(cells):
            if not is_grade(cell) or "### BEGIN HIDDEN TESTS" not in cell.source:
                continue
            before = cell.source.split("### BEGIN HIDDEN TESTS")[0]
            assert all(line.strip().startswith("#") or not line.strip() for line in before.splitlines()), \
                f"{path.name} {grade_id(cell)}: visible checks and hidden tests share a cell"
            expected = grade_id(cells[i - 1]).removesuffix("_test") + "_hidden_test"  # right after the visible checks
            assert grade_id(cell) == expected, (path.name, grade_id(cell))
