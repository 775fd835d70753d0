"""Benchmark: `recsys train` with the local engine and with `--engine spark`, side by side.

Both engines train the same data with the same fixed model choice (item kNN for warm and few
customers, popularity by distinct customers for the cold: the only choice the Spark engine has,
so that the comparison is like for like), each as a fresh `recsys train` process into its own
artifacts folder. Per engine: wall time of the process, the stages the manifest records, and the
peak RSS of its process tree (the Python driver plus Spark's JVM), sampled every 0.25 s.
Then the two versions are compared: same pairs, and for every product whether the item-kNN
neighbours agree (the same neighbours above the last place's similarity, similarities within
1e-5), and the Spark version is served by `recsys recommend`.

Spark runs on one machine here (`--master`, default local[2]): this measures the engine's overhead
on data one machine handles, not a cluster's speed-up.

Usage: python benchmarks/bench_engines.py [--data DIR (default: the seed preset)] [--master local[2]] [--name engines]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, metric, metric_rows, print_table, seed_data, write_results  # noqa: E402

FIXED = {"RECSYS_ROUTER__COLLABORATIVE": "itemknn", "RECSYS_ROUTER__FEW": "same", "RECSYS_POPULARITY__MODE": "customers"}
RECSYS = str(Path(sys.executable).with_name("recsys"))


def train(engine: str, data: Path, artifacts: Path, master: str) -> dict[str, Any]:
    """One `recsys train` process: wall seconds, peak RSS of its process tree, the manifest's stages."""
    from recsys_cli import artifacts as artifact_store

    environ = {**os.environ, **FIXED, "RECSYS_TRAINING__ENGINE": engine, "RECSYS_SPARK__MASTER": master}
    environ.pop("RECSYS_CONFIG", None)
    started = time.perf_counter()
    process = subprocess.Popen(
        [RECSYS, "train", "--data", str(data), "--artifacts", str(artifacts)], env=environ, cwd=tempfile.gettempdir()
    )
    peak = _peak_tree_rss(process)
    code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{engine}: recsys train exited {code}")
    loaded = artifact_store.load(artifacts)
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "stages": loaded.manifest["training_seconds"],
        "counts": loaded.manifest["counts"],
        "version": loaded.version,
        "parts": loaded.parts,
    }


def _peak_tree_rss(process: subprocess.Popen, every: float = 0.25) -> int:
    """Peak of the summed RSS of `process` and its descendants (Spark's JVM is one), sampled until it exits."""
    import psutil

    root = psutil.Process(process.pid)
    peak = 0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(every)
    return peak


def agreement(local: dict[str, Any], spark: dict[str, Any]) -> dict[str, Any]:
    """How far the Spark version's item-kNN neighbours are from the local one's, product by product."""
    a_items, b_items = local["parts"]["dataset"].items, spark["parts"]["dataset"].items
    a, b = local["parts"]["collaborative"].S, spark["parts"]["collaborative"].S
    to_a = a_items.to_internal(b_items.external_ids)  # spark index -> local index
    same = differ = 0
    worst = 0.0
    for row_a in range(a.shape[0]):
        row_b = b_items.get(a_items.external_ids[row_a])
        sa = dict(zip(a.indices[a.indptr[row_a] : a.indptr[row_a + 1]], a.data[a.indptr[row_a] : a.indptr[row_a + 1]]))
        sb = dict(zip(to_a[b.indices[b.indptr[row_b] : b.indptr[row_b + 1]]], b.data[b.indptr[row_b] : b.indptr[row_b + 1]]))
        if len(sa) != len(sb):
            differ += 1
            continue
        if not sa:
            continue
        va, vb = np.sort(list(sa.values())), np.sort(list(sb.values()))
        worst = max(worst, float(np.max(np.abs(va - vb))))
        cutoff = va[0] * (1 + 1e-5)
        if {j for j, s in sa.items() if s > cutoff} == {j for j, s in sb.items() if s > cutoff} and np.allclose(va, vb, rtol=1e-5):
            same += 1
        else:
            differ += 1
    return {"products_compared": same + differ, "neighbours_agree": same, "neighbours_differ": differ, "max_similarity_gap": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="canonical CSV folder (default: the seed preset)")
    parser.add_argument("--master", default="local[2]", help="Spark master for the spark engine")
    parser.add_argument("--name", default="engines", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()
    data = (args.data or seed_data()).resolve()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as scratch:
        for engine in ("local", "spark"):
            results[engine] = train(engine, data, Path(scratch) / engine, args.master)
        served = subprocess.run(
            [RECSYS, "recommend", str(results["spark"]["parts"]["dataset"].users.external_ids[0]), "-n", "10", "--format", "json"]
            + ["--artifacts", str(Path(scratch) / "spark")],
            capture_output=True,
            text=True,
        )
        compared = agreement(results["local"], results["spark"])
    local, spark = results["local"], results["spark"]
    stages = sorted(
        set(local["stages"]) | set(spark["stages"]), key=lambda s: list(spark["stages"]).index(s) if s in spark["stages"] else 99
    )
    rows = [
        {"stage": stage, "local s": local["stages"].get(stage), "spark s": spark["stages"].get(stage)}
        for stage in stages
        if stage != "total"
    ]
    rows.append({"stage": "process wall time", "local s": local["seconds"], "spark s": spark["seconds"]})
    rows.append({"stage": "peak RSS MB (process tree)", "local s": local["peak_rss_mb"], "spark s": spark["peak_rss_mb"]})
    print_table(f"recsys train on {data.name}: local vs spark ({args.master}), same models (itemknn, popularity by customers)", rows)
    metrics = [
        metric("local_train_seconds", local["seconds"], "s", how="recsys train, local engine, fixed models, whole process"),
        metric(
            "spark_train_seconds",
            spark["seconds"],
            "s",
            how=f"recsys train --engine spark on {args.master}, whole process (JVM start included)",
        ),
        metric("spark_over_local", round(spark["seconds"] / local["seconds"], 2), "x", how="wall time ratio on one machine"),
        metric("neighbours_agree_share", round(compared["neighbours_agree"] / max(compared["products_compared"], 1), 4), "share"),
        metric("spark_version_served", float(served.returncode == 0), "bool", how="recsys recommend exit code 0 on the Spark version"),
    ]
    print_table("summary", metric_rows(metrics))
    print(f"neighbours: {compared}")
    if served.returncode != 0:
        print(f"recsys recommend on the Spark version exited {served.returncode}:\n{served.stderr[-2000:]}")
    details = {
        "data": str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data),
        "master": args.master,
        "settings": FIXED,
        "counts": local["counts"],
        "same_counts": local["counts"] == spark["counts"],
        "local": {k: v for k, v in local.items() if k != "parts"},
        "spark": {k: v for k, v in spark.items() if k != "parts"},
        "neighbours": compared,
        "served": {"exit_code": served.returncode, "stderr": served.stderr[-2000:]},
    }
    print(f"wrote {write_results(args.name, {'metrics': metrics, 'details': details})}")


if __name__ == "__main__":
    main()
