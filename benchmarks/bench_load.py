"""Load benchmark: `recsys serve --workers 2` under a mixed request load while new model versions are published.

Trains the seed preset once (benchmarks/out/load-base) plus one variant per publish with a changed
setting (router.session_weight 0.31, 0.32, ...; benchmarks/out/load-staging), serves a private
copy of the base, and drives `connections` keep-alive connections for `seconds` with a mix of
recommendations (warm / few / unknown customers, with and without filters), similar products,
pair similarity and event posts. During the run each variant is copied into the served artifacts
and `current` is switched to it (the publish step `recsys train` ends with); every worker must
pick each one up. RSS of every worker is sampled each second; growth is measured after warm-up.
Prints a table and writes benchmarks/results/load.json.

Usage: python benchmarks/bench_load.py [--seconds 60] [--connections 32] [--publishes 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import free_port, start_server, stop_server  # noqa: E402
from common import OUT, metric, metric_rows, print_table, seed_data, write_results  # noqa: E402

WARMUP_S = 10.0


def _loadable(artifacts_dir: Path) -> bool:
    """True when `artifacts_dir` has a current version this recsys can read, trained with today's
    default settings (a version from older defaults would measure older behaviour)."""
    from recsys_cli import artifacts as artifact_store
    from recsys_cli.config import load_settings
    from recsys_cli.errors import ArtifactError

    version = artifact_store.current_version(artifacts_dir)
    if version is None:
        return False
    try:
        manifest = artifact_store.verify(artifacts_dir / artifact_store.VERSIONS_DIR / version)
    except ArtifactError:
        return False
    return manifest.get("settings") == load_settings(environ={}).to_dict()


def prepare(publishes: int, data: Path | None = None, trained: Path | None = None) -> tuple[Path, Path, Path, list[str], dict]:
    """(data, base artifacts, staging folder, staged variant versions, id pools); trains what is missing.

    With `data` and already `trained` artifacts (the 10x scale run), the variants are the trained
    version published again under new names instead of retrained: what is measured is the swap.
    """
    from recsys_cli import artifacts as artifact_store
    from recsys_cli.config import load_settings
    from recsys_cli.training import train

    if trained is not None:
        data, base, staging = data, trained, OUT / f"{trained.name}-staging"
        shutil.rmtree(staging, ignore_errors=True)
        loaded = artifact_store.load(base)
        manifest = {k: v for k, v in loaded.manifest.items() if k not in ("files", "version", "format_version")}
        staged = [artifact_store.publish(staging, loaded.parts, {**manifest, "republished": i}, keep=10) for i in range(publishes)]
        del loaded
        return data, base, staging, staged, _pools(data)
    data, base, staging = seed_data(), OUT / "load-base", OUT / "load-staging"
    if not _loadable(base):  # absent, or written by an older recsys: train afresh
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        print("training the base model ...", flush=True)
        train(data, base, load_settings(environ={}))
    staged = sorted(p.name for p in (staging / "versions").glob("[0-9]*")) if (staging / "versions").is_dir() else []
    while len(staged) < publishes:
        weight = f"{0.31 + 0.01 * len(staged):.2f}"
        print(f"training variant router.session_weight={weight} ...", flush=True)
        environ = {"RECSYS_ROUTER__SESSION_WEIGHT": weight, "RECSYS_ARTIFACTS__KEEP": "10"}
        staged.append(train(data, staging, load_settings(environ=environ)).version)
    return data, base, staging, staged[:publishes], _pools(data)


def _pools(data: Path) -> dict:
    events = pd.read_csv(data / "events.csv", dtype={"customer_id": str, "product_id": str}, usecols=["customer_id", "product_id"])
    distinct = events.groupby("customer_id")["product_id"].nunique()
    rng = random.Random(7)
    catalog = pd.read_csv(data / "catalog.csv", dtype=str)
    pools = {
        "warm": rng.sample(distinct[distinct >= 5].index.tolist(), 1000),
        "few": rng.sample(distinct[distinct < 5].index.tolist(), 1000),
        "products": events["product_id"].drop_duplicates().sample(1000, random_state=7).tolist(),
        "brands": catalog["brand"].dropna().unique().tolist()[:20] if "brand" in catalog else [],
    }
    return pools


def request_mix(pools: dict):
    """A function rng -> (endpoint label, method, path, body)."""

    def make(rng: random.Random) -> tuple[str, str, str, str | None]:
        roll = rng.random()
        if roll < 0.45:
            kind = ("warm", "few", "unknown")[rng.randrange(3)]
            customer = f"load-new-{rng.randrange(100_000)}" if kind == "unknown" else rng.choice(pools[kind])
            if rng.random() < 0.3 and pools["brands"]:
                return (
                    f"recommendations {kind} filtered",
                    "GET",
                    f"/recommendations/{customer}?n=10&max_price=100&brand={quote(rng.choice(pools['brands']))}",
                    None,
                )
            return f"recommendations {kind}", "GET", f"/recommendations/{customer}?n=10", None
        if roll < 0.65:
            return "similar", "GET", f"/products/{rng.choice(pools['products'])}/similar?n=10", None
        if roll < 0.80:
            a, b = rng.sample(pools["products"], 2)
            return "similarity", "GET", f"/products/{a}/similarity/{b}", None
        events = [
            {"customer_id": f"load-live-{rng.randrange(5000)}", "product_id": rng.choice(pools["products"]), "type": "view_product"}
            for _ in range(rng.randint(1, 20))
        ]
        return "events", "POST", "/events", json.dumps(events)

    return make


def run(
    seconds: float = 60.0, connections: int = 32, publishes: int = 3, data: Path | None = None, artifacts_dir: Path | None = None
) -> dict:
    """Start the server, drive the load, publish the variants, stop; everything measured as a dict.

    By default on the seed preset; `data` + `artifacts_dir` (already trained) serve another dataset.
    """
    from recsys_cli import artifacts as artifact_store

    data, base, staging, staged, pools = prepare(publishes, data, artifacts_dir)
    live, artifacts = OUT / "load-live", OUT / "load-artifacts"
    for folder in (live, artifacts):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(base, artifacts, ignore=shutil.ignore_patterns(".train.lock", ".train-jobs"))
    live.mkdir(parents=True)
    shutil.copy(data / "catalog.csv", live / "catalog.csv")
    port = free_port()
    process, ready = start_server(artifacts, live, port, workers=2)
    first_version = artifact_store.current_version(artifacts)
    make = request_mix(pools)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter = Counter()
    failures: list[str] = []
    versions: Counter = Counter()
    lock = threading.Lock()
    began = time.perf_counter()
    stop_at = began + seconds

    def client(index: int) -> None:
        rng = random.Random(index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.perf_counter() < stop_at:
            label, method, path, body = make(rng)
            started = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
                response = connection.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    failures.append(f"{method} {path[:80]}: {error!r}")
                continue
            elapsed = time.perf_counter() - started
            with lock:
                latencies[label].append(elapsed)
                statuses[status] += 1
                if status >= 500 or status not in (200, 201):
                    failures.append(f"{method} {path[:80]}: {status} {payload[:200]!r}")
                elif label.startswith("recommendations"):
                    versions[json.loads(payload)["model_version"]] += 1

    memory: dict[int, list[tuple[float, float]]] = defaultdict(list)

    def sample_memory() -> None:
        parent = psutil.Process(process.pid)
        while time.perf_counter() < stop_at:
            for child in parent.children(recursive=True):
                try:
                    memory[child.pid].append((time.perf_counter() - began, child.memory_info().rss / 2**20))
                except psutil.NoSuchProcess:
                    pass
            time.sleep(1.0)

    published: list[dict] = []

    def publisher() -> None:
        for i, name in enumerate(staged):
            time.sleep(max(0.0, began + seconds * (i + 1) / (publishes + 1.5) - time.perf_counter()))
            shutil.copytree(staging / "versions" / name, artifacts / "versions" / name)
            artifact_store.switch_current(artifacts, name)
            published.append({"version": name, "at_s": round(time.perf_counter() - began, 1)})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    threads += [threading.Thread(target=sample_memory), threading.Thread(target=publisher)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
    finally:
        stop_server(process)

    def summary(values: list[float]) -> dict:
        ms = np.array(values) * 1000
        return {"requests": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}

    everything = [x for values in latencies.values() for x in values]
    growth = {}
    for pid, samples in memory.items():
        after = [mb for at, mb in samples if at >= WARMUP_S]
        if len(after) >= 6:  # steady state at the start and at the end (median of 3 samples each); a swap briefly holds two models
            start, end = float(np.median(after[:3])), float(np.median(after[-3:]))
            growth[pid] = {
                "after_warmup_mb": round(start, 1),
                "end_mb": round(end, 1),
                "peak_mb": round(max(after), 1),
                "growth_pct": round(100 * (end - start) / start, 1),
            }
    expected = [first_version, *staged]
    return {
        "seconds": round(elapsed, 1),
        "connections": connections,
        "workers": 2,
        "ready_s": round(ready, 2),
        "requests": len(everything),
        "requests_per_s": round(len(everything) / elapsed, 1),
        "overall": summary(everything),
        "endpoints": {label: summary(values) for label, values in sorted(latencies.items())},
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "failures": len(failures),
        "failure_examples": failures[:10],
        "published": published,
        "versions_expected": expected,
        "versions_observed": dict(versions),
        "all_versions_observed": all(versions[v] > 0 for v in expected),
        "rss": growth,
        "max_rss_growth_pct": max((g["growth_pct"] for g in growth.values()), default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--publishes", type=int, default=3)
    args = parser.parse_args()
    result = run(args.seconds, args.connections, args.publishes)
    rows = [{"endpoint": label, **values} for label, values in result["endpoints"].items()]
    rows.append({"endpoint": "overall", **result["overall"]})
    print_table(f"load: {result['requests_per_s']:.0f} req/s over {result['seconds']:.0f} s, {args.connections} connections", rows)
    how = f"2 workers x 8 threads, {args.connections} connections, {args.seconds:.0f} s, {args.publishes} publishes mid-run"
    metrics = [
        metric("load throughput", result["requests_per_s"], "req/s", how=how),
        metric("load p50, all endpoints", result["overall"]["p50_ms"], "ms", how=how),
        metric("load p99, all endpoints", result["overall"]["p99_ms"], "ms", how=how),
        metric("load 5xx responses", result["server_errors"], "responses", target=1, how=how),
        metric("load failed requests", result["failures"], "requests", target=1, how="5xx, other non-2xx, or connection errors"),
        metric(
            "load versions not observed",
            len(result["versions_expected"]) - sum(1 for v in result["versions_expected"] if result["versions_observed"].get(v)),
            "versions",
            target=1,
        ),
        metric(
            "load worker RSS growth after warm-up",
            result["max_rss_growth_pct"],
            "%",
            target=10,
            how=f"largest worker, median of the last 3 s vs of the 3 s after a {WARMUP_S:.0f} s warm-up",
        ),
    ]
    print_table("load", metric_rows(metrics))
    path = write_results("load", {"dataset": "seed preset", "metrics": metrics, "details": result})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
