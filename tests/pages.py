"""Headless Chromium for the browser tests: where it is, how it starts, what counts as a problem."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `make test` installs it where it can
# Without these flags Chromium tries to reach Google's services, which an offline machine refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


class PageProblems:
    """Console errors, uncaught exceptions and failed requests of one page, as readable lines."""

    def __init__(self, page):
        self.lines: list[str] = []
        page.on("console", lambda msg: self.lines.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error" else None)
        page.on("pageerror", lambda err: self.lines.append(f"uncaught: {err}"))
        page.on("requestfailed", lambda req: self.lines.append(f"request failed: {req.url} ({req.failure})"))
