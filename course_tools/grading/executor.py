"""Run a notebook's cells for grading: time limits, a memory cap, capped output, restarts.

:func:`run_cells` executes cells one at a time in a fresh sandboxed kernel and returns
one :class:`CellResult` per cell. When a cell times out or kills the kernel, the kernel
is restarted, the cells that had succeeded before it are run again to rebuild the state,
and grading goes on: only that cell fails.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from .sandbox import PidsCgroup, kernel_env, matplotlib_fonts, process_limit, sandboxed

KERNEL_NAME = "course-grader"


@dataclass
class Limits:
    cell_timeout: int = 300  # seconds per cell
    notebook_timeout: int = 900  # seconds for the whole notebook, restarts included
    memory_mb: int = 4096  # address-space cap of the kernel
    max_output_kb: int = 64  # output kept per cell; the rest is dropped as it streams
    threads: int = 0  # BLAS/OpenMP threads per kernel; 0: the cores shared among the jobs
    sandbox: bool = False  # run the kernel under bubblewrap (sandbox.py); the runner decides
    max_processes: int = 256  # processes and threads of one kernel (sandbox.process_limit)
    strict_stderr: bool = False  # nbgrader's rule: no credit for a test cell that wrote to stderr
    # Time limits from the source (timing.py): with time_factor > 0, the runner measures each source once
    # and a cell may take time_factor x its source cell's time, at least time_floor seconds; cell_timeout
    # and notebook_timeout stay the ceilings. measured: source path -> seconds per source cell.
    time_factor: float = 0
    time_floor: int = 30
    measured: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass
class CellResult:
    status: str  # "ok", "error", "timeout", "kernel died", "not run"
    message: str = ""
    stderr: str = ""  # what the cell wrote to stderr (warnings included)
    value: str | None = None  # text/plain of the value its last line showed, if any
    seconds: float = 0.0  # how long the cell ran (timing.py measures sources with it)


class CappedClient(NotebookClient):
    """A NotebookClient that stops storing a cell's output past ``max_output_bytes``, and keeps
    the status of each cell's execute reply (what the kernel says, whatever the outputs show)."""

    max_output_bytes = 64 * 1024
    output_bytes = 0  # of the cell now running; reset by _Run._execute
    reply: dict | None = None  # content of the last execute reply

    async def _check_raise_for_error(self, cell, cell_index, exec_reply):  # noqa: D102 (nbclient hook)
        self.reply = exec_reply["content"] if exec_reply else None
        return await super()._check_raise_for_error(cell, cell_index, exec_reply)

    def output(self, outs, msg, display_id, cell_index):  # noqa: D102 (nbclient hook)
        if self.output_bytes > self.max_output_bytes:
            return None  # dropped as it streams: memory stays bounded
        self.output_bytes += len(json.dumps(msg["content"]))
        if self.output_bytes > self.max_output_bytes:
            outs.append(nbformat.v4.new_output("stream", name="stdout", text="\n[output truncated by the grader]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


def write_kernelspec(root: Path, memory_mb: int, sandbox_dir: Path | None = None, hide: Sequence[Path] = (),
                     max_processes: int = 0, cgroup: PidsCgroup | None = None) -> Path:
    """A kernelspec that starts :mod:`sandbox_kernel` with the memory cap; returns its dir.

    With ``sandbox_dir``, the kernel runs under bubblewrap, writing only there (:mod:`.sandbox`);
    ``max_processes`` caps its processes with RLIMIT_NPROC, ``cgroup`` holds it in a pids cgroup.
    """
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "course_tools.grading.sandbox_kernel", "--memory-mb", str(memory_mb)]
    argv += ["--max-processes", str(max_processes)] if max_processes else []
    argv += ["-f", "{connection_file}"]
    if sandbox_dir is not None:
        argv = sandboxed(argv, sandbox_dir, hide, tmp_mb=memory_mb)
    if cgroup is not None:
        argv = cgroup.wrap(argv)
    spec = {"argv": argv, "display_name": "course grader", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def _error_message(cell: NotebookNode) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return ""


def run_cells(cells: list[NotebookNode], limits: Limits, replay: list[bool] | None = None,
              workdir: Path | None = None, hide: Sequence[Path] = (),
              timeouts: Sequence[float] | None = None) -> list[CellResult]:
    """Execute ``cells`` in order in a sandboxed kernel; one result per cell.

    ``replay[i]`` says whether cell ``i`` is run again to rebuild the kernel's state after
    a restart (default: every cell that succeeded; the grader passes False for test cells).
    ``hide``: paths the kernel must not see when ``limits.sandbox`` is on.
    """
    with Kernel(limits, workdir, hide) as kernel:
        return kernel.run(cells, replay, timeouts)


class Kernel:
    """A started grading kernel (sandboxed when ``limits.sandbox``), for ``with``.

    Started on entry, so that it boots, and with :meth:`warm_up` imports, while another
    kernel runs; :meth:`run` then executes cells in it as :func:`run_cells` does.
    """

    def __init__(self, limits: Limits, workdir: Path | None = None, hide: Sequence[Path] = ()):
        self.limits, self.workdir, self.hide = limits, workdir, hide
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._run: _Run | None = None
        self._cgroup: PidsCgroup | None = None

    def __enter__(self) -> Kernel:
        self._tmp = tempfile.TemporaryDirectory(prefix="grade-")
        tmp_path = Path(self._tmp.name)
        cwd = self.workdir or (tmp_path / "work")
        cwd.mkdir(parents=True, exist_ok=True)
        matplotlib_fonts(cwd)  # the kernel's home: its font list ready, not built again at each start
        method, parent = process_limit(self.limits.sandbox) if self.limits.max_processes > 0 else ("", None)
        try:
            self._cgroup = PidsCgroup(parent, self.limits.max_processes) if method == "cgroup" and parent else None
        except OSError:
            self._cgroup = None
        jupyter_path = write_kernelspec(tmp_path / "jupyter", self.limits.memory_mb,
                                        cwd if self.limits.sandbox else None, self.hide,
                                        self.limits.max_processes if method == "rlimit" else 0, self._cgroup)
        # Kernels running side by side must not fight over the cores: COURSE_THREADS (core.device) and BLAS's.
        self._run = _Run(self.limits, cwd, jupyter_path, kernel_env(cwd, self.limits.threads))
        try:
            self._run._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def warm_up(self, code: str) -> None:
        """Send trusted ``code`` (imports) to run now, unawaited: its outputs and errors are dropped."""
        if self._run is not None and self._run.client is not None and code:
            self._run.client.kc.execute(code, silent=True, store_history=False)

    def run(self, cells: list[NotebookNode], replay: list[bool] | None = None,
            timeouts: Sequence[float] | None = None) -> list[CellResult]:
        """Results of ``cells``; ``timeouts[i]``: cell ``i``'s limit in seconds (default: ``cell_timeout``)."""
        assert self._run is not None, "use Kernel in a with statement"
        return self._run.run(cells, replay or [True] * len(cells), timeouts)

    def __exit__(self, *exc) -> None:
        if self._run is not None:
            self._run._stop()
            self._run = None
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class _Run:
    def __init__(self, limits: Limits, cwd: Path, jupyter_path: Path, env: dict[str, str]):
        self.limits, self.cwd, self.jupyter_path, self.env = limits, cwd, jupyter_path, env
        self.cells: list[NotebookNode] = []
        self.timeouts: list[float] = []
        self.replay: list[bool] = []
        self.results: list[CellResult] = []
        self.deadline = time.monotonic() + limits.notebook_timeout
        self.client: CappedClient | None = None

    def run(self, cells: list[NotebookNode], replay: list[bool], timeouts: Sequence[float] | None = None
            ) -> list[CellResult]:
        self.cells, self.replay = cells, replay
        self.timeouts = list(timeouts) if timeouts is not None else [self.limits.cell_timeout] * len(cells)
        self.results = [CellResult("not run") for _ in cells]
        self.deadline = time.monotonic() + self.limits.notebook_timeout
        if self.client is None:
            self._start()
        for index, cell in enumerate(self.cells):
            if cell.cell_type != "code":
                self.results[index] = CellResult("ok")
                continue
            if time.monotonic() > self.deadline:
                self._not_run_from(index)
                break
            self.results[index] = self._execute(index, cell)
            if self.results[index].status in ("timeout", "kernel died") and not self._restart(index):
                self._not_run_from(index + 1)
                break
        return self.results

    def _not_run_from(self, start: int) -> None:
        for i in range(start, len(self.cells)):
            if self.cells[i].cell_type == "code" and self.results[i].status == "not run":
                self.results[i] = CellResult(
                    "not run", f"not run: the notebook exceeded its {self.limits.notebook_timeout} s limit")

    def _start(self) -> None:
        os.environ["JUPYTER_PATH"] = str(self.jupyter_path)  # read now, by this process only
        nb = nbformat.v4.new_notebook(cells=[])
        self.client = CappedClient(nb, timeout=self.limits.cell_timeout, kernel_name=KERNEL_NAME,
                                   allow_errors=True, interrupt_on_timeout=False, startup_timeout=120)
        self.client.max_output_bytes = self.limits.max_output_kb * 1024
        self.client.km = self.client.create_kernel_manager()
        if self.limits.sandbox:  # no network inside: Unix sockets in the job folder, which the sandbox shares
            self.client.km.transport = "ipc"
            self.client.km.ip = str(self.cwd / ".kernel")
            self.client.km.connection_file = str(self.cwd / ".kernel.json")
        self.client.start_new_kernel(cwd=str(self.cwd), env=self.env)  # the whole environment: the grader's stays out
        self.client.start_new_kernel_client()

    def _stop(self) -> None:
        if self.client is not None and self.client.km is not None:
            try:
                self.client._cleanup_kernel()
            except Exception:  # a dead kernel may fail to shut down cleanly; nothing to save
                pass
        self.client = None

    def _execute(self, index: int, cell: NotebookNode) -> CellResult:
        assert self.client is not None
        remaining = self.deadline - time.monotonic()
        self.client.timeout = max(1, int(min(self.timeouts[index], remaining)))
        work = nbformat.from_dict(dict(cell))
        self.client.nb.cells = [work]
        self.client.output_bytes, self.client.reply = 0, None
        start = time.monotonic()
        try:
            self.client.execute_cell(work, 0)
        except CellTimeoutError:
            return CellResult("timeout", f"the cell ran longer than {self.client.timeout} s and was stopped",
                              seconds=time.monotonic() - start)
        except DeadKernelError:
            return CellResult("kernel died", "the kernel died while running this cell "
                              "(os._exit, a crash, or too much memory); it was restarted")
        seconds = time.monotonic() - start
        message = _error_message(work)
        reply = self.client.reply or {}
        if message or reply.get("status") == "error":  # the reply decides, even with its display switched off
            return CellResult("error", message or f"{reply.get('ename', 'Error')}: {reply.get('evalue', '')}".strip(),
                              seconds=seconds)
        if reply.get("status") != "ok":
            return CellResult("error", f"the kernel answered '{reply.get('status', 'nothing')}' for this cell")
        outputs = work.get("outputs", [])
        stderr = "".join(o.get("text", "") for o in outputs
                         if o.get("output_type") == "stream" and o.get("name") == "stderr")
        values = [o["data"].get("text/plain") for o in outputs if o.get("output_type") == "execute_result"]
        value = "".join(values[0]) if values and values[0] is not None else None
        return CellResult("ok", stderr=stderr, value=value, seconds=seconds)

    def _restart(self, failed: int) -> bool:
        """Fresh kernel; replay the cells that succeeded before ``failed``. False if out of time."""
        self._stop()
        if time.monotonic() > self.deadline:
            return False
        self._start()
        for i in range(failed):
            if self.results[i].status == "ok" and self.cells[i].cell_type == "code" and self.replay[i]:
                if time.monotonic() > self.deadline:
                    return False
                if self._execute(i, self.cells[i]).status in ("timeout", "kernel died"):
                    return False
        return True
