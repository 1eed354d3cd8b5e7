"""Collect a learning platform's bulk download into the folder the grader reads.

    python -m course_tools.grading collect DOWNLOAD --roster roster.csv --out submissions \\
        [--due 2026-12-01T23:59] [--late-policy "10%/day, max 3 days"]
    python -m course_tools.grading apply-late GRADEBOOK --report submissions/collect_report.csv

``DOWNLOAD`` is a folder or a ``.zip``, as the platform gives it:

- **Canvas** (*Download Submissions*): flat files ``<name>_<userid>_<attachid>_<file>``,
  ``<name>_LATE_<userid>_<attachid>_<file>`` for late ones; a resubmitted file may end in ``-1``;
- **Moodle** (*Download all submissions*): folders ``<Full name>_<id>_assignsubmission_file_/<file>``
  (or flat files ``<Full name>_<id>_assignsubmission_file_<file>``);
- **Gradescope** (*Export Submissions*): ``submission_metadata.yml`` beside folders
  ``submission_<id>/<file>``, the metadata naming each submission's submitters and time;
- **folders**: ``<student>/<file>``, each folder named after a roster entry (login, email, ID or name).

Each notebook is recognised by its file name, past Colab's ``Copy of ...``, Jupyter's ``-Copy1``,
a browser's `` (1)`` and Canvas's ``-1``; failing that, by its content (the course notebook whose
cells and exercise ids it shares). It is written to ``OUT/<student>/<notebook>.ipynb``, ``<student>``
being the roster's SIS Login ID (Canvas) or Email address (Moodle): the layout ``grade`` reads and
the name ``canvas.csv`` matches. ``OUT/collect_report.csv`` says what happened to every file and
every roster student (see :data:`REPORT_COLUMNS`); files that match no roster entry or no notebook
are listed there and on stderr, and the command then exits with status 1.

Lateness: Canvas's ``LATE`` marker decides for Canvas; Gradescope's submission time, and the file's
own time for Moodle and folders, against ``--due``. The late policy (:class:`LatePolicy`) turns a
lateness into a multiplier of the points, recorded in the report; ``apply-late`` applies it to
a graded gradebook (each late notebook's points scaled, a ``late`` note row added), once.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
import unicodedata
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

import nbformat

from .cells import grade_id, is_solution
from .grade import Row
from .release import SOURCE_DIR

MAX_FILE_MB = 64  # a larger "notebook" is listed, not read
REPORT_NAME = "collect_report.csv"
REPORT_COLUMNS = ["student", "name", "notebook", "status", "file", "submitted_at", "time_source", "late",
                  "late_by_hours", "days_late", "multiplier", "policy", "note"]
IGNORED_PARTS = {"__MACOSX", ".ipynb_checkpoints"}


class CollectError(ValueError):
    """A download, roster or option that ``collect`` cannot use (the message says what to fix)."""


# ----------------------------------------------------------------------------------------------- roster

ROSTER_LAYOUTS = {  # the columns each accepted roster must have (header names as the platform writes them)
    "canvas": ("Student", "ID", "SIS Login ID"),  # Grades > Export; SIS User ID and Section are read too
    "moodle": ("Identifier", "Full name", "Email address"),  # Assignment > Download grading worksheet
}


@dataclass
class Student:
    """One roster entry; ``key`` names the student's submissions folder (and the gradebook's student)."""

    key: str
    name: str
    canvas_id: str = ""
    sis_id: str = ""
    moodle_id: str = ""
    email: str = ""
    section: str = ""


def _folder_name_problem(key: str) -> str | None:
    if not key:
        return "is empty"
    if "/" in key or "\\" in key or key.startswith(".") or "\0" in key:
        return "cannot be a folder name (a slash, a leading dot)"
    return None


def read_roster(path: Path) -> list[Student]:
    """The roster's students, from a Canvas gradebook export or a Moodle grading worksheet.

    Canvas: ``Student`` ("Last, First"), ``ID`` (the user id in Canvas's file names), ``SIS Login ID``
    (the folder name), optional ``SIS User ID`` and ``Section``; its "Points Possible" rows are skipped.
    Moodle: ``Identifier`` ("Participant 123", the id in Moodle's folder names), ``Full name`` and
    ``Email address`` (the folder name).
    """
    if not path.is_file():
        raise CollectError(f"no roster {path}")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        records = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    kind = next((k for k, cols in ROSTER_LAYOUTS.items() if all(c in header for c in cols)), None)
    if kind is None:
        wanted = "; ".join(f"{k.capitalize()}: {', '.join(cols)}" for k, cols in ROSTER_LAYOUTS.items())
        raise CollectError(f"{path}: a roster needs the columns of one of ({wanted}); it has {header}")
    students, problems = [], []
    for line, r in enumerate(records, start=2):
        if kind == "canvas":
            if not r["ID"] or r["Student"].lower() == "points possible":
                continue  # Canvas's "Points Possible" and "Manual Posting" rows
            s = Student(r["SIS Login ID"], r["Student"], canvas_id=r["ID"], sis_id=r.get("SIS User ID", ""),
                        section=r.get("Section", ""))
        else:
            s = Student(r["Email address"], r["Full name"], moodle_id=re.sub(r"\D", "", r["Identifier"]),
                        email=r["Email address"], sis_id=r.get("ID number", ""))
        problem = _folder_name_problem(s.key)
        if problem:
            column = "SIS Login ID" if kind == "canvas" else "Email address"
            problems.append(f"line {line} ({s.name}): the {column} {s.key!r} {problem}")
        students.append(s)
    keys = defaultdict(list)
    for s in students:
        keys[s.key].append(s.name)
    problems += [f"{k!r} is the key of {len(v)} students ({', '.join(v)})" for k, v in keys.items() if len(v) > 1]
    if problems:
        raise CollectError(f"{path}: " + "; ".join(problems))
    if not students:
        raise CollectError(f"{path}: the roster lists no students")
    return students


def name_keys(name: str) -> set[str]:
    """Comparable forms of a person's name: "Doe, Jane", "Jane Doe" and Canvas's "doejane" meet."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    if "," in text:
        last, first = text.split(",", 1)
        parts = first.split() + last.split()
    else:
        parts = text.split()
    parts = [re.sub(r"[^a-z0-9]", "", p) for p in parts]
    parts = [p for p in parts if p]
    if not parts:
        return set()
    return {"".join(parts), "".join(parts[-1:] + parts[:-1])}


class Roster:
    """Look-ups from what a download says about a file (an id, an email, a name) to a student."""

    def __init__(self, students: list[Student]):
        self.students = students
        self.by = defaultdict(dict)
        names = defaultdict(list)
        for s in students:
            for field_name in ("canvas_id", "moodle_id", "sis_id", "email", "key"):
                value = getattr(s, field_name).lower()
                if value:
                    self.by[field_name][value] = s
            for k in name_keys(s.name):
                names[k].append(s)
        self.names = names

    def find(self, clues: dict[str, str]) -> tuple[Student | None, str]:
        """The student ``clues`` designate, and how (or None and why not)."""
        for clue, fields_ in (("canvas_id", ("canvas_id",)), ("moodle_id", ("moodle_id",)),
                              ("sid", ("sis_id", "canvas_id")), ("email", ("email", "key")),
                              ("folder", ("key", "email", "canvas_id", "sis_id", "moodle_id"))):
            value = clues.get(clue, "").lower()
            for f in fields_ if value else ():
                if value in self.by[f]:
                    return self.by[f][value], f"by {clue}"
        for clue in ("name", "folder"):
            found = {id(s): s for k in name_keys(clues.get(clue, "")) for s in self.names.get(k, [])}
            if len(found) == 1:
                return next(iter(found.values())), "by name"
            if len(found) > 1:
                who = ", ".join(sorted(s.key for s in found.values()))
                return None, f"the name {clues[clue]!r} fits several students ({who})"
        said = ", ".join(f"{k} {v!r}" for k, v in clues.items() if v)
        return None, f"no roster entry has {said or 'anything this file says'}"


# ---------------------------------------------------------------------------------------------- download

@dataclass
class Entry:
    """One file of the download: its path inside it, its time (naive: local time) and a way to read it."""

    path: PurePosixPath
    size: int
    time: datetime | None
    read: object = field(repr=False)  # () -> bytes


def _entries(download: Path) -> list[Entry]:
    if download.is_dir():
        out = []
        for p in sorted(download.rglob("*")):
            if p.is_file() and not p.is_symlink():
                st = p.stat()
                out.append(Entry(PurePosixPath(p.relative_to(download).as_posix()), st.st_size,
                                 datetime.fromtimestamp(st.st_mtime), p.read_bytes))
    elif download.is_file() and zipfile.is_zipfile(download):
        archive = zipfile.ZipFile(download)  # read member by member, never extracted to disk
        out = [Entry(PurePosixPath(i.filename), i.file_size, datetime(*i.date_time),
                     (lambda name=i.filename: archive.read(name)))
               for i in archive.infolist() if not i.is_dir()]
    else:
        raise CollectError(f"{download} is neither a folder nor a .zip file")
    return [e for e in out if not (set(e.path.parts) & IGNORED_PARTS or any(p.startswith(".") for p in e.path.parts))]


MOODLE = re.compile(r"^(?P<name>.+)_(?P<id>\d+)_assign(?:submission|feedback)_(?P<plugin>[a-z]+)_?(?P<file>.*)$")
CANVAS = re.compile(r"^(?P<name>[^_]+?)(?P<late>_late)?_(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)$", re.IGNORECASE)
GRADESCOPE_META = "submission_metadata.yml"


def _strip_top(entries: list[Entry]) -> list[Entry] | None:
    """The entries without the one folder that holds them all (None if there is no such folder)."""
    if not entries or not all(len(e.path.parts) > 1 for e in entries) or len({e.path.parts[0] for e in entries}) > 1:
        return None
    return [Entry(PurePosixPath(*e.path.parts[1:]), e.size, e.time, e.read) for e in entries]


@dataclass
class Upload:
    """A file the download attributes to a submitter, with what the download says about them."""

    entry: Entry
    file_name: str  # the file as the student named it
    clues: dict[str, str]
    late_marker: bool = False
    time: datetime | None = None
    time_source: str = ""
    marker_decides: bool = False  # Canvas: its LATE marker, not the file's time, says whether it is late
    data: bytes = field(default=b"", repr=False)
    how: str = ""  # how the notebook was recognised


def _platform(entries: list[Entry]) -> str | None:
    if any(e.path.name == GRADESCOPE_META and len(e.path.parts) == 1 for e in entries):
        return "gradescope"
    moodle = sum(bool(MOODLE.match(e.path.parts[0])) for e in entries)
    canvas = sum(len(e.path.parts) == 1 and bool(CANVAS.match(e.path.name)) for e in entries)
    if moodle and moodle >= canvas:
        return "moodle"
    return "canvas" if canvas else None


def detect_layout(entries: list[Entry], layout: str | None = None) -> tuple[list[Entry], str]:
    """The layout (``gradescope``, ``moodle``, ``canvas`` or ``folders``) and the entries seen from its root.

    A folder that wraps the whole download (``assignment_123_export/``, a zip's own name) is looked
    through. ``layout`` forces one. CollectError if none fits.
    """
    while True:
        found = _platform(entries)
        if layout in (None, found) and found:
            return entries, found
        inner = _strip_top(entries)
        if inner is not None and (_platform(inner) or all(len(e.path.parts) > 1 for e in inner)):
            entries = inner  # a wrapper: look inside
            continue
        if layout in (None, "folders") and entries and all(len(e.path.parts) > 1 for e in entries):
            return entries, "folders"
        if layout:
            return entries, layout  # forced: files that do not fit are listed as unmatched
        shown = ", ".join(str(e.path) for e in entries[:3]) or "no files"
        raise CollectError(
            "unknown download layout: expected Canvas's <name>_<userid>_<attachid>_<file>, Moodle's "
            "'<Full name>_<id>_assignsubmission_file_/<file>', Gradescope's submission_metadata.yml with "
            f"submission_<id>/ folders, or one folder per student; found {shown}")


def _gradescope_metadata(entry: Entry) -> dict:
    try:
        import yaml  # pyyaml: the tools extra
    except ImportError as err:  # pragma: no cover - the tools extra installs it
        raise CollectError("reading Gradescope's submission_metadata.yml needs pyyaml: pip install pyyaml") from err

    class Loader(yaml.SafeLoader):
        pass

    def untagged(loader, suffix, node):  # Ruby objects and symbols: read them as plain data
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", untagged)
    data = yaml.load(entry.read(), Loader=Loader) or {}

    def plain(value):
        if isinstance(value, dict):
            return {str(k).lstrip(":"): plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    return plain(data)


def _as_local(value) -> datetime | None:
    """A metadata time as a naive local datetime (what --due and file times are compared in)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace(" -", "-").replace(" +", "+"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value


def uploads(entries: list[Entry], layout: str) -> tuple[list[Upload], list[tuple[Entry, str]]]:
    """Each file attributed to its submitter's clues; the files the layout cannot attribute, with why."""
    found, stray = [], []
    if layout == "gradescope":
        meta_entry = next((e for e in entries if e.path.name == GRADESCOPE_META and len(e.path.parts) == 1), None)
        if meta_entry is None:
            raise CollectError(f"a Gradescope export has a {GRADESCOPE_META}; this download has none")
        meta = _gradescope_metadata(meta_entry)
        for e in entries:
            if e is meta_entry:
                continue
            info = meta.get(e.path.parts[0]) if len(e.path.parts) > 1 else None
            if not isinstance(info, dict):
                stray.append((e, f"not in a submission folder that {GRADESCOPE_META} lists"))
                continue
            time = _as_local(info.get("created_at"))
            for who in info.get("submitters") or [{}]:
                clues = {"sid": str(who.get("sid") or ""), "email": str(who.get("email") or ""),
                         "name": str(who.get("name") or "")}
                found.append(Upload(e, e.path.name, clues, False, time, "Gradescope created_at" if time else ""))
    elif layout == "moodle":
        for e in entries:
            m = MOODLE.match(e.path.parts[0])
            if not m:
                stray.append((e, "does not follow Moodle's '<Full name>_<id>_assignsubmission_file_' naming"))
                continue
            name = m["file"] if len(e.path.parts) == 1 else e.path.name
            found.append(Upload(e, name, {"moodle_id": m["id"], "name": m["name"]}, False, e.time, "file time"))
    elif layout == "canvas":
        for e in entries:
            m = CANVAS.match(e.path.name) if len(e.path.parts) == 1 else None
            if not m:
                stray.append((e, "does not follow Canvas's <name>_<userid>_<attachid>_<file> naming"))
                continue
            found.append(Upload(e, m["file"], {"canvas_id": m["uid"], "name": m["name"]}, bool(m["late"]),
                                e.time, "file time", marker_decides=True))
    else:  # folders
        for e in entries:
            if len(e.path.parts) < 2:
                stray.append((e, "not inside a student's folder"))
                continue
            found.append(Upload(e, e.path.name, {"folder": e.path.parts[0]}, False, e.time, "file time"))
    return found, stray


# --------------------------------------------------------------------------------------------- notebooks

COPY_PREFIX = re.compile(r"^(?:copy[ _-]of[ _-]+)", re.IGNORECASE)
COPY_SUFFIX = re.compile(r"(?:\s*\(\d+\)|[ _-]copy\d*|-\d+)$", re.IGNORECASE)
NUMBER = re.compile(r"^(\d{2}[a-z]?)(?=[ _-]|$)")


def canonical_name(file_name: str) -> str:
    """``"Copy of 02_bptt (1)-Copy1.ipynb"`` -> ``"02_bptt"``: the name without the copies' marks."""
    stem = re.sub(r"\.ipynb$", "", file_name.strip(), flags=re.IGNORECASE)
    while True:
        shorter = COPY_SUFFIX.sub("", COPY_PREFIX.sub("", stem)).strip()
        if shorter == stem:
            return stem.lower().replace(" ", "_")
        stem = shorter


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


class Notebooks:
    """The course's notebooks, recognised by name or by content."""

    def __init__(self, source_dir: Path):
        self.paths = {p.stem: p for p in sorted(source_dir.glob("*.ipynb"))}
        if not self.paths:
            raise CollectError(f"no course notebooks in {source_dir}")
        self._cells: dict[str, set[str]] = {}
        self._ids: dict[str, set[str]] = {}
        for stem, path in self.paths.items():
            nb = nbformat.read(path, as_version=4)
            self._ids[stem] = {grade_id(c) for c in nb.cells if grade_id(c)}
            texts = {_normal(c.source) for c in nb.cells if not is_solution(c) and len(c.source.strip()) > 20}
            self._cells[stem] = texts
        common = set.intersection(*self._cells.values()) if len(self._cells) > 1 else set()
        for texts in self._cells.values():  # the Colab set-up cell and the like say nothing
            texts -= common

    def by_name(self, file_name: str) -> str | None:
        name = canonical_name(file_name)
        if name in self.paths:
            return name
        number = NUMBER.match(name)
        matches = [s for s in self.paths if number and s.split("_")[0] == number[1]]
        return matches[0] if len(matches) == 1 else None

    def by_content(self, data: bytes) -> str | None:
        try:
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
        except Exception:  # noqa: BLE001 - anything unreadable is simply not recognised
            return None
        ids = {grade_id(c) for c in nb.cells if grade_id(c)}
        texts = {_normal(c.source) for c in nb.cells}
        scores = {s: (len(ids & self._ids[s]), len(texts & self._cells[s])) for s in self.paths}
        best = max(scores.values())
        winners = [s for s, v in scores.items() if v == best]
        return winners[0] if len(winners) == 1 and (best[0] >= 1 or best[1] >= 3) else None


# ------------------------------------------------------------------------------------------- late policy

@dataclass
class LatePolicy:
    """A late policy, from its text: ``none``, ``zero`` or ``P%/day`` with ``, max N days`` and
    ``, grace M min`` (or ``h``). ``P%/day`` takes P percent of the notebook's points per day or
    part of a day late (``10%/day``: one hour late scores 90%); past ``max N days`` it scores 0.
    ``zero``: a late notebook scores 0. ``none``: lateness is reported, nothing deducted.
    A grace period forgives that much lateness where the time is known.
    """

    text: str = "none"
    kind: str = "none"
    percent: float = 0.0
    max_days: int | None = None
    grace: timedelta = timedelta(0)

    @classmethod
    def parse(cls, text: str | None) -> LatePolicy:
        text = (text or "none").strip()
        parts = [p.strip().lower() for p in text.split(",")]
        policy = cls(text=text)
        rate = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%\s*(?:/|per)\s*day", parts[0])
        if parts[0] in ("none", "zero"):
            policy.kind = parts[0]
        elif rate:
            policy.kind, policy.percent = "percent", float(rate[1])
        else:
            raise CollectError(f"late policy {text!r}: start with none, zero or P%/day (e.g. '10%/day, max 3 days')")
        for part in parts[1:]:
            most = re.fullmatch(r"max\s+(\d+)\s*days?", part)
            grace = re.fullmatch(r"grace\s+(\d+)\s*(min|minutes?|h|hours?)", part)
            if most:
                policy.max_days = int(most[1])
            elif grace:
                policy.grace = timedelta(minutes=int(grace[1]) * (60 if grace[2].startswith("h") else 1))
            else:
                raise CollectError(f"late policy {text!r}: cannot read {part!r} (max N days, grace M min)")
        return policy

    def multiplier(self, days_late: int) -> float:
        """What a notebook's points are multiplied by when it is ``days_late`` (started) days late."""
        if days_late <= 0 or self.kind == "none":
            return 1.0
        if self.kind == "zero" or (self.max_days is not None and days_late > self.max_days):
            return 0.0
        return max(0.0, round(1 - self.percent * days_late / 100, 6))


@dataclass
class Lateness:
    late: bool
    late_by: timedelta | None  # None: late, by an unknown amount (Canvas's marker alone)
    days: int
    note: str = ""


def lateness(upload: Upload, due: datetime | None, policy: LatePolicy) -> Lateness:
    """Whether ``upload`` is late and by how many days the policy counts."""
    by = upload.time - due if due is not None and upload.time is not None else None
    days = math.ceil(by / timedelta(days=1)) if by is not None and by > policy.grace else 0
    if upload.late_marker:  # Canvas knows; the file's time may only size it
        if days:
            return Lateness(True, by, days)
        if by is not None and timedelta(0) < by <= policy.grace:
            return Lateness(False, by, 0, "Canvas marks it LATE, within the grace period")
        return Lateness(True, None, 1, "Canvas marks it LATE; the download does not say by how much: 1 day counted")
    if not days or upload.marker_decides:
        return Lateness(False, timedelta(0), 0)
    return Lateness(True, by, days)


# ------------------------------------------------------------------------------------------------ collect

@dataclass
class Result:
    rows: list[dict]  # this run's rows, as the report keeps them
    written: list[Path]
    layout: str
    problems: list[str]  # files that need the instructor (unmatched students, unrecognised notebooks)


def parse_due(text: str | None) -> datetime | None:
    """``--due`` as a naive local time (an offset, ``Z`` included, is converted)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise CollectError(f"--due {text!r}: give a date and time like 2026-12-01T23:59") from err
    return value.astimezone().replace(tzinfo=None) if value.tzinfo else value


def _row(**values) -> dict:
    return {c: values.get(c, "") for c in REPORT_COLUMNS}


def collect(download: Path, roster_path: Path, out: Path, due: str | None = None, policy: str | None = None,
            source_dir: Path = SOURCE_DIR, layout: str | None = None) -> Result:
    """Write ``out/<student>/<notebook>.ipynb`` for every submission in ``download``, and the report."""
    policy_ = LatePolicy.parse(policy)
    due_ = parse_due(due)
    roster = Roster(read_roster(roster_path))
    notebooks = Notebooks(source_dir)
    entries = _entries(download)
    if not entries:
        raise CollectError(f"{download} holds no files")
    entries, layout = detect_layout(entries, layout)
    found, stray = uploads(entries, layout)
    rows, problems = [], []
    for entry, why in stray:
        rows.append(_row(status="unmatched", file=str(entry.path), note=why))
        problems.append(f"{entry.path}: {why}")
    chosen: dict[tuple[str, str], list[tuple[Upload, Student]]] = defaultdict(list)
    for up in found:
        student, how = roster.find(up.clues)
        if student is None:
            rows.append(_row(status="unmatched", file=str(up.entry.path), note=how))
            problems.append(f"{up.entry.path}: {how}")
            continue
        if not up.file_name.lower().endswith(".ipynb"):
            rows.append(_row(student=student.key, name=student.name, status="ignored", file=str(up.entry.path),
                             note="not a notebook"))
            continue
        if up.entry.size > MAX_FILE_MB << 20:
            rows.append(_row(student=student.key, name=student.name, status="unmatched", file=str(up.entry.path),
                             note=f"larger than {MAX_FILE_MB} MB"))
            problems.append(f"{up.entry.path}: larger than {MAX_FILE_MB} MB")
            continue
        up.data = up.entry.read()
        stem = notebooks.by_name(up.file_name)
        up.how = "by name"
        content = notebooks.by_content(up.data)
        if stem is None:
            stem, up.how = content, f"by content (the name {up.file_name!r} is no course notebook's)"
        elif content and content != stem:
            up.how = f"by name; its content looks like {content}"
        if stem is None:
            why = f"{up.file_name!r} is no course notebook, by name or content"
            rows.append(_row(student=student.key, name=student.name, status="unmatched", file=str(up.entry.path),
                             note=why))
            problems.append(f"{up.entry.path}: {why}")
            continue
        chosen[(student.key, stem)].append((up, student))

    written = []
    for (key, stem), candidates in sorted(chosen.items()):
        candidates.sort(key=lambda c: (c[0].time or datetime.min, canonical_name(c[0].file_name) == stem,
                                       str(c[0].entry.path)))
        (up, student), older = candidates[-1], candidates[:-1]
        late = lateness(up, due_, policy_)
        target = out / key / f"{stem}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(up.data)
        written.append(target)
        hours = "" if late.late_by is None else f"{late.late_by / timedelta(hours=1):.2f}"
        notes = [up.how] + [late.note] * bool(late.note)
        rows.append(_row(student=key, name=student.name, notebook=f"{stem}.ipynb", status="collected",
                         file=str(up.entry.path), submitted_at=up.time.isoformat(sep=" ", timespec="minutes")
                         if up.time else "", time_source=up.time_source, late="yes" if late.late else "no",
                         late_by_hours=hours, days_late=late.days, multiplier=f"{policy_.multiplier(late.days):g}",
                         policy=policy_.text, note="; ".join(notes)))
        for old, _ in older:
            rows.append(_row(student=key, name=student.name, notebook=f"{stem}.ipynb", status="superseded",
                             file=str(old.entry.path), note=f"an older or duplicate copy; {up.entry.path} is graded"))
    stems = sorted({stem for _, stem in chosen})
    for stem in stems:
        for s in roster.students:
            if (s.key, stem) not in chosen:
                rows.append(_row(student=s.key, name=s.name, notebook=f"{stem}.ipynb", status="no submission"))
    merged = _merge_report(out / REPORT_NAME, rows)
    write_report(out / REPORT_NAME, merged)
    kept = {id(r) for r in merged}
    return Result([r for r in rows if id(r) in kept], written, layout, problems)


def _merge_report(path: Path, rows: list[dict]) -> list[dict]:
    """An earlier report updated with this run's rows: a (student, notebook) collected now replaces
    its earlier rows; one collected before and missing now keeps its earlier rows (a download of one
    resubmission, or of another notebook, loses nothing); identical rows appear once."""
    if not path.exists():
        return rows
    earlier = [{c: r.get(c, "") for c in REPORT_COLUMNS} for r in read_report(path)]
    now = {(r["student"], r["notebook"]) for r in rows if r["status"] in ("collected", "superseded")}
    per_pair = ("collected", "superseded", "no submission")
    kept = [r for r in earlier if not (r["status"] in per_pair and (r["student"], r["notebook"]) in now)]
    had = {(r["student"], r["notebook"]) for r in kept if r["status"] == "collected"}
    rows = [r for r in rows if not (r["status"] == "no submission" and (r["student"], r["notebook"]) in had)]
    merged = {tuple(str(r[c]) for c in ("student", "notebook", "status", "file")): r for r in kept + rows}
    return list(merged.values())


def _unescape(text: str) -> str:
    """A report cell as it was before :func:`.gradebook.spreadsheet_safe` (CSV-injection escaping)."""
    from .gradebook import FORMULA_START

    return text[1:] if text.startswith("'") and text[1:2] and text[1] in FORMULA_START else text


def write_report(path: Path, rows: list[dict]) -> None:
    from .gradebook import atomic_write, spreadsheet_safe

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    writer.writerows([[spreadsheet_safe(r[c]) for c in REPORT_COLUMNS] for r in rows])
    atomic_write(path, buffer.getvalue())


def read_report(path: Path) -> list[dict]:
    if not path.is_file():
        raise CollectError(f"no collect report {path} (collect writes it into its --out folder)")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REPORT_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CollectError(f"{path} is not a collect report: no column {', '.join(missing)}")
        return [{k: _unescape(v or "") for k, v in r.items()} for r in reader]


# ---------------------------------------------------------------------------------------------- apply-late

LATE_EXERCISE = "late"


def apply_late(gradebook_dir: Path, report_path: Path) -> list[str]:
    """Scale each late notebook's points in ``gradebook_dir`` by the report's multiplier; say what changed.

    Works on the grader's store (``results.jsonl``) and rewrites every file made from it. Each scaled
    row's message ends ``[late x0.9]`` and the notebook gains a ``late`` note row: a second run
    changes nothing, and rows graded afresh since (``--student``, ``--exercise``) are scaled once.
    """
    from .gradebook import read_store, write_store

    records = read_store(gradebook_dir)
    if not records:
        raise CollectError(f"no graded results in {gradebook_dir} (results.jsonl): grade first, with it as --out")
    late = {(r["student"], r["notebook"]): r for r in read_report(report_path)
            if r["status"] == "collected" and r["days_late"] not in ("", "0")}
    said = []
    for key, record in sorted(records.items()):
        info = late.get(key)
        if info is None:
            continue
        factor = float(info["multiplier"] or 1)
        tag = f"[late x{factor:g}]"
        hours = f"{float(info['late_by_hours']):.1f} h" if info["late_by_hours"] else "late (Canvas)"
        message = (f"submitted {hours} late, {info['days_late']} day(s) counted; policy "
                   f"{info['policy']!r}: points x{factor:g}")
        rows = [r for r in record.rows if not (r.exercise == LATE_EXERCISE and r.max_points == 0)]
        rows = [r if r.max_points <= 0 or r.message.endswith(tag) else
                replace(r, points=round(r.points * factor, 4), message=f"{r.message} {tag}".strip()) for r in rows]
        rows.append(Row(key[0], key[1], LATE_EXERCISE, 0, 0, "late", message))
        if rows != record.rows:
            records[key] = replace(record, rows=rows)
            said.append(f"{key[0]} {key[1]}: {message}")
    if said:
        write_store(gradebook_dir, records)
    return said


def main_collect(args) -> int:
    """The ``collect`` command (see :func:`course_tools.grading.__main__.main`)."""
    try:
        result = collect(args.download, args.roster, args.out, args.due, args.late_policy, args.source_dir,
                         args.layout)
    except CollectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts = defaultdict(int)
    for r in result.rows:
        counts[r["status"]] += 1
    late = sum(r["late"] == "yes" for r in result.rows if r["status"] == "collected")
    print(f"{result.layout} download: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
          + f"; {late} late")
    n = len(result.written)
    print(f"wrote {n} notebook{'' if n == 1 else 's'} under {args.out}/ and {args.out / REPORT_NAME}")
    if result.problems:
        print(f"\n{len(result.problems)} file(s) need you (also in {REPORT_NAME}):", file=sys.stderr)
        for p in result.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


def main_apply_late(args) -> int:
    try:
        said = apply_late(args.gradebook, args.report)
    except CollectError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(said) if said else "no late notebook to apply (or applied already)")
    return 0


def add_commands(sub) -> None:
    """The ``collect`` and ``apply-late`` sub-commands, for ``python -m course_tools.grading``."""
    co = sub.add_parser("collect", help="turn a Canvas, Moodle or Gradescope download into SUBMISSIONS/<student>/")
    co.add_argument("download", type=Path, help="the platform's bulk download: a folder or a .zip")
    co.add_argument("--roster", type=Path, required=True,
                    help="Canvas's gradebook export or Moodle's grading worksheet (CSV)")
    co.add_argument("--out", type=Path, required=True, help="the submissions folder to write (what grade reads)")
    co.add_argument("--due", help="the due date, e.g. 2026-12-01T23:59 (local time unless an offset is given)")
    co.add_argument("--late-policy", default="none", help="none, zero or e.g. '10%%/day, max 3 days, grace 15 min'")
    co.add_argument("--layout", choices=["canvas", "moodle", "gradescope", "folders"], help="skip the detection")
    co.add_argument("--source-dir", type=Path, default=SOURCE_DIR, help="the course notebooks (default notebooks/)")
    co.set_defaults(handler=main_collect)
    al = sub.add_parser("apply-late", help="apply collect's late policy to a graded gradebook")
    al.add_argument("gradebook", type=Path, help="the grade command's --out folder")
    al.add_argument("--report", type=Path, required=True, help="SUBMISSIONS/collect_report.csv")
    al.set_defaults(handler=main_apply_late)
