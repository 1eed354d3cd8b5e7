"""Test helpers that stand in for a learner's notebook code."""

from __future__ import annotations

import types
from collections.abc import Callable


def as_learner(fn: Callable, name: str | None = None) -> Callable:
    """A copy of ``fn`` as if the learner had typed it in the notebook (module ``__main__``, its own name).

    The checks refuse a function that reaches the course's own implementation; a test that wants a
    right answer without writing one more copy of the maths hands the reference in through this.
    """
    code = fn.__code__.replace(co_name=name or f"my_{fn.__name__}")
    globals_ = {**fn.__globals__, "__name__": "__main__"}
    copy = types.FunctionType(code, globals_, code.co_name, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy
