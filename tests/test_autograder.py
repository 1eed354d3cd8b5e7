"""The Gradescope autograder bundle (course_tools/grading/autograder.py).

Fast: what the zip holds (Gradescope's two scripts at its root, no solutions), the grading copy of
every notebook gives the same student version as the source, results.json from rows, and the
schema written from Gradescope's specification (course_tools/grading/gradescope_results.schema.json).

Slow: the bundle run as Gradescope runs it. The zip is unpacked into a throwaway root laid out
like Gradescope's (``source/``, ``submission/``, ``results/``, ``run_autograder``; the scripts
read it from AUTOGRADER_ROOT); ``setup.sh`` installs a fresh virtual environment in it, with
torch from pip's own configuration (TORCH_INDEX_URL="": this machine reaches no PyTorch index);
then ``run_autograder`` grades five submissions of 00_setup one at a time: honest (the solved
notebook), wrong, stub (the student version), malformed (not JSON) and malicious. Every
results.json must validate against the schema, and score what ``python -m course_tools.grading
grade`` gives the same files.

``setup.sh`` into a fresh environment takes 4-9 minutes on two cores (it unpacks torch), which
would take ``make test`` past its 20 minutes, so ``make test`` runs the five submissions with the
test's own environment (the bundle's course is still the one imported: run_autograder puts it
first on the path) and only ``setup.sh``'s install goes untested there. AUTOGRADER_FRESH_SETUP=1
runs ``setup.sh`` into a fresh environment as described above (do so before handing a changed
bundle to Gradescope: ``AUTOGRADER_FRESH_SETUP=1 pytest tests/test_autograder.py -m slow``);
AUTOGRADER_TEST_VENV=PATH runs with the environment at PATH instead of the test's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from course_tools.grading.autograder import (
    SCHEMA,
    build,
    container_cpus,
    exercise_list,
    find_submissions,
    grade_one,
    grading_copy,
    lay_out,
    results,
    reuse_environment,
    run,
    run_setup,
    sandbox_note,
)
from course_tools.grading.cells import BEGIN_SOLUTION, END_SOLUTION, is_grade, is_solution
from course_tools.grading.grade import Row, exercises
from course_tools.grading.release import render, student_version
from course_tools.grading.sandbox import sandbox_status

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "00_setup.ipynb"  # the fastest notebook (benchmarks/results/notebook_times.md)
GRADED = [p for p in sorted((REPO / "notebooks").glob("*.ipynb")) if exercises(nbformat.read(p, as_version=4))]
VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))


def solution_lines(path: Path) -> set[str]:
    """The non-trivial lines between the solution markers of a source notebook that its student version lacks."""
    found = set()
    source = nbformat.read(path, as_version=4)
    released = render(student_version(source, path.name))
    for cell in source.cells:
        inside = False
        for line in cell.source.splitlines() if is_solution(cell) else []:
            text = line.strip()
            if text in (BEGIN_SOLUTION, END_SOLUTION):
                inside = text == BEGIN_SOLUTION
            elif inside and len(text) > 12 and not text.startswith("#"):
                found.add(text)
    return {line for line in found if json.dumps(line)[1:-1] not in released}


# ----------------------------------------------------------------------------- the bundle, without running it

@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    command = [sys.executable, "-m", "course_tools.grading", "autograder", str(NOTEBOOK), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def test_the_zip_has_gradescopes_scripts_at_its_root_and_no_solution(bundle):
    with zipfile.ZipFile(bundle) as zf:
        names = zf.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        text = {n: zf.read(n).decode("utf-8", "replace") for n in names}
    assert {"setup.sh", "run_autograder", "README.md", "autograder.json", "requirements.txt",
            "notebooks/00_setup.ipynb"} <= set(names)
    assert modes["setup.sh"] & 0o111 and modes["run_autograder"] & 0o111
    assert not [n for n in names if n.startswith("course/notebooks") or n.startswith("course/student")
                or n.startswith("course/tests") or "__pycache__" in n]
    assert solution_lines(NOTEBOOK), "nothing to look for"
    leaked = {(n, line) for line in solution_lines(NOTEBOOK) for n, t in text.items()
              if line in t and not n.startswith("course/")}  # course/: the learners' public library
    assert not leaked, f"solution lines in the bundle: {sorted(leaked)[:5]}"
    assert "torch==2.13.0" in text["setup.sh"] and "@TORCH" not in text["setup.sh"]
    assert not re.search(r"@[A-Z_]+@", text["README.md"] + text["setup.sh"]), "a placeholder left unfilled"
    config = json.loads(text["autograder.json"])
    assert config["notebooks"] == [{"name": "00_setup.ipynb", "exercises": [
        {"grade_id": "softmax_test", "points": 0.5, "hidden": False},
        {"grade_id": "softmax_hidden_test", "points": 0.5, "hidden": True}]}]


def test_the_same_notebooks_give_the_same_zip(bundle, tmp_path):
    again = tmp_path / "again.zip"
    build([NOTEBOOK], again)
    assert zipfile.ZipFile(again).namelist() == zipfile.ZipFile(bundle).namelist()
    one, two = zipfile.ZipFile(again), zipfile.ZipFile(bundle)
    assert [n for n in one.namelist() if one.read(n) != two.read(n)] == []


@pytest.mark.parametrize("path", GRADED, ids=lambda p: p.name)
def test_the_grading_copy_has_no_solution_and_the_same_student_version(path):
    """The grader plans a submission from the student version and the test cells: the same from the copy."""
    source = nbformat.read(path, as_version=4)
    copy = grading_copy(source, path.name)
    assert render(student_version(copy, path.name)) == render(student_version(source, path.name))
    assert [c.source for c in copy.cells if is_grade(c)] == [c.source for c in source.cells if is_grade(c)]
    text = render(copy)
    assert not [line for line in solution_lines(path) if line in text]


def test_hidden_test_cells_are_shown_after_the_due_date():
    source = nbformat.read(NOTEBOOK, as_version=4)
    listed = exercise_list(source)
    assert [e["hidden"] for e in listed] == [False, True]
    assert [e["hidden"] for e in exercise_list(source, {"softmax_test"})] == [True, True]  # an extra test hides it


def test_submissions_are_found_by_name_or_alone(tmp_path):
    (tmp_path / "sub" / "nested").mkdir(parents=True)
    (tmp_path / "sub" / "nested" / "00_setup.ipynb").write_text("{}")
    (tmp_path / "sub" / "notes.ipynb").write_text("{}")
    chosen, notes = find_submissions(tmp_path / "sub", ["00_setup.ipynb"])
    assert chosen == {"00_setup.ipynb": tmp_path / "sub" / "nested" / "00_setup.ipynb"}
    assert notes == ["not graded (no bundled notebook of that name): notes.ipynb"]
    (tmp_path / "sub" / "nested" / "00_setup.ipynb").unlink()
    chosen, notes = find_submissions(tmp_path / "sub", ["00_setup.ipynb"])
    assert chosen == {"00_setup.ipynb": tmp_path / "sub" / "notes.ipynb"} and "graded your notes.ipynb" in notes[0]
    assert find_submissions(tmp_path / "none", ["00_setup.ipynb"]) == ({}, [])


def test_results_have_a_test_per_exercise_and_validate():
    config = {"notebooks": [{"name": "00_setup.ipynb", "exercises": [
        {"grade_id": "softmax_test", "points": 0.5, "hidden": False},
        {"grade_id": "softmax_hidden_test", "points": 0.5, "hidden": True}]}]}
    rows = [Row("submission", "00_setup.ipynb", "softmax_test", 0.5, 0.5, "passed"),
            Row("submission", "00_setup.ipynb", "softmax_hidden_test", 0, 0.5, "failed", "AssertionError: nan"),
            Row("submission", "00_setup.ipynb", "integrity", 0, 0, "tampered", "locked cell 'x' was edited")]
    found = results(config, rows, ["a note"], "Sandbox: on")
    VALIDATOR.validate(found)
    assert found["score"] == 0.5
    assert [(t["score"], t["max_score"], t["status"], t["visibility"]) for t in found["tests"]] == [
        (0.5, 0.5, "passed", "visible"), (0, 0.5, "failed", "after_due_date")]
    assert found["tests"][1]["output"] == "failed: AssertionError: nan"
    assert "Sandbox: on" in found["output"] and "tampered" in found["output"] and "a note" in found["output"]


def test_kernels_get_the_containers_cpu_quota_not_the_hosts_cores(tmp_path):
    """Docker limits CPUs by a cgroup quota; os.cpu_count() still says the host's count."""
    assert container_cpus(tmp_path / "none") == len(os.sched_getaffinity(0))
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cpu.max").write_text("100000 100000\n")
    assert container_cpus(tmp_path / "v2") == 1
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")
    assert container_cpus(tmp_path / "v2") == len(os.sched_getaffinity(0))
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert container_cpus(tmp_path / "v1") == 1


def test_where_bubblewrap_cannot_run_the_output_says_so(monkeypatch):
    import course_tools.grading.sandbox as sandbox

    monkeypatch.setattr(sandbox, "sandbox_status", lambda: "bubblewrap could not start a sandbox here: EPERM")
    mode, note = sandbox_note("auto")
    assert mode == "off" and "not available in this container (bubblewrap could not start" in note
    assert "clean kernel alone" in note
    mode, note = sandbox_note("require")
    assert mode == "require" and "nothing was graded" in note
    monkeypatch.setattr(sandbox, "sandbox_status", lambda: "")
    assert sandbox_note("auto")[0] == "auto" and "Sandbox: on" in sandbox_note("auto")[1]


def test_a_failing_autograder_still_writes_valid_results(tmp_path, capsys):
    """No bundle in the root (or any other failure): results.json says the autograder failed, score 0."""
    found = run(tmp_path)
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    assert written == found and written["score"] == 0 and "autograder failed" in written["output"]
    VALIDATOR.validate(written)


@pytest.mark.parametrize("bad", [
    {"tests": [{"name": "x", "max_score": 1}]},  # no score anywhere
    {"score": 1, "tests": [{"score": 1, "visibility": "later"}]},
    {"score": 1, "tests": [{"score": 1, "status": "ok"}]},
    {"score": 1, "tests": [{"score": 1, "max_scores": 1}]},  # misspelt
    {"score": "1"},
    {"score": 1, "output_format": "latex"},
])
def test_the_schema_refuses_what_the_specification_does_not_allow(bad):
    assert list(VALIDATOR.iter_errors(bad))


# ----------------------------------------------------------------------------- the bundle run as Gradescope runs it

WRONG = "def my_softmax(z):\n    e = np.exp(z)  # no shift: overflows\n    return e / e.sum(axis=-1, keepdims=True)"
MALICIOUS = '''import json, os, pathlib
import course_utils
import course_utils.core.checks as checks
checks.check_softmax = lambda *a, **k: None  # the checks patched to no-ops
course_utils.check_close = lambda *a, **k: None
root = pathlib.Path(ROOT)  # on Gradescope /autograder; the test writes its throwaway root in
try:  # forge the results
    (root / "results" / "results.json").write_text(json.dumps({"score": 100, "output": "forged"}))
except OSError:
    pass
leak = ""
for path in sorted((root / "source").rglob("*.ipynb")):  # read the bundle's notebooks
    try:
        leak += path.read_text()
    except OSError:
        pass

def my_softmax(z):
    raise RuntimeError("LEAK " + leak[leak.find("BEGIN HIDDEN"):][:1500])  # what it read, into the feedback'''


def _with_answer(body: str) -> str:
    nb = nbformat.read(REPO / "student" / NOTEBOOK.name, as_version=4)
    cell = next(c for c in nb.cells if is_solution(c) and c.cell_type == "code")
    cell.source = body
    return render(nb)


def submissions(folder: Path, root: Path) -> dict[str, Path]:
    """The five submissions, each as student/00_setup.ipynb (the malicious one knows the ``root``:
    the kernel's environment does not say it, and on Gradescope it is always /autograder)."""
    texts = {
        "honest": NOTEBOOK.read_text(),
        "wrong": _with_answer(WRONG),
        "stub": (REPO / "student" / NOTEBOOK.name).read_text(),
        "malformed": NOTEBOOK.read_text()[:5000],  # cut off: not JSON
        "malicious": _with_answer(MALICIOUS.replace("ROOT", repr(str(root)), 1)).replace(
            '"cells": [', '"cells": [' + json.dumps(
                nbformat.v4.new_code_cell("import os\nos._exit(3)  # kill the kernel")) + ",", 1),
    }
    found = {}
    for who, text in texts.items():
        (folder / who).mkdir(parents=True)
        found[who] = folder / who / NOTEBOOK.name
        found[who].write_text(text)
    return found


@pytest.fixture(scope="module")
def gradescope(bundle, tmp_path_factory):
    """(root, environment) of a Gradescope-like root set up by the bundle's setup.sh (see the docstring)."""
    root = lay_out(bundle, tmp_path_factory.mktemp("gradescope") / "autograder")
    if os.environ.get("AUTOGRADER_FRESH_SETUP") != "1":  # make test: the test's own environment (docstring)
        yield root, reuse_environment(root, Path(os.environ.get("AUTOGRADER_TEST_VENV", sys.prefix)).resolve())
        return
    done = run_setup(root, env={"TORCH_INDEX_URL": ""})
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "CPU build" in done.stdout
    yield root, root / "venv"
    shutil.rmtree(root / "venv", ignore_errors=True)  # 1.3 GB


@pytest.fixture(scope="module")
def graded(gradescope, tmp_path_factory):
    """Each submission: (results.json, wall seconds); and the local gradebook rows of the same files."""
    root, venv = gradescope
    subs = submissions(tmp_path_factory.mktemp("submissions"), root)
    out = tmp_path_factory.mktemp("gradebook")
    # The local grading of the same files runs meanwhile (one kernel at a time beside the bundle's): Gradescope
    # grades one submission at a time, so the bundle's runs leave a core free.
    log = out.parent / f"{out.name}.log"  # a file, not a pipe: a pipe nobody reads meanwhile could fill and block it
    with open(log, "w") as stderr:
        local_run = subprocess.Popen([sys.executable, "-m", "course_tools.grading", "grade",
                                      str(subs["honest"].parent.parent), "--source", str(NOTEBOOK), "--out", str(out),
                                      "--jobs", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            found = {who: grade_one(root, path, venv) for who, path in subs.items()}
            found["malicious, no sandbox"] = grade_one(root, subs["malicious"], venv, {"AUTOGRADER_SANDBOX": "off"})
            local_run.wait(timeout=1800)
        finally:
            local_run.kill()
    assert local_run.returncode == 0, log.read_text()[-3000:]
    local = [Row(**r) for r in json.loads((out / "gradebook.json").read_text())]
    return found, local


WHO = ["honest", "wrong", "stub", "malformed", "malicious", "malicious, no sandbox"]


@pytest.mark.slow
@pytest.mark.parametrize("who", WHO)
def test_every_results_json_validates_and_scores_as_local_grading(graded, who):
    found, local = graded
    result, _ = found[who]
    VALIDATOR.validate(result)
    assert result["execution_time"] >= 0 and result["output"]
    mine = {r.exercise: r for r in local if r.student == who.split(",")[0] and r.max_points > 0}
    assert [t["name"].split(": ")[1].split(" ")[0] for t in result["tests"]] == list(mine)
    for test in result["tests"]:
        row = mine[test["name"].split(": ")[1].split(" ")[0]]
        assert (test["score"], test["max_score"]) == (row.points, row.max_points), (test, row)
        assert test["output"].startswith(row.status), (test["output"], row)
        assert test["visibility"] == ("after_due_date" if "hidden" in test["name"] else "visible")
    assert result["score"] == sum(r.points for r in mine.values())


@pytest.mark.slow
def test_the_honest_submission_scores_full_marks_and_the_others_nothing(graded):
    found, _ = graded
    scores = {who: found[who][0]["score"] for who in WHO}
    assert scores == {"honest": 1, "wrong": 0, "stub": 0, "malformed": 0, "malicious": 0,
                      "malicious, no sandbox": 0}
    assert "not valid JSON" in found["malformed"][0]["output"]
    assert all("not attempted" in t["output"] for t in found["stub"][0]["tests"])


@pytest.mark.slow
def test_the_malicious_submission_forges_nothing_and_reads_no_solution(graded):
    for who in ("malicious", "malicious, no sandbox"):
        result, _ = graded[0][who]
        text = json.dumps(result)
        assert "forged" not in text
        assert not [line for line in solution_lines(NOTEBOOK) if line in text]
    sandboxed, unboxed = graded[0]["malicious"][0], graded[0]["malicious, no sandbox"][0]
    if sandbox_status():  # bubblewrap cannot run here: the output says so (CI installs it: the other branch)
        assert "Sandbox: not available in this container" in sandboxed["output"]
    else:
        assert "Sandbox: on" in sandboxed["output"]
        assert all(t["output"].rstrip().endswith("RuntimeError: LEAK") for t in sandboxed["tests"]), \
            "the sandbox hides the bundle's notebooks: the submission read nothing"
    # without the sandbox the output says so; the code read the grading copy, which holds no solution
    assert "Sandbox: off" in unboxed["output"]
    assert all("LEAK" in t["output"] and "BEGIN HIDDEN TESTS" in t["output"] for t in unboxed["tests"])


@pytest.mark.slow
def test_timings_are_recorded(graded):
    """Wall time of each run_autograder (a fresh process: imports and both kernels' starts included)."""
    found, _ = graded
    times = {who: round(seconds, 1) for who, (_, seconds) in found.items()}
    print(f"run_autograder wall times (s): {times}")
    for who, (result, _) in found.items():
        print(f"--- {who}: score {result['score']}\n{result['output']}")
        for t in result["tests"]:
            print(f"  {t['name']}: {t['score']:g}/{t['max_score']:g} {t['output'][:200]}")
    assert all(0 < t < 600 for t in times.values())
