"""A class split across workers: `grade --shard I/N` in N processes, then `merge`, writes the files
a serial run writes, byte for byte (the store, the gradebook, every export and feedback file).
The shards are the example Slurm array script's tasks, run without Slurm (its variables set by hand).

The class is tiny and its notebook is 00_setup, the fastest to grade: alice answers, `=1+2`
hands in the stub (and a name a spreadsheet would run), judy uploads twice (`00_setup.ipynb`, the
stub, and `00_setup-Copy1.ipynb`, answered): the exact name is graded, the copy reported.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools.grading.__main__ import main
from course_tools.grading.cells import is_solution

pytestmark = pytest.mark.slow  # six gradings of a course notebook

FLAGS = ["--cell-timeout", "120", "--notebook-timeout", "300"]


def write_class(repo: Path, folder: Path) -> Path:
    stub = nbformat.read(repo / "student" / "00_setup.ipynb", as_version=4)
    source = nbformat.read(repo / "notebooks" / "00_setup.ipynb", as_version=4)
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells if is_solution(c)}
    solved = nbformat.from_dict(stub)
    for cell in solved.cells:
        if is_solution(cell):
            cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
    for student, name, nb, mtime in [("alice", "00_setup.ipynb", solved, 1000), ("=1+2", "00_setup.ipynb", stub, 1000),
                                     ("judy", "00_setup.ipynb", stub, 1000),
                                     ("judy", "00_setup-Copy1.ipynb", solved, 2000)]:
        path = folder / student / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        os.utime(path, (mtime, mtime))
    return folder


def files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_shards_merged_equal_a_serial_run_byte_for_byte(repo, tmp_path, capsys):
    subs = write_class(repo, tmp_path / "class")
    serial, merged = tmp_path / "serial", tmp_path / "merged"
    script = repo / "course_tools" / "grading" / "examples" / "slurm_array.sh"
    shards = [subprocess.Popen(["bash", str(script), str(subs), str(tmp_path), *FLAGS], cwd=tmp_path,
                               env={**os.environ, "SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_TASK_MIN": "1",
                                    "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_SUBMIT_DIR": str(repo),
                                    "SLURM_CPUS_PER_TASK": "1", "PYTHON": sys.executable},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for i in (1, 2)]
    assert main(["grade", str(subs), "--out", str(serial), "--jobs", "1", *FLAGS]) == 0  # while the shards run
    logs = [shard.communicate(timeout=600)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], logs
    assert "shard 1/2: 2 of 3 submissions" in logs[0] and "shard 2/2: 1 of 3 submissions" in logs[1]
    assert main(["merge", str(tmp_path / "shard-1-of-2"), str(tmp_path / "shard-2-of-2"), "--out", str(merged)]) == 0
    capsys.readouterr()

    want, got = files(serial), files(merged)
    assert sorted(got) == sorted(want) and "feedback/=1+2.html" in want
    assert [name for name in want if got[name] != want[name]] == []

    with open(serial / "canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[1] == ["Points Possible", "", "", "", "", "1"]  # the source's, though judy uploaded twice
    assert canvas[2:] == [["'=1+2", "", "", "'=1+2", "", "0"], ["alice", "", "", "alice", "", "1"],
                          ["judy", "", "", "judy", "", "0"]]
    judy = (serial / "feedback" / "judy.md").read_text()
    assert "extra upload" in judy and "not graded: judy/00_setup-Copy1.ipynb" in judy
