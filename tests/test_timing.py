import os
import time

import pytest
import torch
from load import busy_processes

from course_utils.core.device import set_cpu_threads
from course_utils.shared.timing import clock_name, seconds, time_rounds, uses_cpu_time

CPU = torch.device("cpu")


@pytest.fixture
def one_thread():
    set_cpu_threads(1)
    yield
    set_cpu_threads()  # back to the course's policy ($COURSE_THREADS)


def work(n: int = 40) -> None:
    """About a tenth of a second of CPU-bound torch work on one thread."""
    x = torch.randn(256, 256)
    for _ in range(n):
        x = torch.tanh(x @ x / 16)


def spin_cpu(seconds_: float) -> None:
    """Work until this process has spent ``seconds_`` of CPU time, however long a busy machine makes that take."""
    end = time.process_time() + seconds_
    while time.process_time() < end:
        pass


def test_one_thread_on_the_cpu_reads_cpu_time(one_thread):
    assert uses_cpu_time(CPU) and clock_name(CPU) == "CPU time"
    assert seconds(lambda: time.sleep(0.3), CPU) < 0.05  # waiting is not work
    took = seconds(lambda: spin_cpu(0.2), CPU)
    assert 0.2 <= took < 0.25  # work is counted in full (a wall-clock spin would undercount on a busy machine)


def test_several_threads_read_the_wall_clock():
    set_cpu_threads(2)
    try:
        assert not uses_cpu_time(CPU) and clock_name(CPU) == "wall-clock time"
        assert seconds(lambda: time.sleep(0.2), CPU) >= 0.2
    finally:
        set_cpu_threads()  # back to the course's policy ($COURSE_THREADS)


def test_other_programs_do_not_stretch_the_time(one_thread):
    """Twice as many busy processes as cores: the wall clock stretches, the CPU time does not."""
    quiet = min(seconds(work, CPU) for _ in range(3))
    with busy_processes(2 * os.cpu_count(), seconds=30):
        start = time.perf_counter()
        loaded = min(seconds(work, CPU) for _ in range(3))
        wall = time.perf_counter() - start
    assert loaded < 1.5 * quiet, f"CPU time {loaded:.3f} s under load, {quiet:.3f} s quiet"
    assert wall > 1.5 * 3 * quiet, "the machine was not loaded: the test shows nothing"


def test_the_work_runs_once_and_its_result_is_not_needed(one_thread):
    calls = []
    assert seconds(lambda: calls.append(1), CPU) >= 0
    assert calls == [1]


def test_time_rounds_interleaves_the_calls_and_keeps_only_the_timed_rounds():
    order = []
    calls = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    times = time_rounds(calls, torch.device("cpu"), reps=2, warmup=1, between=lambda name: order.append(f"{name}!"))
    assert order == ["a", "a!", "b", "b!"] * 3  # one warm-up round and two timed rounds, each call in turn
    assert set(times) == {"a", "b"} and all(len(v) == 2 and min(v) >= 0 for v in times.values())
