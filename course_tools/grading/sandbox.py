"""The grader's sandbox: every kernel runs under bubblewrap (Debian's ``bubblewrap``).

A submission sees only what its kernel needs, read-only (:func:`exposed`): the system's programs
and libraries (``/usr``, ``/lib*``, the few files of ``/etc`` the dynamic loader and fonts read),
the Python environment (the virtual environment and the interpreter it was made from), the
course's package ``course_utils``, the grader's ``course_tools.grading`` (the kernel runs it),
``data/`` and ``benchmarks/results/``. Writable: its own job folder (its home) and a private
``/tmp``. Nothing else exists in there: not the home directory, the gradebook (``--out``), other
submissions, the source notebook with its hidden tests, the instructor's extra tests, nor
anything beside the course. Its environment is built from nothing (:func:`kernel_env`): no
variable of the grader's (API tokens...) gets in. No network (the kernel talks to the grader over
Unix sockets in its job folder); its own PID namespace, so every process it starts dies with the
kernel; not root; at most :attr:`~.executor.Limits.max_processes` processes and threads
(:func:`process_limit`), and an address-space cap (:mod:`.sandbox_kernel`).

:func:`sandbox_status` says once whether bubblewrap works here; where it does not, the grader
says so loudly and runs kernels as before (``--require-sandbox`` refuses instead).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

NOBODY = "65534"  # the uid and gid inside the sandbox
REPO = Path(__file__).resolve().parents[2]
# What of the repository a kernel reads: the course's package, the grader (it runs the kernel and
# the replay cells), the data files, the benchmark tables notebooks quote and pyproject.toml (00
# checks the pins). Not notebooks/ (the sources), student/, gradebook/, tests/ nor anything else.
COURSE_PATHS = ("course_utils", "course_tools/__init__.py", "course_tools/grading", "data", "benchmarks/results",
                "pyproject.toml")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
               "/sys/devices/system/cpu")  # the CPUs' topology, which torch and OpenMP read
# Of /etc, what the dynamic loader, fonts, locales and time zones read (no passwd, no hosts, no keys).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "fonts", "localtime", "alternatives", "mime.types")
THREAD_VARS = ("COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
COURSE_VARS = ("COURSE_DEVICE", "COURSE_WIDGETS", "COURSE_THREADS")  # the course's own switches (core.device...)
LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")


@functools.cache
def sandbox_status() -> str:
    """"" if bubblewrap can start a sandbox on this machine, else the reason it cannot."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = sandboxed(["/bin/true"], Path("/tmp"), [])
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30, env=kernel_env(Path("/tmp")))
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bubblewrap could not start: {err}"
    if done.returncode != 0:
        return f"bubblewrap could not start a sandbox here: {done.stderr.strip()[:200]}"
    return ""


def _python_paths() -> set[Path]:
    """The Python environment: the virtual environment, the interpreter it links to, sys.path outside the course."""
    prefixes = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    prefixes |= {Path(sys.executable).parent}
    found = {q for p in prefixes for q in (p.absolute(), p.resolve())}
    for entry in sys.path:  # the course's own folder (an editable install) is in view only as COURSE_PATHS
        path = Path(entry) if entry else None
        if path is None or not path.is_dir() or path.resolve() == Path("/"):
            continue
        for p in (path.absolute(), path.resolve()):
            if not (p == REPO or REPO in p.parents) or _inside(p, list(found)):
                found.add(p)
    return found


@functools.cache
def exposed() -> tuple[tuple[str, str], ...]:
    """(kind, path) of what a kernel sees, read-only: ("symlink", "/lib=usr/lib") or ("ro", "/usr")."""
    out: list[tuple[str, str]] = []
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out.append(("symlink", f"{d}={os.readlink(d)}"))
        elif os.path.isdir(d):
            out.append(("ro", d))
    out += [("ro", f"/etc/{name}") for name in ETC_FILES if os.path.lexists(f"/etc/{name}")]
    system = [Path(d.split("=")[0]) for _, d in out]
    python = sorted(str(p) for p in _python_paths() if p.exists() and not _inside(p, system))
    out += [("ro", p) for p in _outermost(python)]
    out += [("ro", str(REPO / p)) for p in COURSE_PATHS if (REPO / p).exists()]
    return tuple(out)


def _inside(path: Path, folders: Sequence[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def _outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another one of them."""
    kept: list[str] = []
    for p in sorted(paths):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return kept


def kernel_env(home: Path, threads: int = 0) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's but the locale and the course's switches.

    ``PATH`` is the virtual environment's and the system's; ``HOME`` the kernel's own folder; the
    thread variables say ``threads`` where it is set (kernels side by side share the cores).
    """
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
           "HOME": str(home), "USER": "nobody", "LOGNAME": "nobody", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython"),
           "PYTHONNOUSERSITE": "1"}
    env.update({var: os.environ[var] for var in (*LOCALE_VARS, *COURSE_VARS) if var in os.environ})
    if threads > 0:
        env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env


def matplotlib_fonts(home: Path) -> None:
    """Put matplotlib's font list in a kernel's home (its ``MPLCONFIGDIR``, :func:`kernel_env`).

    Every grading kernel starts in a fresh home, where matplotlib would list the machine's fonts again
    (a fraction of a second to seconds of each start, two kernels per submission). The list is built
    once per environment by :func:`_font_list`, with a kernel's environment, and copied in.
    """
    built = _font_list()
    if built is None:
        return  # the kernel lists the fonts itself, as before
    target = home / ".matplotlib"
    target.mkdir(parents=True, exist_ok=True)
    for file in built.glob("fontlist-*.json"):
        shutil.copyfile(file, target / file.name)


@functools.cache
def _font_list() -> Path | None:
    """The folder holding matplotlib's font list for this environment, or None where it cannot be built.

    Built in the user's cache folder by a process with a kernel's environment (:func:`kernel_env`, a home of its
    own): it lists the system's fonts and matplotlib's, none of the grader's home, as a kernel in the sandbox
    would. Keyed by the environment and matplotlib's version; two graders building at once keep one.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        key = f"{sys.prefix}|{sys.version}|{version('matplotlib')}"
    except PackageNotFoundError:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "course-grading"
    folder = cache / f"matplotlib-fonts-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if any(folder.glob("fontlist-*.json")):
        return folder
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="fonts-", dir=cache) as tmp:
            home = Path(tmp)
            subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=kernel_env(home),
                           cwd=home, capture_output=True, timeout=300, check=True)
            if not any((home / ".matplotlib").glob("fontlist-*.json")):
                return None
            try:
                (home / ".matplotlib").rename(folder)
            except OSError:
                pass  # another grader put its list there first: the same list
    except (OSError, subprocess.SubprocessError):
        return None
    return folder if any(folder.glob("fontlist-*.json")) else None


def sandboxed(argv: Sequence[str], job_dir: Path, hide: Sequence[Path], tmp_mb: int = 1024) -> list[str]:
    """``argv`` wrapped in bubblewrap: only :func:`exposed` read-only, ``job_dir`` writable, a private
    ``/tmp`` of ``tmp_mb`` MiB; ``hide``: paths inside an exposed one that must not be seen."""
    job = str(job_dir)
    args = ["bwrap", "--dev", "/dev", "--proc", "/proc", "--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp"]
    for kind, path in exposed():  # after /tmp's tmpfs: a course or environment under /tmp stays visible
        if kind == "symlink":
            link, target = path.split("=", 1)
            args += ["--symlink", target, link]
        else:
            args += ["--ro-bind", path, path]
    args += ["--bind", job, job,  # after /tmp's tmpfs, so a job folder under /tmp stays visible
             "--unshare-all", "--uid", NOBODY, "--gid", NOBODY, "--cap-drop", "ALL",  # no network, own PIDs
             "--die-with-parent", "--new-session", "--chdir", job,
             "--unsetenv", "JPY_PARENT_PID"]  # its parent is the namespace's init: --die-with-parent does the job
    shown = [Path(p) for kind, p in exposed() if kind == "ro"] + [job_dir.resolve()]
    for path in (Path(p).resolve() for p in hide):
        if path == job_dir.resolve() or path in job_dir.resolve().parents:
            continue  # hiding it would hide the job folder too
        if not _inside(path, shown):
            continue  # not in view anyway
        if path.is_dir():
            args += ["--tmpfs", str(path)]  # an empty folder in its place
        elif path.is_file():
            args += ["--ro-bind", "/dev/null", str(path)]
    return [*args, "--remount-ro", "/", "--", *argv]


# --- the process limit ---------------------------------------------------------------------------
#
# RLIMIT_NPROC, set by sandbox_kernel inside the sandbox's user namespace, counts the sandbox's
# own processes and threads (Linux >= 5.14 counts per user namespace), except where the grader
# runs as root: the kernel exempts root's processes, whatever their namespace. There, a pids
# cgroup holds each kernel (cgroup v2 where this process may make one below its own, else v1's
# pids hierarchy); without either, nothing bounds the count and the grader says so.

CGROUP_V1 = Path("/sys/fs/cgroup/pids")


def _own_cgroup_v2() -> Path | None:
    try:
        line = next(line for line in Path("/proc/self/cgroup").read_text().splitlines() if line.startswith("0::"))
    except (OSError, StopIteration):
        return None
    root = Path("/sys/fs/cgroup")
    path = root / line[3:].lstrip("/")
    return path if (root / "cgroup.controllers").exists() and "pids" in (root / "cgroup.controllers").read_text() \
        else None


class PidsCgroup:
    """A pids cgroup for one kernel: :meth:`wrap` puts a command in it; :meth:`remove` when done."""

    def __init__(self, parent: Path, limit: int):
        self.path = parent / f"course-grader-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(limit))
        except OSError:
            self.remove()
            raise

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """``argv`` started inside the cgroup (a shell joins it, then becomes ``argv``)."""
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(self.path), *argv]

    def remove(self) -> None:
        """Kill what is left in it and remove it (a PID namespace's init takes a moment to go)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                try:
                    pids = (self.path / "cgroup.procs").read_text().split()
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(int(pid), 9)
                    except (ProcessLookupError, ValueError):
                        pass
                time.sleep(0.1)


def _cgroup_parent() -> Path | None:
    """Where this process can make a pids cgroup that a child can join, or None."""
    v2 = _own_cgroup_v2()  # below its own cgroup, or the root (exempt from v2's no-internal-processes rule)
    for parent in (v2, Path("/sys/fs/cgroup") if v2 is not None else None, CGROUP_V1):
        if parent is None or not parent.is_dir():
            continue
        try:
            group = PidsCgroup(parent, 16)
        except OSError:
            continue
        try:
            ok = subprocess.run(group.wrap(["/bin/true"]), capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        group.remove()
        if ok:
            return parent
    return None


def _namespaced_rlimit() -> bool:
    """RLIMIT_NPROC counts one user namespace's processes (Linux 5.14 on), and binds this user (not root)."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return os.geteuid() != 0 and (major, minor) >= (5, 14)


@functools.cache
def process_limit(sandbox: bool) -> tuple[str, Path | None]:
    """How kernels' processes are bounded: ("rlimit", None), ("cgroup", parent folder) or ("", None)."""
    if sandbox and _namespaced_rlimit():
        return "rlimit", None
    parent = _cgroup_parent()
    return ("cgroup", parent) if parent is not None else ("", None)
