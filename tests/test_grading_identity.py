"""An answer whose identity matters, graded through the real grader (both kernels).

Some checks ask whether the learner's function returned *the very objects* of an argument:
08d's ``check_decay_groups`` needs the model's parameters themselves (an optimiser built on
copies would train nothing). The verdict comes from a clean kernel where the learner's answer
is replayed (course_tools.grading.replay), so those objects must arrive there as the clean
kernel's own model's parameters, not as copies of their values; a copy must stay a copy. A tiny
notebook with 08d's exercise 3 stands for any such exercise.
"""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_tools.grading.executor import Limits
from course_tools.grading.grade import LEARNER_KERNEL_NOTE
from course_tools.grading.runner import grade_all

LIMITS = Limits(cell_timeout=120, notebook_timeout=300, memory_mb=3072)
HEAD = 'def my_decay_groups(model, weight_decay):\n    """AdamW\'s parameter groups."""\n'
RIGHT = ("    ### BEGIN SOLUTION\n"
         "    params = list(model.parameters())\n"
         '    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},\n'
         '            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]\n'
         "    ### END SOLUTION")
ANSWERS = {  # "tied_twice": walking the modules meets a tied matrix twice
    "right": HEAD + RIGHT,
    "copies": HEAD + ('    params = [p.detach() for p in model.parameters()]\n'
                      '    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},\n'
                      '            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]'),
    "tied_twice": HEAD + ('    params = [p for m in model.modules() for p in m.parameters(recurse=False)]\n'
                          '    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},\n'
                          '            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]'),
    "delegated": ("from course_utils.recipe import decay_groups\n\n" + HEAD
                  + "    return decay_groups(model, weight_decay)"),
}


def _meta(gid: str, solution: bool, points: int | None = None) -> dict:
    meta = {"grade": points is not None, "grade_id": gid, "locked": not solution, "schema_version": 3,
            "solution": solution, "task": False}
    return {"nbgrader": meta | ({"points": points} if points is not None else {})}


def notebook(answer: str) -> nbformat.NotebookNode:
    return new_notebook(cells=[
        new_code_cell("import torch"),
        new_code_cell(answer, metadata=_meta("decay_groups", True)),
        new_code_cell("from course_utils.exercises.recipe import check_decay_groups\n\n"
                      "check_decay_groups(my_decay_groups)", metadata=_meta("decay_groups_test", False, 1)),
    ])


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("identity")
    (root / "subs").mkdir()
    nbformat.write(notebook(HEAD + RIGHT), root / "source.ipynb")
    for name, answer in ANSWERS.items():
        nbformat.write(notebook(answer), root / "subs" / f"{name}.ipynb")
    found = grade_all(root / "subs", root / "source.ipynb", LIMITS, jobs=2, progress=False)
    return {r.student: r for r in found if r.max_points > 0}


def test_the_models_own_parameters_pass_in_the_clean_kernel(rows):
    assert rows["right"].status == "passed", rows["right"].message


@pytest.mark.parametrize("name, reason", [
    ("copies", "not one of the model's parameters"),
    ("tied_twice", "tied"),
    ("delegated", "an existing implementation"),
])
def test_the_named_mistakes_still_fail_there(rows, name, reason):
    assert rows[name].status == "failed" and reason in rows[name].message, rows[name].message


def test_every_verdict_is_the_clean_kernels(rows):
    assert not [r.student for r in rows.values() if LEARNER_KERNEL_NOTE.split(":")[0] in r.message]
