"""Smoke test of benchmarks/architectures.py: --quick writes a table with every layer; params match formulas."""

import csv
import importlib.util
import sys
from pathlib import Path

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
    assert sorted((r["method"], int(r["T"])) for r in scans) == sorted(
        (m, T) for m in ("loop", "log", "chunked") for T in (8, 20))
    for r in scans:
        assert float(r["fwd_bwd_ms"]) > 0 and float(r["forward_ms"]) > 0
        if r["method"] == "loop":
            assert float(r["speedup_fwd_bwd"]) == 1.0
    assert "## The recurrence alone" in table and "| chunked | 20 |" in table


def test_param_formulas_at_the_benchmark_size():
    bench = load_benchmark()
    for s in bench.specs():
        assert sum(p.numel() for p in s.build(128).parameters()) == s.count(128), s.name
