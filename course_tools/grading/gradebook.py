"""Write the gradebook, atomically: the long table, the wide tables LMSs import, feedback per student.

- ``gradebook.csv`` / ``gradebook.json``: one row per (student, notebook, exercise);
- ``grades_wide.csv``: one row per student, one column per exercise and per notebook, and
  the total (Moodle's "Import grades from CSV", spreadsheets);
- ``canvas.csv``: Canvas' gradebook import (Student, ID, SIS User ID, SIS Login ID, Section,
  then one column per notebook, and its "Points Possible" row);
- ``gradescope/<student>/results.json``: Gradescope's autograder results format;
- ``feedback/<student>.md``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, fields
from pathlib import Path

from .grade import Row

COLUMNS = [f.name for f in fields(Row)]


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
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


def _csv(header: list[str], records: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(records)
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
    records = []
    for student in sorted({r.student for r in rows}):
        got = {(r.notebook, r.exercise): r.points for r in _graded(rows) if r.student == student}
        per_notebook = [sum(v for (n, _), v in got.items() if n == nb) for nb in notebooks]
        records.append([student] + [f"{got.get(c, 0):g}" for c in columns]
                       + [f"{v:g}" for v in per_notebook] + [f"{sum(per_notebook):g}"])
    return header, records


def canvas_table(rows: list[Row]) -> tuple[list[str], list[list]]:
    """Canvas' import layout: students matched by SIS Login ID (the submission's folder or file name)."""
    notebooks = sorted({r.notebook for r in _graded(rows)})
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + [Path(nb).stem for nb in notebooks]
    scores = totals(_graded(rows))  # (student, notebook) -> (points, max points)
    best = {nb: max(m for (_, n), (_, m) in scores.items() if n == nb) for nb in notebooks}
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


def write_gradebook(rows: list[Row], out_dir: Path) -> None:
    """Every file of the module docstring, under ``out_dir``."""
    atomic_write(out_dir / "gradebook.csv", _csv(COLUMNS, [[getattr(r, c) for c in COLUMNS] for r in rows]))
    atomic_write(out_dir / "gradebook.json", json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    atomic_write(out_dir / "grades_wide.csv", _csv(*wide_table(rows)))
    atomic_write(out_dir / "canvas.csv", _csv(*canvas_table(rows)))
    for student in sorted({r.student for r in rows}):
        mine = [r for r in rows if r.student == student]
        atomic_write(out_dir / "feedback" / f"{student}.md", feedback(student, mine))
        results = json.dumps(gradescope_results(student, mine), indent=1, ensure_ascii=False) + "\n"
        atomic_write(out_dir / "gradescope" / student / "results.json", results)


def summary(rows: list[Row]) -> str:
    """A plain-text table: one line per student and notebook, with problems counted."""
    lines = [f"{'student':20s} {'notebook':24s} {'score':>10s}  notes"]
    for (student, notebook), (got, best) in sorted(totals(rows).items()):
        notes = [r.status for r in rows if r.student == student and r.notebook == notebook
                 and r.status not in ("passed", "failed")]
        lines.append(f"{student:20s} {notebook:24s} {got:>4g} / {best:<4g}  {', '.join(sorted(set(notes)))}")
    return "\n".join(lines)
