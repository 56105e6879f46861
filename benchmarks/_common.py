"""Helpers shared by the benchmarks: an interleaved timer, the machine's description, result tables.

Not a benchmark itself: ``make bench`` runs every ``benchmarks/*.py``, and running this file does nothing.
The benchmarks import it as ``from _common import ...`` (Python puts the script's folder on ``sys.path``).
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def interleaved_times(fns: dict[str, Callable[[], Any]], repeats: int = 5, warmup: int = 1,
                      sync: Callable[[], None] | None = None):
    """Seconds taken by each ``fn()``, the functions taking turns so that background load hits all alike.

    ``warmup`` untimed rounds first (one-off costs: lazy initialisation, caches, allocator); then ``repeats``
    timed rounds, each running every function once, the order reversed on every other round (A B C, C B A, ...)
    so that no function always runs first or last. ``sync`` (e.g. ``torch.cuda.synchronize``) is called around
    each timed call.

    Returns ``(wall, cpu, outputs)``: wall-clock seconds per call and this process's CPU seconds per call (all
    threads; less sensitive to other processes on a shared machine, though threads that spin while waiting
    count too), each a list per function, and the output of each function's first call (warm-up or timed),
    for the accuracy comparisons.
    """
    names = list(fns)
    outputs: dict[str, Any] = {}
    for _ in range(warmup):
        for k in names:
            outputs.setdefault(k, fns[k]())
    sync = sync or (lambda: None)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = fns[k]()
            sync()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            outputs.setdefault(k, out)
    return wall, cpu, outputs


def median(values) -> float:
    return statistics.median(values)


def machine() -> dict:
    """CPU model, logical cores, torch threads and load averages: what a reader needs to judge the timings."""
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
    }


def fmt(v, digits: int = 3) -> str:
    """A number for a table: ``-`` for None/NaN, scientific for very small or large values."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}" if abs(v) < 1 else f"{v:,.{max(digits - 1, 1)}f}".rstrip("0").rstrip(".")


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    # a "|" inside a cell (e.g. "max |a - b|") would end the cell: escape it
    lines += ["| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return both paths. A smoke run
    (``BENCH_QUICK=1``) writes ``<name>_quick.*`` instead (git-ignored), so it never replaces a full run's table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BENCH_QUICK") == "1":
        name = f"{name}_quick"
    js, md = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    js.write_text(json.dumps(_clean(payload), indent=2, default=_jsonable, allow_nan=False) + "\n")
    md.write_text(markdown if markdown.endswith("\n") else markdown + "\n")
    return js, md


def _clean(v):
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def log(msg: str = "") -> None:
    """Print at once (a benchmark runs for minutes: the progress should show as it happens)."""
    print(msg, flush=True)


def show(v) -> str:
    """A table cell: ``-`` for nothing, strings as they are, numbers with 4 significant digits."""
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.4g}"


def add_row(rows: list, row: str, metric: str, ours, peer: str, theirs=None, target: str = "", met=None,
            lower_is_better=True, note: str = "") -> None:
    """Append one line of a results table to ``rows`` and print it; ``ratio`` = ours / theirs when both are numbers."""
    ratio = None
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs:
        ratio = float(ours) / float(theirs)
    rows.append({"row": row, "metric": metric, "course_lib": ours, "peer": peer, "peer_value": theirs,
                 "ratio": ratio, "target": target, "met": None if met is None else bool(met),
                 "lower_is_better": lower_is_better, "note": note})
    r = f"  ratio {ratio:.3g}" if ratio is not None else ""
    m = "" if met is None else ("  [target met]" if met else "  [target MISSED]")
    log(f"  {metric:<48s} ours {show(ours):>10s}  {peer:<28s} {show(theirs):>10s}{r}{m}"
        + (f"  ({note})" if note else ""))


class Counted(torch.nn.Module):
    """The model, counting the images it is called on: an attack's or explainer's cost in forward passes (or
    queries) per image, a number the machine's load does not change."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.images = 0

    def forward(self, x):
        self.images += x.shape[0]
        return self.model(x)


def rows_table(rows: list[dict], targets: bool = True) -> str:
    """The markdown table of :func:`add_row`'s lines (without the Target/Met columns for ``targets=False``)."""
    keys = ["row", "metric", "course_lib", "peer", "peer_value", "ratio"] + (["target", "met"] if targets else [])
    header = ["Row", "Metric", "course_lib", "Peer", "Peer value", "Ratio"] + (["Target", "Met"] if targets else [])
    return markdown_table(header + ["Note"], [[r[k] for k in keys] + [r["note"]] for r in rows])


if __name__ == "__main__":
    pass  # a helper module: `make bench` runs every benchmarks/*.py, and this one has nothing to measure


def run_part(fn: Callable, part: str, args, info: dict, vers: dict, quick: bool, parts_dir: Path, suffix: str = "",
             extra: dict | None = None) -> dict:
    """Run one part of a benchmark, ``fn(args, raw) -> dict``, and save its result with what it was measured on
    (seconds, load averages before and after, machine, versions, ``raw`` timings, ``extra``) to
    ``parts_dir/part{part}{suffix}.json``, so that the tables can be rebuilt later without rerunning it."""
    raw: dict = {}
    start = time.perf_counter()
    load_start = [round(v, 2) for v in os.getloadavg()]
    out = fn(args, raw)
    out.update({"elapsed_s": time.perf_counter() - start, "raw_times": raw, "load_average_start": load_start,
                "load_average_end": [round(v, 2) for v in os.getloadavg()], "machine": info, "versions": vers,
                "quick": quick, "part": part, **(extra or {})})
    parts_dir.mkdir(parents=True, exist_ok=True)
    (parts_dir / f"part{part}{suffix}.json").write_text(json.dumps(out, indent=2, default=lambda v: str(v)) + "\n")
    log(f"  part {part}: {out['elapsed_s']:.0f} s")
    return out


def load_parts(names, parts_dir: Path, suffix: str = "") -> dict:
    """The saved results of the parts ``names`` that exist in ``parts_dir`` (see :func:`run_part`)."""
    found = {}
    for p in names:
        f = parts_dir / f"part{p}{suffix}.json"
        if f.exists():
            found[p] = json.loads(f.read_text())
    return found
