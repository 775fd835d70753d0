"""REST server benchmark: throughput and latency of `serve()` on the seed-sized store.

Generates the seed preset into benchmarks/out/seed (once), trains into benchmarks/out/seed-artifacts
(once; reused while the inputs are unchanged), then for each worker count starts the server in a
subprocess and measures: ready time (spawn to first 200 from /health), GET /recommendations
requests/s and p50/p99 latency over a mix of warm / few-interaction / unknown customers from 16
keep-alive connections, POST /events throughput in batches of 100, errors, and RSS per process.
Prints a table and writes benchmarks/results/server.json.

The load generator runs on the same machine and competes with the server for CPU: numbers are
a lower bound for a dedicated server.

Usage: python benchmarks/bench_server.py [--seconds 20] [--workers 1,2] [--connections 16]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, metric, metric_rows, print_table, seed_data, write_results  # noqa: E402


def prepare() -> tuple[Path, Path, dict]:
    from recsys_cli import artifacts as artifact_store
    from recsys_cli.config import load_settings
    from recsys_cli.training import train

    data, artifacts = seed_data(), OUT / "seed-server-artifacts"
    if artifact_store.current_version(artifacts) is None:
        print("training ...", flush=True)
        outcome = train(data, artifacts, load_settings(environ={}))
        print(f"trained {outcome.version} in {outcome.seconds.get('total', 0):.1f}s", flush=True)
    events = pd.read_csv(data / "events.csv", dtype={"customer_id": str, "product_id": str}, usecols=["customer_id", "product_id"])
    distinct = events.groupby("customer_id")["product_id"].nunique()
    rng = random.Random(7)
    warm = distinct[distinct >= 5].index.tolist()
    few = distinct[distinct < 5].index.tolist()
    customers = {
        "warm": rng.sample(warm, min(2000, len(warm))),
        "few": rng.sample(few, min(2000, len(few))),
        "unknown": [f"bench-new-{i}" for i in range(2000)],
    }
    products = events["product_id"].drop_duplicates().sample(2000, random_state=7).tolist()
    return data, artifacts, {"customers": customers, "products": products}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(artifacts: Path, live: Path, port: int, workers: int) -> tuple[subprocess.Popen, float]:
    code = (
        "from pathlib import Path; from recsys_cli.server import serve; "
        f"serve(Path({str(artifacts)!r}), Path({str(live)!r}), port={port}, workers={workers}, threads=8)"
    )
    log = open(OUT / f"server-{workers}w.log", "wb")  # noqa: SIM115 - closed with the process
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see {log.name}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server not ready after 120 s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def run_load(port: int, seconds: float, connections: int, make_request) -> dict:
    """`connections` threads, each one keep-alive connection, for `seconds`; latency of every request."""
    stop = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    units = [0] * connections

    def worker(index: int) -> None:
        rng = random.Random(index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop:
            method, path, body, weight = make_request(rng)
            began = time.perf_counter()
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                ok = response.status in (200, 201)
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            latencies[index].append(time.perf_counter() - began)
            if ok:
                units[index] += weight
            else:
                errors[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    all_latencies = np.array([x for per in latencies for x in per]) * 1000
    return {
        "requests": int(len(all_latencies)),
        "requests_per_s": round(len(all_latencies) / elapsed, 1),
        "units_per_s": round(sum(units) / elapsed, 1),
        "p50_ms": round(float(np.percentile(all_latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(all_latencies, 99)), 2),
        "errors": int(sum(errors)),
    }


def rss(process: subprocess.Popen) -> dict:
    parent = psutil.Process(process.pid)
    children = parent.children(recursive=True)
    return {
        "parent_mb": round(parent.memory_info().rss / 2**20, 1),
        "workers_mb": [round(child.memory_info().rss / 2**20, 1) for child in children],
        "workers_unique_mb": [round(child.memory_full_info().uss / 2**20, 1) for child in children],  # not shared copy-on-write
    }


def bench(artifacts: Path, pools: dict, workers: int, seconds: float, connections: int) -> dict:
    live = OUT / "server-live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir(parents=True)
    port = free_port()
    process, ready = start_server(artifacts, live, port, workers)
    try:
        kinds = ("warm", "few", "unknown")

        def recommendation(rng: random.Random):
            kind = kinds[rng.randrange(3)]
            return "GET", f"/recommendations/{rng.choice(pools['customers'][kind])}?n=10", None, 1

        run_load(port, 2.0, connections, recommendation)  # warm-up
        recommendations = run_load(port, seconds, connections, recommendation)
        per_kind = {}
        for kind in kinds:
            per_kind[kind] = run_load(
                port, 3.0, connections, lambda rng, k=kind: ("GET", f"/recommendations/{rng.choice(pools['customers'][k])}?n=10", None, 1)
            )
        similar = run_load(port, 5.0, connections, lambda rng: ("GET", f"/products/{rng.choice(pools['products'])}/similar?n=10", None, 1))

        def batch(rng: random.Random):
            events = [
                {"customer_id": f"live-{rng.randrange(10_000)}", "product_id": rng.choice(pools["products"]), "type": "view_product"}
                for _ in range(100)
            ]
            return "POST", "/events", json.dumps(events), 100

        events = run_load(port, 10.0, 4, batch)
        memory = rss(process)
    finally:
        stop_server(process)
    return {
        "workers": workers,
        "threads_per_worker": 8,
        "connections": connections,
        "ready_s": round(ready, 2),
        "recommendations": recommendations,
        "recommendations_by_kind": per_kind,
        "similar": similar,
        "events_batches_of_100": events,
        "rss": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    data, artifacts, pools = prepare()
    runs = [bench(artifacts, pools, int(w), args.seconds, args.connections) for w in args.workers.split(",")]
    rows = [
        ("workers", "ready s", "recs req/s", "p50 ms", "p99 ms", "errors", "similar req/s", "events/s (x100 batches)", "RSS MB per worker")
    ]
    for run in runs:
        r, e = run["recommendations"], run["events_batches_of_100"]
        rows.append(
            (
                str(run["workers"]),
                f"{run['ready_s']:.2f}",
                f"{r['requests_per_s']:.0f}",
                f"{r['p50_ms']:.1f}",
                f"{r['p99_ms']:.1f}",
                str(r["errors"] + e["errors"] + run["similar"]["errors"]),
                f"{run['similar']['requests_per_s']:.0f}",
                f"{e['units_per_s']:.0f}",
                ", ".join(f"{m:.0f}" for m in run["rss"]["workers_mb"]) or f"{run['rss']['parent_mb']:.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    for run in runs:
        kinds = ", ".join(
            f"{k} {v['requests_per_s']:.0f} req/s p50 {v['p50_ms']:.1f} ms p99 {v['p99_ms']:.1f} ms"
            for k, v in run["recommendations_by_kind"].items()
        )
        print(f"workers={run['workers']}: {kinds}")
    metrics = []
    for run in runs:
        w, r, e = run["workers"], run["recommendations"], run["events_batches_of_100"]
        how = f"{w} worker(s) x 8 threads, {args.connections} keep-alive connections, {args.seconds:.0f} s, warm/few/unknown mix"
        metrics += [
            metric(f"server ready, {w} worker(s)", run["ready_s"], "s", how="spawn to first 200 from /health"),
            metric(f"GET /recommendations throughput, {w} worker(s)", r["requests_per_s"], "req/s", how=how),
            metric(f"GET /recommendations p50, {w} worker(s)", r["p50_ms"], "ms", how=how),
            metric(f"GET /recommendations p99, {w} worker(s)", r["p99_ms"], "ms", how=how),
            metric(f"POST /events throughput, {w} worker(s)", e["units_per_s"], "events/s", how="4 connections, batches of 100, 10 s"),
            metric(f"failed requests, {w} worker(s)", r["errors"] + e["errors"] + run["similar"]["errors"], "requests", target=1),
            metric(
                f"RSS per worker, {w} worker(s)", max(run["rss"]["workers_mb"] or [run["rss"]["parent_mb"]]), "MB", how="largest worker"
            ),
        ]
    print_table("server", metric_rows(metrics))
    path = write_results("server", {"dataset": "seed preset", "metrics": metrics, "details": {"seconds": args.seconds, "runs": runs}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
