"""nbgrader's cell conventions (schema version 3): which cells are what, and markers.

A cell's role comes from its ``metadata["nbgrader"]``:

- solution cell: ``solution: true`` — the learner's answer, between
  ``### BEGIN SOLUTION`` and ``### END SOLUTION``;
- grade (test) cell: ``grade: true, solution: false, locked: true, points: N`` — checks,
  possibly with ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``;
- other locked cells: ``locked: true``.

nbgrader's manually graded cells (a markdown answer, a code answer with both ``solution`` and
``grade``, a task) are refused by :func:`check_exercises`, so by ``release`` and by the grader:
the grader scores code answers by their test cells, and would otherwise drop them unseen.
"""

from __future__ import annotations

import re

from nbformat import NotebookNode

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = "raise NotImplementedError()"
MARKDOWN_STUB = "YOUR ANSWER HERE"


class NotebookFormatError(ValueError):
    """A source notebook breaks the exercise conventions (the message says where)."""


def nbgrader_meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def grade_id(cell: NotebookNode) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def is_solution(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_grade(cell: NotebookNode) -> bool:
    """A test cell that carries points (autograded)."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.cell_type == "code"


def is_locked(cell: NotebookNode) -> bool:
    meta = nbgrader_meta(cell)
    return bool(meta.get("locked")) and not meta.get("solution")


def points(cell: NotebookNode) -> float:
    return float(nbgrader_meta(cell).get("points", 0))


def _manually_graded(cell: NotebookNode) -> str:
    """What kind of manually graded cell this is (nbgrader's "manually graded answer" or "task"), or ""."""
    meta = nbgrader_meta(cell)
    if meta.get("task"):
        return "a manually graded task cell"
    if meta.get("solution") and meta.get("grade"):
        return f"a manually graded answer ({cell.cell_type} cell with solution and grade)"
    if meta.get("solution") and cell.cell_type != "code":
        return f"a written answer ({cell.cell_type} solution cell)"
    if meta.get("grade") and cell.cell_type != "code":
        return f"a graded {cell.cell_type} cell"
    return ""


def _blocks(source: str, begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """(first, last) line indexes of each begin..end block; errors on unbalanced markers."""
    lines, blocks, start = source.split("\n"), [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == begin:
            if start is not None:
                raise NotebookFormatError(f"{where}: '{begin}' twice without '{end}' between (line {i + 1})")
            start = i
        elif text == end:
            if start is None:
                raise NotebookFormatError(f"{where}: '{end}' without '{begin}' (line {i + 1})")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise NotebookFormatError(f"{where}: '{begin}' at line {start + 1} is never closed by '{end}'")
    return blocks


def replace_solution(source: str, cell_type: str, where: str) -> str:
    """The student's version of a solution cell: each solution block becomes a stub."""
    blocks = _blocks(source, BEGIN_SOLUTION, END_SOLUTION, where)
    if not blocks:  # no markers: nbgrader replaces the whole cell
        return CODE_STUB if cell_type == "code" else MARKDOWN_STUB
    lines = source.split("\n")
    for first, last in reversed(blocks):
        indent = re.match(r"\s*", lines[first]).group(0)
        stub = CODE_STUB if cell_type == "code" else MARKDOWN_STUB
        lines[first : last + 1] = [indent + stub]
    return "\n".join(lines)


def remove_hidden_tests(source: str, where: str) -> str:
    """A grade cell without its hidden-test blocks."""
    lines = source.split("\n")
    for first, last in reversed(_blocks(source, BEGIN_HIDDEN, END_HIDDEN, where)):
        del lines[first : last + 1]
    return "\n".join(lines).rstrip("\n")


def check_exercises(nb: NotebookNode, name: str) -> None:
    """Raise NotebookFormatError if grade_ids repeat or markers are unbalanced."""
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        gid = grade_id(cell)
        where = f"{name} cell {index}" + (f" ({gid})" if gid else "")
        if nbgrader_meta(cell):
            if not gid:
                raise NotebookFormatError(f"{where}: nbgrader metadata without a grade_id")
            if gid in seen:
                raise NotebookFormatError(f"{where}: grade_id '{gid}' already used by cell {seen[gid]}")
            seen[gid] = index
            if nbgrader_meta(cell).get("schema_version", 3) != 3:
                raise NotebookFormatError(f"{where}: nbgrader schema_version must be 3")
        manual = _manually_graded(cell)
        if manual:
            raise NotebookFormatError(
                f"{where}: {manual}, which the course's grader does not support: it scores code answers by "
                "their test cells, and would drop this one. Make it a code exercise with a test cell, or "
                "remove its nbgrader metadata (and grade it by hand outside the grader)")
        if not is_solution(cell) and ("BEGIN SOLUTION" in cell.source or "END SOLUTION" in cell.source):
            raise NotebookFormatError(f"{where}: solution markers outside a solution cell (nbgrader rejects "
                                      "them even in prose; reword the text)")
        _blocks(cell.source, BEGIN_SOLUTION, END_SOLUTION, where)
        _blocks(cell.source, BEGIN_HIDDEN, END_HIDDEN, where)
        if is_grade(cell) and points(cell) <= 0:
            raise NotebookFormatError(f"{where}: a grade cell needs points > 0")
