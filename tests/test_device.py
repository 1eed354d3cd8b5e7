import os
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_info

from course_utils.device import (
    DeviceUnavailableError,
    available_devices,
    cpu_threads_requested,
    describe_device,
    get_device,
    set_cpu_threads,
)


def test_auto_picks_best_available(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else available_devices()[0]
    assert get_device().type == expected


def test_env_var_forces_cpu(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_env_var_is_case_and_space_insensitive(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "  CPU ")
    assert get_device() == torch.device("cpu")


def test_argument_overrides_env(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "nonsense")
    assert get_device("cpu") == torch.device("cpu")


def test_cuda_without_gpu_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(DeviceUnavailableError, match=r"COURSE_DEVICE='cuda' asks for cuda.*only .*cpu"):
        get_device()


def test_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("cuda") == torch.device("cuda")
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert get_device() == torch.device("cuda")


def test_unknown_device_names_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "gpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda, mps"):
        get_device()


def test_describe_cpu():
    assert describe_device(torch.device("cpu")).startswith("cpu (")


def test_thread_request_defaults_to_one_and_reads_the_variable(monkeypatch):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    assert cpu_threads_requested() == 1
    monkeypatch.setenv("COURSE_THREADS", "3")
    assert cpu_threads_requested() == 3
    monkeypatch.setenv("COURSE_THREADS", "auto")
    assert cpu_threads_requested() is None
    assert cpu_threads_requested(2) == 2


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_bad_thread_request_names_the_variable(monkeypatch, bad):
    monkeypatch.setenv("COURSE_THREADS", bad)
    with pytest.raises(ValueError, match=r"\$COURSE_THREADS=.*whole number >= 1, or 'auto'"):
        cpu_threads_requested()


def test_set_cpu_threads_limits_torch_and_blas():
    before = torch.get_num_threads()
    try:
        assert set_cpu_threads(1) == 1
        assert torch.get_num_threads() == 1
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(n == 1 for n in blas), threadpool_info()
        assert "1 thread, COURSE_THREADS=" in describe_device(torch.device("cpu"))
    finally:
        torch.set_num_threads(before)


def test_the_first_get_device_applies_the_policy():
    """In a fresh process, without any call but get_device(), torch and BLAS run on COURSE_THREADS threads."""
    code = (
        "import torch\n"
        "torch.set_num_threads(2)\n"
        "from threadpoolctl import threadpool_info\n"
        "from course_utils import get_device\n"
        "get_device()\n"
        "blas = sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
        "print(torch.get_num_threads(), blas)\n"
    )
    env = {**os.environ, "COURSE_THREADS": "1", "COURSE_DEVICE": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1", "[1]"]
