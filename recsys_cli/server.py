"""The REST server: `create_app(config)` builds a Flask app whose routes are as thin as the CLI.

Routes parse the request, make one call and format the answer. Per-app state lives in
`app.extensions["recsys"]` (a `ServerState`); nothing happens at import. What the routes call
lives beside the service: the hot-swap holder (holder.py), training jobs (jobs.py), event
validation (data/events.py); running under granian and logging are in serving.py. Core errors
become HTTP statuses here, once (`HTTP_STATUS`).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge, Unauthorized
from werkzeug.routing import PathConverter

from . import __version__
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
from .holder import ServiceHolder
from .jobs import JOBS_DIR, TrainJobs
from .limits import MAX_BATCH, MAX_BODY
from .live import LiveEvents, open_live_store
from .metrics_prom import CONTENT_TYPE, Metrics
from .openapi import document
from .service import Filters, RecommendationService
from .serving import FastJSON, serve

__all__ = ["create_app", "get", "serve"]  # serve is re-exported: `recsys serve` and the benchmarks start it from here

_ABSOLUTE_PATH = re.compile(r"(?<![\w.<>])(?:/[^\s'\"/:;,()]+)+/([^\s'\"/:;,()]+)")
access_log = logging.getLogger("recsys.access")
log = logging.getLogger("recsys.server")
bp = Blueprint("recsys", __name__)


class IdPathConverter(PathConverter):
    """werkzeug's `path` (slashes allowed) that also matches line breaks: `path`'s `.` stops at a `%0A` in a customer id."""

    regex = "[^/](?s:.)*?"


@dataclass
class ServerState:
    """What the routes share: the served model's holder, the live store, metrics, jobs, the API document."""

    artifacts: Path
    data: Path
    holder: ServiceHolder
    live: LiveEvents
    metrics: Metrics
    jobs: TrainJobs
    openapi: dict
    admin_token: str | None
    event_rules: EventRules

    @property
    def service(self) -> RecommendationService:
        return self.holder.service

    def public(self, message: str) -> str:
        """`message` without absolute paths, for clients: the artifacts and data folders become
        <artifacts> and <data>, any other absolute path its last component. The log keeps them."""
        for root, label in ((self.artifacts, "<artifacts>"), (self.data, "<data>")):
            message = message.replace(str(root), label)
        return _ABSOLUTE_PATH.sub(lambda match: match.group(1), message)


def _state() -> ServerState:
    return current_app.extensions["recsys"]


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
    shuffle = request.args.get("shuffle")
    return jsonify(_state().service.recommend(customer_id, _n(), filters=parse_filters(), shuffle=shuffle))


@bp.get("/customers/<idpath:customer_id>/recently-viewed")
def recently_viewed(customer_id: str) -> Response:
    service = _state().service
    return jsonify({"customer_id": customer_id, "model_version": service.version, "items": service.recently_viewed(customer_id, _n())})


@bp.get("/products/<idpath:product_id>/similar")
def similar(product_id: str) -> Response:
    service = _state().service
    return jsonify({"product_id": product_id, "model_version": service.version, "items": service.similar(product_id, _n())})


@bp.get("/products/<idpath:product_id>/similarity/<idpath:other_id>")
def similarity(product_id: str, other_id: str) -> Response:
    return jsonify(_state().service.similarity(product_id, other_id))


@bp.get("/trending")
def trending() -> Response:
    service = _state().service
    window = request.args.get("window", "7d")
    return jsonify({"window": window, "model_version": service.version, "items": service.trending(_n(), window=window)})


@bp.get("/popular")
def popular() -> Response:
    service = _state().service
    return jsonify({"model_version": service.version, "items": service.popular(_n())})


@bp.post("/events")
def events() -> tuple[Response, int]:
    state = _state()
    rows = from_json(_json_body(), now=time.time(), rules=state.event_rules, max_batch=MAX_BATCH)
    return jsonify({"accepted": state.live.append(rows)}), 201


@bp.get("/health")
def health() -> Response:
    """Always 200 while a model is served: problems show as status "degraded" with their reason."""
    state = _state()
    body = state.holder.health()
    if body["last_reload_error"]:
        body["last_reload_error"] = state.public(body["last_reload_error"])
    return jsonify(body)


@bp.get("/metrics")
def metrics() -> Response:
    state = _state()
    return Response(state.metrics.render(model_version=state.service.version, live_events=state.live.count()), content_type=CONTENT_TYPE)


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
    status = state.holder.reload()
    return jsonify({"status": status, "model_version": state.service.version})


@bp.post("/admin/train")
def admin_train() -> tuple[Response, int]:
    return jsonify(_require_admin().jobs.start()), 202


@bp.get("/admin/train/<job_id>")
def admin_train_status(job_id: str) -> Response:
    return jsonify(_require_admin().jobs.status(job_id))


@bp.get("/recommender/train")
def compat_train() -> tuple[Response, int]:
    """The original's training trigger (admin-protected here): starts the same job as POST /admin/train."""
    return admin_train()


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
    current_app.extensions["recsys"].holder.ensure_poller()


def _after(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("recsys_started", time.perf_counter())
    endpoint = request.endpoint.rpartition(".")[2] if request.endpoint else "unmatched"
    current_app.extensions["recsys"].metrics.observe(endpoint, response.status_code, seconds)
    fields = {"method": request.method, "path": request.path, "status": response.status_code, "ms": f"{seconds * 1000:.2f}"}
    access_log.info(" ".join(f"{k}={_logfmt_value(v)}" for k, v in fields.items()))
    return response


# --- the factory and `serve --get` ---------------------------------------------------------------------


def create_app(config: dict | None = None) -> Flask:
    """The Flask app for one artifacts folder and data folder; loads `current` once.

    Config: ARTIFACTS, DATA (required paths), POLL_SECONDS (5; 0 = no polling), ADMIN_TOKEN
    (default $RECSYS_ADMIN_TOKEN; unset = no admin routes), MAX_CONTENT_LENGTH (1 MB),
    EVENTS_MAX_FUTURE_SECONDS (86400: events later than this after now are refused), LIVE_STORE
    (a postgresql:// URL shared by replicas; default: the SQLite store in DATA), SETTINGS (served
    settings changed at start, config.serving_changes: {"router": {"session_weight": 0.5}}).
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
    app.json = FastJSON(app)
    app.url_map.converters["idpath"] = IdPathConverter
    artifacts, data = Path(app.config["ARTIFACTS"]).resolve(), Path(app.config["DATA"]).resolve()
    live_store = app.config.get("LIVE_STORE") or None
    live, metrics = open_live_store(data, live_store), Metrics()
    app.extensions["recsys"] = ServerState(
        artifacts=artifacts,
        data=data,
        holder=ServiceHolder(
            artifacts,
            live,
            poll_seconds=float(app.config["POLL_SECONDS"]),
            on_refused=metrics.count_reload_failure,
            changes=app.config.get("SETTINGS"),
        ),
        live=live,
        metrics=metrics,
        jobs=TrainJobs(artifacts / JOBS_DIR, data=data, artifacts=artifacts, live_store=live_store),
        openapi=document(__version__),
        admin_token=app.config["ADMIN_TOKEN"] or None,
        event_rules=EventRules(max_future_seconds=float(app.config["EVENTS_MAX_FUTURE_SECONDS"])),
    )
    app.register_blueprint(bp)
    app.register_error_handler(RecsysError, _recsys_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    app.before_request(_before)
    app.after_request(_after)
    return app


def get(
    path: str, artifacts: Path, data: Path, *, live_store: str | None = None, settings: dict | None = None
) -> tuple[int, dict | list | str]:
    """Run one GET request in-process (`recsys serve --get PATH`): (status, JSON body or text)."""
    app = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0, "LIVE_STORE": live_store, "SETTINGS": settings})
    response = app.test_client().get(path)
    return response.status_code, response.get_json() if response.is_json else response.get_data(as_text=True)
