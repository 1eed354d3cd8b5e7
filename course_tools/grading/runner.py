"""Grade a folder of submissions, each in its own worker process, optionally in parallel.

Layouts accepted under SUBMISSIONS_DIR:
  - ``<student>.ipynb`` — one homework per student (give ``--source``);
  - ``<student>/<notebook>.ipynb`` — the source is ``--source`` or ``notebooks/<notebook>.ipynb``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path

import nbformat
from tqdm.auto import tqdm

from .executor import Limits
from .grade import Row, exercises
from .release import SOURCE_DIR
from .sandbox import process_limit, sandbox_status
from .timing import measure_sources


def find_jobs(submissions: Path, source: Path | None) -> list[tuple[str, Path, Path | None]]:
    """(student, submission, source or None) for every notebook under ``submissions``."""
    jobs = []
    for path in sorted(submissions.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nested = path.parent != submissions
        student = path.relative_to(submissions).parts[0] if nested else path.stem
        src = source or (SOURCE_DIR / path.name if nested else None)
        jobs.append((student, path, src if src is not None and src.exists() else None))
    return jobs


def load_extra_tests(folder: Path | None, source: Path) -> dict[str, str]:
    """Instructor's extra hidden tests: ``folder/<grade_id>.py`` or ``folder/<notebook stem>/<grade_id>.py``."""
    if folder is None:
        return {}
    found = {p.stem: p.read_text() for p in folder.glob("*.py")}
    found.update({p.stem: p.read_text() for p in (folder / source.stem).glob("*.py")})
    return found


def _grade_in_worker(student: str, submission: Path, source: Path | None, limits: Limits,
                     extra_tests: Path | None, hide: list[str] | None = None) -> list[Row]:
    if source is None:
        return [Row(student, submission.name, "notebook", 0, 0, "error",
                    f"no source notebook for {submission.name}: pass --source or name it after a course notebook")]
    with tempfile.TemporaryDirectory(prefix="gradejob-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"student": student, "submission": str(submission.resolve()),
                                   "source": str(source.resolve()), "limits": asdict(limits),
                                   "extra_tests": load_extra_tests(extra_tests, source),
                                   "hide": (hide or []) + [str(source.resolve().parent)]}))
        hard_limit = limits.notebook_timeout + 3 * 60  # the worker enforces the real limit itself
        try:
            proc = subprocess.run([sys.executable, "-m", "course_tools.grading.grade", str(job), str(result)],
                                  capture_output=True, text=True, timeout=hard_limit)
        except subprocess.TimeoutExpired:
            proc = None
        if proc is not None and proc.returncode == 0 and result.exists():
            return [Row(**r) for r in json.loads(result.read_text())]
        reason = "the grading process was stopped after the time limit" if proc is None else (
            f"the grading process failed: {(proc.stderr or '').strip().splitlines()[-1:] or proc.returncode}")
    nb = nbformat.read(source, as_version=4)
    return [Row(student, source.name, "notebook", 0, 0, "error", reason)] + [
        Row(student, source.name, gid, 0, pts, "not graded", reason) for gid, pts in exercises(nb)]


class SandboxUnavailable(RuntimeError):
    """``sandbox="require"`` on a machine where bubblewrap cannot run."""


def use_sandbox(mode: str) -> bool:
    """Resolve ``"auto"`` (the sandbox where it works, else a warning), ``"require"`` or ``"off"``."""
    if mode not in ("auto", "require", "off"):
        raise ValueError(f"sandbox is auto, require or off, got {mode!r}")
    if mode == "off":
        return False
    reason = sandbox_status()
    if reason and mode == "require":
        raise SandboxUnavailable(f"no sandbox: {reason}")
    if reason:
        print(NO_SANDBOX.format(reason=reason), file=sys.stderr)
    return not reason


BAR = "!" * 100
NO_SANDBOX = f"""{BAR}
WARNING: grading without a sandbox: {{reason}}.
Every submission's code runs with your rights: it can read your home folder, your environment
variables (API tokens), earlier gradebooks, other submissions and the sources' hidden tests, and
reach the network. Install bubblewrap, or pass --require-sandbox to refuse to grade without it.
{BAR}"""
NO_PROCESS_LIMIT = f"""{BAR}
WARNING: no process limit: {{why}}; a submission that forks without end can fill this machine's
process table. Grade as an ordinary user (RLIMIT_NPROC then binds the sandbox), or as root where
a pids cgroup can be made (/sys/fs/cgroup).
{BAR}"""


def check_process_limit(limits: Limits) -> str:
    """"" where each kernel's processes are bounded, else the warning (also printed to stderr)."""
    if limits.max_processes <= 0 or process_limit(limits.sandbox)[0]:
        return ""
    why = ("the grader runs as root, which RLIMIT_NPROC exempts, and no pids cgroup can be made here"
           if os.geteuid() == 0 else "no sandbox (RLIMIT_NPROC would count all your processes) and no pids cgroup")
    warning = NO_PROCESS_LIMIT.format(why=why)
    print(warning, file=sys.stderr)
    return warning


def grade_all(submissions: Path, source: Path | None = None, limits: Limits | None = None, jobs: int = 1,
              extra_tests: Path | None = None, progress: bool = True, sandbox: str = "auto",
              work: list[tuple[str, Path, Path | None]] | None = None,
              on_result: Callable[[int, list[Row]], None] | None = None) -> list[Row]:
    """Grade every submission; rows sorted by student, notebook and exercise order.

    ``sandbox``: run each kernel under bubblewrap (:mod:`.sandbox`) where it works ("auto"),
    or refuse to grade without it ("require"), or never ("off"). ``work``: the jobs to grade
    (default: :func:`find_jobs`); ``on_result(index, rows)`` is called, in this thread, as
    each job's grading finishes (:mod:`.batch` writes the gradebook from it).
    """
    if not submissions.is_dir():
        raise FileNotFoundError(f"{submissions} is not a folder of submissions")
    limits = replace(limits or Limits(), sandbox=use_sandbox(sandbox))
    unbounded = check_process_limit(limits) if sandbox != "off" else ""
    hide = [str(p.resolve()) for p in (submissions, SOURCE_DIR, extra_tests) if p is not None]
    if limits.threads <= 0:  # share the cores: oversubscribed BLAS threads slow small models 10x or more
        limits = replace(limits, threads=max(1, (os.cpu_count() or 1) // max(1, jobs)))
    work = find_jobs(submissions, source) if work is None else work
    limits = measure_sources([src for _, _, src in work if src is not None], limits, hide, jobs)  # timing.py
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(_grade_in_worker, s, p, src, limits, extra_tests, hide): i
                   for i, (s, p, src) in enumerate(work)}
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc="grading", unit="notebook",
                               disable=not progress):
                if on_result is not None:
                    on_result(futures[future], future.result())
        except BaseException:  # Ctrl-C: start no further submission (those running finish)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if sandbox == "auto" and not limits.sandbox:  # again at the end, where the progress bar cannot hide it
        print(NO_SANDBOX.format(reason=sandbox_status() or "--no-sandbox"), file=sys.stderr)
    if unbounded:
        print(unbounded, file=sys.stderr)
    return [row for future in futures for row in future.result()]  # in job order, whatever --jobs is
