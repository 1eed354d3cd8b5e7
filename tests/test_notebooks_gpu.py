"""The GPU pass: every notebook again, on cuda, where this machine has a GPU.

The CPU pass is nbval collecting notebooks/ in the main pytest run (with COURSE_DEVICE=cpu
from `make test`). This test repeats it with COURSE_DEVICE=cuda in a child pytest, so the
kernels see the device through their environment. Without a GPU it is reported as
skipped, with the reason: never passed silently.
"""

import os
import subprocess
import sys

import pytest
import torch

from course_utils.core.device import available_devices


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason=f"GPU pass skipped: torch.cuda.is_available() is False here "
    f"(torch {torch.__version__}, devices: {', '.join(available_devices())}); the CPU pass ran every notebook",
)
def test_every_notebook_runs_on_cuda(repo):
    env = {**os.environ, "COURSE_DEVICE": "cuda", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "notebooks", "-q", "-p", "no:cacheprovider"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=3600,
    )
    print(result.stdout[-5000:])
    assert result.returncode == 0, f"GPU pass failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}"
