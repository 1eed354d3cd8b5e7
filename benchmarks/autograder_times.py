"""Time the Gradescope autograder in an emulated root, and project a class's grading time.

    python benchmarks/autograder_times.py [--notebooks 00_setup 01_rnn] [--repeat 3] [--venv .venv]

Builds the bundle of each notebook, lays out a Gradescope-like root (course_tools.grading.autograder),
runs its setup.sh into a fresh environment (or, with --venv, reuses one: setup.sh untimed), then
runs run_autograder on the solved notebook ``--repeat`` times: a fresh process each time, so the
wall time includes the cold start (Python's imports, both kernels' starts) as in a new container.
The same notebook is also run alone (nbclient, COURSE_THREADS=1) to split that wall time into the
notebook's own run and the grader's overhead. The projection for a class takes every notebook's
one-thread time from benchmarks/results/notebook_times.csv plus the mean overhead. Writes
benchmarks/results/autograder_times.md; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_tools.grading.autograder import build, grade_one, lay_out, reuse_environment, run_setup
from course_tools.grading.executor import Limits

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
STUDENTS, CONTAINERS = 300, [1, 10, 50, 100, 300]


def notebook_alone(path: Path) -> float:
    """Wall seconds of one run of the notebook in a fresh kernel on one thread (kernel start included)."""
    os.environ.update(COURSE_THREADS="1", COURSE_DEVICE="cpu", COURSE_WIDGETS="0", MPLBACKEND="Agg")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def one_thread_times() -> dict[str, float]:
    """notebook -> wall seconds on one thread, the newest row of each in notebook_times.csv."""
    rows = [r for r in csv.DictReader((RESULTS / "notebook_times.csv").open()) if r["threads"] == "1"
            and r["device"] == "cpu" and r["status"] == "ok"]
    newest: dict[str, dict] = {}
    for r in rows:
        if r["notebook"] not in newest or r["date"] > newest[r["notebook"]]["date"]:
            newest[r["notebook"]] = r
    return {name: float(r["wall_s"]) for name, r in sorted(newest.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", default=["00_setup", "01_rnn"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--venv", type=Path, help="reuse this environment instead of setup.sh's fresh one")
    parser.add_argument("--out", type=Path, default=RESULTS / "autograder_times.md")
    args = parser.parse_args()
    measured, setup_s, load = [], None, [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="autograder-bench-") as tmp:
        venv = Path(tmp) / "venv"
        for i, stem in enumerate(args.notebooks):
            notebook = REPO / "notebooks" / f"{stem}.ipynb"
            root = Path(tmp) / stem
            build([notebook], Path(tmp) / f"{stem}.zip", Limits(threads=1))  # as the table's times
            lay_out(Path(tmp) / f"{stem}.zip", root)
            if args.venv:  # root/venv as setup.sh makes it, its packages from --venv (not its editable course:
                venv = reuse_environment(root, args.venv.resolve())  # the sandbox hides the repository)
            if i == 0 and not args.venv:
                start = time.perf_counter()
                done = run_setup(root, venv, env={"TORCH_INDEX_URL": ""})
                setup_s = time.perf_counter() - start
                if done.returncode:
                    sys.exit(done.stdout + done.stderr)
            walls = []
            for _ in range(args.repeat):
                result, seconds = grade_one(root, notebook, venv)
                if result["score"] != sum(t["max_score"] for t in result["tests"]):  # a failed run times nothing
                    sys.exit(f"{stem}: the solved notebook did not score full marks, no table written:\n"
                             f"{result['output']}")
                walls.append(seconds)
                print(f"{stem}: run_autograder {seconds:.1f} s", flush=True)
            alone = notebook_alone(notebook)
            print(f"{stem}: the notebook alone {alone:.1f} s", flush=True)
            measured.append((f"{stem}.ipynb", walls, alone))
    load.append(os.getloadavg()[0])
    write(args.out, measured, setup_s, args.venv, load)


def write(out: Path, measured: list, setup_s: float | None, venv: Path | None, load: list[float]) -> None:
    times = one_thread_times()
    overhead = statistics.mean(statistics.median(w) - alone for _, w, alone in measured)
    # The same overhead at the load of the table's times: scaled by how much slower each notebook ran here
    slowdown = statistics.mean(alone / times[name] for name, _, alone in measured if name in times)
    cores = os.cpu_count()
    lines = [
        "# Autograder times (Gradescope bundle, emulated)", "",
        "Written by `benchmarks/autograder_times.py`. Each run is `run_autograder` in a Gradescope-like root "
        "(course_tools.grading.autograder: `source/` the unzipped bundle, `submission/` the solved notebook, "
        "`results/`), a fresh process each time: Python's imports and both kernels' starts are included, "
        "kernels on one thread (`--threads 1`, as the table's times), "
        "Gradescope's own container start and queue are not (not measurable here). \"Alone\" is the same "
        "notebook run once in a fresh kernel on one thread (nbclient); the overhead is the median run minus that.",
        "",
        f"Machine: {platform.machine()}, {cores} cores, load average {load[0]:.1f} at the start and "
        f"{load[-1]:.1f} at the end (other work on the machine slows every figure alike), "
        f"Python {platform.python_version()}; {date.today().isoformat()}. Built with `--threads 1`; a bundle "
        "built without it gives each kernel the container's CPUs (faster on 2 CPUs: notebook_times.md's "
        "COURSE_THREADS=2 rows), so the one-thread figures are the conservative side.", "",
        "| notebook | run_autograder wall (s), each run | median (s) | notebook alone (s) | overhead (s) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, walls, alone in measured:
        med = statistics.median(walls)
        lines.append(f"| {name} | {', '.join(f'{w:.1f}' for w in walls)} | {med:.1f} | {alone:.1f} | "
                     f"{med - alone:.1f} |")
    lines += ["", f"- setup.sh into a fresh environment: {setup_s:.0f} s (once per bundle: Gradescope builds "
              "the image when the bundle is uploaded, not per submission)." if setup_s is not None else
              f"- setup.sh: not run (environment reused: {venv}).", ""]
    scaled = overhead / slowdown
    longest_name = max(times, key=times.get)
    lines += [
        f"## Projection: {STUDENTS} students x {len(times)} notebooks", "",
        "Per submission of notebook k: W_k = t_k + O, with t_k its one-thread wall time "
        f"(benchmarks/results/notebook_times.csv, {len(times)} notebooks, sum {sum(times.values()):.0f} s) and O the "
        "grader's overhead per "
        f"submission. Measured here O = {overhead:.1f} s, but here each notebook also ran {slowdown:.1f}x slower "
        f"than in the table (\"alone\" against t_k), so at the table's load O ~ {overhead:.1f} / {slowdown:.1f} "
        f"= {scaled:.1f} s. Both are projected. With S = {STUDENTS} students and N containers grading at once:",
        "",
        "    T(N) = max(S * sum_k (t_k + O) / N,  max_k (t_k + O))",
        "",
        f"| O (s) | one student's {len(times)} notebooks (s) | container-hours for the class | N = "
        + " | N = ".join(str(n) for n in CONTAINERS) + " |",
        "| ---: | ---: | ---: |" + " ---: |" * len(CONTAINERS),
    ]
    for o in (overhead, scaled):
        per_student = sum(times.values()) + len(times) * o
        total, longest = STUDENTS * per_student, times[longest_name] + o
        cells = [f"{max(total / n, longest) / 3600:.2f} h" for n in CONTAINERS]
        lines.append(f"| {o:.1f} | {per_student:.0f} | {total / 3600:.1f} | " + " | ".join(cells) + " |")
    longest = times[longest_name] + scaled
    lines += ["", f"One weekly assignment (one notebook, {STUDENTS} submissions) takes S * (t_k + O) / N: the "
              f"longest, {longest_name}, is {STUDENTS * longest / 3600:.1f} container-hours, "
              f"{STUDENTS * longest / 10 / 60:.0f} min on N = 10 containers (O = {scaled:.1f} s). "
              "Gradescope grades each submission as it arrives, so in practice T is set by how many "
              "containers it runs for the course at once, which it does not publish.", ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
