"""Student versions: solutions replaced by stubs, hidden tests removed, outputs cleared.

    python -m course_tools.grading release            # notebooks/*.ipynb -> student/
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cells import check_exercises, grade_id, is_grade, is_solution, points, remove_hidden_tests, replace_solution

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "notebooks"
STUDENT_DIR = REPO / "student"


EXERCISE_HEADING = re.compile(r"^#{2,4} (?:\d+\. )?(Exercise\b[^(]*)\(([^)]*)\):\s*(.+)$", re.M)
MINUTES = re.compile(r"(?:about |~)(\d+) min")
SUMMARY_ID = "exercise-summary"


def exercise_summary(source: NotebookNode) -> str | None:
    """The markdown a student version opens with: its graded exercises, points and time (None if none)."""
    total = sum(points(c) for c in source.cells if is_grade(c))
    if not total:
        return None
    headings = [m for c in source.cells if c.cell_type == "markdown" for m in EXERCISE_HEADING.finditer(c.source)]
    minutes = [MINUTES.search(m[2]) for m in headings]
    time = f", about {sum(int(m[1]) for m in minutes)} minutes" if headings and all(minutes) else ""
    lines = [f"**Graded exercises in this notebook: {total:g} point{'' if total == 1 else 's'}{time}.** Each "
             "exercise's check cell "
             "tells you what is wrong; `make check NOTEBOOK=<this file>` scores your copy on the visible "
             "tests (your instructor's grading adds hidden ones).", ""]
    lines += [f"- {m[1].strip()} ({m[2].strip()}): {m[3].strip()}" for m in headings]
    return "\n".join(lines).rstrip()


def student_version(source: NotebookNode, name: str = "notebook") -> NotebookNode:
    """A copy of ``source`` as a learner receives it, opening with a summary of its exercises."""
    check_exercises(source, name)
    nb = copy.deepcopy(source)
    summary = exercise_summary(source)
    if summary:
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(summary, id=SUMMARY_ID))
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
