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


def run_cell(monkeypatch, on_colab: bool, tag_exists: bool = True) -> tuple[list[list[str]], list[str]]:
    """Execute the cell's code as a kernel would; return the commands it ran and what it printed."""
    commands, printed = [], []

    def fake_run(cmd, **kw):
        commands.append(cmd)
        missing_tag = not tag_exists and "--branch" in cmd
        return subprocess.CompletedProcess(cmd, 128 if missing_tag else 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    code = compile(colab.setup_cell_source(), "<colab cell>", "exec")
    exec(code, {"print": lambda *a, **k: printed.append(" ".join(map(str, a)))})
    return commands, printed


def test_the_cell_does_nothing_outside_colab(monkeypatch):
    before = list(sys.path)
    assert run_cell(monkeypatch, on_colab=False) == ([], [])
    assert sys.path == before


def test_on_colab_the_cell_clones_this_release_and_installs_what_colab_lacks(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    commands, printed = run_cell(monkeypatch, on_colab=True)
    clone_dir = str(tmp_path / colab.CLONE_DIR)
    tag = colab.release_tag()
    assert tag == "v" + colab.project()["version"]
    assert commands[0][:2] == ["git", "-c"] and commands[0][3:] == [
        "clone", "--quiet", "--depth=1", "--branch", tag, colab.repository_url(), clone_dir]
    assert commands[1][-1] == "faker==40.63.0" and commands[1][1:4] == ["-m", "pip", "install"]
    assert len(commands) == 2 and printed == []
    assert sys.path[0] == clone_dir


def test_without_its_release_on_github_the_cell_says_so_and_clones_main(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    commands, printed = run_cell(monkeypatch, on_colab=True, tag_exists=False)
    assert "--branch" in commands[0] and "--branch" not in commands[1]
    assert commands[1][-2:] == [colab.repository_url(), str(tmp_path / colab.CLONE_DIR)]
    assert len(printed) == 1 and colab.release_tag() in printed[0] and "may not match" in printed[0]


def test_inserting_the_cell_is_idempotent_and_keeps_the_title_first(repo):
    text = (repo / "notebooks" / "py" / "01_rnn.py").read_text()
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


def test_readme_links_open_this_release_lecture_and_student_versions(repo):
    readme = (repo / "README.md").read_text()
    assert colab.with_current_links(readme) == readme, "run `make sync`: the README links another release"
    for lec in lectures():
        assert f"({colab.colab_url(lec.notebook.name, 'student')})" in readme, lec.notebook.name
    stale = readme.replace(f"/blob/{colab.release_tag()}/", "/blob/main/")
    assert stale != readme and colab.with_current_links(stale) == readme


def test_pins_version_and_links_come_from_pyproject(monkeypatch, tmp_path):
    assert colab.pinned("faker") == "faker==40.63.0"
    tag = colab.release_tag()
    assert colab.colab_url("01_rnn.ipynb").endswith(f"/blob/{tag}/notebooks/01_rnn.ipynb")
    assert colab.colab_url("01_rnn.ipynb", "student").endswith(f"/blob/{tag}/student/01_rnn.ipynb")
    with pytest.raises(KeyError):
        colab.pinned("not-a-dependency")
    with pytest.raises(ValueError, match="folder"):
        colab.colab_url("01_rnn.ipynb", "solutions")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(colab.PYPROJECT.read_text())
    monkeypatch.setattr(colab, "PYPROJECT", pyproject)
    colab.set_version("0.2.0")
    assert colab.release_tag() == "v0.2.0" and 'COURSE_VERSION = "v0.2.0"' in colab.setup_cell_source()
    with pytest.raises(ValueError, match="no 'v'"):
        colab.set_version("v0.3.0")
