"""Verdicts where no learner code ran: record a test cell's answers, replay them in a clean kernel.

Grading a test cell takes two kernels, both sandboxed:

1. **The learner's kernel** runs the notebook as today. Around each test cell the grader
   wraps the names the cell reads (:func:`record_start`): the learner's functions become
   recorders that pass every call through and write down its arguments (as a digest), what
   it returned or raised, and what it did in place to its array, tensor, generator, list and
   dict arguments (those inside lists and dicts included); other values are written down as
   they are. :func:`record_finish` saves all this as JSON.
2. **A clean kernel** never sees the learner's code: it runs the source notebook's imports,
   then, for each test cell, :func:`bind` (stand-ins for the learner's names, built from the
   JSON) and the source's test cell, hidden and instructor's tests included. A stand-in
   checks that it is called with the same arguments as in the learner's kernel and answers
   as the learner's function did. The verdict is this kernel's.

Only data crosses: numbers, strings, lists, tuples, dicts, numpy arrays, torch tensors and
torch generators' states (:func:`encode`, decoded without ``pickle``, so a recording cannot
run code in the clean kernel), and each function's code object, which checks inspect and
nothing calls. A model among a call's arguments does not cross either: where it is of the
course's or torch's own classes, the call's fingerprint includes its classes, sizes and state
(:func:`digest`), and the clean kernel's test cell, which builds its own model, must call
with an equal one. What a call returns of its own arguments (the argument itself, or a model
argument's parameter, buffer or submodule: the very object, not a copy) crosses as a reference
(:func:`_referable`), so the stand-in returns the clean kernel's own object and a check that
asks "is this one of the model's parameters?" gets the same answer in both kernels. A tensor
answer with a graph back to arguments that require grad crosses with the gradient of its sum
with respect to them (:func:`_sum_gradient`), so a check that backpropagates the answer's sum
sees the learner's gradient (NaN included). An
answer that is not data (a model a test cell reads from the learner's namespace, a class of
the learner's), a returned object the learner's function changed in place, or a test cell
that calls the learner's code differently than before raises :class:`ReplayError` in the
clean kernel; the grader then falls back to the learner's kernel, decides from its execute
reply, and says so in the gradebook row.

This module runs inside both kernels: it imports only the standard library, and numpy and
torch when a value needs them.
"""

from __future__ import annotations

import base64
import builtins
import functools
import hashlib
import json
import marshal
import sys
import types
from pathlib import Path
from typing import Any

_MISSING = object()


class ReplayError(BaseException):
    """The clean kernel cannot stand in for the learner's code here (the grader falls back).

    A ``BaseException``, like ``KeyboardInterrupt``: a check's ``except Exception`` must not
    take it for an error the learner's function raised.
    """

    def __init__(self, message: str):
        super().__init__(f"{message} {MARKER}")


MARKER = "[replay]"


class Uncrossable(Exception):
    """A value that is not plain data, so it cannot cross to the clean kernel."""


# ----------------------------------------------------------------------------- data, without pickle

def _array(arr: Any) -> dict:
    if arr.dtype.hasobject:
        raise Uncrossable("a numpy array of Python objects")
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "data": base64.b64encode(arr.tobytes(order="C")).decode()}


def encode(value: Any, *, modules: bool = False, refs: dict[int, tuple[Any, list[str]]] | None = None) -> Any:
    """``value`` as JSON-ready data; raises :class:`Uncrossable` for anything else.

    Types must match exactly: a subclass (of float, of ``np.ndarray``) may behave otherwise
    than its decoded copy would, so it does not cross. ``modules=True`` (for :func:`digest`
    only) writes a torch module as its :func:`_module_fingerprint`, which nothing decodes.
    ``refs`` (``{id(obj): (obj, path)}``, from :func:`_referable`): an object among them is
    written as a reference to its path, with a fingerprint of what it holds now.
    """
    if refs is not None and id(value) in refs and refs[id(value)][0] is value:
        return {"ref": refs[id(value)][1], "fingerprint": _object_digest(value)}
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return {"int": str(value)}
    if kind is float:
        return {"float": value.hex()}
    if kind is complex:
        return {"complex": [value.real.hex(), value.imag.hex()]}
    if kind in (list, tuple):
        return {kind.__name__: [encode(v, modules=modules, refs=refs) for v in value]}
    if kind is dict:
        return {"dict": [[encode(k, modules=modules, refs=refs), encode(v, modules=modules, refs=refs)]
                         for k, v in value.items()]}
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if numpy is not None and kind is numpy.ndarray:
        return {"ndarray": _array(value)}
    if numpy is not None and isinstance(value, numpy.generic) and kind.__module__ == "numpy":
        return {"npscalar": _array(numpy.asarray(value))}
    if torch is not None and kind in (torch.Tensor, torch.nn.Parameter):
        t = value.detach().cpu()
        plain = t.float() if t.dtype == torch.bfloat16 else t
        return {"tensor": _array(plain.numpy()), "torch_dtype": str(t.dtype).removeprefix("torch."),
                "requires_grad": bool(value.requires_grad)}
    if torch is not None and kind is torch.device:
        return {"device": str(value)}
    if torch is not None and kind is torch.Generator:  # its state: a copy draws the same numbers
        return {"generator": _array(value.get_state().numpy()), "generator_device": str(value.device)}
    if torch is not None and kind is torch.dtype:
        return {"torch_dtype_value": str(value).removeprefix("torch.")}
    if modules and torch is not None and isinstance(value, torch.nn.Module):
        return _module_fingerprint(value)
    raise Uncrossable(f"a {kind.__module__}.{kind.__qualname__}")


def _decode_array(spec: dict) -> Any:
    import numpy as np

    dtype = np.dtype(spec["dtype"])
    if dtype.hasobject:
        raise ReplayError("an array of Python objects in a recording")
    raw = base64.b64decode(spec["data"])
    return np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).copy()


def decode(data: Any, refs: dict[tuple[str, ...], Any] | None = None) -> Any:
    """The value :func:`encode` wrote (never runs code from the recording). ``refs``: the
    objects a reference may name (:func:`_referable` of the clean kernel's call)."""
    if data is None or isinstance(data, (bool, str)):
        return data
    if not isinstance(data, dict) or len(data) < 1:
        raise ReplayError(f"a malformed recording: {str(data)[:80]}")
    kind = next(iter(data))
    if kind == "int":
        return int(data["int"])
    if kind == "float":
        return float.fromhex(data["float"])
    if kind == "complex":
        return complex(float.fromhex(data["complex"][0]), float.fromhex(data["complex"][1]))
    if kind == "ref":
        return _resolve(data, refs)
    if kind in ("list", "tuple"):
        items = [decode(v, refs) for v in data[kind]]
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {decode(k, refs): decode(v, refs) for k, v in data["dict"]}
    if kind == "ndarray":
        return _decode_array(data["ndarray"])
    if kind == "npscalar":
        return _decode_array(data["npscalar"])[()]
    if kind in ("tensor", "device", "torch_dtype_value", "generator"):
        import torch

        if kind == "device":
            return torch.device(data["device"])
        if kind == "generator":
            return _generator(torch, data)
        if kind == "torch_dtype_value":
            return _torch_dtype(torch, data["torch_dtype_value"])
        tensor = torch.from_numpy(_decode_array(data["tensor"])).to(_torch_dtype(torch, data["torch_dtype"]))
        return tensor.requires_grad_(bool(data.get("requires_grad")))
    raise ReplayError(f"a recording holds an unknown kind of value: {kind}")


def _generator(torch: Any, data: dict) -> Any:
    try:
        generator = torch.Generator(device=torch.device(str(data["generator_device"])))
        generator.set_state(torch.from_numpy(_decode_array(data["generator"])))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ReplayError(f"a recorded torch.Generator cannot be rebuilt here ({err})") from None
    return generator


def _torch_dtype(torch: Any, name: str) -> Any:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ReplayError(f"a recording names an unknown torch dtype: {name}")
    return dtype


def digest(args: tuple, kwargs: dict) -> str:
    """A fingerprint of a call's arguments (raises :class:`Uncrossable` where one is neither data
    nor a module of the course's or torch's own classes)."""
    text = json.dumps(encode((args, sorted(kwargs.items())), modules=True), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


TRUSTED_MODULES = ("course_utils.", "torch.nn.")  # where a module argument's classes must come from
_PLAIN = (bool, int, float, str, type(None))


def _module_fingerprint(module: Any) -> dict:
    """Each submodule's class, training flag and plain attributes (sizes, head counts), and the
    whole state (parameters and buffers). Only exact classes of the course or of ``torch.nn``: a
    class of the learner's could compute anything from the same state. A module never crosses:
    the clean kernel's test cell builds its own, and the digest checks that the learner's
    function was called with an equal one."""
    parts = []
    for name, sub in module.named_modules():
        kind = type(sub)
        if not kind.__module__.startswith(TRUSTED_MODULES):
            raise Uncrossable(f"a {kind.__module__}.{kind.__qualname__}")
        plain = sorted((k, v) for k, v in vars(sub).items() if not k.startswith("_") and type(v) in _PLAIN)
        parts.append([name, f"{kind.__module__}.{kind.__qualname__}", encode(plain)])
    return {"module": parts, "state": [[k, encode(t)] for k, t in module.state_dict().items()],
            "shared": _shared(module)}


def _members(module: Any) -> list[tuple[str, str, Any]]:
    """``(kind, name, object)`` for each parameter, buffer and submodule of ``module``, under every
    name it has (a tied matrix twice), in torch's order."""
    return ([("parameter", n, p) for n, p in module.named_parameters(remove_duplicate=False)]
            + [("buffer", n, b) for n, b in module.named_buffers(remove_duplicate=False)]
            + [("module", n, m) for n, m in module.named_modules(remove_duplicate=False) if n])


def _shared(module: Any) -> list[list[str]]:
    """Which names of ``module`` are one object (a tied matrix): equal states can differ in this."""
    first: dict[int, str] = {}
    shared = []
    for kind, name, obj in _members(module):
        if id(obj) in first:
            shared.append([kind, name, first[id(obj)]])
        else:
            first[id(obj)] = name
    return shared


# ----------------------------------------------------------------------------- a call's own objects, by reference

def _referable(args: tuple, kwargs: dict) -> dict[tuple[str, ...], Any]:
    """The objects a call's answer may return by reference, by path: each argument that is a tensor,
    array, generator, module, dict or list (``("0",)``, ``("k:model",)``), each tensor, array or generator
    inside a dict, list or tuple argument (``('0["W_xh"]',)``, as :func:`_arguments` names them) and
    each parameter, buffer and submodule of a module argument (``("0", "parameter", "head.weight")``),
    first names first.

    The clean kernel's call has equal arguments (:func:`digest`, which includes which of a model's
    names are one object), so the same path names the corresponding object there."""
    torch = sys.modules.get("torch")
    paths: dict[tuple[str, ...], Any] = {(where,): v for where, v in _arguments(args, kwargs).items()}
    for where, value in _named(args, kwargs).items():
        module = torch is not None and isinstance(value, torch.nn.Module)
        if module or type(value) in (dict, list):
            paths.setdefault((where,), value)
        for kind, name, obj in _members(value) if module else []:
            paths.setdefault((where, kind, name), obj)
    return paths


def _identities(args: tuple, kwargs: dict) -> dict[int, tuple[Any, list[str]]]:
    """:func:`_referable` by object: ``{id(obj): (obj, path)}``, an object's first path only."""
    out: dict[int, tuple[Any, list[str]]] = {}
    for path, obj in _referable(args, kwargs).items():
        out.setdefault(id(obj), (obj, list(path)))
    return out


def _object_digest(value: Any) -> str:
    """What a referenced object holds (values, dtype, a module's fingerprint), hashed."""
    return hashlib.sha256(json.dumps(encode(value, modules=True), sort_keys=True).encode()).hexdigest()


def _resolve(data: dict, refs: dict[tuple[str, ...], Any] | None) -> Any:
    """The clean kernel's object a reference names; it must hold what the learner's did."""
    path = data.get("ref")
    if refs is None or not isinstance(path, list):
        raise ReplayError("a recording refers to an object outside a call's arguments")
    obj = refs.get(tuple(str(p) for p in path), _MISSING)
    if obj is _MISSING:
        raise ReplayError(f"a recording refers to {'.'.join(map(str, path))}, which the call here does not have")
    try:
        same = _object_digest(obj) == data.get("fingerprint")
    except Uncrossable:
        same = False
    if not same:
        raise ReplayError(f"your function returned {'.'.join(map(str, path))} of its arguments after changing it in "
                          "place, which the clean kernel does not repeat")
    return obj


# ----------------------------------------------------------------------------- the code object, for inspection

def dump_code(code: Any) -> str:
    """A function's code object as text (``marshal``), for checks that inspect it (``refuse_reference``, loops)."""
    return base64.b64encode(marshal.dumps(code)).decode()


def load_code(text: str) -> types.CodeType:
    """The code object :func:`dump_code` wrote. Checks read it; nothing calls it (the
    :class:`Replayer` stands in for the function), so it cannot run in the clean kernel."""
    try:
        code = marshal.loads(base64.b64decode(text))
    except (ValueError, TypeError, EOFError) as err:
        raise ReplayError(f"a malformed code object in a recording ({err})") from None
    if not isinstance(code, types.CodeType):
        raise ReplayError("a recording's code object is not code")
    return code


# ----------------------------------------------------------------------------- the learner's kernel

_depth = [0]  # calls of recorded functions from inside recorded functions are not recorded


def _changeable(value: Any) -> bool:
    """An argument whose in-place change the clean kernel must see: an array, or a torch generator
    (drawing from it moves its state, and the test cell may draw from it next)."""
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    return (numpy is not None and isinstance(value, numpy.ndarray)) or (
        torch is not None and isinstance(value, (torch.Tensor, torch.Generator)))


def _named(args: tuple, kwargs: dict) -> dict[str, Any]:
    """A call's arguments by position ("0") or keyword name ("k:generator")."""
    return {str(i): a for i, a in enumerate(args)} | {f"k:{k}": v for k, v in kwargs.items()}


_NESTING = 3  # how deep _arguments looks into dicts, lists and tuples


def _arguments(args: tuple, kwargs: dict) -> dict[str, Any]:
    """The changeable arguments of a call, by position ("0") or keyword name ("k:generator"),
    and those inside a dict, list or tuple argument (``0["W_xh"]``, ``1[2]["c"]``), then the dicts
    and lists themselves (after what they hold): a check that hands over a list or a dict of arrays
    sees what the learner's function did to it in place."""
    found: dict[str, Any] = {}

    def walk(where: str, value: Any, depth: int) -> None:
        if _changeable(value):
            found[where] = value
        elif depth < _NESTING and type(value) in (dict, list, tuple):
            for key, item in value.items() if type(value) is dict else enumerate(value):
                if type(key) in (str, int):
                    walk(f"{where}[{json.dumps(key)}]", item, depth + 1)
            if type(value) is not tuple:
                found[where] = value

    for where, value in _named(args, kwargs).items():
        walk(where, value, 0)
    return found


class Recorder:
    """Calls the learner's function and writes down each call (learner's kernel)."""

    def __init__(self, name: str, fn: Any):
        self.fn, self.calls = fn, []
        self.__name__ = getattr(fn, "__name__", name)
        if hasattr(fn, "__code__"):
            self.__code__ = fn.__code__

    def __getattr__(self, name: str) -> Any:  # anything else the test reads of the function: its own
        return getattr(self.fn, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _depth[0]:
            return self.fn(*args, **kwargs)
        call: dict[str, Any] = {}
        try:
            call["key"] = digest(args, kwargs)
        except Uncrossable as err:
            call["key"], call["uncrossable"] = None, f"its arguments hold {err}"
        self.calls.append(call)
        _depth[0] += 1
        try:
            result = self.fn(*args, **kwargs)
        except BaseException as err:
            call["raise"] = [type(err).__name__, str(err)[:2000]]
            raise
        finally:
            _depth[0] -= 1
        try:
            call["return"] = encode(result, refs=_identities(args, kwargs))
            call["mutated"] = _after(args, kwargs)
            call.update(_sum_gradient(result, args, kwargs))
        except Uncrossable as err:
            call["uncrossable"] = f"it returned {err}"
        return result


_recording: dict[str, Any] = {}
RNG_KEY = "__random_state__"  # the global generators' states as the test cell starts: its random inputs match


def _rng_states() -> dict:
    """The states of Python's, numpy's and torch's global generators (of those imported)."""
    import random

    states = {"random": encode(random.getstate())}
    numpy, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if numpy is not None:
        states["numpy"] = encode(numpy.random.get_state())
    if torch is not None:
        states["torch"] = encode(torch.get_rng_state())
    return states


def _set_rng_states(states: dict) -> None:
    import random

    try:
        if "random" in states:
            random.setstate(decode(states["random"]))
        if "numpy" in states:
            import numpy

            numpy.random.set_state(decode(states["numpy"]))
        if "torch" in states:
            import torch

            torch.set_rng_state(decode(states["torch"]))
    except (TypeError, ValueError, RuntimeError) as err:
        raise ReplayError(f"the random state recorded in your kernel cannot be restored ({err})") from None


def record_start(namespace: dict, names: list[str]) -> None:
    """Wrap the learner's callables among ``names`` in ``namespace``; note the other values
    and the global random state (a test cell that draws inputs from it gets the same ones)."""
    _recording.clear()
    try:
        _recording[RNG_KEY] = ("rng", _rng_states(), None)
    except Uncrossable:
        pass
    for name in names:
        value = namespace.get(name, _MISSING)
        if value is _MISSING:
            continue
        if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):  # not modules or models
            recorder = Recorder(name, value)
            _recording[name] = ("function", value, recorder)
            namespace[name] = recorder
        else:
            _recording[name] = ("value", value, None)


def _resolved(fn: Any) -> dict[str, list[str]]:
    """The libraries the names in ``fn``'s code resolve to, for ``refuse_reference`` in the clean kernel."""
    from course_utils.core.checks import resolved_libraries

    return resolved_libraries(fn)


def record_finish(namespace: dict, path: str) -> None:
    """Put the learner's names back and write what the test cell got from them to ``path``."""
    out: dict[str, Any] = {}
    for name, (kind, original, recorder) in _recording.items():
        if kind == "rng":
            out[name] = {"rng": original}
            continue
        if kind == "function":
            namespace[name] = original
            code = getattr(original, "__code__", None)
            out[name] = {"function": recorder.__name__, "calls": recorder.calls,
                         "code": dump_code(code) if isinstance(code, types.CodeType) else None,
                         "resolved": _resolved(original) if isinstance(code, types.CodeType) else None}
            continue
        try:
            out[name] = {"value": encode(original)}
        except Uncrossable as err:
            out[name] = {"uncrossable": f"{name} is {err}"}
    Path(path).write_text(json.dumps(out))
    _recording.clear()


# ----------------------------------------------------------------------------- the clean kernel

_BUILTIN_ERRORS = {name: getattr(builtins, name) for name in dir(builtins)
                   if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)}


class Replayer:
    """Stands in for a learner's function in the clean kernel: same calls, same answers."""

    def __init__(self, name: str, record: dict):
        self.name, self.calls, self.done = name, list(record.get("calls", [])), 0
        self.__name__ = str(record.get("function", name))
        if record.get("code") is not None:
            self.__code__ = load_code(str(record["code"]))
        if isinstance(record.get("resolved"), dict):  # what the code's names were in the learner's kernel
            self.__resolved__ = {str(k): [str(v) for v in vs] for k, vs in record["resolved"].items()
                                 if isinstance(vs, list)}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.done >= len(self.calls):
            raise ReplayError(f"{self.name} is called more often here than it was in your kernel")
        call, self.done = self.calls[self.done], self.done + 1
        if "raise" in call:  # as in the learner's kernel, whatever the arguments
            ename, message = call["raise"]
            raise _BUILTIN_ERRORS.get(ename, RuntimeError)(message if ename in _BUILTIN_ERRORS
                                                           else f"{ename}: {message}")
        if "uncrossable" in call:
            raise ReplayError(f"{self.name}: {call['uncrossable']}")
        try:
            key = digest(args, kwargs)
        except Uncrossable as err:
            raise ReplayError(f"{self.name} is called with {err}") from None
        if key != call.get("key"):
            raise ReplayError(f"{self.name} is called with other arguments than in your kernel")
        targets = _arguments(args, kwargs)
        for where, value in call.get("mutated", {}).items():
            if where not in targets:
                raise ReplayError(f"{self.name}: a malformed recording (no argument {where})")
            _write_back(targets[where], value)
        result = decode(call.get("return"), _referable(args, kwargs))
        return _with_sum_gradient(self.name, result, call, targets) if "sum_gradient" in call else result


# ----------------------------------------------------------------------------- gradients, for a tensor answer

def _sum_gradient(result: Any, args: tuple, kwargs: dict) -> dict:
    """For a tensor answer with an autograd graph back to tensor arguments that require grad: the
    gradient of its sum with respect to each (``{"sum_gradient": {where: tensor or None}}``), or the
    error the backward pass raised (learner's kernel). Empty for any other answer."""
    torch = sys.modules.get("torch")
    if torch is None or type(result) is not torch.Tensor or result.grad_fn is None:
        return {}
    inputs = {where: t for where, t in _arguments(args, kwargs).items()
              if isinstance(t, torch.Tensor) and t.requires_grad}
    if not inputs:
        return {}
    try:
        grads = torch.autograd.grad(result.sum(), list(inputs.values()), retain_graph=True, allow_unused=True)
    except Exception as err:  # noqa: BLE001 - the clean kernel's backward raises it again
        return {"sum_gradient": {}, "gradient_error": [type(err).__name__, str(err)[:2000]]}
    return {"sum_gradient": {where: None if g is None else encode(g) for where, g in zip(inputs, grads, strict=True)}}


def _with_sum_gradient(name: str, result: Any, call: dict, targets: dict[str, Any]) -> Any:
    """``result`` joined to the clean kernel's arguments by the recorded gradient of its sum: a check
    that calls ``answer.sum().backward()`` gets the gradients the learner's kernel got (any other
    backward pass raises :class:`ReplayError`)."""
    import torch

    spec, error = call["sum_gradient"], call.get("gradient_error")
    if not isinstance(spec, dict) or not isinstance(result, torch.Tensor) or any(w not in targets for w in spec):
        raise ReplayError(f"{name}: a malformed recording (a gradient)")
    inputs = [targets[w] for w in spec] if error is None else [
        t for t in targets.values() if isinstance(t, torch.Tensor) and t.requires_grad]
    grads = [None if g is None else decode(g) for g in spec.values()]

    class SumGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, value: Any, *_: Any) -> Any:
            return value.clone()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            if error is not None:
                ename, message = error
                raise _BUILTIN_ERRORS.get(ename, RuntimeError)(message if ename in _BUILTIN_ERRORS
                                                               else f"{ename}: {message}")
            if not torch.equal(grad, torch.ones_like(grad)):
                raise ReplayError(f"{name}: the clean kernel knows the gradient of your answer's sum only")
            return (None, *grads)

    return SumGradient.apply(result.detach(), *inputs)


def _after(args: tuple, kwargs: dict) -> dict[str, Any]:
    """What the changeable arguments hold after a call (a dict or list that is not data is left out:
    it is not written back)."""
    out = {}
    for where, value in _arguments(args, kwargs).items():
        try:
            out[where] = encode(value)
        except Uncrossable:
            if _changeable(value):
                raise
    return out


def _write_back(target: Any, data: Any) -> None:
    """Apply what the learner's function did to an argument in place (where it changed): an array,
    a tensor or a generator, or the items of a dict or list (those inside written back first)."""
    if type(target) in (dict, list):
        try:
            same = encode(target) == data
        except Uncrossable:
            same = False
        if not same:
            value = decode(data)
            if type(value) is not type(target):
                raise ReplayError("a malformed recording (an argument changed in place)")
            if type(target) is list:
                target[:] = value
            else:
                target.clear()
                target.update(value)
        return
    value = decode(data)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(target, torch.Generator):
        target.set_state(value.get_state())
    elif torch is not None and isinstance(target, torch.Tensor):
        if not torch.equal(target.detach().cpu(), value.detach().cpu()):
            with torch.no_grad():
                target.copy_(value)
    else:
        import numpy as np

        if not np.array_equal(target, value, equal_nan=True):
            target[...] = value


def bind(namespace: dict, path: str, protected: list[str]) -> None:
    """Bind the recorded names into the clean kernel's ``namespace``, except ``protected`` ones
    (what the source notebook imports: the real checks, never the learner's stand-ins)."""
    try:
        recorded = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ReplayError(f"no usable recording of this test cell from your kernel ({type(err).__name__})") from None
    if not isinstance(recorded, dict):
        raise ReplayError("a malformed recording")
    for name, entry in recorded.items():
        if name == RNG_KEY and isinstance(entry, dict) and isinstance(entry.get("rng"), dict):
            _set_rng_states(entry["rng"])
            continue
        if name in protected or not isinstance(entry, dict):
            continue  # the source's own imports win over anything the learner's kernel reports
        if "uncrossable" in entry:
            raise ReplayError(str(entry["uncrossable"]))
        namespace[name] = Replayer(name, entry) if "function" in entry else decode(entry.get("value"))
