import shutil

import numpy as np
import pytest

from course_utils import data
from course_utils.data import DataFileError, data_path, load_sunspots, manifest, sha256_of
from course_utils.data.files import benchmark_results


def test_every_listed_file_matches_its_hash():
    listed = manifest()
    assert listed, "data/README.md lists no files"
    for name, digest in listed.items():
        assert sha256_of(data.DATA_DIR / name) == digest, f"data/{name} does not match its SHA-256"


def test_every_file_in_data_is_listed():
    files = {p.name for p in data.DATA_DIR.iterdir() if p.is_file() and p.name != "README.md"}
    assert files == set(manifest()), "data/ and the table in data/README.md disagree"


def test_sunspots_loads():
    years, values = load_sunspots()
    assert years.shape == values.shape == (309,)
    assert (years[0], years[-1]) == (1700, 2008)
    assert values[0] == 5.0 and np.all(values >= 0)


@pytest.fixture
def copy_of_data(tmp_path):
    shutil.copy(data.DATA_DIR / "README.md", tmp_path)
    shutil.copy(data.DATA_DIR / "sunspots.csv", tmp_path)
    return tmp_path


def test_missing_file_says_what_and_how_to_restore(copy_of_data):
    (copy_of_data / "sunspots.csv").unlink()
    with pytest.raises(DataFileError, match=r"sunspots\.csv is missing.*git checkout -- data/sunspots\.csv"):
        data_path("sunspots.csv", copy_of_data)


def test_changed_file_is_caught(copy_of_data):
    with open(copy_of_data / "sunspots.csv", "a") as f:
        f.write("2009,3.1\n")
    with pytest.raises(DataFileError, match="has changed: its SHA-256"):
        data_path("sunspots.csv", copy_of_data)


def test_unknown_name_lists_the_known_ones(copy_of_data):
    with pytest.raises(DataFileError, match="'shakespeare.txt' is not a course data file.*sunspots.csv"):
        data_path("shakespeare.txt", copy_of_data)


def test_missing_manifest(tmp_path):
    with pytest.raises(DataFileError, match="README.md is missing"):
        data_path("sunspots.csv", tmp_path)


def test_benchmark_results_are_read_as_rows(tmp_path):
    rows = benchmark_results("scans.csv")  # committed by benchmarks/architectures.py
    assert rows and {"method", "threads", "T"} <= set(rows[0])
    (tmp_path / "tiny.csv").write_text("a,b\n1,x\n2,y\n")
    assert benchmark_results("tiny.csv", tmp_path) == [{"a": "1", "b": "x"}, {"a": "2", "b": "y"}]
    with pytest.raises(DataFileError, match=r"git checkout -- benchmarks/results/missing.csv"):
        benchmark_results("missing.csv", tmp_path)
