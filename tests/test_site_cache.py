"""The website's building blocks that need no browser: the execution cache's key, the alt
text of figures, the exercises' preparation (stubs in view, hidden tests gone), and the set-up
code at a page's top (the Colab cell left out, long import cells folded)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import nbformat
import pytest

from course_tools.grading.cells import CODE_STUB
from course_tools.website.cache import ExecutionCache, cache_key, course_modules
from course_tools.website.exercises import SITE_KEY, mark_solutions, without_hidden_tests
from course_tools.website.figure_alt import GENERIC, describe
from course_tools.website.setup_cells import FOLD_LINES, is_import_cell, mark_import_cells, without_colab_cell


@pytest.fixture
def fake_repo(tmp_path):
    """A course with four modules: a imports b (relative), b imports the data package; c is unused."""
    pkg = tmp_path / "course_utils"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .core import x\n")
    (pkg / "core.py").write_text("x = 1\n")
    (pkg / "a.py").write_text("from .b import helper\n")
    (pkg / "b.py").write_text("from course_utils.data import table\n\ndef helper():\n    return 1\n")
    (pkg / "c.py").write_text("def unused():\n    return 2\n")
    (pkg / "data" / "__init__.py").write_text("from .files import table\n")
    (pkg / "data" / "files.py").write_text("table = []\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "series.csv").write_text("1,2\n")
    return tmp_path


def notebook(*sources: str, markdown: str = "# A lecture"):
    cells = [nbformat.v4.new_markdown_cell(markdown)] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nbformat.v4.new_notebook(cells=cells)


def test_course_modules_follows_imports_through_the_package(fake_repo):
    cells = ["%matplotlib inline\nfrom course_utils.a import helper"]
    found = {p.relative_to(fake_repo).as_posix() for p in course_modules(cells, fake_repo)}
    assert found == {"course_utils/__init__.py", "course_utils/core.py", "course_utils/a.py", "course_utils/b.py",
                     "course_utils/data/__init__.py", "course_utils/data/files.py"}
    assert course_modules(["import numpy as np"], fake_repo) == []


def test_a_changed_helper_invalidates_exactly_the_notebooks_that_reach_it(fake_repo):
    uses_a, uses_c = notebook("from course_utils.a import helper"), notebook("from course_utils import c")
    before = cache_key(uses_a, "cpu", fake_repo), cache_key(uses_c, "cpu", fake_repo)
    (fake_repo / "course_utils" / "b.py").write_text("def helper():\n    return 3\n")  # reached from a only
    after = cache_key(uses_a, "cpu", fake_repo), cache_key(uses_c, "cpu", fake_repo)
    assert after[0] != before[0] and after[1] == before[1]
    (fake_repo / "data" / "series.csv").write_text("1,2,3\n")  # shipped data: every notebook
    assert cache_key(uses_c, "cpu", fake_repo) != after[1]


def test_the_key_follows_code_and_device_but_not_prose(fake_repo):
    base = cache_key(notebook("x = 1"), "cpu", fake_repo)
    assert cache_key(notebook("x = 1", markdown="# Reworded"), "cpu", fake_repo) == base
    assert cache_key(notebook("x = 2"), "cpu", fake_repo) != base
    assert cache_key(notebook("x = 1"), "cuda", fake_repo) != base


def test_the_cache_pastes_outputs_into_the_current_prose(tmp_path):
    ran = notebook("print(1)")
    ran.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    ran.cells[1].execution_count = 1
    cache = ExecutionCache(tmp_path / "cache")
    cache.store(ran, "01_x", "key-1")
    hit = cache.load(notebook("print(1)", markdown="# Reworded"), "01_x", "key-1")
    assert hit.cells[0].source == "# Reworded" and hit.cells[1].outputs[0].text == "1\n"
    assert cache.load(notebook("print(1)"), "01_x", "key-2") is None  # another key: run it
    assert cache.load(notebook("print(1)", "print(2)"), "01_x", "key-1") is None  # cells changed under it
    (tmp_path / "cache" / "01_x.json").write_text("{not json")
    assert cache.load(notebook("print(1)"), "01_x", "key-1") is None  # a damaged entry is a miss


def test_alt_text_names_titles_axes_and_legends():
    fig, (left, right) = plt.subplots(1, 2)
    left.plot([1, 2], label="train")
    left.plot([2, 1], label="validation")
    left.legend()
    left.set_title("Loss")
    left.set_xlabel("step")
    right.set_ylabel("accuracy")
    fig.suptitle("Training")
    assert describe(fig) == ("Figure (2 plots): Training. Loss; x axis: step; legend: train, validation. "
                             "y axis: accuracy.")
    plt.close(fig)
    bare = plt.figure()
    bare.add_subplot().plot([1, 2])
    assert describe(bare) == GENERIC
    plt.close(bare)


def test_exercises_show_the_stub_and_lose_their_hidden_tests():
    solution = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                                         metadata={"nbgrader": {"solution": True, "grade_id": "f", "grade": False}})
    hidden = "### BEGIN HIDDEN TESTS\nassert f() + 1 == 2\n### END HIDDEN TESTS"
    test = nbformat.v4.new_code_cell("assert f() == 1\n" + hidden,
                                     metadata={"nbgrader": {"grade": True, "grade_id": "f_test", "points": 1}})
    nb = nbformat.v4.new_notebook(cells=[solution, test])
    mark_solutions(without_hidden_tests(nb, "x.ipynb"), "x.ipynb")
    assert nb.cells[0].metadata[SITE_KEY] == {"stub": f"def f():\n    {CODE_STUB}", "grade_id": "f"}
    assert "return 1" in nb.cells[0].source  # the solution itself stays, for the fold
    assert nb.cells[1].source == "assert f() == 1"


# ----------------------------------------------------------------------------- the set-up code at a page's top

@pytest.mark.parametrize(("source", "folded"), [
    ("import numpy as np\nimport torch\n\nfrom course_utils import start_notebook\n\ndevice = start_notebook()", True),
    ("import numpy as np\nimport torch\nfrom x import (\n    a,\n    b,\n)\nfrom y import z\n"
     "rtol, atol = tolerance(torch.float32, device)\nseed_everything(0)", True),
    ("import torch\nfrom x import y\nfor cls in (A, B):\n    check(cls)", False),  # a loop: lesson code
    ("import torch\nfrom x import y\nif table.exists():\n    show(table)", False),
    ("import torch\na = 1\nb = 2\nc = 3", False),  # mostly not imports
    ("x = torch.zeros(3)\nimport numpy", False),  # starts with code
    ("%timeit f()\nimport numpy", False),  # not Python: shown as it is
])
def test_an_import_cell_is_imports_then_a_few_one_line_statements(source, folded):
    assert is_import_cell(source) is folded


def test_the_colab_cell_leaves_the_page_and_the_counts_close_up():
    colab = nbformat.v4.new_code_cell("# Colab set-up: on Google Colab, ...\nimport sys", execution_count=1)
    later = [nbformat.v4.new_code_cell(f"x = {i}", execution_count=i) for i in (2, 3)]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), colab, *later])
    without_colab_cell(nb)
    assert [c.source for c in nb.cells] == ["# Title", "x = 2", "x = 3"]
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2]


def test_every_lecture_page_starts_with_the_lesson(repo):
    """On every course notebook: no Colab cell left; after 00 (whose first code is its lesson), the
    first code cell is a long import cell, folded; graded cells never are."""
    for path in sorted((repo / "notebooks").glob("[0-9]*.ipynb")):
        nb = mark_import_cells(without_colab_cell(nbformat.read(path, as_version=4)))
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.source.startswith("# Colab set-up") for c in code), path.name
        folded = [c for c in code if "imports" in c.metadata.get(SITE_KEY, {})]
        assert all("nbgrader" not in c.metadata for c in folded), path.name
        if path.name == "00_setup.ipynb":
            assert not folded
            continue
        assert folded and folded[0] is code[0] and len(code[0].source.splitlines()) >= FOLD_LINES, path.name
