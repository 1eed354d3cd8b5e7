"""Start an IPython kernel with a memory cap (used as the grader's kernel).

    python -m course_tools.grading.sandbox_kernel --memory-mb 4096 -f CONNECTION_FILE

The cap is on the kernel's address space (``RLIMIT_AS``): a submission that allocates too
much gets a ``MemoryError`` in its cell instead of taking the machine down.
"""

from __future__ import annotations

import resource
import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--memory-mb":
        limit = int(args[1]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        args = args[2:]
    sys.argv = [sys.argv[0], *args]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
