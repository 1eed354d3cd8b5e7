"""Executed notebooks reused between site builds: a notebook runs again only when it must.

The key of a notebook is a hash of what its outputs depend on: the source of its code cells,
the ``course_utils`` modules it imports (followed through their own course imports, so a
changed helper invalidates exactly the notebooks that reach it), the shipped data files, the
device, and the versions of Python and torch. Markdown is not in the key: a cached notebook
gets its outputs pasted into the current cells, so a prose fix shows without a re-run.

The cache is one JSON file per notebook in ``.cache/site/`` (ignored by git), overwritten
when the key changes; delete the folder to force a full build.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_tools.imports import REPO, course_modules


def _torch_version() -> str:
    try:
        return version("torch")
    except PackageNotFoundError:
        return "none"


def cache_key(nb: NotebookNode, device: str, root: Path = REPO) -> str:
    """Hash of everything a notebook's outputs depend on (see the module docstring)."""
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    digest = hashlib.sha256()
    for part in [json.dumps(code), device, sys.version, _torch_version()]:
        digest.update(part.encode() + b"\0")
    helpers = course_modules(code, root) + [Path(__file__).with_name("figure_alt.py")]
    data = sorted(p for p in (root / "data").rglob("*") if p.is_file()) if (root / "data").is_dir() else []
    for path in helpers + data:
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class ExecutionCache:
    """Outputs of executed notebooks on disk, keyed by :func:`cache_key`."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _file(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def load(self, nb: NotebookNode, name: str, key: str) -> NotebookNode | None:
        """``nb`` with the cached outputs in its code cells, or None when there is no entry for ``key``."""
        try:
            entry = json.loads(self._file(name).read_text())
        except (OSError, ValueError):
            return None
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        if entry.get("key") != key or len(entry.get("cells", [])) != len(code):
            return None
        for cell, saved in zip(code, entry["cells"], strict=True):
            cell.outputs = [nbformat.from_dict(o) for o in saved["outputs"]]
            cell.execution_count = saved["execution_count"]
        return nb

    def store(self, executed: NotebookNode, name: str, key: str) -> None:
        code = [cell for cell in executed.cells if cell.cell_type == "code"]
        entry = {"key": key, "cells": [{"outputs": c.outputs, "execution_count": c.execution_count} for c in code]}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self._file(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(entry))
        tmp.replace(self._file(name))
