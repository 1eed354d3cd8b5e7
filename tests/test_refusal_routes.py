"""No exercise passes by reaching the course's own implementation, however it is reached.

Every check that calls ``refuse_reference`` is found in ``course_utils`` (and 00's softmax check); for each reference it
names that the library defines, a learner's function reaches it by three routes the names in its code do not show —
an alias bound in the notebook, ``importlib``, ``getattr`` on the module — and the check must refuse it as reaching
that implementation.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import nbformat
import pytest

import course_utils
from course_tools.grading.cells import grade_id, is_grade
from course_utils import CheckFailed


def _library_modules() -> dict[str, object]:
    found = {}
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        if not info.name.startswith("course_utils.exercises"):
            found[info.name] = importlib.import_module(info.name)
    return found


def _checks_with_references() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(module, check, references)`` for every check that refuses references, read from the source."""
    modules = ["course_utils.core.checks"] + [f"course_utils.exercises.{m.name}"
                                               for m in pkgutil.iter_modules(importlib.import_module(
                                                   "course_utils.exercises").__path__)]
    found = []
    for name in modules:
        tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("check_"):
                continue
            for call in ast.walk(node):
                if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "refuse_reference":
                    found.append((name, node.name, tuple(ast.literal_eval(call.args[1]))))
    return found


def _course_reference(references: tuple[str, ...], library: dict[str, object]) -> tuple[str, str] | None:
    """The first reference the course's library defines itself (not merely imports): ``(module, name)``."""
    for ref in references:
        for module_name, module in library.items():
            obj = getattr(module, ref, None)
            if callable(obj) and getattr(obj, "__module__", None) == module_name:
                return module_name, ref
    return None


LIBRARY = _library_modules()
CASES = [(m, check, ref) for m, check, refs in _checks_with_references()
         if (ref := _course_reference(refs, LIBRARY)) is not None]


def test_every_refusing_check_is_walked():
    assert len(CASES) >= 30, CASES  # the course's exercises with a reference in the library
    assert {check for _, check, _ in CASES} >= {"check_rnn_cell", "check_lstm_cell", "check_spell", "check_sample_next"}


def _fitted(target, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The arguments as a learner delegating to ``target`` would pass them: as given, or the first that fit."""
    signature = inspect.signature(target)
    try:
        signature.bind(*args, **kwargs)
        return args, kwargs
    except TypeError:
        kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        positional = [p for p in signature.parameters.values() if p.kind in kinds]
        return args[: len(positional)], {}


def _routes(module_name: str, ref: str) -> dict:
    """A learner's function that reaches the reference by each route, its names hiding which function it calls."""
    step = getattr(importlib.import_module(module_name), ref)  # `from course_utils.x import ref as step`
    finders = {"alias": lambda: step,
               "importlib": lambda: getattr(importlib.import_module(module_name), ref),
               "getattr": lambda: getattr(LIBRARY[module_name], ref)}

    def through(find):
        def learner(*args, **kwargs):
            found = find()
            args, kwargs = _fitted(found, args, kwargs)
            return found(*args, **kwargs)
        return learner

    return {route: through(find) for route, find in finders.items()}


@pytest.mark.parametrize(("module", "check", "reference"), CASES, ids=[f"{c}-{r[1]}" for _, c, r in CASES])
@pytest.mark.parametrize("route", ["alias", "importlib", "getattr"])
def test_each_route_to_the_reference_is_refused(module, check, reference, route):
    learner = _routes(*reference)[route]
    with pytest.raises(CheckFailed, match=rf"reaches {re.escape(reference[0])}\.\w+, an existing implementation"):
        check_fn = getattr(importlib.import_module(module), check)
        functions = [p for p in inspect.signature(check_fn).parameters.values() if p.default is p.empty]
        check_fn(*[learner] * len(functions))  # the learner's function for each it takes (split and merge)


NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_graded_test_refuses_the_reference(notebook):
    """A test cell hands the learner's function to a course check (which refuses references) or calls it only
    through ``refuse_reference``; a learner's function called bare could delegate to the course's own."""
    bare = []
    for cell in (c for c in nbformat.read(notebook, as_version=4).cells if is_grade(c)):
        body = cell.source
        wrapped = set(re.findall(r"(my_\w+) = refuse_reference\(", body))
        checked = set(re.findall(r"\bcheck_\w+\((my_\w+)[,)]", body))
        called = set(re.findall(r"(?<![\"'\w])(my_\w+)\(", body))
        configs = {name for name in called if re.search(rf"\bcheck_\w+\({name}\(\)", body)}  # a setting, no code
        bare += [f"{name} in {grade_id(cell)}" for name in called - wrapped - checked - configs]
    assert not bare, f"call these through refuse_reference or a course check: {bare}"
