"""Full-text search over the website, offline: a Pagefind index built beside the pages.

Pagefind (the ``pagefind`` package from PyPI, with its binary) reads the built pages and
writes ``pagefind/``: the index, in chunks a browser fetches as needed, and a search box
(``pagefind-ui.js``). It needs no network, neither to build nor to search, but it does need
a web server (``python -m http.server -d _site``): browsers refuse its fetches from
``file://`` pages. Only lecture content is indexed (``data-pagefind-body``); navigation and
collapsed solutions are left out (``data-pagefind-ignore``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SEARCH_BOX = """<div class="course-search" data-pagefind-ignore="all">
<link rel="stylesheet" href="pagefind/pagefind-ui.css">
<script src="pagefind/pagefind-ui.js"></script>
<div id="search"></div>
<script>
window.addEventListener("DOMContentLoaded", () => {
  if (window.PagefindUI) {
    new PagefindUI({element: "#search", showSubResults: true, showImages: false,
                    baseUrl: new URL(".", document.baseURI).pathname,  // the site may live in a subfolder
                    translations: {placeholder: "Search the course"}});
  }
});
</script>
</div>"""


class SearchIndexError(RuntimeError):
    """Pagefind could not build the index; the message says why."""


def build_index(site: Path) -> str:
    """Index every page under ``site`` into ``site/pagefind``; returns Pagefind's summary line."""
    try:
        done = subprocess.run([sys.executable, "-m", "pagefind", "--site", str(site), "--force-language", "en",
                               "--exclude-selectors", "a.anchor-link"],
                              capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SearchIndexError(f"could not run Pagefind: {err}") from None
    if done.returncode != 0 or not (site / "pagefind" / "pagefind-ui.js").exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SearchIndexError("Pagefind failed to index the site (is the tools extra installed? "
                               "pip install -e '.[tools]'): " + " | ".join(tail))
    pages = [line for line in done.stdout.splitlines() if "Indexed" in line and "page" in line]
    return pages[0].strip() if pages else done.stdout.strip().splitlines()[-1]
