"""Time limits from the source notebook: a cell may take a generous multiple of its source cell's time.

Fixed limits (300 s a cell, 900 s a notebook) let one hung submission cost 10 to 18 minutes of
a notebook that runs in 6 to 84 s. With ``Limits.time_factor > 0`` (the command line's default),
the runner first runs each source notebook once, as it is (hidden tests included), in the same
sandbox and with the same threads as the submissions (:func:`measure`), and each cell of a
submission may then take ``time_factor`` times what its source cell took, at least
``time_floor`` seconds (:func:`cell_limit`); a notebook, ``time_factor`` times the source's total
plus ``time_floor`` (:func:`notebook_limit`). ``cell_timeout`` and ``notebook_timeout`` stay the
ceilings. Measured on the same machine as the grading, under the same load, the limits follow
its speed; the factor leaves room for a machine twice as busy when the class is graded and for
an answer slower than the model one.

A cell the learner added has no source cell: it gets the largest limit of the notebook's cells.
A source that does not run cleanly keeps the fixed limits, and the grader says so: better to
know before grading a class than after.

Run as a module, it measures one source in its own process (the runner's worker)::

    python -m course_tools.grading.timing JOB.json RESULT.json
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import nbformat

from .executor import Limits, run_cells

Seconds = list[float | None]  # per source cell; None for a markdown or raw cell


def measure(source_path: Path, limits: Limits, hide: Sequence[Path] = ()) -> Seconds | str:
    """Seconds each code cell of the source took, run as it is in a grading kernel; or why it could not run."""
    source = nbformat.read(source_path, as_version=4)
    cells = [nbformat.v4.new_code_cell(c.source) if c.cell_type == "code" else c for c in source.cells]
    fixed = replace(limits, time_factor=0, measured={})
    with tempfile.TemporaryDirectory(prefix="grade-measure-") as tmp:
        results = run_cells(cells, fixed, workdir=Path(tmp), hide=[*hide, source_path.resolve().parent])
    for index, (cell, result) in enumerate(zip(source.cells, results, strict=True)):
        if cell.cell_type == "code" and result.status != "ok":
            return f"cell {index} of the source: {result.message or result.status}"
    return [r.seconds if c.cell_type == "code" else None for c, r in zip(source.cells, results, strict=True)]


def cell_limit(seconds: float | None, limits: Limits, measured: Seconds) -> int:
    """A cell's limit: ``time_factor`` x its source cell's ``seconds``, at least ``time_floor``, at most
    ``cell_timeout``; a cell without a source cell (``seconds`` None) gets the notebook's largest."""
    if seconds is None:
        seconds = max((s for s in measured if s is not None), default=0.0)
    return min(limits.cell_timeout, max(limits.time_floor, math.ceil(limits.time_factor * seconds)))


def notebook_limit(measured: Seconds, limits: Limits) -> int:
    """The whole notebook's: ``time_factor`` x the source's total, plus ``time_floor``; at most ``notebook_timeout``."""
    total = sum(s for s in measured if s is not None)
    return min(limits.notebook_timeout, math.ceil(limits.time_factor * total) + limits.time_floor)


def limits_note(limits: Limits) -> str:
    """What a timeout message adds where the limits come from the source."""
    return (f"the limit is {limits.time_factor:g}x the time the source notebook's cell took, "
            f"at least {limits.time_floor} s")


def _measure_in_worker(source: Path, limits: Limits, hide: list[str]) -> Seconds | str:
    with tempfile.TemporaryDirectory(prefix="grade-measure-job-") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"source": str(source.resolve()), "limits": asdict(limits), "hide": hide}))
        try:
            proc = subprocess.run([sys.executable, "-m", "course_tools.grading.timing", str(job), str(result)],
                                  capture_output=True, text=True, timeout=limits.notebook_timeout + 3 * 60)
        except subprocess.TimeoutExpired:
            return "the source did not finish within the notebook's time limit"
        if proc.returncode != 0 or not result.exists():
            return f"measuring it failed: {(proc.stderr or '').strip().splitlines()[-1:] or proc.returncode}"
        return json.loads(result.read_text())


def measure_sources(sources: Sequence[Path], limits: Limits, hide: list[str], jobs: int = 1) -> Limits:
    """``limits`` with each source's measured seconds (``limits.measured``); a source that fails is
    reported on stderr and keeps the fixed limits."""
    if limits.time_factor <= 0 or not sources:
        return limits
    sources = sorted({s.resolve() for s in sources})
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        found = list(pool.map(lambda s: _measure_in_worker(s, limits, hide), sources))
    measured = dict(limits.measured)
    for source, seconds in zip(sources, found, strict=True):
        if isinstance(seconds, str):
            print(f"warning: {source.name} does not run cleanly in the grader's kernel ({seconds}); its "
                  f"submissions keep the fixed limits ({limits.cell_timeout} s a cell, "
                  f"{limits.notebook_timeout} s a notebook). Is the environment the course's?", file=sys.stderr)
            continue
        measured[str(source)] = seconds
        print(f"{source.name}: the source runs in {sum(s for s in seconds if s is not None):.1f} s; a cell may take "
              f"{limits.time_factor:g}x its source cell's time (at least {limits.time_floor} s), the notebook "
              f"{notebook_limit(seconds, limits)} s", file=sys.stderr)
    return replace(limits, measured=measured)


def main(job_path: str, result_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    seconds = measure(Path(job["source"]), Limits(**job["limits"]), [Path(p) for p in job["hide"]])
    Path(result_path).write_text(json.dumps(seconds))


if __name__ == "__main__":
    main(*sys.argv[1:3])
