"""The server under faults: every event acknowledged with a 2xx survives a SIGKILL of the whole
`recsys serve` process group, and concurrent writers in several processes wait for each other
instead of failing with "database is locked"."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from recsys_cli.data.schema import EVENT_CODE, EVENT_TYPES
from recsys_cli.errors import LiveStoreError
from recsys_cli.live import LiveStore
from tests import servers

from ..conftest import train_copy

ROOT = Path(__file__).resolve().parents[2]


# --- a real `recsys serve` ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    return train_copy(tmp_path_factory.mktemp("server-faults"), {"RECSYS_ROUTER__COLLABORATIVE": "itemknn"})


def start_serve(artifacts: Path, data: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """`recsys serve --workers 2` in its own process group; returns once /health answers."""
    port = servers.free_port()
    return servers.start(servers.serve_command(artifacts, data, port, "--workers", "2", "--threads", "4"), log, port)


def kill_while_posting(artifacts: Path, data: Path, log: Path, *, run: int, events: int, seed: int) -> dict:
    """Post `events` unique events (batches of 1-20 from 4 threads), SIGKILL the process group at a seeded
    moment, restart, and compare what was acknowledged with what the live store holds."""
    rng = random.Random(seed)
    kill_after = rng.randint(events // 10, events * 9 // 10)  # events sent before the kill
    process, base = start_serve(artifacts, data, log)
    sent = [0]
    acknowledged: list[tuple[str, str, int, int]] = []
    lock = threading.Lock()
    killed = threading.Event()

    def poster(thread: int) -> None:
        local = random.Random(seed * 100 + thread)
        session, seq = requests.Session(), 0
        while not killed.is_set():
            with lock:
                size = min(local.randint(1, 20), events - sent[0])
                if size <= 0:
                    return
                sent[0] += size
            batch = []
            for _ in range(size):
                seq += 1
                kind = EVENT_TYPES[seq % len(EVENT_TYPES)]
                batch.append(
                    {
                        "customer_id": f"kill-{run}-{thread}-{seq}",
                        "product_id": f"item/{run}/{thread}/{seq}",
                        "type": kind,
                        "timestamp": 1_600_000_000 + seq,
                    }
                )
            try:
                response = session.post(f"{base}/events", json=batch, timeout=30)
            except requests.RequestException:
                continue  # died with the server: not acknowledged
            if 200 <= response.status_code < 300:
                with lock:
                    acknowledged.extend((e["customer_id"], e["product_id"], EVENT_CODE[e["type"]], e["timestamp"]) for e in batch)
            else:
                assert response.status_code >= 500 or killed.is_set(), response.text

    def killer() -> None:
        while sent[0] < kill_after and any(t.is_alive() for t in threads):
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.02))
        os.killpg(process.pid, signal.SIGKILL)
        killed.set()

    threads = [threading.Thread(target=poster, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    assassin = threading.Thread(target=killer, daemon=True)
    assassin.start()
    assassin.join(timeout=120)
    for thread in threads:
        thread.join(timeout=60)
    process.wait(timeout=10)

    process, base = start_serve(artifacts, data, log)  # the restarted server opens the store the kill left behind
    try:
        live_events = requests.get(f"{base}/health", timeout=10).json()["live_events"]
        if acknowledged:
            customer = acknowledged[-1][0]
            body = requests.get(f"{base}/recommendations/{customer}?n=3", timeout=10).json()
            assert body["customer_id"] == customer and body["items"]
    finally:
        servers.stop(process)
    frame = LiveStore.in_folder(data).to_frame()
    mine = frame[frame["customer_id"].str.startswith(f"kill-{run}-")]
    stored = list(zip(mine["customer_id"], mine["product_id"], mine["type"].astype(int), mine["timestamp"].astype(int), strict=True))
    missing = set(acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert len(stored) == len(set(stored)), "an event was stored twice"
    assert live_events == len(frame)
    return {
        "run": run,
        "kill_after_sent": kill_after,
        "sent": sent[0],
        "acknowledged": len(acknowledged),
        "recovered": len(set(acknowledged) & set(stored)),
        "stored_unacknowledged": len(stored) - len(acknowledged),
    }


def test_acknowledged_events_survive_sigkill(trained, tmp_path):
    data = shutil.copytree(trained[0], tmp_path / "data")
    outcome = kill_while_posting(trained[1], data, tmp_path / "serve.log", run=0, events=200, seed=1)
    print(f"\nSIGKILL: {outcome}")
    assert outcome["acknowledged"] > 0 and outcome["recovered"] == outcome["acknowledged"]


@pytest.mark.slow
def test_acknowledged_events_survive_repeated_sigkills(trained, tmp_path):
    data = shutil.copytree(trained[0], tmp_path / "data")
    outcomes = [kill_while_posting(trained[1], data, tmp_path / "serve.log", run=run, events=1000, seed=10 + run) for run in range(1, 4)]
    for outcome in outcomes:
        print(f"\nSIGKILL: {outcome}")
        assert outcome["acknowledged"] > 0 and outcome["recovered"] == outcome["acknowledged"]
    assert LiveStore.in_folder(data).count() >= sum(o["acknowledged"] for o in outcomes)


# --- concurrent writers in several processes ---------------------------------------------------------


def _append_in_a_loop(path: str, writer: int, batches: int, start: multiprocessing.Event, errors: multiprocessing.Queue) -> None:
    start.wait()
    store = LiveStore(Path(path))
    problems = []
    for i in range(batches):
        if i % 10 == 0:  # fresh stores and connections too, as a restarted worker has
            store.close()
            store = LiveStore(Path(path))
        try:
            store.append([(f"w{writer}-{i}", f"p{j}", 1, i) for j in range(1 + i % 20)])
        except LiveStoreError as error:
            problems.append(str(error))
    errors.put(problems)


def test_two_processes_appending_in_a_tight_loop_never_fail(tmp_path):
    path = tmp_path / "live.sqlite"
    context = multiprocessing.get_context("fork")
    start, errors = context.Event(), context.Queue()
    writers = [context.Process(target=_append_in_a_loop, args=(str(path), n, 300, start, errors)) for n in range(2)]
    for writer in writers:
        writer.start()
    start.set()
    problems = [p for _ in writers for p in errors.get(timeout=120)]
    for writer in writers:
        writer.join(timeout=30)
    assert problems == []
    assert LiveStore(path).count() == 2 * sum(1 + i % 20 for i in range(300))


def test_a_new_store_waits_for_a_writer_holding_the_lock(tmp_path):
    """Switching a file to WAL is refused at once (no busy handler) while another connection writes: the store retries."""
    path = tmp_path / "live.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE unrelated (x)")  # a database in rollback-journal mode, as before the first LiveStore
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO unrelated VALUES (1)")
    releaser = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    releaser.start()
    started = time.monotonic()
    try:
        assert LiveStore(path).append([("c", "p", 1, 1)]) == 1  # before the fix: LiveStoreError "database is locked" at once
    finally:
        releaser.join()
        other.close()
    assert time.monotonic() - started >= 0.4
    assert LiveStore(path).to_frame().values.tolist() == [["c", "p", 1, 1]]


# --- load with model publishes (a shorter benchmarks/bench_load.py) -----------------------------------


@pytest.mark.slow
@pytest.mark.reliability
def test_load_with_a_publish_has_no_failures(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_load
        import bench_server
        import common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    for module in (bench_load, bench_server, common):  # seed data, models, live store and log in a temporary folder, not benchmarks/out
        monkeypatch.setattr(module, "OUT", tmp_path)
    result = bench_load.run(seconds=20, connections=16, publishes=1)
    print(
        f"\nload: {result['requests_per_s']} req/s, p99 {result['overall']['p99_ms']} ms, statuses {result['statuses']}, "
        f"RSS growth {result['max_rss_growth_pct']}%"
    )
    assert result["server_errors"] == 0 and result["failures"] == 0, result["failure_examples"]
    assert result["all_versions_observed"], (result["versions_expected"], result["versions_observed"])
    assert result["requests"] > 500
