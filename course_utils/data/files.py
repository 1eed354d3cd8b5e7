"""Notebooks 00 and 05d (sunspots), 06, 08b and 09 (benchmark results): the course's shipped files.

Finds a file in ``data/``, checks it against the SHA-256 listed in ``data/README.md``, and
says exactly what is wrong when one is missing or changed. Reads the tables the benchmarks
write to ``benchmarks/results/`` (runs too long for a notebook), for the notebooks that quote them.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parents[2] / "data"  # the repository's data/ folder
RESULTS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "results"  # what benchmarks/*.py write
MANIFEST = DATA_DIR / "README.md"
_ROW = re.compile(r"^\|\s*([^|\s]+)\s*\|\s*([0-9a-f]{64})\s*\|", re.MULTILINE)


class DataFileError(FileNotFoundError):
    """A shipped data file is missing, unlisted or not the file the course expects."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest(readme: Path = MANIFEST) -> dict[str, str]:
    """``{file name: sha256}`` read from the table in ``data/README.md``."""
    if not readme.exists():
        raise DataFileError(
            f"{readme} is missing: it lists the course's data files and their hashes. "
            "Restore it with `git checkout -- data/README.md`."
        )
    return dict(_ROW.findall(readme.read_text(encoding="utf-8")))


def data_path(name: str, data_dir: Path = DATA_DIR) -> Path:
    """Path of a shipped data file, after checking it is listed, present and unchanged."""
    expected = manifest(data_dir / "README.md").get(name)
    if expected is None:
        raise DataFileError(
            f"'{name}' is not a course data file; data/README.md lists: "
            f"{', '.join(sorted(manifest(data_dir / 'README.md'))) or 'nothing'}."
        )
    path = data_dir / name
    if not path.exists():
        raise DataFileError(
            f"The data file {path} is missing. It ships with the course repository: restore "
            f"it with `git checkout -- data/{name}` from the repository root."
        )
    actual = sha256_of(path)
    if actual != expected:
        raise DataFileError(
            f"{path} has changed: its SHA-256 is {actual}, data/README.md expects {expected}. "
            f"Restore it with `git checkout -- data/{name}`."
        )
    return path


def load_sunspots() -> tuple[np.ndarray, np.ndarray]:
    """Yearly sunspot numbers 1700-2008 as ``(years, values)``, both shape ``(309,)``."""
    with open(data_path("sunspots.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    years = np.array([int(float(r["YEAR"])) for r in rows])
    values = np.array([float(r["SUNACTIVITY"]) for r in rows])
    return years, values


def benchmark_results(name: str, results_dir: Path = RESULTS_DIR) -> list[dict[str, str]]:
    """The rows of ``benchmarks/results/<name>`` (a CSV a benchmark script wrote), as dicts of strings."""
    path = results_dir / name
    if not path.exists():
        raise DataFileError(f"The benchmark results {path} are missing. They ship with the course repository: "
                            f"restore them with `git checkout -- benchmarks/results/{name}`, or run the "
                            f"script in benchmarks/ that writes {name}.")
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
