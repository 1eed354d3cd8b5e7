"""The grader's sandbox (bubblewrap): what a submission's code can no longer do.

Each submission below answers ``square`` with a trick instead of ``x * x``; under the
sandbox every trick fails, so each scores what an honest wrong answer scores (3 of 6:
add_one and mean_of right, square wrong), and leaves no trace outside its job folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from course_tools.grading.executor import Limits
from course_tools.grading.release import render
from course_tools.grading.runner import SandboxUnavailable, grade_all, use_sandbox
from course_tools.grading.sandbox import sandbox_status

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"
sys.path.insert(0, str(FIXTURES))
import make_fixtures  # noqa: E402

LIMITS = Limits(cell_timeout=30, notebook_timeout=150)
MARKER = "course-grader-sandbox-test-orphan"

# Skipped where bubblewrap cannot run (a laptop without it); on CI, `make test` installs it, so it must run.
needs_bwrap = pytest.mark.skipif(bool(sandbox_status()) and not os.environ.get("CI"),
                                 reason=f"no sandbox here: {sandbox_status()}")


def trick(body: str) -> str:
    return render(make_fixtures.answered({**make_fixtures.SOLUTIONS, "square": body}))


@pytest.fixture(scope="module")
def listener():
    """A TCP server on the host's loopback that counts the connections it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    seen, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                seen.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


@needs_bwrap
def test_tricks_fail_inside_the_sandbox(tmp_path, listener):
    port, connections = listener
    outside = FIXTURES.parents[2] / f"{MARKER}.txt"  # the repository: read-only inside (under /tmp, a
    # write would land in the sandbox's own throw-away /tmp and vanish with it)
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "full.ipynb").write_text(render(make_fixtures.answered(make_fixtures.SOLUTIONS)))
    # Copy the answer from another learner's submission: it must not be visible.
    (subs / "copies_a_neighbour.ipynb").write_text(trick(
        f"    import json\n    nb = json.load(open({str(subs / 'full.ipynb')!r}))\n"
        "    code = [c['source'] for c in nb['cells'] if 'def square' in ''.join(c['source'])][0]\n"
        "    scope = {}\n    exec(''.join(code), scope)\n    return scope['square'](x)"))
    # Read the source notebook's hidden tests.
    (subs / "reads_the_source.ipynb").write_text(trick(
        f"    open({str(FIXTURES / 'homework.ipynb')!r}).read()\n    return x * x"))
    (subs / "writes_outside.ipynb").write_text(trick(f"    open({str(outside)!r}, 'w').write('x')\n    return x * x"))
    (subs / "phones_home.ipynb").write_text(trick(
        f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    return x * x"))
    (subs / "leaves_a_child.ipynb").write_text(trick(
        "    import subprocess, sys\n"
        f"    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)', {MARKER!r}],"
        " start_new_session=True)\n    return x * 2"))
    rows = grade_all(subs, FIXTURES / "homework.ipynb", LIMITS, jobs=2, progress=False, sandbox="require")
    scores = {}
    for r in rows:
        scores[r.student] = scores.get(r.student, 0) + r.points
    assert scores == {"full": 6, "copies_a_neighbour": 3, "reads_the_source": 3, "writes_outside": 3,
                      "phones_home": 3, "leaves_a_child": 3}
    messages = {r.student: r.message for r in rows if r.exercise == "square_test"}
    assert "No such file" in messages["copies_a_neighbour"] and "No such file" in messages["reads_the_source"]
    assert "Read-only file system" in messages["writes_outside"]
    assert not outside.exists() and not connections
    leftovers = subprocess.run(["pgrep", "-f", MARKER], capture_output=True, text=True).stdout.split()
    assert not leftovers, "a process started by a submission outlived its grading"


def test_sandbox_modes(monkeypatch, capsys):
    import course_tools.grading.runner as runner

    assert use_sandbox("off") is False
    monkeypatch.setattr(runner, "sandbox_status", lambda: "bubblewrap is not installed")
    with pytest.raises(SandboxUnavailable, match="not installed"):
        use_sandbox("require")
    assert use_sandbox("auto") is False
    assert "grading without a sandbox: bubblewrap is not installed" in capsys.readouterr().err
    monkeypatch.setattr(runner, "sandbox_status", lambda: "")
    assert use_sandbox("auto") is True and use_sandbox("require") is True
    with pytest.raises(ValueError, match="auto, require or off"):
        use_sandbox("maybe")
