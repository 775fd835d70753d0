"""Quality benchmark on real public datasets (../shared/datasets): prints tables, writes results/quality.json.

The default part, `harness`, is how the project is judged: `../shared/tools/peer_eval.py` runs
`recsys` as a black box (`recsys train`, `recsys recommend --customers-file ... --format jsonl`)
against popularity, trending popularity, implicit ALS, LightFM, EASE and ItemKNN on MovieLens-100k,
UCI Online Retail, Amazon Beauty and the seed preset, with the harness's own split and metrics. The
docs/quality.md's table (between the `quality-table` markers) is regenerated from it, with the
models `train` chose for each segment (read from the version's manifest).

Older parts, run with `--only`:

1. `lightfm-ml100k`: LightFM's published MovieLens-100k example (ua.base / ua.test, every rating a
   positive, WARP) run through our own plumbing (canonical events -> Dataset.construct ->
   LightFMModel) and scored with our metrics (precision_at_k, auc), with train items excluded and,
   for comparison with the published numbers, not excluded. Cross-checked with lightfm.evaluation.
2. `movielens`, `online-retail`, `beauty`: ingest with the format preset, `evaluate(..., with_peers=True)`
   with default settings, then `tune(...)` and re-evaluate the hybrid with the winner's settings.

Each dataset is skipped with a message when its folder is absent. Results of earlier runs of other
parts are kept in quality.json, so parts can be run separately:

    .venv/bin/python benchmarks/bench_quality.py                       # everything
    .venv/bin/python benchmarks/bench_quality.py --only beauty --no-tune
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import update_doc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "benchmarks" / "results" / "quality.json"
TOOLS = ROOT.parent / "shared" / "tools"
README = ROOT / "docs" / "quality.md"  # the quality page README.md links to
BIN = Path(sys.executable).parent
# dataset -> (split, peers); the seed preset is compared with the peers that scale to it, as quality.sh does
HARNESS_RUNS: dict[str, tuple[str, str | None]] = {
    "ml-100k": ("temporal", None),
    "online-retail": ("temporal", None),
    "amazon-beauty": ("last", None),
    "seed": ("temporal", "pop,trend,als"),
}
OUT = ROOT / "benchmarks" / "out"

PEER_DATASETS: dict[str, dict] = {
    "movielens": {"folder": "movielens-100k", "fmt": "movielens", "split": {"kind": "temporal", "test_fraction": 0.2}},
    "online-retail": {"folder": "online-retail", "fmt": "online-retail", "split": {"kind": "temporal", "test_fraction": 0.2}},
    "beauty": {"folder": "amazon-beauty", "fmt": "beauty", "split": {"kind": "last"}},
}
MODEL_ORDER = ("random", "popularity", "content", "collaborative", "hybrid", "als", "lightfm-plain", "ease", "itemknn")
PEERS = ("als", "lightfm-plain", "ease", "itemknn")
SLOW_SECONDS = 300.0

# LightFM's examples/movielens/example.ipynb (implicit-feedback section): LightFM(learning_rate=0.05,
# loss="warp") with the library's default 10 components, fit_partial(train, epochs=10); it reports
# test precision@10 0.11 and AUC 0.90, ranking all items (train items not excluded).
LIGHTFM_CONFIGS: dict[str, dict] = {
    "example (10 comp, 10 ep)": {"no_components": 10, "epochs": 10},
    "brief (30 comp, 30 ep)": {"no_components": 30, "epochs": 30},
}
P10_TARGET, AUC_TARGET = 0.10, 0.89


def log(message: str, started: list[float] = [time.perf_counter()]) -> None:  # noqa: B006 (process start)
    print(f"[{time.perf_counter() - started[0]:7.1f}s] {message}", flush=True)


def _fmt(value: float | None, width: int = 7) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    return f"{value:.4f}".rjust(width)


# ---------------------------------------------------------------------------------------------
# Part 1: LightFM's MovieLens-100k example through our plumbing


def _read_ua(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "ts"], dtype=str)
    return pd.DataFrame(
        {
            "customer_id": raw["user"].to_numpy(dtype=object),
            "product_id": raw["item"].to_numpy(dtype=object),
            "type": np.full(len(raw), 2, dtype=np.int8),  # every rating a purchase: one uniform weight
            "timestamp": raw["ts"].astype(np.int64).to_numpy(),
        }
    )


def _pairs_matrix(events: pd.DataFrame, dataset) -> sparse.csr_matrix:
    users = dataset.users.to_internal(events["customer_id"].to_numpy(dtype=object))
    items = dataset.items.to_internal(events["product_id"].to_numpy(dtype=object))
    keep = (users >= 0) & (items >= 0)
    matrix = sparse.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (users[keep], items[keep])), shape=(dataset.n_users, dataset.n_items)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def run_lightfm_example(folder: Path) -> dict:
    """LightFM WARP on ua.base/ua.test via Dataset + LightFMModel, scored with our metrics."""
    from recsys_cli.dataset import Dataset
    from recsys_cli.evaluation.metrics import auc, precision_at_k
    from recsys_cli.models.collaborative import LightFMModel
    from recsys_cli.weighting import WeightingConfig

    train_events, test_events = _read_ua(folder / "ua.base"), _read_ua(folder / "ua.test")
    # All 1,682 movies in the item map (as LightFM's example sizes its matrices by max id).
    item_ids = np.union1d(train_events["product_id"].astype(int), test_events["product_id"].astype(int)).astype(str)
    catalog = pd.DataFrame({"product_id": pd.Series(item_ids, dtype=object)})
    results: dict = {
        "protocol": "ua.base/ua.test, all ratings positive, WARP, learning_rate 0.05, sample weight 1",
        "published": {"precision@10": 0.11, "auc": 0.90, "note": "LightFM example ranks all items (train not excluded)"},
        "targets": {"precision@10": P10_TARGET, "auc": AUC_TARGET},
        "runs": {},
    }
    for weight_name, weight in (("w=1", 1.0), ("w=5 (default scheme)", 5.0)):
        weighting = WeightingConfig(scheme={t: (weight, weight) for t in ("view_product", "add_to_cart", "purchase_item")})
        dataset = Dataset.construct(train_events, catalog, weighting)
        train = _pairs_matrix(train_events, dataset)
        test = _pairs_matrix(test_events, dataset)
        users = np.arange(dataset.n_users, dtype=np.int64)
        has_truth = np.diff(test.indptr) > 0
        for config_name, config in LIGHTFM_CONFIGS.items():
            if weight != 1.0 and not config_name.startswith("brief"):
                continue
            name = f"{config_name}, {weight_name}"
            started = time.perf_counter()
            model = LightFMModel(loss="warp", learning_rate=0.05, num_threads=1, random_state=42, **config).fit(dataset)
            fit_seconds = time.perf_counter() - started
            scores = model.user_vectors @ model.item_vectors.T
            scores[:, ~model._allowed] = -np.inf  # items absent from training: the model cannot rank them
            row: dict = {"fit_seconds": round(fit_seconds, 2), "users": int(has_truth.sum())}
            for label, exclude in (("excluded", train), ("not_excluded", None)):
                ids, _ = model.recommend(users, k=10, exclude=exclude)
                p10 = precision_at_k(ids, test, 10)[has_truth].mean()
                auc_values = auc(scores, test, exclude)
                row[label] = {"precision@10": float(p10), "auc": float(np.nanmean(auc_values[has_truth]))}
            row["cross_check"] = _lightfm_cross_check(dataset, train, test, config, weight)
            results["runs"][name] = row
            log(f"lightfm-ml100k {name}: {row['excluded']} (not excluded {row['not_excluded']})")
    return results


def _lightfm_cross_check(dataset, train: sparse.csr_matrix, test: sparse.csr_matrix, config: dict, weight: float) -> dict:
    """The same fit done directly with lightfm, scored with lightfm.evaluation (train items excluded)."""
    from lightfm import LightFM
    from lightfm.evaluation import auc_score, precision_at_k

    model = LightFM(no_components=config["no_components"], loss="warp", learning_rate=0.05, random_state=42)
    coo = train.tocoo()
    model.fit(
        coo,
        sample_weight=sparse.coo_matrix((np.full(coo.nnz, weight, dtype=np.float32), (coo.row, coo.col)), shape=coo.shape),
        epochs=config["epochs"],
        num_threads=1,
    )
    test_csr = test.tocsr()
    train_csr = train.tocsr()
    return {
        "precision@10_excluded": float(precision_at_k(model, test_csr, train_interactions=train_csr, k=10).mean()),
        "auc_excluded": float(auc_score(model, test_csr, train_interactions=train_csr).mean()),
        "precision@10_not_excluded": float(precision_at_k(model, test_csr, k=10).mean()),
        "auc_not_excluded": float(auc_score(model, test_csr).mean()),
    }


def print_lightfm(results: dict) -> None:
    print("\n== LightFM MovieLens-100k example (ua.base/ua.test) ==")
    print(f"published: P@10 {results['published']['precision@10']}, AUC {results['published']['auc']} (train items not excluded)")
    header = f"{'run':34} {'P@10 ex':>8} {'AUC ex':>8} {'P@10 all':>8} {'AUC all':>8} | {'lfm P@10 ex':>11} {'lfm AUC ex':>10} {'lfm P@10':>8} {'lfm AUC':>8}  {'fit s':>6}"
    print(header)
    for name, row in results["runs"].items():
        cc = row["cross_check"]
        print(
            f"{name:34} {_fmt(row['excluded']['precision@10'], 8)} {_fmt(row['excluded']['auc'], 8)} "
            f"{_fmt(row['not_excluded']['precision@10'], 8)} {_fmt(row['not_excluded']['auc'], 8)} | "
            f"{_fmt(cc['precision@10_excluded'], 11)} {_fmt(cc['auc_excluded'], 10)} "
            f"{_fmt(cc['precision@10_not_excluded'], 8)} {_fmt(cc['auc_not_excluded'], 8)}  {row['fit_seconds']:6.1f}"
        )
        ok = row["excluded"]["precision@10"] >= P10_TARGET and row["excluded"]["auc"] >= AUC_TARGET
        print(f"{'':34} target P@10 >= {P10_TARGET}, AUC >= {AUC_TARGET} (train excluded): {'met' if ok else 'NOT met'}")


# ---------------------------------------------------------------------------------------------
# Part 2: peer tables with the temporal / last-item protocol


def _merge(base: dict, updates: dict) -> dict:
    merged = {section: dict(values) for section, values in base.items()}
    for section, values in updates.items():
        merged.setdefault(section, {}).update(values)
    return merged


def _ndcg_row(model: dict) -> dict:
    segments = model.get("segments", {})
    return {
        "overall": model["overall"].get("ndcg@10"),
        **{seg: segments.get(seg, {}).get("ndcg@10") for seg in ("few", "warm", "cold")},
        "seconds": model.get("seconds"),
    }


def _checks(table: dict, hybrid_key: str) -> dict:
    hybrid = table[hybrid_key]
    peers = {name: table[name] for name in PEERS if name in table}
    out: dict = {}
    for segment in ("overall", "few"):
        values = {n: r[segment] for n, r in peers.items() if r[segment] is not None}
        best = max(values, key=values.get) if values else None
        out[f"hybrid>=best_peer_{segment}"] = None if best is None or hybrid[segment] is None else bool(hybrid[segment] >= values[best])
        out[f"best_peer_{segment}"] = best
    pop = table.get("popularity", {}).get("cold")
    out["hybrid>=popularity_cold"] = None if pop is None or hybrid["cold"] is None else bool(hybrid["cold"] >= pop)
    return out


def run_peer_dataset(name: str, spec: dict, *, do_tune: bool) -> dict:
    from recsys_cli.config import load_settings
    from recsys_cli.data.ingest import ingest
    from recsys_cli.evaluation.runner import evaluate, make_split, tune

    started_all = time.perf_counter()
    record: dict = {"format": spec["fmt"], "split_spec": spec["split"], "notes": []}
    snapshot = ingest(DATASETS / spec["folder"], OUT / name, fmt=spec["fmt"], log=lambda m: log(f"{name}: {m}"))
    events, catalog = snapshot.events(), snapshot.catalog()
    record["dataset"] = snapshot.summary
    split = make_split(events, **spec["split"])
    settings = load_settings(environ={})

    started = time.perf_counter()
    report = evaluate(
        events,
        catalog,
        settings,
        split=split,
        ks=(10, 20),
        with_peers=True,
        progress=lambda m: log(f"{name}: {m}"),
        dataset_summary=snapshot.summary,
    )
    eval_seconds = time.perf_counter() - started
    record["evaluate_seconds"] = round(eval_seconds, 1)
    if eval_seconds > SLOW_SECONDS:
        record["notes"].append(f"evaluation with peers took {eval_seconds:.0f}s (> {SLOW_SECONDS:.0f}s)")
    record["split"] = report["split"]
    record["training_seconds"] = report["training_seconds"]
    record["default"] = report["models"]
    table = {m: _ndcg_row(report["models"][m]) for m in MODEL_ORDER if m in report["models"]}
    if "ease" not in report["models"]:
        record["notes"].append("ease not run: items with interactions exceed ease.max_items")

    if do_tune:
        started = time.perf_counter()
        winner, trials = tune(events, catalog, settings, split=split, k=10, progress=lambda m: log(f"{name}: {m}"))
        record["tune_seconds"] = round(time.perf_counter() - started, 1)
        record["tune"] = {"winner": winner, "trials": trials}
        tuned_settings = load_settings(environ={}, overrides=_merge(settings.to_dict(), winner))
        started = time.perf_counter()
        tuned = evaluate(
            events,
            catalog,
            tuned_settings,
            split=split,
            ks=(10, 20),
            with_peers=False,
            progress=lambda m: log(f"{name} (tuned): {m}"),
            dataset_summary=snapshot.summary,
        )
        record["tuned_evaluate_seconds"] = round(time.perf_counter() - started, 1)
        record["tuned"] = {
            "settings": tuned_settings.to_dict(),
            "hybrid": tuned["models"]["hybrid"],
            "collaborative": tuned["models"]["collaborative"],
        }
        table["hybrid (tuned)"] = _ndcg_row(tuned["models"]["hybrid"])
    record["ndcg@10"] = table
    record["checks"] = {"default": _checks(table, "hybrid")}
    if "hybrid (tuned)" in table:
        record["checks"]["tuned"] = _checks(table, "hybrid (tuned)")
    record["seconds"] = round(time.perf_counter() - started_all, 1)
    return record


def print_peer_table(name: str, record: dict) -> None:
    split = record["split"]
    print(f"\n== {name} ({record['format']}, split {split['kind']}; truth users {split['truth_users']}) ==")
    users = {seg: v.get("users") for seg, v in record["default"]["hybrid"].get("segments", {}).items()}
    print(f"segment users (default warm_min_products): {users}")
    print(f"{'model':16} {'overall':>8} {'few':>8} {'warm':>8} {'cold':>8} {'seconds':>8}")
    for model, row in record["ndcg@10"].items():
        print(
            f"{model:16} {_fmt(row['overall'], 8)} {_fmt(row['few'], 8)} {_fmt(row['warm'], 8)} {_fmt(row['cold'], 8)} {row['seconds']:8.1f}"
        )
    for which, checks in record["checks"].items():
        print(
            f"{which:8} hybrid >= best peer overall ({checks['best_peer_overall']}): {checks['hybrid>=best_peer_overall']}; "
            f"few ({checks['best_peer_few']}): {checks['hybrid>=best_peer_few']}; >= popularity cold: {checks['hybrid>=popularity_cold']}"
        )
    if "tune" in record:
        print(f"tuned winner: {json.dumps(record['tune']['winner'])}")
    for note in record["notes"]:
        print(f"note: {note}")


# --- the harness ------------------------------------------------------------------------------


def run_harness(name: str, split: str, peers: str | None) -> dict:
    """peer_eval.py on one dataset; the project's row, the best peer, and what `train` chose."""
    from recsys_cli.selection import winners

    work = Path(tempfile.mkdtemp(prefix=f"harness-{name}-"))
    try:
        data = work / "data"
        if name == "seed":
            subprocess.run(
                [str(BIN / "recsys"), "generate", "--preset", "seed", "--seed", "42", "--out", str(data)], check=True, capture_output=True
            )
        else:
            subprocess.run([sys.executable, str(TOOLS / "canonical.py"), name, str(data)], check=True, capture_output=True)
        command = [sys.executable, str(TOOLS / "peer_eval.py"), str(data), "--split", split, "--project", str(BIN / "recsys")]
        command += ["--json", str(work / "table.json")] + (["--peers", peers] if peers else [])
        # TMPDIR: peer_eval trains the project in a temporary folder; keeping it here lets us read the manifest
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(work)}
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"peer_eval failed: {run.stderr[-2000:]}")
        log(run.stdout[run.stdout.find(str(data)) :].strip())
        table = json.loads((work / "table.json").read_text())
        manifest = json.loads(Path(glob.glob(str(work / "peer_eval_*" / "artifacts" / "versions" / "*" / "manifest.json"))[0]).read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    project = table.pop("project")
    best = max(table, key=lambda peer: table[peer]["all"]["ndcg"])
    return {
        "split": split,
        "project": project,
        "peers": table,
        "best_peer": best,
        "ratio": project["all"]["ndcg"] / table[best]["all"]["ndcg"],
        "ratio_to_popularity": project["all"]["ndcg"] / table["pop"]["all"]["ndcg"],
        "chosen": winners(manifest["selection"]),
        "training_seconds": manifest["training_seconds"],
    }


def harness_table(records: dict) -> str:
    """The README's quality table, in markdown."""
    lines = [
        "| dataset | recsys NDCG@10 | best peer | ratio | x popularity | cold / few / warm (recsys) | popularity cold / few / warm | train s (selection s) | what `train` chose |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, record in records.items():
        if "project" not in record:
            continue
        project, peers = record["project"], record["peers"]
        segments = " / ".join(f"{project[s]['ndcg']:.3f}" if s in project else "-" for s in ("cold", "few", "warm"))
        popular = " / ".join(f"{peers['pop'][s]['ndcg']:.3f}" if s in peers["pop"] else "-" for s in ("cold", "few", "warm"))
        chosen = "; ".join(f"{row['segment']}: {row['chosen']}" for row in record["chosen"])
        seconds = record["training_seconds"]
        lines.append(
            f"| {name} ({record['split']}) | {project['all']['ndcg']:.4f} | {record['best_peer']} {peers[record['best_peer']]['all']['ndcg']:.4f} "
            f"| {record['ratio']:.2f}x | {record['ratio_to_popularity']:.2f}x | {segments} | {popular} "
            f"| {seconds.get('total', sum(seconds.values())):.0f} ({seconds.get('selection', 0):.0f}) | {chosen} |"
        )
    return "\n".join(lines)


def update_readme(table: str, generated: str) -> None:
    update_doc(README, "quality-table", table, "bench_quality.py")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", default="", help="comma-separated parts: harness (default), lightfm-ml100k, movielens, online-retail, beauty"
    )
    parser.add_argument("--no-tune", action="store_true", help="skip tune() and the tuned re-evaluation")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()] or ["harness"]

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("datasets", {})
    errors = 0
    started = time.perf_counter()
    for part in parts:
        part_started = time.perf_counter()
        try:
            if part == "harness":
                if not (TOOLS / "peer_eval.py").exists():
                    print(f"skipping {part}: {TOOLS / 'peer_eval.py'} not found")
                    continue
                record = {}
                for name, (split, peers) in HARNESS_RUNS.items():
                    if name != "seed" and not DATASETS.is_dir():
                        print(f"skipping {name}: {DATASETS} not found")
                        continue
                    log(f"harness: {name} ({split})")
                    record[name] = run_harness(name, split, peers)
                table = harness_table(record)
                print(table)
                update_readme(table, pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d"))
            elif part == "lightfm-ml100k":
                folder = DATASETS / "movielens-100k"
                if not (folder / "ua.base").exists() or not (folder / "ua.test").exists():
                    print(f"skipping {part}: {folder}/ua.base or ua.test not found")
                    continue
                record = run_lightfm_example(folder)
                print_lightfm(record)
            elif part in PEER_DATASETS:
                spec = PEER_DATASETS[part]
                if not (DATASETS / spec["folder"]).is_dir():
                    print(f"skipping {part}: {DATASETS / spec['folder']} not found")
                    continue
                record = run_peer_dataset(part, spec, do_tune=not args.no_tune)
                print_peer_table(part, record)
            else:
                print(f"unknown part {part!r}", file=sys.stderr)
                return 2
        except Exception as error:  # report and go on with the next dataset
            errors += 1
            record = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
            print(f"\n!! {part} failed:\n{record['traceback']}", file=sys.stderr)
        record["wall_seconds"] = round(time.perf_counter() - part_started, 1)
        results["datasets"][part] = record
        results["generated_at"] = pd.Timestamp.now(tz="UTC").isoformat()
        RESULTS.write_text(json.dumps(_finite(results), indent=2, default=_json_default, allow_nan=False) + "\n")
    print(f"\ntotal {time.perf_counter() - started:.1f}s; results in {RESULTS.relative_to(ROOT)}")
    return 1 if errors else 0


def _finite(value):
    """NaN / inf -> None, so quality.json is strict JSON."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
