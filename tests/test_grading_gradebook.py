"""The gradebook of a class: exports a spreadsheet cannot run, one submission per (student, notebook),
results stored as they finish and merged by (student, notebook) on a regrade, --resume, and runs
refused with a clear message before any kernel starts.

The graded cases use the tiny fixture homework (tests/fixtures/grading/, 2 + 3 + 1 points).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from course_tools.grading.__main__ import main
from course_tools.grading.batch import find_class, plan_class, shard_of
from course_tools.grading.grade import Row
from course_tools.grading.gradebook import (
    STORE,
    Record,
    feedback_html,
    read_store,
    spreadsheet_safe,
    write_exports,
    write_gradebook,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
SOURCE = FIXTURES / "homework.ipynb"
SUBMITTED = FIXTURES / "submissions"
FLAGS = ["--source", str(SOURCE), "--cell-timeout", "20", "--notebook-timeout", "150", "--jobs", "2"]
FORMULAS = ["=1+2", "+1+2", "-1+2", "@SUM(A1)", "\tcmd", "\r=1"]


# --- exports a spreadsheet cannot run ---------------------------------------------------


def test_spreadsheet_safe_follows_owasp():
    for text in FORMULAS:
        assert spreadsheet_safe(text) == "'" + text
    for text in ("alice", "0.5", "-1", "+2", "2.5e-3", "", "a=b"):
        assert spreadsheet_safe(text) == text  # names and plain numbers stay as they are


def hostile_rows() -> list[Row]:
    """Two students, one named like a formula, with formula-like exercise names and messages."""
    rows = []
    for student in ("=1+2", "alice"):
        rows += [Row(student, "homework.ipynb", "-square_test", 1, 3, "partial", "@SUM(A1:A9)"),
                 Row(student, "homework.ipynb", "add_one_test", 2, 2, "passed", "+cmd|' /C calc'!A0")]
    return rows


@pytest.mark.parametrize("export", ["gradebook.csv", "grades_wide.csv", "canvas.csv"])
def test_every_csv_export_escapes_formulas(export, tmp_path):
    write_gradebook(hostile_rows(), tmp_path)
    with open(tmp_path / export, newline="", encoding="utf-8") as f:
        cells = [cell for record in csv.reader(f) for cell in record]
    risky = [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r")) and c != spreadsheet_safe(c)]
    assert not risky, f"{export} has cells a spreadsheet would run: {risky}"
    assert "'=1+2" in cells and "=1+2" not in cells
    written = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert written == ["canvas.csv", "gradebook.csv", "grades_wide.csv"]  # a new CSV needs its test here


def test_points_possible_come_from_the_source(tmp_path):
    # bob's record lost an exercise's row (say, an older source); Points Possible is still the source's 6
    rows = [Row("alice", "homework.ipynb", "add_one_test", 2, 2, "passed"),
            Row("alice", "homework.ipynb", "square_test", 3, 3, "passed"),
            Row("bob", "homework.ipynb", "add_one_test", 2, 2, "passed")]
    records = {("alice", "homework.ipynb"): Record("alice", "homework.ipynb", "alice.ipynb", "x", 6.0, rows[:2]),
               ("bob", "homework.ipynb"): Record("bob", "homework.ipynb", "bob.ipynb", "y", 6.0, rows[2:])}
    write_exports(tmp_path, records)
    with open(tmp_path / "canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[1] == ["Points Possible", "", "", "", "", "6"]


def test_html_feedback_shows_html_in_messages_as_text():
    page = feedback_html("<b>eve</b>", "# Feedback\n\n- square_test: failed — got <script>alert(1)</script>\n")
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>eve" not in page
    assert "<h1>Feedback</h1>" in page and "<li>" in page


# --- one submission per (student, notebook) ------------------------------------------------


def touch(path: Path, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))


def test_one_submission_per_student_and_notebook(tmp_path):
    touch(tmp_path / "judy" / "00_setup.ipynb", 1000)
    touch(tmp_path / "judy" / "00_setup-Copy1.ipynb", 2000)  # newer, but the exact name wins
    touch(tmp_path / "carol" / "Copy of 00_setup.ipynb", 3000)
    touch(tmp_path / "carol" / "00_setup (1).ipynb", 1000)  # no exact name: the newest wins
    touch(tmp_path / "dan" / "00_setup-Copy2.ipynb", 1000)  # a copy alone is still 00_setup
    jobs = {j.student: j for j in find_class(tmp_path, None)}
    assert [(s, j.notebook, j.path.name) for s, j in sorted(jobs.items())] == [
        ("carol", "00_setup.ipynb", "Copy of 00_setup.ipynb"), ("dan", "00_setup.ipynb", "00_setup-Copy2.ipynb"),
        ("judy", "00_setup.ipynb", "00_setup.ipynb")]
    note = jobs["judy"].note(tmp_path)
    assert note.status == "extra upload" and note.max_points == 0
    assert note.message == ("graded judy/00_setup.ipynb (the file named exactly after the notebook); "
                            "not graded: judy/00_setup-Copy1.ipynb")
    assert "the newest upload" in jobs["carol"].note(tmp_path).message and jobs["dan"].note(tmp_path) is None


def test_shards_split_the_class_the_same_way_every_time(tmp_path):
    for student in ("d", "a", "c", "b", "e"):
        touch(tmp_path / f"{student}.ipynb", 1000)
    jobs = find_class(tmp_path, SOURCE)
    parts = [[j.student for j in shard_of(jobs, (i, 2))] for i in (1, 2)]
    assert parts == [["a", "c", "e"], ["b", "d"]]
    assert parts == [[j.student for j in shard_of(list(reversed(jobs)), (i, 2))] for i in (1, 2)]


# --- runs refused before a kernel starts --------------------------------------------------


def test_bad_runs_exit_non_zero_with_the_reason(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()

    def refused(*argv: str) -> str:
        assert main(["grade", *argv, "--out", str(out)]) == 2
        return capsys.readouterr().err

    assert "no notebooks (*.ipynb) in" in refused(str(subs), "--source", str(SOURCE))
    assert "is not a folder of submissions" in refused(str(tmp_path / "nope"), "--source", str(SOURCE))
    shutil.copy(SUBMITTED / "full.ipynb", subs / "alice.ipynb")
    assert "--source " + str(tmp_path / "homewrk.ipynb") + ": no such notebook" in refused(
        str(subs), "--source", str(tmp_path / "homewrk.ipynb"))
    assert "is named after a course notebook" in refused(str(subs))  # alice.ipynb: no source to grade against
    assert "no such folder" in refused(str(subs), *FLAGS, "--extra-tests", str(tmp_path / "private"))
    extra = tmp_path / "private"
    extra.mkdir()
    (extra / "square_test.py").write_text("assert square(3) == 9\n")
    (extra / "mean_tset.py").write_text("assert False\n")  # misspelled: would never run
    err = refused(str(subs), *FLAGS, "--extra-tests", str(extra))
    assert "mean_tset.py match(es) no test cell's grade_id" in err and "add_one_test square_test mean_test" in err
    assert "--shard '0/2'" in refused(str(subs), *FLAGS, "--shard", "0/2")
    assert "--student bob: no such student" in refused(str(subs), *FLAGS, "--student", "bob")
    assert "--exercise sqare_test: no such test cell" in refused(str(subs), *FLAGS, "--exercise", "sqare_test")
    assert not out.exists()  # nothing was graded, nothing written

    (extra / "mean_tset.py").unlink()
    (extra / "00_setup").mkdir()  # a course notebook not graded in this run: listed, not attached
    (extra / "00_setup" / "softmax_test.py").write_text("pass\n")
    plan_class(subs, SOURCE, extra)
    listed = capsys.readouterr().out
    assert "square_test.py -> homework.ipynb (square_test)" in listed
    assert "00_setup/softmax_test.py -> not used" in listed


# --- an incremental gradebook -------------------------------------------------------------


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file()}


def class_of(folder: Path, **students: str) -> Path:
    """``folder`` with ``<student>.ipynb`` copied from the fixture submission ``students[student]``."""
    folder.mkdir()
    for student, case in students.items():
        shutil.copy(SUBMITTED / f"{case}.ipynb", folder / f"{student}.ipynb")
    return folder


def rows_of(out: Path) -> dict[tuple[str, str], tuple[float, str]]:
    return {(r["student"], r["exercise"]): (r["points"], r["status"])
            for r in json.loads((out / "gradebook.json").read_text())}


def test_regrades_merge_by_student_notebook_and_exercise_and_resume_goes_on(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["grade", str(class_of(tmp_path / "week1", ann="full", ben="partial")), "--out", str(out),
                 *FLAGS]) == 0
    first = rows_of(out)
    assert first[("ann", "square_test")] == (3, "passed") and first[("ben", "square_test")] == (0, "failed")
    assert (out / "feedback" / "ben.html").is_file() and (out / "feedback" / "ben.md").is_file()
    assert len((out / STORE).read_text().splitlines()) == 2
    # a row of another notebook, graded earlier into the same folder, must survive the regrades below
    other = Record("ann", "other.ipynb", "ann/other.ipynb", "0" * 64, 1.0,
                   [Row("ann", "other.ipynb", "other_test", 1, 1, "passed")])
    with open(out / STORE, "a") as f:
        f.write(other.to_json() + "\n")
    write_exports(out, read_store(out))
    before = snapshot(out)

    # ben regraded: only ben's rows and files change (the tables hold his row, so they change too)
    assert main(["grade", str(class_of(tmp_path / "again", ben="full")), "--out", str(out), *FLAGS]) == 0
    after = snapshot(out)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["canvas.csv", "feedback/ben.html", "feedback/ben.md", "gradebook.csv", "gradebook.json",
                       "grades_wide.csv", "gradescope/ben/results.json", STORE]
    rows = rows_of(out)
    assert rows[("ben", "square_test")] == (3, "passed") and rows[("ann", "other_test")] == (1, "passed")
    assert {k: v for k, v in rows.items() if k[0] == "ann" and k[1] != "other_test"} == {
        k: v for k, v in first.items() if k[0] == "ann"}

    # one exercise of ann's: an empty notebook fails all three, but only square_test's row is replaced
    assert main(["grade", str(class_of(tmp_path / "one_ex", ann="empty")), "--out", str(out), *FLAGS,
                 "--exercise", "square_test"]) == 0
    rows = rows_of(out)
    assert rows[("ann", "square_test")] == (0, "failed")
    assert rows[("ann", "add_one_test")] == (2, "passed") and rows[("ann", "mean_test")] == (1, "passed")
    capsys.readouterr()

    # a run stopped while writing a result: the store ends in half a line; --resume grades only what is new
    with open(out / STORE, "a") as f:
        f.write('{"notebook": "homework.ipynb", "possible": 6.0, "rows": [{"exer')
    folder = class_of(tmp_path / "resume", ann="empty", ben="full", cat="partial")
    before = snapshot(out)
    assert main(["grade", str(folder), "--out", str(out), *FLAGS, "--resume"]) == 0
    printed = capsys.readouterr()
    assert "--resume: 2 already graded" in printed.out and "1 to grade" in printed.out
    assert "is not a whole record" in printed.err
    rows = rows_of(out)
    assert rows[("cat", "square_test")] == (0, "failed") and rows[("ann", "add_one_test")] == (2, "passed")
    after = snapshot(out)
    assert after["feedback/ann.md"] == before["feedback/ann.md"] and "feedback/cat.html" in after
    lines = (out / STORE).read_text().splitlines()  # rewritten whole, sorted, one line per submission
    assert [tuple(json.loads(line)[k] for k in ("student", "notebook")) for line in lines] == [
        ("ann", "homework.ipynb"), ("ann", "other.ipynb"), ("ben", "homework.ipynb"), ("cat", "homework.ipynb")]
    assert set(read_store(out)) == {tuple(json.loads(line)[k] for k in ("student", "notebook")) for line in lines}


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
