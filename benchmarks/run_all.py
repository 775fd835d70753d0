"""Run every benchmark (what `make bench` runs) and summarise them against their targets.

Runs bench_ingest.py, bench_train.py and, when present, bench_server.py, bench_http.py (wrk,
which `make bench` installs first) and bench_quality.py, each as a subprocess; then collects
benchmarks/results/*.json into benchmarks/results.json with the machine info and prints one
table marking each target met or missed.

Usage: python benchmarks/run_all.py [--only ingest,train] [--no-run]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, ROOT, machine, metric_rows, print_table  # noqa: E402

HERE = ROOT / "benchmarks"
SCRIPTS = ("bench_ingest.py", "bench_train.py", "bench_recommend.py", "bench_server.py", "bench_http.py", "bench_quality.py")
COMBINED = HERE / "results.json"


def run(script: Path) -> dict:
    started = time.perf_counter()
    code = subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode
    return {"script": script.name, "exit_code": code, "seconds": round(time.perf_counter() - started, 1)}


def collect() -> dict[str, dict]:
    found = {}
    for path in sorted(RESULTS.glob("*.json")):
        try:
            found[path.stem] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            found[path.stem] = {"error": f"unreadable: {error}"}
    return found


def summary_rows(results: dict[str, dict]) -> list[dict]:
    rows = []
    for name, data in results.items():
        metrics = data.get("metrics")
        if not isinstance(metrics, list) or not all(isinstance(m, dict) and "name" in m for m in metrics):
            rows.append(
                {
                    "benchmark": name,
                    "metric": "(no metrics list in the common shape)",
                    "value": "-",
                    "unit": "",
                    "target": "-",
                    "status": "",
                    "how": "",
                }
            )
            continue
        rows.extend({"benchmark": name, **row} for row in metric_rows(metrics))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated benchmark names to run (e.g. ingest,train)")
    parser.add_argument("--no-run", action="store_true", help="only collect the existing results")
    args = parser.parse_args()

    runs = []
    if not args.no_run:
        wanted = {f"bench_{n.strip()}.py" for n in args.only.split(",")} if args.only else None
        for name in SCRIPTS:
            script = HERE / name
            if script.exists() and (wanted is None or name in wanted):
                print(f"== {name}", flush=True)
                runs.append(run(script))

    results = collect()
    combined = {"machine": machine(), "runs": runs, "benchmarks": results}
    COMBINED.write_text(json.dumps(combined, indent=2, default=str) + "\n", encoding="utf-8")

    rows = summary_rows(results)
    print_table("recsys benchmarks: measured vs target", rows)
    missed = sum(r["status"] == "MISSED" for r in rows)
    met = sum(r["status"] == "met" for r in rows)
    failed = [r["script"] for r in runs if r["exit_code"] != 0]
    print(f"{met} targets met, {missed} missed; wrote {COMBINED}")
    if failed:
        print(f"failed to run: {', '.join(failed)}")
    return 1 if failed else 0  # a missed target is a finding, not a failure


if __name__ == "__main__":
    sys.exit(main())
