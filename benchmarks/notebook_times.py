"""Execute every course notebook and record its wall time and peak memory.

    python benchmarks/notebook_times.py                      # all notebooks, default device
    COURSE_DEVICE=cuda python benchmarks/notebook_times.py   # the same on a GPU
    python benchmarks/notebook_times.py notebooks/01_rnn.ipynb --threads 2
    python benchmarks/notebook_times.py --pair               # also two copies at once, side by side

Results are merged into benchmarks/results/notebook_times.csv (one row per notebook and
device, the newest run winning) and rendered as notebook_times.md. This is a benchmark,
not a test: it reports notebooks over the budget, and never fails because of time.

Budget: each notebook at most 90 s on 2 CPU cores; the whole course at most 10 minutes.
With ``--pair`` each notebook also runs as two copies at once (two kernels, as when a learner
has two notebooks open, or the grader runs two jobs): the table shows that time and its ratio
to the time alone (aim: at most 1.3 on 2 cores). Threads follow the course's policy
(``COURSE_THREADS``, default 1; ``--threads`` sets it).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
NOTEBOOK_BUDGET_S = 90.0
COURSE_BUDGET_S = 600.0
FIELDS = ["notebook", "device", "wall_s", "pair_wall_s", "peak_rss_mib", "cuda_peak_mib", "status", "threads",
          "machine", "date"]
PAIR_AIM = 1.3  # two copies at once on 2 cores: at most 1.3x the time of one alone

# Appended to a copy of the notebook: the kernel reports its own peak memory.
PROBE = """
import resource as _r, sys as _s
_cuda = 0.0
if "torch" in _s.modules and _s.modules["torch"].cuda.is_available():
    _cuda = _s.modules["torch"].cuda.max_memory_allocated() / 2**20
print("__PEAK__", _r.getrusage(_r.RUSAGE_SELF).ru_maxrss / 1024, _cuda)
"""


def run_notebook(path: Path, timeout: int) -> dict:
    """Execute one notebook in a fresh kernel; return its timing and memory row."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    status = "ok"
    try:
        client.execute()
    except CellExecutionError as err:
        status = "error: " + str(err).strip().splitlines()[-1][:120]
    except TimeoutError:
        status = f"timeout after {timeout} s"
    wall = time.perf_counter() - start
    rss = cuda = float("nan")
    printed = "".join(output.get("text", "") for output in nb.cells[-1].get("outputs", []))  # may come in chunks
    peak = re.search(r"__PEAK__ (\S+) (\S+)", printed)
    if peak:
        rss, cuda = float(peak[1]), float(peak[2])
    return {"notebook": path.name, "wall_s": f"{wall:.1f}", "peak_rss_mib": f"{rss:.0f}",
            "cuda_peak_mib": f"{cuda:.0f}", "status": status}


def run_pair(path: Path, timeout: int) -> tuple[float, str]:
    """Run two copies of the notebook at once (two kernels); the slower one's wall time, and a status."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(lambda _: run_notebook(path, timeout), range(2)))
    statuses = {r["status"] for r in rows}
    return max(float(r["wall_s"]) for r in rows), "ok" if statuses == {"ok"} else "; ".join(sorted(statuses))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"


def merge(rows: list[dict], csv_path: Path) -> list[dict]:
    """Replace rows with the same (notebook, device, threads); keep the others."""
    old = []
    if csv_path.exists():
        with open(csv_path, newline="") as f:
            old = list(csv.DictReader(f))
    keys = {setting(r) + (r["notebook"],) for r in rows}
    merged = [r for r in old if setting(r) + (r["notebook"],) not in keys] + rows
    return sorted(merged, key=lambda r: setting(r) + (r["notebook"],))


def setting(row: dict) -> tuple[str, str]:
    """What a row was measured under: (device, threads)."""
    return row["device"], row["threads"]


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "# Notebook run times",
        "",
        f"Written by `benchmarks/notebook_times.py`. Budget: {NOTEBOOK_BUDGET_S:.0f} s per notebook on "
        f"2 CPU cores, {COURSE_BUDGET_S / 60:.0f} minutes for the whole course. Wall time includes "
        "starting the kernel; peak RSS is the kernel process's.",
        "",
        f"\"Two at once\": two copies of the notebook run side by side (the slower one's time); aim "
        f"{PAIR_AIM} x the time alone or less on 2 cores. Threads: the course's policy, `COURSE_THREADS`.",
        "",
        "| notebook | device | wall (s) | two at once (s) | ratio | peak RSS (MiB) | peak CUDA (MiB) | status "
        "| threads | machine | date |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for r in rows:
        flag = " (over budget)" if r["device"] == "cpu" and float(r["wall_s"]) > NOTEBOOK_BUDGET_S else ""
        pair = r.get("pair_wall_s") or ""
        ratio = f"{float(pair) / float(r['wall_s']):.2f}" if pair else "not measured"
        if pair and float(pair) > PAIR_AIM * float(r["wall_s"]):
            ratio += " (over the aim)"
        lines.append(f"| {r['notebook']} | {r['device']} | {r['wall_s']}{flag} | {pair or '-'} | {ratio} | "
                     f"{r['peak_rss_mib']} | {r['cuda_peak_mib']} | {r['status']} | {r['threads']} | {r['machine']} "
                     f"| {r['date']} |")
    lines.append("")
    for device, threads in sorted({setting(r) for r in rows}):
        chosen = [r for r in rows if setting(r) == (device, threads)]
        total = sum(float(r["wall_s"]) for r in chosen)
        verdict = "within" if total <= COURSE_BUDGET_S else "OVER"
        where = f"{device}, COURSE_THREADS={threads}" if device == "cpu" else device
        lines.append(f"- Whole course on {where}: {total:.0f} s over {len(chosen)} notebooks "
                     f"({verdict} the {COURSE_BUDGET_S:.0f} s budget).")
    lines += thread_comparison(rows)
    return "\n".join(lines) + "\n"


def thread_comparison(rows: list[dict]) -> list[str]:
    """Lines comparing each notebook on the CPU alone at 1 thread and at more, where both were measured."""
    one = {r["notebook"]: float(r["wall_s"]) for r in rows if setting(r) == ("cpu", "1")}
    lines = []
    for threads in sorted({r["threads"] for r in rows if r["device"] == "cpu"} - {"1"}):
        more = [r for r in rows if setting(r) == ("cpu", threads) and r["notebook"] in one]
        if not more:
            continue
        gains = ", ".join(f"{r['notebook'].split('_')[0]} {one[r['notebook']] / float(r['wall_s']):.2f}x" for r in more)
        lines.append(f"- COURSE_THREADS={threads} against 1, alone (above 1 is faster): {gains}.")
        pairs = [r for r in more if r.get("pair_wall_s")]
        if pairs:
            slow = ", ".join(f"{r['notebook'].split('_')[0]} {float(r['pair_wall_s']) / one[r['notebook']]:.1f}x"
                             for r in pairs)
            lines.append(f"- COURSE_THREADS={threads}, two at once, against one copy alone at 1 thread: {slow}.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--threads", help="CPU threads per kernel (sets COURSE_THREADS; default: the policy's 1)")
    parser.add_argument("--pair", action="store_true", help="also run two copies of each notebook at once")
    parser.add_argument("--timeout", type=int, default=600, help="per-cell timeout in seconds")
    parser.add_argument("--results", type=Path, default=RESULTS / "notebook_times.csv")
    args = parser.parse_args(argv)

    from course_utils import get_device
    from course_utils.core.device import cpu_threads_requested

    device = get_device().type  # fails clearly if COURSE_DEVICE asks for a missing device
    os.environ["COURSE_DEVICE"] = device  # the kernels inherit it
    os.environ.setdefault("MPLBACKEND", "Agg")
    if args.threads:
        cpu_threads_requested(args.threads)  # a clear error for "0" or "two", before any kernel starts
        os.environ["COURSE_THREADS"] = str(args.threads)  # the kernels apply it (course_utils.core.device)
    threads = os.environ.get("COURSE_THREADS", "1")
    paths = args.notebooks or sorted((REPO / "notebooks").glob("*.ipynb"))
    rows = []
    for path in paths:
        print(f"{path.name} on {device} ...", end=" ", flush=True)
        row = run_notebook(path.resolve(), args.timeout)
        row.update(device=device, threads=threads, machine=machine(), date=dt.date.today().isoformat(), pair_wall_s="")
        print(f"{row['wall_s']} s, {row['peak_rss_mib']} MiB, {row['status']}", end="", flush=True)
        if args.pair:
            pair_s, pair_status = run_pair(path.resolve(), args.timeout)
            row["pair_wall_s"] = f"{pair_s:.1f}"
            if pair_status != "ok":
                row["status"] = f"{row['status']}; two at once: {pair_status}"
            print(f"; two at once {pair_s:.1f} s ({pair_s / float(row['wall_s']):.2f}x)", end="", flush=True)
        print(flush=True)
        rows.append(row)
    merged = merge(rows, args.results)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, restval="", lineterminator="\n")  # the file as git keeps it
        writer.writeheader()
        writer.writerows(merged)
    args.results.with_suffix(".md").write_text(to_markdown(merged))
    print(f"wrote {args.results} and {args.results.with_suffix('.md')}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
