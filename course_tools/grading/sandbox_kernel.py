"""Start an IPython kernel with a memory cap and a process cap (used as the grader's kernel).

    python -m course_tools.grading.sandbox_kernel --memory-mb 4096 [--max-processes 256] -f CONNECTION_FILE

The memory cap is on the kernel's address space (``RLIMIT_AS``): a submission that allocates too
much gets a ``MemoryError`` in its cell instead of taking the machine down. The process cap
(``RLIMIT_NPROC``, processes and threads) is given only inside the sandbox's user namespace, where
it counts the sandbox's own processes (:func:`.sandbox.process_limit`): a fork bomb gets
``BlockingIOError`` instead of the machine's process table.
"""

from __future__ import annotations

import resource
import sys

OPTIONS = {"--memory-mb": (resource.RLIMIT_AS, 2**20), "--max-processes": (resource.RLIMIT_NPROC, 1)}


def main() -> None:
    args = sys.argv[1:]
    while len(args) >= 2 and args[0] in OPTIONS:
        which, unit = OPTIONS[args[0]]
        limit = int(args[1]) * unit
        resource.setrlimit(which, (limit, limit))
        args = args[2:]
    sys.argv = [sys.argv[0], *args]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
