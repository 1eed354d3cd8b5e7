"""Grade a class into an output folder: one submission per (student, notebook), checked inputs,
each result stored as it finishes, regrades merged, ``--resume``, ``--shard`` and ``merge``.

    python -m course_tools.grading grade SUBMISSIONS [--out DIR] [--resume] [--shard I/N]
        [--student NAME ...] [--exercise GRADE_ID ...]
    python -m course_tools.grading merge OUT1 OUT2 ... --out MERGED

Decisions:

- **One submission per (student, notebook).** Uploads of the same notebook by one student
  (``judy/00_setup.ipynb`` and ``judy/00_setup-Copy1.ipynb``, ``Copy of 00_setup.ipynb``,
  ``00_setup (1).ipynb``) are one submission: the file named exactly after the notebook is
  graded, else the newest (modification time, then name). The others are listed in the run's
  output and in the student's feedback (an ``extra upload`` note, no points).
- **Merged by (student, notebook).** A run replaces the rows of the (student, notebook) pairs
  it grades and keeps every other row in ``--out``: regrade one student by grading a folder
  that holds only them (or ``--student NAME``), one notebook with ``--source``, one exercise
  with ``--exercise GRADE_ID`` (that exercise's rows only; the rest of the student's rows stay;
  a (student, notebook) not graded before gets all its rows).
- **--resume** skips the pairs already in ``--out`` whose submitted file has not changed
  (same SHA-256), so a run that was stopped goes on where it was.
- **--shard I/N** (I from 1 to N) grades every N-th (student, notebook) pair of the sorted
  list, starting at the I-th: the same split on every machine that sees the same files.
  ``merge`` joins the shards' folders into the files a serial run writes, byte for byte.
- **--out** defaults to ``~/course-grading/<name of the submissions folder>``, outside the
  course repository (it holds every student's grades; ``gradebook/`` is git-ignored too).
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import nbformat

from .executor import Limits
from .grade import Row, exercises
from .gradebook import Record, append_record, read_store, summary, write_exports, write_store
from .release import REPO, SOURCE_DIR
from .runner import SandboxUnavailable, find_jobs, grade_all

EXTRA_UPLOAD = "extra upload"
# Copies a notebook server, Colab or a browser makes: "Copy of X", "X-Copy1", "X (1)"
COPY_NAME = re.compile(r"^(?:Copy of )?(?P<stem>.+?)(?:-Copy\d+| ?\(\d+\))?\.ipynb$")


class ClassError(ValueError):
    """The class cannot be graded as asked; the message says why and what to do."""


def default_out(submissions: Path) -> Path:
    """``~/course-grading/<submissions folder's name>``: outside the repository, the same for a resumed run."""
    return Path.home() / "course-grading" / (submissions.resolve().name or "submissions")


def course_notebook(name: str, source_dir: Path = SOURCE_DIR) -> Path | None:
    """The course notebook a file name stands for, copies' names included (``00_setup-Copy1.ipynb``)."""
    match = COPY_NAME.match(name)
    path = source_dir / f"{match['stem']}.ipynb" if match else None
    return path if path is not None and path.is_file() else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Job:
    """One submission to grade, and the other uploads of the same (student, notebook) it stands for."""

    student: str
    path: Path
    source: Path | None
    extras: list[Path] = field(default_factory=list)
    rule: str = ""

    @property
    def notebook(self) -> str:
        return self.source.name if self.source is not None else self.path.name

    @property
    def key(self) -> tuple[str, str]:
        return (self.student, self.notebook)

    def note(self, submissions: Path) -> Row | None:
        """The feedback row that lists the uploads not graded (None: there were none)."""
        if not self.extras:
            return None
        others = ", ".join(p.relative_to(submissions).as_posix() for p in self.extras)
        return Row(self.student, self.notebook, "submission", 0, 0, EXTRA_UPLOAD,
                   f"graded {self.path.relative_to(submissions).as_posix()} ({self.rule}); "
                   f"not graded: {others}")


def find_class(submissions: Path, source: Path | None) -> list[Job]:
    """One job per (student, notebook), sorted; duplicates folded into the job that grades one of them."""
    groups: dict[tuple[str, str], list[tuple[Path, Path | None]]] = {}
    for student, path, src in find_jobs(submissions, source):
        if src is None and path.parent != submissions:
            src = course_notebook(path.name)
        name = src.name if src is not None else path.name
        groups.setdefault((student, name), []).append((path, src))
    jobs = []
    for (student, name), group in sorted(groups.items()):
        exact = [g for g in group if g[0].name == name]
        chosen = max(exact or group, key=lambda g: (g[0].stat().st_mtime_ns, g[0].as_posix()))
        rule = "the file named exactly after the notebook" if exact else "the newest upload"
        if len(exact) > 1:
            rule = "the newest of the files named exactly after the notebook"
        extras = sorted(p for p, _ in group if p != chosen[0])
        jobs.append(Job(student, chosen[0], chosen[1], extras, rule if extras else ""))
    return jobs


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), 1 <= I <= N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ClassError(f"--shard {text!r}: give I/N with 1 <= I <= N, e.g. --shard 1/4")
    return int(match[1]), int(match[2])


def shard_of(jobs: list[Job], shard: tuple[int, int]) -> list[Job]:
    """Every N-th job of the list sorted by (student, notebook), from the I-th: a stable split."""
    index, count = shard
    return sorted(jobs, key=lambda j: j.key)[index - 1::count]


def check_extra_tests(folder: Path, sources: list[Path]) -> list[str]:
    """What the instructor's extra tests attach to, one line each; ClassError if any file matches nothing.

    ``folder/<grade_id>.py`` attaches to that test cell of any notebook graded;
    ``folder/<notebook>/<grade_id>.py`` to that notebook's only. A file whose name is no test
    cell's grade_id (of a notebook graded, or of a course notebook) is almost surely a typo:
    grading it would give full marks for a test that never ran.
    """
    if not folder.is_dir():
        raise ClassError(f"--extra-tests {folder}: no such folder")
    ids = {src.stem: [gid for gid, _ in exercises(nbformat.read(src, as_version=4))] for src in sources}
    course = {p.stem: p for p in SOURCE_DIR.glob("*.ipynb")}
    others: set[str] = set()  # grade_ids of the course notebooks not graded here, read once if needed

    def elsewhere(gid: str) -> bool:
        if not others:
            others.update(g for stem, p in course.items() if stem not in ids
                          for g, _ in exercises(nbformat.read(p, as_version=4)))
        return gid in others

    lines, unmatched = [], []
    for test in sorted(folder.glob("*.py")):
        hits = [f"{stem}.ipynb" for stem, gids in ids.items() if test.stem in gids]
        if hits:
            lines.append(f"  {test.relative_to(folder)} -> {', '.join(hits)} ({test.stem})")
        elif elsewhere(test.stem):
            lines.append(f"  {test.relative_to(folder)} -> not used: its notebook is not graded in this run")
        else:
            unmatched.append(test.relative_to(folder).as_posix())
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))):
        if sub.name not in ids and sub.name not in course:
            unmatched += [p.relative_to(folder).as_posix() for p in sorted(sub.glob("*.py"))] or [f"{sub.name}/"]
            continue
        for test in sorted(sub.glob("*.py")):
            if sub.name not in ids:
                lines.append(f"  {test.relative_to(folder)} -> not used: its notebook is not graded in this run")
            elif test.stem in ids[sub.name]:
                lines.append(f"  {test.relative_to(folder)} -> {sub.name}.ipynb ({test.stem})")
            else:
                unmatched.append(test.relative_to(folder).as_posix())
    if unmatched:
        known = ", ".join(f"{stem}: {' '.join(gids)}" for stem, gids in sorted(ids.items()))
        raise ClassError(f"--extra-tests {folder}: {', '.join(unmatched)} match(es) no test cell's grade_id "
                         f"(name each <grade_id>.py or <notebook>/<grade_id>.py; the test cells graded here: "
                         f"{known})")
    return lines


def plan_class(submissions: Path, source: Path | None = None, extra_tests: Path | None = None,
               students: tuple[str, ...] = (), only: tuple[str, ...] = ()) -> list[Job]:
    """The jobs of a run, after every check that can fail before a kernel starts (ClassError if one does)."""
    if not submissions.is_dir():
        raise ClassError(f"{submissions} is not a folder of submissions")
    if source is not None and not source.is_file():
        raise ClassError(f"--source {source}: no such notebook")
    if source is not None:
        try:
            nbformat.read(source, as_version=4)
        except Exception as err:  # noqa: BLE001 - any reason the source cannot be read stops the run
            raise ClassError(f"--source {source} is not a readable notebook: {err}") from None
    jobs = find_class(submissions, source)
    if not jobs:
        raise ClassError(f"no notebooks (*.ipynb) in {submissions}: one per student, as alice.ipynb or "
                         "alice/02_bptt.ipynb")
    if students:
        missing = sorted(set(students) - {j.student for j in jobs})
        if missing:
            raise ClassError(f"--student {' '.join(missing)}: no such student in {submissions}")
        jobs = [j for j in jobs if j.student in students]
    sources = sorted({j.source for j in jobs if j.source is not None})
    if not sources:
        raise ClassError(f"none of the {len(jobs)} notebooks in {submissions} is named after a course notebook "
                         f"({', '.join(sorted({j.path.name for j in jobs})[:3])}...): pass --source")
    if only:
        gids = {src: {gid for gid, _ in exercises(nbformat.read(src, as_version=4))} for src in sources}
        unknown = sorted(set(only) - set().union(*gids.values()))
        if unknown:
            raise ClassError(f"--exercise {' '.join(unknown)}: no such test cell in "
                             f"{', '.join(s.name for s in sources)}")
        jobs = [j for j in jobs if j.source is not None and gids[j.source] & set(only)]
    if extra_tests is not None:
        lines = check_extra_tests(extra_tests, sources)
        print(f"extra tests from {extra_tests}:", *lines, sep="\n")
    return jobs


def merge_exercises(old: Record | None, new: Record, only: tuple[str, ...]) -> Record:
    """``new``'s rows of the exercises in ``only`` in place of ``old``'s; ``old``'s other rows kept."""
    if old is None or not only:
        return new
    fresh = {r.exercise: r for r in new.rows if r.exercise in only}
    rows = [fresh.pop(r.exercise) if r.exercise in fresh else r for r in old.rows]
    return replace(new, rows=rows + list(fresh.values()))


def grade_class(submissions: Path, out: Path, source: Path | None = None, limits: Limits | None = None,
                jobs: int = 1, extra_tests: Path | None = None, sandbox: str = "auto", resume: bool = False,
                shard: str | None = None, students: tuple[str, ...] = (), only: tuple[str, ...] = (),
                progress: bool = True) -> int:
    """Grade a class into ``out`` (the module docstring says how); the exit status (0, or 2 with a message)."""
    try:
        work = plan_class(submissions, source, extra_tests, students, only)
        if shard is not None:
            index, count = parse_shard(shard)
            total, work = len(work), shard_of(work, (index, count))
            print(f"shard {index}/{count}: {len(work)} of {total} submissions")
    except ClassError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if out.resolve().is_relative_to(REPO) and not out.resolve().is_relative_to(REPO / "gradebook"):
        print(f"warning: {out} is inside the course repository; git would see every student's grades",
              file=sys.stderr)
    for job in work:
        if job.source is None:
            print(f"warning: {job.path.relative_to(submissions)} is named after no course notebook: "
                  "it gets an error row (pass --source)", file=sys.stderr)
        if job.extras:
            print(f"note: {job.note(submissions).message}")
    records = read_store(out)
    hashes = {job.key: sha256(job.path) for job in work}
    if resume:
        done = [j for j in work if j.key in records and records[j.key].sha256 == hashes[j.key]]
        work = [j for j in work if j not in done]
        print(f"--resume: {len(done)} already graded in {out}, {len(work)} to grade")
    possible = {src: sum(p for _, p in exercises(nbformat.read(src, as_version=4)))
                for src in {j.source for j in work if j.source is not None}}

    def store(index: int, rows: list[Row]) -> None:
        job = work[index]
        note = job.note(submissions)
        record = Record(job.student, job.notebook, job.path.relative_to(submissions).as_posix(), hashes[job.key],
                        possible.get(job.source, 0.0), rows + ([note] if note else []))
        record = merge_exercises(records.get(job.key), record, only)
        append_record(out, record)
        records[job.key] = record
        write_exports(out, records, {job.student})

    try:
        rows = grade_all(submissions, None, limits, jobs, extra_tests, progress, sandbox,
                         work=[(j.student, j.path, j.source) for j in work], on_result=store)
    except (FileNotFoundError, SandboxUnavailable) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: what was graded is in {out}; the same command with --resume goes on",
              file=sys.stderr)
        return 130
    write_store(out, records)
    if rows:
        print(summary(rows))
    print(f"\ngraded {len(work)} submission(s); {out} holds {len(records)}: gradebook.csv, gradebook.json, "
          f"grades_wide.csv, canvas.csv, feedback/ (.md and .html), gradescope/ and the store {out / 'results.jsonl'}")
    return 0


def merge(outs: list[Path], out: Path) -> int:
    """Join the results of several runs (shards) into ``out``: the files one serial run would write."""
    records = read_store(out)
    for folder in outs:
        if not (folder / "results.jsonl").is_file():
            print(f"error: {folder} holds no results.jsonl (is it a grade --out folder?)", file=sys.stderr)
            return 2
        for key, record in read_store(folder).items():
            if key in records and records[key] != record and folder != out:
                print(f"warning: {key[0]}'s {key[1]} is in more than one folder; the one in {folder} is kept",
                      file=sys.stderr)
            records[key] = record
    write_store(out, records)
    print(f"merged {len(outs)} folder(s) into {out}: {len(records)} graded submission(s)")
    return 0
