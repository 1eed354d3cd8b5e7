"""Measure the course's sequence layers against their torch.nn counterparts (notebook 09_modern_rnns).

    python benchmarks/architectures.py                           # CPU (or COURSE_DEVICE), default lengths
    python benchmarks/architectures.py --lengths 64 512 --reps 3 --threads 2 --out /tmp/arch
    COURSE_DEVICE=cuda python benchmarks/architectures.py        # the same on a GPU
    python benchmarks/architectures.py --quick --out /tmp/arch   # tiny sizes, a smoke test
    python benchmarks/architectures.py --scans-only --reps 9     # the recurrence alone, printed (and timed)
    python benchmarks/architectures.py --rewrite-from-csv        # the recurrence table again, from scans.csv

For every layer (vanilla RNN, LSTM, GRU: the course's and torch.nn's; minGRU and minLSTM run
by the sequential loop, the log-space scan and the chunked scan; a transformer layer: the
course's pre-LayerNorm block and ``nn.TransformerEncoderLayer``) and every sequence length T:

- parameters: counted on the module, and from the formula (both are reported; they must agree);
- forward time (``torch.no_grad``) and forward+backward time (``out.sum().backward()``) per batch:
  one warm-up call, then ``--reps`` repetitions interleaved across layers; the median and the
  spread (min-max over the repetitions) are reported. Every layer at a given T reads the same
  input, drawn once (seeded) before any layer is built;
- the ratio of that median to the torch.nn counterpart's (RNN -> nn.RNN, LSTM and minLSTM ->
  nn.LSTM, GRU and minGRU -> nn.GRU, transformer block -> nn.TransformerEncoderLayer);
- peak memory of one forward+backward, warm (after one untimed forward+backward) and cold (the
  first call, which adds one-off costs: kernels' and autograd's first allocations, the
  allocator's arenas). On CUDA: ``torch.cuda.max_memory_allocated`` above what was allocated
  before. On the CPU: a fresh subprocess per layer and length builds the layer and the input,
  reads its resident set size (``/proc/self/status``), runs one forward+backward, and reports the
  peak resident set (``VmHWM``, reset just before) minus that: the growth of the resident set,
  which includes allocator slack (Linux only); then the same again for the warm figure.
  ``--memory off`` skips it.

A second table times the recurrence ``h_t = a_t * h_{t-1} + b_t`` alone, the part of minGRU and
minLSTM that the three methods compute differently (``course_utils.linear_recurrence``): ``a`` (in (0.5, 1)),
``b`` and a dense upstream gradient ``dL/dh`` given, ``(T, B, H)`` each; forward, and forward plus
``h.backward(dL/dh)``; interleaved repetitions, median and min-max, and the speed-ups over the
loop (forward, and forward+backward; from the fastest repetitions, the least disturbed by other
work, and from the medians), at each of ``--scan-threads`` (default 1 and 2): torch
splits an elementwise operation across threads only above a size threshold (32,768 elements),
which the chunked scan's ``(T/C, B, H)`` tensors pass at long T and the loop's ``(B, H)`` steps
never do, so the thread count changes the comparison.

Input: batch 32 (``--batch``), input size = hidden size = 128 (``--hidden``), float32. Results go
to ``OUT/architectures.csv``, ``OUT/scans.csv`` and ``OUT/architectures.md`` (default
``benchmarks/results``).
Attention needs a (B, heads, T, T) score tensor: transformer rows above ``--max-attention-len``
are skipped and marked as such.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from course_utils.core.device import get_device, set_cpu_threads  # noqa: E402
from course_utils.gru import GRU  # noqa: E402
from course_utils.linear_recurrence import scan_chunked, scan_log, scan_loop  # noqa: E402
from course_utils.lstm import LSTM  # noqa: E402
from course_utils.min_rnns import MinGRU, MinLSTM  # noqa: E402
from course_utils.rnn import RNN  # noqa: E402
from course_utils.self_attention import causal_mask  # noqa: E402
from course_utils.shared.timing import time_rounds  # noqa: E402
from course_utils.transformer import Block  # noqa: E402

FIELDS = ["model", "T", "batch", "hidden", "params", "params_formula", "formula", "forward_ms", "forward_min_ms",
          "forward_max_ms", "fwd_bwd_ms", "fwd_bwd_min_ms", "fwd_bwd_max_ms", "ratio_fwd_bwd", "reference",
          "peak_mib", "peak_mib_cold", "device", "threads", "reps", "machine", "date"]
SCAN_FIELDS = ["method", "T", "batch", "hidden", "threads", "forward_ms", "forward_min_ms", "forward_max_ms",
               "fwd_bwd_ms", "fwd_bwd_min_ms", "fwd_bwd_max_ms", "speedup_forward", "speedup_fwd_bwd",
               "speedup_forward_min", "speedup_fwd_bwd_min", "device", "reps", "date", "load_avg"]
SCAN_TEXT_FIELDS = ("method", "device", "date")
SCAN_INT_FIELDS = ("T", "batch", "hidden", "threads", "reps")
N_HEADS = 4


@dataclass
class Spec:
    """A layer to time: how to build it, call it, count its parameters, and what to compare it with."""

    name: str
    build: Callable[[int], nn.Module]  # hidden size -> module
    call: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # (module, x (T, B, H)) -> output tensor
    formula: str
    count: Callable[[int], int]  # hidden size (= input size) -> parameters
    reference: str  # name of the torch.nn counterpart ("" for itself)
    attention: bool = False


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _block_call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x_bf = x.transpose(0, 1)  # (B, T, D)
    return model(x_bf, causal_mask(x_bf.shape[1], x.device))


def _torch_block_call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    T = x.shape[0]
    mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # torch: True = may NOT attend
    return model(x.transpose(0, 1), src_mask=mask, is_causal=True)


def specs() -> list[Spec]:
    """Every layer of the benchmark, with its parameter formula (input size I = hidden size H)."""

    def plain(model, x):
        return _first(model(x))

    def method(name):
        return lambda model, x: model(x, method=name)[0]

    out = [
        Spec("RNN (torch.nn)", lambda h: nn.RNN(h, h), plain, "(I+H)H + 2H", lambda h: 2 * h * h + 2 * h, ""),
        Spec("RNN (course)", lambda h: RNN(h, h), plain, "(I+H)H + H", lambda h: 2 * h * h + h, "RNN (torch.nn)"),
        Spec("LSTM (torch.nn)", lambda h: nn.LSTM(h, h), plain, "4((I+H)H + 2H)", lambda h: 4 * (2 * h * h + 2 * h),
             ""),
        Spec("LSTM (course)", lambda h: LSTM(h, h), plain, "4((I+H)H + H)", lambda h: 4 * (2 * h * h + h),
             "LSTM (torch.nn)"),
        Spec("GRU (torch.nn)", lambda h: nn.GRU(h, h), plain, "3((I+H)H + 2H)", lambda h: 3 * (2 * h * h + 2 * h), ""),
        Spec("GRU (course)", lambda h: GRU(h, h), plain, "3((I+H)H + 2H)", lambda h: 3 * (2 * h * h + 2 * h),
             "GRU (torch.nn)"),
    ]
    for cls, ref, blocks in ((MinGRU, "GRU (torch.nn)", 2), (MinLSTM, "LSTM (torch.nn)", 3)):
        for m in ("loop", "log", "chunked"):
            out.append(Spec(f"{cls.__name__.replace('Min', 'min')} ({m})", lambda h, cls=cls: cls(h, h), method(m),
                            f"{blocks}(IH + H)", lambda h, b=blocks: b * (h * h + h), ref))
    ffn = "12D^2 + 13D"  # attention 4D^2 + 4D, MLP 8D^2 + 5D, two LayerNorms 4D
    out += [
        Spec("transformer layer (torch.nn)",
             lambda h: nn.TransformerEncoderLayer(h, N_HEADS, 4 * h, dropout=0.0, activation="gelu",
                                                  batch_first=True, norm_first=True),
             _torch_block_call, ffn, lambda h: 12 * h * h + 13 * h, "", attention=True),
        Spec("transformer layer (course)", lambda h: Block(h, N_HEADS), _block_call, ffn,
             lambda h: 12 * h * h + 13 * h, "transformer layer (torch.nn)", attention=True),
    ]
    return out


@dataclass
class Timed:
    """Something to time: its forward call, the backward pass from its output, and an untimed reset."""

    forward: Callable[[], torch.Tensor]
    backward: Callable[[torch.Tensor], None]
    reset: Callable[[], None]  # clears the gradients after each timed call


def interleaved_times(timed: dict[str, Timed], reps: int, device: torch.device) -> dict[str, dict[str, list[float]]]:
    """Wall-clock seconds of the forward (no_grad) and of forward+backward: ``{name: {"fwd": [...], "bwd": [...]}}``.

    One warm-up round, then ``reps`` rounds; each round runs every entry once in turn (interleaved,
    :func:`course_utils.shared.timing.time_rounds`), its gradients cleared after each call.
    """

    def forward_only(t: Timed) -> None:
        with torch.no_grad():
            t.forward()

    calls = {}
    for name, t in timed.items():
        calls[name, "fwd"] = partial(forward_only, t)
        calls[name, "bwd"] = partial(lambda t: t.backward(t.forward()), t)
    times = time_rounds(calls, device, reps=reps, between=lambda key: timed[key[0]].reset(), wall_clock=True)
    return {name: {key: times[name, key] for key in ("fwd", "bwd")} for name in timed}


def summary_ms(seconds: list[float], prefix: str) -> dict[str, float]:
    """``{prefix_ms: median, prefix_min_ms: min, prefix_max_ms: max}`` in milliseconds."""
    return {f"{prefix}_ms": 1e3 * statistics.median(seconds), f"{prefix}_min_ms": 1e3 * min(seconds),
            f"{prefix}_max_ms": 1e3 * max(seconds)}


def make_input(T: int, batch: int, hidden: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """The input every layer reads at length ``T``: ``(T, B, H)`` standard normal, from its own seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(T, batch, hidden, generator=gen).to(device)  # (T, B, H)


def build(spec: Spec, hidden: int, device: torch.device, T: int, batch: int, seed: int = 0):
    """The input (drawn first, the same for every layer) and the layer (its own seeded initialisation)."""
    x = make_input(T, batch, hidden, device, seed)  # (T, B, H)
    torch.manual_seed(seed)
    model = spec.build(hidden).to(device)
    return model, x


def _status_kib(key: str) -> int:
    """A ``/proc/self/status`` field in KiB: ``VmRSS`` (resident now) or ``VmHWM`` (its peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _rss_growth_mib(step: Callable[[], None]) -> float:
    """Growth of this process's resident set (MiB) during ``step()``: peak ``VmHWM`` minus ``VmRSS`` before.

    The peak is reset to the current size by writing 5 to ``/proc/self/clear_refs`` (Linux). Not
    ``getrusage().ru_maxrss``: after fork and exec it still reports the parent's peak.
    """
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    step()
    return max(_status_kib("VmHWM") - before, 0) / 1024


def peak_memory_child(name: str, T: int, batch: int, hidden: int, threads: int) -> tuple[float, float]:
    """Run in a fresh process: ``(cold, warm)`` resident-set growth (MiB) of one forward+backward of ``name``.

    Cold: the process's first call. Warm: a second call, after the gradients are cleared.
    """
    set_cpu_threads(threads)  # the course's thread policy: torch and BLAS alike
    spec = next(s for s in specs() if s.name == name)
    model, x = build(spec, hidden, torch.device("cpu"), T, batch)
    cold = _rss_growth_mib(lambda: spec.call(model, x).sum().backward())
    model.zero_grad(set_to_none=True)
    warm = _rss_growth_mib(lambda: spec.call(model, x).sum().backward())
    return cold, warm


def _cuda_peak_mib(spec: Spec, model: nn.Module, x: torch.Tensor) -> float:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    spec.call(model, x).sum().backward()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def peak_memory(spec: Spec, T: int, batch: int, hidden: int, device: torch.device, threads: int) -> tuple[float, float]:
    """``(cold, warm)`` peak memory (MiB) of one forward+backward: CUDA allocator statistics, or a CPU subprocess."""
    if device.type == "cuda":
        model, x = build(spec, hidden, device, T, batch)
        cold = _cuda_peak_mib(spec, model, x)
        model.zero_grad(set_to_none=True)
        return cold, _cuda_peak_mib(spec, model, x)
    args = json.dumps([spec.name, T, batch, hidden, threads])
    code = ("import json, benchmarks.architectures as a; "
            f"print(*a.peak_memory_child(*json.loads({args!r})))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "COURSE_THREADS": str(threads)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    cold, warm = result.stdout.strip().splitlines()[-1].split()
    return float(cold), float(warm)


def run(lengths: list[int], reps: int, batch: int, hidden: int, threads: int, memory: bool, max_attention_len: int,
        device: torch.device) -> list[dict]:
    """Time every layer at every length; returns one row per (layer, length)."""
    set_cpu_threads(threads)  # the course's thread policy: torch and BLAS alike
    all_specs = specs()
    rows = []
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    if device.type == "cuda":
        machine += f", {torch.cuda.get_device_name(device)}"
    for T in lengths:
        active = [s for s in all_specs if not (s.attention and T > max_attention_len)]
        x = make_input(T, batch, hidden, device)  # (T, B, H): one input for every layer, drawn before any init
        timed = {}
        for s in active:
            torch.manual_seed(0)
            model = s.build(hidden).to(device)
            timed[s.name] = Timed(lambda s=s, m=model, x=x: s.call(m, x), lambda out: out.sum().backward(),
                                  lambda m=model: m.zero_grad(set_to_none=True))
        times = interleaved_times(timed, reps, device)
        for s in all_specs:
            row = {"model": s.name, "T": T, "batch": batch, "hidden": hidden, "formula": s.formula,
                   "params_formula": s.count(hidden), "reference": s.reference, "device": device.type,
                   "threads": threads, "reps": reps, "machine": machine, "date": dt.date.today().isoformat()}
            row["params"] = sum(p.numel() for p in s.build(hidden).parameters())
            if s.name not in times:
                row.update({key: "skipped" for key in FIELDS if key.endswith("_ms") or key.startswith("peak")})
                row["ratio_fwd_bwd"] = ""
                rows.append(row)
                continue
            row.update(summary_ms(times[s.name]["fwd"], "forward"))
            row.update(summary_ms(times[s.name]["bwd"], "fwd_bwd"))
            if memory:
                row["peak_mib_cold"], row["peak_mib"] = peak_memory(s, T, batch, hidden, device, threads)
            else:
                row["peak_mib_cold"] = row["peak_mib"] = "not measured"
            rows.append(row)
        by_name = {r["model"]: r for r in rows if r["T"] == T}
        for r in by_name.values():
            ref = by_name.get(r["reference"]) if r["reference"] else r
            if ref is not None and isinstance(r["fwd_bwd_ms"], float) and isinstance(ref["fwd_bwd_ms"], float):
                r["ratio_fwd_bwd"] = r["fwd_bwd_ms"] / ref["fwd_bwd_ms"]
        print(f"T = {T}: done", file=sys.stderr)
    return rows


def _clear_grads(leaves: list[torch.Tensor]) -> None:
    for leaf in leaves:
        leaf.grad = None


def _scan_methods() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Each method as ``f(a, b) -> h``; the log scan is given ``log a`` and ``log b``, as in a model."""
    return {"loop": scan_loop, "log": lambda log_a, log_b: scan_log(log_a, log_b), "chunked": scan_chunked}


def time_scans(
    lengths: list[int], reps: int, batch: int, hidden: int, threads: int | list[int], device: torch.device
) -> list[dict]:
    """The recurrence alone: forward and forward+backward per thread count, length and method.

    Median and min-max of interleaved repetitions; speed-ups are the loop's median over the method's.
    """
    rows = []
    for n in [threads] if isinstance(threads, int) else threads:
        set_cpu_threads(n)  # the course's thread policy: torch and BLAS alike
        rows += _time_scans_at(lengths, reps, batch, hidden, n, device)
    return rows


def _time_scans_at(lengths: list[int], reps: int, batch: int, hidden: int, threads: int,
                   device: torch.device) -> list[dict]:
    rows = []
    for T in lengths:
        gen = torch.Generator().manual_seed(0)
        a = (torch.rand(T, batch, hidden, generator=gen) * 0.5 + 0.5).to(device)  # (T, B, H)
        b = (torch.rand(T, batch, hidden, generator=gen) + 0.1).to(device)  # positive, for the log scan
        grad_h = torch.randn(T, batch, hidden, generator=gen).to(device)  # a dense upstream gradient
        timed = {}
        for m, fn in _scan_methods().items():
            leaves = [t.clone().requires_grad_() for t in ((a.log(), b.log()) if m == "log" else (a, b))]
            timed[m] = Timed(lambda fn=fn, leaves=leaves: fn(*leaves), lambda h, g=grad_h: h.backward(g),
                             partial(_clear_grads, leaves))
        times = interleaved_times(timed, reps, device)
        loop = {key: statistics.median(v) for key, v in times["loop"].items()}
        for m, t in times.items():
            rows.append({"method": m, "T": T, "batch": batch, "hidden": hidden, "threads": threads,
                         **summary_ms(t["fwd"], "forward"), **summary_ms(t["bwd"], "fwd_bwd"),
                         "speedup_forward": loop["fwd"] / statistics.median(t["fwd"]),
                         "speedup_fwd_bwd": loop["bwd"] / statistics.median(t["bwd"]),
                         "device": device.type, "reps": reps, "date": dt.date.today().isoformat()})
        print(f"scans, {threads} thread(s), T = {T}: done", file=sys.stderr)
    return add_min_speedups(rows)


def add_min_speedups(scan_rows: list[dict]) -> list[dict]:
    """Set ``speedup_forward_min`` and ``speedup_fwd_bwd_min``: the loop's fastest repetition over the method's.

    The minimum is the repetition least disturbed by other work on the machine; on a loaded machine the median
    of a few repetitions can move by tens of percent, and a ratio of medians with it. Rows of one (threads, T)
    are compared with that group's loop row. Returns ``scan_rows``, changed in place.
    """
    loops = {(r["threads"], r["T"]): r for r in scan_rows if r["method"] == "loop"}
    for r in scan_rows:
        loop = loops[r["threads"], r["T"]]
        r["speedup_forward_min"] = loop["forward_min_ms"] / r["forward_min_ms"]
        r["speedup_fwd_bwd_min"] = loop["fwd_bwd_min_ms"] / r["fwd_bwd_min_ms"]
    return scan_rows


def read_scan_rows(path: Path) -> list[dict]:
    """The rows of a stored ``scans.csv``, with numbers as numbers (a file written before the min columns or
    the load column existed reads with the min speed-ups computed from its min columns, and an empty load)."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key, value in r.items():
            if key in SCAN_INT_FIELDS:
                r[key] = int(value)
            elif key not in SCAN_TEXT_FIELDS and value not in ("", None):
                r[key] = float(value)
        r.setdefault("load_avg", "")
    return add_min_speedups(rows)


LOAD_PATTERN = re.compile(r"load average ([\d.]+) at the start")


def rewrite_from_csv(out: Path) -> tuple[Path, Path]:
    """Rewrite ``OUT/scans.csv`` (min speed-ups, the load) and the recurrence table of ``OUT/architectures.md``
    from the stored ``OUT/scans.csv``, without timing anything. The load average is the one the run recorded in
    the Markdown file's first paragraph (``load average X at the start``)."""
    scan_rows = read_scan_rows(out / "scans.csv")
    found = LOAD_PATTERN.search((out / "architectures.md").read_text())
    for r in scan_rows:
        r["load_avg"] = r["load_avg"] if r["load_avg"] != "" else (float(found.group(1)) if found else "")
    return write_scans(scan_rows, out, "")


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return str(value)


def _write_csv(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)


def _spread(r: dict, key: str) -> str:
    """``median (min-max)`` of a timing column, or its text (``skipped``)."""
    if not isinstance(r[f"{key}_ms"], float):
        return str(r[f"{key}_ms"])
    return f"{_fmt(r[f'{key}_ms'])} ({_fmt(r[f'{key}_min_ms'])}-{_fmt(r[f'{key}_max_ms'])})"


SCANS_HEADING = "## The recurrence alone"


def scan_section(scan_rows: list[dict], batch: int, hidden: int, note: str = "") -> list[str]:
    """The Markdown lines of the recurrence-alone table, from its heading down."""
    lines = [
        "",
        SCANS_HEADING,
        "",
        "`h_t = a_t * h_{t-1} + b_t` (`course_utils.linear_recurrence`), the part of minGRU and minLSTM the three "
        f"methods compute differently: `a`, `b` and a dense upstream gradient given, each ({batch} x {hidden}) per "
        "step; forward, and forward plus `h.backward(dL/dh)`. The log scan is given `log a` and `log b`. "
        f"{note or 'Same machine and repetitions as above'}, at 1 and at 2 threads{_load_text(scan_rows)}. "
        "Speed-ups: the loop's time over the method's, forward and forward+backward, from the fastest repetition "
        "of each (min: the one least disturbed by other work on the machine) and, in brackets, from the medians. "
        "Where the two disagree, or a min-max range is wide, the machine was busy during that row: read neither "
        "ratio to better than the spread. torch splits an elementwise operation across threads "
        "only above 32,768 elements: the chunked scan's (T/C, B, H) tensors pass that at long T, the loop's (B, H) "
        "steps never do.",
        "",
        "| method | threads | T | forward ms | fwd+bwd ms | speed-up forward, min (median) | "
        "speed-up fwd+bwd, min (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in scan_rows:
        lines.append(f"| {r['method']} | {r['threads']} | {r['T']} | {_spread(r, 'forward')} | "
                     f"{_spread(r, 'fwd_bwd')} | {_fmt(r['speedup_forward_min'])}x ({_fmt(r['speedup_forward'])}x) | "
                     f"{_fmt(r['speedup_fwd_bwd_min'])}x ({_fmt(r['speedup_fwd_bwd'])}x) |")
    return lines


def _load_text(scan_rows: list[dict]) -> str:
    """``, load average X when the run started`` from the rows' ``load_avg`` (one value), or nothing."""
    loads = {r.get("load_avg", "") for r in scan_rows} - {""}
    return f", load average {_fmt(float(loads.pop()))} when the run started" if len(loads) == 1 else ""


def write_scans(scan_rows: list[dict], out: Path, note: str) -> tuple[Path, Path]:
    """Rerun of the recurrence table alone: write ``scans.csv`` and replace that table in ``architectures.md``."""
    out.mkdir(parents=True, exist_ok=True)
    scans_path, md_path = out / "scans.csv", out / "architectures.md"
    _write_csv(scans_path, SCAN_FIELDS, scan_rows)
    head = md_path.read_text().split("\n" + SCANS_HEADING)[0].rstrip("\n") if md_path.exists() else ""
    first = scan_rows[0]
    md_path.write_text(head + "\n" + "\n".join(scan_section(scan_rows, first["batch"], first["hidden"], note)) + "\n")
    return scans_path, md_path


def write(rows: list[dict], scan_rows: list[dict], out: Path, load: str = "") -> tuple[Path, Path, Path]:
    """Write ``architectures.csv``, ``scans.csv`` and the Markdown tables ``architectures.md`` to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, scans_path, md_path = out / "architectures.csv", out / "scans.csv", out / "architectures.md"
    _write_csv(csv_path, FIELDS, rows)
    _write_csv(scans_path, SCAN_FIELDS, scan_rows)
    first = rows[0]
    lines = [
        "# Sequence layers: parameters, time and memory",
        "",
        f"Written by `benchmarks/architectures.py`. Batch {first['batch']}, input size = hidden size = "
        f"{first['hidden']}, float32, device {first['device']} ({first['machine']}), {first['threads']} threads, "
        f"{first['reps']} interleaved repetitions after a warm-up, {first['date']}{load}. Times: median (min-max "
        "over the repetitions); every layer at a given T reads the same input. Ratio: the median forward+backward "
        "time over the torch.nn counterpart's (in brackets). Peak memory: CUDA allocator peak, or on the CPU the "
        "growth of a fresh process's resident set during one forward+backward, warm (the second call) and cold "
        "(the first call, which adds one-off allocations). A warm 0 on the CPU: the second call fitted in memory the "
        "process already held from the first.",
        "",
        "| model | T | params (formula) | forward ms | fwd+bwd ms | ratio | peak MiB warm (cold) |",
        "| --- | ---: | --- | ---: | ---: | --- | ---: |",
    ]
    for r in rows:
        params = f"{r['params']:,} ({r['formula']} = {r['params_formula']:,})"
        ratio = f"{_fmt(r['ratio_fwd_bwd'])} ({r['reference'] or 'itself'})" if r["ratio_fwd_bwd"] != "" else ""
        memory = _fmt(r["peak_mib"]) + (f" ({_fmt(r['peak_mib_cold'])})" if isinstance(r["peak_mib"], float) else "")
        lines.append(f"| {r['model']} | {r['T']} | {params} | {_spread(r, 'forward')} | {_spread(r, 'fwd_bwd')} | "
                     f"{ratio} | {memory} |")
    lines += scan_section(scan_rows, first["batch"], first["hidden"])
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, scans_path, md_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 100, 512, 4096])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scan-threads", type=int, nargs="+", default=[1, 2],
                        help="thread counts for the recurrence-alone table")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--memory", choices=("on", "off"), default="on")
    parser.add_argument("--max-attention-len", type=int, default=1024)
    parser.add_argument("--scans-only", action="store_true",
                        help="time the recurrence alone and print it; with --out, also write OUT/scans.csv and "
                             "replace that table in OUT/architectures.md")
    parser.add_argument("--rewrite-from-csv", action="store_true",
                        help="time nothing: recompute the min-based speed-ups of OUT/scans.csv (default "
                             "benchmarks/results) and rewrite it and the recurrence table of OUT/architectures.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repetition, no memory: a smoke test")
    parser.add_argument("--out", type=Path, default=None, help="default: benchmarks/results (not with --scans-only)")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths, args.reps, args.batch, args.hidden, args.memory = [8, 20], 1, 2, 8, "off"
    device = get_device()
    start, load = time.perf_counter(), os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    if args.rewrite_from_csv:
        for path in rewrite_from_csv(REPO / "benchmarks" / "results" if args.out is None else args.out):
            print("wrote", path)
        return
    if args.scans_only:
        scan_rows = time_scans(args.lengths, args.reps, args.batch, args.hidden, args.scan_threads, device)
        for r in scan_rows:
            r["load_avg"] = load
        for r in scan_rows:
            print(f"{r['method']:8s} {r['threads']} thread(s) T={r['T']:5d}  forward {r['forward_ms']:8.2f} ms  "
                  f"fwd+bwd {r['fwd_bwd_ms']:8.2f} ms ({r['fwd_bwd_min_ms']:.2f}-{r['fwd_bwd_max_ms']:.2f})  "
                  f"{r['speedup_forward_min']:.2f}x / {r['speedup_fwd_bwd_min']:.2f}x the loop (forward / fwd+bwd, "
                  f"fastest repetitions; medians {r['speedup_forward']:.2f}x / {r['speedup_fwd_bwd']:.2f}x)")
        took = time.perf_counter() - start
        print(f"took {took:.0f} s (load average at the start {load:.1f})")
        if args.out is not None:
            machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
            note = (f"Rerun alone ({machine}, device {device.type}, {args.reps} interleaved repetitions after a "
                    f"warm-up, {dt.date.today().isoformat()}, load average {load:.1f} at the start, {took:.0f} s)")
            for path in write_scans(scan_rows, args.out, note):
                print("wrote", path)
        return
    args.out = REPO / "benchmarks" / "results" if args.out is None else args.out
    rows = run(args.lengths, args.reps, args.batch, args.hidden, args.threads, args.memory == "on",
               args.max_attention_len, device)
    scan_rows = time_scans(args.lengths, args.reps, args.batch, args.hidden, args.scan_threads, device)
    for r in scan_rows:
        r["load_avg"] = load
    note = f", load average {load:.1f} at the start, {time.perf_counter() - start:.0f} s in all"
    for path in write(rows, scan_rows, args.out, note):
        print("wrote", path)


if __name__ == "__main__":
    main()
