"""The learner's main path: `make lab` starts JupyterLab, a notebook opens and its cells run.

JupyterLab is started the way the README's first command does (`make lab`), on a loopback
port with a token and without opening a browser, then driven in headless Chromium: the page
`make lab` would open (its redirect file), the first exercise notebook in the learner's working
copy my-work/, with no instructors' menus (nbgrader) and no news pop-up, and notebooks/ listing
each lecture once (its .py pair in notebooks/py/, hidden); `make instructor-lab`
is started too, as the control that shows what the learner's lab leaves out. Screenshots go to
test-artifacts/.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from pages import PageProblems

WORK = "my-work"  # the learner's working copy (Makefile: WORK)
FIRST = "00_setup.ipynb"  # the notebook `make lab` opens there
slow = pytest.mark.slow  # starts JupyterLab and a browser: not in `make test-fast`
# JupyterLab's debugger asks each new kernel for its state and logs this console error when the
# kernel's connection changes before the answer comes (on a busy machine, as the kernel starts):
# its own race, with nothing shown to the learner and nothing lost, so it is not a problem here.
JUPYTERLAB_RACE = "Could not restore the debugger state: Canceled future for debug_request message"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.read()


def start_lab(repo, home, target="lab"):
    """Start `make <target>` as the README says; yields (base URL, token, runtime dir); stops it afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"), "COURSE_DEVICE": "cpu"}
    flags = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port_retries=0 --IdentityProvider.token={token}"
    log_path = home / "lab.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(["make", "-s", target, f"PORT={port}", f"LAB_FLAGS={flags}"], cwd=repo, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                get(f"{base}/api/status", token)
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, f"`make {target}` exited:\n{log_path.read_text()}"
                assert time.monotonic() < deadline, f"JupyterLab did not answer within 120 s:\n{log_path.read_text()}"
                time.sleep(0.5)
        yield base, token, home / "runtime"
    finally:
        try:
            get(f"{base}/api/shutdown", token, method="POST")
            server.wait(timeout=30)
        except Exception:  # already gone, or not answering: stop the whole group below
            pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@pytest.fixture(scope="module")
def lab(repo, tmp_path_factory):
    """(base URL, token, runtime dir) of JupyterLab started by `make lab`; stopped afterwards.

    `make lab` makes the working copy my-work/ where there is none; one the test made is removed
    afterwards, a learner's own is left as it is (`make lab` never overwrites it).
    """
    made = not (repo / WORK).exists()
    try:
        yield from start_lab(repo, tmp_path_factory.mktemp("lab"))
    finally:
        if made:
            shutil.rmtree(repo / WORK, ignore_errors=True)


@pytest.fixture(scope="module")
def instructor_lab(repo, tmp_path_factory):
    """The same for `make instructor-lab`: the control, with nbgrader's menus."""
    yield from start_lab(repo, tmp_path_factory.mktemp("instructor-lab"), "instructor-lab")


def opened_url(runtime) -> str:
    """The address `make lab` opens in the browser: its redirect file's link (the token included)."""
    files = list(runtime.glob("jpserver-file-to-run-*-open.html"))
    assert len(files) == 1, f"expected one file-to-run redirect in {runtime}: {files}"
    return re.search(r'href="([^"]+)"', files[0].read_text())[1].replace("&amp;", "&")


def wait_for_notebook(page):
    page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=90_000)
    page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
        state="attached", timeout=90_000)


def listed(page) -> list[str]:
    """The names in the file browser's listing, as shown."""
    page.locator(".jp-DirListing-item").first.wait_for(timeout=30_000)
    return page.locator(".jp-DirListing-item .jp-DirListing-itemText").all_inner_texts()


INSTRUCTOR_UI = {  # what nbgrader adds to JupyterLab, and how the browser finds it
    "the Nbgrader menu": ".lm-MenuBar-itemLabel:text-is('Nbgrader')",
    "the Validate button": ".jp-NotebookPanel-toolbar .jp-Toolbar-item:has-text('Validate')",
    "the Create Assignment sidebar": ".lm-TabBar-tab:has-text('Create Assignment')",
}
NEWS = "Would you like to get notified about official Jupyter news?"


def test_make_work_copies_student_once_and_never_overwrites(repo, tmp_path):
    work = tmp_path / "my-work"
    subprocess.run(["make", "-s", "work", f"WORK={work}"], cwd=repo, check=True, capture_output=True)
    students = sorted(p.name for p in (repo / "student").glob("*.ipynb"))
    assert sorted(p.name for p in work.iterdir()) == sorted([*students, "solutions"])
    assert (work / "solutions").resolve() == (repo / "notebooks").resolve()  # the solved notebooks, a link
    assert (work / FIRST).read_bytes() == (repo / "student" / FIRST).read_bytes()
    (work / FIRST).write_text("my answers")  # a learner's work, then a lecture the copy lacks
    (work / "01_rnn.ipynb").unlink()
    run = subprocess.run(["make", "-s", "work", f"WORK={work}"], cwd=repo, check=True, capture_output=True, text=True)
    assert (work / FIRST).read_text() == "my answers"
    assert (work / "01_rnn.ipynb").read_bytes() == (repo / "student" / "01_rnn.ipynb").read_bytes()
    assert run.stdout.strip() == f"copied student/01_rnn.ipynb to {work}/"


@slow
def test_lab_lists_course_notebooks_and_the_working_copy(repo, lab):
    base, token, _ = lab
    for folder in ("notebooks", WORK):
        _, body = get(f"{base}/api/contents/{folder}", token)
        listed_here = {item["name"] for item in json.loads(body)["content"]}
        expected = {p.name for p in (repo / "student").glob("*.ipynb")}
        assert expected and expected <= listed_here, folder
    status, body = get(f"{base}/lab", token)
    assert status == 200 and b"JupyterLab" in body
    _, body = get(f"{base}/api/contents/notebooks/01_rnn.ipynb", token)  # a solution opens, its .py pair read
    assert json.loads(body)["content"]["metadata"]["jupytext"]["formats"] == "ipynb,py//py:percent"
    for path in ("formgrader", "assignments", "courses"):  # nbgrader's server extensions are not loaded
        with pytest.raises(urllib.error.HTTPError, match="404"):
            get(f"{base}/{path}", token)


@slow
def test_lab_opens_the_first_exercise_in_the_working_copy_and_runs_it(repo, lab, browser, artifacts):
    base, token, runtime = lab
    url = opened_url(runtime)
    assert url.startswith(f"{base}/lab/tree/{WORK}/{FIRST}?"), url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = PageProblems(page)
    page.goto(url)
    wait_for_notebook(page)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert tab.inner_text().strip() == FIRST
    assert page.url.split("?")[0] == f"{base}/lab/tree/{WORK}/{FIRST}"  # JupyterLab's address: the current document
    _, body = get(f"{base}/api/contents/{WORK}/{FIRST}", token)
    source = "".join(cell["source"] for cell in json.loads(body)["content"]["cells"])
    assert "NotImplementedError" in source and "BEGIN SOLUTION" not in source  # the student version
    assert page.locator(".jp-FileBrowser .jp-BreadCrumbs").inner_text().strip("/ \n") == WORK
    assert FIRST in listed(page)
    page.locator(".jp-NotebookPanel .jp-Cell").first.click()  # select the title cell, then run cells as a learner
    outputs = page.locator(".jp-NotebookPanel .jp-OutputArea-output")
    for _ in range(6):
        page.keyboard.press("Shift+Enter")
        time.sleep(0.3)
    outputs.filter(has_text="pinned").first.wait_for(timeout=120_000)
    text = outputs.filter(has_text="pinned").first.inner_text()
    assert "torch" in text and "2.13.0" in text, text
    assert page.locator(".jp-NotebookPanel .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                        ).filter(has_text="Error").count() == 0
    for what, selector in INSTRUCTOR_UI.items():
        assert page.locator(selector).count() == 0, f"the learner's lab shows {what}"
    assert page.get_by_text(NEWS).count() == 0, "the learner's lab asks about Jupyter news"
    page.screenshot(path=str(artifacts / "jupyterlab-my-work.png"))
    serious = [line for line in problems.lines if "favicon" not in line and JUPYTERLAB_RACE not in line]
    page.close()  # after reading the problems: closing cancels what the page still had in flight
    assert not serious, "\n".join(serious)


@slow
def test_the_file_browser_lists_each_lecture_once_one_click_from_my_work(repo, lab, browser, artifacts):
    base, token, runtime = lab
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems = PageProblems(page)
    page.goto(opened_url(runtime))
    wait_for_notebook(page)
    assert FIRST in listed(page) and "solutions" in listed(page)  # in my-work/, the solutions beside the work
    page.locator(".jp-DirListing-item", has_text="solutions").dblclick()  # one click (a double one) away
    page.locator(".jp-FileBrowser .jp-BreadCrumbs", has_text="solutions").wait_for(timeout=30_000)
    page.locator(".jp-DirListing-item", has_text="01_rnn.ipynb").wait_for(timeout=30_000)
    names = listed(page)
    lectures = sorted(p.name for p in (repo / "notebooks").glob("*.ipynb"))
    assert sorted(names) == lectures, f"notebooks/ should list each lecture once, as its .ipynb: {names}"
    page.screenshot(path=str(artifacts / "jupyterlab-notebooks.png"))
    serious = [line for line in problems.lines if "favicon" not in line and JUPYTERLAB_RACE not in line]
    page.close()
    assert not serious, "\n".join(serious)


@slow
def test_instructor_lab_has_nbgrader_and_asks_about_news(instructor_lab, browser, artifacts):
    """The control: the same selectors find nbgrader's menus and the news question where they are on."""
    base, token, runtime = instructor_lab
    url = opened_url(runtime)
    assert url.startswith(f"{base}/lab/tree/notebooks/{FIRST}?"), url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    wait_for_notebook(page)
    page.get_by_text(NEWS).wait_for(timeout=30_000)
    for what, selector in INSTRUCTOR_UI.items():
        assert page.locator(selector).count() > 0, f"the instructors' lab lacks {what}"
    page.screenshot(path=str(artifacts / "jupyterlab-instructor.png"))
    page.close()
