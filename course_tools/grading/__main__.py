"""The grading commands for instructors.

    python -m course_tools.grading release
    python -m course_tools.grading grade SUBMISSIONS_DIR [--source NB] [--out DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cells import NotebookFormatError
from .executor import Limits
from .gradebook import summary, write_gradebook
from .release import SOURCE_DIR, STUDENT_DIR, release
from .runner import grade_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.grading", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="write the student versions of the course notebooks")
    rel.add_argument("--source-dir", type=Path, default=SOURCE_DIR)
    rel.add_argument("--out", type=Path, default=STUDENT_DIR)

    gr = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    gr.add_argument("submissions", type=Path)
    gr.add_argument("--source", type=Path, help="the source notebook (default: notebooks/<same name>.ipynb)")
    gr.add_argument("--out", type=Path, default=Path("gradebook"), help="where the gradebook goes")
    gr.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    gr.add_argument("--extra-tests", type=Path, help="folder of private hidden tests, <grade_id>.py each")
    gr.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout)
    gr.add_argument("--notebook-timeout", type=int, default=Limits.notebook_timeout)
    gr.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    gr.add_argument("--max-output-kb", type=int, default=Limits.max_output_kb)
    gr.add_argument("--threads", type=int, default=0, help="threads per kernel (default: cores / jobs)")
    args = parser.parse_args(argv)

    if args.command == "release":
        try:
            written = release(args.source_dir, args.out)
        except NotebookFormatError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        return 0
    limits = Limits(args.cell_timeout, args.notebook_timeout, args.memory_mb, args.max_output_kb, args.threads)
    try:
        rows = grade_all(args.submissions, args.source, limits, args.jobs, args.extra_tests)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_gradebook(rows, args.out)
    print(summary(rows))
    print(f"\nwrote {args.out / 'gradebook.csv'}, {args.out / 'gradebook.json'} and {args.out / 'feedback'}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
