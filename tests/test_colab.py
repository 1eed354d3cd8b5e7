"""The Colab set-up cell: in every notebook, a no-op here, a clone-and-go on Colab."""

from __future__ import annotations

import subprocess
import sys
import types

import nbformat
import pytest

from course_tools import colab
from course_tools.website import lectures

NOTEBOOK_DIRS = ("notebooks", "student")


def first_code_cell(path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("folder", NOTEBOOK_DIRS)
def test_every_notebook_starts_with_the_current_setup_cell(repo, folder):
    paths = sorted((repo / folder).glob("[0-9]*.ipynb"))
    assert paths
    stale = [p.name for p in paths if first_code_cell(p) != colab.setup_cell_source()]
    assert not stale, f"run `make sync` (and the release for student/): {stale}"


def run_cell(monkeypatch, on_colab: bool) -> list[list[str]]:
    """Execute the cell's code as a kernel would; return the commands it ran."""
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: commands.append(cmd))
    monkeypatch.setattr(sys, "path", list(sys.path))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(colab.setup_cell_source(), "<colab cell>", "exec"), {})
    return commands


def test_the_cell_does_nothing_outside_colab(monkeypatch):
    before = list(sys.path)
    assert run_cell(monkeypatch, on_colab=False) == []
    assert sys.path == before


def test_on_colab_the_cell_clones_the_course_and_installs_what_colab_lacks(monkeypatch):
    commands = run_cell(monkeypatch, on_colab=True)
    assert commands[0] == ["git", "clone", "--depth=1", colab.repository_url(), colab.CLONE_DIR]
    assert commands[1][-1] == "faker==40.63.0" and commands[1][1:4] == ["-m", "pip", "install"]
    assert sys.path[0] == colab.CLONE_DIR


def test_inserting_the_cell_is_idempotent_and_keeps_the_title_first(repo):
    text = (repo / "notebooks" / "01_rnn.py").read_text()
    once = colab.with_setup_cell(text)
    assert colab.with_setup_cell(once) == once == text
    without = text.replace("# %%\n" + colab.setup_cell_source() + "\n\n", "")
    assert without != text and colab.with_setup_cell(without) == text
    with pytest.raises(ValueError, match="title"):
        colab.with_setup_cell("# %%\nimport torch\n")


def test_readme_has_an_open_in_colab_badge_per_lecture(repo):
    readme = (repo / "README.md").read_text()
    for lec in lectures():
        assert f"({colab.colab_url(lec.notebook.name)})" in readme, lec.notebook.name


def test_pins_come_from_pyproject():
    assert colab.pinned("faker") == "faker==40.63.0"
    assert colab.colab_url("01_rnn.ipynb").endswith("/blob/main/notebooks/01_rnn.ipynb")
    with pytest.raises(KeyError):
        colab.pinned("not-a-dependency")
