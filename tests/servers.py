"""Real servers for tests: a free port, starting a server process, waiting until it answers, stopping it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

READY_SECONDS = 120.0
"""How long a server may take to answer /health with a 200: generous, a loaded 2-core machine is slow to start workers."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(artifacts: Path, data: Path, port: int, *options: str) -> list[str]:
    """`recsys serve` on `port` (with extra options) as a command line."""
    return [
        sys.executable,
        "-m",
        "recsys_cli.cli",
        "serve",
        "--artifacts",
        str(artifacts),
        "--data",
        str(data),
        "--port",
        str(port),
        *options,
    ]


def start(command: list[str], log: Path, port: int) -> tuple[subprocess.Popen, str]:
    """Run `command` in its own process group with output appended to `log`; (process, base url) once /health is 200."""
    with open(log, "ab") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
    except BaseException:
        stop(process)
        raise
    return process, base


def wait_ready(base: str, process: subprocess.Popen, log: Path, seconds: float = READY_SECONDS) -> None:
    """Poll `base`/health until a 200; a refused connection, a read timeout or a 5xx is retried until the overall deadline."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, "server exited\n" + log.read_text(errors="replace")[-3000:]
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"server not ready after {seconds:.0f} s\n" + log.read_text(errors="replace")[-3000:]
        try:
            if requests.get(f"{base}/health", timeout=min(5.0, max(remaining, 0.1))).status_code == 200:
                return
        except requests.RequestException:  # ConnectionError (not listening yet) and Timeout (busy machine) alike
            pass
        time.sleep(0.1)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    """Send `sig` to the server's process group and wait (SIGKILL after 20 s); its exit code."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    return process.returncode
