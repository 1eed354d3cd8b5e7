"""Time the grader on N copies of one homework, serially and with --jobs 2, with and without its sandbox.

    python benchmarks/grading_times.py [--copies 30] [--notebook notebooks/00_setup.ipynb] [--sandbox off require]

Prints a small table; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from course_tools.grading.runner import grade_all

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=30)
    parser.add_argument("--notebook", type=Path, default=REPO / "notebooks" / "00_setup.ipynb")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--sandbox", nargs="+", default=["off", "require"], choices=["off", "auto", "require"],
                        help="grade_all's sandbox modes to compare (bubblewrap)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp)
        for i in range(args.copies):
            shutil.copy(args.notebook, subs / f"student{i:03d}.ipynb")
        print(f"{args.copies} copies of {args.notebook.name}")
        for jobs in args.jobs:
            for sandbox in args.sandbox:  # modes interleaved, so a busy machine slows both alike
                start = time.perf_counter()
                rows = grade_all(subs, args.notebook, jobs=jobs, progress=False, sandbox=sandbox)
                seconds = time.perf_counter() - start
                full = sum(r.points for r in rows) == sum(r.max_points for r in rows)
                print(f"--jobs {jobs}, sandbox {sandbox:7s}: {seconds:6.1f} s ({seconds / args.copies:.2f} s per "
                      f"notebook), all full marks: {full}", flush=True)


if __name__ == "__main__":
    main()
