"""The REST server: `create_app(config)` builds a Flask app whose routes are as thin as the CLI.

Per-app state lives in `app.extensions["recsys"]` (a `ServerState`); nothing happens at import.

Hot swaps: each worker process polls `ARTIFACTS/current` every POLL_SECONDS in a daemon thread
started on its first request. A new version is loaded (and checksum-verified) in that thread, then
one reference is swapped; a request reads the reference once, so requests in flight finish on the
old model and none waits for a load. A version that fails to load is refused: logged, reported by
/health as "degraded" with `last_reload_error`, and the old model keeps serving.

`serve()` runs the app under granian (Rust: tokio + hyper). granian owns the listening socket and
the worker processes (respawned if one dies); connections are handled asynchronously, so idle or
slow clients cost no Python thread, request headers must arrive within HEADER_TIMEOUT_MS, and a
body over MAX_BODY is refused from its Content-Length before it is read. Each worker builds its own
app with `app_from_environment` and runs Flask on `threads` blocking threads. Metrics,
`/admin/reload` and the poll thread are per worker; training jobs are kept in files (and a lock
file) so any worker can report them and only one runs at a time.
"""

from __future__ import annotations

import ctypes
import gc
import hmac
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge, Unauthorized
from werkzeug.routing import PathConverter

from . import __version__
from . import artifacts as artifact_store
from .data.events import DEFAULT_MAX_FUTURE_SECONDS, EventRules, from_json
from .errors import (
    ArtifactError,
    EventsError,
    InputError,
    JobConflict,
    LiveStoreError,
    LockError,
    NotFoundError,
    PublishRefused,
    RecsysError,
    ReloadRefused,
)
from .fsutil import atomic_write, prune
from .live import open_live_store
from .metrics_prom import CONTENT_TYPE, Metrics
from .openapi import MAX_BATCH, document
from .service import Filters, RecommendationService

MAX_BODY = 1 << 20
JOBS_DIR = ".train-jobs"
KEEP_JOBS = 20
JOB_OUTPUT_LINES = 20

_ABSOLUTE_PATH = re.compile(r"(?<![\w.<>])(?:/[^\s'\"/:;,()]+)+/([^\s'\"/:;,()]+)")
access_log = logging.getLogger("recsys.access")
log = logging.getLogger("recsys.server")
bp = Blueprint("recsys", __name__)


class IdPathConverter(PathConverter):
    """werkzeug's `path` (slashes allowed) that also matches line breaks: `path`'s `.` stops at a `%0A` in a customer id."""

    regex = "[^/](?s:.)*?"


# --- per-app state ------------------------------------------------------------------------------


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread its own heap arena; with a thread pool serving large numpy
    temporaries the arenas fragment and a worker's memory creeps up. Two arenas keep it flat."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc
        pass


def _release_memory(*, collect: bool = True) -> None:
    """After a swap, collect the old model and hand freed heap pages back to the OS (glibc keeps
    them otherwise, and a worker's memory would grow with every published version)."""
    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class ServerState:
    """What the routes share: the served model (one swappable reference), the live store, metrics, jobs."""

    def __init__(
        self,
        artifacts: Path,
        data: Path,
        *,
        poll_seconds: float,
        admin_token: str | None,
        event_rules: EventRules,
        live_store: str | None = None,
    ):
        self.artifacts = artifacts
        self.event_rules = event_rules
        self.data = data
        self.live = open_live_store(data, live_store)
        self.poll_seconds = float(poll_seconds)
        self.admin_token = admin_token or None
        self.metrics = Metrics()
        self.jobs = TrainJobs(artifacts / JOBS_DIR, data=data, artifacts=artifacts, live_store=live_store)
        self.openapi = document(__version__)
        self.service = RecommendationService.load(artifacts, live=self.live)
        self.last_reload_error: str | None = None
        self._refused: str | None = None
        self._reload_lock = threading.Lock()
        self._poller_lock = threading.Lock()
        self._poller_pid: int | None = None

    def reload(self, *, retry_refused: bool = True) -> str:
        """Serve the version `current` names now: 'reloaded' or 'unchanged'; ReloadRefused if it fails to load."""
        with self._reload_lock:
            serving = self.service.version
            try:
                name = artifact_store.current_version(self.artifacts)
            except ArtifactError as error:  # a broken pointer: keep serving what we have
                if self.last_reload_error != str(error):
                    self.metrics.count_reload_failure()
                    log.error("reload refused serving=%s error=%s", serving, json.dumps(str(error)))
                self.last_reload_error, self._refused = str(error), None
                raise ReloadRefused(f"{error}; still serving {serving}") from None
            if name is None or name == serving:
                if name == serving:  # `current` points back at what we serve: an earlier refusal is moot
                    self.last_reload_error, self._refused = None, None
                return "unchanged"
            if name == self._refused and not retry_refused:
                raise ReloadRefused(self.last_reload_error or f"version {name} was refused")
            try:
                fresh = RecommendationService.load(self.artifacts, version=name, live=self.live)
            except Exception as error:  # any failure to load keeps the old model serving
                reason = str(error) if isinstance(error, RecsysError) else f"{type(error).__name__}: {error}"
                self.last_reload_error, self._refused = f"version {name} refused: {reason}", name
                self.metrics.count_reload_failure()
                log.error("reload refused version=%s serving=%s error=%s", name, serving, json.dumps(reason))
                raise ReloadRefused(f"{self.last_reload_error}; still serving {serving}") from None
            self.service = fresh
            self.last_reload_error, self._refused = None, None
            del fresh
            _release_memory()
            log.info("model reloaded version=%s previous=%s", name, serving)
            return "reloaded"

    def ensure_poller(self) -> None:
        """Start this process's poll thread once (after a fork, the child starts its own)."""
        if self.poll_seconds <= 0 or self._poller_pid == os.getpid():
            return
        with self._poller_lock:
            if self._poller_pid != os.getpid():
                threading.Thread(target=self._poll, name="recsys-reload", daemon=True).start()
                self._poller_pid = os.getpid()

    def _poll(self) -> None:
        trims_left = 0
        while True:
            time.sleep(self.poll_seconds)
            try:
                if self.reload(retry_refused=False) == "reloaded":
                    trims_left = 3  # requests that were in flight release the old model a little later
            except ReloadRefused:
                pass
            except Exception:  # never let the poll thread die
                log.exception("reload check failed")
            if trims_left:
                trims_left -= 1
                _release_memory(collect=False)

    def live_events(self) -> int:
        return self.live.count()

    def health(self) -> dict:
        """What /health reports: "degraded" with the reasons (no absolute paths) when anything is wrong."""
        problems = [self.last_reload_error] if self.last_reload_error else []
        try:
            current = artifact_store.current_version(self.artifacts)
        except ArtifactError as error:
            current = None
            if str(error) not in problems:
                problems.append(str(error))
        try:
            live_events: int | None = self.live_events()
        except RecsysError as error:
            live_events = None
            problems.append(f"live events are not used: {error}")
        if self.live.read_error and live_events is not None:
            problems.append(f"live events are not used: {self.live.read_error}")
        return {
            "status": "degraded" if problems else "ok",
            "model_version": self.service.version,
            "current_version": current,
            "loaded_at": _iso(self.service.loaded_at),
            "counts": self.service.counts(),
            "live_events": live_events,
            "last_reload_error": self.public("; ".join(problems)) if problems else None,
            "pid": os.getpid(),
        }

    def public(self, message: str) -> str:
        """`message` without absolute paths, for clients: the artifacts and data folders become
        <artifacts> and <data>, any other absolute path its last component. The log keeps them."""
        for root, label in ((self.artifacts, "<artifacts>"), (self.data, "<data>")):
            message = message.replace(str(root), label)
        return _ABSOLUTE_PATH.sub(lambda match: match.group(1), message)


def _state() -> ServerState:
    return current_app.extensions["recsys"]


# --- training jobs --------------------------------------------------------------------------------


class TrainJobs:
    """`recsys train` subprocesses. Status and output are files under ARTIFACTS/.train-jobs, so any worker can report any job."""

    def __init__(self, folder: Path, *, data: Path, artifacts: Path, live_store: str | None = None):
        self.folder = folder
        self.artifacts = artifacts
        self.command = [sys.executable, "-m", "recsys_cli.cli", "train", "--data", str(data), "--artifacts", str(artifacts)]
        if live_store:
            self.command += ["--live-store", live_store]
        self._lock = threading.Lock()

    def start(self) -> dict:
        """Start a job, or JobConflict (409) while one runs in any worker or a `recsys train` holds the artifacts."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            running = FileLock(str(self.folder / "running.lock"), thread_local=False)  # held until the job ends, across workers
            try:
                running.acquire(timeout=0)
            except Timeout:
                raise JobConflict(f"a training job is still running{self._latest_running()}; start another when it has finished") from None
            try:
                with artifact_store.train_lock(self.artifacts, wait=False):
                    pass
            except LockError:
                running.release()
                raise JobConflict("`recsys train` is running on these artifacts; start a job when it has finished") from None
            job_id = uuid.uuid4().hex[:16]
            with open(self.folder / f"{job_id}.log", "wb") as output:
                try:
                    process = subprocess.Popen(
                        self.command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                    )
                except BaseException:
                    running.release()
                    raise
            record = {"job_id": job_id, "status": "running", "exit_code": None, "started_at": _iso(time.time()), "finished_at": None}
            self._write(job_id, record)
            threading.Thread(target=self._wait, args=(process, record, running), name=f"recsys-train-{job_id}", daemon=True).start()
            self._prune()
        log.info("training job started job_id=%s pid=%s", job_id, process.pid)
        return self.status(job_id)

    def _wait(self, process: subprocess.Popen, record: dict, running: FileLock) -> None:
        try:
            code = process.wait()
            record.update(status="succeeded" if code == 0 else "failed", exit_code=code, finished_at=_iso(time.time()))
            self._write(record["job_id"], record)
        finally:
            running.release()
        log.info("training job finished job_id=%s exit_code=%s", record["job_id"], code)

    def _write(self, job_id: str, record: dict) -> None:
        atomic_write(self.folder / f"{job_id}.json", json.dumps(record))

    def status(self, job_id: str) -> dict:
        """The job's record and the last lines of its output; NotFound for an unknown id."""
        if not re.fullmatch(r"[0-9a-f]{16}", job_id) or not (self.folder / f"{job_id}.json").exists():
            raise NotFound(f"no training job '{job_id[:40]}'")
        record = json.loads((self.folder / f"{job_id}.json").read_text(encoding="utf-8"))
        record["output"] = _tail(self.folder / f"{job_id}.log", JOB_OUTPUT_LINES)
        return record

    def _latest_running(self) -> str:
        records = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in records[:KEEP_JOBS]:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if record.get("status") == "running":
                return f" (poll /admin/train/{record['job_id']})"
        return ""

    def _prune(self) -> None:
        prune(self.folder.glob("*.json"), keep=KEEP_JOBS, delete=_remove_job)


def _remove_job(record: Path) -> None:
    record.unlink(missing_ok=True)
    record.with_suffix(".log").unlink(missing_ok=True)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


# --- request parsing ------------------------------------------------------------------------------


def _n() -> str | int:
    return request.args.get("n", 10)  # service.check_n validates it


def _price(name: str) -> float | None:
    if name not in request.args:
        return None
    raw = request.args[name].strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{name} must be a number, got {raw[:40]!r}")
    return value


def parse_filters() -> Filters:
    """Filters from the query string: category (prefix), brand, gender, min_price, max_price, exclude (comma-separated)."""
    low, high = _price("min_price"), _price("max_price")
    if low is not None and high is not None and low > high:
        raise InputError(f"min_price ({low}) is greater than max_price ({high})")
    exclude = tuple(dict.fromkeys(p.strip() for value in request.args.getlist("exclude") for p in value.split(",") if p.strip()))
    return Filters(
        category=request.args.get("category") or None,
        brand=request.args.get("brand") or None,
        gender=request.args.get("gender") or None,
        min_price=low,
        max_price=high,
        exclude=exclude,
    )


def _json_body() -> Any:
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: RequestEntityTooLarge (413)
    if not raw.strip():
        raise InputError("the request body is empty: send a JSON event object or an array of them")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"the request body is not valid JSON: {str(error)[:200]}") from None


# --- routes -----------------------------------------------------------------------------------------


@bp.get("/recommendations/<idpath:customer_id>")
def recommendations(customer_id: str) -> Response:
    return jsonify(_state().service.recommend(customer_id, _n(), filters=parse_filters()))


@bp.get("/products/<idpath:product_id>/similar")
def similar(product_id: str) -> Response:
    return jsonify({"product_id": product_id, "items": _state().service.similar(product_id, _n())})


@bp.get("/products/<idpath:product_id>/similarity/<idpath:other_id>")
def similarity(product_id: str, other_id: str) -> Response:
    return jsonify(_state().service.similarity(product_id, other_id))


@bp.get("/popular")
def popular() -> Response:
    return jsonify({"items": _state().service.popular(_n())})


@bp.post("/events")
def events() -> tuple[Response, int]:
    state = _state()
    rows = from_json(_json_body(), now=time.time(), rules=state.event_rules, max_batch=MAX_BATCH)
    return jsonify({"accepted": state.live.append(rows)}), 201


@bp.get("/health")
def health() -> Response:
    """Always 200 while a model is served: problems show as status "degraded" with their reason."""
    return jsonify(_state().health())


@bp.get("/metrics")
def metrics() -> Response:
    state = _state()
    return Response(state.metrics.render(model_version=state.service.version, live_events=state.live_events()), content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(_state().openapi)


def _require_admin() -> ServerState:
    state = _state()
    if state.admin_token is None:
        raise NotFound(f"no route {request.path[:200]!r}; the API is described at /openapi.json")  # no token: no admin routes
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), state.admin_token.encode()):
        raise Unauthorized("admin routes need the header 'Authorization: Bearer <token>' with the server's admin token")
    return state


@bp.post("/admin/reload")
def admin_reload() -> Response:
    state = _require_admin()
    status = state.reload()
    return jsonify({"status": status, "model_version": state.service.version})


@bp.post("/admin/train")
def admin_train() -> tuple[Response, int]:
    return jsonify(_require_admin().jobs.start()), 202


@bp.get("/admin/train/<job_id>")
def admin_train_status(job_id: str) -> Response:
    return jsonify(_require_admin().jobs.status(job_id))


@bp.get("/recommender/<idpath:customer_id>")
def compat_recommender(customer_id: str) -> Response:
    return jsonify([item["product_id"] for item in _state().service.recommend(customer_id, _n())["items"]])


@bp.get("/similarity/<product_id>")
def compat_similar(product_id: str) -> Response:
    return jsonify([item["product_id"] for item in _state().service.similar(product_id, _n())])


@bp.get("/similarity/<product_id>/<other_id>")
def compat_similarity(product_id: str, other_id: str) -> Response:
    return jsonify(_state().service.similarity(product_id, other_id)["similarity"])


# --- errors, access log, metrics ---------------------------------------------------------------------


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": {"status": status, "message": message, **{k: v for k, v in extra.items() if v}}})
    response.status_code = status
    return response


HTTP_STATUS: dict[type[RecsysError], int] = {
    NotFoundError: 404,
    LockError: 409,
    PublishRefused: 409,
    ReloadRefused: 409,
    JobConflict: 409,
    ArtifactError: 503,
    LiveStoreError: 503,
}
"""The one place a core error becomes an HTTP status (the nearest listed class wins); any other RecsysError is 400."""


def http_status(error: RecsysError) -> int:
    return next((HTTP_STATUS[cls] for cls in type(error).__mro__ if cls in HTTP_STATUS), 400)


def _recsys_error(error: RecsysError) -> Response:
    status = http_status(error)
    if status >= 500:  # the server's problem, not the client's: operators need to see it
        log.warning(
            "request failed status=%s method=%s path=%s error=%s", status, request.method, json.dumps(request.path), json.dumps(str(error))
        )
    message = _state().public(str(error)) if status >= 500 else str(error)  # a 4xx quotes the client's own input
    return _error(status, message, details=error.details if isinstance(error, EventsError) else None)


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    message = error.description or error.name
    if isinstance(error, NotFound) and request.url_rule is None:
        message = f"no route {request.path[:200]!r}; the API is described at /openapi.json"
    elif isinstance(error, MethodNotAllowed):
        message = f"{request.method} is not allowed on {request.path[:200]!r} (allowed: {', '.join(sorted(error.valid_methods or []))})"
    elif isinstance(error, RequestEntityTooLarge):
        message = f"request body over {MAX_BODY:,} bytes; send at most {MAX_BATCH:,} events per request"
    response = _error(status, message)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="recsys admin"'
    return response


def _unexpected(error: Exception) -> Response:
    if isinstance(error, HTTPException):
        return _http_error(error)
    error_id = uuid.uuid4().hex[:12]
    log.error("unhandled error error_id=%s method=%s path=%s", error_id, request.method, json.dumps(request.path), exc_info=error)
    return _error(500, f"internal error {error_id}; the server log has its details under this id", id=error_id)


def _logfmt_value(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or re.search(r'[\s"=\\]|[^\x21-\x7e]', text) else text


def _before() -> None:
    g.recsys_started = time.perf_counter()
    current_app.extensions["recsys"].ensure_poller()


def _after(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("recsys_started", time.perf_counter())
    endpoint = request.endpoint.rpartition(".")[2] if request.endpoint else "unmatched"
    current_app.extensions["recsys"].metrics.observe(endpoint, response.status_code, seconds)
    fields = {"method": request.method, "path": request.path, "status": response.status_code, "ms": f"{seconds * 1000:.2f}"}
    access_log.info(" ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items()))
    return response


# --- the factory, serve, get --------------------------------------------------------------------------


def create_app(config: dict | None = None) -> Flask:
    """The Flask app for one artifacts folder and data folder; loads `current` once.

    Config: ARTIFACTS, DATA (required paths), POLL_SECONDS (5; 0 = no polling), ADMIN_TOKEN
    (default $RECSYS_ADMIN_TOKEN; unset = no admin routes), MAX_CONTENT_LENGTH (1 MB),
    EVENTS_MAX_FUTURE_SECONDS (86400: events later than this after now are refused), LIVE_STORE
    (a postgresql:// URL shared by replicas; default: the SQLite store in DATA).
    """
    app = Flask(__name__)
    app.config.update(
        POLL_SECONDS=5,
        ADMIN_TOKEN=os.environ.get("RECSYS_ADMIN_TOKEN") or None,
        MAX_CONTENT_LENGTH=MAX_BODY,
        EVENTS_MAX_FUTURE_SECONDS=DEFAULT_MAX_FUTURE_SECONDS,
    )
    app.config.update(config or {})
    missing = [key for key in ("ARTIFACTS", "DATA") if not app.config.get(key)]
    if missing:
        raise InputError(f"create_app needs {' and '.join(missing)} in its config")
    app.json.sort_keys = False
    app.url_map.converters["idpath"] = IdPathConverter
    app.extensions["recsys"] = ServerState(
        Path(app.config["ARTIFACTS"]).resolve(),
        Path(app.config["DATA"]).resolve(),
        poll_seconds=float(app.config["POLL_SECONDS"]),
        admin_token=app.config["ADMIN_TOKEN"],
        event_rules=EventRules(max_future_seconds=float(app.config["EVENTS_MAX_FUTURE_SECONDS"])),
        live_store=app.config.get("LIVE_STORE") or None,
    )
    app.register_blueprint(bp)
    app.register_error_handler(RecsysError, _recsys_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(_before)
    app.after_request(_after)
    return app


def get(path: str, artifacts: Path, data: Path, *, live_store: str | None = None) -> tuple[int, dict | list | str]:
    """Run one GET request in-process (`recsys serve --get PATH`): (status, JSON body or text)."""
    app = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0, "LIVE_STORE": live_store})
    response = app.test_client().get(path)
    return response.status_code, response.get_json() if response.is_json else response.get_data(as_text=True)


class _LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"ts={stamp} level={record.levelname.lower()} logger={record.name} pid={record.process} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO) -> None:
    """One logfmt line per record on stderr, for recsys.* and granian."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogfmtFormatter())
    for name in ("recsys", "granian"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


SERVE_CONFIG_ENV = "RECSYS_SERVE_CONFIG"
HEADER_TIMEOUT_MS = 10_000
"""A connection must finish sending its request headers within this; slow-header clients are cut off."""
BACKLOG = 2048
CONNECTIONS_PER_WORKER = 4096
"""granian's backpressure: connections a worker serves at once, idle ones included (it is not a
Python thread count). Beyond it new connections wait, so it is set well above what idle and slow
clients can hold within one HEADER_TIMEOUT_MS."""
GRANIAN_LOGGING = {  # granian's own messages (worker exits, respawns) as logfmt lines on stderr, like ours
    "formatters": {"logfmt": {"()": "recsys_cli.server._LogfmtFormatter"}},
    "handlers": {"console": {"formatter": "logfmt", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"_granian": {"handlers": ["console"], "level": "WARNING", "propagate": False}},
}


def serve(
    artifacts: Path,
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    threads: int = 8,
    poll_seconds: float = 5.0,
    live_store: str | None = None,
) -> None:
    """Serve the API with granian until SIGTERM or SIGINT.

    granian (Rust, tokio + hyper) owns the sockets and the worker processes: connections are
    handled asynchronously, so idle or slow clients hold no Python thread, headers must arrive
    within HEADER_TIMEOUT_MS, and a worker that dies is respawned. Each worker builds the app
    with `app_from_environment` (its own model; hot swaps per worker, as before) and runs Flask
    on `threads` blocking threads.
    """
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
    os.environ[SERVE_CONFIG_ENV] = json.dumps(
        {"ARTIFACTS": str(artifacts), "DATA": str(data), "POLL_SECONDS": poll_seconds, "LIVE_STORE": live_store}
    )
    configure_logging()
    log.info("serving on http://%s:%s workers=%d threads=%d", host, port, workers, threads)
    Server(
        "recsys_cli.server:app_from_environment",
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
    raw = os.environ.get(SERVE_CONFIG_ENV)
    if not raw:
        raise InputError(f"{SERVE_CONFIG_ENV} is not set; start the server with `recsys serve`")
    configure_logging()
    _limit_malloc_arenas()
    started = time.perf_counter()
    app = create_app(json.loads(raw))
    log.info("model loaded version=%s seconds=%.2f", app.extensions["recsys"].service.version, time.perf_counter() - started)
    return app


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")
