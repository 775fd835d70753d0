"""Running the REST app in production: granian's process model and configuration, and logging.

granian (Rust: tokio + hyper) owns the listening socket and the worker processes (respawned if
one dies); connections are handled asynchronously, so idle or slow clients cost no Python thread,
request headers must arrive within HEADER_TIMEOUT_MS, and a body over MAX_BODY is refused from its
Content-Length before it is read. Each worker builds its own app with `app_from_environment` and
runs Flask on `threads` blocking threads. Metrics, `/admin/reload` and the poll thread are per
worker; training jobs are kept in files (and a lock file) so any worker can report them.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider
from threadpoolctl import threadpool_limits

from . import artifacts as artifact_store
from .errors import ArtifactError, InputError
from .live import open_live_store

if TYPE_CHECKING:
    from flask import Flask

SERVE_CONFIG_ENV = "RECSYS_SERVE_CONFIG"
HEADER_TIMEOUT_MS = 10_000
"""A connection must finish sending its request headers within this; slow-header clients are cut off."""
BACKLOG = 2048
CONNECTIONS_PER_WORKER = 4096
"""granian's backpressure: connections a worker serves at once, idle ones included (it is not a
Python thread count). Beyond it new connections wait, so it is set well above what idle and slow
clients can hold within one HEADER_TIMEOUT_MS."""
GRANIAN_LOGGING = {  # granian's own messages (worker exits, respawns) as logfmt lines on stderr, like ours
    "formatters": {"logfmt": {"()": "recsys_cli.serving.LogfmtFormatter"}},
    "handlers": {"console": {"formatter": "logfmt", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"_granian": {"handlers": ["console"], "level": "WARNING", "propagate": False}},
}

log = logging.getLogger("recsys.server")


class LogfmtFormatter(logging.Formatter):
    """One logfmt line per record: ts, level, logger, pid, then the message's own key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"ts={stamp} level={record.levelname.lower()} logger={record.name} pid={record.process} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO, *, access_log: bool = True) -> None:
    """One logfmt line per record on stderr, for recsys.* and granian; the access log (one line per
    request, logger recsys.access) only when `access_log`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    for name in ("recsys", "granian"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("recsys.access").setLevel(logging.NOTSET if access_log else logging.WARNING)


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own heap arena; with a thread pool serving large numpy
    temporaries the arenas fragment and a worker's memory creeps up. Two arenas keep it flat."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def serve(
    artifacts: Path,
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    threads: int = 2,
    poll_seconds: float = 5.0,
    live_store: str | None = None,
    settings: dict | None = None,
    access_log: bool = True,
) -> None:
    """Serve the API with granian until SIGTERM or SIGINT (see the module's docstring).

    `access_log=False` drops the per-request log line (errors are still logged): the line costs a
    fast request about a sixth of its time, so a server behind a proxy that logs may leave it out."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.server import Server

    if workers < 1 or threads < 1:
        raise InputError(f"workers and threads must be at least 1, got {workers} and {threads}")
    # Check the artifacts before starting workers: a clear error instead of N dying workers.
    name = artifact_store.current_version(artifacts)
    if name is None:
        raise ArtifactError(f"no trained model in {artifacts}: run `recsys train --data DATA_DIR --artifacts {artifacts}` first")
    artifact_store.verify(artifact_store.version_path(artifacts, name))
    open_live_store(data, live_store)  # a malformed --live-store URL (or psycopg missing) fails here, not in every worker
    os.environ[SERVE_CONFIG_ENV] = json.dumps(
        {
            "ARTIFACTS": str(artifacts),
            "DATA": str(data),
            "POLL_SECONDS": poll_seconds,
            "LIVE_STORE": live_store,
            "SETTINGS": settings,
            "ACCESS_LOG": access_log,
        }
    )
    configure_logging()
    log.info("serving on http://%s:%s workers=%d threads=%d access_log=%s", host, port, workers, threads, "on" if access_log else "off")
    Server(
        "recsys_cli.serving:app_from_environment",
        factory=True,
        interface=Interfaces.WSGI,
        address=host,
        port=port,
        workers=workers,
        blocking_threads=threads,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=HEADER_TIMEOUT_MS),
        backlog=BACKLOG,
        backpressure=CONNECTIONS_PER_WORKER,
        websockets=False,
        respawn_failed_workers=True,
        respawn_interval=1.0,
        workers_kill_timeout=15,
        log_level="warning",
        log_dictconfig=GRANIAN_LOGGING,
    ).serve()


def app_from_environment() -> Flask:
    """The app one granian worker serves, configured by `serve` through RECSYS_SERVE_CONFIG."""
    from .server import create_app

    raw = os.environ.get(SERVE_CONFIG_ENV)
    if not raw:
        raise InputError(f"{SERVE_CONFIG_ENV} is not set; start the server with `recsys serve`")
    config = json.loads(raw)
    configure_logging(access_log=config.pop("ACCESS_LOG", True))
    _limit_malloc_arenas()
    # workers already use the cores: BLAS threads inside a request only contend with them (a warm
    # request took 24 ms at p50 with OpenBLAS's own threads on a busy 2-core machine, 1.9 ms without)
    threadpool_limits(1)
    started = time.perf_counter()
    app = create_app(config)
    log.info("model loaded version=%s seconds=%.2f", app.extensions["recsys"].service.version, time.perf_counter() - started)
    return app


class FastJSON(DefaultJSONProvider):
    """Flask's JSON through orjson: ~2 us instead of ~19 for a recommendation (7% of a request)."""

    def _encode(self, obj: Any, **kwargs: Any) -> bytes | str:
        try:
            return orjson.dumps(obj, default=self.default)
        except TypeError:  # what orjson cannot write (an integer past 64 bits) goes the standard way
            return super().dumps(obj, **kwargs)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        encoded = self._encode(obj, **kwargs)
        return encoded.decode() if isinstance(encoded, bytes) else encoded

    def response(self, *args: Any, **kwargs: Any) -> Response:
        # the body as orjson's bytes: no decode to str and re-encode by the response
        return self._app.response_class(self._encode(self._prepare_response_obj(args, kwargs)), mimetype=self.mimetype)
