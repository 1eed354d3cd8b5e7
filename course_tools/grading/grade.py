"""Grade one submitted notebook against its source notebook.

What runs is built from the *source*: every locked and test cell comes from it (hidden
tests included, plus an instructor's extra tests), so an edited or deleted test cell
changes nothing but a note in the gradebook. The learner's solution cells are matched by
``grade_id`` (or, where the nbgrader metadata was lost, by the function they define, and the
feedback says so: :func:`match`), and cells the learner added are kept after the cell they
followed. Another course notebook handed in under this one's name is named, not run
(:func:`looks_like`). What a test cell writes to stderr (warnings) is reported, not scored,
unless ``Limits.strict_stderr`` (nbgrader's rule); time limits may come from the source's
measured cells (:mod:`.timing`).

Run as a module, it grades one job in its own process (the orchestrator's worker)::

    python -m course_tools.grading.grade JOB.json RESULT.json
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .cells import NotebookFormatError, grade_id, is_grade, is_locked, is_solution, points
from .clean_kernel import RECORDING, _python, clean_run, learner_run, source_imports
from .executor import CellResult, Kernel, Limits, run_cells
from .release import SOURCE_DIR, SUMMARY_ID, student_version
from .replay import MARKER as REPLAY_MARKER
from .timing import cell_limit, limits_note, notebook_limit


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


def _defines(source: str) -> set[str]:
    """Names of the functions and classes a cell defines at its top level."""
    tree = _python(source)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name for node in tree.body if isinstance(node, kinds)} if tree is not None else set()


def _released_cells(source: NotebookNode) -> list[NotebookNode]:
    """The student version's cells, one per source cell (the exercise summary left out)."""
    return [c for c in student_version(source).cells if c.get("id") != SUMMARY_ID]


def match(source: NotebookNode, submission: NotebookNode) -> tuple[dict[int, int], list[tuple[str, str, str]]]:
    """Which source cell each submission cell stands for (submission index -> source index); notes.

    By grade_id, else by cell id. Where the nbgrader metadata was lost (the notebook copied into a new
    one: nbgrader #1398, #424), a source cell found by neither is matched by text (its source's or its
    student version's), and a solution cell by the function or class it defines, the learner's last
    cell that defines it. Notes: (exercise, status, message).
    """
    released = _released_cells(source)
    by_gid = {grade_id(c): i for i, c in enumerate(source.cells) if grade_id(c)}
    by_id = {c.get("id"): i for i, c in enumerate(source.cells) if c.get("id")}
    found: dict[int, int] = {}
    for j, cell in enumerate(submission.cells):
        if grade_id(cell) in by_gid:
            found[j] = by_gid[grade_id(cell)]
        elif cell.get("id") in by_id:
            found[j] = by_id[cell.get("id")]
    by_text: dict[str, int] = {}
    for i, cell in enumerate(source.cells):
        if i not in found.values() and not is_solution(cell):
            for text in (cell.source.strip(), released[i].source.strip()):
                if text:
                    by_text.setdefault(text, i)
    for j, cell in enumerate(submission.cells):
        if j not in found and by_text.get(cell.source.strip()) not in (None, *found.values()):
            found[j] = by_text[cell.source.strip()]
    notes = []
    for i, cell in enumerate(source.cells):
        names = _defines(cell.source) if is_solution(cell) and cell.cell_type == "code" else set()
        if not names or i in found.values():
            continue
        candidates = [j for j, c in enumerate(submission.cells) if j not in found and c.cell_type == "code"
                      and not is_locked(c) and names & _defines(c.source)]
        if candidates:
            found[candidates[-1]] = i
            what = ", ".join(f"{n}()" for n in sorted(names & _defines(submission.cells[candidates[-1]].source)))
            notes.append((grade_id(cell), "matched by name",
                          f"the answer cell '{grade_id(cell)}' had lost its grader metadata (was the notebook copied "
                          f"into a new one?); your cell that defines {what} was graded as its answer"))
    return found, notes


def plan(source: NotebookNode, submission: NotebookNode, extra_tests: dict[str, str]):
    """The cells to run; (index, grade_id, points) of each test; indexes of solution cells; notes
    (exercise, status, message); the source index each planned cell comes from (None: the learner's own).

    A solution cell runs the learner's answer, or the student version's stub where it is missing,
    never the source's model answer.
    """
    released = _released_cells(source)
    found, notes = match(source, submission)
    mine_of = {i: submission.cells[j] for j, i in sorted(found.items())}

    # Cells the learner added, keyed by the source cell they follow (None: before any).
    added: dict[int | None, list[NotebookNode]] = {}
    anchor = None
    for j, cell in enumerate(submission.cells):
        if j in found:
            anchor = found[j]
        elif cell.cell_type == "code" and not is_locked(cell):
            added.setdefault(anchor, []).append(nbformat.v4.new_code_cell(cell.source))

    cells, tests, solutions = list(added.get(None, [])), [], []
    origin: list[int | None] = [None] * len(cells)
    for i, cell in enumerate(source.cells):
        gid = grade_id(cell)
        mine = mine_of.get(i)
        if is_solution(cell):
            if mine is None:
                notes.append(("integrity", "missing",
                              f"solution cell '{gid}' is missing from the submission; the empty stub was run"))
                mine = released[i]
            solutions.append(len(cells))
            new = nbformat.v4.new_code_cell if cell.cell_type == "code" else nbformat.v4.new_markdown_cell
            cells.append(new(mine.source))  # the learner's text or the stub: never the model answer
        else:
            if is_locked(cell) or is_grade(cell):
                if mine is None:
                    notes.append(("integrity", "tampered", f"locked cell '{gid}' was deleted; it was restored "
                                                            "from the source"))
                elif mine.source.strip() not in (released[i].source.strip(), cell.source.strip()):
                    notes.append(("integrity", "tampered", f"locked cell '{gid}' was edited; the original was run"))
            run = nbformat.v4.new_code_cell(cell.source) if cell.cell_type == "code" else cell
            if is_grade(cell):
                if gid in extra_tests:
                    run.source += "\n\n# extra tests from the instructor\n" + extra_tests[gid]
                tests.append((len(cells), gid, points(cell)))
            cells.append(run)
        origin.append(i)
        cells.extend(added.get(i, []))
        origin += [None] * len(added.get(i, []))
    return cells, tests, solutions, notes, origin


def credit(result: CellResult, max_points: float, strict_stderr: bool = False) -> tuple[float, str, str]:
    """(points, status, message) for a test cell that ran without an error, by nbgrader's rules.

    nbgrader reads a number shown by a test cell's last line as partial credit (between 0 and the
    cell's points); anything else earns full marks. It also gives no credit to a test cell that
    wrote to stderr: one library's deprecation warning would zero a class, so here what reached
    stderr is reported in the feedback, and scored only with ``strict_stderr`` (``--strict-stderr``).
    """
    warned = ""
    if result.stderr.strip():
        first = result.stderr.strip().splitlines()[0]
        if strict_stderr:
            return 0, "failed", f"the test cell wrote to stderr (no credit, as in nbgrader): {first}"
        warned = f"the test cell wrote to stderr (reported, not scored): {first}"
    try:
        value = float(result.value) if result.value is not None else None
    except ValueError:
        value = None
    if value is None or value < 0:
        return max_points, "passed", warned
    if value > max_points:
        return 0, "error", _join(f"the test cell showed {value:g}, more than its {max_points:g} points", warned)
    return value, "passed" if value == max_points else "partial", _join(
        f"partial credit shown by the test cell: {value:g}", warned)


def describe_failure(result: CellResult, limits: Limits | None = None) -> str:
    if "NotImplementedError" in result.message:
        return "not attempted: the solution still raises NotImplementedError"
    if "BlockingIOError" in result.message and "Resource temporarily unavailable" in result.message:
        cap = f" ({limits.max_processes}, threads included)" if limits is not None else ""
        return (f"your code started more processes or threads than the grader allows{cap}, and the next one "
                f"was refused: {result.message}")
    if result.status == "timeout" and limits is not None and limits.time_factor > 0:
        return f"{result.message} ({limits_note(limits)})"
    return result.message or result.status


def _not_graded(student: str, name: str, expected: list[tuple[str, float]], status: str, message: str,
                why: str) -> list[Row]:
    return [Row(student, name, "notebook", 0, 0, status, message)] + [
        Row(student, name, gid, 0, pts, "not graded", why) for gid, pts in expected]


def grade_submission(student: str, submission_path: Path, source_path: Path, limits: Limits,
                     extra_tests: dict[str, str] | None = None, hide: list[str] | None = None) -> list[Row]:
    """Every gradebook row for one submission. Never raises for a bad submission.

    The learner's kernel runs the plan and records what each test cell gets from the
    learner's code; a clean kernel, where no learner code runs, replays that and decides each
    test (:mod:`.replay`). Where an answer cannot cross, the learner's kernel decides from its
    execute reply, and the row says so. A submission that is another course notebook is not
    run: its rows name the notebook it looks like (:func:`looks_like`).
    """
    source = nbformat.read(source_path, as_version=4)
    name = source_path.name
    expected = exercises(source)
    try:
        submission = read_submission(submission_path)
    except SubmissionError as err:
        return _not_graded(student, name, expected, "error", f"{submission_path.name}: {err}",
                           "the submission could not be read")
    other = looks_like(submission, source, source_path)
    if other:
        return _not_graded(student, name, expected, "wrong notebook",
                           f"this looks like notebook {other}, not {name}: was the wrong file handed in? "
                           f"Grade it with --source {other} if that is the assignment", f"the submission is {other}")
    try:
        cells, tests, solutions, notes, origin = plan(source, submission, extra_tests or {})
    except NotebookFormatError as err:
        return _not_graded(student, name, expected, "error", f"the source notebook cannot be graded: {err}",
                           "the source notebook cannot be graded")
    test_rows = [index for index, _, _ in tests]
    setup, protected = source_imports(source)
    hidden = [Path(p) for p in hide or []]
    measured = limits.measured.get(str(source_path.resolve())) if limits.time_factor > 0 else None
    if measured is not None and len(measured) != len(source.cells):
        measured = None  # the source changed since it was measured: the fixed limits
    if measured is not None:  # time limits from the source's measured cells (timing.py)
        limits = replace(limits, notebook_timeout=notebook_limit(measured, limits))
        own = [cell_limit(None if i is None else measured[i], limits, measured) for i in origin]
    with tempfile.TemporaryDirectory(prefix="grade-learner-") as learner_dir, \
            tempfile.TemporaryDirectory(prefix="grade-clean-") as clean_dir:
        learner = learner_run(cells, test_rows, protected)
        clean = clean_run(cells, test_rows, setup, protected)
        learner_limits = clean_limits = None
        if measured is not None:
            learner_limits = [limits.time_floor] * len(learner.cells)  # the recording cells
            for index, position in enumerate(_plan_positions(cells, learner)):
                learner_limits[position] = own[index]
            clean_limits = [limits.time_floor] * len(clean.cells)  # the bind cells
            clean_limits[0] = cell_limit(None, limits, measured)  # the source's imports
            for index in test_rows:
                clean_limits[clean.position[index]] = own[index]
        # The clean kernel boots and imports the source's modules while the learner's kernel runs.
        with Kernel(limits, Path(clean_dir), hidden + [Path(learner_dir), submission_path.resolve().parent]) \
                as clean_kernel:
            clean_kernel.warm_up(setup)
            ran = run_cells(learner.cells, limits, replay=learner.replay, workdir=Path(learner_dir),
                            hide=hidden + [Path(clean_dir)], timeouts=learner_limits)
            results = [ran[i] for i in _plan_positions(cells, learner)]
            for index in test_rows:  # recordings cross as files the grader copies, never as objects
                recording = Path(learner_dir) / RECORDING.format(index)
                if recording.is_file() and recording.stat().st_size <= MAX_RECORDING_BYTES:
                    shutil.copy(recording, Path(clean_dir) / recording.name)
            checked = clean_kernel.run(clean.cells, clean.replay, clean_limits)
    rows = []
    for index, gid, pts in tests:
        result = _verdict(results[index], checked[clean.bind[index]], checked[clean.position[index]])
        answer = max((i for i in solutions if i < index), default=None)
        if result.status != "ok" and answer is not None and results[answer].status in ("timeout", "kernel died"):
            result = CellResult(results[answer].status, "your solution cell: " + results[answer].message)
        if result.status == "ok":
            got, status, message = credit(result, pts, limits.strict_stderr)
            rows.append(Row(student, name, gid, got, pts, status, _join(message, result.message)))
        else:
            status = "failed" if result.status == "error" else result.status
            rows.append(Row(student, name, gid, 0, pts, status, describe_failure(result, limits)))
    others = [i for i in range(len(cells)) if i not in test_rows and i not in solutions
              and results[i].status not in ("ok", "not run")]
    if others:
        first = results[others[0]]
        rows.append(Row(student, name, "notebook", 0, 0, "cell errors",
                        f"{len(others)} ungraded cell(s) failed; the first: {describe_failure(first, limits)}"))
    for kind in ("tampered", "missing", "matched by name"):
        rows += [Row(student, name, exercise, 0, 0, status, note) for exercise, status, note in notes if status == kind]
    return rows


def _signature(nb: NotebookNode) -> tuple[set[str], set[str]]:
    """(grade_ids and cell ids, texts of its cells and of its student version's) of a notebook."""
    try:
        released = student_version(nb).cells
    except NotebookFormatError:
        released = []
    keys = {grade_id(c) for c in nb.cells if grade_id(c)} | {c.get("id") for c in nb.cells if c.get("id")}
    texts = {c.source.strip() for c in [*nb.cells, *released] if c.source.strip()}
    return keys - {SUMMARY_ID}, texts


def _overlap(submission: NotebookNode, signature: tuple[set[str], set[str]]) -> int:
    """How many of the submission's cells a notebook with ``signature`` has (by grade_id, id or text)."""
    keys, texts = signature
    return sum(1 for c in submission.cells if c.source.strip() and (
        grade_id(c) in keys or c.get("id") in keys or c.source.strip() in texts))


def looks_like(submission: NotebookNode, source: NotebookNode, source_path: Path) -> str | None:
    """The name of the course notebook the submission is, where it is plainly another one than the source.

    Only where fewer than half of the submission's cells are the source's: then the notebooks beside
    the source and in ``notebooks/`` are compared, and one that holds more of its cells than the
    source does, and at least half, is named.
    """
    cells = sum(1 for c in submission.cells if c.source.strip())
    mine = _overlap(submission, _signature(source))
    if not cells or 2 * mine >= cells:
        return None
    best, name = mine, None
    for path in sorted({*source_path.resolve().parent.glob("*.ipynb"), *SOURCE_DIR.glob("*.ipynb")}):
        if path.resolve() == source_path.resolve() or path.name == source_path.name:
            continue
        try:
            other = nbformat.read(path, as_version=4)
        except Exception:  # not a notebook: not a candidate
            continue
        score = _overlap(submission, _signature(other))
        if score > best and 2 * score >= cells:
            best, name = score, path.name
    return name


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
