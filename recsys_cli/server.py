"""The REST server: `create_app(config)` builds a Flask app whose routes are as thin as the CLI.

Routes parse the request, make one call and format the answer. Per-app state lives in
`app.extensions["recsys"]` (a `ServerState`); nothing happens at import. What the routes call
lives beside the service: the hot-swap holder (holder.py), training jobs (jobs.py), event
validation (data/events.py); running under granian and logging are in serving.py. Core errors
become HTTP statuses here, once (`HTTP_STATUS`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

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
from .live import open_live_store
from .metrics_prom import CONTENT_TYPE, Metrics
from .openapi import document
from .routes_shop import shop
from .serving import FastJSON, serve
from .web import IdPathConverter, ServerState, json_body, n_arg, parse_filters, parse_rules_args, require_admin, server_state

__all__ = ["create_app", "get", "serve"]  # serve is re-exported: `recsys serve` and the benchmarks start it from here

access_log = logging.getLogger("recsys.access")
log = logging.getLogger("recsys.server")
bp = Blueprint("recsys", __name__)


# --- routes -----------------------------------------------------------------------------------------


@bp.get("/recommendations/<idpath:customer_id>")
def recommendations(customer_id: str) -> Response:
    shuffle = request.args.get("shuffle")
    service = server_state().service
    return jsonify(service.recommend(customer_id, n_arg(), filters=parse_filters(), shuffle=shuffle, rules=parse_rules_args()))


@bp.get("/customers/<idpath:customer_id>/recently-viewed")
def recently_viewed(customer_id: str) -> Response:
    service = server_state().service
    return jsonify({"customer_id": customer_id, "model_version": service.version, "items": service.recently_viewed(customer_id, n_arg())})


@bp.get("/products/<idpath:product_id>/similar")
def similar(product_id: str) -> Response:
    service = server_state().service
    return jsonify({"product_id": product_id, "model_version": service.version, "items": service.similar(product_id, n_arg())})


@bp.get("/products/<idpath:product_id>/similarity/<idpath:other_id>")
def similarity(product_id: str, other_id: str) -> Response:
    return jsonify(server_state().service.similarity(product_id, other_id))


@bp.get("/trending")
def trending() -> Response:
    service = server_state().service
    window = request.args.get("window", "7d")
    return jsonify({"window": window, "model_version": service.version, "items": service.trending(n_arg(), window=window)})


@bp.get("/popular")
def popular() -> Response:
    service = server_state().service
    return jsonify({"model_version": service.version, "items": service.popular(n_arg())})


@bp.post("/events")
def events() -> tuple[Response, int]:
    state = server_state()
    rows = from_json(json_body(), now=time.time(), rules=state.event_rules, max_batch=MAX_BATCH)
    return jsonify({"accepted": state.live.append(rows)}), 201


@bp.get("/health")
def health() -> Response:
    """Always 200 while a model is served: problems show as status "degraded" with their reason."""
    state = server_state()
    body = state.holder.health()
    if body["last_reload_error"]:
        body["last_reload_error"] = state.public(body["last_reload_error"])
    return jsonify(body)


@bp.get("/metrics")
def metrics() -> Response:
    state = server_state()
    return Response(state.metrics.render(model_version=state.service.version, live_events=state.live.count()), content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(server_state().openapi)


@bp.post("/admin/reload")
def admin_reload() -> Response:
    state = require_admin()
    status = state.holder.reload()
    return jsonify({"status": status, "model_version": state.service.version})


@bp.post("/admin/train")
def admin_train() -> tuple[Response, int]:
    return jsonify(require_admin().jobs.start()), 202


@bp.get("/admin/train/<job_id>")
def admin_train_status(job_id: str) -> Response:
    return jsonify(require_admin().jobs.status(job_id))


@bp.get("/recommender/train")
def compat_train() -> tuple[Response, int]:
    """The original's training trigger (admin-protected here): starts the same job as POST /admin/train."""
    return admin_train()


@bp.get("/recommender/<idpath:customer_id>")
def compat_recommender(customer_id: str) -> Response:
    return jsonify([item["product_id"] for item in server_state().service.recommend(customer_id, n_arg())["items"]])


@bp.get("/similarity/<product_id>")
def compat_similar(product_id: str) -> Response:
    return jsonify([item["product_id"] for item in server_state().service.similar(product_id, n_arg())])


@bp.get("/similarity/<product_id>/<other_id>")
def compat_similarity(product_id: str, other_id: str) -> Response:
    return jsonify(server_state().service.similarity(product_id, other_id)["similarity"])


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
            "request failed status=%s method=%s path=%s error=%s",
            status,
            request.method,
            json.dumps(_logged_path()),
            json.dumps(str(error)),
        )
    message = server_state().public(str(error)) if status >= 500 else str(error)  # a 4xx quotes the client's own input
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
    log.error("unhandled error error_id=%s method=%s path=%s", error_id, request.method, json.dumps(_logged_path()), exc_info=error)
    return _error(500, f"internal error {error_id}; the server log has its details under this id", id=error_id)


def _logged_path() -> str:
    """The request path for logs: a route that must not log its ids in clear (forgetting a customer) sets another."""
    return g.get("recsys_logged_path") or request.path


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
    if not access_log.isEnabledFor(logging.INFO):  # `serve --no-access-log`
        return response
    fields = {"method": request.method, "path": _logged_path(), "status": response.status_code, "ms": f"{seconds * 1000:.2f}"}
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
    app.register_blueprint(shop)
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
