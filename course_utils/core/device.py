"""Every notebook (00, section 2): pick the device every notebook runs on, and its CPU threads.

One function, :func:`get_device`, decides. Notebooks never write ``"cuda"`` or
``"cpu"`` themselves, so the same notebook runs on a laptop and on a GPU box.

Set the environment variable ``COURSE_DEVICE`` to force a choice::

    COURSE_DEVICE=cpu  make test     # always the CPU
    COURSE_DEVICE=cuda make test     # the GPU, or a clear error if there is none

Unset (or ``auto``), the best available device is used: cuda, then mps, then cpu.

**CPU threads: one, unless you ask.** The course's models are small: a time step is a few
small matrix products, and spreading those over several threads costs more in
synchronisation than it saves. On a busy machine (two notebooks, the grader, a browser)
extra threads cost far more: two kernels with two threads each on two cores ran 10x slower
than one. So the first :func:`get_device` call of a process applies the course's thread
policy, :func:`set_cpu_threads`: ``COURSE_THREADS`` threads (default 1; ``auto`` keeps the
libraries' own choice, one per core) for PyTorch's intra-op pool and numpy's BLAS. A
section that gains from more threads asks for them with :func:`set_cpu_threads`.
"""

from __future__ import annotations

import os

import torch
from threadpoolctl import threadpool_limits

ENV_VAR = "COURSE_DEVICE"
CHOICES = ("auto", "cpu", "cuda", "mps")
THREADS_VAR = "COURSE_THREADS"
DEFAULT_THREADS = 1
_ORIGINAL_TORCH_THREADS = torch.get_num_threads()  # the library's own choice, restored by "auto"
_policy: dict = {"applied": False, "asked": None, "blas": None}  # set by set_cpu_threads


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
    """Return the device to run on (the first call also applies the CPU thread policy).

    Args:
        requested: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``. ``None`` reads the
            ``COURSE_DEVICE`` environment variable, which defaults to ``"auto"``.

    Raises:
        ValueError: the request is not one of the choices above.
        DeviceUnavailableError: an explicit request for a device this machine lacks.
            There is never a silent fallback to the CPU.
    """
    if not _policy["applied"]:
        set_cpu_threads()
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


def cpu_threads_requested(requested: int | str | None = None) -> int | None:
    """The thread count asked for: ``requested``, else ``$COURSE_THREADS``, else 1; ``None`` for ``auto``."""
    source = "argument"
    if requested is None:
        requested, source = os.environ.get(THREADS_VAR, str(DEFAULT_THREADS)), f"${THREADS_VAR}"
    text = str(requested).strip().lower()
    if text == "auto":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{source}={requested!r} is not a thread count; use a whole number >= 1, or 'auto'.")
    return int(text)


def set_cpu_threads(requested: int | str | None = None) -> int:
    """Use ``requested`` CPU threads (default ``$COURSE_THREADS``, else 1) in PyTorch and numpy's BLAS.

    ``"auto"`` puts both libraries back on their own default (one thread per core). Returns the
    number of threads PyTorch now uses.
    """
    n = cpu_threads_requested(requested)
    if _policy["blas"] is not None:  # undo the previous BLAS limit first
        _policy["blas"].restore_original_limits()
        _policy["blas"] = None
    torch.set_num_threads(_ORIGINAL_TORCH_THREADS if n is None else n)
    if n is not None:
        _policy["blas"] = threadpool_limits(limits=n, user_api="blas")  # numpy's OpenBLAS (or MKL), process-wide
    _policy.update(applied=True, asked="auto" if n is None else str(n))
    return torch.get_num_threads()


def is_cpu(device: torch.device) -> bool:
    """True for the CPU, where the committed results in ``benchmarks/results`` were measured: a
    notebook compares its live run with them there, since another device trains to slightly
    different weights."""
    return torch.device(device).type == "cpu"


def describe_device(device: torch.device) -> str:
    """One line naming the device, e.g. ``cuda (NVIDIA H100)`` or ``cpu (1 thread, COURSE_THREADS=1)``.

    For the CPU it shows the threads PyTorch uses and the request that set them (the
    environment variable's value, or the argument of the last :func:`set_cpu_threads` call).
    """
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        n = torch.get_num_threads()
        policy = f"{THREADS_VAR}={_policy['asked']}" if _policy["applied"] else "thread policy not applied yet"
        return f"cpu ({n} thread{'s' if n != 1 else ''}, {policy})"
    return device.type
