"""The set-up code at the top of a lecture page: the Colab cell left out, long import cells folded.

Every notebook opens with the Colab set-up cell (:mod:`course_tools.colab`, found by its first
line), about twenty lines of ``subprocess`` and ``git`` that do nothing outside Colab, then a
cell of imports. A page shows the lesson first: the Colab cell is not on the page (the page's
"Open in Colab" badge opens the notebook with it), and a cell that only imports and sets up
(imports, then at most a few one-line statements such as ``device = start_notebook()``) of
``FOLD_LINES`` lines or more is folded behind a "Show imports" control, its output (the
device line) still in view. Graded cells are never folded. The page template reads the
``course_site`` cell metadata that :func:`mark_import_cells` writes.
"""

from __future__ import annotations

import ast

from nbformat import NotebookNode

from ..colab import MARKER
from ..grading.cells import is_grade, is_solution
from .exercises import SITE_KEY

FOLD_LINES = 5  # an import cell this long or longer is folded; a shorter one is shown
SIMPLE = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)  # one-line set-up after the imports


def is_colab_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and cell.source.startswith(MARKER)


def without_colab_cell(nb: NotebookNode) -> NotebookNode:
    """Drop the Colab set-up cell, in place, and number the cells as if it had never been there."""
    gone = [cell for cell in nb.cells if is_colab_cell(cell)]
    nb.cells = [cell for cell in nb.cells if not is_colab_cell(cell)]
    counts = [cell.get("execution_count") for cell in gone if cell.get("execution_count")]
    if counts:
        for cell in nb.cells:
            if cell.get("execution_count") and cell.execution_count > min(counts):
                cell.execution_count -= len(counts)
    return nb


def is_import_cell(source: str) -> bool:
    """Imports, then only simple one-line statements (no loop, test, definition or check)."""
    try:
        body = ast.parse(source).body
    except SyntaxError:  # IPython magics and the like: shown as they are
        return False
    imports = [isinstance(node, ast.Import | ast.ImportFrom) for node in body]
    if not imports or not imports[0]:
        return False
    rest = body[imports.index(False):] if False in imports else []
    return all(isinstance(node, SIMPLE) and node.lineno == node.end_lineno for node in rest) and \
        sum(imports) >= 2 * len(rest)


def mark_import_cells(nb: NotebookNode) -> NotebookNode:
    """Mark each long import cell to be folded (``course_site`` metadata: its line count), in place."""
    for cell in nb.cells:
        if cell.cell_type != "code" or is_grade(cell) or is_solution(cell):
            continue
        lines = len(cell.source.strip().splitlines())
        if lines >= FOLD_LINES and is_import_cell(cell.source):
            cell.metadata.setdefault(SITE_KEY, {})["imports"] = lines
    return nb
