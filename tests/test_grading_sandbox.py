"""The grader's sandbox (bubblewrap): what a submission's code can no longer do.

Each submission below answers ``square`` with a trick instead of ``x * x``; under the
sandbox every trick fails, so each scores what an honest wrong answer scores (3 of 6:
add_one and mean_of right, square wrong), and leaves no trace outside its job folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from course_tools.grading import sandbox
from course_tools.grading.executor import Limits
from course_tools.grading.gradebook import feedback, write_gradebook
from course_tools.grading.release import render
from course_tools.grading.runner import SandboxUnavailable, grade_all, use_sandbox
from course_tools.grading.sandbox import kernel_env, matplotlib_fonts, process_limit, sandbox_status, sandboxed

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
    outside = Path(sys.prefix) / f"{MARKER}.txt"  # the Python environment: read-only inside, wherever it
    # lies (the repository's own folder would not do under /tmp: a write there lands in the sandbox's
    # throw-away /tmp and vanishes with it)
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


# --- nothing of the instructor's is readable (issue 31) ---------------------------------------------

REPO = FIXTURES.parents[2]
FORK_MARKER = "0.0031415926"  # an argument of the fork flood's `sleep`s, to find any left behind


def reader(paths: list[str]) -> str:
    """An answer to ``square`` that reads what it can of ``paths`` (open, os.listdir, `cat`), the
    environment and the home folder, and raises an error made of it all (the error reaches the feedback)."""
    return (
        "    import os, subprocess\n"
        "    found = [f'{k}={v}' for k, v in os.environ.items()]\n"
        f"    for path in {paths!r}:\n"
        "        for read in (lambda p: open(p).read(), lambda p: str(os.listdir(os.path.dirname(p))),\n"
        "                     lambda p: subprocess.run(['cat', p], capture_output=True, text=True).stdout):\n"
        "            try:\n"
        "                found.append(read(path))\n"
        "            except Exception as err:\n"
        "                found.append(repr(err))\n"
        "    found.append(str(os.listdir(os.path.expanduser('~'))))\n"
        "    raise ValueError('LEAK ' + ' | '.join(found))")


def flood(children: int) -> str:
    """An answer to ``square`` that forks ``children`` processes (each exec's a 30 s `sleep`) before answering.

    Bounded on purpose: were the sandbox's process cap missing, the machine would hold that many
    sleeping processes for 30 s, nothing worse (a real fork bomb's children fork too, without end)."""
    return ("    import os\n"
            f"    for _ in range({children}):\n"
            "        if os.fork() == 0:\n"
            f"            os.execv('/usr/bin/sleep', ['sleep', '30', {FORK_MARKER!r}])\n"
            "    return x * x")


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """Secrets where an instructor keeps them: an API token in the environment, a file in the home folder,
    an earlier gradebook in --out (inside the repository, as the default gradebook/ is), a private folder
    beside the course. Yields {where: (path or variable, secret)}; removes what it wrote."""
    tag = uuid.uuid4().hex[:12]
    beside = REPO.parent / f".grader-test-beside-{tag}"
    out = REPO / f".grader-test-out-{tag}"
    home = beside / "home"
    secrets = {where: f"SECRET-{where}-{uuid.uuid4().hex}" for where in ("env", "course_env", "home", "out", "beside")}
    try:
        (beside / "private-tests").mkdir(parents=True)
        home.mkdir()
        out.mkdir()
    except OSError as err:
        pytest.skip(f"cannot write beside the course here: {err}")
    try:
        (home / ".netrc").write_text(f"machine lms.example.edu password {secrets['home']}\n")
        (out / "gradebook.csv").write_text(f"student,notebook,exercise,points\nalice,x.ipynb,{secrets['out']},1\n")
        (beside / "private-tests" / "square_test.py").write_text(f"# {secrets['beside']}\n")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("GRADER_LMS_API_TOKEN", secrets["env"])
        monkeypatch.setenv("COURSE_LMS_TOKEN", secrets["course_env"])  # COURSE_*, but not one the course reads
        yield {"env": ("GRADER_LMS_API_TOKEN", secrets["env"]),
               "course_env": ("COURSE_LMS_TOKEN", secrets["course_env"]),
               "home": (str(home / ".netrc"), secrets["home"]),
               "out": (str(out / "gradebook.csv"), secrets["out"]),
               "beside": (str(beside / "private-tests" / "square_test.py"), secrets["beside"])}
    finally:
        shutil.rmtree(beside, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)


needs_process_cap = pytest.mark.skipif(not process_limit(True)[0] and not os.environ.get("CI"),
                                       reason="no way to cap a sandbox's processes here (root without a pids cgroup)")


@needs_bwrap
@needs_process_cap
def test_no_secret_reaches_feedback_and_a_fork_flood_is_capped(tmp_path, planted):
    paths = [path for where, (path, _) in planted.items() if "env" not in where]
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "full.ipynb").write_text(render(make_fixtures.answered(make_fixtures.SOLUTIONS)))
    (subs / "reads_secrets.ipynb").write_text(trick(reader(paths)))
    # The same, as a right answer that warns: what reaches stderr is reported in the feedback too.
    (subs / "warns_secrets.ipynb").write_text(trick(
        reader(paths).replace("raise ValueError(", "import warnings; warnings.warn(") + "\n    return x * x"))
    (subs / "forks.ipynb").write_text(trick(flood(200)))
    limits = Limits(cell_timeout=60, notebook_timeout=300, max_processes=64)
    rows = grade_all(subs, FIXTURES / "homework.ipynb", limits, jobs=2, progress=False, sandbox="require")
    out = tmp_path / "out"
    write_gradebook(rows, out)
    text = "\n".join([*(str(r) for r in rows), *(feedback(s, rows) for s in {r.student for r in rows}),
                      *(p.read_text() for p in out.rglob("*") if p.is_file())])
    for where, (_, secret) in planted.items():
        assert secret not in text, f"the secret planted in {where} reached the feedback"
    # The reader ran, and saw nothing: its error holds the kernel's own environment and failed reads.
    leak = next(r.message for r in rows if r.student == "reads_secrets" and r.exercise == "square_test")
    assert "LEAK" in leak and "HOME=" in leak and "No such file or directory" in leak, leak
    assert "GRADER_LMS_API_TOKEN" not in leak and "COURSE_LMS_TOKEN" not in leak
    assert "square_test.py" not in leak and ".netrc" not in leak and "gradebook.csv" not in leak
    warned = next(r for r in rows if r.student == "warns_secrets" and r.exercise == "square_test")
    assert warned.status == "passed" and "LEAK" in warned.message
    # The flood: refused past the cap, a clear verdict, the rest graded, nothing left running.
    scores = {s: sum(r.points for r in rows if r.student == s) for s in {r.student for r in rows}}
    assert scores == {"full": 6, "reads_secrets": 3, "warns_secrets": 6, "forks": 3}
    forked = next(r for r in rows if r.student == "forks" and r.exercise == "square_test")
    assert forked.status == "failed" and "more processes or threads than the grader allows (64" in forked.message
    leftovers = subprocess.run(["pgrep", "-f", FORK_MARKER], capture_output=True, text=True).stdout.split()
    assert not leftovers, "processes of the fork flood outlived the grading"


def test_the_kernel_environment_holds_nothing_of_the_graders(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADER_LMS_API_TOKEN", "secret")
    monkeypatch.setenv("COURSE_LMS_TOKEN", "secret")
    monkeypatch.setenv("COURSE_WIDGETS", "0")
    env = kernel_env(tmp_path, threads=2)
    assert "secret" not in env.values()
    assert env["HOME"] == str(tmp_path) and env["COURSE_WIDGETS"] == "0" and env["OMP_NUM_THREADS"] == "2"
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "MPLBACKEND",
                        "MPLCONFIGDIR", "IPYTHONDIR", "PYTHONNOUSERSITE", "COURSE_DEVICE", "COURSE_WIDGETS",
                        "COURSE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"}


def test_a_kernel_home_gets_the_font_list_built_once_without_the_graders_home(monkeypatch, tmp_path):
    """Each grading kernel starts in a fresh home: matplotlib's font list is copied in, not built at every start,
    and it lists no file of the grader's home (it is built with a kernel's environment)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setattr(sandbox, "_font_list", sandbox._font_list.__wrapped__)  # no answer kept from before
    fake_home = tmp_path / "grader"
    (fake_home / ".fonts").mkdir(parents=True)
    shutil.copy(next(Path(sys.prefix).rglob("mpl-data/fonts/ttf/DejaVuSans.ttf")), fake_home / ".fonts" / "Mine.ttf")
    monkeypatch.setenv("HOME", str(fake_home))
    matplotlib_fonts(tmp_path / "kernel1")
    listed = list((tmp_path / "kernel1" / ".matplotlib").glob("fontlist-*.json"))
    assert len(listed) == 1 and "DejaVuSans" in listed[0].read_text()
    assert str(fake_home) not in listed[0].read_text()  # the grader's own fonts are not listed

    def no_build(*args, **kwargs):
        raise AssertionError("the font list was built again")

    monkeypatch.setattr(sandbox.subprocess, "run", no_build)
    matplotlib_fonts(tmp_path / "kernel2")  # built once: the second kernel's home gets the same file
    assert (tmp_path / "kernel2" / ".matplotlib" / listed[0].name).read_text() == listed[0].read_text()


def test_the_sandbox_binds_only_what_the_kernel_needs(tmp_path):
    args = sandboxed(["python"], tmp_path, [])
    bound = {args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")}
    assert "/" not in bound and str(Path.home()) not in bound and str(REPO) not in bound
    assert {str(REPO / p) for p in ("course_utils", "data")} <= bound and str(tmp_path) in bound
    assert not any(b.startswith("/etc/") and Path(b).name in ("passwd", "shadow", "hosts") for b in bound)
    home = Path.home().resolve()  # of the home folder, only the Python environment (pyenv's, say) is in view
    assert all(Path(sys.prefix).resolve() in Path(b).parents or Path(sys.base_prefix).resolve() == Path(b)
               or Path(sys.prefix).resolve() == Path(b) for b in bound if home in Path(b).parents)
