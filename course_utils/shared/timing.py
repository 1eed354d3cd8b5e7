"""Notebooks 08 (section 4), 08c (the KV cache, section 1), 09 and 09b (scans): timing a piece of work so
that a busy machine does not change the verdict.

A learner's laptop runs a browser, a second notebook, an autograder: they take turns on the
cores, and every wall-clock time measured meanwhile stretches, unevenly: load comes in
bursts, and a long run is more likely than a short one to be caught by one. A notebook that
asserts "the cache is faster" or "the step time grows less than T^2" on the wall clock can
then fail on a busy machine.

On the CPU with one PyTorch thread (the course's thread policy, :mod:`course_utils.core.device`)
this module reads the **CPU time of this process** (:func:`time.process_time`): the seconds
the cores spent on our work, which other programs do not stretch. On an idle machine it
equals the wall clock. It reads the wall clock instead, after waiting for the device, on a
GPU (whose work is not the CPU's), with several threads (idle threads spinning would count
as work) and on Windows (whose CPU-time clock ticks only every 15.6 ms).

    seconds(lambda: model(x).sum().backward(), device)  # -> float
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable

import torch


def uses_cpu_time(device: torch.device) -> bool:
    """True where :func:`seconds` reads the process's CPU time, False where it reads the wall clock."""
    return device.type == "cpu" and torch.get_num_threads() == 1 and sys.platform != "win32"


def clock_name(device: torch.device) -> str:
    """What :func:`seconds` measures on ``device``, for a printout: "CPU time" or "wall-clock time"."""
    return "CPU time" if uses_cpu_time(device) else "wall-clock time"


def synchronize(device: torch.device) -> None:
    """Wait until every operation queued on ``device`` has finished (GPUs run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def seconds(work: Callable[[], object], device: torch.device, *, wall_clock: bool = False) -> float:
    """Seconds that ``work()`` takes on ``device``: CPU time where :func:`uses_cpu_time`, else (or with
    ``wall_clock``) the wall clock."""
    clock = time.process_time if uses_cpu_time(device) and not wall_clock else time.perf_counter
    synchronize(device)
    start = clock()
    work()
    synchronize(device)
    return clock() - start


def time_rounds(calls: dict[Hashable, Callable[[], object]], device: torch.device, *, reps: int, warmup: int = 1,
                between: Callable[[Hashable], None] | None = None,
                wall_clock: bool = False) -> dict[Hashable, list[float]]:
    """Seconds of each call, ``{name: [s, ...]}`` (``reps`` each), timed in interleaved rounds.

    Each round runs every call once, in turn, so a burst of load slows all of them alike rather
    than one; the first ``warmup`` rounds are not kept (caches, lazy initialisation).
    ``between(name)`` runs, untimed, after each call (fresh inputs, cleared gradients).
    """
    times: dict[Hashable, list[float]] = {name: [] for name in calls}
    for round_ in range(warmup + reps):
        for name, call in calls.items():
            took = seconds(call, device, wall_clock=wall_clock)
            if between is not None:
                between(name)
            if round_ >= warmup:
                times[name].append(took)
    return times
