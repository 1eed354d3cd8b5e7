"""The cells of the two grading kernels (see :mod:`.replay` for the design).

- :func:`learner_run`: the planned cells, each test cell between a cell that starts
  recording the names it reads and one that saves the recording;
- :func:`clean_run`: the source notebook's imports, then for each test cell a cell that
  binds the recorded names and the source's test cell itself.

Which names a test cell reads, and what the source imports, come from the source notebook
(parsed, never run by the grader), so the learner's notebook cannot choose them.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass

import nbformat
from nbformat import NotebookNode

from .cells import is_solution

RECORDING = "replay-{}.json"  # in each kernel's working folder
_BUILTINS = set(dir(builtins))


def _python(source: str) -> ast.Module | None:
    """A cell's source parsed, IPython magics and shell lines blanked; None if it is not Python."""
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _import_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    return [alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name != "*"]


def source_imports(source: NotebookNode) -> tuple[str, list[str]]:
    """(code that repeats the import statements of the source's lecture and test cells, the names they bind).

    These names are the source's: the clean kernel imports them itself and never takes a
    stand-in for them, even where a test cell reads a check imported by an earlier one.
    """
    statements, names = [], []
    for cell in source.cells:
        if cell.cell_type != "code" or is_solution(cell):
            continue
        tree = _python(cell.source)
        for node in ast.walk(tree) if tree is not None else []:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                statements.append(f"try:\n    {ast.unparse(node)}\nexcept Exception:\n    pass")
                names += _import_names(node)
    return "\n".join(statements), sorted(set(names))


def names_bound(source: str) -> set[str]:
    """Names a cell binds: by assignment (loops and ``with`` included), def, class or import."""
    tree = _python(source)
    bound = set()
    for node in ast.walk(tree) if tree is not None else []:
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update(_import_names(node))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return bound


def names_read(test_source: str) -> list[str]:
    """Names a test cell reads and does not bind itself (by import, assignment or def); no builtins."""
    tree = _python(test_source)
    if tree is None:
        return []
    loaded = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(loaded - names_bound(test_source) - _BUILTINS)


@dataclass
class KernelCells:
    """Cells for one kernel, and where each test cell (by its index in the plan) landed."""

    cells: list[NotebookNode]
    position: dict[int, int]  # plan index of a test cell -> index in ``cells``
    bind: dict[int, int]  # plan index of a test cell -> index of its bind cell (clean kernel only)
    replay: list[bool]  # cells to run again after a restart


def learner_run(cells: list[NotebookNode], tests: list[int], protected: list[str]) -> KernelCells:
    """The planned cells with recording around each test cell (indexes in ``tests``)."""
    out, position, replay = [], {}, []
    for index, cell in enumerate(cells):
        if index in tests:
            names = [n for n in names_read(cell.source) if n not in protected]
            out.append(nbformat.v4.new_code_cell("from course_tools.grading import replay as _grader_replay\n"
                                                 f"_grader_replay.record_start(globals(), {names!r})"))
            position[index] = len(out)
            out.append(cell)
            out.append(nbformat.v4.new_code_cell(
                f"_grader_replay.record_finish(globals(), {RECORDING.format(index)!r})"))
            replay += [False, False, False]
        else:
            out.append(cell)
            replay.append(True)
    return KernelCells(out, position, {}, replay)


def clean_run(cells: list[NotebookNode], tests: list[int], setup: str, protected: list[str]) -> KernelCells:
    """The source's imports, then each test cell after the cell that binds its recorded names."""
    out = [nbformat.v4.new_code_cell(setup or "pass")]
    position, bind = {}, {}
    for index in tests:
        bind[index] = len(out)
        out.append(nbformat.v4.new_code_cell(
            "from course_tools.grading import replay as _grader_replay\n"
            f"_grader_replay.bind(globals(), {RECORDING.format(index)!r}, {protected!r})"))
        position[index] = len(out)
        out.append(nbformat.v4.new_code_cell(cells[index].source))
    return KernelCells(out, position, bind, [True] + [False] * (len(out) - 1))
