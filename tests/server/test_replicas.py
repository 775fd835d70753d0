"""Two `recsys serve` replicas on one PostgreSQL live store: an event taken by one is seen by the
other, and killing either with SIGKILL loses no event it acknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from recsys_cli.live import open_live_store

from ..servers import wait_ready

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Replica:
    """One `recsys serve` process (its own process group), stopped or killed by the test."""

    def __init__(self, artifacts: Path, data: Path, live_store: str, log: Path):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "recsys_cli.cli", "serve", "--artifacts", str(artifacts), "--data", str(data)]
        command += ["--port", str(self.port), "--threads", "4", "--live-store", live_store]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        wait_ready(self.base, self.process, self.log)  # refusals and read timeouts alike are retried until a deadline

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=15)

    def recommend(self, customer: str) -> dict:
        return requests.get(f"{self.base}/recommendations/{customer}?n=5", timeout=10).json()


@pytest.fixture
def replicas(trained, tmp_path, postgres_url):
    """Two replicas serving the same artifacts, each with its own data folder, sharing one PostgreSQL live store."""
    _, artifacts = trained
    started = []
    try:
        for name in ("a", "b"):
            data = tmp_path / f"data-{name}"  # no shared folder: the only shared state is the database
            data.mkdir()
            started.append(Replica(artifacts, data, postgres_url, tmp_path / f"{name}.log"))
        for replica in started:
            replica.wait_ready()
        yield started[0], started[1], postgres_url
    finally:
        for replica in started:
            replica.kill(signal.SIGTERM if replica.process.poll() is None else signal.SIGKILL)


def test_an_event_posted_to_one_replica_changes_the_next_answer_of_the_other(replicas):
    a, b, _ = replicas
    before = b.recommend("replica-visitor-1")
    assert before["source"] == "popularity"
    product = before["items"][0]["product_id"]
    response = requests.post(
        f"{a.base}/events", json={"customer_id": "replica-visitor-1", "product_id": product, "type": "purchase_item"}, timeout=10
    )
    assert response.status_code == 201
    after = b.recommend("replica-visitor-1")
    assert after["source"] != "popularity"  # one product: the few-products model serves them now
    assert product not in [item["product_id"] for item in after["items"]]  # and the purchase is excluded
    assert requests.get(f"{a.base}/health", timeout=5).json()["live_events"] == 1
    assert requests.get(f"{b.base}/health", timeout=5).json()["live_events"] == 1


def test_sigkill_of_either_replica_loses_no_acknowledged_event(replicas):
    a, b, url = replicas
    acknowledged: list[str] = []
    lock = threading.Lock()

    def post(replica: Replica, worker: str, stop: threading.Event) -> None:
        session = requests.Session()
        for i in range(1_000_000):
            if stop.is_set():
                return
            customer = f"kill-{worker}-{i}"
            event = {"customer_id": customer, "product_id": "10117", "type": "view_product"}
            try:
                response = session.post(f"{replica.base}/events", json=event, timeout=5)
            except requests.RequestException:
                return  # the replica died mid-request: not acknowledged, nothing to check
            if response.status_code == 201:
                with lock:
                    acknowledged.append(customer)

    def traffic_then_kill(victim: Replica, targets: tuple[Replica, ...]) -> None:
        stop = threading.Event()
        threads = [threading.Thread(target=post, args=(t, f"{t.port}-{w}-{len(acknowledged)}", stop)) for t in targets for w in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        victim.kill(signal.SIGKILL)  # mid-traffic
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    traffic_then_kill(a, (a, b))
    # the survivor answers with the events the dead replica acknowledged
    from_a = [customer for customer in acknowledged if customer.startswith(f"kill-{a.port}-")]
    assert from_a and b.recommend(from_a[-1])["source"] != "popularity"
    traffic_then_kill(b, (b,))

    stored = set(open_live_store(Path("."), url).to_frame()["customer_id"])
    assert len(acknowledged) > 50
    missing = [customer for customer in acknowledged if customer not in stored]
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged events lost"
