"""Exercises on the website: solutions behind a "show solution" control, hidden tests never.

A lecture page shows each exercise as a learner receives it (the student version's cell,
``raise NotImplementedError()`` in place of the answer), with the solution collapsed below
it; the test cells lose their hidden tests before the notebook runs (the same rules as the
release step, from :mod:`course_tools.grading.cells`). The page template reads the
``course_site`` cell metadata that :func:`mark_solutions` writes.
"""

from __future__ import annotations

from nbformat import NotebookNode

from ..grading.cells import grade_id, is_grade, is_solution, remove_hidden_tests, replace_solution

SITE_KEY = "course_site"  # cell metadata the page template reads


def without_hidden_tests(nb: NotebookNode, name: str) -> NotebookNode:
    """Drop the hidden tests from the test cells, in place, before the notebook runs: the page
    then shows neither them nor what they print. Returns ``nb``."""
    for index, cell in enumerate(nb.cells):
        if is_grade(cell):
            cell.source = remove_hidden_tests(cell.source, f"{name} cell {index} ({grade_id(cell)})")
    return nb


def mark_solutions(nb: NotebookNode, name: str) -> NotebookNode:
    """Give each solution cell its student stub (``course_site`` metadata), in place; returns ``nb``."""
    for index, cell in enumerate(nb.cells):
        if is_solution(cell):
            stub = replace_solution(cell.source, cell.cell_type, f"{name} cell {index} ({grade_id(cell)})")
            cell.metadata[SITE_KEY] = {"stub": stub, "grade_id": grade_id(cell) or ""}
    return nb
