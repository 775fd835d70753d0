"""HTTP load benchmark with wrk: requests/s and p50/p99 of every REST path of `recsys serve`.

For each scale (1x: the seed preset; 10x: ten times its customers, products and events, the size
`benchmarks/scale.py` defines, generated with seed 42 by `recsys generate`, which has no 10x
preset), prepares the data and a trained model (reused from benchmarks/out/ while loadable; the
first 10x run generates and trains, which takes minutes), starts `recsys serve` with --workers and
--threads in a subprocess on a private live-events folder, checks one request of each scenario
(status, items, filters honoured), runs each read scenario for --warmup seconds unmeasured (a cold
first pass pages in the model; steady state is what is measured), then runs wrk --repeat times per scenario (the median run is reported): --connections keep-alive
connections on --wrk-threads threads with --latency for --seconds, each request taking the next
prepared id (benchmarks/wrk/rotate.lua):

  health       GET /health                                 the server's own floor
  warm         GET /recommendations/<id>?n=10             ~2,000 customers with >= 5 distinct products
  filtered     the same with &brand=<B>&max_price=<P>      B the brand with most products, P the median price
  unknown      GET /recommendations/<id>?n=10             ids not in the data (popularity)
  similar      GET /products/<id>/similar?n=10            ~2,000 products with events
  events       POST /events                                batches of --batch view events (run last)

wrk runs on the same machine as the server and competes with it for the same cores: on a 2-core
machine the numbers are a lower bound for a dedicated server. Prints a table with the targets of
issue 16, writes benchmarks/results/http.json and the table into docs/performance.md and the
README's speed section. wrk must be on PATH (benchmarks/install_tools.sh,
which `make bench` runs, installs it).

The server runs without its access log unless --access-log is given (the line costs a fast request
about a sixth of its time; the floor app of issue 16 logs nothing either).

Usage: python benchmarks/bench_http.py [--scales 1,10] [--seconds 15] [--repeat 3] [--workers 2] [--threads 2]
                                       [--connections 16] [--wrk-threads 2] [--only warm,filtered] [--access-log]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import _loadable  # noqa: E402
from bench_server import free_port, stop_server  # noqa: E402
from common import OUT, ROOT, SEED, machine, metric, print_table, seed_data, update_doc, write_results  # noqa: E402
from scale import SIZES  # noqa: E402

NAME = "http"
LUA = ROOT / "benchmarks" / "wrk" / "rotate.lua"
RECSYS = Path(sys.executable).with_name("recsys")
POOL = 2000  # ids per rotating scenario
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SCENARIOS = ("health", "warm", "filtered", "unknown", "similar", "events")  # events last: it adds live events


@dataclass(frozen=True)
class Target:
    """Issue 16's 'done when' for one scenario at one scale: at least `rps`, and p99 at most `p99_ms`."""

    rps: float
    p99_ms: float | None = None

    def __str__(self) -> str:
        return f">= {self.rps:,.0f} req/s" + (f", p99 <= {self.p99_ms:g} ms" if self.p99_ms is not None else "")

    def met(self, rps: float, p99_ms: float) -> bool:
        return rps >= self.rps and (self.p99_ms is None or p99_ms <= self.p99_ms)


TARGETS: dict[tuple[str, str], Target] = {
    ("1x", "warm"): Target(4000, 20.0),
    ("1x", "filtered"): Target(2000),
    ("1x", "unknown"): Target(5000),
    ("10x", "filtered"): Target(1000),
}


# --- data, model, request pools -----------------------------------------------------------------------


def _run(command: list[str], log: Path) -> None:
    """Run a recsys CLI command, its output in `log`; exit with the log's tail if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        sys.exit(f"{' '.join(command[:2])} failed with exit code {code} (log: {log}):\n" + "\n".join(tail))


def data_for(scale: str) -> Path:
    """The scale's events.csv + catalog.csv: the seed preset, or the 10x size generated once."""
    if scale == "1x":
        return seed_data()
    target = OUT / f"http-{scale}-data"
    if not ((target / "events.csv").exists() and (target / "catalog.csv").exists()):
        size = SIZES[scale]
        print(f"[{scale}] generating {size['events']:,} events (once, into {target}) ...", flush=True)
        command = [str(RECSYS), "generate", "--out", str(target), "--seed", str(SEED), "--force"]
        for key in ("customers", "products", "events"):
            command += [f"--{key}", str(size[key])]
        _run(command, OUT / f"http-{scale}-generate.log")
    return target


def model_for(scale: str, data: Path) -> Path:
    """A trained artifacts folder for the scale, trained with the package defaults once and reused while loadable.

    At 1x a loadable model of the load benchmark (same data, same defaults) is copied instead of training.
    """
    artifacts = OUT / f"http-{scale}-artifacts"
    if _loadable(artifacts):
        return artifacts
    shutil.rmtree(artifacts, ignore_errors=True)
    donor = OUT / "load-base"
    if scale == "1x" and _loadable(donor):
        try:
            shutil.copytree(donor, artifacts, ignore=shutil.ignore_patterns(".train.lock", ".train-jobs"))
            if _loadable(artifacts):
                print(f"[{scale}] reusing the model trained in {donor}", flush=True)
                return artifacts
        except OSError:  # the load benchmark may be replacing it right now
            pass
        shutil.rmtree(artifacts, ignore_errors=True)
    print(f"[{scale}] training on {data} (once, into {artifacts}; minutes) ...", flush=True)
    started = time.perf_counter()
    _run([str(RECSYS), "train", "--data", str(data), "--artifacts", str(artifacts)], OUT / f"http-{scale}-train.log")
    print(f"[{scale}] trained in {time.perf_counter() - started:.0f} s", flush=True)
    return artifacts


def pools(data: Path) -> dict[str, Any]:
    """Ids and filter values the scenarios rotate over (seeded: the same on every run)."""
    events = pd.read_csv(data / "events.csv", dtype={"customer_id": str, "product_id": str}, usecols=["customer_id", "product_id"])
    catalog = pd.read_csv(data / "catalog.csv", dtype={"product_id": str, "brand": str}, usecols=["product_id", "brand", "price"])
    distinct = events.groupby("customer_id")["product_id"].nunique()
    warm = sorted(distinct.index[distinct >= 5])
    products = sorted(events["product_id"].unique())
    rng = random.Random(SEED)
    return {
        "warm": rng.sample(warm, min(POOL, len(warm))),
        "unknown": [f"http-unknown-{i:05d}" for i in range(POOL)],
        "products": rng.sample(products, min(POOL, len(products))),
        "brand": str(catalog["brand"].value_counts().index[0]),
        "max_price": round(float(catalog["price"].median()), 2),
        "catalog": catalog.set_index("product_id"),
    }


def request_files(folder: Path, pool: dict[str, Any], batch: int) -> dict[str, tuple[Path, Path | None]]:
    """Scenario -> (paths file, bodies file or None) for rotate.lua."""
    folder.mkdir(parents=True, exist_ok=True)
    filters = f"&brand={quote(pool['brand'])}&max_price={pool['max_price']}"
    paths = {
        "health": ["/health"],
        "warm": [f"/recommendations/{quote(c)}?n=10" for c in pool["warm"]],
        "filtered": [f"/recommendations/{quote(c)}?n=10{filters}" for c in pool["warm"]],
        "unknown": [f"/recommendations/{quote(c)}?n=10" for c in pool["unknown"]],
        "similar": [f"/products/{quote(p)}/similar?n=10" for p in pool["products"]],
        "events": ["/events"],
    }
    rng = random.Random(SEED)
    bodies = [
        json.dumps(
            [
                {"customer_id": f"http-live-{rng.randrange(10_000)}", "product_id": rng.choice(pool["products"]), "type": "view_product"}
                for _ in range(batch)
            ],
            separators=(",", ":"),
        )
        for _ in range(500)
    ]
    files: dict[str, tuple[Path, Path | None]] = {}
    for name, lines in paths.items():
        path = folder / f"{name}.paths"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files[name] = (path, None)
    body_file = folder / "events.bodies"
    body_file.write_text("\n".join(bodies) + "\n", encoding="utf-8")
    files["events"] = (files["events"][0], body_file)
    return files


# --- the server -----------------------------------------------------------------------------------------


def start_server(
    artifacts: Path, live: Path, port: int, workers: int, threads: int, log: Path, *, access_log: bool = False
) -> tuple[subprocess.Popen, float]:
    """`recsys serve` in its own process group; returns it and the seconds until /health answered 200."""
    command = [str(RECSYS), "serve", "--artifacts", str(artifacts), "--data", str(live), "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads), "--access-log" if access_log else "--no-access-log"]
    environ = {k: v for k, v in os.environ.items() if k not in ("RECSYS_ADMIN_TOKEN", "RECSYS_LIVE_STORE")}
    out = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=ROOT, start_new_session=True)
    deadline = started + 600  # a 10x model takes a while to load on a busy machine
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            sys.exit(f"recsys serve exited with code {process.returncode}; see {log}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    stop_server(process)
    sys.exit(f"recsys serve did not answer /health within 600 s; see {log}")


def check(port: int, files: dict[str, tuple[Path, Path | None]], pool: dict[str, Any]) -> dict[str, Any]:
    """One request of each scenario before the load: 2xx, items returned, filters honoured.

    A fast benchmark of wrong answers is worthless, so a failed check stops the run. Returns what
    the responses said (the source that served each recommendation scenario).
    """
    seen: dict[str, Any] = {}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for name, (paths, bodies) in files.items():
        path = paths.read_text(encoding="utf-8").splitlines()[0]
        if bodies is None:
            connection.request("GET", path)
        else:
            body = bodies.read_text(encoding="utf-8").splitlines()[0]
            connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
        if response.status // 100 != 2:
            sys.exit(f"check failed: {name} {path} answered {response.status}: {json.dumps(payload)[:300]}")
        if name in ("warm", "filtered", "unknown", "similar"):
            items = payload["items"]
            if not items:
                sys.exit(f"check failed: {name} {path} returned no items")
            seen[name] = {"items": len(items), "source": payload.get("source")}
        if name == "filtered":
            rows = pool["catalog"].loc[[item["product_id"] for item in payload["items"]]]
            wrong = rows[(rows["brand"] != pool["brand"]) | (rows["price"] > pool["max_price"])]
            if len(wrong):
                sys.exit(f"check failed: {path} returned products outside the filter: {wrong.index.tolist()[:5]}")
        if name == "events":
            seen[name] = payload
    return seen


# --- wrk ------------------------------------------------------------------------------------------------


def cpu_seconds(process: subprocess.Popen) -> float:
    """CPU time (user + system) used so far by the server process and its workers."""
    parent = psutil.Process(process.pid)
    total = 0.0
    for member in [parent, *parent.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def wrk(
    port: int,
    files: tuple[Path, Path | None],
    seconds: float,
    connections: int,
    threads: int,
    timeout: float,
    log: Path,
    server: subprocess.Popen,
) -> dict:
    """One wrk run; its WRK_JSON line (from rotate.lua's done()) as requests/s, latency in ms and errors.

    Also the cores wrk and the server each kept busy on average (CPU seconds / wall seconds), to
    show how the shared cores were split.
    """
    paths, bodies = files
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout:g}s", "--latency"]
    command += ["-s", str(LUA), f"http://127.0.0.1:{port}", "--", str(paths)] + ([str(bodies)] if bodies else [])
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before, started = cpu_seconds(server), time.perf_counter()
    outcome = subprocess.run(command, capture_output=True, text=True, timeout=seconds + timeout + 60)
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(server) - server_before
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (children_after.ru_utime - children_before.ru_utime) + (children_after.ru_stime - children_before.ru_stime)
    log.write_text(" ".join(command) + "\n" + outcome.stdout + outcome.stderr, encoding="utf-8")
    line = next((x for x in outcome.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if outcome.returncode != 0 or line is None:
        sys.exit(f"wrk failed (exit code {outcome.returncode}); output in {log}:\n{(outcome.stderr or outcome.stdout)[-800:]}")
    raw = json.loads(line.removeprefix("WRK_JSON "))
    seconds_run = raw["duration_us"] / 1e6
    errors = raw["errors"]
    return {
        "requests": raw["requests"],
        "seconds": round(seconds_run, 2),
        "requests_per_s": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["latency_us"]["p50"] / 1000, 2),
        "p90_ms": round(raw["latency_us"]["p90"] / 1000, 2),
        "p99_ms": round(raw["latency_us"]["p99"] / 1000, 2),
        "max_ms": round(raw["latency_us"]["max"] / 1000, 2),
        "errors": sum(errors.values()),
        "errors_by_kind": {("http_4xx_5xx" if k == "status" else k): v for k, v in errors.items()},
        "cores_busy": {"wrk": round(wrk_cpu / wall, 2), "server": round(server_cpu / wall, 2)},
        "log": str(log.relative_to(ROOT)),
    }


def wrk_version() -> str:
    outcome = subprocess.run(["wrk", "--version"], capture_output=True, text=True)  # exits 1 after printing it
    return ((outcome.stdout + outcome.stderr).splitlines() or ["wrk"])[0].strip()


# --- one scale, the report ------------------------------------------------------------------------------


def bench_scale(scale: str, args: argparse.Namespace) -> dict[str, Any]:
    data = data_for(scale)
    artifacts = model_for(scale, data)
    pool = pools(data)
    work = OUT / f"http-{scale}"
    files = request_files(work / "requests", pool, args.batch)
    live = work / "live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir(parents=True)
    shutil.copy(data / "catalog.csv", live / "catalog.csv")
    load_average = [round(x, 2) for x in os.getloadavg()]
    port = free_port()
    print(
        f"[{scale}] starting recsys serve --workers {args.workers} --threads {args.threads} (load average {load_average}) ...", flush=True
    )
    process, ready = start_server(artifacts, live, port, args.workers, args.threads, work / "server.log", access_log=args.access_log)
    scenarios: dict[str, dict] = {}
    try:
        seen = check(port, files, pool)
        wanted = [s for s in SCENARIOS if s in args.only]
        # each read scenario once before any is measured: the first pass over a pool pages in the model
        # parts it reads (at 10x a cold filtered pass had a p99 of 1.07 s, the next ones 15-18 ms)
        for name in [s for s in wanted if s not in ("health", "events")] if args.warmup > 0 else []:
            wrk(port, files[name], args.warmup, args.connections, args.wrk_threads, args.timeout, work / f"wrk-warmup-{name}.log", process)
        for name in wanted:
            before = [round(x, 2) for x in os.getloadavg()]
            runs = [
                wrk(
                    port, files[name], args.seconds, args.connections, args.wrk_threads, args.timeout, work / f"wrk-{name}-{i}.log", process
                )
                for i in range(1, args.repeat + 1)
            ]
            # the run with the median throughput stands for the scenario (this machine's speed wanders by
            # several percent from one run to the next); every run's figure is kept beside it
            result = {**sorted(runs, key=lambda r: r["requests_per_s"])[len(runs) // 2]}
            result["runs_requests_per_s"] = [r["requests_per_s"] for r in runs]
            if name == "events":
                result["events_per_s"] = round(result["requests_per_s"] * args.batch, 1)
            scenarios[name] = {**result, "load_average_before": before}
            spread = _each_run(result)
            print(
                f"[{scale}] {name:8} {result['requests_per_s']:>9,.0f} req/s (runs {spread})  p50 {result['p50_ms']:7.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}  "
                f"cores busy: server {result['cores_busy']['server']:.2f}, wrk {result['cores_busy']['wrk']:.2f}",
                flush=True,
            )
    finally:
        stop_server(process)
    return {
        "data": str(data.relative_to(ROOT)),
        "artifacts": str(artifacts.relative_to(ROOT)),
        "ready_s": round(ready, 2),
        "load_average_at_start": load_average,
        "filter": {"brand": pool["brand"], "max_price": pool["max_price"]},
        "pool_sizes": {k: len(pool[k]) for k in ("warm", "unknown", "products")},
        "check": seen,
        "scenarios": scenarios,
    }


def _each_run(result: dict) -> str:
    return "/".join(f"{x:,.0f}" for x in result["runs_requests_per_s"])


def rows_and_metrics(runs: dict[str, dict], args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    rows, metrics = [], []
    how = (
        f"wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds:g}s --latency, median of {args.repeat} runs, "
        f"on the same {os.cpu_count()} cores as the server; "
        f"recsys serve --workers {args.workers} --threads {args.threads} {'--access-log' if args.access_log else '--no-access-log'}"
    )
    for scale, run in runs.items():
        for name, r in run["scenarios"].items():
            target = TARGETS.get((scale, name))
            met = None if target is None else target.met(r["requests_per_s"], r["p99_ms"])
            rows.append(
                {
                    "scale": scale,
                    "scenario": name,
                    "req/s": f"{r['requests_per_s']:,.0f}",
                    "runs": _each_run(r),
                    "p50 ms": f"{r['p50_ms']:.2f}",
                    "p99 ms": f"{r['p99_ms']:.2f}",
                    "errors": r["errors"],
                    "target": "-" if target is None else str(target),
                    "met": {True: "met", False: "MISSED", None: ""}[met],
                    "cores server/wrk": f"{r['cores_busy']['server']:.2f} / {r['cores_busy']['wrk']:.2f}",
                }
            )
            label = f"{scale} {name}"
            throughput = metric(
                f"HTTP {label} throughput",
                r["requests_per_s"],
                "req/s",
                target=None if target is None else target.rps,
                how=how if target is None else f"{how}; target {target}",
                at_least=True,
            )
            p99 = metric(f"HTTP {label} p99", r["p99_ms"], "ms", how=how)
            if target is not None and target.p99_ms is not None:
                p99.update(target=target.p99_ms, met=r["p99_ms"] <= target.p99_ms)
            metrics += [throughput, metric(f"HTTP {label} p50", r["p50_ms"], "ms", how=how), p99]
            if "events_per_s" in r:
                metrics.append(
                    metric(f"HTTP {label} events accepted", r["events_per_s"], "events/s", how=f"{how}; {args.batch} per request")
                )
        failed = sum(r["errors"] for r in run["scenarios"].values())
        metrics.append(metric(f"HTTP {scale} failed requests, all scenarios", failed, "requests", target=1, how="socket errors + 4xx/5xx"))
    return rows, metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated: 1 (seed preset) and/or 10 (10x its size)")
    parser.add_argument("--seconds", type=float, default=15.0, help="wrk duration per scenario")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="wrk runs per scenario; the median run (the upper middle one for an even count) is reported, every run kept; "
        "the events scenario's later runs find the earlier runs' events in the store",
    )
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of each read scenario's requests before any is measured (0: none)"
    )
    parser.add_argument("--workers", type=int, default=2, help="recsys serve --workers")
    parser.add_argument("--threads", type=int, default=2, help="recsys serve --threads (per worker)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=10.0, help="wrk --timeout: slower responses count as errors")
    parser.add_argument("--batch", type=int, default=10, help="events per POST /events request")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated scenarios ({', '.join(SCENARIOS)})")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="serve with its per-request log line (default: --no-access-log, as behind a proxy that logs, like the floor app)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    args.only = {s.strip() for s in args.only.split(",") if s.strip()}
    scales = [f"{s.strip().removesuffix('x')}x" for s in args.scales.split(",") if s.strip()]
    unknown = [s for s in scales if s not in SIZES] + sorted(args.only - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scale or scenario: {', '.join(unknown)}")
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: run `bash benchmarks/install_tools.sh` (apt-get install wrk; `make bench` runs it), then try again.",
            file=sys.stderr,
        )
        return 2

    cores = os.cpu_count()
    at_start = machine()
    print(
        f"wrk ({args.wrk_threads} threads, {args.connections} connections) shares this machine's {cores} cores with the server "
        f"({args.workers} workers x {args.threads} threads): the numbers are a lower bound for a dedicated server. "
        f"Load average at start: {at_start['load_average']}",
        flush=True,
    )
    runs = {scale: bench_scale(scale, args) for scale in scales}
    rows, metrics = rows_and_metrics(runs, args)
    print_table(f"HTTP load (wrk, load generator on the same {cores} cores as the server)", rows)
    path = write_results(
        NAME,
        {
            "metrics": metrics,
            "details": {
                "tool": wrk_version(),
                "load_generator": (
                    f"wrk -t{args.wrk_threads} -c{args.connections} --latency, {args.seconds:g} s per run, {args.repeat} runs per scenario "
                    "(the median run reported), "
                    f"on the same {cores} cores as the server"
                ),
                "server": {
                    "command": "recsys serve",
                    "workers": args.workers,
                    "threads_per_worker": args.threads,
                    "access_log": args.access_log,
                    # inherited by the server; BLAS threads change single-request latency several-fold on 2 busy cores
                    "environment": {k: v for k, v in os.environ.items() if k in BLAS_THREAD_VARIABLES},
                },
                "events_batch": args.batch,
                "load_average_at_start": at_start["load_average"],
                "targets": {f"{scale} {name}": str(t) for (scale, name), t in TARGETS.items()},
                "scales": {scale: {**SIZES[scale], **run} for scale, run in runs.items()},
            },
        },
    )
    print(f"wrote {path}")
    header = "| scale | scenario | req/s | each run, req/s | p50 ms | p99 ms | errors | target | met | cores busy server / wrk |"
    table = [
        f"{wrk_version()}, {args.repeat} runs of {args.seconds:g} s per scenario, the median run shown; `recsys serve --workers {args.workers} --threads {args.threads} "
        f"{'--access-log' if args.access_log else '--no-access-log'}`; load average at start {at_start['load_average']}.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    table += ["| " + " | ".join(str(value) for value in row.values()) + " |" for row in rows]
    for doc in (ROOT / "docs" / "performance.md", ROOT / "README.md"):  # the README's speed section too
        update_doc(doc, "http-table", "\n".join(table), "bench_http.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
