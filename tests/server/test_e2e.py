"""End to end: a real granian server with two workers, traffic from four threads, and a new model published mid-traffic."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections import Counter

import pytest
import requests

from recsys_cli import artifacts as artifact_store
from recsys_cli.config import load_settings
from recsys_cli.training import train
from tests import servers

from .conftest import copy_artifacts


@pytest.fixture
def server(trained, tmp_path):
    """(base url, artifacts, data, stderr log path) of a running server; always stopped afterwards."""
    data, original = trained
    artifacts = copy_artifacts(original, tmp_path / "artifacts")
    port = servers.free_port()
    log_path = tmp_path / "server.log"
    code = (
        "from pathlib import Path; from recsys_cli.server import serve; "
        f"serve(Path({str(artifacts)!r}), Path({str(data)!r}), port={port}, workers=2, threads=4, poll_seconds=0.3)"
    )
    process, base = servers.start([sys.executable, "-c", code], log_path, port)
    try:
        yield base, artifacts, data, log_path, process
    finally:
        servers.stop(process)


@pytest.mark.slow
def test_traffic_survives_a_model_swap(server):
    base, artifacts, data, log_path, process = server
    old = requests.get(f"{base}/health", timeout=10).json()["model_version"]
    stop = threading.Event()
    failures: list[str] = []
    versions: list[tuple[float, str]] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def client(worker: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                if i % 10 == 0:
                    event = {"customer_id": f"e2e-{worker}", "product_id": "10117", "type": "view_product"}
                    response = session.post(f"{base}/events", json=event, timeout=10)
                    ok = response.status_code == 201
                elif i % 5 == 0:
                    response = session.get(f"{base}/products/10117/similar?n=5", timeout=10)
                    ok = response.status_code == 200 and len(response.json()["items"]) == 5
                else:
                    customer = ("971967", "891203", f"e2e-{worker}", f"unknown-{i}")[i % 4]
                    response = session.get(f"{base}/recommendations/{customer}?n=10", timeout=10)
                    body = response.json()
                    ok = response.status_code == 200 and len(body["items"]) == 10
                    if ok:
                        with lock:
                            versions.append((time.monotonic(), body["model_version"]))
                with lock:
                    statuses[response.status_code] += 1
                if not ok:
                    failures.append(f"{response.status_code} {response.text[:200]}")
            except Exception as error:  # a refused connection or a timeout is a failure too
                failures.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        outcome = train(data, artifacts, load_settings(environ={}, overrides={"lightfm": {"epochs": 3}}))
        new = outcome.version
        assert new != old and artifact_store.current_version(artifacts) == new
        deadline = time.monotonic() + 60  # generous: the swap is quick, a busy machine is not
        streak = 0
        while streak < 20:  # fresh connections land on either worker: 20 answers in a row from the new model
            health = requests.get(f"{base}/health", timeout=10).json()
            streak = streak + 1 if health["model_version"] == new else 0
            assert time.monotonic() < deadline, f"new version not served by every worker: {health}"
            time.sleep(0.05)
        swapped = time.monotonic()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert failures == [], failures[:5]
    served = Counter(version for _, version in versions)
    assert served[old] > 0 and served[new] > 0, served
    assert {version for at, version in versions if at > swapped} == {new}
    assert sum(statuses.values()) > 100 and set(statuses) <= {200, 201}, statuses

    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    log = log_path.read_text()
    assert "model reloaded" in log and "method=GET path=/health status=200 ms=" in log
    assert "Traceback" not in log, log[-3000:]


def test_an_oversized_body_is_refused_from_its_content_length_before_it_is_sent(server):
    base, *_ = server
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n")
        started = time.monotonic()
        answer = sock.recv(4096)  # not one byte of the 200 MB body was sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - started < 1
    assert requests.get(f"{base}/health", timeout=2).status_code == 200
