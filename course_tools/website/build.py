"""Build the course website: execute every notebook, render it to HTML, add an index.

The tool is nbconvert (JupyterLab's own HTML template), from the ``tools`` extra, which
needs no network: MathJax is served from the site itself (the copy packaged in
``jupyter-server-mathjax``), and the scripts that the lab template would fetch from the
internet are left out (``page.html.j2``). The lecture order and one-line descriptions come
from the table in ``README.md``, so the README and the site cannot disagree.

Output (``_site/`` by default)::

    index.html            the lectures in order, with links to pages, student versions, Colab
    NN_name.html          one page per notebook, executed: outputs, plots and math; each
                          exercise as a learner gets it, its solution collapsed, no hidden tests;
                          the lesson first: no Colab set-up cell, long import cells folded (:mod:`.setup_cells`)
    student/NN_name.ipynb the student versions (exercises without solutions), to download
    pagefind/             the search index and search box (:mod:`.search`)
    mathjax/, course.css, colab-badge.svg

Executed notebooks are cached (:mod:`.cache`): a build runs only the notebooks whose code,
helpers or data changed since the last one.

A quick preview (``execute_only``, ``--execute-only``) runs only the notebooks it names; every
other page is rendered from its notebook as it is (hidden tests removed, solutions folded, the
same navigation and search), without outputs, under a note that it was not run. Such pages
never enter the cache. ``make site`` builds the full site, every notebook run.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbformat import NotebookNode
from tqdm.auto import tqdm

from ..colab import colab_url
from .cache import ExecutionCache, cache_key
from .exercises import mark_solutions, without_hidden_tests
from .search import SEARCH_BOX, build_index
from .setup_cells import mark_import_cells, without_colab_cell

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CACHE_DIR = REPO / ".cache" / "site"
ALT_TEXT_CELL = "from course_tools.website.figure_alt import install\ninstall()"  # run first, then removed
COURSE_TITLE = "Sequence Models, from RNNs to Transformers"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class BuildError(RuntimeError):
    """A notebook failed to execute, or the build was asked for one the course lacks; the message says which."""


@dataclass
class Lecture:
    number: str  # "05a"
    label: str  # "classification"
    notebook: Path  # notebooks/05a_classification.ipynb
    summary: str  # what you build (from the README's table)

    @property
    def page(self) -> str:
        return self.notebook.stem + ".html"

    @property
    def names(self) -> set[str]:
        """What a build option may call it: number, stem or file name ("05a", "05a_classification[.ipynb]")."""
        return {self.number, self.notebook.stem, self.notebook.name}


def lectures(readme: Path = REPO / "README.md", notebooks: Path = REPO / "notebooks") -> list[Lecture]:
    """The lecture table of the README, in order: rows whose notebook link exists.

    A row reads ``| 05a | [classification](notebooks/05a_classification.ipynb) | what you build | ...``.
    """
    row = re.compile(r"^\|\s*(\w+)\s*\|\s*\[([^\]]+)\]\(notebooks/([\w.]+\.ipynb)\)\s*\|\s*([^|]+?)\s*\|")
    found = []
    for line in readme.read_text().splitlines():
        match = row.match(line)
        if match and (notebooks / match[3]).exists():
            found.append(Lecture(match[1], match[2], notebooks / match[3], match[4]))
    if not found:
        raise BuildError(f"no lecture rows (| NN | [label](notebooks/NN_name.ipynb) | ... |) in {readme}")
    return found


@contextmanager
def kernel_environment(device: str | None) -> Iterator[None]:
    """Environment for the kernels: inline figures, static widgets, the chosen device."""
    saved = dict(os.environ)
    os.environ.pop("MPLBACKEND", None)  # the tests set Agg, which would hide every figure
    os.environ["COURSE_WIDGETS"] = "0"  # a static page cannot move a slider
    os.environ["COURSE_DEVICE"] = device or os.environ.get("COURSE_DEVICE", "cpu")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


def failure_summary(err: CellExecutionError) -> str:
    """The error and the line that raised it, e.g. "AssertionError at line 3: assert x > y".

    IPython marks the failing line with an arrow (``---->``), the cell's first; a bare assert has an
    empty message, so without the line the author would not know which check failed.
    """
    lines = ANSI_COLOUR.sub("", str(err)).splitlines()
    error = f"{err.ename}: {err.evalue}" if err.evalue else err.ename
    arrows = [line for line in lines if line.lstrip().startswith("---->")]
    if not arrows:
        return error
    where = arrows[0].lstrip()[len("---->"):].strip()  # "3 assert x > y  # ..."
    number, _, code = where.partition(" ")
    return f"{error} at line {number} of the cell: {code.strip()}"


def execute(path: Path, timeout: int) -> NotebookNode:
    """Run a notebook top to bottom in a fresh kernel (in its own folder) and return it.

    Hidden tests are dropped first (a page shows neither them nor their output); a first
    cell, removed afterwards, gives every figure alt text (:mod:`.figure_alt`).
    """
    nb = without_hidden_tests(nbformat.read(path, as_version=4), path.name)
    nb.cells.insert(0, nbformat.v4.new_code_cell(ALT_TEXT_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as err:
        raise BuildError(f"{path.name} failed while building the site: {failure_summary(err)}") from None
    del nb.cells[0]
    for cell in nb.cells:  # number the cells as if the alt-text cell had never been there
        if cell.get("execution_count"):
            cell.execution_count -= 1
    return strip_widgets(nb)


def executed(path: Path, timeout: int, device: str, cache: ExecutionCache | None) -> tuple[NotebookNode, bool]:
    """The notebook with its outputs, from the cache where its key matches; True if it ran."""
    key = cache_key(nbformat.read(path, as_version=4), device)
    if cache is not None:
        hit = cache.load(without_hidden_tests(nbformat.read(path, as_version=4), path.name), path.stem, key)
        if hit is not None:
            return hit, False
    nb = execute(path, timeout)
    if cache is not None:
        cache.store(nb, path.stem, key)
    return nb, True


def unexecuted(path: Path) -> NotebookNode:
    """The notebook as it is, for a preview page: hidden tests dropped, no outputs (nothing runs)."""
    nb = without_hidden_tests(nbformat.read(path, as_version=4), path.name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return strip_widgets(nb)


def to_execute(execute_only: Collection[str] | None, all_lectures: list[Lecture]) -> set[Path] | None:
    """The notebooks ``execute_only`` names (by number, stem or file name); None: every one.

    A name that is no lecture is refused (:class:`BuildError`), so a typo cannot quietly give
    a site with one page fewer run.
    """
    if execute_only is None:
        return None
    names = {execute_only} if isinstance(execute_only, str) else set(execute_only)
    unknown = sorted(names - set().union(*(lec.names for lec in all_lectures)))
    if unknown:
        known = ", ".join(lec.notebook.name for lec in all_lectures)
        raise BuildError(f"execute_only names notebooks the course does not have: {', '.join(unknown)} "
                         f"(the lectures are {known})")
    return {lec.notebook for lec in all_lectures if lec.names & names}


def strip_widgets(nb: NotebookNode) -> NotebookNode:
    """Drop widget views (a static page has no kernel to draw them); their text stays."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            output.get("data", {}).pop(WIDGET_MIME, None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "display_data" or o.get("data")]
    return nb


def link(href: str, text: str, **attrs: str) -> str:
    extra = "".join(f' {k}="{html.escape(v)}"' for k, v in attrs.items())
    return f'<a href="{html.escape(href)}"{extra}>{text}</a>'


def colab_badge(lecture: Lecture, folder: str = "notebooks") -> str:
    img = '<img src="colab-badge.svg" alt="Open in Colab" width="117" height="20">'
    return link(colab_url(lecture.notebook.name, folder), img, **{"class": "colab"})


def student_link(lecture: Lecture, student_dir: Path) -> str:
    """The student version to download, and the same in Colab ("" where there is none)."""
    if not (student_dir / lecture.notebook.name).exists():
        return ""
    download = link(f"student/{lecture.notebook.name}", "student version", download="")
    return download + " (" + link(colab_url(lecture.notebook.name, "student"), "in Colab") + ")"


def navigation(index: int, all_lectures: list[Lecture], student_dir: Path) -> str:
    """The bar at the top and bottom of a page: index, previous, next, student version, Colab."""
    lecture = all_lectures[index]
    parts = [link("index.html", "&#8962; course index")]
    if index > 0:
        before = all_lectures[index - 1]
        parts.append(link(before.page, f"&larr; {before.number} {html.escape(before.label)}", rel="prev"))
    if index + 1 < len(all_lectures):
        after = all_lectures[index + 1]
        parts.append(link(after.page, f"{after.number} {html.escape(after.label)} &rarr;", rel="next"))
    parts += [p for p in (student_link(lecture, student_dir), colab_badge(lecture)) if p]
    return '<nav class="course-nav">' + " <span>&middot;</span> ".join(parts) + "</nav>"


PREVIEW_NOTE = ('<p class="course-preview" role="note" data-pagefind-ignore="all"><strong>Preview:</strong> '
                'this page was rendered without running its notebook, so it shows no outputs or plots. '
                'The course site (<code>make site</code>) runs every notebook.</p>')
INDEX_PREVIEW_NOTE = ('<p class="course-preview" role="note"><strong>Preview build:</strong> some pages were '
                      'rendered without running their notebook; they say so at the top and show no outputs.</p>')


def render_index(all_lectures: list[Lecture], student_dir: Path, search: bool = True, preview: bool = False) -> str:
    rows = []
    for lec in all_lectures:
        rows.append(
            f"<tr><td>{lec.number}</td><td>{link(lec.page, html.escape(lec.label))}</td>"
            f"<td>{html.escape(lec.summary).replace('`', '')}</td>"
            f"<td>{student_link(lec, student_dir)}</td><td>{colab_badge(lec)}</td></tr>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<meta name="color-scheme" content="light dark">
<title>{COURSE_TITLE}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="course.css">
</head>
<body class="course-index">
<main>
<h1>{COURSE_TITLE}</h1>
{INDEX_PREVIEW_NOTE if preview else ""}
{SEARCH_BOX if search else ""}
<p>Recurrent networks, backpropagation through time, LSTM and GRU, the kinds of sequence
outputs, attention, self-attention and transformers, then modern parallel RNNs. Every model is
written from scratch, checked against PyTorch, trained on real data and measured. These pages
show each notebook as it ran on a CPU when the site was built; to run them yourself, follow the
README (<code>make lab</code>) or open a notebook in Colab. The exercises are in the student
versions; on these pages each exercise shows what you start from, its solution folded away.</p>
<table class="lectures">
<thead><tr><th>#</th><th>lecture</th><th>what you build</th><th>exercises</th><th>run it</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</main>
</body>
</html>
"""


def copy_assets(out: Path, student_dir: Path, all_lectures: list[Lecture]) -> None:
    import jupyter_server_mathjax  # a packaged copy of MathJax 2.7, so pages need no network

    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, out / "mathjax", dirs_exist_ok=True)
    for name in ("course.css", "colab-badge.svg"):
        shutil.copy(HERE / name, out / name)
    (out / "student").mkdir(exist_ok=True)
    for lec in all_lectures:
        if (student_dir / lec.notebook.name).exists():
            shutil.copy(student_dir / lec.notebook.name, out / "student" / lec.notebook.name)


def dark_theme_css() -> str:
    """JupyterLab's dark theme variables (one ``:root`` block), from nbconvert's lab template."""
    for folder in HTMLExporter(template_name="lab").template_paths:
        path = Path(folder) / "static" / "theme-dark.css"
        if path.exists():
            return path.read_text()
    raise BuildError("nbconvert's lab template has no static/theme-dark.css: reinstall nbconvert")


def exporter() -> HTMLExporter:
    return HTMLExporter(template_name="lab", extra_template_paths=[str(HERE)], template_file="page.html.j2",
                        mathjax_url=f"mathjax/MathJax.js?config={MATHJAX_CONFIG}")


def previewed(lec: Lecture, run: set[Path] | None) -> bool:
    """Whether a page is shown unrun: ``run`` (from :func:`to_execute`) leaves its notebook out."""
    return run is not None and lec.notebook not in run


def page_notebook(lec: Lecture, run: set[Path] | None, timeout: int,
                  cache: ExecutionCache | None) -> tuple[NotebookNode, str]:
    """The notebook a page shows, and how it was had: "ran", "unchanged, ..." (cache) or "not run" (preview)."""
    if previewed(lec, run):
        return unexecuted(lec.notebook), "not run: preview"
    nb, ran = executed(lec.notebook, timeout, os.environ["COURSE_DEVICE"], cache)
    return nb, "ran" if ran else "unchanged, outputs from the cache"


def render_page(nb: NotebookNode, lec: Lecture, all_lectures: list[Lecture], student_dir: Path, *,
                search: bool, preview: bool, html_exporter: HTMLExporter, dark_css: str) -> str:
    """One lecture page: the lesson first (no Colab set-up cell, long imports folded), exercises folded,
    navigation, search box, and the preview note where it was not run."""
    mark_import_cells(mark_solutions(without_colab_cell(nb), lec.notebook.name))
    nav = navigation(all_lectures.index(lec), all_lectures, student_dir)
    resources = {"course": {"root": "", "nav": nav, "search": SEARCH_BOX if search else "", "dark_css": dark_css,
                            "preview": PREVIEW_NOTE if preview else ""},
                 "metadata": {"name": f"{lec.number} · {lec.label}"}}
    body, _ = html_exporter.from_notebook_node(nb, resources=resources)
    return body


def build(out: Path = REPO / "_site", *, only: list[str] | None = None, device: str | None = None,
          timeout: int = 600, student_dir: Path = REPO / "student", progress: bool = True,
          cache_dir: Path | None = CACHE_DIR, search: bool = True, jobs: int = 1,
          execute_only: Collection[str] | None = None) -> list[Path]:
    """Build the site into ``out``; returns the pages written (index first).

    ``only``: notebook stems or numbers to build (default: every lecture); the index and the
    navigation still list every lecture. ``cache_dir``: where executed notebooks are kept
    between builds (None: run every notebook). ``search``: build the search index.
    ``jobs``: notebooks run at once, each kernel on its ``COURSE_THREADS`` threads (default 1):
    on two cores, ``jobs=2`` builds in about half the time; more jobs than cores only slows
    every kernel down. Pages are written in lecture order whatever ``jobs`` is.
    ``execute_only``: a quick preview: run only these notebooks (file names such as
    ``"00_setup.ipynb"``, stems or numbers; None, the default: every one). The other pages show
    their notebook unrun, without outputs, under a preview note, and are not cached; a name
    that is no lecture is refused before anything is built.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    all_lectures = lectures()
    run_these = to_execute(execute_only, all_lectures)
    chosen = [lec for lec in all_lectures if not only or lec.names & set(only)]
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out, student_dir, all_lectures)
    preview = any(previewed(lec, run_these) for lec in chosen)
    (out / "index.html").write_text(render_index(all_lectures, student_dir, search, preview=preview))
    written = [out / "index.html"]
    html_exporter, dark_css = exporter(), dark_theme_css()
    cache = ExecutionCache(cache_dir) if cache_dir is not None else None
    bar = tqdm(total=len(chosen), desc="building the site", unit="notebook", disable=not progress)

    def run(lec: Lecture) -> tuple[NotebookNode, str, float]:
        start = time.perf_counter()
        nb, how = page_notebook(lec, run_these, timeout, cache)
        return nb, how, time.perf_counter() - start

    with kernel_environment(device), ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run, lec) for lec in chosen]
        for lec, future in zip(chosen, futures, strict=True):  # in lecture order
            bar.set_postfix_str(lec.notebook.name)
            try:
                nb, how, seconds = future.result()
            except BaseException:  # a failed notebook (or Ctrl-C) stops the build: nothing new starts, and
                pool.shutdown(wait=False, cancel_futures=True)  # the error waits only for notebooks running
                bar.close()
                raise
            (out / lec.page).write_text(render_page(nb, lec, all_lectures, student_dir, search=search,
                                                    preview=previewed(lec, run_these),
                                                    html_exporter=html_exporter, dark_css=dark_css))
            written.append(out / lec.page)
            bar.update()
            bar.write(f"{lec.notebook.name}: {seconds:.1f} s ({how})")
    bar.close()
    if search:
        bar.write(f"search index: {build_index(out)}")
    return written
