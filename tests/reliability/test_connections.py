"""Connection abuse against a real 2-worker server: idle and slow-header clients must not stop it.

The issue's finding: 205 idle TCP connections stopped the waitress server for about two minutes and
trickled header bytes kept it down. Here 500 idle connections and 50 that trickle one header line
every half second are held open (a closed one is reopened at once) for HOLD_SECONDS, while /health
is asked every 0.25 s on a fresh connection and must answer within 1 s every time.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from tests import servers
from tests.results import write_results

IDLE, SLOW, HOLD_SECONDS = 500, 50, 30.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    from tests.conftest import train_copy

    return train_copy(tmp_path_factory.mktemp("connections"), {"RECSYS_ROUTER__COLLABORATIVE": "itemknn"})


@pytest.fixture
def server(trained, tmp_path):
    data, artifacts = trained
    port = servers.free_port()
    process, _ = servers.start(
        servers.serve_command(artifacts, data, port, "--workers", "2", "--threads", "4"), tmp_path / "serve.log", port
    )
    try:
        yield port
    finally:
        servers.stop(process)


def _open(port: int, first: bytes = b"") -> socket.socket | None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        if first:
            sock.sendall(first)
        sock.setblocking(False)
        return sock
    except OSError:
        return None


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(4096) == b""  # the server hung up (a timeout answer is read and dropped)
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.reliability
def test_health_answers_within_a_second_while_550_connections_abuse_the_server(server):
    port = server
    idle = [_open(port) for _ in range(IDLE)]
    slow = [_open(port, b"GET /health HTTP/1.1\r\nHost: x\r\n") for _ in range(SLOW)]
    latencies: list[float] = []
    reopened = 0
    started = time.monotonic()
    next_trickle = started
    while time.monotonic() - started < HOLD_SECONDS:  # bounded: HOLD_SECONDS, loopback only
        if time.monotonic() >= next_trickle:
            for group, first in ((idle, b""), (slow, b"GET /health HTTP/1.1\r\nHost: x\r\n")):
                for i, sock in enumerate(group):
                    if sock is None or _closed(sock):
                        if sock is not None:
                            sock.close()
                        group[i] = _open(port, first)
                        reopened += 1
                    elif group is slow:
                        try:
                            sock.send(b"X-Slow: 1\r\n")
                        except OSError:
                            pass
            next_trickle = time.monotonic() + 0.5
        asked = time.monotonic()
        response = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
        latencies.append(time.monotonic() - asked)
        assert response.status_code == 200
        time.sleep(0.25)
    held = sum(sock is not None and not _closed(sock) for sock in idle + slow)
    for sock in idle + slow:
        if sock is not None:
            sock.close()
    latencies.sort()
    figures = {
        "idle": IDLE,
        "slow_header": SLOW,
        "hold_seconds": HOLD_SECONDS,
        "health_requests": len(latencies),
        "health_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "health_max_ms": round(latencies[-1] * 1000, 2),
        "connections_reopened": reopened,
        "open_at_end": held,
    }
    write_results("connections.json", figures)
    print(figures)
    assert latencies[-1] < 1.0, figures
    assert held >= (IDLE + SLOW) * 0.9, figures  # the abuse really was held open to the end
