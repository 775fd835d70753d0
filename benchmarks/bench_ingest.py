"""Benchmark: generate and ingest the seed preset (seconds and peak memory of each, in fresh processes).

Targets: generate < 30 s; ingest < 5 s and < 1.5 GB. Each phase runs --repeat times in its own
spawned process; seconds are the best run (other jobs share the machine), memory the worst.

Usage: python benchmarks/bench_ingest.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, SEED, best, isolated, metric, metric_rows, print_table, seed_data, write_results  # noqa: E402

NAME = "ingest"


def generate_phase(target: str) -> dict:
    from recsys_cli.data.synthetic import PRESETS, generate

    shutil.rmtree(target, ignore_errors=True)
    summary = generate(Path(target), **PRESETS["seed"], seed=SEED)
    return {"events": summary.events, "customers": summary.customers, "products": summary.products}


def _ingest(data_dir: str, artifacts_dir: str) -> dict:
    from recsys_cli.data.ingest import ingest

    snapshot = ingest(Path(data_dir), Path(artifacts_dir), force=True)
    return {"events": snapshot.summary.get("events"), "rejected": snapshot.summary.get("rejected")}


def ingest_fresh(data_dir: str, artifacts_dir: str) -> dict:
    """Remove the artifacts folder, then time only the ingest call."""
    import time

    shutil.rmtree(artifacts_dir, ignore_errors=True)
    started = time.perf_counter()
    result = _ingest(data_dir, artifacts_dir)
    result["ingest_seconds"] = round(time.perf_counter() - started, 4)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    generated = [isolated(generate_phase, str(OUT / "generate")) for _ in range(args.repeat)]
    data_dir = seed_data()
    ingested = [isolated(ingest_fresh, str(data_dir), str(OUT / "ingest_artifacts")) for _ in range(args.repeat)]

    ingest_seconds = min(r["result"]["ingest_seconds"] for r in ingested)
    how = f"best of {args.repeat}, fresh process each"
    metrics = [
        metric("generate seconds", best(generated), "s", 30, how),
        metric("generate peak memory", max(r["peak_rss_mb"] for r in generated), "MB", None, "process peak, worst run"),
        metric("ingest seconds", ingest_seconds, "s", 5, how + ", force=True, fresh artifacts dir"),
        metric("ingest peak memory", max(r["peak_rss_mb"] for r in ingested), "MB", 1536, "process peak incl. imports, worst run"),
    ]
    details = {
        "preset": "seed",
        "counts": generated[0]["result"],
        "ingest_summary": ingested[0]["result"],
        "runs": {
            "generate_seconds": [r["seconds"] for r in generated],
            "generate_peak_rss_mb": [r["peak_rss_mb"] for r in generated],
            "ingest_seconds": [r["result"]["ingest_seconds"] for r in ingested],
            "ingest_peak_rss_mb": [r["peak_rss_mb"] for r in ingested],
        },
    }
    print_table("recsys: generate + ingest (seed preset)", metric_rows(metrics))
    path = write_results(NAME, {"metrics": metrics, "details": details})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
