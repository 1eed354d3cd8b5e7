"""The gradebook: a results store written as each submission is graded, and the files made from it.

- ``results.jsonl``: the store, one JSON line per graded (student, notebook), appended (and
  flushed to disk) the moment its grading finishes; a later line for the same (student,
  notebook) replaces an earlier one, so a regrade merges into the gradebook instead of
  replacing it, and a run cut short keeps what it finished (``grade --resume`` goes on from
  it). At the end of a run it is rewritten sorted by (student, notebook), one line each;
- ``gradebook.csv`` / ``gradebook.json``: one row per (student, notebook, exercise);
- ``grades_wide.csv``: one row per student, one column per exercise and per notebook, and
  the total (Moodle's "Import grades from CSV", spreadsheets);
- ``canvas.csv``: Canvas' gradebook import (Student, ID, SIS User ID, SIS Login ID, Section,
  then one column per notebook, and its "Points Possible" row);
- ``gradescope/<student>/results.json``: Gradescope's autograder results format;
- ``feedback/<student>.md`` and ``feedback/<student>.html`` (the same, rendered).

Every CSV cell that a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return, and is not a plain number) is written with a leading
apostrophe, OWASP's advice against CSV injection: a student folder named ``=1+2`` shows as the
text ``'=1+2``. The files are (re)written atomically, and a file whose content did not change
is left untouched.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import mistune

from .grade import Row

COLUMNS = [f.name for f in fields(Row)]
STORE = "results.jsonl"


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half (unchanged: untouched)."""
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def totals(rows: list[Row]) -> dict[tuple[str, str], tuple[float, float]]:
    """(student, notebook) -> (points, max points)."""
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        out[(r.student, r.notebook)][0] += r.points
        out[(r.student, r.notebook)][1] += r.max_points
    return {k: (v[0], v[1]) for k, v in out.items()}


def feedback(student: str, rows: list[Row]) -> str:
    lines = [f"# Feedback for {student}", ""]
    for (who, notebook), (got, best) in sorted(totals(rows).items()):
        lines += [f"## {notebook}: {got:g} / {best:g} points", ""]
        for r in rows:
            if r.notebook == notebook and who == student:
                detail = f" — {r.message}" if r.message else ""
                score = f"{r.points:g}/{r.max_points:g}" if r.max_points else "note"
                lines.append(f"- {r.exercise}: {r.status} ({score}){detail}")
        lines.append("")
    return "\n".join(lines)


FORMULA_START = "=+-@\t\r"
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def spreadsheet_safe(value) -> str:
    """``value`` as a CSV cell no spreadsheet runs as a formula (OWASP, "CSV injection").

    A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
    leading apostrophe, unless it is a plain number (``-1``, ``2.5e-3``), which stays a number.
    """
    text = value if isinstance(value, str) else str(value)
    if text and text[0] in FORMULA_START and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _csv(header: list[str], records: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(v) for v in header])
    writer.writerows([[spreadsheet_safe(v) for v in record] for record in records])
    return buffer.getvalue()


def _graded(rows: list[Row]) -> list[Row]:
    """The rows that carry points (exercises), not the notes (integrity, notebook errors)."""
    return [r for r in rows if r.max_points > 0]


def exercise_columns(rows: list[Row]) -> list[tuple[str, str]]:
    """(notebook, exercise) of every graded exercise, notebooks sorted, exercises in notebook order."""
    seen = dict.fromkeys((r.notebook, r.exercise) for r in _graded(rows))
    return sorted(seen, key=lambda key: key[0])  # sorted() is stable: exercise order kept


def wide_table(rows: list[Row]) -> tuple[list[str], list[list]]:
    """One row per student: each exercise's points, each notebook's total, the total."""
    columns = exercise_columns(rows)
    notebooks = sorted({nb for nb, _ in columns})
    header = ["student"] + [f"{Path(nb).stem}: {ex}" for nb, ex in columns]
    header += [f"{Path(nb).stem} total" for nb in notebooks] + ["total"]
    got_by_student: dict[str, dict[tuple[str, str], float]] = {r.student: {} for r in rows}
    for r in _graded(rows):
        got_by_student[r.student][(r.notebook, r.exercise)] = r.points
    records = []
    for student in sorted(got_by_student):
        got = got_by_student[student]
        per_notebook = [sum(v for (n, _), v in got.items() if n == nb) for nb in notebooks]
        records.append([student] + [f"{got.get(c, 0):g}" for c in columns]
                       + [f"{v:g}" for v in per_notebook] + [f"{sum(per_notebook):g}"])
    return header, records


def canvas_table(rows: list[Row], possible: dict[str, float] | None = None) -> tuple[list[str], list[list]]:
    """Canvas' import layout: students matched by SIS Login ID (the submission's folder or file name).

    ``possible``: each notebook's points possible, from its source notebook; where it is not
    given, the most points any submission of that notebook could earn.
    """
    notebooks = sorted({r.notebook for r in _graded(rows)})
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [Path(nb).stem for nb in notebooks]
    scores = totals(_graded(rows))  # (student, notebook) -> (points, max points)
    best = {nb: max(m for (_, n), (_, m) in scores.items() if n == nb) for nb in notebooks}
    best.update({nb: p for nb, p in (possible or {}).items() if nb in best})
    records = [["Points Possible", "", "", "", ""] + [f"{best[nb]:g}" for nb in notebooks]]
    for student in sorted({r.student for r in rows}):
        got = [scores.get((student, nb), (0, 0))[0] for nb in notebooks]
        records.append([student, "", "", student, ""] + [f"{v:g}" for v in got])
    return header, records


def gradescope_results(student: str, rows: list[Row]) -> dict:
    """Gradescope's ``results.json`` for one student: a test per exercise, with feedback as output."""
    tests = [{"name": f"{Path(r.notebook).stem}: {r.exercise}", "score": r.points, "max_score": r.max_points,
              "status": "passed" if r.points == r.max_points else "failed", "output": r.message}
             for r in _graded(rows) if r.student == student]
    notes = [f"{r.exercise}: {r.status} — {r.message}" for r in rows if r.student == student and not r.max_points]
    return {"score": sum(t["score"] for t in tests), "tests": tests, "output": "\n".join(notes)}


_markdown = mistune.create_markdown(escape=True)  # HTML in a message is shown, never run


def feedback_html(student: str, markdown_text: str) -> str:
    """The Markdown feedback as a standalone HTML page (what nbgrader hands back)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>Feedback for {html.escape(student)}</title>\n"
            "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.4}</style>\n"
            f"</head>\n<body>\n{_markdown(markdown_text)}</body>\n</html>\n")


def write_gradebook(rows: list[Row], out_dir: Path, possible: dict[str, float] | None = None,
                    students: set[str] | None = None) -> None:
    """Every file of the module docstring but the store, under ``out_dir``.

    ``possible``: points possible per notebook (from the sources); ``students``: write the
    feedback files of these students only (default: everyone's).
    """
    atomic_write(out_dir / "gradebook.csv", _csv(COLUMNS, [[getattr(r, c) for c in COLUMNS] for r in rows]))
    lines = (json.dumps({c: getattr(r, c) for c in COLUMNS}) for r in rows)  # one row a line
    atomic_write(out_dir / "gradebook.json", "[\n" + ",\n".join(lines) + "\n]\n")
    atomic_write(out_dir / "grades_wide.csv", _csv(*wide_table(rows)))
    atomic_write(out_dir / "canvas.csv", _csv(*canvas_table(rows, possible)))
    by_student: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if students is None or r.student in students:
            by_student[r.student].append(r)
    for student, mine in sorted(by_student.items()):
        text = feedback(student, mine)
        atomic_write(out_dir / "feedback" / f"{student}.md", text)
        atomic_write(out_dir / "feedback" / f"{student}.html", feedback_html(student, text))
        results = json.dumps(gradescope_results(student, mine), indent=1, ensure_ascii=False) + "\n"
        atomic_write(out_dir / "gradescope" / student / "results.json", results)


# --- the results store ---------------------------------------------------------------


@dataclass
class Record:
    """One graded submission: its rows, and what they were graded from."""

    student: str
    notebook: str  # the source notebook's name (the rows' notebook)
    submission: str  # the file graded, relative to the submissions folder
    sha256: str  # of the file graded: --resume regrades a file that changed
    possible: float  # points possible, summed over the source notebook's test cells
    rows: list[Row] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.student, self.notebook)

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "rows": [asdict(r) for r in self.rows]}, ensure_ascii=False,
                          sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> Record:
        data = json.loads(line)
        return cls(**{**data, "rows": [Row(**r) for r in data["rows"]]})


def read_store(out_dir: Path) -> dict[tuple[str, str], Record]:
    """(student, notebook) -> its latest record. A line cut short by an interruption is skipped."""
    records: dict[tuple[str, str], Record] = {}
    path = out_dir / STORE
    if not path.is_file():
        return records
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = Record.from_json(line)
        except (ValueError, TypeError, KeyError):
            print(f"warning: {path}:{number} is not a whole record (an interrupted write?); skipped",
                  file=sys.stderr)
            continue
        records[record.key] = record
    return records


def append_record(out_dir: Path, record: Record) -> None:
    """Add one record to the store, on disk before this returns (one write, then fsync)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / STORE
    prefix = ""
    if path.is_file() and path.stat().st_size:  # after a write cut short, start a fresh line
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            prefix = "" if f.read(1) == b"\n" else "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(prefix + record.to_json() + "\n")
        f.flush()
        os.fsync(f.fileno())


def store_rows(records: dict[tuple[str, str], Record]) -> list[Row]:
    """Every row, by student and notebook, each submission's rows in their order."""
    return [row for key in sorted(records) for row in records[key].rows]


def points_possible(records: dict[tuple[str, str], Record]) -> dict[str, float]:
    """Notebook -> points possible, from the source notebooks the records were graded against."""
    seen: dict[str, set[float]] = defaultdict(set)
    for record in records.values():
        if record.possible:
            seen[record.notebook].add(record.possible)
    for notebook, values in sorted(seen.items()):
        if len(values) > 1:
            print(f"warning: {notebook} was graded against sources worth {sorted(values)} points; canvas.csv "
                  f"uses {max(values):g}: regrade it against one source", file=sys.stderr)
    return {notebook: max(values) for notebook, values in seen.items()}


def write_store(out_dir: Path, records: dict[tuple[str, str], Record], students: set[str] | None = None) -> None:
    """Rewrite the store compactly (sorted, one line per record), then every export."""
    atomic_write(out_dir / STORE, "".join(records[key].to_json() + "\n" for key in sorted(records)))
    write_exports(out_dir, records, students)


def write_exports(out_dir: Path, records: dict[tuple[str, str], Record], students: set[str] | None = None) -> None:
    """The gradebook, the LMS exports and (for ``students``, default all) the feedback, from the records."""
    write_gradebook(store_rows(records), out_dir, points_possible(records), students)


def summary(rows: list[Row]) -> str:
    """A plain-text table: one line per student and notebook, with problems counted."""
    lines = [f"{'student':20s} {'notebook':24s} {'score':>10s}  notes"]
    for (student, notebook), (got, best) in sorted(totals(rows).items()):
        notes = [r.status for r in rows if r.student == student and r.notebook == notebook
                 and r.status not in ("passed", "failed")]
        lines.append(f"{student:20s} {notebook:24s} {got:>4g} / {best:<4g}  {', '.join(sorted(set(notes)))}")
    return "\n".join(lines)
