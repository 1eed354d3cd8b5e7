"""The course website: built from the notebooks, then read in headless Chromium.

The site built here is a small preview: every page is rendered, but only three cheap
notebooks (``EXECUTED``, about 30 s of kernel time) are run; the others show their notebook unrun
under a preview note. Every notebook already runs under nbval (``make test``), and running all
of them again here took ten minutes; ``make site`` builds the full site. So the checks on
markdown and code (math, hidden tests, folded solutions, navigation, search, contrast) read
every page or the pages they always read, and the checks on outputs (plots, alt text) read the
executed pages. The site is built once for this file. Screenshots of the index and of one
lecture (its top, and its first code: the lesson's, the imports folded) go to test-artifacts/.
"""

from __future__ import annotations

import functools
import html
import http.server
import importlib
import re
import threading
from pathlib import Path

import nbformat
import pytest
from pages import PageProblems

from course_tools.colab import MARKER, colab_url
from course_tools.website import BuildError, build, lectures
from course_tools.website.__main__ import main
from course_tools.website.build import execute, strip_widgets
from course_tools.website.figure_alt import GENERIC
from course_tools.website.setup_cells import is_import_cell

build_module = importlib.import_module("course_tools.website.build")  # the module (the package exports build())

pytestmark = pytest.mark.slow  # builds a site and opens a browser: not in `make test-fast`
EXECUTED = ("00_setup.ipynb", "01_rnn.ipynb", "05d_forecasting.ipynb")  # the quickest to run: 6, 11 and 14 s
EXECUTED_PAGES = [name.replace(".ipynb", ".html") for name in EXECUTED]
SCREENSHOT_PAGE = "01_rnn.html"  # executed
REPO_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
RAW_LATEX = re.compile(r"\$\\[a-zA-Z]+|\$\$")  # $\alpha or $$ in rendered text: math MathJax did not typeset
MATHJAX_DONE = "() => window.MathJax && MathJax.isReady && MathJax.Hub.queue.pending === 0"
SETTLED = "() => !window.MathJax || (MathJax.isReady && MathJax.Hub.queue.pending === 0)"  # index: no MathJax


def open_page(page, url: str) -> None:
    """Go to ``url`` and wait until MathJax has typeset it: leaving a page earlier aborts the files MathJax
    is still fetching, which a busy machine makes likely and the page's problems would count."""
    page.goto(url, wait_until="networkidle")
    page.wait_for_function(SETTLED, timeout=120_000)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("site-cache")  # empty: the first build runs every notebook


@pytest.fixture(scope="module")
def site(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("site")
    pages = build(out, progress=False, cache_dir=cache_dir, jobs=2,  # two notebooks at once, as `make site`
                  execute_only=EXECUTED)
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
        open_page(page, served + name)
        if name != "index.html":
            page.wait_for_function(MATHJAX_DONE, timeout=60_000)
            typeset = page.locator(".MathJax, .MathJax_Display").count()
            assert typeset > 0, f"{name}: no math was typeset"
            assert page.locator(".MathJax_Error, merror").count() == 0, f"{name}: MathJax reported an error"
            raw = page.locator(".jp-MarkdownOutput", has_text=RAW_LATEX)  # MathJax replaces what it typesets
            assert raw.count() == 0, f"{name}: raw LaTeX left in the text: {raw.first.inner_text()[:300]}"
        if name in EXECUTED_PAGES:
            widths = page.eval_on_selector_all(".jp-OutputArea-output img", "imgs => imgs.map(i => i.naturalWidth)")
            assert widths and min(widths) > 0, f"{name}: expected plots as images, got widths {widths}"
            assert "<Figure size" not in page.content(), f"{name}: a figure was shown as text, not drawn"
        elif name != "index.html":
            assert page.locator(".jp-OutputArea-output").count() == 0, f"{name}: outputs on a page that was not run"
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


def test_a_failing_assert_is_named_by_its_line(tmp_path):
    """A bare assert has no message: the build names the line, so the author knows which check failed."""
    source = "x = 1\nassert x > 0\nassert x > 2  # the second check\nprint(x)"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    path = tmp_path / "99_assert.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(BuildError) as failure:
        execute(path, timeout=60)
    assert str(failure.value) == ("99_assert.ipynb failed while building the site: AssertionError at line 3 "
                                  "of the cell: assert x > 2  # the second check")


def test_widget_views_are_dropped_and_their_text_kept():
    view = {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": "train: 100%"}
    only_view = {"application/vnd.jupyter.widget-view+json": {"model_id": "y"}}
    cell = nbformat.v4.new_code_cell("fit(...)", outputs=[
        nbformat.v4.new_output("display_data", data=view), nbformat.v4.new_output("display_data", data=only_view)])
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    strip_widgets(nb)
    assert "widgets" not in nb.metadata
    assert [o.data for o in nb.cells[0].outputs] == [{"text/plain": "train: 100%"}]


# ----------------------------------------------------------------------------- exercises, search, alt text, dark mode

def _text(page_html: str) -> str:
    """A page's text, tags dropped and spaces collapsed (code is split into highlighted spans)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page_html)).split())


def _hidden_lines(nb) -> list[str]:
    """Lines of a notebook's hidden tests that appear nowhere else in it."""
    hidden, elsewhere, inside = [], [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            text = line.strip()
            if text in ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"):
                inside = text.startswith("### BEGIN")
            elif text:
                (hidden if inside else elsewhere).append(" ".join(text.split()))
    return [line for line in hidden if line not in elsewhere and len(line) >= 30]  # distinctive lines only


def test_no_page_contains_a_hidden_test(site):
    checked = 0
    for lec in lectures():
        text = _text((site / lec.page).read_text())
        assert "HIDDEN TESTS" not in text, lec.page
        for line in _hidden_lines(nbformat.read(lec.notebook, as_version=4)):
            assert " ".join(re.findall(r"\w+|[^\w\s]", line)) not in " ".join(re.findall(r"\w+|[^\w\s]", text)), \
                f"{lec.page} shows a hidden test: {line}"
            checked += 1
    assert checked >= 10  # the course has hidden tests to hide


@pytest.mark.parametrize("lecture", ["03_lstm", "01_rnn"])  # not run, and run: folded the same way
def test_solutions_are_folded_and_the_task_is_shown(site, lecture):
    page = (site / f"{lecture}.html").read_text()
    solutions = re.findall(r'<details class="course-solution"[^>]*>(.*?)</details>', page, flags=re.S)
    graded = [n for n in nbformat.read(REPO_NOTEBOOKS / f"{lecture}.ipynb", as_version=4).cells
              if n.get("metadata", {}).get("nbgrader", {}).get("solution")]
    assert len(solutions) == len(graded) >= 4
    assert all("BEGIN SOLUTION" in _text(s) for s in solutions)  # the whole answer is in the fold
    tasks = page.split('<details class="course-solution"')[:-1]
    assert all("NotImplementedError" in _text(t.rsplit("course-exercise", 1)[-1]) for t in tasks)


def test_a_solution_is_hidden_until_its_control_is_pressed(site, served, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page)
    open_page(page, served + "03_lstm.html")
    fold = page.locator("details.course-solution").first
    answer = fold.locator(".jp-InputArea-editor")
    assert not answer.is_visible()
    fold.locator("summary").click()
    assert answer.is_visible() and "BEGIN SOLUTION" in answer.inner_text()
    assert not problems.lines, problems.lines
    page.close()


@pytest.mark.parametrize(("term", "expected"), [("forget gate", "03_lstm.html"), ("sunspots", "05d_forecasting.html")])
def test_search_finds_a_term_on_its_page(site, served, browser, term, expected):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page)
    open_page(page, served + "index.html")
    page.fill("#search input", term)
    page.wait_for_selector(".pagefind-ui__result-link", timeout=30_000)
    links = [a.get_attribute("href") for a in page.locator(".pagefind-ui__result-link").all()]
    assert any(link.split("#")[0].endswith("/" + expected) for link in links), links
    page.locator(".pagefind-ui__result-link").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url.split("#")[0].endswith(".html") and "404" not in page.title()
    assert not problems.lines, problems.lines
    page.close()


IMPORTS = re.compile(r'<details class="course-imports">(.*?)</details>', flags=re.S)


def test_no_page_shows_the_colab_set_up_cell_and_long_imports_are_folded(site):
    for lec in lectures():
        page = (site / lec.page).read_text()
        text = _text(page)
        assert MARKER not in text and "google.colab" not in text and "subprocess" not in text, lec.page
        folds = IMPORTS.findall(page)
        if lec.notebook.name == "00_setup.ipynb":  # its first code is the lesson's (checking the environment)
            assert folds == [], lec.page
            continue
        assert len(folds) == 1 and "Show imports and set-up" in folds[0], lec.page
        assert "import" in _text(folds[0]) and "start_notebook" in _text(folds[0]), lec.page
        if lec.notebook.name in EXECUTED:  # counted without the Colab cell; the device line stays in view
            assert "In [1]:" in _text(folds[0]), lec.page
            cell = page.split(folds[0], 1)[1].split('<div class="jp-Cell ', 1)[0]  # the rest of the fold's cell
            assert "Running on:" in _text(cell), lec.page


def test_a_page_opens_with_the_lesson_its_imports_one_click_away(site, served, browser, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = PageProblems(page)
    for lec in lectures():
        open_page(page, served + lec.page)
        first = page.locator(".jp-CodeCell .jp-InputArea-editor").filter(visible=True).first
        code = first.inner_text()
        assert not code.startswith(MARKER) and "google.colab" not in code, lec.page
        if lec.notebook.name == "00_setup.ipynb":
            continue
        assert not is_import_cell(code), f"{lec.page}: the first code in view is an import cell:\n{code[:300]}"
        fold = page.locator("details.course-imports").first
        imports = fold.locator(".jp-InputArea-editor")
        assert fold.locator("summary").is_visible() and not imports.is_visible(), lec.page
        if lec.page == SCREENSHOT_PAGE:
            fold.scroll_into_view_if_needed()
            page.evaluate("window.scrollBy(0, -120)")  # the text before the fold in view too
            page.screenshot(path=str(artifacts / f"site-{lec.notebook.stem}-first-code.png"))
            fold.locator("summary").click()
            assert imports.is_visible() and "start_notebook" in imports.inner_text()
    assert not problems.lines, problems.lines
    page.close()


def test_search_leaves_out_solutions_and_navigation(site):
    assert (site / "pagefind" / "pagefind-ui.js").exists()
    for lec in lectures():
        page = (site / lec.page).read_text()
        assert len(re.findall(r"<main data-pagefind-body", page)) == 1
        folds = re.findall(r'<details class="course-solution"[^>]*>', page)
        assert all('data-pagefind-ignore="all"' in d for d in folds)


def _png_images(page: str) -> list[dict[str, str]]:
    """The attributes of every embedded PNG on a page (nbconvert may reorder attributes)."""
    tags = [t for t in re.findall(r"<img\b[^>]*>", page) if 'src="data:image/png' in t]
    return [dict(re.findall(r'(\w[\w-]*)="([^"]*)"', t)) for t in tags]


def test_figures_carry_alt_text(site):
    generic, total = [], 0
    for name in EXECUTED_PAGES:  # the pages with outputs
        for img in _png_images((site / name).read_text()):
            total += 1
            assert img.get("alt", "").strip(), f"{name}: a figure without alt text"
            if img["alt"] == GENERIC:
                generic.append(name)
    assert total >= 7  # measured: 2 + 1 + 4 figures
    # A figure with neither title nor axis labels gets a generic alt text; keep those rare.
    assert len(generic) <= total // 10, f"figures with neither title nor axis labels (give them one): {generic}"


CONTRAST = """els => els.map(el => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  let bg = null;
  for (let node = el; node && !bg; node = node.parentElement) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) bg = c.slice(0, 3);
  }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color).slice(0, 3);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return [el.tagName + '.' + el.className, (a + 0.05) / (b + 0.05)];
})"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_pages_follow_the_colour_scheme_with_readable_contrast(site, served, browser, artifacts, scheme):
    page = browser.new_page(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    problems = PageProblems(page)
    backgrounds = set()
    for name in ["index.html", "03_lstm.html", "07_self_attention.html", "01_rnn.html"]:  # 01_rnn: output text
        open_page(page, served + name)
        backgrounds.add(page.evaluate("getComputedStyle(document.body).backgroundColor"))
        selectors = ("p, td, .course-nav a, .jp-RenderedText pre, .highlight span, details.course-solution > summary, "
                     "details.course-imports > summary")
        ratios = page.eval_on_selector_all(selectors, CONTRAST)
        assert ratios, name
        low = [(what, round(r, 2)) for what, r in ratios if r < 4.5]
        assert not low, f"{name} ({scheme}): text below WCAG AA contrast 4.5: {low[:5]}"
        assert not problems.lines, f"{name} ({scheme}): " + "\n".join(problems.lines)
        if name == "03_lstm.html":
            page.screenshot(path=str(artifacts / f"site-03_lstm-{scheme}.png"))
    dark = all(sum(map(int, re.findall(r"\d+", bg)[:3])) < 3 * 80 for bg in backgrounds)
    light = all(sum(map(int, re.findall(r"\d+", bg)[:3])) > 3 * 200 for bg in backgrounds)
    assert dark if scheme == "dark" else light, backgrounds
    page.close()


def test_a_second_build_with_nothing_changed_runs_no_notebook(site, cache_dir, tmp_path, monkeypatch):
    ran = []
    real_execute = build_module.execute
    monkeypatch.setattr(build_module, "execute",
                        lambda path, timeout: ran.append(path.name) or real_execute(path, timeout))
    pages = build(tmp_path / "again", progress=False, cache_dir=cache_dir, execute_only=EXECUTED)
    assert ran == []
    assert len(pages) == len(lectures()) + 1
    for again in pages:  # the executed pages from the cache, the others rendered again: the same pages
        assert again.read_text() == (site / again.name).read_text(), again.name
    assert sorted(p.name for p in cache_dir.iterdir()) == [n.replace(".ipynb", ".json") for n in EXECUTED]


PREVIEW = re.compile(r'<p class="course-preview"[^>]*>(.*?)</p>', flags=re.S)


def test_a_page_not_run_says_so_at_its_top_and_a_run_one_does_not(site):
    for lec in lectures():
        page = (site / lec.page).read_text()
        notes = PREVIEW.findall(page)
        if lec.notebook.name in EXECUTED:
            assert notes == [], lec.page
            continue
        assert len(notes) == 1 and "without running" in _text(notes[0]), lec.page
        top = page.split("<main data-pagefind-body", 1)[0]  # after the navigation, before the lecture
        assert PREVIEW.search(top) and top.index('<p class="course-preview"') > top.index('class="course-nav"'), \
            lec.page
    assert "Preview build" in _text((site / "index.html").read_text())


def test_execute_only_naming_no_lecture_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    ran = []
    monkeypatch.setattr(build_module, "execute", lambda path, timeout: ran.append(path.name))
    with pytest.raises(BuildError, match=r"does not have: 99_missing.ipynb \(the lectures are 00_setup.ipynb, "):
        build(tmp_path / "site", execute_only=["01_rnn.ipynb", "99_missing.ipynb"], cache_dir=None)
    assert ran == [] and not (tmp_path / "site").exists()
    assert main(["--out", str(tmp_path / "site"), "--execute-only", "00_setup,99_missing"]) == 1  # the CLI too
    assert "does not have: 99_missing" in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "site").exists()


def test_jobs_below_one_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="jobs must be at least 1, got 0"):
        build(tmp_path / "site", jobs=0, cache_dir=None)
    assert not (tmp_path / "site").exists()
