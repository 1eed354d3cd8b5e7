"""No challenge's answer is shown to the learner: no student version shows all of a solution's values together.

For each outcome-graded exercise (a test cell calls ``check_...(my_...())``), the solution's setting is read
from the source notebook's solution cell. Every other cell of the student version (code, markdown, and
the outputs a student version keeps) is scanned in windows of a few lines; a window that holds every value
of the setting (numbers compared as numbers, so ``1e-2`` matches ``0.01``) gives the answer away.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.cells import grade_id

REPO = Path(__file__).resolve().parent.parent
WINDOW = 12  # lines
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w.])")


# The challenges whose answer is a change to a given (broken) config: what must not be shown is the fixed config.
FIXED_FROM = {"my_tagger_fix": ("course_utils.exercises.output_types", "BROKEN_TAGGER"),
              "my_classifier_diagnosis": ("course_utils.exercises.output_types", "BROKEN_CLASSIFIER"),
              "my_seq2seq_diagnosis": ("course_utils.exercises.attention", "BROKEN_SEQ2SEQ"),
              "my_decoder_diagnosis": ("course_utils.exercises.seq2seq_transformer", "BROKEN_DECODER")}


def challenge_solutions(source: str) -> dict[str, dict]:
    """``{function: setting}`` for each challenge whose solution returns a literal dict (for a fix of a given
    config, the fixed config)."""
    found = {}
    for name in re.findall(r"\bcheck_\w+\((my_\w+)\(\)", source):
        match = re.search(rf"def {name}\(.*?### BEGIN SOLUTION\n(.*?)### END SOLUTION", source, re.S)
        if match:
            body = match[1].strip()
            if body.startswith("return {"):
                found[name] = ast.literal_eval(body.removeprefix("return "))
            if name in FIXED_FROM:
                module, broken = FIXED_FROM[name]
                change = found[name].get("change", found[name])
                found[name] = {**getattr(importlib.import_module(module), broken), **change}
    return found


def _tokens(value) -> set:
    if isinstance(value, bool) or isinstance(value, str):
        return {str(value)}
    if isinstance(value, (int, float)):
        return {float(value)}
    return set()


# Symbols the notebooks write for a setting's key, besides the words of the key itself.
ALIASES = {"temperature": {"T", "tau"}, "hidden_size": {"H", "HIDDEN"}, "forget_bias": {"b_f"}, "update_bias": {"b_z"},
           "peak_lr": {"eta", "rate"}, "warmup_steps": {"W", "warm"}, "lr": {"LR", "rate"}}


def _key_words(key: str) -> set[str]:
    return set(key.split("_")) | {key} | ALIASES.get(key, set())


def window_shows(lines: list[str], setting: dict) -> bool:
    """True when every value of ``setting`` is in the window; a commonplace number (-2 .. 2, whole) counts only
    with a word of its key beside it (so that a ``round(2)`` is not taken for a forget bias of 2)."""
    text = "\n".join(lines)
    numbers = {float(n) for n in NUMBER.findall(text)}
    words = set(re.findall(r"[A-Za-z_]+", text)) | set(re.findall(r"[A-Za-z]+", text))
    for key, value in setting.items():
        wanted = _tokens(value)
        if not wanted:
            continue
        if not any((t in numbers) if isinstance(t, float) else (t in words) for t in wanted):
            return False
        commonplace = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) in range(-2, 3)
        if commonplace and not words & _key_words(key):
            return False
    return True


def test_the_scan_finds_a_shown_answer_and_passes_over_chance_numbers():
    setting = {"temperature": 1.0, "top_k": 12}
    assert window_shows(["a cut of the tail ($k = 12$) at $T = 1$ meets both targets"], setting)
    assert not window_shows(["x.round(2) and 12 rows"], {"forget_bias": 2.0, "rows": 12})
    assert window_shows(["forget bias 2 and 12 rows"], {"forget_bias": 2.0, "rows": 12})


def student_windows(path: Path, skip: set[str]):
    for cell in nbformat.read(path, as_version=4).cells:
        if grade_id(cell) in skip:
            continue
        texts = [cell.source]
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
        for text in texts:
            lines = text.splitlines()
            for start in range(max(1, len(lines) - WINDOW + 1)):
                yield grade_id(cell) or cell.get("id", "?"), lines[start:start + WINDOW]


SOURCES = sorted((REPO / "notebooks" / "py").glob("[0-9][0-9]*_*.py"))


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_no_student_version_shows_a_challenge_s_answer(source):
    solutions = challenge_solutions(source.read_text(encoding="utf-8"))
    student = REPO / "student" / f"{source.stem}.ipynb"
    shown = []
    for name, setting in solutions.items():
        skip = {name.removeprefix("my_")}  # the exercise's own (stubbed) solution cell
        for where, lines in student_windows(student, skip):
            if window_shows(lines, setting):
                shown.append(f"{name} {setting} in {where}: {' | '.join(lines)[:200]}")
                break
    assert not shown, "a student version shows a challenge's answer:\n" + "\n".join(shown)


# Issue 29, item 2: the settings a notebook shows before a configuration challenge, combined, do not pass it.
from course_tools.grading.shown import SHOWN, graded_seeds, source_before_exercise, verdicts  # noqa: E402


@pytest.mark.parametrize("spec", SHOWN, ids=lambda s: s.notebook)
def test_the_shown_settings_listed_are_those_the_notebook_shows(spec):
    """Fast guard: each listed line is in the notebook before the exercise, so that a notebook that starts showing
    other values fails here until :data:`course_tools.grading.shown.SHOWN` (and the slow test's run) follow."""
    before = source_before_exercise(spec.notebook, spec.grade_id)
    missing = [line for line in spec.lines if line not in before]
    assert not missing, f"{spec.notebook}: no longer shown before {spec.grade_id}: {missing}"


@pytest.mark.parametrize("spec", SHOWN, ids=lambda s: s.notebook)
def test_each_challenge_is_graded_on_three_seeds(spec):
    assert len(set(graded_seeds(spec.notebook, spec.grade_id))) >= 3  # a visible seed and at least two hidden ones


@pytest.mark.slow
@pytest.mark.parametrize("spec", SHOWN, ids=lambda s: s.notebook)
def test_no_combination_of_shown_settings_passes_the_challenge(spec):
    passing = {}
    for answer in spec.combinations:
        got = verdicts(spec, answer)
        if all(got.values()):
            passing[repr(answer)] = got
    assert not passing, f"{spec.notebook} {spec.grade_id}: shown settings pass on every graded seed: {passing}"


@pytest.mark.slow
@pytest.mark.parametrize("spec", SHOWN, ids=lambda s: s.notebook)
def test_the_idea_less_setting_fails_on_every_graded_seed(spec):
    got = verdicts(spec, spec.idea_less)
    assert not any(got.values()), f"{spec.notebook} {spec.grade_id}: {spec.idea_less!r} passes seeds {got}"
