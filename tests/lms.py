"""Tiny fake bulk downloads of Canvas, Moodle and Gradescope, for the collect tests and the README's run.

    python tests/lms.py OUT_DIR   # writes OUT_DIR/canvas/, OUT_DIR/moodle.zip and their rosters

Three students hand in ``00_setup`` (the fastest notebook): a correct copy (the source, solutions
included), a copy with the exercise left as the student version has it, and a late one; each
platform names the files its own way.
"""

from __future__ import annotations

import json
import os
import sys
import zipfile
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOLVED = REPO / "notebooks" / "00_setup.ipynb"  # the source: what a correct answer looks like
UNSOLVED = REPO / "student" / "00_setup.ipynb"  # the stub left as it is
DUE = "2026-12-01T23:59"
ON_TIME = datetime(2026, 12, 1, 20, 0)
LATE = datetime(2026, 12, 2, 9, 30)  # 9.5 hours late: one started day

CANVAS_ROSTER = """Student,ID,SIS User ID,SIS Login ID,Section
    Points Possible,,,,
"Lovelace, Ada",101,S001,ada,Lab A
"Turing, Alan",102,S002,alan,Lab A
"Hopper, Grace",103,S003,grace,Lab B
"Knuth, Donald",104,S004,don,Lab B
"""

MOODLE_ROSTER = """Identifier,Full name,Email address,Status,Grade
Participant 501,Ada Lovelace,ada@uni.example,Submitted for grading,
Participant 502,Alan Turing,alan@uni.example,Submitted for grading,
Participant 503,Grace Hopper,grace@uni.example,Submitted for grading,
"""


def _stamp(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def without_metadata(data: bytes) -> bytes:
    """The notebook with its cell metadata lost (pasted into a fresh notebook)."""
    nb = json.loads(data)
    for cell in nb["cells"]:
        cell["metadata"] = {}
    return json.dumps(nb, indent=1).encode()


def canvas_download(folder: Path) -> Path:
    """Canvas's flat files: Ada on time, Alan LATE under Colab's "Copy of" name (resubmitted: "-1"),
    Grace under a name of her own (recognised by content), Donald nothing, and a stranger."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "lovelaceada_101_9001_00_setup.ipynb": (SOLVED.read_bytes(), ON_TIME),
        "turingalan_LATE_102_9002_Copy of 00_setup-1.ipynb": (SOLVED.read_bytes(), LATE),
        "hoppergrace_103_9003_my_homework.ipynb": (without_metadata(UNSOLVED.read_bytes()), ON_TIME),
        "smithbob_999_9004_00_setup.ipynb": (SOLVED.read_bytes(), ON_TIME),
    }
    for name, (data, when) in files.items():
        (folder / name).write_bytes(data)
        _stamp(folder / name, when)
    return folder


def moodle_download(zip_path: Path) -> Path:
    """Moodle's zip of folders: Ada's browser-renamed copy and a PDF, Alan's Jupyter "-Copy1", late;
    Grace hands in nothing."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    entries = {
        "Ada Lovelace_501_assignsubmission_file_/00_setup (1).ipynb": (UNSOLVED.read_bytes(), ON_TIME),
        "Ada Lovelace_501_assignsubmission_file_/notes.pdf": (b"%PDF-1.4\n", ON_TIME),
        "Alan Turing_502_assignsubmission_file_/00_setup-Copy1.ipynb": (SOLVED.read_bytes(), LATE),
    }
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, (data, when) in entries.items():
            archive.writestr(zipfile.ZipInfo(name, when.timetuple()[:6]), data)
    return zip_path


def gradescope_download(zip_path: Path) -> Path:
    """Gradescope's "Export Submissions": submission_metadata.yml beside submission_<id>/ folders."""
    metadata = """submission_111:
  :submitters:
  - :name: Ada Lovelace
    :sid: S001
    :email: ada@uni.example
  :created_at: 2026-12-01 20:00:00.000000000 +00:00
  :score: 0.0
submission_112:
  :submitters:
  - :name: Alan Turing
    :sid: S002
    :email: alan@uni.example
  :created_at: 2026-12-03 10:00:00.000000000 +00:00
  :score: 0.0
"""
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("assignment_777_export/submission_metadata.yml", metadata)
        archive.writestr("assignment_777_export/submission_111/00_setup.ipynb", SOLVED.read_bytes())
        archive.writestr("assignment_777_export/submission_112/Copy of 00_setup.ipynb", SOLVED.read_bytes())
    return zip_path


def write_all(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    canvas_download(out / "canvas")
    moodle_download(out / "moodle.zip")
    (out / "canvas_roster.csv").write_text(CANVAS_ROSTER)
    (out / "moodle_roster.csv").write_text(MOODLE_ROSTER)


if __name__ == "__main__":
    write_all(Path(sys.argv[1]))
    print(f"wrote {sys.argv[1]}/canvas/, moodle.zip, canvas_roster.csv and moodle_roster.csv")
