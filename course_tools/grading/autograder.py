"""A Gradescope autograder for course notebooks: build the bundle, and grade inside it.

    python -m course_tools.grading autograder notebooks/00_setup.ipynb --out autograder.zip
    python -m course_tools.grading.autograder try autograder.zip my_00_setup.ipynb [--venv .venv]

The zip follows Gradescope's autograder specification: ``setup.sh`` and ``run_autograder``
at its root, unpacked into ``/autograder/source``. Each submission is graded in its own
container by :func:`run` (``run_autograder`` calls ``python -m course_tools.grading.autograder
run``), with the local grader's own functions (:func:`.runner.grade_all`): the same plan, the
same two kernels and the same clean-kernel verdicts. ``/autograder/results/results.json`` gets
one test per exercise; checks from hidden tests are shown after the due date.

What the bundle holds (:func:`build`): a *grading copy* of each notebook, the source with every
solution replaced by the learner's stub (markers kept) and its outputs cleared: the lecture
cells, the test cells with their hidden tests, no solution (grading never runs the source's
solutions: the learner's cells stand in their place, :func:`.grade.plan`); the course's
packages (``course_utils``, ``course_tools.grading``), its data files and benchmark tables,
the pinned requirements, and ``--extra-tests`` if given.

The root ``/autograder`` comes from ``AUTOGRADER_ROOT`` where set (tests lay out a throwaway
one); ``AUTOGRADER_SANDBOX=off`` grades without the sandbox (tests of that path only). ``try``
runs a bundle on one notebook in such a root (:func:`lay_out`, :func:`run_setup`, :func:`grade_one`),
before uploading it.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import traceback
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cells import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    CODE_STUB,
    END_SOLUTION,
    MARKDOWN_STUB,
    _blocks,
    check_exercises,
    grade_id,
    is_grade,
    is_solution,
    points,
)
from .executor import Limits
from .grade import Row
from .release import REPO, render, student_version

FILES = Path(__file__).resolve().parent / "gradescope"  # setup.sh, run_autograder, README.md of the bundle
SCHEMA = Path(__file__).resolve().parent / "gradescope_results.schema.json"
CONFIG = "autograder.json"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's CPU wheels: torch without CUDA
STUDENT = "submission"  # the one learner of a Gradescope container
# The course, as the bundle carries it: (folder or file under the repository, what it is for).
COURSE_PARTS = [
    ("course_utils", "the learners' library: the notebooks' imports and the exercises' checks"),
    ("course_tools/__init__.py", "the instructors' toolkit package"),
    ("course_tools/imports.py", "the import walk the grader's release uses"),
    ("course_tools/grading", "the grader"),
    ("data", "the course's data files, with their hashes"),
    ("benchmarks/results", "the benchmark tables some notebooks quote"),
    ("pyproject.toml", "the pinned versions"),
]
VISIBLE, HIDDEN = "visible", "after_due_date"


# ----------------------------------------------------------------------------- building the bundle

def grading_copy(source: NotebookNode, name: str) -> NotebookNode:
    """``source`` without its solutions: each solution block is the learner's stub, outputs cleared.

    Hidden tests stay (they are graded). The student version of the copy is the student version
    of the source, so the grader plans the same cells from either (checked by :func:`build`).
    """
    check_exercises(source, name)
    nb = copy.deepcopy(source)
    nb.metadata.pop("jupytext", None)
    for index, cell in enumerate(nb.cells):
        if is_solution(cell):
            stub = CODE_STUB if cell.cell_type == "code" else MARKDOWN_STUB
            lines = cell.source.split("\n")
            blocks = _blocks(cell.source, BEGIN_SOLUTION, END_SOLUTION, f"{name} cell {index}")
            if not blocks:
                lines = [stub]
            for first, last in reversed(blocks):
                indent = re.match(r"\s*", lines[first]).group(0)
                lines[first: last + 1] = [indent + BEGIN_SOLUTION, indent + stub, indent + END_SOLUTION]
            cell.source = "\n".join(lines)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def exercise_list(source: NotebookNode, extra: set[str] = frozenset()) -> list[dict]:
    """Each test cell: grade_id, points, and whether its checks are hidden until the due date."""
    return [{"grade_id": grade_id(c), "points": points(c),
             "hidden": BEGIN_HIDDEN in c.source or grade_id(c) in extra}
            for c in source.cells if is_grade(c)]


def requirements(pyproject: Path = REPO / "pyproject.toml") -> tuple[str, list[str]]:
    """(torch's pin, the other pins the grader needs): the course's dependencies and the tools extra's nbclient."""
    project = tomllib.loads(pyproject.read_text())["project"]
    pins = list(project["dependencies"]) + [p for p in project["optional-dependencies"]["tools"]
                                            if p.startswith("nbclient")]
    torch = next(p for p in pins if re.match(r"torch\b", p))
    return torch, [p for p in pins if p != torch]


def _course_files() -> list[tuple[str, Path]]:
    """(path in the bundle, file) of the course's parts, sorted; no caches."""
    found = []
    for part, _ in COURSE_PARTS:
        path = REPO / part
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            rel = file.relative_to(REPO)
            if "__pycache__" in rel.parts or file.suffix == ".pyc":
                continue
            found.append((f"course/{rel.as_posix()}", file))
    return found


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "") or "unknown"


def build(notebooks: list[Path], out: Path, limits: Limits | None = None, extra_tests: Path | None = None,
          sandbox: str = "auto", torch_index: str = TORCH_INDEX) -> list[str]:
    """Write the autograder zip for ``notebooks``; return the paths it holds."""
    limits = limits or Limits()
    if sandbox not in ("auto", "require", "off"):
        raise ValueError(f"sandbox is auto, require or off, got {sandbox!r}")
    entries: dict[str, bytes] = {}
    config_notebooks = []
    for path in notebooks:
        if path.name in {c["name"] for c in config_notebooks}:
            raise ValueError(f"two notebooks named {path.name}")
        source = nbformat.read(path, as_version=4)
        extra = _extra_tests(extra_tests, path)
        listed = exercise_list(source, set(extra))
        if not listed:
            raise ValueError(f"{path} has no graded exercise (no test cell with points)")
        graded = grading_copy(source, path.name)
        if render(student_version(graded, path.name)) != render(student_version(source, path.name)):
            raise AssertionError(f"{path.name}: the grading copy's student version differs from the source's")
        entries[f"notebooks/{path.name}"] = render(graded).encode()
        for gid, text in extra.items():
            entries[f"extra_tests/{path.stem}/{gid}.py"] = text.encode()
        config_notebooks.append({"name": path.name, "exercises": listed})
    torch, pins = requirements()
    config = {"notebooks": config_notebooks, "limits": asdict(replace(limits, sandbox=False)),
              "sandbox": sandbox, "torch": torch, "torch_index": torch_index, "built_from": _git_commit()}
    entries[CONFIG] = (json.dumps(config, indent=1) + "\n").encode()
    entries["requirements.txt"] = ("\n".join(pins) + "\n").encode()
    fill = {"@TORCH@": torch, "@TORCH_INDEX@": torch_index or "pip's own index", "@BUILT_FROM@": config["built_from"],
            "@NOTEBOOKS@": ", ".join(c["name"] for c in config_notebooks),
            "@POINTS@": f"{sum(e['points'] for c in config_notebooks for e in c['exercises']):g}",
            "@MEMORY@": str(limits.memory_mb), "@NOTEBOOK_TIMEOUT@": str(limits.notebook_timeout),
            "@CELL_TIMEOUT@": str(limits.cell_timeout),
            "@TIMEOUT_MIN@": str(len(notebooks) * (limits.notebook_timeout // 60 + 5))}
    for name in ("setup.sh", "run_autograder", "README.md"):
        text = (FILES / name).read_text()
        for key, value in fill.items():
            text = text.replace(key, value if name != "setup.sh" or key != "@TORCH_INDEX@" else torch_index)
        entries[name] = text.encode()
    for name, file in _course_files():
        entries[name] = file.read_bytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same zip for the same files
            info.external_attr = (0o755 if name in ("setup.sh", "run_autograder") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
    out.write_bytes(buffer.getvalue())
    return sorted(entries)


def _extra_tests(folder: Path | None, source: Path) -> dict[str, str]:
    from .runner import load_extra_tests

    return load_extra_tests(folder, source) if folder is not None else {}


# ----------------------------------------------------------------------------- inside the container

def autograder_root() -> Path:
    return Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))


def find_submissions(folder: Path, names: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Which submitted file is graded as which notebook, and notes on the choice.

    A file named like a bundled notebook is that notebook (in any subfolder: a zip upload);
    with one bundled notebook, a single notebook of another name is taken for it.
    """
    found = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts) \
        if folder.is_dir() else []
    chosen, notes = {}, []
    for name in names:
        same = [p for p in found if p.name == name]
        if same:
            chosen[name] = same[0]
            if len(same) > 1:
                notes.append(f"{len(same)} files are named {name}; graded {same[0].relative_to(folder)}")
    rest = [p for p in found if p not in chosen.values()]
    if len(names) == 1 and names[0] not in chosen and len(rest) == 1:
        chosen[names[0]] = rest[0]
        notes.append(f"graded your {rest[0].name} as {names[0]} (the one notebook you submitted)")
        rest = []
    if rest:
        notes.append("not graded (no bundled notebook of that name): " + ", ".join(p.name for p in rest))
    return chosen, notes


def sandbox_note(mode: str) -> tuple[str, str]:
    """(the mode to grade with, what the output says about the sandbox)."""
    from .sandbox import sandbox_status

    if mode == "off":
        return "off", ("Sandbox: off in this autograder. Every check ran in a clean kernel where none of your "
                       "code runs, as in local grading; your own code ran without the sandbox's isolation.")
    reason = sandbox_status()
    if not reason:
        return mode, ("Sandbox: on (bubblewrap): your code ran with the files read-only, no network, its own "
                      "processes, and the grader's files hidden; every check ran in a clean kernel.")
    if mode == "require":
        return "require", f"Sandbox: required but unavailable in this container ({reason}); nothing was graded."
    return "off", (f"Sandbox: not available in this container ({reason}). Graded with the clean kernel alone: "
                   "every check ran in a fresh kernel where none of your code runs, as in local grading, but "
                   "your own code ran without the sandbox's isolation (files, network, processes).")


def container_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this container may use: its cgroup's CPU quota where one is set, else the CPUs it may run on.

    ``os.cpu_count()`` is the host's in a container (64, say, on a 2-CPU quota), and a kernel with
    that many BLAS threads on 2 CPUs runs small models many times slower.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for quota_file, period_file in ((cgroup / "cpu.max", None),  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"
                                    (cgroup / "cpu" / "cpu.cfs_quota_us", cgroup / "cpu" / "cpu.cfs_period_us")):
        try:
            fields = quota_file.read_text().split()
            quota, period = (fields[0], fields[1]) if period_file is None else (fields[0], period_file.read_text())
            if quota not in ("max", "-1"):
                cpus = min(cpus, max(1, int(int(quota) / int(period))))
        except (OSError, ValueError, IndexError):
            continue
    return max(1, cpus)


def grade_notebooks(root: Path, config: dict, mode: str) -> tuple[list[Row], list[str]]:
    """Grade the submission against every bundled notebook; the rows and notes on the files."""
    from .runner import grade_all

    names = [nb["name"] for nb in config["notebooks"]]
    chosen, notes = find_submissions(root / "submission", names)
    limits = Limits(**{**config["limits"], "sandbox": False})
    if limits.threads <= 0:  # one submission at a time: every CPU of the container's quota to its kernels
        limits = replace(limits, threads=container_cpus())
    extra = root / "source" / "extra_tests"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
        for nb in config["notebooks"]:
            name = nb["name"]
            if name not in chosen:
                rows += [Row(STUDENT, name, e["grade_id"], 0, e["points"], "not graded",
                             f"no {name} in your submission") for e in nb["exercises"]]
                continue
            folder = Path(tmp) / Path(name).stem
            (folder / STUDENT).mkdir(parents=True)
            shutil.copy(chosen[name], folder / STUDENT / name)
            rows += grade_all(folder, root / "source" / "notebooks" / name, limits, jobs=1,
                              extra_tests=extra if extra.is_dir() else None, progress=False, sandbox=mode)
    return rows, notes


def results(config: dict, rows: list[Row], notes: list[str], sandbox: str) -> dict:
    """Gradescope's results.json: a test per exercise (hidden checks after the due date), the notes as output."""
    tests, totals = [], []
    for nb in config["notebooks"]:
        stem, got_nb, max_nb = Path(nb["name"]).stem, 0.0, 0.0
        for exercise in nb["exercises"]:
            gid, pts = exercise["grade_id"], exercise["points"]
            row = next((r for r in rows if r.notebook == nb["name"] and r.exercise == gid), None) \
                or Row(STUDENT, nb["name"], gid, 0, pts, "not graded", "the grader returned no result for it")
            feedback = row.status + (f": {row.message}" if row.message else "")
            tests.append({"name": f"{stem}: {gid}" + (" (hidden tests)" if exercise["hidden"] else ""),
                          "score": row.points, "max_score": pts,
                          "status": "passed" if row.points == pts else "failed",
                          "output": feedback, "visibility": HIDDEN if exercise["hidden"] else VISIBLE})
            got_nb, max_nb = got_nb + row.points, max_nb + pts
        totals.append(f"{nb['name']}: {got_nb:g} / {max_nb:g} points")
    lines = totals + [sandbox]
    hidden = sum(e["points"] for nb in config["notebooks"] for e in nb["exercises"] if e["hidden"])
    if hidden:
        lines.append(f"Checks from hidden tests ({hidden:g} points) are shown after the due date.")
    lines += notes
    lines += [f"{r.notebook} {r.exercise}: {r.status}: {r.message}" for r in rows if r.max_points == 0]
    return {"score": sum(t["score"] for t in tests), "output": "\n".join(lines), "tests": tests}


def failed_results(config: dict | None, error: str) -> dict:
    """What the learner sees when the autograder itself failed: no score stands, the instructor can rerun."""
    tests = [{"name": f"{Path(nb['name']).stem}: {e['grade_id']}", "score": 0, "max_score": e["points"],
              "status": "failed", "output": "not graded: the autograder failed", "visibility": VISIBLE}
             for nb in (config or {}).get("notebooks", []) for e in nb["exercises"]]
    return {"score": 0, "output": "The autograder failed before grading your notebook; this is not your "
                                  f"mistake, and your instructor can rerun it. ({error})", "tests": tests}


def run(root: Path | None = None) -> dict:
    """Grade ``root/submission`` against the bundle in ``root/source``; write ``root/results/results.json``."""
    root = root or autograder_root()
    start = time.monotonic()
    out = root / "results" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)  # only this run's results count
    config = None
    try:
        config = json.loads((root / "source" / CONFIG).read_text())
        mode, note = sandbox_note(os.environ.get("AUTOGRADER_SANDBOX") or config.get("sandbox", "auto"))
        if mode == "require":
            found = failed_results(config, note)
        else:
            rows, notes = grade_notebooks(root, config, mode)
            found = results(config, rows, notes, note)
    except Exception as err:  # the learner gets a results.json whatever happened; stdout has the rest
        traceback.print_exc()
        found = failed_results(config, f"{type(err).__name__}: {err}")
    found["execution_time"] = round(time.monotonic() - start)
    tmp = out.with_name(".results.json.tmp")
    tmp.write_text(json.dumps(found, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    print(found["output"])
    for test in found["tests"]:
        print(f"{test['name']}: {test['score']:g} / {test['max_score']:g} ({test['visibility']})")
    return found


# ------------------------------------------------------------------- a Gradescope-like root, to try a bundle

def lay_out(bundle: Path, root: Path) -> Path:
    """Unpack ``bundle`` as Gradescope does: root/source, root/run_autograder, empty submission/ and results/."""
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # zipfile drops the mode bits; Gradescope's scripts are executable
            mode = info.external_attr >> 16
            if mode:
                os.chmod(root / "source" / info.filename, mode)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    for folder in ("submission", "results"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    return root


def run_setup(root: Path, venv: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the bundle's setup.sh for ``root`` (its environment in ``venv``, default root/venv)."""
    env = {**os.environ, **(env or {}), "AUTOGRADER_ROOT": str(root), "AUTOGRADER_VENV": str(venv or root / "venv")}
    return subprocess.run(["bash", str(root / "source" / "setup.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=3600)


def reuse_environment(root: Path, base: Path) -> Path:
    """root/venv made as setup.sh makes it, but taking its packages from the environment ``base``
    instead of installing them (minutes saved): the bundled course first (course.pth, as setup.sh
    writes it), then ``base``'s packages as a plain path, so that an editable install of the course
    in ``base`` is not on it (the sandbox hides the repository it points to)."""
    venv = root / "venv"
    python = base / "bin" / "python"
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    theirs = subprocess.run([str(python), "-c", site], capture_output=True, text=True, check=True).stdout.strip()
    mine = Path(subprocess.run([str(venv / "bin" / "python"), "-c", site], capture_output=True, text=True,
                               check=True).stdout.strip())
    (mine / "course.pth").write_text(f"{root / 'source' / 'course'}\n")
    (mine / "zz_packages.pth").write_text(f"{theirs}\n")
    return venv


def grade_one(root: Path, submission: Path, venv: Path | None = None, env: dict | None = None) -> tuple[dict, float]:
    """Put ``submission`` alone in root/submission, run root/run_autograder; (results.json, wall seconds)."""
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    shutil.copy(submission, root / "submission" / submission.name)
    env = {**os.environ, **(env or {}), "AUTOGRADER_ROOT": str(root), "AUTOGRADER_VENV": str(venv or root / "venv")}
    env.pop("PYTHONPATH", None)
    start = time.perf_counter()
    done = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                          timeout=7200)
    seconds = time.perf_counter() - start
    (root / "results" / "stdout").write_text(done.stdout + done.stderr)  # as Gradescope keeps it
    return json.loads((root / "results" / "results.json").read_text()), seconds


# ----------------------------------------------------------------------------- command line

def add_parser(sub) -> None:
    """The ``autograder`` subcommand of ``python -m course_tools.grading``."""
    ag = sub.add_parser("autograder", help="build a Gradescope autograder zip for course notebooks")
    ag.add_argument("notebooks", nargs="+", type=Path, help="source notebooks, e.g. notebooks/00_setup.ipynb")
    ag.add_argument("--out", type=Path, default=Path("autograder.zip"))
    ag.add_argument("--extra-tests", type=Path, help="folder of private hidden tests, <grade_id>.py each")
    ag.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout)
    ag.add_argument("--notebook-timeout", type=int, default=Limits.notebook_timeout)
    ag.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    ag.add_argument("--max-output-kb", type=int, default=Limits.max_output_kb)
    ag.add_argument("--threads", type=int, default=0,
                    help="threads per kernel (default: the CPUs of the container's quota)")
    box = ag.add_mutually_exclusive_group()
    box.add_argument("--require-sandbox", dest="sandbox", action="store_const", const="require", default="auto",
                     help="score nothing where bubblewrap cannot run in the container")
    box.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="off")
    ag.add_argument("--torch-index", default=TORCH_INDEX,
                    help="where setup.sh takes torch from ('' : pip's own index)")
    ag.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    limits = Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb, args.max_output_kb, args.threads)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        held = build(args.notebooks, args.out, limits, args.extra_tests, args.sandbox, args.torch_index)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    course = sum(1 for n in held if n.startswith("course/"))
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB): setup.sh, run_autograder, README.md, "
          f"{CONFIG}, requirements.txt, {', '.join(n for n in held if n.startswith('notebooks/'))} "
          f"(no solutions), {course} files of the course")
    print("Upload it as the assignment's autograder; the bundle's README.md says what to set.")
    return 0


def try_bundle(bundle: Path, submission: Path, venv: Path | None) -> int:
    """Grade ``submission`` with ``bundle`` in a throwaway Gradescope-like root; print results.json."""
    with tempfile.TemporaryDirectory(prefix="autograder-try-") as tmp:
        root = lay_out(bundle, Path(tmp) / "autograder")
        if venv is None:
            print("running setup.sh into a fresh environment (a few minutes)...", flush=True)
            done = run_setup(root)
            if done.returncode:
                print(done.stdout + done.stderr, file=sys.stderr)
                return 1
        found, seconds = grade_one(root, submission, reuse_environment(root, venv.resolve()) if venv else None)
    print(json.dumps(found, indent=1, ensure_ascii=False))
    print(f"run_autograder took {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m course_tools.grading.autograder", description=(
        "run: grade /autograder/submission (what run_autograder calls); "
        "try BUNDLE SUBMISSION: grade one notebook with a bundle in a throwaway Gradescope-like root"))
    parser.add_argument("action", choices=["run", "try"])
    parser.add_argument("paths", nargs="*", type=Path, help="try: the bundle (zip) and a submitted notebook")
    parser.add_argument("--root", type=Path, default=None, help="run: default $AUTOGRADER_ROOT or /autograder")
    parser.add_argument("--venv", type=Path, help="try: an environment to reuse instead of running setup.sh")
    parsed = parser.parse_args()
    if parsed.action == "try":
        if len(parsed.paths) != 2:
            parser.error("try needs BUNDLE SUBMISSION")
        sys.exit(try_bundle(parsed.paths[0], parsed.paths[1], parsed.venv))
    run(parsed.root)
    sys.exit(0)
