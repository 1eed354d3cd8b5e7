"""The course website: built from the executed notebooks, then read in headless Chromium.

Building executes every notebook once (a few minutes on a CPU), so the site is built once
for this file. Screenshots of the index and of one lecture go to test-artifacts/.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading

import nbformat
import pytest
from pages import PageProblems

from course_tools.colab import colab_url
from course_tools.website import BuildError, build, lectures
from course_tools.website.build import execute, strip_widgets

SCREENSHOT_PAGE = "01_rnn.html"
RAW_LATEX = re.compile(r"\$\\[a-zA-Z]+|\$\$")  # $\alpha or $$ in rendered text: math MathJax did not typeset
MATHJAX_DONE = "() => window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    pages = build(out, progress=False)
    assert [p.name for p in pages] == ["index.html"] + [lec.page for lec in lectures()]
    return out


@pytest.fixture(scope="module")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_lectures_follow_the_readme_table(repo):
    found = lectures()
    names = [lec.notebook.name for lec in found]
    assert names == sorted(names) and names[0] == "00_setup.ipynb"
    assert {p.name for p in (repo / "notebooks").glob("[0-9]*.ipynb")} == set(names)  # none left out


def test_index_links_every_page_student_version_and_colab(site):
    index = (site / "index.html").read_text()
    hrefs = re.findall(r'href="([^"]+)"', index)
    for lec in lectures():
        assert lec.page in hrefs and (site / lec.page).exists()
        assert f"student/{lec.notebook.name}" in hrefs and (site / "student" / lec.notebook.name).exists()
        assert colab_url(lec.notebook.name) in hrefs
        assert colab_url(lec.notebook.name, "student") in hrefs
    pages = [h for h in hrefs if h.endswith(".html")]
    assert pages == [lec.page for lec in lectures()]  # in lecture order


def test_pages_link_to_their_neighbours(site):
    all_lectures = lectures()
    for i, lec in enumerate(all_lectures):
        page = (site / lec.page).read_text()
        assert 'href="index.html"' in page
        if i > 0:
            assert f'href="{all_lectures[i - 1].page}" rel="prev"' in page
        if i + 1 < len(all_lectures):
            assert f'href="{all_lectures[i + 1].page}" rel="next"' in page
        assert "cdnjs" not in page and "unpkg" not in page  # nothing fetched from the internet


def test_every_page_loads_with_math_and_plots(site, served, browser, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page)
    for name in ["index.html"] + [lec.page for lec in lectures()]:
        page.goto(served + name, wait_until="networkidle")
        if name != "index.html":
            page.wait_for_function(MATHJAX_DONE, timeout=60_000)
            typeset = page.locator(".MathJax, .MathJax_Display").count()
            assert typeset > 0, f"{name}: no math was typeset"
            assert page.locator(".MathJax_Error, merror").count() == 0, f"{name}: MathJax reported an error"
            raw = page.locator(".jp-MarkdownOutput", has_text=RAW_LATEX)  # MathJax replaces what it typesets
            assert raw.count() == 0, f"{name}: raw LaTeX left in the text: {raw.first.inner_text()[:300]}"
            widths = page.eval_on_selector_all(".jp-OutputArea-output img", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths and min(widths) > 0, f"{name}: expected plots as images, got widths {widths}"
            assert "<Figure size" not in page.content(), f"{name}: a figure was shown as text, not drawn"
        assert not problems.lines, f"{name}: " + "\n".join(problems.lines)
        if name in ("index.html", SCREENSHOT_PAGE):
            page.screenshot(path=str(artifacts / f"site-{name.removesuffix('.html')}.png"))
    page.close()
    assert (artifacts / "site-index.png").stat().st_size > 10_000


def test_a_failing_notebook_stops_the_build_with_its_name(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 / 0")])
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(BuildError, match=r"99_broken.ipynb failed .*ZeroDivisionError"):
        execute(path, timeout=60)


def test_widget_views_are_dropped_and_their_text_kept():
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "train: 100%"}
    only_view = {"application/vnd.jupyter.widget-view+json": {"model_id": "y"}}
    cell = nbformat.v4.new_code_cell("fit(...)", outputs=[
        nbformat.v4.new_output("display_data", data=view), nbformat.v4.new_output("display_data", data=only_view)])
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    strip_widgets(nb)
    assert "widgets" not in nb.metadata
    assert [o.data for o in nb.cells[0].outputs] == [{"text/plain": "train: 100%"}]
