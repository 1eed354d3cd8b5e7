"""The grading commands for instructors.

    python -m course_tools.grading release [NOTEBOOK ...] [--to PUBLIC_TREE [--url URL] [--allow-leak NB]]
    python -m course_tools.grading collect DOWNLOAD --roster ROSTER.csv --out SUBMISSIONS [--due ...]
    python -m course_tools.grading apply-late GRADEBOOK --report SUBMISSIONS/collect_report.csv
    python -m course_tools.grading grade SUBMISSIONS_DIR [--source NB] [--out DIR] [--jobs N] [--resume]
    python -m course_tools.grading merge OUT1 OUT2 ... --out MERGED   # join --shard I/N runs
    python -m course_tools.grading check MY_COPY.ipynb [--source NB]   # a learner's own check
    python -m course_tools.grading autograder NB... [--out autograder.zip]   # a Gradescope autograder
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

from .batch import default_out, grade_class, merge
from .cells import NotebookFormatError, is_grade
from .collect import add_commands as add_collect_commands
from .executor import Limits
from .gradebook import feedback
from .release import (
    SOURCE_DIR,
    STUDENT_DIR,
    PublicTreeLeak,
    release,
    release_public,
    render,
    resolve_notebooks,
    student_version,
)
from .runner import grade_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.grading", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="write the student versions of the course notebooks")
    rel.add_argument("notebooks", nargs="*", help="only these (notebooks/00_setup.ipynb or 00_setup); default all")
    rel.add_argument("--source-dir", type=Path, default=SOURCE_DIR)
    rel.add_argument("--out", type=Path, default=STUDENT_DIR)
    rel.add_argument("--to", type=Path, help="a public tree: the student versions and what they need, no solution")
    rel.add_argument("--url", help="with --to: the public tree's repository, which Colab cells clone")
    rel.add_argument("--allow-leak", action="append", default=[], metavar="NOTEBOOK",
                     help="with --to: let this notebook's solutions out (e.g. after its deadline)")

    gr = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    gr.add_argument("submissions", type=Path)
    gr.add_argument("--source", type=Path, help="the source notebook (default: notebooks/<same name>.ipynb)")
    gr.add_argument("--out", type=Path, help="where the gradebook goes (default: ~/course-grading/<SUBMISSIONS' "
                    "name>); a later run into the same folder merges by (student, notebook)")
    gr.add_argument("--resume", action="store_true", help="skip the submissions already graded in --out")
    gr.add_argument("--shard", metavar="I/N", help="grade the I-th of N equal parts of the class (then: merge)")
    gr.add_argument("--student", action="append", default=[], help="grade this student only (repeatable)")
    gr.add_argument("--exercise", action="append", default=[], metavar="GRADE_ID",
                    help="regrade this exercise only, keeping the student's other rows (repeatable)")
    gr.add_argument("--jobs", type=int, default=1, help="submissions graded at once")
    gr.add_argument("--extra-tests", type=Path, help="folder of private hidden tests, <grade_id>.py each")
    gr.add_argument("--cell-timeout", type=int, help=f"seconds a cell may take (default: from the source, at most "
                    f"{Limits.cell_timeout}); given, the limits are fixed unless --time-factor is given too")
    gr.add_argument("--notebook-timeout", type=int, help=f"seconds a notebook may take (default: from the source, "
                    f"at most {Limits.notebook_timeout})")
    gr.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    gr.add_argument("--max-output-kb", type=int, default=Limits.max_output_kb)
    gr.add_argument("--threads", type=int, default=0, help="threads per kernel (default: cores / jobs)")
    box = gr.add_mutually_exclusive_group()
    box.add_argument("--require-sandbox", dest="sandbox", action="store_const", const="require", default="auto",
                     help="refuse to grade where bubblewrap cannot sandbox the kernels")
    box.add_argument("--no-sandbox", dest="sandbox", action="store_const", const="off",
                     help="run kernels without bubblewrap (trusted notebooks only)")
    # Issue 31 (items 1, 4): the process cap, nbgrader's stderr rule, time limits from the source.
    gr.add_argument("--max-processes", type=int, default=Limits.max_processes,
                    help="processes and threads of one kernel (a fork bomb stops there)")
    gr.add_argument("--strict-stderr", action="store_true",
                    help="nbgrader's rule: no credit for a test cell that wrote to stderr (default: reported only)")
    gr.add_argument("--time-factor", type=float,
                    help="a cell may take this many times its source cell's time, measured once per run (default "
                         "10, or 0 where --cell-timeout or --notebook-timeout is given: fixed limits); those two "
                         "are the ceilings")
    gr.add_argument("--time-floor", type=int, default=Limits.time_floor, help="seconds a cell may always take")
    mg = sub.add_parser("merge", help="join the --out folders of grade --shard runs into one gradebook")
    mg.add_argument("folders", type=Path, nargs="+")
    mg.add_argument("--out", type=Path, required=True)
    me = sub.add_parser("check", help="grade your own copy of a notebook on its visible tests (for learners)")
    me.add_argument("notebook", type=Path, help="your notebook, e.g. student/02_bptt.ipynb")
    me.add_argument("--source", type=Path, help="the course notebook it comes from (default: notebooks/<same name>)")
    me.add_argument("--cell-timeout", type=int, default=Limits.cell_timeout)
    add_collect_commands(sub)  # collect, apply-late (collect.py)
    from . import autograder  # the Gradescope autograder bundle (autograder.py): its own options and handler
    autograder.add_parser(sub)
    args = parser.parse_args(argv)
    if getattr(args, "handler", None):
        return args.handler(args)

    if args.command == "check":
        return check_my_work(args.notebook, args.source, Limits(cell_timeout=args.cell_timeout))
    if args.command == "release":
        try:
            written = _release(args)
        except (NotebookFormatError, FileNotFoundError, PublicTreeLeak) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        return 0
    if args.command == "merge":
        return merge(args.folders, args.out)
    fixed = args.cell_timeout is not None or args.notebook_timeout is not None
    factor = args.time_factor if args.time_factor is not None else 0.0 if fixed else 10.0
    limits = Limits(args.cell_timeout or Limits.cell_timeout, args.notebook_timeout or Limits.notebook_timeout,
                    args.memory_mb, args.max_output_kb, args.threads)
    limits = dataclasses.replace(limits, max_processes=args.max_processes, strict_stderr=args.strict_stderr,
                                 time_factor=factor, time_floor=args.time_floor)
    return grade_class(args.submissions, args.out or default_out(args.submissions), args.source, limits, args.jobs,
                       args.extra_tests, args.sandbox, args.resume, args.shard, tuple(args.student),
                       tuple(args.exercise))


def _release(args: argparse.Namespace) -> list[Path]:
    """All of student/; only the notebooks named; or those into a public tree (--to)."""
    if args.to:
        if not args.notebooks:
            raise FileNotFoundError("name the notebooks to release into the public tree, e.g. notebooks/00_setup.ipynb")
        allow = tuple(Path(n).stem for n in args.allow_leak)
        return release_public(resolve_notebooks(args.notebooks, args.source_dir), args.to, args.url, allow,
                              args.source_dir)
    if not args.notebooks:
        return release(args.source_dir, args.out)
    written = []
    for path in resolve_notebooks(args.notebooks, args.source_dir):
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / path.name).write_text(render(student_version(nbformat.read(path, as_version=4), path.name)))
        written.append(args.out / path.name)
    return written


def _has_code(source: str) -> bool:
    return any(line.strip() and not line.strip().startswith("#") for line in source.splitlines())


def check_my_work(notebook: Path, source: Path | None, limits: Limits) -> int:
    """Grade a learner's notebook as the instructor's grader would, with the visible tests only; print the feedback.

    The hidden tests are left out (they are the instructor's), so full marks here are necessary,
    not sufficient, for full marks in the real grading.
    """
    source = source or SOURCE_DIR / notebook.name
    if not notebook.is_file():
        print(f"error: {notebook} is not a file", file=sys.stderr)
        return 2
    if not source.is_file():
        print(f"error: no course notebook {source.name}; pass --source notebooks/NN_name.ipynb", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="check-") as tmp:
        visible = Path(tmp) / source.name  # the source without its hidden tests, nor the cells that held only them
        released = student_version(nbformat.read(source, as_version=4), source.name)
        released.cells = [c for c in released.cells if not (is_grade(c) and not _has_code(c.source))]
        visible.write_text(render(released))
        mine = Path(tmp) / "submissions" / "you"  # one student, "you"
        mine.mkdir(parents=True)
        shutil.copy(notebook, mine / source.name)
        rows = grade_all(mine.parent, visible, limits, progress=False)
    print(feedback("you", rows))
    print("Visible tests only: the instructor's grading adds the hidden tests, in cells of their own "
          "worth the rest of each exercise's points.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
