"""The library's layout rules (CONTRIBUTING.md, "Where helpers go"), checked on the source.

Five tiers of ``course_utils``, each importing only itself and the tiers before it:

1. core (every notebook), 2. ``course_utils.data``, 3. shared lecture helpers,
4. lecture modules, which import lecture modules of the same or an earlier notebook only,
5. ``course_utils.exercises``: the graded exercises' checks and challenges, which nothing else imports.

``course_tools`` (the instructors' toolkit) sits on top: ``course_utils`` never imports it.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from course_tools import helper_table
from course_tools.helper_table import first_notebook

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "course_utils"
TWINS = helper_table.TWINS  # notebooks/py/: the notebooks' jupytext .py pairs
NOTEBOOK_IDS = {p.stem.split("_")[0] for p in TWINS.glob("*.py")}  # "00", "05a", ...
NOTEBOOK_ID = helper_table.NOTEBOOK_ID  # "01", "05a" in a module docstring's first line


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """``{"rnn": path, "data.text": path, ...}`` for every module of course_utils (``""`` is the package)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        found[name] = path
    return found


def tier(name: str) -> int:
    if name in ("", "core") or name.startswith("core."):
        return 1
    if name == "data" or name.startswith("data."):
        return 2
    if name == "exercises" or name.startswith("exercises."):
        return 5
    return 3 if name == "shared" or name.startswith("shared.") else 4


def first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.splitlines()[0] if doc else ""


def course_imports(path: Path, repo: Path = REPO) -> list[tuple[str, int, bool]]:
    """``(module, line, at top level)`` for every import of a course_utils/course_tools module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    package = ".".join(path.relative_to(repo).with_suffix("").parts[:-1])  # e.g. course_utils.data
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            else:
                names = [f"{node.module}.{a.name}" for a in node.names]  # resolve() trims names that are not modules
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for full in names:
            if full.split(".")[0] in ("course_utils", "course_tools"):
                found.append((full, node.lineno, id(node) in top))
    return found


def resolve(full: str, known: dict[str, Path]) -> str | None:
    """``course_utils.data.text`` -> ``data.text``; a name imported from a package -> the package."""
    if full.split(".")[0] != "course_utils":
        return None
    name = full.removeprefix("course_utils").lstrip(".")
    while name not in known:
        if not name:
            raise AssertionError(f"{full} is not a module of course_utils")
        name = name.rpartition(".")[0]
    return name


def test_every_module_docstring_names_the_notebooks_it_serves():
    bad = [name for name, path in modules().items() if name not in ("", "data", "core", "shared")
           and not re.match(r"^(Every notebook|Notebooks? \d\d)", first_line(path))]
    assert not bad, f"start these modules' docstrings with the notebook(s) they serve: {bad}"
    for name, path in modules().items():
        for nb in NOTEBOOK_ID.findall(first_line(path)):
            # a range such as "03-05d" names its ends; "05" stands for the 05a-05d group
            assert nb in NOTEBOOK_IDS or any(i.startswith(nb) for i in NOTEBOOK_IDS), f"{name}: no notebook {nb}"


def test_no_name_is_defined_twice_in_the_library():
    where = defaultdict(list)
    for name, path in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined = [node.name]
            elif isinstance(node, ast.Assign):
                defined = [n.id for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined = [node.target.id]
            else:
                continue
            for d in defined:
                if d != "__all__":
                    where[d].append(name or "course_utils")
    twice = {d: places for d, places in where.items() if len(places) > 1}
    assert not twice, f"defined in more than one module (keep one and import it): {twice}"


EXERCISE_MACHINERY = re.compile(r"^check_|MISTAKES|CHALLENGE")
def test_concept_modules_hold_no_exercise_machinery():
    """Checks, mistake catalogues and challenges live in course_utils.exercises; concept modules read as the lesson."""
    found = {}
    for name, path in modules().items():
        if tier(name) not in (3, 4):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        machinery = {d for d in defined if EXERCISE_MACHINERY.search(d)}
        if machinery:
            found[name] = sorted(machinery)
    assert not found, f"move these to course_utils/exercises/<module>.py: {found}"


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import in ``package`` (a course_utils tree) that breaks the layout rules."""
    known = modules(package)
    wrong = []
    for name, path in known.items():
        for full, line, top in course_imports(path, package.parent):
            where = f"course_utils/{path.relative_to(package)}:{line}"
            if full.split(".")[0] == "course_tools":
                wrong.append(f"{where} imports the instructors' toolkit {full}")
                continue
            if not top:
                wrong.append(f"{where} imports {full} inside a function (import at the top; no cycles to dodge)")
            target = resolve(full, known)
            if target is None or target in ("", "data", "exercises") and name in ("", "data", "exercises"):
                continue
            if tier(target) > tier(name):
                who = name or "course_utils"
                wrong.append(f"{where}: {who} (tier {tier(name)}) imports {target} (tier {tier(target)})")
            elif tier(name) == tier(target) == 4 and first_notebook(known[target]) > first_notebook(path):
                wrong.append(f"{where}: lecture {name} imports {target}, which belongs to a later notebook")
    return wrong


def test_imports_point_down_the_tiers():
    wrong = violations()
    assert not wrong, "imports against the layout rules:\n" + "\n".join(wrong)


def test_the_rules_catch_wrong_way_imports(tmp_path):
    package = tmp_path / "course_utils"
    for folder in ("data", "core", "shared"):
        (package / folder).mkdir(parents=True)
    files = {
        "__init__.py": '"""The package."""\n',
        "core/__init__.py": '"""Core."""\n',
        "shared/__init__.py": '"""Shared."""\n',
        "core/checks.py": '"""Every notebook: checks."""\nfrom ..rnn import step\n',  # core -> lecture
        "rnn.py": '"""Notebook 01: the RNN."""\nfrom .attention import score\n',  # 01 -> 06
        "attention.py": '"""Notebook 06: attention."""\nfrom .rnn import step\n',  # fine
        # a function-local import, and a shared module importing a lecture module:
        "shared/lm.py": '"""Notebooks 01-08: shared."""\n\ndef f():\n    from ..rnn import step\n',
        "data/__init__.py": '"""Data."""\n',
        "data/names.py": '"""Notebook 05a: names."""\nfrom ..attention import score\nimport course_tools\n',
        "data/dates.py": '"""Notebook 06: dates."""\nfrom course_utils import attention\n',  # absolute form
    }
    for rel, text in files.items():
        (package / rel).write_text(text)
    found = "\n".join(violations(package))
    assert "core.checks (tier 1) imports rnn (tier 4)" in found
    assert "lecture rnn imports attention, which belongs to a later notebook" in found
    assert "inside a function" in found and "shared.lm (tier 3) imports rnn (tier 4)" in found
    assert "data.names (tier 2) imports attention (tier 4)" in found
    assert "data.dates (tier 2) imports attention (tier 4)" in found
    assert "imports the instructors' toolkit course_tools" in found
    assert "attention.py" not in found


def test_the_helper_table_in_00_matches_the_notebooks_imports():
    text = helper_table.SETUP.read_text(encoding="utf-8")
    assert helper_table.with_table(text) == text, "run `make sync` (python -m course_tools.helper_table)"


@pytest.mark.parametrize("path", [helper_table.README, helper_table.PACKAGE / "__init__.py"], ids=lambda p: p.name)
def test_the_lists_of_tiers_match_the_modules_on_disk(path):
    text = path.read_text(encoding="utf-8")
    assert helper_table.GENERATED[path](text) == text, "run `make sync` (python -m course_tools.helper_table)"


def _first_markdown(source: str) -> str:
    """The markdown cells of a percent-format notebook before its first code cell."""
    text = ""
    for cell in re.split(r"^# %%", source, flags=re.MULTILINE)[1:]:
        if not cell.startswith(" [markdown]"):
            break
        text += cell
    return text


@pytest.mark.parametrize("notebook", sorted(p.name for p in TWINS.glob("0[1-9]*.py")))
def test_each_lecture_names_its_lecture_modules_before_its_code(notebook):
    """A learner who wants to read the code finds the files named at the top."""
    source = (TWINS / notebook).read_text(encoding="utf-8")
    lectures = {m for m, _ in helper_table.lecture_modules()}
    used = sorted(m for m in helper_table.modules_used(source) if m in lectures)
    missing = [m for m in used if f"`course_utils/{m}.py`" not in _first_markdown(source)]
    assert not missing, f"name these helper modules in the opening text, as `course_utils/<module>.py`: {missing}"


def test_the_tier_lists_name_every_module_once():
    listed = [*(f"core.{m}" for m in helper_table.CORE), *(f"shared.{m}" for m in helper_table.SHARED),
              *(m for m, _ in helper_table.lecture_modules())]
    on_disk = [name for name in modules() if name and name not in ("core", "shared")
               and not name.startswith(("data", "exercises"))]
    assert sorted(listed) == sorted(on_disk)
    assert ("timing", "08") not in helper_table.lecture_modules()  # a shared helper is not a lecture's
    exercises = {name.removeprefix("exercises.") for name in modules() if name.startswith("exercises.")}
    assert exercises == set(helper_table.exercise_modules())
    assert exercises <= {name.split(".")[-1] for name in listed}, "named after the module it grades"


def test_exercise_functions_follow_the_naming_rule():
    """A function a learner writes in a solution cell is ``my_<name>``: it never shadows a library helper."""
    wrong = []
    for path in sorted(TWINS.glob("*.py")):
        cells = re.split(r"^# %%", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
        for cell in cells:
            if not re.match(r'.*"solution": true', cell.splitlines()[0] if cell else ""):
                continue
            for name in re.findall(r"^def (\w+)", cell, flags=re.MULTILINE):
                if not name.startswith("my_"):
                    wrong.append(f"{path.name}: {name}")
    assert not wrong, f"exercise functions must be named my_<name>: {wrong}"


BLOCKED = ["course_tools", "nbconvert", "nbclient", "jupyter_server_mathjax", "nbgrader", "pytest", "nbval",
           "playwright", "yaml"]
BLOCK_EXTRAS = (  # Python code: importing a package of BLOCKED raises ImportError from here on
    "import importlib, importlib.abc, sys\n"
    f"BLOCKED = {BLOCKED!r}\n"
    "class Block(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in BLOCKED:\n"
    "            raise ImportError(f'{name} is not part of a learner install')\n"
    "sys.meta_path.insert(0, Block())\n"
)


NOTEBOOK_FILES = sorted(p.name for p in TWINS.glob("*.py"))


def _helpers(notebook: str) -> list[str]:
    return sorted(helper_table.modules_used((TWINS / notebook).read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def learner_install_imports() -> dict[str, str]:
    """Each course_utils module the notebooks import, loaded in one Python without the instructors'
    and test extras: {module: "" if it loaded, else the error}. One process for all the notebooks
    (the block applies to every import, whatever was loaded before)."""
    used = sorted({m for notebook in NOTEBOOK_FILES for m in _helpers(notebook)})
    code = (
        BLOCK_EXTRAS + "import json, traceback\n"
        "errors = {}\n"
        f"for m in {used!r}:\n"
        "    try:\n"
        "        importlib.import_module('course_utils.' + m)\n"
        "        errors[m] = ''\n"
        "    except Exception:\n"
        "        errors[m] = traceback.format_exc(limit=-3)\n"
        "print(json.dumps(errors))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("notebook", NOTEBOOK_FILES)
def test_a_learner_install_imports_every_helper_of_the_notebook(notebook, learner_install_imports):
    """Every course_utils module the notebook imports loads without the instructors' and test extras."""
    failed = {m: learner_install_imports[m] for m in _helpers(notebook) if learner_install_imports[m]}
    assert not failed, failed


def test_the_learner_install_check_catches_a_blocked_import(tmp_path):
    """The block the check relies on refuses what a learner install lacks."""
    code = (
        BLOCK_EXTRAS + "import nbconvert\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode != 0 and "nbconvert is not part of a learner install" in done.stderr


@pytest.mark.parametrize("notebook", sorted(p.name for p in TWINS.glob("0[1-9]*.py")))
def test_each_lecture_starts_and_ends_with_the_preamble_helpers(notebook):
    """The device line and the timer come from course_utils.core.notebook, not from code in each notebook."""
    code = (TWINS / notebook).read_text(encoding="utf-8")
    assert re.search(r"^device = start_notebook\(\)$", code, re.MULTILINE), "the first cell: device = start_notebook()"
    assert code.rstrip().endswith("report_run_time()"), "the last cell: report_run_time()"
    assert "notebook_start" not in code and "Running on:" not in code, "use start_notebook(), not a copy of it"
