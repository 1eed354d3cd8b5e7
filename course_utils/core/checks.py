"""Every notebook's graded test cells: checks that tell a learner what is wrong, not just that something is.

Visible test cells in the notebooks call these. Each check compares concrete values
(numpy arrays or torch tensors, moved to the CPU) with a tolerance that depends on the
dtype and device, verifies types first, and raises :class:`CheckFailed` with a message
naming the shape, dtype, or the part and index that is off, and by how much.

An object whose ``__eq__`` always says True does not pass: nothing here uses ``==`` on
the learner's value; values are converted to numeric arrays and compared element-wise.
"""

from __future__ import annotations

import builtins
import dis
import functools
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .shapes import shape_matches, shape_message

ArrayLike = Any  # np.ndarray | torch.Tensor


class CheckFailed(AssertionError):
    """Raised by a check; the message says what is wrong."""


# (rtol, atol) by dtype, for values computed the same way on the same device.
_TOLERANCES = {
    np.dtype("float64"): (1e-7, 1e-9),
    np.dtype("float32"): (1e-5, 1e-6),
    np.dtype("float16"): (1e-2, 1e-3),
}
_BFLOAT16 = (2e-2, 1e-2)


def tolerance(dtype: np.dtype | torch.dtype, device: str | torch.device = "cpu") -> tuple[float, float]:
    """``(rtol, atol)`` for comparing a result of this dtype, computed on this device.

    GPU kernels sum in different orders (and may use TF32), so they get ten times looser
    tolerances than the CPU; half precision is looser still.
    """
    if dtype == torch.bfloat16:
        rtol, atol = _BFLOAT16
    else:
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype if isinstance(dtype, torch.dtype) else np.dtype(dtype)
        rtol, atol = _TOLERANCES.get(np_dtype, (0.0, 0.0))  # ints and bools: exact
    if torch.device(device).type != "cpu":
        rtol, atol = rtol * 10, atol * 10
    return rtol, atol


def _as_numpy(name: str, value: ArrayLike) -> tuple[np.ndarray, str]:
    """Convert an array or tensor to numpy; reject anything else, saying what it was."""
    if isinstance(value, torch.Tensor):
        device = value.device.type
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.cpu().numpy(), device
    if isinstance(value, np.ndarray) and type(value) is np.ndarray:
        return value, "cpu"
    if isinstance(value, (np.generic, float, int)) and not isinstance(value, bool):
        return np.asarray(value), "cpu"
    raise CheckFailed(
        f"{name} should be a numpy array or a torch tensor, but it is a {type(value).__name__}."
        + (" Did you forget a `return`?" if value is None else "")
    )


def check_type(name: str, value: Any, expected: type | tuple[type, ...]) -> None:
    """Fail unless ``value`` is an instance of ``expected``."""
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise CheckFailed(f"{name} should be a {names}, but it is a {type(value).__name__}.")


def check_shape(name: str, value: ArrayLike, expected: Sequence[int]) -> None:
    """Fail unless ``value`` (array or tensor) has exactly the shape ``expected``."""
    got, _ = _as_numpy(name, value)
    if not shape_matches(got.shape, expected):
        raise CheckFailed(shape_message(name, got.shape, expected, _shape_hint(tuple(got.shape), tuple(expected))))


def _shape_hint(got: tuple[int, ...], expected: tuple) -> str:
    if not all(isinstance(e, int) for e in expected):  # named sizes ("B"): no ordering to compare
        return ""
    if sorted(got) == sorted(expected):
        return "The sizes are right but in another order: is something transposed?"
    if len(got) != len(expected):
        return f"It has {len(got)} dimensions instead of {len(expected)}: a missing or extra batch or time axis?"
    return ""


def check_close(
    name: str,
    got: ArrayLike,
    expected: ArrayLike,
    *,
    rtol: float | None = None,
    atol: float | None = None,
    parts: Mapping[str, slice] | None = None,
    axis: int = -1,
    quiet: bool = False,
) -> None:
    """Check an array against a reference, element by element.

    Args:
        name: what the learner calls the value (``"h_next"``), used in messages.
        got, expected: numpy arrays or torch tensors (any device).
        rtol, atol: override the dtype's default tolerance (see :func:`tolerance`).
        parts: optional ``{label: slice}`` along ``axis``, e.g. an LSTM's four gates, so a
            failure names the part that is off.
        quiet: do not print the success line.

    Returns nothing on purpose: nbgrader reads a number shown by the last line of a graded
    test cell as partial credit, so a check that returned its difference would score 0.
    """
    got_np, device = _as_numpy(name, got)
    exp_np, _ = _as_numpy(f"the reference for {name}", expected)
    if got_np.dtype.kind not in "fiucb":
        raise CheckFailed(f"{name} holds {got_np.dtype} values, expected numbers ({exp_np.dtype}).")
    if got_np.dtype.kind != exp_np.dtype.kind or (exp_np.dtype.kind == "f" and got_np.dtype != exp_np.dtype):
        raise CheckFailed(f"{name} has dtype {got_np.dtype}, expected {exp_np.dtype}.")
    check_shape(name, got_np, exp_np.shape)
    d_rtol, d_atol = tolerance(exp_np.dtype, device)
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    if np.isnan(got_np).any() if got_np.dtype.kind == "f" else False:
        where = tuple(int(i) for i in np.argwhere(np.isnan(got_np))[0])
        raise CheckFailed(f"{name} contains NaN (first at index {where}).")
    g, e = got_np.astype(np.float64), exp_np.astype(np.float64)
    diff = np.abs(g - e)
    bad = diff > atol + rtol * np.abs(e)
    max_diff = float(diff.max()) if diff.size else 0.0
    if bad.any():
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(np.where(bad, diff, -1)), diff.shape))
        message = (
            f"{name} is off: {int(bad.sum())} of {bad.size} values differ; the largest "
            f"difference is {max_diff:.3g} at index {idx} (got {g[idx]:.6g}, expected {e[idx]:.6g}); "
            f"tolerance is atol={atol:g} + rtol={rtol:g} x |expected|."
        )
        if parts:
            positions = np.arange(bad.shape[axis])
            off = [label for label, sl in parts.items() if np.take(bad, positions[sl], axis=axis).any()]
            ok = [label for label in parts if label not in off]
            message += f" Parts that are off: {', '.join(off)}." + (f" Correct: {', '.join(ok)}." if ok else "")
        raise CheckFailed(message)
    if not quiet:
        print(f"OK {name}: shape {tuple(got_np.shape)}, max |difference| = {max_diff:.2e}")


def check_scalar(name: str, got: Any, expected: float, *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Check a single number (a Python, numpy or 0-d torch scalar)."""
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise CheckFailed(f"{name} should be a single number, but it has shape {tuple(got.shape)}.")
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float, np.integer, np.floating)):
        raise CheckFailed(f"{name} should be a number, but it is a {type(got).__name__}.")
    got = float(got)
    if not abs(got - expected) <= atol + rtol * abs(expected):
        raise CheckFailed(f"{name} is {got:.6g}, expected {expected:.6g} (difference {abs(got - expected):.3g}).")
    print(f"OK {name} = {got:.6g}")


def name_mistake(name: str, got: ArrayLike, expected: ArrayLike, candidates: Mapping[str, ArrayLike]) -> None:
    """Fail naming the first plausible mistake whose result ``got`` reproduces.

    ``candidates`` maps a hint ("forget the tanh") to what that mistake computes (or None,
    skipped). Nothing
    happens when ``got`` matches ``expected`` or no candidate; NaNs count as equal, so a
    mistake that overflows is recognised by where its NaNs are.
    """
    got_np = _as_numpy(name, got)[0].astype(np.float64)
    if got_np.shape == np.shape(expected) and np.allclose(got_np, expected, rtol=1e-6, atol=1e-9):
        return
    for hint, value in candidates.items():
        if value is None:  # a mistake that does not show on this input
            continue
        value_np = np.asarray(value, dtype=np.float64)
        if value_np.shape == got_np.shape and np.allclose(got_np, value_np, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise CheckFailed(f"{name} is off: it matches what you get when you {hint}.")


def _softmax(z: np.ndarray, axis: int = -1, shift: str = "row") -> np.ndarray:
    """Softmax of ``z`` along ``axis``; ``shift`` "row" (right), "none" or "global" (two mistakes)."""
    m = {"row": z.max(axis=axis, keepdims=True), "none": 0.0, "global": z.max()}[shift]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        e = np.exp(z - m)
        return e / e.sum(axis=axis, keepdims=True)


def _softmax_mistakes(z: np.ndarray) -> dict[str, np.ndarray | None]:
    """What the usual wrong softmaxes return for ``z`` (None where a mistake cannot show on it)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    square = z.ndim == 2 and z.shape[0] == z.shape[1]
    e_flat = np.exp(z - z.max(axis=-1)) if square else None  # the max without keepdims broadcasts column-wise
    return {
        "exponentiate z without subtracting its max first: e^1000 overflows to inf, and inf/inf is NaN":
            _softmax(z, shift="none"),
        "subtract the max of the whole array instead of each row's max (z.max(axis=-1, keepdims=True)); "
        "rows far below that max underflow to 0/0": _softmax(z, shift="global"),
        "normalise over the first axis instead of the last (axis=-1)": _softmax(z, axis=0),
        "normalise over axis 1 instead of the last (axis=-1)": _softmax(z, axis=1) if z.ndim > 2 else None,
        "forget to divide by the sum": e,
        "divide by the sum of the whole array instead of each row's sum (axis=-1, keepdims=True)": e / e.sum(),
        "take the softmax of the whole array at once (max and sum without axis=-1, keepdims=True)":
            _softmax(z.reshape(-1)).reshape(z.shape),
        "take the max and the sum without keepdims=True, so they broadcast along the wrong axis":
            e_flat / e_flat.sum(axis=-1) if square else None,
    }


def check_softmax(fn: Any, seed: int = 0) -> None:
    """Test ``fn(z)``, a softmax over the last axis of a numpy array (notebook 00, exercise 0).

    The cases catch the exercise's mistakes by name: no max-shift (e^1000 overflows), one
    max for the whole array instead of each row's, the wrong axis, a missing or global
    normaliser, a max without ``keepdims``.
    """
    fn = refuse_reference(fn, ("softmax", "log_softmax", "temperature_softmax"))
    rng = np.random.default_rng(seed)
    cases = {
        "small values": np.array([[1.0, 2.0, 3.0], [0.0, 0.0, -1.0]]),
        "rows on very different scales": np.array([[0.0, 1.0, 2.0], [1000.0, 1001.0, 1002.0]]),
        "a 3-d array": rng.normal(size=(2, 3, 5)) * 3,
        "a square array": np.array([[0.0, 5.0], [1.0, 2.0]]),
    }
    for label, z in cases.items():
        name = f"my_softmax on {label}"
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # the mistakes' NaNs are reported below
                got = fn(z.copy())
        except ValueError as error:
            hint = " Did you keep the reduced axis (keepdims=True)?" if "broadcast" in str(error) else ""
            raise CheckFailed(f"{name} raised ValueError: {error}.{hint}") from error
        name_mistake(name, got, _softmax(z), _softmax_mistakes(z))
        check_close(name, got, _softmax(z), quiet=True)
    print(f"OK my_softmax: {len(cases)} cases, large values and any number of axes included")


def _code_objects(code: Any) -> list[Any]:
    """A code object and those nested in it (inner functions, lambdas, comprehensions)."""
    return [code] + [inner for const in code.co_consts if hasattr(const, "co_code") for inner in _code_objects(const)]


_MISSING = object()


def _resolved_names(fn: Any) -> list[tuple[str, Any]]:
    """``(name, object)`` for each name ``fn``'s code loads that resolves before any call.

    A global resolves in ``fn``'s globals or the builtins, a free name in ``fn``'s closure cells, and an
    attribute of a module that resolves (``F.cross_entropy``, ``torch.nn.functional.softmax``) in that
    module. A local, an attribute of anything else (``params.grad``) or a free name bound by an enclosing
    function's local does not resolve: calls through those are the profiler's to catch.
    """
    scopes = (getattr(fn, "__globals__", {}), vars(builtins))
    cells = dict(zip(fn.__code__.co_freevars, getattr(fn, "__closure__", None) or (), strict=False))
    found = []
    for code in _code_objects(fn.__code__):
        current: Any = _MISSING
        for instruction in dis.get_instructions(code):
            name, value = instruction.argval, _MISSING
            if instruction.opname == "LOAD_GLOBAL":
                value = next((scope[name] for scope in scopes if name in scope), _MISSING)
            elif instruction.opname in ("LOAD_DEREF", "LOAD_CLOSURE") and name in cells:
                try:
                    value = cells[name].cell_contents
                except ValueError:  # an empty cell: not bound yet
                    pass
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(current, type(sys)):
                value = vars(current).get(name, _MISSING)
            if value is not _MISSING:
                found.append((name, value))
            current = value
    return found


def _library_of(obj: Any) -> str:
    """The top-level package an object comes from: a module's own name, else its ``__module__`` ("" if none)."""
    obj = getattr(obj, "func", obj) if isinstance(obj, functools.partial) else obj
    module = obj.__name__ if isinstance(obj, type(sys)) else getattr(obj, "__module__", None)
    if not isinstance(module, str):  # a builtin bound to an object (torch's C functions): the object's module
        owner = getattr(obj, "__self__", None)
        module = type(owner).__module__ if owner is not None else ""
    return module.split(".")[0]


def resolved_libraries(fn: Any) -> dict[str, list[str]]:
    """For each name ``fn``'s code loads that resolves (see ``_resolved_names``), the libraries it resolves to.

    The grader records this in the learner's kernel, where ``fn``'s globals are, for the clean kernel's check.
    """
    found: dict[str, set[str]] = {}
    for name, value in _resolved_names(fn):
        found.setdefault(name, set()).add(_library_of(value))
    return {name: sorted(libraries) for name, libraries in found.items()}


def _attribute_names(code: Any) -> set[str]:
    """The names ``code`` (nested code included) reads as attributes or methods (``loss.backward``)."""
    return {i.argval for c in _code_objects(code) for i in dis.get_instructions(c)
            if i.opname in ("LOAD_ATTR", "LOAD_METHOD")}


def _named_references(fn: Any, references: Sequence[str]) -> list[str]:
    """The references that ``fn``'s code names and that resolve to an object of a reference library.

    A recorded function (the grader's clean kernel) has code but no globals, and nothing of it runs
    there, so no profiler follows it: it uses the resolutions recorded with it, and a reference's name
    read as an attribute that did not resolve (``model.greedy``, ``loss.backward``) is refused too.
    """
    if hasattr(fn, "__globals__"):
        resolved = resolved_libraries(fn)
        unresolved: set[str] = set()
    else:
        resolved = getattr(fn, "__resolved__", None)
        if resolved is None:  # an older recording: the names alone
            names = {n for c in _code_objects(fn.__code__) for n in (*c.co_names, *c.co_freevars)}
            return sorted(set(references) & names)
        unresolved = _attribute_names(fn.__code__) - set(resolved)
    called = set(references) & unresolved
    for name, libraries in resolved.items():
        if name in references and any(library in _REFERENCE_LIBRARIES
                                      and (library == "course_utils" or name not in _COURSE_ONLY)
                                      for library in libraries):
            called.add(name)
    return sorted(called)


# Libraries whose functions an exercise's function may not reach by a reference's name, at run time.
_REFERENCE_LIBRARIES = ("course_utils", "torch", "scipy", "sklearn")
# Names too generic to refuse in the libraries besides the course's own (torch.distributions' sample, ...).
_COURSE_ONLY = frozenset({"sample", "forward", "decode", "generate", "recurrence", "step"})
# Building or calling an object of a reference class, through methods it inherits or a dataclass generates
# (reading its attributes, as in ``block.attn``, is allowed: the exercise may hand the learner its parts).
_CONSTRUCT_OR_CALL = frozenset({"__init__", "__new__", "__call__", "_wrapped_call_impl", "_call_impl", "forward"})


def _reached_reference(frame: Any, event: str, arg: Any, references: frozenset[str]) -> str | None:
    """``module.name`` when a profiled call is one of ``references`` in a reference library, else None."""
    if event == "call":
        code = frame.f_code
        names = {code.co_name, getattr(code, "co_qualname", code.co_name).split(".")[0]}  # a method: its class too
        module = frame.f_globals.get("__name__") or ""
        if code.co_name in _CONSTRUCT_OR_CALL and code.co_argcount and code.co_varnames[0] in ("self", "cls"):
            owner = frame.f_locals.get(code.co_varnames[0])
            owner = owner if isinstance(owner, type) else type(owner)
            if owner.__name__ in references and owner.__module__.split(".")[0] in _REFERENCE_LIBRARIES:
                names, module = {owner.__name__}, owner.__module__
    elif event == "c_call":  # a builtin: torch.softmax, a tensor's .softmax, torch._C's kernels
        names = {getattr(arg, "__name__", "")}
        owner = getattr(arg, "__self__", None)
        module = getattr(arg, "__module__", None) or (type(owner).__module__ if owner is not None else "") or ""
    else:
        return None
    library = module.split(".")[0]
    if library not in _REFERENCE_LIBRARIES:
        return None
    hit = sorted(n for n in names & references if library == "course_utils" or n not in _COURSE_ONLY)
    return f"{module}.{hit[0]}" if hit else None


# Handing work to another thread or process, where the profiler (one thread's) does not follow:
# ``(module, function)`` of Python-level calls, with "*" for any function of that name in the module.
_HAND_OFFS = frozenset({
    ("threading", "start"), ("concurrent.futures.thread", "submit"), ("concurrent.futures.process", "submit"),
    ("concurrent.futures._base", "map"), ("concurrent.futures.process", "map"),
    ("multiprocessing.process", "start"), ("multiprocessing.pool", "apply"), ("multiprocessing.pool", "apply_async"),
    ("multiprocessing.pool", "map"), ("multiprocessing.pool", "map_async"), ("multiprocessing.pool", "imap"),
    ("multiprocessing.pool", "imap_unordered"), ("multiprocessing.pool", "starmap"),
    ("multiprocessing.pool", "starmap_async"), ("asyncio.runners", "run"), ("asyncio.runners", "run_until_complete"),
    ("asyncio.base_events", "run_until_complete"), ("asyncio.base_events", "run_forever"),
    ("asyncio.base_events", "run_in_executor"), ("asyncio.threads", "to_thread"), ("subprocess", "__init__"),
    ("os", "spawnv"), ("os", "spawnve"), ("os", "popen"),
})
# The same for builtins (C functions), by module and name; and the audit events that mark a new process.
_C_HAND_OFFS = frozenset({"start_new_thread", "start_new", "start_joinable_thread", "fork", "forkpty", "system",
                          "posix_spawn", "posix_spawnp", "execv", "execve"})
_C_HAND_OFF_MODULES = frozenset({"_thread", "posix", "nt", "os"})
_PROCESS_EVENTS = frozenset({"os.fork", "os.forkpty", "os.system", "os.posix_spawn", "os.exec", "os.spawn",
                             "subprocess.Popen"})
_AUDITED: list[tuple[int, list[str]]] = []  # (thread, what it handed off) for each traced call under way


def _handed_off(frame: Any, event: str, arg: Any) -> str | None:
    """What a profiled call hands to another thread or process (``concurrent.futures.thread.submit``), else None."""
    if event == "call":
        module, name = frame.f_globals.get("__name__") or "", frame.f_code.co_name
        if (module, name) not in _HAND_OFFS:
            return None
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__module__.split(".")[0] == "tqdm":  # a progress bar's monitor
            return None
        return f"{module}.{name}"
    if event == "c_call" and getattr(arg, "__name__", "") in _C_HAND_OFFS:
        if frame.f_globals.get("__name__") == "threading":  # Thread.start's own: judged by its call above
            return None
        module = getattr(arg, "__module__", None) or ""
        return f"{module}.{arg.__name__}" if module in _C_HAND_OFF_MODULES else None
    return None


def _audit(event: str, args: tuple) -> None:
    """Record a new process (forked or spawned, from C as well as from Python) during a traced call's thread."""
    if _AUDITED and event in _PROCESS_EVENTS:
        me = threading.get_ident()
        for thread, handed in _AUDITED:
            if thread == me and not handed:
                handed.append(event)


_audit_installed: list[bool] = []


def refuse_reference(fn: Any, references: Sequence[str]) -> Any:
    """Refuse an exercise's function that reaches one of the course's (or a library's) own implementations.

    Two layers. Before any call: a function whose code names a reference (``rnn_cell_forward``)
    fails at once. Then the returned function, which the check calls instead of ``fn``, runs
    ``fn`` under a profiler and fails if any call reaches a function or class of that name in
    ``course_utils``, ``torch``, ``scipy`` or ``sklearn``, however it was reached: an alias
    (``import rnn_cell_forward as step``), ``getattr``, ``importlib``, a model's own method.
    The learner's own function of the same name is in the notebook's module, so it passes.
    """
    name = getattr(fn, "__name__", "your function")
    if getattr(fn, "__code__", None) is not None:
        called = _named_references(fn, references)
        if called:
            raise CheckFailed(f"{name} calls {', '.join(called)}, an existing implementation: the exercise is to "
                              "write the computation yourself from array operations (numpy or torch).")
    if not callable(fn):
        return fn
    wanted = frozenset(references)
    if not _audit_installed:  # once per process: audit hooks cannot be removed
        sys.addaudithook(_audit)
        _audit_installed.append(True)

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        reached: list[str] = []
        handed: list[str] = []

        def profile(frame: Any, event: str, arg: Any) -> None:
            if not reached and (hit := _reached_reference(frame, event, arg, wanted)):
                reached.append(hit)
            if not handed and (where := _handed_off(frame, event, arg)):
                handed.append(where)

        def verdict() -> CheckFailed | None:
            if reached:
                return _refusal(name, reached[0])
            if handed:
                return CheckFailed(f"{name} hands work to another thread or process ({handed[0]}): the exercise's "
                                   "function must compute its answer itself, in one thread.")
            if switched_off:
                return CheckFailed(f"{name} switched off the check's tracer (sys.setprofile): the exercise's "
                                   "function must compute its answer itself, without changing the profiler.")
            return None

        previous, previous_threads = sys.getprofile(), threading.getprofile()
        switched_off = False
        watch = (threading.get_ident(), handed)
        _AUDITED.append(watch)
        sys.setprofile(profile)
        threading.setprofile(profile)  # threads started during the call (refused anyway) are traced too
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            switched_off = sys.getprofile() is not profile
            if refusal := verdict():  # a delegation that failed on its arguments is still a delegation
                raise refusal from error
            raise
        finally:
            switched_off = switched_off or sys.getprofile() is not profile
            sys.setprofile(previous)
            threading.setprofile(previous_threads)
            _AUDITED.remove(watch)
        if refusal := verdict():
            raise refusal
        return result

    return traced


def _refusal(name: str, reached: str) -> CheckFailed:
    return CheckFailed(f"{name} reaches {reached}, an existing implementation (whatever name it goes by): the "
                       "exercise is to write the computation yourself from array operations (numpy or torch).")


def matmul_shape_error(error: BaseException) -> bool:
    """True for numpy's or torch's error when a matrix product's inner dimensions differ (a missing ``.T``)."""
    text = str(error)
    return any(words in text for words in ("matmul: Input operand", "shapes cannot be multiplied", "not aligned",
                                            "size mismatch"))


def require_keys(answer: Any, keys: Sequence[str]) -> None:
    """Fail unless ``answer`` is a dict with exactly ``keys``, the setting an outcome-graded exercise asks for."""
    if not isinstance(answer, dict) or set(answer) != set(keys):
        got = sorted(answer) if isinstance(answer, dict) else type(answer).__name__
        raise CheckFailed(f"return a dict with exactly the keys {', '.join(keys)}; got {got}")


def outcome_verdict(where: str, met: bool, how_far: str | Callable[[], str], hints: Callable[[], list[str]]) -> None:
    """The outcome checks' verdict: print ``OK <where>.``, or fail with how far off and the likely culprits.

    ``where`` says what was measured and the target; ``how_far`` is read only on a miss, as are
    the ``hints`` (called then, since they may validate the config again); a ``how_far`` that
    needs more measuring can be a function, called only then.
    """
    if met:
        print(f"OK {where}.")
        return
    far, found = how_far() if callable(how_far) else how_far, hints()
    raise CheckFailed(f"{where}: {far}." + (" Likely culprit: " + "; ".join(found) + "." if found else ""))


@dataclass(frozen=True)
class Verdict:
    """What a challenge measured against its target: ``where`` (the measurement and the target), ``met``, and
    ``how_far`` (read only on a miss; a function if it needs more measuring)."""

    where: str
    met: bool
    how_far: str | Callable[[], str]


@dataclass(frozen=True)
class Challenge:
    """An exercise graded by outcome: the learner's answer (a dict of settings) is run, and its score judged.

    Four steps, each a function, so that each can be tested alone (the hints without any training):

    - ``validate(answer) -> settings``: raises :class:`CheckFailed` naming a bad or missing key;
    - ``measure(answer, seed) -> score``: trains or samples inside :func:`course_utils.core.seed.seeded_run`,
      so the score depends on ``seed`` alone and the notebook's random state is untouched;
    - ``judge(settings, score, seed) -> Verdict``: what was measured, the target, how far off;
    - ``hints(settings) -> list[str]``: the likely culprits, shown on a miss.
    """

    validate: Callable[[Any], Any]
    measure: Callable[..., Any]
    judge: Callable[[Any, Any, int], Verdict]
    hints: Callable[[Any], list[str]]

    def score(self, answer: Any, *, seed: int = 0) -> Any:
        """The measured score of ``answer`` (validated first)."""
        return self.measure(answer, seed=seed)

    def check(self, answer: Any, *, seed: int = 0) -> None:
        """Validate, measure, then print ``OK ...`` or fail with how far off and the likely culprits."""
        settings = self.validate(answer)
        got = self.measure(answer, seed=seed)
        verdict = self.judge(settings, got, seed)
        outcome_verdict(verdict.where, verdict.met, verdict.how_far, lambda: self.hints(settings))


def learning_rate_hints(lr: float, low: float, high: float, steps: int | None = None,
                        large_note: str = "") -> list[str]:
    """The outcome checks' hint about Adam's learning rate: below ``low`` is too small for ``steps``
    steps (Adam moves each weight by about lr per step), above ``high`` overshoots."""
    if lr < low:
        budget = f"{steps} steps" if steps is not None else "so few steps"
        return [f"a learning rate of {lr:g} is small for {budget}: Adam moves each weight by about lr per step"]
    if lr > high:
        return [f"a learning rate of {lr:g} is large: the updates overshoot{large_note}"]
    return []


# Issue 29: the configuration challenges of 05-08 in other formats than "choose a config" — fix a given config
# (change at most a few of its fields), diagnose a broken run (name its cause from a menu, then fix it) and pick
# between two runs (say which wins at the budget, and why). Each wraps the :class:`Challenge` that trains a config.


def changed_config(broken: Mapping[str, Any], change: Any, max_changes: int, what: str = "your change") -> dict:
    """``broken`` with the learner's ``change`` (a dict of at most ``max_changes`` of its fields) applied.

    Raises :class:`CheckFailed` when ``change`` is not a dict, names a field ``broken`` does not have, changes
    more than ``max_changes`` fields, or changes nothing (a value equal to the broken one is no change).
    """
    if not isinstance(change, Mapping):
        raise CheckFailed(f"{what} should be a dict {{field: new value}}, got {change!r}")
    unknown = [key for key in change if key not in broken]
    if unknown:
        raise CheckFailed(f"{what} names {', '.join(map(repr, unknown))}, which the given config does not have "
                          f"(its fields: {', '.join(map(repr, broken))})")
    real = {key: value for key, value in change.items() if not (value == broken[key] and type(value) is
                                                                 type(broken[key]))}
    if not real:
        raise CheckFailed(f"{what} changes nothing: every value is the given config's own")
    if len(real) > max_changes:
        raise CheckFailed(f"{what} changes {len(real)} fields ({', '.join(map(repr, real))}); the exercise allows "
                          f"{max_changes}: find the field that breaks the run")
    return {**broken, **real}


def check_cause(cause: Any, causes: Mapping[str, str | None], what: str = "the cause") -> None:
    """Refuse a wrong ``cause``: ``causes`` maps each menu entry to ``None`` (the right one) or to what in the
    evidence rules it out, which the failure names."""
    if cause not in causes:
        raise CheckFailed(f"{what} should be one of {', '.join(map(repr, causes))}, got {cause!r}")
    if causes[cause] is not None:
        raise CheckFailed(f"{what} {cause!r} does not fit the evidence: {causes[cause]}")


def fix_challenge(base: Challenge, broken: Mapping[str, Any], max_changes: int = 1,
                  causes: Mapping[str, str | None] | None = None) -> Challenge:
    """The :class:`Challenge` of fixing ``broken``: the answer is a change (``{field: value}``), or, with
    ``causes`` (a diagnosis), ``{"cause": menu entry, "change": {field: value}}``; the fixed config is validated,
    trained and judged as ``base`` does, and ``base``'s hints name the likely culprit on a miss."""
    def config(answer: Any) -> dict:
        if causes is None:
            return changed_config(broken, answer, max_changes)
        require_keys(answer, ("cause", "change"))
        check_cause(answer["cause"], causes)
        return changed_config(broken, answer["change"], max_changes, "the change")

    return Challenge(lambda answer: base.validate(config(answer)),
                     lambda answer, seed: base.measure(config(answer), seed=seed), base.judge, base.hints)
