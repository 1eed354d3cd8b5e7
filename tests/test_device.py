import os
import subprocess
import sys

import pytest
import torch
from threadpoolctl import threadpool_info

from course_utils.core import device as device_module
from course_utils.core.device import (
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


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_set_cpu_threads_limits_torch_and_blas_and_auto_restores():
    set_cpu_threads("auto")
    torch_auto, blas_auto = torch.get_num_threads(), blas_threads()
    assert torch_auto == device_module._ORIGINAL_TORCH_THREADS
    try:
        assert set_cpu_threads(1) == 1
        assert torch.get_num_threads() == 1
        assert blas_threads() and set(blas_threads()) == {1}, threadpool_info()
        assert describe_device(torch.device("cpu")).endswith("(1 thread, COURSE_THREADS=1)")
        assert set_cpu_threads(2) == 2  # a section that asks for more
        assert set(blas_threads()) == {2}
        assert describe_device(torch.device("cpu")).endswith("(2 threads, COURSE_THREADS=2)")
        set_cpu_threads("auto")  # back to the libraries' own choice, whatever was limited before
        assert (torch.get_num_threads(), blas_threads()) == (torch_auto, blas_auto)
        assert describe_device(torch.device("cpu")).endswith("COURSE_THREADS=auto)")
    finally:
        set_cpu_threads(1)  # the policy the rest of the session runs under


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


def test_is_cpu_names_the_cpu_only():
    from course_utils.core.device import is_cpu

    assert is_cpu(torch.device("cpu")) and is_cpu("cpu")
    assert not is_cpu(torch.device("cuda", 0)) and not is_cpu(torch.device("mps"))
