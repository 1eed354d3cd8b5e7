"""The grader's verdicts on the submissions that hit a limit do not depend on the machine's speed.

Twice as many busy processes as cores (tests/load.py, as in test_timing.py) compete with the grading of the
fixture submissions that reach, or must not reach, a limit that a slow machine could decide otherwise:
the cell time limit and the memory cap. Every verdict must be the one tests/test_grading.py expects
on a quiet machine, and the busy processes must really have taken their share of the cores.
"""

from __future__ import annotations

import os
import time

import pytest
from load import busy_processes
from test_grading import LIMITS, SOURCE, check_case, check_limit_messages, copy_submissions

from course_tools.grading.runner import grade_all

pytestmark = pytest.mark.slow  # half a minute, and its load slows the other worker: not in `make test-fast`

# The verdicts a slow machine could change: an honest notebook within its time limits, a loop caught by the cell
# limit (not by the notebook's), a memory bomb stopped by the memory cap before the clock. A kernel that exits and
# a print flood meet limits that do not count time (tests/test_grading.py grades them, beside the other worker).
CASES = ("full", "infinite_loop", "memory_bomb")


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
