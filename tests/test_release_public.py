"""Issue 31.6: `release NOTEBOOK --to PUBLIC_TREE` publishes student versions and what they need, no solution."""

import ast
import json
import re
import subprocess
import sys

import nbformat
import pytest

from course_tools.grading.__main__ import main
from course_tools.grading.cells import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, grade_id
from course_tools.grading.release import PublicTreeLeak, find_leaks, release_public, resolve_notebooks

URL = "https://github.com/example-uni/seqmodels-2026"


def _code(text):
    lines = (re.sub(r"\s+#.*$", "", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def private_blocks(repo):
    """(notebook, grade_id, kind, code) of every solution and hidden-test block of the sources."""
    blocks = []
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            lines, inside = cell.source.split("\n"), None
            for i, line in enumerate(lines):
                if line.strip() in (BEGIN_SOLUTION, BEGIN_HIDDEN):
                    inside = i
                elif line.strip() in (END_SOLUTION, END_HIDDEN) and inside is not None:
                    kind = "solution" if line.strip() == END_SOLUTION else "hidden"
                    blocks.append((path.stem, grade_id(cell), kind, _code("\n".join(lines[inside + 1 : i]))))
                    inside = None
    return blocks


def public_text(public):
    """{path: searchable text} of every file in the public tree (a notebook's cell sources)."""
    out = {}
    for path in sorted(p for p in public.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".ipynb":
            text = "\n".join(c["source"] if isinstance(c["source"], str) else "".join(c["source"])
                             for c in json.loads(text)["cells"])
        out[path.relative_to(public).as_posix()] = text
    return out


def assert_no_secrets(repo, public, published=()):
    """No marker, no hidden test and no solution (of a notebook not in ``published``) anywhere in ``public``."""
    texts = public_text(public)
    for rel, text in texts.items():
        for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN, "BEGIN SOLUTION", "HIDDEN TESTS"):
            assert marker not in text, f"{rel} holds {marker!r}"
    code = {rel: _code(text) for rel, text in texts.items()}
    checked = 0
    for stem, gid, kind, body in private_blocks(repo):
        if len(body) < 24 or (kind == "solution" and stem in published):
            continue
        checked += 1
        for rel, text in code.items():
            assert body not in text, f"{rel} holds the {kind} of {stem} {gid}"
    assert checked > 50  # the scan looked at the course's solutions and hidden tests


@pytest.fixture(scope="module")
def public_00(repo, tmp_path_factory):
    public = tmp_path_factory.mktemp("public")
    release_public(resolve_notebooks(["notebooks/00_setup.ipynb"]), public, URL)
    return public


def test_the_public_tree_holds_the_student_version_and_what_it_needs(public_00, repo):
    names = {p.relative_to(public_00).as_posix() for p in public_00.rglob("*") if p.is_file()}
    assert "student/00_setup.ipynb" in names and "README.md" in names and "pyproject.toml" in names
    assert {"course_utils/core/checks.py", "data/sunspots.csv", "data/README.md"} <= names
    assert not [n for n in names if n.split("/")[0] in ("notebooks", "course_tools", "tests", "benchmarks")
                and not n.startswith("benchmarks/results/")]
    assert "course_utils/attention.py" not in names and "course_utils/exercises/attention.py" not in names
    assert "course_utils/rnn.py" not in names  # 01's reference (its solution) stays private until 01 is out
    nb = nbformat.read(public_00 / "student" / "00_setup.ipynb", as_version=4)
    setup = next(c.source for c in nb.cells if c.source.startswith("# Colab set-up"))
    assert f'COURSE_URL = "{URL}"' in setup  # Colab clones the public tree
    assert URL in (public_00 / "pyproject.toml").read_text() and "course_tools" not in (
        public_00 / "pyproject.toml").read_text()
    assert f"{URL.removeprefix('https://github.com/')}/blob/v" in (public_00 / "README.md").read_text()


def test_the_public_tree_holds_no_solution_and_no_hidden_test(public_00, repo):
    assert_no_secrets(repo, public_00)


def test_the_released_notebook_imports_from_the_public_tree_alone(public_00):
    nb = nbformat.read(public_00 / "student" / "00_setup.ipynb", as_version=4)
    imports = [ast.unparse(node) for c in nb.cells if c.cell_type == "code" and "google.colab" not in c.source
               for node in ast.walk(ast.parse(c.source)) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert any("course_utils" in line for line in imports)
    script = "\n".join(imports) + (
        "\nimport sys, pathlib\nroot = pathlib.Path.cwd().resolve()\n"
        "outside = [m for m, mod in sys.modules.items() if m.startswith('course_utils')"
        " and not pathlib.Path(mod.__file__).resolve().is_relative_to(root)]\nassert not outside, outside\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=public_00, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_leaking_module_refuses_the_release_unless_allowed(repo, tmp_path):
    public = tmp_path / "public"
    release_public(resolve_notebooks(["00_setup"]), public, URL)
    with pytest.raises(PublicTreeLeak, match="course_utils/rnn.py: the solution of rnn_cell_forward of 01_rnn"):
        release_public(resolve_notebooks(["02_bptt"]), public, URL)  # 02 needs rnn.py, which holds 01's answer
    assert not (public / "student" / "02_bptt.ipynb").exists()  # nothing written
    release_public(resolve_notebooks(["02_bptt"]), public, URL, allow_leaks=("01_rnn",))  # 01's deadline passed
    assert sorted(p.name for p in (public / "student").glob("*.ipynb")) == ["00_setup.ipynb", "02_bptt.ipynb"]
    assert "02_bptt" in (public / "README.md").read_text() and "00_setup" in (public / "README.md").read_text()
    assert_no_secrets(repo, public, published=("01_rnn",))


def test_a_planted_solution_in_the_public_tree_is_found(repo, tmp_path):
    public = tmp_path / "public"
    (public / "notes").mkdir(parents=True)
    (public / "notes" / "answers.py").write_text("# softmax\nshifted = z - z.max(axis=-1, keepdims=True)\n"
                                                 "e = np.exp(shifted)\nreturn e / e.sum(axis=-1, keepdims=True)\n")
    with pytest.raises(PublicTreeLeak, match="notes/answers.py: the solution of softmax of 00_setup"):
        release_public(resolve_notebooks(["00_setup"]), public, URL)


def test_release_command(tmp_path, capsys):
    assert main(["release", "--to", str(tmp_path / "p")]) == 2
    assert "name the notebooks" in capsys.readouterr().err
    assert main(["release", "99_nothing", "--to", str(tmp_path / "p")]) == 2
    assert main(["release", "notebooks/00_setup.ipynb", "--to", str(tmp_path / "p"), "--url", URL]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "p" / "student" / "00_setup.ipynb").exists()
    assert main(["release", "00_setup", "--out", str(tmp_path / "s")]) == 0  # one notebook into student/
    assert [p.name for p in (tmp_path / "s").iterdir()] == ["00_setup.ipynb"]


def test_which_lecture_modules_hold_an_answer(repo):
    """The README names the notebooks whose answers sit in course_utils (the references later cells use)."""
    library = {p.relative_to(repo).as_posix(): p.read_text() for p in (repo / "course_utils").rglob("*.py")}
    leaks = find_leaks(library)
    stems = sorted({leak.rsplit(" of ", 1)[1] for leak in leaks})
    assert [s.split("_")[0] for s in stems] == ["01", "05a", "05c", "05d", "05e", "06", "07", "08", "09b", "09c"], leaks
    readme = " ".join((repo / "README.md").read_text().split())
    assert "The answers of 01, 05a, 05c, 05d, 05e, 06, 07, 08, 09b and 09c sit in such modules" in readme
