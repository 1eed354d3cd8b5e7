"""The Colab set-up cell that opens every notebook, and the "Open in Colab" links.

On Colab a notebook arrives alone: ``course_utils`` and ``data/`` are missing. The first
code cell of every notebook therefore clones the course repository (once per Colab
session) at the release the notebook belongs to, installs the few packages Colab lacks,
and puts the clone on ``sys.path``; the rest of the notebook then runs unchanged. Anywhere
else the cell does nothing.

Two facts are written once, in ``pyproject.toml``: the repository's address
(``[project.urls]``) and the course's version, whose git tag (``v0.1.0``) the cell clones
and the Colab links open. ``python -m course_tools.colab`` (run by ``make sync``) writes
the cell into every ``notebooks/py/*.py`` (the notebooks' jupytext pairs) and the links into the README; ``make release
VERSION=0.2.0`` sets a new version first (then commit, tag and push). Tests check that
every notebook, student versions included, holds the current cell.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
README = REPO / "README.md"
CLONE_DIR = "seqmodels"  # the clone, in the working folder (/content on Colab, in its file browser)
COLAB_ONLY_PACKAGES = ("faker",)  # course dependencies that Colab's image does not have
MARKER = "# Colab set-up"  # the first line of the cell; how the cell is found again
FOLDERS = ("notebooks", "student")  # the lecture notebooks and the learners' versions


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def repository_url() -> str:
    """The course repository on GitHub, from ``pyproject.toml``."""
    return project()["urls"]["Repository"]


def release_tag() -> str:
    """The git tag of the course's current version (``"v0.1.0"``): what the cell clones."""
    return "v" + project()["version"]


def set_version(version: str) -> None:
    """Write a new course version (``"0.2.0"``) into ``pyproject.toml``."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ValueError(f"a version looks like 0.2.0 (no 'v'): got {version!r}")
    text = PYPROJECT.read_text()
    new, count = re.subn(r'(?m)^version = "[^"]*"$', f'version = "{version}"', text)
    if count != 1:
        raise ValueError(f"found {count} 'version = ...' lines in {PYPROJECT}, expected 1")
    PYPROJECT.write_text(new)


def pinned(package: str) -> str:
    """The pinned requirement of ``package`` (``"faker==40.63.0"``) from ``pyproject.toml``."""
    for requirement in project()["dependencies"]:
        if re.split(r"[=<>!~ \[;]", requirement, maxsplit=1)[0].lower() == package.lower():
            return requirement
    raise KeyError(f"{package} is not a dependency in {PYPROJECT}")


def colab_url(notebook: str, folder: str = "notebooks") -> str:
    """The address that opens ``folder/notebook`` (an ``.ipynb`` name) of this release in Colab."""
    if folder not in FOLDERS:
        raise ValueError(f"folder is one of {FOLDERS}, got {folder!r}")
    path = repository_url().removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{release_tag()}/{folder}/{notebook}"


def setup_cell_source() -> str:
    """The code of the set-up cell (a no-op unless ``google.colab`` is imported)."""
    packages = ", ".join(f'"{pinned(p)}"' for p in COLAB_ONLY_PACKAGES)
    return f"""{MARKER}: on Google Colab, fetch this notebook's version of the course (once, ~20 s). Elsewhere: nothing.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    COURSE_URL = "{repository_url()}"
    COURSE_VERSION = "{release_tag()}"  # the release this notebook belongs to (a git tag)
    COURSE_DIR = os.path.abspath("{CLONE_DIR}")
    if not os.path.isdir(COURSE_DIR):
        clone = ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--depth=1"]
        if subprocess.run(clone + ["--branch", COURSE_VERSION, COURSE_URL, COURSE_DIR]).returncode != 0:
            print(f"Release {{COURSE_VERSION}} of the course is not on GitHub; using its newest version, "
                  "which may not match this notebook.")
            subprocess.run(clone + [COURSE_URL, COURSE_DIR], check=True)
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


def with_current_links(readme: str) -> str:
    """The README with every Colab link pointing at the current release."""
    path = re.escape(repository_url().removeprefix("https://github.com/"))
    pattern = rf"(https://colab\.research\.google\.com/github/{path}/blob/)[^/\s)]+(/(?:{'|'.join(FOLDERS)})/)"
    return re.sub(pattern, rf"\g<1>{release_tag()}\g<2>", readme)


def main(argv: list[str] | None = None) -> int:
    """Write the set-up cell into the given ``.py`` notebooks (default: all of ``notebooks/py/``)."""
    parser = argparse.ArgumentParser(prog="python -m course_tools.colab", description=main.__doc__)
    parser.add_argument("paths", nargs="*", help="jupytext .py notebooks (default: notebooks/py/[0-9]*.py)")
    parser.add_argument("--version", help="first set the course's version in pyproject.toml (a release: 0.2.0)")
    args = parser.parse_args(argv)
    if args.version:
        set_version(args.version)
        print(f"course version {args.version}: the set-up cells now clone tag {release_tag()}")
    files = [Path(p) for p in args.paths] or sorted((REPO / "notebooks" / "py").glob("[0-9]*.py"))
    for path in files:
        text = path.read_text()
        new = with_setup_cell(text)
        if new != text:
            path.write_text(new)
            print(f"updated the Colab set-up cell in {path}")
    readme = README.read_text()
    if with_current_links(readme) != readme:
        README.write_text(with_current_links(readme))
        print(f"updated the Colab links in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
