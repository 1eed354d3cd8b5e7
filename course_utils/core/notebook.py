"""Every notebook: its first and last lines, the device line, the notebook's run time, and the course's code shown.

The first code cell of each lecture calls :func:`start_notebook`, the last one
:func:`report_run_time`::

    device = start_notebook()   # prints "Running on: cpu (1 thread, COURSE_THREADS=1)", starts the timer
    ...
    report_run_time()           # prints "notebook ran in 12.3 s (after imports) on cpu (1 thread, ...)"

Where a lesson reads a helper's code, :func:`show_source` prints it with the file it lives in.
"""

from __future__ import annotations

import inspect
import textwrap
import time
from pathlib import Path
from typing import Any

import torch

from .device import describe_device, get_device

_started: dict[str, object] = {}  # the running notebook's start time and device


def start_notebook() -> torch.device:
    """Choose the device (:func:`course_utils.get_device`), print it, start the timer; return the device."""
    device = get_device()
    print("Running on:", describe_device(device))
    _started.update(time=time.perf_counter(), device=device)
    return device


def report_run_time() -> float:
    """Print and return the seconds since :func:`start_notebook` (imports excluded)."""
    if "time" not in _started:
        raise RuntimeError("report_run_time() needs start_notebook() to have run first (the notebook's first cell)")
    seconds = time.perf_counter() - _started["time"]  # type: ignore[operator]
    print(f"notebook ran in {seconds:.1f} s (after imports) on {describe_device(_started['device'])}")
    return seconds


def show_source(obj: Any) -> str:
    """Print the code of a function, class or method of the course, under the file and line it starts at.

    Returns the printed text. A lesson calls it where the code is the lesson, e.g.
    ``show_source(DecoderLayer.forward)``.
    """
    try:
        lines, start = inspect.getsourcelines(obj)
        path = Path(inspect.getsourcefile(obj) or "")
    except (TypeError, OSError):
        raise TypeError(f"show_source needs a function, class or method written in Python, got {obj!r}") from None
    parts = path.parts
    where = "/".join(parts[parts.index("course_utils"):]) if "course_utils" in parts else path.name
    text = f"# {where}, line {start}\n" + textwrap.dedent("".join(lines))  # a method without its class's indent
    print(text)
    return text
