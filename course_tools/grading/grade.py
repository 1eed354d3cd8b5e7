"""Grade one submitted notebook against its source notebook.

What runs is built from the *source*: every locked and test cell comes from it (hidden
tests included, plus an instructor's extra tests), so an edited or deleted test cell
changes nothing but a note in the gradebook. The learner's solution cells are matched by
``grade_id``, and cells the learner added are kept after the cell they followed.

Run as a module, it grades one job in its own process (the orchestrator's worker)::

    python -m course_tools.grading.grade JOB.json RESULT.json
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cells import grade_id, is_grade, is_locked, is_solution, points
from .clean_kernel import RECORDING, clean_run, learner_run, source_imports
from .executor import CellResult, Kernel, Limits, run_cells
from .release import student_version
from .replay import MARKER as REPLAY_MARKER


@dataclass
class Row:
    """One line of the gradebook."""

    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    status: str  # passed, partial, failed, timeout, kernel died, not run, not graded, tampered, error
    message: str = ""


class SubmissionError(ValueError):
    """The submitted file is not a notebook we can grade; the message says why."""


def read_submission(path: Path) -> NotebookNode:
    """Parse and validate a submitted notebook, or raise SubmissionError with a clear reason."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise SubmissionError("the file is not text (is it really a .ipynb notebook?)") from None
    except json.JSONDecodeError as err:
        raise SubmissionError(f"the file is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                              "it may be truncated or edited by hand") from None
    if not isinstance(raw, dict) or "cells" not in raw:
        raise SubmissionError("the notebook has no list of cells")
    if raw.get("nbformat") != 4:
        raise SubmissionError(f"nbformat {raw.get('nbformat')!r} is not supported; open and save it in JupyterLab "
                              "to convert it to nbformat 4")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        raise SubmissionError(f"the notebook is malformed: {err.message}") from None
    return nb


def exercises(source: NotebookNode) -> list[tuple[str, float]]:
    """(grade_id, points) of every test cell, in notebook order."""
    return [(grade_id(c), points(c)) for c in source.cells if is_grade(c)]


def plan(source: NotebookNode, submission: NotebookNode, extra_tests: dict[str, str]):
    """The cells to run; (index, grade_id, points) of each test; indexes of solution cells; notes."""
    released = {grade_id(c): c for c in student_version(source).cells if grade_id(c)}
    source_ids = {c.get("id") for c in source.cells if c.get("id")}
    source_gids = {grade_id(c) for c in source.cells if grade_id(c)}
    by_gid = {grade_id(c): c for c in submission.cells if grade_id(c)}

    # Cells the learner added, keyed by the source cell they follow (None: before any).
    added: dict[str | None, list[NotebookNode]] = {}
    anchor = None
    for cell in submission.cells:
        if cell.get("id") in source_ids or grade_id(cell) in source_gids:
            anchor = grade_id(cell) if grade_id(cell) in source_gids else cell.get("id")
        elif cell.cell_type == "code" and not is_locked(cell):
            added.setdefault(anchor, []).append(nbformat.v4.new_code_cell(cell.source))

    cells, tests, solutions, notes = list(added.get(None, [])), [], [], []
    for cell in source.cells:
        gid = grade_id(cell)
        if is_solution(cell):
            mine = by_gid.get(gid)
            if mine is None:
                notes.append(f"solution cell '{gid}' is missing from the submission; the empty stub was run")
                mine = released[gid]
            solutions.append(len(cells))
            cells.append(nbformat.v4.new_code_cell(mine.source) if cell.cell_type == "code" else cell)
        else:
            if is_locked(cell) or is_grade(cell):
                mine = by_gid.get(gid)
                if mine is None:
                    notes.append(f"locked cell '{gid}' was deleted; it was restored from the source")
                elif mine.source.strip() not in (released[gid].source.strip(), cell.source.strip()):
                    notes.append(f"locked cell '{gid}' was edited; the original was run")
            run = nbformat.v4.new_code_cell(cell.source) if cell.cell_type == "code" else cell
            if is_grade(cell):
                if gid in extra_tests:
                    run.source += "\n\n# extra tests from the instructor\n" + extra_tests[gid]
                tests.append((len(cells), gid, points(cell)))
            cells.append(run)
        key = gid if gid in source_gids else cell.get("id")
        cells.extend(added.get(key, []))
    return cells, tests, solutions, notes


def credit(result: CellResult, max_points: float) -> tuple[float, str, str]:
    """(points, status, message) for a test cell that ran without an error, by nbgrader's rules.

    nbgrader gives no credit to a test cell that wrote to stderr, and reads a number shown by
    its last line as partial credit (between 0 and the cell's points); anything else earns
    full marks. The course grader scores the same way, so both tools agree.
    """
    if result.stderr.strip():
        first = result.stderr.strip().splitlines()[0]
        return 0, "failed", f"the test cell wrote to stderr (nbgrader gives no credit for that): {first}"
    try:
        value = float(result.value) if result.value is not None else None
    except ValueError:
        value = None
    if value is None or value < 0:
        return max_points, "passed", ""
    if value > max_points:
        return 0, "error", f"the test cell showed {value:g}, more than its {max_points:g} points"
    return value, "passed" if value == max_points else "partial", f"partial credit shown by the test cell: {value:g}"


def describe_failure(result: CellResult) -> str:
    if "NotImplementedError" in result.message:
        return "not attempted: the solution still raises NotImplementedError"
    return result.message or result.status


def grade_submission(student: str, submission_path: Path, source_path: Path, limits: Limits,
                     extra_tests: dict[str, str] | None = None, hide: list[str] | None = None) -> list[Row]:
    """Every gradebook row for one submission. Never raises for a bad submission.

    The learner's kernel runs the plan and records what each test cell gets from the
    learner's code; a clean kernel, where no learner code runs, replays that and decides each
    test (:mod:`.replay`). Where an answer cannot cross, the learner's kernel decides from its
    execute reply, and the row says so.
    """
    source = nbformat.read(source_path, as_version=4)
    name = source_path.name
    expected = exercises(source)
    try:
        submission = read_submission(submission_path)
    except SubmissionError as err:
        return [Row(student, name, "notebook", 0, 0, "error", f"{submission_path.name}: {err}")] + [
            Row(student, name, gid, 0, pts, "not graded", "the submission could not be read") for gid, pts in expected]
    cells, tests, solutions, notes = plan(source, submission, extra_tests or {})
    test_rows = [index for index, _, _ in tests]
    setup, protected = source_imports(source)
    hidden = [Path(p) for p in hide or []]
    with tempfile.TemporaryDirectory(prefix="grade-learner-") as learner_dir, \
            tempfile.TemporaryDirectory(prefix="grade-clean-") as clean_dir:
        learner = learner_run(cells, test_rows, protected)
        clean = clean_run(cells, test_rows, setup, protected)
        # The clean kernel boots and imports the source's modules while the learner's kernel runs.
        with Kernel(limits, Path(clean_dir), hidden + [Path(learner_dir), submission_path.resolve().parent]) \
                as clean_kernel:
            clean_kernel.warm_up(setup)
            ran = run_cells(learner.cells, limits, replay=learner.replay, workdir=Path(learner_dir),
                            hide=hidden + [Path(clean_dir)])
            results = [ran[i] for i in _plan_positions(cells, learner)]
            for index in test_rows:  # recordings cross as files the grader copies, never as objects
                recording = Path(learner_dir) / RECORDING.format(index)
                if recording.is_file() and recording.stat().st_size <= MAX_RECORDING_BYTES:
                    shutil.copy(recording, Path(clean_dir) / recording.name)
            checked = clean_kernel.run(clean.cells, clean.replay)
    rows = []
    for index, gid, pts in tests:
        result = _verdict(results[index], checked[clean.bind[index]], checked[clean.position[index]])
        answer = max((i for i in solutions if i < index), default=None)
        if result.status != "ok" and answer is not None and results[answer].status in ("timeout", "kernel died"):
            result = CellResult(results[answer].status, "your solution cell: " + results[answer].message)
        if result.status == "ok":
            got, status, message = credit(result, pts)
            rows.append(Row(student, name, gid, got, pts, status, _join(message, result.message)))
        else:
            status = "failed" if result.status == "error" else result.status
            rows.append(Row(student, name, gid, 0, pts, status, describe_failure(result)))
    others = [i for i in range(len(cells)) if i not in test_rows and i not in solutions
              and results[i].status not in ("ok", "not run")]
    if others:
        first = results[others[0]]
        rows.append(Row(student, name, "notebook", 0, 0, "cell errors",
                        f"{len(others)} ungraded cell(s) failed; the first: {first.message or first.status}"))
    rows += [Row(student, name, "integrity", 0, 0, "tampered", note) for note in notes if "locked" in note]
    rows += [Row(student, name, "integrity", 0, 0, "missing", note) for note in notes if "solution" in note]
    return rows


MAX_RECORDING_BYTES = 64 * 2**20  # a recording larger than this is not replayed (the learner's kernel decides)
LEARNER_KERNEL_NOTE = "graded in your own kernel, from its execute reply: {}"


def _plan_positions(cells: list[NotebookNode], learner) -> list[int]:
    """Index in the learner's run of each planned cell."""
    positions, shift = [], 0
    for index in range(len(cells)):
        if index in learner.position:
            shift += 1  # the recording cell before it
        positions.append(index + shift)
        if index in learner.position:
            shift += 1  # the saving cell after it
    return positions


def _verdict(learner: CellResult, bind: CellResult, clean: CellResult) -> CellResult:
    """The clean kernel's result for a test cell; the learner's kernel's where replay was impossible."""
    if learner.status in ("timeout", "kernel died", "not run"):
        return learner  # nothing (complete) was recorded: the learner's kernel's own verdict
    why = next((r.message for r in (bind, clean) if r.status == "error" and REPLAY_MARKER in r.message), None)
    if why is None and bind.status != "ok":
        why = f"the clean kernel could not start this test ({bind.message or bind.status})"
    if why is None:  # what the learner's code wrote to stderr counts too (nbgrader's rule: no credit then)
        return CellResult(clean.status, clean.message, _join_lines(learner.stderr, clean.stderr), clean.value)
    reason = why.replace(REPLAY_MARKER, "").removeprefix("ReplayError:").strip()
    note = LEARNER_KERNEL_NOTE.format(reason)
    return CellResult(learner.status, _join(learner.message, note), learner.stderr, learner.value) \
        if learner.status != "ok" else CellResult("ok", note, learner.stderr, learner.value)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _join_lines(*parts: str) -> str:
    return "\n".join(p.strip() for p in parts if p and p.strip())


def main(job_path: str, result_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    rows = grade_submission(job["student"], Path(job["submission"]), Path(job["source"]),
                            Limits(**job["limits"]), job.get("extra_tests") or {}, job.get("hide"))
    Path(result_path).write_text(json.dumps([asdict(r) for r in rows]))


if __name__ == "__main__":
    main(*sys.argv[1:3])
