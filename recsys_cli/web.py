"""What the REST routes share: per-app state, request parsing and the admin check.

Used by server.py's routes and the shop blueprint (routes_shop.py); nothing happens at import.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import NotFound, Unauthorized
from werkzeug.routing import PathConverter

from .data.events import EventRules
from .errors import InputError
from .holder import ServiceHolder
from .jobs import TrainJobs
from .live import LiveEvents
from .metrics_prom import Metrics
from .rules import Rules, parse_rules
from .service import Filters, RecommendationService

_ABSOLUTE_PATH = re.compile(r"(?<![\w.<>])(?:/[^\s'\"/:;,()]+)+/([^\s'\"/:;,()]+)")


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


def server_state() -> ServerState:
    return current_app.extensions["recsys"]


# --- request parsing ------------------------------------------------------------------------------


def n_arg() -> str | int:
    return request.args.get("n", 10)  # service.check_n validates it


def price_arg(args: MultiDict, name: str) -> float | None:
    if name not in args:
        return None
    raw = args[name].strip()
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"{name} must be a number, got {raw[:40]!r}")
    return value


FILTER_ARGS = ("category", "brand", "gender", "min_price", "max_price", "exclude")
NO_FILTERS = Filters()


def parse_filters() -> Filters:
    """Filters from the query string: category (prefix) and brand (each repeatable: any of them), gender,
    min_price, max_price, exclude (comma-separated, repeatable)."""
    args = request.args  # one lookup through the request proxy
    if not any(name in args for name in FILTER_ARGS):  # most requests: no filter (1 us instead of 7)
        return NO_FILTERS
    low, high = price_arg(args, "min_price"), price_arg(args, "max_price")
    if low is not None and high is not None and low > high:
        raise InputError(f"min_price ({low}) is greater than max_price ({high})")
    exclude = tuple(dict.fromkeys(p.strip() for value in args.getlist("exclude") for p in value.split(",") if p.strip()))
    return Filters(
        category=tuple(args.getlist("category")),
        brand=tuple(args.getlist("brand")),
        gender=args.get("gender") or None,
        min_price=low,
        max_price=high,
        exclude=exclude,
    )


def json_body(expected: str = "a JSON event object or an array of them") -> Any:
    """The request's JSON body; InputError (400) when it is empty or not JSON, saying what to send."""
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: RequestEntityTooLarge (413)
    if not raw.strip():
        raise InputError(f"the request body is empty: send {expected}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"the request body is not valid JSON: {str(error)[:200]}") from None


def require_admin() -> ServerState:
    state = server_state()
    if state.admin_token is None:
        raise NotFound(f"no route {request.path[:200]!r}; the API is described at /openapi.json")  # no token: no admin routes
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), state.admin_token.encode()):
        raise Unauthorized("admin routes need the header 'Authorization: Bearer <token>' with the server's admin token")
    return state


def parse_rules_args() -> Rules:
    """A request's own business rules: `boost=FIELD:VALUE:FACTOR` and `pin=PRODUCT:SLOT`, each repeatable."""
    args = request.args
    return parse_rules(args.getlist("boost"), args.getlist("pin"), where="request")
