"""Shared helpers for the benchmark scripts: paths, seed data, isolated phases, tables and JSON.

Every benchmark writes `benchmarks/results/<name>.json` shaped as
    {"benchmark": name, "date": ..., "machine": {...}, "metrics": [metric(...), ...], "details": {...}}
where each metric is {"name", "value", "unit", "target", "met", "how"}; `run_all.py` reads the
metrics of every file to build its summary, so a new benchmark only has to follow that shape.

Memory of a phase is measured by running the phase in a fresh spawned process (`isolated`) and
reading that process's peak RSS, so phases never inherit each other's peaks.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"  # scratch, git-ignored
RESULTS = ROOT / "benchmarks" / "results"  # committed JSON
SEED = 42


def seed_data() -> Path:
    """The seed preset's CSVs in benchmarks/out/seed/, generated on first use."""
    from recsys_cli.data.synthetic import PRESETS, generate

    target = OUT / "seed"
    if not ((target / "events.csv").exists() and (target / "catalog.csv").exists()):
        generate(target, **PRESETS["seed"], seed=SEED)
    return target


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (or of its waited-for children) in MB."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    kb = usage.ru_maxrss / (1024 if sys.platform == "darwin" else 1)  # bytes on macOS, KB on Linux
    return round(kb / 1024, 1)


def _run_measured(func: Callable[..., Any], args: tuple, kwargs: dict) -> dict[str, Any]:
    started = time.perf_counter()
    result = func(*args, **kwargs)
    seconds = time.perf_counter() - started
    return {
        "result": result,
        "seconds": round(seconds, 4),
        "peak_rss_mb": peak_rss_mb(),
        "children_peak_rss_mb": peak_rss_mb(children=True),
    }


def isolated(func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run `func(*args, **kwargs)` in a fresh spawned process.

    Returns {"result", "seconds" (of the call alone, imports excluded), "peak_rss_mb" (whole
    process), "children_peak_rss_mb" (subprocesses it waited for)}. `func` must be importable
    (a module-level function).
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_run_measured, func, args, kwargs).result()


def repeat(times: int, run: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
    """Call `run` `times` times (each call is expected to be an `isolated` phase)."""
    return [run() for _ in range(times)]


def best(runs: Sequence[dict[str, Any]], key: str = "seconds") -> float:
    return min(r[key] for r in runs)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(round(q / 100 * len(ordered) + 0.5))))
    return ordered[rank - 1]


def timed_passes(call, items: Sequence, passes: int, warmup: int = 50) -> list[list[float]]:
    """Milliseconds of `call(item)` for each item, per pass over all `items`, after a warm-up over
    the first `warmup`: the scripts' one way of timing single calls."""
    for item in items[:warmup]:
        call(item)
    timed = []
    for _ in range(passes):
        out = []
        for item in items:
            started = time.perf_counter_ns()
            call(item)
            out.append((time.perf_counter_ns() - started) / 1e6)
        timed.append(out)
    return timed


def metric(
    name: str, value: float | None, unit: str, target: float | None = None, how: str = "", *, at_least: bool = False
) -> dict[str, Any]:
    """One measured number; `met` is value < target, or value >= target with `at_least` (for
    throughputs); None when there is no target or no value."""
    met = None if target is None or value is None else bool(value >= target if at_least else value < target)
    result = {"name": name, "value": value, "unit": unit, "target": target, "met": met, "how": how}
    if at_least:
        result["direction"] = "at_least"
    return result


def machine() -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write RESULTS/<name>.json (with date and machine info added) and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, **machine_stamp(), **data}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def machine_stamp() -> dict[str, Any]:
    info = machine()
    return {"date": info["date"], "machine": info}


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def metric_rows(metrics: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    rows = []
    for m in metrics:
        sign = ">=" if m.get("direction") == "at_least" else "<"
        target = "-" if m.get("target") is None else f"{sign} {fmt_value(m['target'])}"
        status = {True: "met", False: "MISSED", None: ""}[m.get("met")]
        rows.append(
            {
                "metric": m["name"],
                "value": fmt_value(m.get("value")),
                "unit": m.get("unit", ""),
                "target": target,
                "status": status,
                "how": m.get("how", ""),
            }
        )
    return rows


def print_table(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """Print rows (dicts sharing keys) as a rich table, or plain text when rich is missing."""
    if not rows:
        print(f"{title}: (no rows)")
        return
    columns = list(rows[0])
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = {c: max(len(c), *(len(fmt_value(r.get(c))) for r in rows)) for c in columns}
        print(title)
        print("  ".join(c.ljust(widths[c]) for c in columns))
        for row in rows:
            print("  ".join(fmt_value(row.get(c)).ljust(widths[c]) for c in columns))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in ("value", "target") else "left")
    for row in rows:
        cells = [fmt_value(row.get(c)) for c in columns]
        style = "red" if row.get("status") == "MISSED" else None
        table.add_row(*cells, style=style)
    Console(width=200).print(table)


def update_doc(path: Path, marker: str, table: str, script: str) -> None:
    """Replace the text between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in `path` with
    `table` (markdown), stamped with the script and date: figures in docs come from the scripts."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start not in text or end not in text:
        print(f"{path} has no {marker} markers; not updated")
        return
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    stamp = f"<!-- generated by benchmarks/{script} on {machine()['date']}; do not edit by hand -->"
    path.write_text(f"{head}{start}\n{stamp}\n{table}\n{end}{tail}", encoding="utf-8")
