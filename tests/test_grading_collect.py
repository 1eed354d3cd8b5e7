"""Issue 31.5: `collect` turns Canvas, Moodle and Gradescope downloads into the grader's folders (no kernel)."""

import csv
import json
import zipfile
from datetime import timedelta

import lms
import pytest

from course_tools.grading.__main__ import main
from course_tools.grading.collect import (
    CollectError,
    LatePolicy,
    apply_late,
    canonical_name,
    collect,
    read_roster,
)
from course_tools.grading.grade import Row
from course_tools.grading.gradebook import Record, read_store, write_store


def report(out):
    with open(out / "collect_report.csv", newline="") as f:
        return list(csv.DictReader(f))


def by_status(rows, status):
    return sorted((r["student"], r["notebook"]) for r in rows if r["status"] == status)


@pytest.fixture
def downloads(tmp_path):
    lms.write_all(tmp_path / "lms")
    return tmp_path / "lms"


def test_canonical_names_see_past_the_copies_marks():
    for name in ["00_setup.ipynb", "Copy of 00_setup.ipynb", "Copy of Copy of 00_setup.ipynb", "00_setup-Copy1.ipynb",
                 "00_setup (1).ipynb", "00_setup-1.ipynb", "Copy of 00_setup (2)-Copy3-1.IPYNB", "00_setup copy.ipynb"]:
        assert canonical_name(name) == "00_setup", name
    assert canonical_name("02 bptt.ipynb") == "02_bptt"


def test_canvas_download(downloads, tmp_path, capsys):
    out = tmp_path / "submissions"
    code = main(["collect", str(downloads / "canvas"), "--roster", str(downloads / "canvas_roster.csv"),
                 "--out", str(out), "--due", lms.DUE, "--late-policy", "10%/day, max 3 days"])
    assert code == 1  # the stranger's file needs the instructor
    assert "smithbob_999_9004_00_setup.ipynb: no roster entry has canvas_id '999'" in capsys.readouterr().err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ipynb")) == [
        "ada/00_setup.ipynb", "alan/00_setup.ipynb", "grace/00_setup.ipynb"]  # SIS Login IDs: what grade reads
    assert (out / "alan" / "00_setup.ipynb").read_bytes() == lms.SOLVED.read_bytes()  # copied byte for byte
    rows = report(out)
    assert by_status(rows, "collected") == [("ada", "00_setup.ipynb"), ("alan", "00_setup.ipynb"),
                                            ("grace", "00_setup.ipynb")]
    assert by_status(rows, "no submission") == [("don", "00_setup.ipynb")]
    assert [r["file"] for r in rows if r["status"] == "unmatched"] == ["smithbob_999_9004_00_setup.ipynb"]
    alan = next(r for r in rows if r["student"] == "alan")
    assert (alan["late"], alan["days_late"], alan["multiplier"], alan["late_by_hours"]) == ("yes", "1", "0.9", "9.52")
    assert alan["name"] == "Turing, Alan" and alan["file"].startswith("turingalan_LATE_102_")
    grace = next(r for r in rows if r["student"] == "grace")
    assert grace["note"].startswith("by content") and grace["late"] == "no"  # no metadata, an odd name


def test_canvas_late_marker_decides_and_sizes_from_time(downloads, tmp_path):
    """Without --due the LATE marker alone makes it late, one day counted; unmarked files are never late."""
    result = collect(downloads / "canvas", downloads / "canvas_roster.csv", tmp_path / "s", policy="10%/day")
    late = {r["student"]: (r["late"], r["days_late"], r["multiplier"])
            for r in result.rows if r["status"] == "collected"}
    assert late == {"ada": ("no", 0, "1"), "alan": ("yes", 1, "0.9"), "grace": ("no", 0, "1")}
    assert "Canvas marks it LATE" in next(r["note"] for r in result.rows if r["student"] == "alan")


def test_moodle_zip(downloads, tmp_path):
    out = tmp_path / "submissions"
    result = collect(downloads / "moodle.zip", downloads / "moodle_roster.csv", out, lms.DUE, "zero")
    assert result.layout == "moodle" and not result.problems
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ipynb")) == [
        "ada@uni.example/00_setup.ipynb", "alan@uni.example/00_setup.ipynb"]  # Email address: Moodle's key
    rows = report(out)
    assert by_status(rows, "no submission") == [("grace@uni.example", "00_setup.ipynb")]
    assert [(r["student"], r["note"]) for r in rows if r["status"] == "ignored"] == [
        ("ada@uni.example", "not a notebook")]  # the PDF: listed, not dropped
    alan = next(r for r in rows if r["student"] == "alan@uni.example")
    assert (alan["late"], alan["multiplier"], alan["time_source"]) == ("yes", "0", "file time")


def test_moodle_folder_and_flat_names(downloads, tmp_path):
    folder = tmp_path / "moodle"
    with zipfile.ZipFile(downloads / "moodle.zip") as z:
        z.extractall(folder)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "Grace Hopper_503_assignsubmission_file_00_setup.ipynb").write_bytes(lms.SOLVED.read_bytes())
    for download in (folder, flat):
        result = collect(download, downloads / "moodle_roster.csv", tmp_path / download.name / "out")
        assert result.layout == "moodle" and not result.problems, result.problems


def test_gradescope_export(tmp_path, downloads):
    zip_path = lms.gradescope_download(tmp_path / "gs.zip")
    out = tmp_path / "submissions"
    result = collect(zip_path, downloads / "canvas_roster.csv", out, "2026-12-01T23:59Z", "10%/day")
    assert result.layout == "gradescope" and not result.problems
    rows = {r["student"]: r for r in report(out) if r["status"] == "collected"}
    assert sorted(rows) == ["ada", "alan"]  # the metadata's SIS ids
    assert rows["alan"]["time_source"] == "Gradescope created_at" and rows["alan"]["days_late"] == "2"


def test_several_copies_the_newest_is_graded(tmp_path, downloads):
    folder = tmp_path / "dl"
    folder.mkdir()
    old, new = folder / "ada" / "00_setup.ipynb", folder / "ada" / "Copy of 00_setup.ipynb"
    for path, data, when in ((old, lms.UNSOLVED, lms.ON_TIME), (new, lms.SOLVED, lms.LATE)):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data.read_bytes())
        lms._stamp(path, when)
    out = tmp_path / "out"
    result = collect(folder, downloads / "canvas_roster.csv", out)
    assert result.layout == "folders"
    assert (out / "ada" / "00_setup.ipynb").read_bytes() == lms.SOLVED.read_bytes()
    assert [r["file"] for r in result.rows if r["status"] == "superseded"] == ["ada/00_setup.ipynb"]


def test_unrecognised_notebook_is_listed(tmp_path, downloads):
    folder = tmp_path / "dl" / "ada"
    folder.mkdir(parents=True)
    (folder / "scratch.ipynb").write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                                     "nbformat_minor": 5}))
    result = collect(folder.parent, downloads / "canvas_roster.csv", tmp_path / "out")
    assert result.problems == ["ada/scratch.ipynb: 'scratch.ipynb' is no course notebook, by name or content"]
    assert not list((tmp_path / "out").rglob("*.ipynb"))


def test_bad_input_is_a_clear_error(tmp_path, downloads, capsys):
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "homework.ipynb").write_bytes(lms.SOLVED.read_bytes())
    with pytest.raises(CollectError, match="unknown download layout"):
        collect(odd, downloads / "canvas_roster.csv", tmp_path / "out")
    roster = tmp_path / "roster.csv"
    roster.write_text("Name,Email\nAda,ada@x\n")
    with pytest.raises(CollectError, match="SIS Login ID"):
        read_roster(roster)
    roster.write_text('Student,ID,SIS Login ID\n"Lovelace, Ada",1,../ada\n')
    with pytest.raises(CollectError, match="cannot be a folder name"):
        read_roster(roster)
    roster.write_text('Student,ID,SIS Login ID\n"Lovelace, Ada",1,ada\n"Byron, Ada",2,ada\n')
    with pytest.raises(CollectError, match="key of 2 students"):
        read_roster(roster)
    assert main(["collect", str(odd), "--roster", str(downloads / "canvas_roster.csv"), "--out",
                 str(tmp_path / "o"), "--late-policy", "a bit"]) == 2
    assert "late policy 'a bit'" in capsys.readouterr().err


def test_roster_skips_canvas_points_possible(downloads):
    students = read_roster(downloads / "canvas_roster.csv")
    assert [(s.key, s.canvas_id, s.sis_id, s.section) for s in students][:1] == [("ada", "101", "S001", "Lab A")]
    assert len(students) == 4


def test_late_policies():
    ten = LatePolicy.parse("10%/day, max 3 days, grace 15 min")
    assert [ten.multiplier(d) for d in range(5)] == [1, 0.9, 0.8, 0.7, 0]
    assert ten.grace == timedelta(minutes=15)
    assert LatePolicy.parse("zero").multiplier(1) == 0 and LatePolicy.parse(None).multiplier(9) == 1
    assert LatePolicy.parse("25 % per day").multiplier(5) == 0  # never below zero
    with pytest.raises(CollectError):
        LatePolicy.parse("10%/week")


def test_grace_forgives_a_few_minutes(tmp_path, downloads):
    result = collect(downloads / "moodle.zip", downloads / "moodle_roster.csv", tmp_path / "o", "2026-12-02T09:20",
                     "10%/day, grace 15 min")
    assert {r["student"]: r["late"] for r in result.rows if r["status"] == "collected"} == {
        "ada@uni.example": "no", "alan@uni.example": "no"}


def test_report_keeps_other_notebooks_and_escapes_formulas(tmp_path, downloads):
    out = tmp_path / "out"
    roster = tmp_path / "roster.csv"
    roster.write_text('Student,ID,SIS Login ID\n"=HYPERLINK(1)",101,ada\n')
    first = tmp_path / "a" / "ada"
    first.mkdir(parents=True)
    (first / "02_bptt.ipynb").write_bytes((lms.REPO / "notebooks" / "02_bptt.ipynb").read_bytes())
    collect(first.parent, roster, out)
    second = tmp_path / "b" / "ada"
    second.mkdir(parents=True)
    (second / "00_setup.ipynb").write_bytes(lms.SOLVED.read_bytes())
    collect(second.parent, roster, out)
    rows = report(out)
    assert sorted(r["notebook"] for r in rows) == ["00_setup.ipynb", "02_bptt.ipynb"]
    assert "\n=" not in (out / "collect_report.csv").read_text() and "'=HYPERLINK(1)" in (out / "collect_report.csv"
                                                                                          ).read_text()


def test_apply_late_scales_once_and_again_after_a_regrade(tmp_path, downloads):
    subs = tmp_path / "submissions"
    collect(downloads / "canvas", downloads / "canvas_roster.csv", subs, lms.DUE, "10%/day, max 3 days")
    book = tmp_path / "gradebook"

    def graded(student, exercises=("softmax_test", "softmax_hidden_test")):
        rows = [Row(student, "00_setup.ipynb", gid, 0.5, 0.5, "passed") for gid in exercises]
        return Record(student, "00_setup.ipynb", f"{student}/00_setup.ipynb", "0" * 64, 1.0, rows)

    write_store(book, {("ada", "00_setup.ipynb"): graded("ada"), ("alan", "00_setup.ipynb"): graded("alan")})
    said = apply_late(book, subs / "collect_report.csv")
    assert said == ["alan 00_setup.ipynb: submitted 9.5 h late, 1 day(s) counted; policy '10%/day, max 3 days': "
                    "points x0.9"]

    def points():
        return {(r.student, r.exercise): r.points for rec in read_store(book).values() for r in rec.rows}

    assert points()[("alan", "softmax_test")] == 0.45 and points()[("ada", "softmax_test")] == 0.5
    assert points()[("alan", "late")] == 0
    assert "0.9" in (book / "canvas.csv").read_text()  # the LMS export carries it
    assert "[late x0.9]" in (book / "feedback" / "alan.md").read_text()
    assert apply_late(book, subs / "collect_report.csv") == []  # once only
    assert points()[("alan", "softmax_test")] == 0.45
    records = read_store(book)  # a regrade of one exercise (--exercise) stores that row afresh, unscaled
    fresh = graded("alan", ("softmax_test",)).rows[0]
    records[("alan", "00_setup.ipynb")].rows[0] = fresh
    write_store(book, records)
    assert len(apply_late(book, subs / "collect_report.csv")) == 1
    assert points()[("alan", "softmax_test")] == 0.45 and points()[("alan", "softmax_hidden_test")] == 0.45
    write_store(book, {("ada", "00_setup.ipynb"): graded("ada"), ("alan", "00_setup.ipynb"): graded("alan")})
    assert len(apply_late(book, subs / "collect_report.csv")) == 1  # a whole regrade: applied again, once
    assert points()[("alan", "softmax_test")] == 0.45
    with pytest.raises(CollectError, match="grade first"):
        apply_late(tmp_path / "nothing", subs / "collect_report.csv")


def test_a_resubmission_updates_its_row_and_keeps_the_rest(tmp_path, downloads):
    out = tmp_path / "submissions"
    collect(downloads / "canvas", downloads / "canvas_roster.csv", out, lms.DUE, "10%/day")
    mail = tmp_path / "mail" / "grace"  # Grace mails the right file; accepted as on time (no --due)
    mail.mkdir(parents=True)
    (mail / "00_setup.ipynb").write_bytes(lms.SOLVED.read_bytes())
    result = collect(mail.parent, downloads / "canvas_roster.csv", out)
    assert result.layout == "folders" and not result.problems
    assert (out / "grace" / "00_setup.ipynb").read_bytes() == lms.SOLVED.read_bytes()
    rows = report(out)
    assert by_status(rows, "collected") == [("ada", "00_setup.ipynb"), ("alan", "00_setup.ipynb"),
                                            ("grace", "00_setup.ipynb")]
    assert by_status(rows, "no submission") == [("don", "00_setup.ipynb")]  # once
    assert next(r for r in rows if r["student"] == "grace")["file"] == "grace/00_setup.ipynb"
    assert next(r for r in rows if r["student"] == "alan")["multiplier"] == "0.9"  # kept
    assert len([r for r in rows if r["status"] == "unmatched"]) == 1


def test_canvas_marker_within_grace_is_forgiven(tmp_path, downloads):
    result = collect(downloads / "canvas", downloads / "canvas_roster.csv", tmp_path / "o", "2026-12-02T09:20",
                     "10%/day, grace 15 min")  # Alan's file is 10 minutes past this due time
    alan = next(r for r in result.rows if r["student"] == "alan")
    assert (alan["late"], alan["multiplier"], alan["note"]) == ("no", "1", "by name; Canvas marks it LATE, within "
                                                                             "the grace period")
