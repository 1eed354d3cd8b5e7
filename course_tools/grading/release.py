"""Student versions: solutions replaced by stubs, hidden tests removed, outputs cleared.

    python -m course_tools.grading release            # notebooks/*.ipynb -> student/
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cells import check_exercises, grade_id, is_grade, is_solution, remove_hidden_tests, replace_solution

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "notebooks"
STUDENT_DIR = REPO / "student"


def student_version(source: NotebookNode, name: str = "notebook") -> NotebookNode:
    """A copy of ``source`` as a learner receives it."""
    check_exercises(source, name)
    nb = copy.deepcopy(source)
    nb.metadata.pop("jupytext", None)  # student copies are not paired with a .py file
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index} ({grade_id(cell)})"
        if is_solution(cell):
            cell.source = replace_solution(cell.source, cell.cell_type, where)
        elif is_grade(cell):
            cell.source = remove_hidden_tests(cell.source, where)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def render(nb: NotebookNode) -> str:
    """The exact text written to disk (so a staleness test can compare strings)."""
    return nbformat.writes(nb) + "\n"


def release(source_dir: Path = SOURCE_DIR, student_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write the student version of every notebook in ``source_dir``; remove stale ones."""
    student_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out = student_dir / path.name
        out.write_text(render(student_version(nb, path.name)), encoding="utf-8")
        written.append(out)
    for old in student_dir.glob("*.ipynb"):
        if not (source_dir / old.name).exists():
            old.unlink()
    return written
