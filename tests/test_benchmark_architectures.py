"""benchmarks/architectures.py: a --quick smoke test (every layer, params match formulas, spread, 1 and 2 threads),
one input per length, and the numbers the README and notebook 09 quote from the committed results files."""

import csv
import importlib.util
import re
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def load_benchmark():
    spec = importlib.util.spec_from_file_location("architectures", REPO / "benchmarks" / "architectures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["architectures"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_model_with_formula_param_counts(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    bench = load_benchmark()
    bench.main(["--quick", "--out", str(tmp_path)])
    names = [s.name for s in bench.specs()]
    assert len(names) == 14 and len(set(names)) == 14
    with (tmp_path / "architectures.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["model"] for r in rows}) == sorted(names)
    assert {int(r["T"]) for r in rows} == {8, 20}
    for r in rows:
        assert r["params"] == r["params_formula"], f"{r['model']}: {r['params']} != {r['params_formula']}"
        assert float(r["fwd_bwd_ms"]) > 0 and float(r["forward_ms"]) > 0
        if not r["reference"]:
            assert float(r["ratio_fwd_bwd"]) == 1.0
    table = (tmp_path / "architectures.md").read_text()
    for name in names:
        assert f"| {name} | 8 |" in table and f"| {name} | 20 |" in table
    with (tmp_path / "scans.csv").open() as f:  # the recurrence alone: every method at every length
        scans = list(csv.DictReader(f))
    assert sorted((r["method"], int(r["threads"]), int(r["T"])) for r in scans) == sorted(
        (m, n, T) for m in ("loop", "log", "chunked") for n in (1, 2) for T in (8, 20))
    for r in scans:  # median within its spread
        for key in ("forward", "fwd_bwd"):
            assert 0 < float(r[f"{key}_min_ms"]) <= float(r[f"{key}_ms"]) <= float(r[f"{key}_max_ms"])
        if r["method"] == "loop":
            assert float(r["speedup_fwd_bwd"]) == 1.0 and float(r["speedup_forward"]) == 1.0
            assert float(r["speedup_fwd_bwd_min"]) == 1.0 and float(r["speedup_forward_min"]) == 1.0
        assert float(r["load_avg"]) >= 0
    assert "## The recurrence alone" in table and "| chunked | 2 | 20 |" in table and "| chunked | 1 | 20 |" in table


def test_scans_only_with_out_rewrites_only_the_recurrence_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    bench = load_benchmark()
    (tmp_path / "architectures.md").write_text("# Layers\n\n| a layer table |\n\n## The recurrence alone\n\nold\n")
    bench.main(["--scans-only", "--lengths", "6", "--reps", "1", "--batch", "2", "--hidden", "4",
                "--out", str(tmp_path)])
    assert re.search(r"took \d+ s", capsys.readouterr().out)
    table = (tmp_path / "architectures.md").read_text()
    assert table.startswith("# Layers\n\n| a layer table |\n") and "old" not in table
    assert "| chunked | 1 | 6 |" in table and "| chunked | 2 | 6 |" in table and "Rerun alone" in table
    assert len(read_rows(tmp_path / "scans.csv")) == 6


def test_rewrite_from_csv_adds_min_speedups_and_the_recorded_load_without_timing(tmp_path):
    bench = load_benchmark()
    old_fields = [f for f in bench.SCAN_FIELDS if f not in ("speedup_forward_min", "speedup_fwd_bwd_min", "load_avg")]
    rows = [  # a loop whose median was disturbed: min 10 ms, median 40 ms; the chunked scan steady at 20 ms
        {"method": "loop", "forward_ms": 40.0, "forward_min_ms": 10.0, "forward_max_ms": 80.0, "speedup_forward": 1.0},
        {"method": "chunked", "forward_ms": 20.0, "forward_min_ms": 20.0, "forward_max_ms": 21.0,
         "speedup_forward": 2.0},
    ]
    for r in rows:
        r.update({"T": 64, "batch": 2, "hidden": 4, "threads": 1, "fwd_bwd_ms": 30.0, "fwd_bwd_min_ms": 30.0,
                  "fwd_bwd_max_ms": 31.0, "speedup_fwd_bwd": 1.0, "device": "cpu", "reps": 5, "date": "2026-12-06"})
    bench._write_csv(tmp_path / "scans.csv", old_fields, rows)
    (tmp_path / "architectures.md").write_text("# Layers\n\nrun with load average 1.7 at the start.\n\n"
                                               "## The recurrence alone\n\nold\n")
    bench.main(["--rewrite-from-csv", "--out", str(tmp_path)])
    got = {r["method"]: r for r in read_rows(tmp_path / "scans.csv")}
    assert got["chunked"]["speedup_forward_min"] == "0.5" and got["chunked"]["speedup_forward"] == "2"
    assert got["loop"]["load_avg"] == got["chunked"]["load_avg"] == "1.7"
    table = (tmp_path / "architectures.md").read_text()
    assert "| chunked | 1 | 64 | 20 (20-21) | 30 (30-31) | 0.5x (2x) | 1x (1x) |" in table
    assert "load average 1.7 when the run started" in table and "old" not in table


def test_every_layer_reads_the_same_input_drawn_before_any_init():
    bench = load_benchmark()
    torch.manual_seed(123)  # the global state must not matter
    x1 = bench.make_input(16, 2, 8, torch.device("cpu"))
    torch.randn(5)
    x2 = bench.make_input(16, 2, 8, torch.device("cpu"))
    assert torch.equal(x1, x2)
    specs = bench.specs()
    _, x_a = bench.build(specs[0], 8, torch.device("cpu"), 16, 2)
    _, x_b = bench.build(specs[-1], 8, torch.device("cpu"), 16, 2)
    assert torch.equal(x_a, x1) and torch.equal(x_b, x1)


def test_param_formulas_at_the_benchmark_size():
    bench = load_benchmark()
    for s in bench.specs():
        assert sum(p.numel() for p in s.build(128).parameters()) == s.count(128), s.name


# ----------------------------------------------------------------------------- numbers quoted from the results

RESULTS = REPO / "benchmarks" / "results"
NOTEBOOK = REPO / "notebooks" / "py" / "09_modern_rnns.py"
SCAN_4096 = {"method": "chunked", "T": "4096"}
LSTM_4096 = {"model": "LSTM (course)", "T": "4096"}
# (file, a regex whose one group is a number quoted from a results file, that file, the row, the column)
QUOTES = [
    ("README.md", r"forward\+backward of the chunked scan is ([\d.]+)x as fast as the loop's on one thread",
     "scans.csv", {**SCAN_4096, "threads": "1"}, "speedup_fwd_bwd_min"),
    ("README.md", r"as fast as the loop's on one thread and ([\d.]+)x on two", "scans.csv",
     {**SCAN_4096, "threads": "2"}, "speedup_fwd_bwd_min"),
    ("README.md", r"its forward pass alone ([\d.]+)x on one thread", "scans.csv", {**SCAN_4096, "threads": "1"},
     "speedup_forward_min"),
    ("README.md", r"forward pass alone [\d.]+x on one thread and ([\d.]+)x on two", "scans.csv",
     {**SCAN_4096, "threads": "2"}, "speedup_forward_min"),
    ("README.md", r"the ratio of medians there, ([\d.]+)x, is noise", "scans.csv", {**SCAN_4096, "threads": "1"},
     "speedup_forward"),
    ("README.md", r"[Tt]he course's LSTM takes ([\d.]+) times `nn.LSTM`'s forward\+backward time", "architectures.csv",
     LSTM_4096, "ratio_fwd_bwd"),
    ("notebooks/py/09_modern_rnns.py", r"the chunked scan's forward\+backward is ([\d.]+)x as fast as the loop's on "
     r"one thread", "scans.csv", {**SCAN_4096, "threads": "1"}, "speedup_fwd_bwd_min"),
    ("notebooks/py/09_modern_rnns.py", r"as fast as the loop's on one thread and ([\d.]+)x on two threads", "scans.csv",
     {**SCAN_4096, "threads": "2"}, "speedup_fwd_bwd_min"),
    ("notebooks/py/09_modern_rnns.py", r"load average ([\d.]+) when the run started", "scans.csv",
     {**SCAN_4096, "threads": "1"}, "load_avg"),
]


def read_rows(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def quote_mismatches(texts: dict[str, str], tables: dict[str, list[dict]]) -> list[str]:
    """Every quote of QUOTES that is missing, ambiguous, or differs from its results file beyond its rounding."""
    problems = []
    for file, pattern, table, where, column in QUOTES:
        found = re.findall(pattern, " ".join(texts[file].replace("#", " ").split()))  # joins wrapped lines
        if len(found) != 1:
            problems.append(f"{file}: expected one quote matching {pattern!r}, found {len(found)}")
            continue
        rows = [r for r in tables[table] if all(r[k] == v for k, v in where.items())]
        if len(rows) != 1:
            problems.append(f"{table}: expected one row {where}, found {len(rows)}")
            continue
        quoted, decimals = float(found[0]), len(found[0].partition(".")[2])
        actual = float(rows[0][column])
        if abs(actual - quoted) > 0.5 * 10**-decimals + 1e-9:
            problems.append(f"{file} quotes {found[0]} for {table} {where} {column}, but the file says {actual}")
    return problems


def committed_texts_and_tables() -> tuple[dict[str, str], dict[str, list[dict]]]:
    texts = {file: (REPO / file).read_text() for file in {q[0] for q in QUOTES}}
    tables = {name: read_rows(RESULTS / name) for name in {q[2] for q in QUOTES}}
    return texts, tables


def test_numbers_quoted_in_the_readme_and_notebook_09_match_the_committed_results():
    texts, tables = committed_texts_and_tables()
    assert quote_mismatches(texts, tables) == []


def test_a_changed_results_file_fails_until_the_text_is_updated(tmp_path):
    texts, tables = committed_texts_and_tables()
    changed = [dict(r) for r in tables["scans.csv"]]
    for r in changed:  # a rerun that moved the chunked scan's speed-up on one thread
        if r["method"] == "chunked" and r["T"] == "4096" and r["threads"] == "1":
            r["speedup_fwd_bwd_min"] = str(float(r["speedup_fwd_bwd_min"]) + 0.4)
    problems = quote_mismatches(texts, {**tables, "scans.csv": changed})
    assert len(problems) == 2 and all("speedup_fwd_bwd_min" in p for p in problems)  # the README's and 09's
    edited = dict(texts)  # a reworded sentence loses its quote: that fails too
    edited["README.md"] = " ".join(texts["README.md"].split()).replace("as fast as the loop's on one thread",
                                                                      "faster than the loop")
    assert any("expected one quote" in p for p in quote_mismatches(edited, tables))
