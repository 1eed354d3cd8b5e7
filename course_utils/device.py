"""Every notebook (00, section 2): pick the device every notebook runs on.

One function, :func:`get_device`, decides. Notebooks never write ``"cuda"`` or
``"cpu"`` themselves, so the same notebook runs on a laptop and on a GPU box.

Set the environment variable ``COURSE_DEVICE`` to force a choice::

    COURSE_DEVICE=cpu  make test     # always the CPU
    COURSE_DEVICE=cuda make test     # the GPU, or a clear error if there is none

Unset (or ``auto``), the best available device is used: cuda, then mps, then cpu.
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "COURSE_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "mps")


class DeviceUnavailableError(RuntimeError):
    """Raised when a device is requested explicitly but this machine does not have it."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """Names of the devices this machine can use, best first (always ends with ``"cpu"``)."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if _mps_available():
        found.append("mps")
    found.append("cpu")
    return found


def get_device(requested: str | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        requested: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``. ``None`` reads the
            ``COURSE_DEVICE`` environment variable, which defaults to ``"auto"``.

    Raises:
        ValueError: the request is not one of the choices above.
        DeviceUnavailableError: an explicit request for a device this machine lacks.
            There is never a silent fallback to the CPU.
    """
    source = "argument"
    if requested is None:
        requested, source = os.environ.get(ENV_VAR, "auto"), f"${ENV_VAR}"
    choice = requested.strip().lower() or "auto"
    if choice not in CHOICES:
        raise ValueError(
            f"{source}={requested!r} is not a device this course knows; "
            f"use one of {', '.join(CHOICES)}."
        )
    have = available_devices()
    if choice == "auto":
        return torch.device(have[0])
    if choice not in have:
        raise DeviceUnavailableError(
            f"{source}={requested!r} asks for {choice}, but this machine has only "
            f"{', '.join(have)} (torch {torch.__version__}). Unset {ENV_VAR} or set it to "
            f"'cpu' to run on the CPU."
        )
    return torch.device(choice)


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. ``cuda (NVIDIA H100)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return device.type
