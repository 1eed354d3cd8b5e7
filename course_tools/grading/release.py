"""Student versions: solutions replaced by stubs, hidden tests removed, outputs cleared.

    python -m course_tools.grading release            # notebooks/*.ipynb -> student/
    python -m course_tools.grading release notebooks/00_setup.ipynb --to ../public   # a public tree
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_tools.imports import course_modules

from .cells import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    _blocks,
    check_exercises,
    grade_id,
    is_grade,
    is_solution,
    points,
    remove_hidden_tests,
    replace_solution,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIR = REPO / "notebooks"
STUDENT_DIR = REPO / "student"


EXERCISE_HEADING = re.compile(r"^#{2,4} (?:\d+\. )?(Exercise\b[^(]*)\(([^)]*)\):\s*(.+)$", re.M)
MINUTES = re.compile(r"(?:about |~)(\d+) min")
SUMMARY_ID = "exercise-summary"


def exercise_summary(source: NotebookNode) -> str | None:
    """The markdown a student version opens with: its graded exercises, points and time (None if none)."""
    total = sum(points(c) for c in source.cells if is_grade(c))
    if not total:
        return None
    headings = [m for c in source.cells if c.cell_type == "markdown" for m in EXERCISE_HEADING.finditer(c.source)]
    minutes = [MINUTES.search(m[2]) for m in headings]
    time = f", about {sum(int(m[1]) for m in minutes)} minutes" if headings and all(minutes) else ""
    lines = [f"**Graded exercises in this notebook: {total:g} point{'' if total == 1 else 's'}{time}.** Each "
             "exercise's check cell "
             "tells you what is wrong; `make check NOTEBOOK=<this file>` scores your copy on the visible "
             "tests (your instructor's grading adds hidden ones).", ""]
    lines += [f"- {m[1].strip()} ({m[2].strip()}): {m[3].strip()}" for m in headings]
    return "\n".join(lines).rstrip()


def student_version(source: NotebookNode, name: str = "notebook") -> NotebookNode:
    """A copy of ``source`` as a learner receives it, opening with a summary of its exercises."""
    check_exercises(source, name)
    nb = copy.deepcopy(source)
    summary = exercise_summary(source)
    if summary:
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(summary, id=SUMMARY_ID))
    nb.metadata.pop("jupytext", None)  # student copies are not paired with a .py file
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index} ({grade_id(cell)})"
        if is_solution(cell):
            cell.source = replace_solution(cell.source, cell.cell_type, where)
        elif is_grade(cell):
            cell.source = remove_hidden_tests(cell.source, where)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def render(nb: NotebookNode) -> str:
    """The exact text written to disk (so a staleness test can compare strings)."""
    return nbformat.writes(nb) + "\n"


def release(source_dir: Path = SOURCE_DIR, student_dir: Path = STUDENT_DIR) -> list[Path]:
    """Write the student version of every notebook in ``source_dir``; remove stale ones."""
    student_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(source_dir.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out = student_dir / path.name
        out.write_text(render(student_version(nb, path.name)), encoding="utf-8")
        written.append(out)
    for old in student_dir.glob("*.ipynb"):
        if not (source_dir / old.name).exists():
            old.unlink()
    return written


# ------------------------------------------------------------------------------------- the public tree
#
#     python -m course_tools.grading release notebooks/00_setup.ipynb [...] --to ../seqmodels-public \
#         [--url https://github.com/you/seqmodels-public]
#
# The instructor's private tree (this repository) keeps the sources, solutions and hidden tests;
# the public tree gets, for the notebooks released so far, their student versions and exactly what
# they need to run: the course_utils modules they import (transitively), data/ and the benchmark
# tables some notebooks quote, a learner's pyproject.toml and a README. Before anything is written
# the whole tree is scanned for solution and hidden-test markers and for the text of every source
# notebook's solutions and hidden tests; a find refuses the release (PublicTreeLeak), unless that
# notebook's solutions are allowed out (--allow-leak, e.g. after its deadline).

LIBRARY = "course_utils"
PUBLIC_DATA = ("data", "benchmarks/results")  # shipped whole: data files, and tables notebooks quote
LEAK_MIN_CHARS = 24  # shorter solution bodies ("return 18") are everywhere; the markers still catch them
_MARKERS = (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN)


class PublicTreeLeak(RuntimeError):
    """The public tree would hold a solution or a hidden test (the message lists where)."""


def resolve_notebooks(names: list[str], source_dir: Path = SOURCE_DIR) -> list[Path]:
    """``notebooks/00_setup.ipynb``, ``00_setup.ipynb`` or ``00_setup`` -> the source notebook's path."""
    paths, missing = [], []
    for name in names:
        path = source_dir / (Path(name).stem + ".ipynb")
        (paths if path.is_file() else missing).append(path if path.is_file() else name)
    if missing:
        known = ", ".join(p.stem for p in sorted(source_dir.glob("*.ipynb")))
        raise FileNotFoundError(f"no course notebook {', '.join(missing)} in {source_dir} (known: {known})")
    return paths


def library_files(sources: list[Path], root: Path = REPO) -> list[Path]:
    """The ``course_utils`` files the ``sources`` notebooks import, transitively, with their packages
    (the import walk the site cache uses too, :func:`course_tools.imports.course_modules`)."""
    code = [c.source for path in sources for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    return course_modules(code, root)


def _normal_code(text: str) -> str:
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def secrets(source_dir: Path = SOURCE_DIR) -> list[tuple[str, str, str]]:
    """(notebook stem, what, normalised text) of every solution and hidden-test block long enough to search."""
    found = []
    for path in sorted(source_dir.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            lines = cell.source.split("\n")
            for begin, end, what in ((BEGIN_SOLUTION, END_SOLUTION, "solution"), (BEGIN_HIDDEN, END_HIDDEN,
                                                                                   "hidden test")):
                for first, last in _blocks(cell.source, begin, end, f"{path.name} ({grade_id(cell)})"):
                    body = _normal_code("\n".join(lines[first + 1 : last]))
                    if len(body) >= LEAK_MIN_CHARS:
                        found.append((path.stem, f"{what} of {grade_id(cell)}", body))
    return found


def find_leaks(files: dict[str, str], source_dir: Path = SOURCE_DIR, allow: tuple[str, ...] = ()) -> list[str]:
    """Where ``files`` ({path: text}) hold a marker, or a solution or hidden test of a source notebook.

    ``allow``: notebook stems whose *solutions* may appear (hidden tests and markers never may).
    """
    blocks = secrets(source_dir)
    leaks = []
    for path, text in sorted(files.items()):
        leaks += [f"{path}: '{m}'" for m in _MARKERS if m in text]
        if path.endswith(".ipynb"):  # search the cells' code, not the JSON-escaped file
            try:
                text = "\n".join(c.source for c in nbformat.reads(text, as_version=4).cells)
            except Exception:  # noqa: BLE001 - an unreadable notebook is searched as it is
                pass
        code = _normal_code(text)
        leaks += [f"{path}: the {what} of {stem}" for stem, what, body in blocks
                  if body in code and not (what.startswith("solution") and stem in allow)]
    return leaks


def _learner_pyproject(url: str) -> str:
    """A pyproject.toml for the public tree: the learners' package and pins, nothing of the toolkit."""
    from course_tools.colab import project

    meta = project()
    deps = "".join(f'    "{d}",\n' for d in meta["dependencies"])
    return (f'[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
            f'[project]\nname = "{meta["name"]}"\nversion = "{meta["version"]}"\n'
            f'description = "{meta["description"]}"\nrequires-python = "{meta["requires-python"]}"\n'
            f"dependencies = [\n{deps}]\n\n[project.urls]\nRepository = \"{url}\"\n\n"
            f'[tool.setuptools.packages.find]\ninclude = ["{LIBRARY}*"]\n')


def _public_readme(stems: list[str], url: str) -> str:
    from course_tools.colab import project, release_tag

    path = url.removeprefix("https://github.com/")
    lines = [f"# {project()['description'].removeprefix('Helpers for the course ').strip(chr(39))}", "",
             "The exercise notebooks released so far, in `student/`. Open one in Google Colab, or run them",
             "locally: `pip install -e .` then `jupyter lab student/`. Each exercise's check cell says what",
             "is wrong or prints `OK`; hand in the notebook as your instructor asks.", "",
             "| notebook | open |", "| --- | --- |"]
    lines += [f"| {s} | [Open in Colab](https://colab.research.google.com/github/{path}/blob/{release_tag()}"
              f"/student/{s}.ipynb) |" for s in stems]
    return "\n".join(lines) + "\n"


def _with_url(nb: NotebookNode, url: str) -> NotebookNode:
    """The Colab set-up cell of ``nb`` cloning ``url`` (the public tree's repository)."""
    from course_tools.colab import MARKER, repository_url

    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith(MARKER):
            cell.source = cell.source.replace(f'COURSE_URL = "{repository_url()}"', f'COURSE_URL = "{url}"')
    return nb


def release_public(notebooks: list[Path], public: Path, url: str | None = None, allow_leaks: tuple[str, ...] = (),
                   source_dir: Path = SOURCE_DIR, root: Path = REPO) -> list[Path]:
    """Release ``notebooks`` into the public tree ``public`` (with those released there before).

    Returns the files written. Raises :class:`PublicTreeLeak` (writing nothing) if the tree would
    hold a solution or hidden test; ``course_utils/`` is rewritten, so it never keeps a stale module.
    """
    from course_tools.colab import repository_url

    url = url or repository_url()
    earlier = [p.stem for p in sorted((public / STUDENT_DIR.name).glob("*.ipynb"))]
    stems = sorted(set(earlier) | {p.stem for p in notebooks})
    sources = resolve_notebooks(stems, source_dir)
    files: dict[str, str] = {}
    for path in notebooks:
        nb = student_version(nbformat.read(path, as_version=4), path.name)
        files[f"{STUDENT_DIR.name}/{path.name}"] = render(_with_url(nb, url))
    for file in library_files(sources, root):
        files[file.relative_to(root).as_posix()] = file.read_text(encoding="utf-8")
    for folder in PUBLIC_DATA:
        for file in sorted((root / folder).rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                files[file.relative_to(root).as_posix()] = file.read_text(encoding="utf-8")
    files["pyproject.toml"] = _learner_pyproject(url)
    files["README.md"] = _public_readme(stems, url)
    tree = dict(files)  # what the public tree will hold: these files and the instructor's others there
    for path in sorted(public.rglob("*")) if public.exists() else []:
        rel = path.relative_to(public)
        if path.is_file() and ".git" not in rel.parts and rel.parts[0] != LIBRARY and rel.as_posix() not in tree:
            tree[rel.as_posix()] = path.read_text(encoding="utf-8", errors="replace")
    leaks = find_leaks(tree, source_dir, allow_leaks)
    if leaks:
        raise PublicTreeLeak("the public tree would hold what learners must not see:\n  " + "\n  ".join(leaks)
                             + "\nNothing was written. A course_utils module that holds a notebook's solution "
                             "is the reference later cells use; --allow-leak NOTEBOOK publishes it anyway "
                             "(e.g. after that notebook's deadline).")
    shutil.rmtree(public / LIBRARY, ignore_errors=True)
    written = []
    for rel, text in sorted(files.items()):
        target = public / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
