"""The grader's verdicts on the submissions that hit a limit do not depend on the machine's speed.

Twice as many busy processes as cores (as test_timing.py starts) compete with the grading of the
fixture submissions that reach, or must not reach, a limit: the memory cap, the cell time limit,
the output cap, a kernel that exits. Every verdict must be the one tests/test_grading.py expects
on a quiet machine, and the busy processes must really have taken their share of the cores.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from contextlib import contextmanager

import pytest
from test_grading import LIMITS, SOURCE, check_case, check_limit_messages, copy_submissions

from course_tools.grading.runner import grade_all

pytestmark = pytest.mark.slow  # a minute, and its load slows the other worker: not in `make test-fast`

CASES = ("full", "infinite_loop", "memory_bomb", "os_exit", "print_flood")
BUSY_SECONDS = 240  # a busy process stops by itself after this, should the test die before killing it


def spin(seconds: float, cpu, slot: int) -> None:
    """Keep a core busy for ``seconds`` of wall-clock time; write the CPU time used so far to ``cpu[slot]``."""
    os.setsid()  # a program of its own: Linux shares the CPU among sessions first (autogroups), as among users'
    # programs, so busy processes in the test's session would only compete with the test, not with the kernels
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(100_000):
            pass
        cpu[slot] = time.process_time()


@contextmanager
def busy_processes(n: int):
    """``n`` busy processes while the block runs, always killed after it; yields their CPU times."""
    cpu = multiprocessing.Array("d", n, lock=False)
    busy = [multiprocessing.Process(target=spin, args=(BUSY_SECONDS, cpu, i), daemon=True) for i in range(n)]
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


def test_limits_hold_on_a_loaded_machine(tmp_path):
    subs = copy_submissions(CASES, tmp_path / "subs")
    busy = 2 * (os.cpu_count() or 1)
    with busy_processes(busy) as cpu:
        before, start = sum(cpu), time.monotonic()
        rows = grade_all(subs, SOURCE, LIMITS, jobs=2, progress=False)
        share = (sum(cpu) - before) / (busy * (time.monotonic() - start))  # of a core, per busy process
    load = f"{busy} busy processes got {share:.2f} of a core each; load average {os.getloadavg()}"
    print(load)  # shown by pytest -rP, and with any failure
    assert sorted({r.student for r in rows}) == sorted(CASES)
    for case in CASES:
        check_case(rows, case)
    check_limit_messages(rows)
    # The load was real: the busy processes ran (a tenth of a core each at least; more load elsewhere
    # leaves them less), and they were too many for each to get a core of its own (2 per core: half each).
    assert share >= 0.1, f"the busy processes hardly ran: the test shows nothing ({load})"
    assert share <= 0.75, f"the busy processes did not compete for the cores: the test shows nothing ({load})"
