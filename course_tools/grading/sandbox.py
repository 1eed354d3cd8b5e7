"""The grader's sandbox: every kernel runs under bubblewrap (Debian's ``bubblewrap``).

Inside, a submission sees the machine's files read-only, except its own job folder; no
network (the kernel talks to the grader over Unix sockets in that folder); its own PID
namespace, so every process it starts dies with the kernel; not root; and none of the
paths the grader hides: other submissions, the source notebook with its hidden tests,
the instructor's extra tests (mounted over by empty folders).

:func:`sandbox_status` says once whether bubblewrap works here; where it does not, the
grader runs kernels as before and says so (``--require-sandbox`` refuses instead).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

NOBODY = "65534"  # the uid and gid inside the sandbox


@functools.cache
def sandbox_status() -> str:
    """"" if bubblewrap can start a sandbox on this machine, else the reason it cannot."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = sandboxed(["/bin/true"], Path("/tmp"), [])
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if done.returncode != 0:
        return f"bubblewrap could not start a sandbox here: {done.stderr.strip()[:200]}"
    return ""


REPO = Path(__file__).resolve().parents[2]  # course_utils, course_tools and data/: the kernel needs them


def _needed_under_tmp() -> list[str]:
    """What the kernel must read that may lie under /tmp (hidden by the sandbox's own /tmp).

    A fresh clone in /tmp (as CI makes) holds the course and its virtual environment there.
    """
    needed = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, REPO)}
    return sorted(str(p) for p in needed if Path("/tmp") in p.parents)


def sandboxed(argv: Sequence[str], job_dir: Path, hide: Sequence[Path]) -> list[str]:
    """``argv`` wrapped in bubblewrap: read-only system, ``job_dir`` writable, ``hide`` invisible."""
    job = str(job_dir)
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in _needed_under_tmp():  # after /tmp's tmpfs: back in view, read-only
        args += ["--ro-bind", path, path]
    args += ["--bind", job, job,  # after /tmp's tmpfs, so a job folder under /tmp stays visible
            "--unshare-all", "--uid", NOBODY, "--gid", NOBODY,  # no network, own PIDs, not root
            "--die-with-parent", "--new-session", "--chdir", job,
            "--setenv", "HOME", job, "--setenv", "IPYTHONDIR", f"{job}/.ipython",
            "--setenv", "MPLCONFIGDIR", f"{job}/.matplotlib",
            "--unsetenv", "JPY_PARENT_PID"]  # its parent is the namespace's init: --die-with-parent does the job
    for path in (Path(p).resolve() for p in hide):
        if path == job_dir.resolve() or path in job_dir.resolve().parents:
            continue  # hiding it would hide the job folder too
        if path.is_dir():
            args += ["--tmpfs", str(path)]  # an empty folder in its place
        elif path.is_file():
            args += ["--ro-bind", "/dev/null", str(path)]
    return [*args, "--", *argv]
