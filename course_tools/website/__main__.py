"""Build the course website from the executed notebooks.

    python -m course_tools.website                 # every notebook, on the CPU, into _site/
    python -m course_tools.website --only 01_rnn   # one page (the index still lists all)
    python -m course_tools.website --no-cache      # run every notebook, even unchanged ones
    python -m course_tools.website --jobs 2        # two notebooks at once (one per core)
    python -m course_tools.website --execute-only 00_setup,05d_forecasting
                                                   # quick preview: run only these; the other
                                                   # pages unrun, without outputs, marked so
    COURSE_DEVICE=cuda python -m course_tools.website

Then open _site/index.html, or serve it: python -m http.server -d _site 8000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .build import CACHE_DIR, REPO, BuildError, build
from .search import SearchIndexError


def notebook_list(text: str) -> list[str]:
    """``"00_setup, 05d_forecasting"`` -> ``["00_setup", "05d_forecasting"]``; an empty entry is refused."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected notebook names separated by commas, got {text!r}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_tools.website", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "_site", help="output folder (default: _site)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK", help="notebook stems or numbers, e.g. 01_rnn 05a")
    parser.add_argument("--execute-only", type=notebook_list, metavar="NOTEBOOKS",
                        help="quick preview build: run only these notebooks (stems, numbers or file names, comma "
                             "separated, e.g. 00_setup,05d_forecasting); every other page is rendered unrun, "
                             "without outputs, under a preview note. Default: run every notebook")
    parser.add_argument("--device", help="cpu (default), cuda or mps; COURSE_DEVICE works too")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--no-cache", action="store_true",
                        help="run every notebook (default: reuse the outputs of unchanged ones, from .cache/site)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once (default 1); at most one per core, each on COURSE_THREADS threads")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    start = time.perf_counter()
    try:
        pages = build(args.out, only=args.only, device=args.device, timeout=args.timeout,
                      cache_dir=None if args.no_cache else CACHE_DIR, jobs=args.jobs, execute_only=args.execute_only)
    except (BuildError, SearchIndexError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {len(pages)} pages to {args.out} in {time.perf_counter() - start:.0f} s; "
          f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
