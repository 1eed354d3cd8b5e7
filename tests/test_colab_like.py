"""The Colab path, run for real: notebooks in an environment like Colab's, through their set-up cell.

Colab gives a notebook a Python with its own packages (PyTorch, numpy, matplotlib, ...),
none of the course's tools (JupyterLab, jupytext, nbval) and no ``course_utils``. Here:
- a fresh virtual environment gets only packages Colab ships, one of them (tqdm) at another
  version than the course's pin, and a ``google.colab`` module imported at start-up, as on
  Colab, so the set-up cell acts;
- "GitHub" is a local git repository holding the working tree, tagged with this release;
  git's ``url.<base>.insteadOf`` sends the cell's clone there, so the cell runs unchanged;
- ``00_setup`` and a torch lecture that reads the course's data run in that environment, each in a fresh working
  folder (a fresh Colab session), with course code found the way the cell finds it.

The environment takes seconds to build: the packages Colab ships are hard-linked from the test's own environment
(the course's pins), and only tqdm is installed by pip, at another version and the
notebooks about a minute. The cell's ``pip install`` of the package Colab lacks needs the
package index, as on Colab.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from course_tools import colab

# What Colab ships of the course's dependencies (its versions differ; here the pins, but tqdm).
COLAB_SHIPS = ["torch", "numpy", "matplotlib", "ipykernel", "ipywidgets", "nbformat", "threadpoolctl", "tokenizers"]
OTHER_VERSION = "tqdm==4.67.1"  # Colab's versions are not the course's: 00 must say so and go on
NOT_ON_COLAB = ["jupytext", "jupyterlab", "faker"]  # faker: installed by the set-up cell
NOTEBOOKS = ["00_setup.ipynb", "05d_forecasting.ipynb"]  # the environment report; a lecture that reads data/
KERNEL = "colab-like"
pytestmark = pytest.mark.slow  # builds a virtual environment and runs notebooks: not in `make test-fast`


def git(*args: str, cwd: Path) -> str:
    identity = ["-c", "user.name=course tests", "-c", "user.email=tests@example.invalid"]
    done = subprocess.run(["git", *identity, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


@pytest.fixture(scope="module")
def github(repo, tmp_path_factory) -> Path:
    """A local stand-in for the course on GitHub: the working tree, committed and tagged with this release."""
    remote = tmp_path_factory.mktemp("github") / "sequence-models"
    files = git("ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=repo).split("\0")
    for name in filter(None, files):
        if (repo / name).is_file():
            (remote / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, remote / name)
    git("init", "-q", "-b", "main", cwd=remote)
    git("add", "-A", cwd=remote)
    git("commit", "-q", "-m", "the course", cwd=remote)
    git("tag", colab.release_tag(), cwd=remote)
    return remote


@pytest.fixture
def clone_from(monkeypatch):
    """Send git's clones of the course's GitHub address to a local repository instead."""

    def redirect(remote: Path) -> None:
        monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
        monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{remote.as_uri()}.insteadOf")
        monkeypatch.setenv("GIT_CONFIG_VALUE_0", colab.repository_url())

    return redirect


def setup_cell_in(python: str, workdir: Path) -> subprocess.CompletedProcess:
    """Run the set-up cell's code in a fresh ``python`` on "Colab" (``google.colab`` imported)."""
    code = "import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')\n"
    code += colab.setup_cell_source() + "\nimport course_utils; print(course_utils.__file__)"
    return subprocess.run([python, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300)


def test_the_cell_clones_its_release_and_falls_back_to_main_with_a_message(github, clone_from, tmp_path):
    clone_from(github)
    (tmp_path / "a").mkdir()
    done = setup_cell_in(sys.executable, tmp_path / "a")
    assert done.returncode == 0, done.stderr
    assert "detached HEAD" not in done.stderr  # git's advice is noise to a learner
    clone = tmp_path / "a" / colab.CLONE_DIR
    assert done.stdout.strip() == str(clone / "course_utils" / "__init__.py")
    assert git("describe", "--tags", cwd=clone).strip() == colab.release_tag()

    untagged = tmp_path / "untagged"
    git("clone", "-q", github.as_uri(), str(untagged), cwd=tmp_path)
    git("tag", "-d", colab.release_tag(), cwd=untagged)  # main, without the release
    clone_from(untagged)
    (tmp_path / "b").mkdir()
    done = setup_cell_in(sys.executable, tmp_path / "b")
    assert done.returncode == 0, done.stderr
    assert f"Release {colab.release_tag()} of the course is not on GitHub" in done.stdout
    assert (tmp_path / "b" / colab.CLONE_DIR / "course_utils").is_dir()


def installed_closure(names: list[str]) -> set[str]:
    """``names`` and every distribution they require, transitively, as this environment has them installed."""
    found, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return found


def link_distributions(names: set[str], site: Path) -> None:
    """Install ``names`` into ``site`` as this environment has them (the course's pins), by hard links (copies across
    file systems): what pip would unpack and byte-compile, in seconds instead of minutes (torch alone is 750 MB).
    Only the files inside site-packages: scripts in bin/ would start this environment's Python."""
    for name in names:
        dist = distribution(name)
        for file in dist.files or []:
            source = Path(dist.locate_file(file))
            target = Path(os.path.normpath(site / file))
            if site not in target.parents or not source.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


@pytest.fixture(scope="module")
def colab_python(tmp_path_factory, repo) -> Path:
    """A fresh venv with only what Colab ships, and a kernel spec for it; returns its python."""
    root = tmp_path_factory.mktemp("colab")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    tqdm = OTHER_VERSION.split("==")[0]
    link_distributions(installed_closure(COLAB_SHIPS) - {tqdm}, site)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", OTHER_VERSION]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout[-3000:]  # every package's dependencies are there
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text('"""Stands for Colab\'s own module."""\n')
    (site / "colab_like.pth").write_text("import google.colab\n")  # Colab's kernels start with it imported
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(root / "jupyter"),
                    "--name", KERNEL], check=True, capture_output=True)
    return python


def installed(python: Path, package: str) -> bool:
    """Whether ``python`` imports ``package`` (run outside the repository, which is importable from its root)."""
    done = subprocess.run([str(python), "-c", f"import {package}"], cwd=python.parent, capture_output=True)
    return done.returncode == 0


def test_the_environment_is_like_colabs(colab_python):
    for package in NOT_ON_COLAB:
        assert not installed(colab_python, package), f"{package} is in the Colab-like venv"
    assert not installed(colab_python, "course_utils"), "course_utils must come from the set-up cell's clone"
    assert installed(colab_python, "google.colab")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_a_notebook_runs_on_colab_through_its_setup_cell(name, repo, github, clone_from, colab_python,
                                                        tmp_path, monkeypatch):
    clone_from(github)
    monkeypatch.setenv("JUPYTER_PATH", str(colab_python.parent.parent.parent / "jupyter" / "share" / "jupyter"))
    for variable in ("PYTHONPATH", "VIRTUAL_ENV"):
        monkeypatch.delenv(variable, raising=False)
    nb = nbformat.read(repo / "notebooks" / name, as_version=4)
    assert nb.cells[1].source == colab.setup_cell_source(), "run `make sync`"
    nb.cells.append(nbformat.v4.new_code_cell("import course_utils, google.colab; print(course_utils.__file__)"))
    NotebookClient(nb, kernel_name=KERNEL, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()

    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    assert printed.strip() == str(tmp_path / colab.CLONE_DIR / "course_utils" / "__init__.py")
    assert installed(colab_python, "faker"), "the set-up cell installs what Colab lacks"
    if name == "00_setup.ipynb":
        report = "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)
        assert "Other versions than the pins: tqdm" in report
        assert "Not installed: jupyterlab, jupytext" in report
