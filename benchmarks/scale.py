"""Benchmark: every phase at 1x (the seed preset) and at 10x, with growth factors (`make bench-scale`).

Phases, each in a fresh subprocess so its peak RSS (ru_maxrss, read with wait4) is its own:
  generate   `recsys generate` (10x: customers=837,620 products=283,690 events=6,534,190 seed 42
             into benchmarks/out/scale10/; 1x: --preset seed into a scratch folder, timed for the
             growth factor; the 1x phases then read benchmarks/out/seed/ via common.seed_data())
  ingest     ingest(force=True) into a fresh artifacts folder
  train      training.train with the package defaults (reuses the snapshot)    10x: < 120 s, < 6 GB
  load       RecommendationService.load
  recommend  load, then single service.recommend(customer, 10) per group:      10x: p50 < 2 ms
             warm (>= 2 distinct products), few (exactly 1), unknown (not in the data), --per-route
             customers each; the route each group took is recorded (with router.warm_min_products=1
             "few" customers are collaborative too); a group whose p50 misses at 10x is profiled
  batch      load, then service.recommend_many for --batch customers (1x: every customer)
  server     only if benchmarks/bench_load.py exposes a callable load function; otherwise skipped

A phase running longer than --timeout seconds or above --memory-cap-mb resident is killed and
recorded as failed with its reason; later phases still run (those that need its output fail
with that reason). Writes benchmarks/results/scale.json and draws benchmarks/scale.png.

Usage: python benchmarks/scale.py [--timeout 600] [--memory-cap-mb 16000] [--per-route 300] [--batch 100000]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, ROOT, SEED, metric, metric_rows, percentile, print_table, seed_data, timed_passes, write_results  # noqa: E402

NAME = "scale"
HERE = ROOT / "benchmarks"
PLOT = HERE / "scale.png"
SIZES = {
    "1x": {"customers": 83762, "products": 28369, "events": 653419},
    "10x": {"customers": 837620, "products": 283690, "events": 6534190},
}
PHASES = ("generate", "ingest", "train", "load", "recommend", "batch")
# Customers by history, whatever route the settings give them (the route taken is recorded).
GROUPS = {"warm": ">= 2 products", "few": "1 product", "unknown": "not in the data"}
TARGETS = {"train_seconds": 120.0, "peak_mb": 6144.0, "recommend_p50_ms": 2.0}


# --- phase bodies (run in the worker process) -------------------------------------------------


def _settings():
    """The package defaults: no config file, no environment."""
    from recsys_cli.config import DEFAULTS, Settings

    return Settings(copy.deepcopy(DEFAULTS), {})


def ingest_phase(data_dir: str, artifacts_dir: str) -> dict:
    from recsys_cli.data.ingest import ingest

    shutil.rmtree(artifacts_dir, ignore_errors=True)
    started = time.perf_counter()
    snapshot = ingest(Path(data_dir), Path(artifacts_dir), force=True)
    seconds = time.perf_counter() - started
    summary = snapshot.summary
    return {"seconds": round(seconds, 3), "summary": {k: summary.get(k) for k in ("events", "customers", "products", "pairs", "rejected")}}


def train_phase(data_dir: str, artifacts_dir: str) -> dict:
    from recsys_cli.training import train

    started = time.perf_counter()
    outcome = train(Path(data_dir), Path(artifacts_dir), _settings())
    wall = time.perf_counter() - started
    return {
        "seconds": outcome.seconds.get("total", round(wall, 3)),
        "wall_seconds": round(wall, 3),
        "stages": outcome.seconds,
        "version": outcome.version,
    }


def _load(artifacts_dir: str):
    from recsys_cli.service import RecommendationService

    started = time.perf_counter()
    service = RecommendationService.load(Path(artifacts_dir))
    return service, round(time.perf_counter() - started, 3)


def load_phase(artifacts_dir: str) -> dict:
    service, seconds = _load(artifacts_dir)
    return {"seconds": seconds, "collaborative_model": service.manifest.get("collaborative_model"), "counts": service.counts()}


def _pick(service, per_route: int) -> dict[str, list[str]]:
    """`per_route` customers per group: warm (>= 2 distinct products), few (exactly 1), unknown."""
    import numpy as np

    rng = np.random.default_rng(SEED)
    dataset = service.dataset
    users = np.arange(dataset.n_users)
    distinct = np.diff(dataset.history(users).weights.indptr)
    warm = distinct >= max(2, service.warm_min)
    few = distinct == 1
    external = dataset.users.external_ids
    picked = {}
    for label, mask in (("warm", warm), ("few", few)):
        rows = np.flatnonzero(mask)
        picked[label] = [str(external[r]) for r in rng.choice(rows, size=min(per_route, len(rows)), replace=False)]
    picked["unknown"] = [f"scale-unknown-{i:05d}" for i in range(per_route)]
    return picked


def _latency(call, args: list[str], passes: int) -> dict:
    """p50/p99/mean in ms of single calls; each pass times every arg once; the median pass is reported."""
    passes_stats = [
        (percentile(times, 50), percentile(times, 99), sum(times) / len(times), sum(times) / 1e3)
        for times in timed_passes(call, args, passes)
    ]
    passes_stats.sort()
    p50, p99, mean, seconds = passes_stats[len(passes_stats) // 2]
    return {
        "p50_ms": round(p50, 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(mean, 4),
        "calls": len(args),
        "pass_seconds": round(seconds, 3),
        "p50_ms_passes": sorted(round(s[0], 4) for s in passes_stats),
    }


def _profile(call, args: list[str], out_file: str) -> list[dict]:
    """cProfile `call` over `args`; write the full stats to `out_file`, return the top functions by cumulative time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for a in args:
        call(a)
    profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer).sort_stats("cumulative")
    stats.print_stats(40)
    Path(out_file).write_text(buffer.getvalue(), encoding="utf-8")
    calls = len(args)
    rows = []
    for (filename, line, function), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(filename).name}:{line}({function})",
                "calls_per_request": round(ncalls / calls, 2),
                "cum_ms_per_request": round(cumtime * 1e3 / calls, 3),
                "own_ms_per_request": round(tottime * 1e3 / calls, 3),
            }
        )
    rows.sort(key=lambda r: -r["cum_ms_per_request"])
    return rows[:25]


def recommend_phase(artifacts_dir: str, per_route: int, passes: int, profile_over_ms: float | None, profile_dir: str) -> dict:
    service, load_seconds = _load(artifacts_dir)
    picked = _pick(service, per_route)
    result: dict[str, Any] = {"load_seconds": load_seconds, "routes": {}, "profiles": {}}
    total = 0.0
    for label, customers in picked.items():
        if not customers:
            result["routes"][label] = {"error": "no customers in this group"}
            continue
        routed = Counter(service.recommend(c, 10)["source"] for c in customers)
        stats = _latency(lambda c: service.recommend(c, 10), customers, passes)
        result["routes"][label] = {**stats, "routed": dict(routed)}
        total += stats["pass_seconds"]
        if profile_over_ms is not None and stats["p50_ms"] >= profile_over_ms:
            out_file = str(Path(profile_dir) / f"prof_recommend_{label}.txt")
            top = _profile(lambda c: service.recommend(c, 10), customers[:30], out_file)
            result["profiles"][label] = {"file": out_file, "calls": min(30, len(customers)), "top": top}
    result["seconds"] = round(total, 3)
    return result


def batch_phase(artifacts_dir: str, count: int) -> dict:
    import numpy as np

    service, load_seconds = _load(artifacts_dir)
    external = service.dataset.users.external_ids
    rng = np.random.default_rng(SEED)
    rows = rng.choice(len(external), size=min(count, len(external)), replace=False)
    customers = [str(external[r]) for r in rows]
    started = time.perf_counter()
    produced = sum(1 for _ in service.recommend_many(customers, 10))
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "customers": produced, "per_second": round(produced / seconds, 1), "load_seconds": load_seconds}


WORKERS = {"ingest": ingest_phase, "train": train_phase, "load": load_phase, "recommend": recommend_phase, "batch": batch_phase}


# --- running phases in watched subprocesses ---------------------------------------------------


def _tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def watched(command: list[str], log: Path, timeout: float, memory_cap_mb: float) -> dict:
    """Run `command`; kill it past `timeout` s or `memory_cap_mb` resident. Returns status, wall seconds, peak MB (ru_maxrss)."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        reason = None
        sampled = 0.0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            sampled = max(sampled, _rss_mb(process.pid))
            elapsed = time.perf_counter() - started
            if reason is None and elapsed > timeout:
                reason = f"killed after {elapsed:.0f} s (limit {timeout:.0f} s)"
            elif reason is None and sampled > memory_cap_mb:
                reason = f"killed at {sampled:,.0f} MB resident (cap {memory_cap_mb:,.0f} MB)"
            if reason is not None:
                os.killpg(process.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.25)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    peak = round(usage.ru_maxrss / 1024, 1)  # KB on Linux
    if reason is None and process.returncode != 0:
        reason = f"exit code {process.returncode}: {_tail(log)}"
    return {
        "status": "failed" if reason else "ok",
        "reason": reason,
        "wall_seconds": round(wall, 3),
        "peak_mb": peak,
        "load_average_before": load_before,
        "log": str(log),
    }


def run_worker_phase(phase: str, args: list, log_dir: Path, timeout: float, memory_cap_mb: float) -> dict:
    result_file = log_dir / f"{phase}.result.json"
    result_file.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        phase,
        "--worker-args",
        json.dumps(args),
        "--worker-result",
        str(result_file),
    ]
    outcome = watched(command, log_dir / f"{phase}.log", timeout, memory_cap_mb)
    if outcome["status"] == "ok":
        outcome.update(json.loads(result_file.read_text(encoding="utf-8")))
    return outcome


def generate_phase(out_dir: Path, size: dict, log_dir: Path, timeout: float, memory_cap_mb: float) -> dict:
    recsys = Path(sys.executable).with_name("recsys")
    shutil.rmtree(out_dir, ignore_errors=True)
    command = [
        str(recsys),
        "generate",
        "--out",
        str(out_dir),
        "--seed",
        str(SEED),
        "--customers",
        str(size["customers"]),
        "--products",
        str(size["products"]),
        "--events",
        str(size["events"]),
    ]
    outcome = watched(command, log_dir / "generate.log", timeout, memory_cap_mb)
    outcome["seconds"] = outcome["wall_seconds"]  # includes process start-up and imports (~1 s)
    outcome["bytes"] = sum(p.stat().st_size for p in out_dir.glob("*.csv")) if out_dir.exists() else 0
    return outcome


def run_scale(scale: str, args: argparse.Namespace) -> dict[str, dict]:
    log_dir = OUT / "scale-logs" / scale
    log_dir.mkdir(parents=True, exist_ok=True)
    artifacts = str(OUT / f"scale-artifacts-{scale}")
    phases: dict[str, dict] = {}

    def say(phase: str) -> None:
        r = phases[phase]
        detail = f"{r.get('seconds', '-')} s, peak {r['peak_mb']:,.0f} MB" if r["status"] == "ok" else r["reason"]
        print(f"[{scale}] {phase}: {r['status']} ({detail}); load average before {r['load_average_before']}", flush=True)

    if scale == "10x":
        data_dir = OUT / "scale10"
        phases["generate"] = generate_phase(data_dir, SIZES[scale], log_dir, args.timeout, args.memory_cap_mb)
    else:  # time a fresh seed-preset generate for the growth factor; the phases read benchmarks/out/seed/
        scratch = OUT / "scale1-generate"
        phases["generate"] = generate_phase(scratch, SIZES[scale], log_dir, args.timeout, args.memory_cap_mb)
        shutil.rmtree(scratch, ignore_errors=True)
        data_dir = seed_data()
    say("generate")

    blocked: str | None = None if phases["generate"]["status"] == "ok" else f"generate failed: {phases['generate']['reason']}"
    plan = [
        ("ingest", [str(data_dir), artifacts]),
        ("train", [str(data_dir), artifacts]),
        ("load", [artifacts]),
        ("recommend", [artifacts, args.per_route, args.passes, TARGETS["recommend_p50_ms"] if scale == "10x" else None, str(log_dir)]),
        ("batch", [artifacts, args.batch]),
    ]
    for phase, phase_args in plan:
        if blocked:
            phases[phase] = {
                "status": "failed",
                "reason": f"not run: {blocked}",
                "peak_mb": None,
                "seconds": None,
                "load_average_before": None,
            }
        else:
            phases[phase] = run_worker_phase(phase, phase_args, log_dir, args.timeout, args.memory_cap_mb)
            if phases[phase]["status"] != "ok" and phase in ("ingest", "train"):
                blocked = f"{phase} failed"
        say(phase)
    phases["server"] = (
        server_phase(Path(data_dir), Path(artifacts), 60.0 if scale == "10x" else 30.0)
        if not blocked
        else {"status": "failed", "reason": f"not run: {blocked}"}
    )
    server = phases["server"]
    if server["status"] == "ok":
        d = server["details"]
        print(
            f"[{scale}] server: {d['requests']:,} requests in {d['seconds']:.0f} s, {d['requests_per_s']:.0f} req/s, "
            f"p99 {d['overall']['p99_ms']} ms, {d['server_errors']} 5xx, {d['failures']} failures, "
            f"all versions observed: {d['all_versions_observed']}, worker RSS growth {d['max_rss_growth_pct']}%",
            flush=True,
        )
    else:
        print(f"[{scale}] server: {server['status']} ({server['reason']})", flush=True)
    return phases


def server_phase(data: Path, artifacts: Path, seconds: float = 30.0) -> dict:
    """A server load on the scale's own artifacts (2 workers, 16 connections, one swap mid-run)."""
    sys.path.insert(0, str(HERE))
    import bench_load

    try:
        details = bench_load.run(seconds=seconds, connections=16, publishes=1, data=data, artifacts_dir=artifacts)
    except Exception as error:  # a failed load run is a result, not a crash of the whole benchmark
        return {"status": "failed", "reason": f"{type(error).__name__}: {error}"}
    return {"status": "ok", "reason": "2 workers x 8 threads, 16 connections, 1 swap", "details": details}


# --- results, table, plot ---------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(b / a, 2) if a and b is not None else None


def growth(results: dict[str, dict]) -> dict[str, dict]:
    one, ten = results["1x"], results["10x"]
    out = {}
    for phase in PHASES:
        a, b = one.get(phase, {}), ten.get(phase, {})
        ok = a.get("status") == "ok" and b.get("status") == "ok"
        out[phase] = {
            "seconds": _ratio(a.get("seconds"), b.get("seconds")) if ok else None,
            "peak_mb": _ratio(a.get("peak_mb"), b.get("peak_mb")) if ok else None,
        }
    return out


def phase_rows(results: dict[str, dict], factors: dict[str, dict]) -> list[dict]:
    rows = []
    for phase in PHASES:
        a, b = results["1x"][phase], results["10x"][phase]
        rows.append(
            {
                "phase": phase,
                "1x s": a.get("seconds") if a["status"] == "ok" else "failed",
                "10x s": b.get("seconds") if b["status"] == "ok" else "failed",
                "x s": factors[phase]["seconds"],
                "1x peak MB": a.get("peak_mb"),
                "10x peak MB": b.get("peak_mb"),
                "x MB": factors[phase]["peak_mb"],
                "10x note": (b.get("reason") or "")[:90],
            }
        )
    return rows


def scale_metrics(results: dict[str, dict]) -> list[dict]:
    ten = results["10x"]
    metrics = []

    def ok(scale: str, phase: str) -> dict | None:
        r = results[scale][phase]
        return r if r.get("status") == "ok" else None

    for scale in ("1x", "10x"):
        for phase in ("generate", "ingest", "train", "load", "batch"):
            r = ok(scale, phase)
            target = TARGETS["train_seconds"] if (scale, phase) == ("10x", "train") else None
            how = "fresh process; " + (
                "failed: " + results[scale][phase]["reason"]
                if r is None
                else {
                    "generate": "`recsys generate` wall incl. start-up",
                    "ingest": "ingest(force=True), fresh artifacts",
                    "train": "TrainOutcome.seconds['total'], defaults",
                    "load": "RecommendationService.load",
                    "batch": f"recommend_many, {results[scale][phase].get('customers', '?')} customers",
                }[phase]
            )
            metrics.append(metric(f"{scale} {phase} seconds", r["seconds"] if r else None, "s", target, how))
        for phase in ("generate", "ingest", "train", "load", "recommend", "batch"):
            r = results[scale][phase]
            target = TARGETS["peak_mb"] if scale == "10x" else None
            metrics.append(
                metric(
                    f"{scale} {phase} peak memory",
                    r.get("peak_mb"),
                    "MB",
                    target,
                    "ru_maxrss of the phase process" + ("" if r.get("status") == "ok" else f" (failed: {r.get('reason')})"),
                )
            )
        r = ok(scale, "batch")
        metrics.append(metric(f"{scale} batch throughput", r["per_second"] if r else None, "customers/s", None, "recommend_many, n=10"))
        r = ok(scale, "recommend")
        for label in GROUPS:
            stats = (r or {}).get("routes", {}).get(label, {})
            target = TARGETS["recommend_p50_ms"] if scale == "10x" else None
            how = f"median pass of {stats.get('calls', '?')} calls after warm-up, in-process after load; routed {stats.get('routed', '?')}"
            metrics.append(metric(f"{scale} recommend {label} ({GROUPS[label]}) p50", stats.get("p50_ms"), "ms", target, how))
            metrics.append(metric(f"{scale} recommend {label} ({GROUPS[label]}) p99", stats.get("p99_ms"), "ms", None, how))
    peaks = [r.get("peak_mb") for r in ten.values() if isinstance(r, dict) and r.get("peak_mb") is not None]
    metrics.append(
        metric(
            "10x max peak memory over phases", max(peaks) if peaks else None, "MB", TARGETS["peak_mb"], "max ru_maxrss over the 10x phases"
        )
    )
    return metrics


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(PHASES))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, key, label in ((axes[0], "seconds", "seconds (log)"), (axes[1], "peak_mb", "peak RSS, MB")):
        for offset, scale, colour in ((-0.2, "1x", "#7aa6c2"), (0.2, "10x", "#d9734e")):
            values = []
            for phase in PHASES:
                r = results[scale][phase]
                values.append(r.get(key) if r.get("status") == "ok" or key == "peak_mb" else None)
            heights = [v or 0 for v in values]
            bars = ax.bar(x + offset, heights, 0.4, label=scale, color=colour)
            for bar, phase in zip(bars, PHASES, strict=True):
                if results[scale][phase].get("status") != "ok":
                    bar.set_hatch("//")
                    ax.annotate(
                        "failed",
                        (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 1)),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                        color="red",
                    )
        ax.set_xticks(x, PHASES)
        ax.set_ylabel(label)
        ax.legend()
    axes[0].set_yscale("log")
    axes[0].axhline(TARGETS["train_seconds"], color="grey", linestyle=":", linewidth=1)
    axes[0].annotate("train target 120 s", (2, TARGETS["train_seconds"]), fontsize=8, color="grey", va="bottom")
    axes[1].axhline(TARGETS["peak_mb"], color="grey", linestyle=":", linewidth=1)
    axes[1].annotate("10x target 6 GB", (0, TARGETS["peak_mb"]), fontsize=8, color="grey", va="bottom")
    fig.suptitle("recsys at 1x (seed preset) and 10x: seconds and peak memory per phase (fresh process each)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds after which a phase is killed and recorded as failed")
    parser.add_argument("--memory-cap-mb", type=float, default=16000.0, help="resident MB above which a phase is killed")
    parser.add_argument("--per-route", type=int, default=300, help="customers per route for single-recommend latency")
    parser.add_argument("--passes", type=int, default=3, help="latency passes (the median pass is reported)")
    parser.add_argument("--batch", type=int, default=100_000, help="customers for recommend_many")
    parser.add_argument("--only", choices=("1x", "10x"), help="run one scale (growth factors need both)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-args", help=argparse.SUPPRESS)
    parser.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        result = WORKERS[args.worker](*json.loads(args.worker_args))
        Path(args.worker_result).write_text(json.dumps(result, default=str), encoding="utf-8")
        return

    load_start = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at start: {load_start} on {os.cpu_count()} cores", flush=True)
    scales = [args.only] if args.only else ["1x", "10x"]
    empty = {p: {"status": "failed", "reason": "not run (--only)", "peak_mb": None} for p in PHASES}
    results = {s: (run_scale(s, args) if s in scales else dict(empty)) for s in ("1x", "10x")}
    load_end = [round(x, 2) for x in os.getloadavg()]
    factors = growth(results)
    metrics = scale_metrics(results)

    print_table("recsys at scale: seconds and peak memory per phase (x = 10x / 1x)", phase_rows(results, factors))
    for scale in scales:
        routes = results[scale]["recommend"].get("routes", {})
        if routes:
            print_table(
                f"{scale} single recommend latency (ms)",
                [{"group": k, **{f: v.get(f) for f in ("p50_ms", "p99_ms", "mean_ms", "calls", "routed")}} for k, v in routes.items()],
            )
        for label, prof in results[scale]["recommend"].get("profiles", {}).items():
            print_table(
                f"{scale} {label}: where a recommend call's time goes (cProfile, {prof['calls']} calls; full: {prof['file']})",
                prof["top"][:15],
            )
    print_table("recsys at scale: measured vs target", metric_rows(metrics))
    print(f"load average at start {load_start}, at end {load_end} ({os.cpu_count()} cores)")

    plot(results, PLOT)
    details = {
        "sizes": SIZES,
        "data": {"1x": str(OUT / "seed"), "10x": str(OUT / "scale10")},
        "targets": TARGETS,
        "load_average": {"start": load_start, "end": load_end},
        "phases": results,
        "growth": factors,
        "plot": str(PLOT.relative_to(ROOT)),
    }
    path = write_results(NAME, {"metrics": metrics, "details": details})
    print(f"wrote {path} and {PLOT}")


if __name__ == "__main__":
    main()
