"""Write the gradebook (CSV and JSON) and one feedback file per student, atomically."""

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


def write_gradebook(rows: list[Row], out_dir: Path) -> None:
    """gradebook.csv, gradebook.json and feedback/<student>.md under ``out_dir``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    atomic_write(out_dir / "gradebook.csv", buffer.getvalue())
    atomic_write(out_dir / "gradebook.json", json.dumps([asdict(r) for r in rows], indent=1) + "\n")
    for student in sorted({r.student for r in rows}):
        mine = [r for r in rows if r.student == student]
        atomic_write(out_dir / "feedback" / f"{student}.md", feedback(student, mine))


def summary(rows: list[Row]) -> str:
    """A plain-text table: one line per student and notebook, with problems counted."""
    lines = [f"{'student':20s} {'notebook':24s} {'score':>10s}  notes"]
    for (student, notebook), (got, best) in sorted(totals(rows).items()):
        notes = [r.status for r in rows if r.student == student and r.notebook == notebook
                 and r.status not in ("passed", "failed")]
        lines.append(f"{student:20s} {notebook:24s} {got:>4g} / {best:<4g}  {', '.join(sorted(set(notes)))}")
    return "\n".join(lines)
