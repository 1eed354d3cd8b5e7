"""Which course modules a piece of code reaches: the import walk shared by the site cache and the release.

``course_modules(sources)`` parses each source (IPython magics and shell lines blanked out), takes
its imports of ``course_utils``, and follows them through the modules' own imports, relative ones
included; packages' ``__init__`` files count, since importing a submodule runs them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "course_utils"


def _code(source: str) -> str:
    """Cell source as Python: IPython magics and shell lines blanked out."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _imported(tree: ast.AST, module: str | None = None) -> set[str]:
    """Dotted names of course modules a parsed file imports; ``module``: its own name, for relative imports."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y, inside the package
                parts = (module or PACKAGE).split(".")[: -node.level] if module else [PACKAGE]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] == PACKAGE:
                names.add(base)
                names |= {f"{base}.{alias.name}" for alias in node.names}  # a submodule, where it is one
    return names


def _module_file(name: str, root: Path) -> Path | None:
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def course_modules(sources: Iterable[str], root: Path = REPO) -> list[Path]:
    """The course module files that code reaches through imports, parents' ``__init__`` included."""
    todo = set()
    for source in sources:
        try:
            todo |= _imported(ast.parse(_code(source)))
        except SyntaxError:  # a cell that is not plain Python: its text is in the key anyway
            continue
    seen: dict[str, Path] = {}
    while todo:
        name = todo.pop()
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for dotted in [*parents, name]:
            path = _module_file(dotted, root)
            if path is None or dotted in seen:
                continue
            seen[dotted] = path
            own = dotted if path.name != "__init__.py" else dotted + ".__init__"
            todo |= _imported(ast.parse(path.read_text()), own)
    return sorted(seen.values())
