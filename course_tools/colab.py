"""The Colab set-up cell that opens every notebook, and the "Open in Colab" links.

On Colab a notebook arrives alone: ``course_utils`` and ``data/`` are missing. The first
code cell of every notebook therefore clones the course repository (once per Colab
session), installs the few packages Colab lacks, and puts the clone on ``sys.path``; the
rest of the notebook then runs unchanged. Anywhere else the cell does nothing.

The repository's address is written once, in ``pyproject.toml`` (``[project.urls]``);
``python -m course_tools.colab`` (run by ``make sync``) writes the cell into every
``notebooks/*.py`` from it, and a test checks that each notebook holds the current cell.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
CLONE_DIR = "/content/seqmodels"  # where Colab keeps the clone (its working folder is /content)
COLAB_ONLY_PACKAGES = ("faker",)  # course dependencies that Colab's image does not have
MARKER = "# Colab set-up"  # the first line of the cell; how the cell is found again


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def repository_url() -> str:
    """The course repository on GitHub, from ``pyproject.toml``."""
    return project()["urls"]["Repository"]


def pinned(package: str) -> str:
    """The pinned requirement of ``package`` (``"faker==40.63.0"``) from ``pyproject.toml``."""
    for requirement in project()["dependencies"]:
        if re.split(r"[=<>!~ \[;]", requirement, maxsplit=1)[0].lower() == package.lower():
            return requirement
    raise KeyError(f"{package} is not a dependency in {PYPROJECT}")


def colab_url(notebook: str, folder: str = "notebooks") -> str:
    """The address that opens ``folder/notebook`` (an ``.ipynb`` name) from GitHub in Colab."""
    path = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/main/{folder}/{notebook}"


def setup_cell_source() -> str:
    """The code of the set-up cell (a no-op unless ``google.colab`` is imported)."""
    packages = ", ".join(f'"{pinned(p)}"' for p in COLAB_ONLY_PACKAGES)
    return f"""{MARKER}: on Google Colab, fetch the course and its data (once, ~20 s). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    COURSE_URL = "{repository_url()}"
    COURSE_DIR = "{CLONE_DIR}"
    if not os.path.isdir(COURSE_DIR):
        subprocess.run(["git", "clone", "--depth=1", COURSE_URL, COURSE_DIR], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", {packages}], check=True)
    if COURSE_DIR not in sys.path:
        sys.path.insert(0, COURSE_DIR)"""


def _percent_cell(source: str) -> str:
    return "# %%\n" + source + "\n"


def with_setup_cell(text: str) -> str:
    """A jupytext percent notebook with the current set-up cell right after its title cell."""
    cells = re.split(r"(?m)^(?=# %%)", text)  # cells[0] is the header
    cells = [c for c in cells if not c.startswith("# %%\n" + MARKER)]
    if len(cells) < 2 or not cells[1].startswith("# %% [markdown]"):
        raise ValueError("a course notebook starts with its title in a markdown cell")
    cell = _percent_cell(setup_cell_source())
    after = cells[1].rstrip("\n") + "\n\n"
    return "".join([cells[0], after, cell + ("\n" if len(cells) > 2 else ""), *cells[2:]])


def main(paths: list[str]) -> int:
    """Write the set-up cell into the given ``.py`` notebooks (default: all of ``notebooks/``)."""
    files = [Path(p) for p in paths] or sorted((REPO / "notebooks").glob("[0-9]*.py"))
    for path in files:
        text = path.read_text()
        new = with_setup_cell(text)
        if new != text:
            path.write_text(new)
            print(f"updated the Colab set-up cell in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
