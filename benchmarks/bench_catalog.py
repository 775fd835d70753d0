"""Benchmark: training cost against catalog size at fixed events, and `similar` for products without events.

Cases (each trained with the package defaults in its own spawned process, the ingest snapshot
built beforehand so `train` reuses it):
  seed-28k      the seed preset as generated (28,369 products, 653,419 events)
  seed-100k     the same events; the catalog grown to 100,000 products with generated products
  seed-300k     the same events; 300,000 products                          total < 2x seed-28k's
  thin-184k     184,000 products with a category only (no brand, gender or price), 7,000 events
                by 4,425 customers on ~5,200 products (the shape of a real purchase log)   < 10 s

The extra products come from the generator (`generate` with another seed, ids moved out of the
seed's range), so they look like the seed's products and nobody interacted with them. The thin
case's category goes into `category_path`, the column the content model reads.

For each case: train seconds (total and content stage), peak memory of the training process,
and `service.similar(product, 10)` latency for products without events: the first call computes
the neighbours on demand, the second reads the cache; also for products with events.

With `--models fixed` the router's models are fixed in settings (item kNN, content, popularity by
customers), so the model selection on a validation split does only its popularity scoring; results
go to `catalog-fixed.json` instead of `catalog.json`.

Usage: python benchmarks/bench_catalog.py [--cases seed-28k,seed-300k] [--repeat 1] [--calls 200] [--models auto|fixed]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, SEED, isolated, metric, metric_rows, percentile, print_table, seed_data, write_results  # noqa: E402

NAME = "catalog"
CASES = ("seed-28k", "seed-100k", "seed-300k", "thin-184k")
GROWN = {"seed-100k": 100_000, "seed-300k": 300_000}
THIN = {"products": 184_000, "events": 7_000, "customers": 4_425, "categories": 1_100, "touched": 5_200}
FIXED = {"router": {"collaborative": "itemknn", "few": "content"}, "popularity": {"mode": "customers"}}
RATIO_TARGET = 2.0
THIN_TARGET_S = 10.0


def _grown(products: int) -> Path:
    """The seed's events with the catalog grown to `products` by generated, untouched products."""
    import pandas as pd

    from recsys_cli.data.synthetic import generate

    target = OUT / "catalog" / f"seed-{products // 1000}k"
    if (target / "events.csv").exists() and (target / "catalog.csv").exists():
        return target
    seed = seed_data()
    base = pd.read_csv(seed / "catalog.csv", dtype=str, keep_default_na=False)
    scratch = OUT / "catalog" / "extra"
    generate(scratch, customers=1, products=products - len(base), events=1, seed=SEED + 1)
    extra = pd.read_csv(scratch / "catalog.csv", dtype=str, keep_default_na=False)
    extra["product_id"] = (extra["product_id"].astype("int64") + 10_000_000).astype(str)
    target.mkdir(parents=True, exist_ok=True)
    pd.concat([base, extra], ignore_index=True).to_csv(target / "catalog.csv", index=False, lineterminator="\n")
    shutil.copy(seed / "events.csv", target / "events.csv")
    shutil.rmtree(scratch)
    return target


def _thin() -> Path:
    """A large catalog with a category only and few events (seeded)."""
    import numpy as np
    import pandas as pd

    target = OUT / "catalog" / "thin-184k"
    if (target / "events.csv").exists() and (target / "catalog.csv").exists():
        return target
    rng = np.random.default_rng(SEED)
    n = THIN["products"]
    size = 1.0 / (np.arange(THIN["categories"]) + 3.0) ** 0.9  # a few big categories, a long tail
    category = rng.choice(THIN["categories"], n, p=size / size.sum())
    ids = np.arange(n) + 1_000_000
    catalog = pd.DataFrame({"product_id": ids, "category_id": category + 1000, "category_path": (category + 1000).astype(str)})
    touched = rng.choice(n, THIN["touched"], replace=False)
    weight = 1.0 / (np.arange(len(touched)) + 5.0) ** 0.5
    product = np.concatenate([touched, rng.choice(touched, THIN["events"] - len(touched), p=weight / weight.sum())])
    customer = np.concatenate([np.arange(THIN["customers"]), rng.integers(0, THIN["customers"], THIN["events"] - THIN["customers"])])
    events = pd.DataFrame(
        {
            "customer_id": customer + 100_000,
            "product_id": ids[product],
            "type": "purchase_item",
            "timestamp": 1_704_067_200 + np.sort(rng.integers(0, 90 * 86_400, THIN["events"])),
        }
    )
    target.mkdir(parents=True, exist_ok=True)
    catalog.to_csv(target / "catalog.csv", index=False, lineterminator="\n")
    events.to_csv(target / "events.csv", index=False, lineterminator="\n")
    return target


def data_for(case: str) -> Path:
    if case == "seed-28k":
        return seed_data()
    if case in GROWN:
        return _grown(GROWN[case])
    return _thin()


def prepare_phase(data_dir: str, artifacts_dir: str) -> dict:
    """Write (or reuse) the ingest snapshot, so the timed training reuses it."""
    from recsys_cli.data.ingest import ingest

    snapshot = ingest(Path(data_dir), Path(artifacts_dir))
    return {"snapshot": snapshot.fingerprint[:16], "reused": snapshot.reused}


def train_phase(data_dir: str, artifacts_dir: str, models: str) -> dict:
    """Train with the package defaults ("auto": models chosen on a validation split) or with them fixed."""
    import copy

    from recsys_cli.config import DEFAULTS, Settings
    from recsys_cli.training import train

    values = copy.deepcopy(DEFAULTS)
    if models == "fixed":
        values["router"].update(FIXED["router"])
        values["popularity"].update(FIXED["popularity"])
    started = time.perf_counter()
    outcome = train(Path(data_dir), Path(artifacts_dir), Settings(values, {}))
    return {"stages": outcome.seconds, "wall_seconds": round(time.perf_counter() - started, 4)}


def similar_phase(artifacts_dir: str, calls: int) -> dict:
    """`similar` latency (ms) for products without events (first call, then cached) and with events."""
    import numpy as np

    from recsys_cli.service import RecommendationService

    service = RecommendationService.load(Path(artifacts_dir))
    content = service.content
    rng = np.random.default_rng(SEED)
    external = service.dataset.items.external_ids
    listed = np.arange(service.dataset.n_listed or service.dataset.n_items)
    inactive = listed[~content.precomputed[listed]]
    active = listed[content.precomputed[listed]]
    out: dict = {"products": int(len(listed)), "precomputed": int(content.precomputed.sum())}
    for label, pool in (("on_demand", inactive), ("precomputed", active)):
        picked = [str(external[i]) for i in rng.choice(pool, size=min(calls, len(pool)), replace=False)]
        passes = ("first", "cached") if label == "on_demand" else ("warm",)
        for name in passes:
            times = []
            for product in picked:
                started = time.perf_counter_ns()
                service.similar(product, 10)
                times.append((time.perf_counter_ns() - started) / 1e6)
            out[f"{label}_{name}"] = {
                "p50_ms": round(percentile(times, 50), 3),
                "p99_ms": round(percentile(times, 99), 3),
                "calls": len(times),
            }
    return out


def run_case(case: str, repeat: int, calls: int, models: str) -> dict:
    data = data_for(case)
    artifacts = OUT / "catalog" / f"artifacts-{case}"
    shutil.rmtree(artifacts, ignore_errors=True)
    prepared = isolated(prepare_phase, str(data), str(artifacts))
    runs = [isolated(train_phase, str(data), str(artifacts), models) for _ in range(repeat)]
    fastest = min(runs, key=lambda r: r["result"]["stages"]["total"])
    similar = isolated(similar_phase, str(artifacts), calls)["result"]
    shutil.rmtree(artifacts, ignore_errors=True)
    return {
        "case": case,
        "ingest_seconds": prepared["seconds"],
        "stages": fastest["result"]["stages"],
        "train_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "totals": [r["result"]["stages"]["total"] for r in runs],
        "similar": similar,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--repeat", type=int, default=1, help="training runs per case (best total kept)")
    parser.add_argument("--calls", type=int, default=200, help="similar calls per kind of product")
    parser.add_argument(
        "--models",
        choices=("auto", "fixed"),
        default="auto",
        help="auto: package defaults (models chosen on a validation split); fixed: item kNN, content, popularity by customers",
    )
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")

    results = {}
    for case in cases:
        print(f"{case}: preparing and training", flush=True)
        results[case] = run_case(case, args.repeat, args.calls, args.models)

    rows = []
    for case, r in results.items():
        s = r["similar"]
        rows.append(
            {
                "case": case,
                "products": s["products"],
                "precomputed": s["precomputed"],
                "train s": r["stages"]["total"],
                "selection s": r["stages"].get("selection"),
                "content s": r["stages"]["content"],
                "peak MB": r["train_peak_rss_mb"],
                "similar p50 ms (on demand, first)": s["on_demand_first"]["p50_ms"] if "on_demand_first" in s else None,
                "p99": s["on_demand_first"]["p99_ms"] if "on_demand_first" in s else None,
                "cached p50": s["on_demand_cached"]["p50_ms"] if "on_demand_cached" in s else None,
                "precomputed p50": s["precomputed_warm"]["p50_ms"] if "precomputed_warm" in s else None,
            }
        )
    print_table(f"Training cost against catalog size, models {args.models}", rows)

    metrics = []
    if "seed-28k" in results and "seed-300k" in results:
        ratio = results["seed-300k"]["stages"]["total"] / results["seed-28k"]["stages"]["total"]
        content = results["seed-300k"]["stages"]["content"] / results["seed-28k"]["stages"]["content"]
        how = f"total train seconds, models {args.models}, best of --repeat"
        metrics.append(metric("train 300k / 28k products, seed events", round(ratio, 2), "x", RATIO_TARGET, how))
        metrics.append(
            metric("content stage 300k / 28k products, seed events", round(content, 2), "x", RATIO_TARGET, "content stage seconds")
        )
    if "thin-184k" in results:
        stages = results["thin-184k"]["stages"]
        how = f"total train seconds, models {args.models}"
        metrics.append(metric("train 184k products, 7k events", stages["total"], "s", THIN_TARGET_S, how))
        metrics.append(metric("content stage 184k products, 7k events", stages["content"], "s", THIN_TARGET_S, "content stage seconds"))
    for case, r in results.items():
        if "on_demand_first" in r["similar"]:
            p50 = r["similar"]["on_demand_first"]["p50_ms"]
            metrics.append(
                metric(f"similar p50, product without events, first call ({case})", p50, "ms", None, "service.similar(product, 10)")
            )
    print_table("Targets", metric_rows(metrics))
    path = write_results(NAME if args.models == "auto" else f"{NAME}-{args.models}", {"metrics": metrics, "details": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
