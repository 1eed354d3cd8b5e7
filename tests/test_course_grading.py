"""The grader on the real course notebooks.

Grading a notebook runs all of it twice more (the source in the learner's kernel, then the
student version), and nbval already runs every notebook once. So a few notebooks are graded
end to end, chosen to cover every kind of answer that crosses to the clean kernel (plain
values, arrays and tensors of the notebook's, a torch generator, a course model among a call's
arguments, a function of the notebook's): the source scores full marks, and 00's student version
0 without crashing. Every notebook with exercises gets the static checks that make the same
promises hold without running it:

- the student version is the source with solutions stubbed and hidden tests removed, cell for
  cell (so its cells up to the first exercise are the ones nbval ran), with the same grade_ids
  and points;
- no later cell reads a name that only a solution defines (the rest of a student version runs);
- a test cell reads only the learner's ``my_*`` answers, names the source imports, and data the
  notebook made, listed below (so it is decided in the clean kernel, not the learner's).
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.cells import grade_id, is_grade, is_solution, points
from course_tools.grading.clean_kernel import names_bound, names_read, source_imports
from course_tools.grading.executor import Limits
from course_tools.grading.grade import LEARNER_KERNEL_NOTE, exercises
from course_tools.grading.release import SUMMARY_ID
from course_tools.grading.runner import grade_all

REPO = Path(__file__).resolve().parent.parent
LEARNER_KERNEL = LEARNER_KERNEL_NOTE.split(":")[0]  # "graded in your own kernel"

GRADED = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if exercises(nbformat.read(p, as_version=4))]

# Graded end to end: 00 the smallest; 01 a tensor of the notebook's (val_ids); 05b a torch
# generator and a course model passed to the learner's functions (state crossed, model
# fingerprinted) and tensors of the notebook's; 09 arrays and a function the notebook defines.
END_TO_END = ["00_setup.ipynb", "01_rnn.ipynb", "05b_generation.ipynb", "09_modern_rnns.ipynb"]
# Of those, the student version is graded end to end for 00 only: the others' student versions would run their
# lessons' trainings once more for what the static checks below already show (each stub's NotImplementedError
# reaches its tests; no later cell reads a name only a solution defines).
STUDENT_END_TO_END = ["00_setup.ipynb"]

# Names a test cell reads that are neither the learner's (my_*) nor imported by the source: data
# the notebook made, which crosses to the clean kernel as a value. A name added here must be of
# a kind an END_TO_END notebook shows crossing (numbers, arrays, tensors, functions of the notebook).
NOTEBOOK_DATA = {
    ("01_rnn.ipynb", "sequence_loss_hidden_test"): {"val_ids"},
    ("05b_generation.ipynb", "sample_next_hidden_test"): {"logits"},
    ("05d_forecasting.ipynb", "windows_hidden_test"): {"sunspots"},
    ("05d_forecasting.ipynb", "fit_ar_hidden_test"): {"sunspots", "years"},
    ("05d_forecasting.ipynb", "standardize_hidden_test"): {"sunspots", "years"},
    ("05d_forecasting.ipynb", "recursive_forecast_hidden_test"): {"ar9_own", "sunspots", "years"},
}


def test_every_notebook_with_exercises_is_checked():
    assert len(GRADED) >= 5
    assert set(END_TO_END) <= {p.name for p in GRADED}


# ----------------------------------------------------------------------------- static, every notebook

def _pairs(path: Path) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    """(source cell, student cell) of a notebook, the student version's exercise summary left out."""
    source = nbformat.read(path, as_version=4)
    student = nbformat.read(REPO / "student" / path.name, as_version=4)
    cells = [c for c in student.cells if c.get("id") != SUMMARY_ID]
    assert len(cells) == len(source.cells), f"{path.name}: the student version has other cells than the source"
    return list(zip(source.cells, cells, strict=True))


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_student_version_is_the_source_cell_for_cell(path):
    """Same cells, grade_ids and points; the ones before the first exercise unchanged (nbval ran them)."""
    pairs = _pairs(path)
    assert [(grade_id(s), points(s)) for s, _ in pairs] == [(grade_id(c), points(c)) for _, c in pairs]
    first = next(i for i, (s, _) in enumerate(pairs) if is_solution(s))
    assert all(s.source == c.source for s, c in pairs[:first]), f"{path.name}: a cell before the first exercise"
    # that the rest is what `release` writes, test_release.py checks


def _solution_only_names(pairs) -> list[tuple[int, set[str]]]:
    """(index, names) of each code cell after an exercise: names bound only by a solution before it."""
    only, reads = set(), []
    for index, (source, student) in enumerate(pairs):
        if source.cell_type != "code":
            continue
        if is_solution(source):
            stub = names_bound(student.source)
            only |= {n for n in names_bound(source.source) if n.startswith("my_") or n not in stub}
        elif not is_grade(source):
            only -= names_bound(source.source)  # a lecture cell that defines the name itself
            reads.append((index, set(names_read(source.source)) & only))
    return reads


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_no_lecture_cell_reads_a_name_only_a_solution_defines(path):
    """Otherwise the rest of the student version would stop at the first unsolved exercise."""
    bad = [(index, sorted(names)) for index, names in _solution_only_names(_pairs(path)) if names]
    assert not bad, f"{path.name}: cells (index, names) read a solution's names; use course_utils instead: {bad}"


def test_the_solution_name_scan_catches_a_lecture_cell_that_calls_the_exercise():
    def cell(source, **meta):
        return nbformat.v4.new_code_cell(source, metadata={"nbgrader": meta} if meta else {})

    solution = cell("def my_f(x):\n    ### BEGIN SOLUTION\n    helper = 2\n    return x * helper\n    ### END SOLUTION",
                    solution=True, grade_id="f")
    stub = cell("def my_f(x):\n    raise NotImplementedError()", solution=True, grade_id="f")
    test = cell("assert my_f(1) == 2", grade=True, grade_id="f_test", points=1)
    later = cell("y = my_f(3)\nz = helper")
    redefined = cell("def my_f(x):\n    return x\nw = my_f(1)")
    pairs = [(solution, stub), (test, test), (later, later), (redefined, redefined)]
    assert _solution_only_names(pairs) == [(2, {"my_f", "helper"}), (3, set())]


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_test_cells_read_only_answers_imports_and_listed_data(path):
    """What a test cell reads decides where it is graded: a name outside these would be graded in
    the learner's kernel if it is not plain data (a model, a learner's class)."""
    source = nbformat.read(path, as_version=4)
    _, imported = source_imports(source)
    found = {}
    for cell in source.cells:
        if is_grade(cell):
            other = {n for n in names_read(cell.source) if n not in imported and not n.startswith("my_")}
            if other:
                found[(path.name, grade_id(cell))] = other
    listed = {key: names for key, names in NOTEBOOK_DATA.items() if key[0] == path.name}
    assert found == listed, "a test cell reads other names than NOTEBOOK_DATA lists: read only my_* answers and " \
                            "imports, or check the value crosses (grade the notebook) and list it"


STUB_RUN = """
import json, sys, traceback
found = {}
for key, setup, stub, test in json.load(sys.stdin):
    space = {}
    exec(setup, space)
    exec(stub, space)
    try:
        exec(test, space)
        found[key] = "passed"
    except BaseException as err:  # what the grader's message reads: the error's name and text
        found[key] = f"{type(err).__name__}: {err}"
print(json.dumps(found))
"""


def _stub_cases(path: Path) -> list[tuple[str, str, str, str]]:
    """(grade_id, the source's imports, the student's stub before it, the test cell) for each test
    cell that reads only answers and imports (the others need the notebook's data)."""
    pairs = _pairs(path)
    setup, _ = source_imports(nbformat.read(path, as_version=4))
    cases, stub = [], None
    for source, student in pairs:
        if is_solution(source) and source.cell_type == "code":
            stub = student.source
        elif is_grade(source) and stub is not None and (path.name, grade_id(source)) not in NOTEBOOK_DATA:
            cases.append((grade_id(source), setup, stub, source.source))
    return cases


@pytest.mark.parametrize("path", [p for p in GRADED if p.name not in STUDENT_END_TO_END], ids=lambda p: p.name)
def test_student_stubs_fail_their_tests_as_not_attempted(path):
    """A student version scores 0, each test saying "not attempted": its stub's NotImplementedError
    reaches the grader (a check that caught it would report something else). One Python runs the
    source's imports, a stub and its test cell (hidden tests included) for every exercise."""
    cases = _stub_cases(path)
    assert cases, f"{path.name}: no exercise to try"
    done = subprocess.run([sys.executable, "-c", STUB_RUN], input=json.dumps(cases), capture_output=True, text=True,
                          cwd=REPO / "notebooks", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = {gid: message for gid, message in found.items() if "NotImplementedError" not in message}
    assert not wrong, f"{path.name}: these tests do not report the unsolved stub: {wrong}"


# ----------------------------------------------------------------------------- end to end, a few notebooks

@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    subs = tmp_path_factory.mktemp("course-submissions")
    for who, folder, names in (("source", REPO / "notebooks", END_TO_END),
                               ("student", REPO / "student", STUDENT_END_TO_END)):
        (subs / who).mkdir()
        for name in names:
            shutil.copy(folder / name, subs / who / name)
    return grade_all(subs, None, Limits(cell_timeout=600, notebook_timeout=1200), jobs=2, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", END_TO_END)
def test_source_scores_full_marks(rows, name):
    mine = [r for r in rows if r.student == "source" and r.notebook == name]
    graded = [r for r in mine if r.max_points > 0]
    assert len(graded) == len(exercises(nbformat.read(REPO / "notebooks" / name, as_version=4)))
    assert all(r.status == "passed" for r in graded), [(r.exercise, r.message) for r in graded if r.status != "passed"]
    assert not [r for r in mine if r.max_points == 0], [r.message for r in mine if r.max_points == 0]


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDENT_END_TO_END)
def test_student_version_scores_zero_and_still_runs(rows, name):
    mine = [r for r in rows if r.student == "student" and r.notebook == name]
    graded = [r for r in mine if r.max_points > 0]
    assert graded and all(r.points == 0 and r.status == "failed" for r in graded)
    assert all("not attempted" in r.message for r in graded), [r.message for r in graded]
    assert not [r for r in mine if r.max_points == 0], [r.message for r in mine if r.max_points == 0]


@pytest.mark.slow
def test_every_test_cell_is_decided_where_no_learner_code_runs(rows):
    """A test cell that reads an object made in the learner's kernel (a generator or a model from
    the visible cell, say) would be decided there, where the learner's code can reach the verdict."""
    own = sorted((r.notebook, r.exercise) for r in rows if r.student == "source" and LEARNER_KERNEL in r.message)
    assert own == [], own
