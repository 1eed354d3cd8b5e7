"""Submissions that try to talk their way through the grader score what honest wrong answers score.

Each trick submission holds the same wrong answers (add_one adds 2, square cubes, mean_of
sums) plus one trick from the list of issue 14 (traceback display off, checks and numpy
patched to no-ops, the shell's execution wrapped to swallow errors, a hook that makes every
cell show its points as its value). The verdicts come from a clean kernel where none of
that ran (course_tools.grading.replay), so each scores 0, as the honest wrong answers do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.cells import grade_id
from course_tools.grading.clean_kernel import names_read, source_imports
from course_tools.grading.executor import Limits
from course_tools.grading.grade import LEARNER_KERNEL_NOTE
from course_tools.grading.runner import grade_all

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
SOURCE = FIXTURES / "homework.ipynb"
REPO = Path(__file__).resolve().parent.parent
LIMITS = Limits(cell_timeout=60, notebook_timeout=300, memory_mb=3072)

WRONG = {"add_one": "def add_one(x):\n    return x + 2",
         "square": "def square(x):\n    return x ** 3",
         "mean_of": "def mean_of(x):\n    return float(np.sum(x))"}

TRICKS = {
    "honest_wrong": "",
    "traceback_off": ("ip = get_ipython()\n"
                      "ip.showtraceback = lambda *a, **k: None\nip._showtraceback = lambda *a, **k: None"),
    "checks_patched": (
        "import numpy as np\nimport numpy.testing\nimport course_utils.core.checks as checks\n"
        "np.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
        "checks.check_close = checks.check_scalar = lambda *a, **k: None\n"
        "check_close = check_scalar = checks.check_close"),
    "execution_swallowed": (
        "ip = get_ipython()\n"
        "async def run_code(code, result=None, *, async_=False):\n"
        "    try:\n        exec(code, ip.user_global_ns, ip.user_ns)\n    except BaseException:\n        pass\n"
        "    return False\n"
        "ip.run_code = run_code"),
    "points_as_value": (
        "import ast\n"
        "class ShowPoints(ast.NodeTransformer):\n"
        "    def visit_Module(self, node):\n"
        "        guard = ast.Try(body=node.body or [ast.Pass()], handlers=[ast.ExceptHandler(body=[ast.Pass()])],\n"
        "                        orelse=[], finalbody=[])\n"
        "        body = [guard, ast.Expr(ast.Constant(3))]\n"
        "        return ast.fix_missing_locations(ast.Module(body=body, type_ignores=[]))\n"
        "get_ipython().ast_transformers.append(ShowPoints())"),
}


def submission(trick: str) -> nbformat.NotebookNode:
    nb = nbformat.read(SOURCE, as_version=4)
    for cell in nb.cells:
        if grade_id(cell) in WRONG:
            cell.source = WRONG[grade_id(cell)]
            if grade_id(cell) == "add_one" and trick:
                cell.source = trick + "\n\n" + cell.source
    return nb


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    subs = tmp_path_factory.mktemp("tricks")
    for name, trick in TRICKS.items():
        nbformat.write(submission(trick), subs / f"{name}.ipynb")
    right = nbformat.read(SOURCE, as_version=4)  # the source itself: full marks through the clean kernel
    nbformat.write(right, subs / "right.ipynb")
    odd = submission("")  # right answers; one is not plain data (a float subclass of the learner's)
    for cell in odd.cells:
        if grade_id(cell) == "add_one":
            cell.source = "def add_one(x):\n    return x + 1"
        if grade_id(cell) == "mean_of":
            cell.source = "class MyFloat(float):\n    pass\n\ndef mean_of(x):\n    return MyFloat(np.mean(x))"
    nbformat.write(odd, subs / "not_data.ipynb")
    return grade_all(subs, SOURCE, LIMITS, jobs=2, progress=False)


def score(rows, student):
    return sum(r.points for r in rows if r.student == student and r.max_points > 0)


def test_the_source_still_scores_full_marks(rows):
    assert score(rows, "right") == 6


@pytest.mark.parametrize("trick", [t for t in TRICKS if t != "honest_wrong"])
def test_a_trick_scores_what_honest_wrong_answers_score(rows, trick):
    assert score(rows, "honest_wrong") == 0
    mine = [r for r in rows if r.student == trick and r.max_points > 0]
    assert len(mine) == 3 and score(rows, trick) == 0, [(r.exercise, r.status, r.message) for r in mine]
    assert all(r.status == "failed" for r in mine)


def test_an_answer_that_cannot_cross_is_graded_in_the_learners_kernel_and_says_so(rows):
    mine = {r.exercise: r for r in rows if r.student == "not_data" and r.max_points > 0}
    assert mine["mean_test"].status == "passed"  # a float subclass: a float to check_scalar, not data to replay
    assert LEARNER_KERNEL_NOTE.format("")[:30] in mine["mean_test"].message
    assert "MyFloat" in mine["mean_test"].message
    assert mine["add_one_test"].status == "passed" and mine["add_one_test"].message == ""  # an array: crosses
    assert mine["square_test"].status == "failed"


def test_which_names_a_test_cell_needs_comes_from_the_source():
    assert names_read("from m import check\nx = 3\ncheck(my_f(x), expected, len(data))") == ["data", "expected", "my_f"]
    code, names = source_imports(nbformat.read(SOURCE, as_version=4))
    assert names == ["check_close", "check_scalar", "np"] and "import numpy as np" in code
    split = nbformat.read(REPO / "notebooks" / "03_lstm.ipynb", as_version=4)  # a check imported by a test cell
    assert "check_adding_config" in source_imports(split)[1]


def test_reference_delegation_scores_zero_with_the_reason(tmp_path):
    nb = nbformat.read(REPO / "notebooks" / "00_setup.ipynb", as_version=4)
    for cell in nb.cells:
        if grade_id(cell) == "softmax":
            head = cell.source.split("### BEGIN SOLUTION")[0]
            cell.source = "from course_utils.core.checks import _softmax as softmax\n\n" + head + "return softmax(z)"
    (tmp_path / "subs").mkdir()
    nbformat.write(nb, tmp_path / "subs" / "00_setup.ipynb")
    shutil.copy(REPO / "notebooks" / "00_setup.ipynb", tmp_path / "source.ipynb")
    rows = grade_all(tmp_path / "subs", tmp_path / "source.ipynb", LIMITS, progress=False)
    graded = [r for r in rows if r.max_points > 0]
    assert graded and all(r.points == 0 for r in graded)
    assert "calls softmax, an existing implementation" in graded[0].message
