import pytest
import torch

from course_utils.device import DeviceUnavailableError, available_devices, describe_device, get_device


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
