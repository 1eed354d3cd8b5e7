"""Busy processes for the tests that show a verdict does not depend on the machine's speed."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

BUSY_SECONDS = 240  # a busy process stops by itself after this, should a test die before killing it


def spin(seconds: float, cpu, slot: int) -> None:
    """Keep a core busy for ``seconds`` of wall-clock time; write the CPU time used so far to ``cpu[slot]``."""
    os.setsid()  # a program of its own: Linux shares the CPU among sessions first (autogroups), as among users'
    # programs, so busy processes in the test's session would only compete with the test, not with its kernels
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(100_000):
            pass
        cpu[slot] = time.process_time()


@contextmanager
def busy_processes(n: int, seconds: float = BUSY_SECONDS) -> Iterator:
    """``n`` busy processes while the block runs, always killed after it; yields their CPU times so far."""
    cpu = multiprocessing.Array("d", n, lock=False)
    busy = [multiprocessing.Process(target=spin, args=(seconds, cpu, i), daemon=True) for i in range(n)]
    try:
        for p in busy:
            p.start()
        time.sleep(0.5)  # let them start
        yield cpu
    finally:
        for p in busy:
            if p.pid is not None:
                p.kill()
                p.join()
