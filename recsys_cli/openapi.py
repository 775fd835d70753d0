"""The OpenAPI 3.0 document of the REST server, served at /openapi.json.

Written by hand next to the routes in server.py; tests validate real responses against the
schemas below, so a route and its description cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from .data.schema import EVENT_TYPES
from .limits import MAX_BATCH, MAX_N, RULE_SOURCE, SOURCES, WINDOW_PATTERN


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string", "minLength": 1}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


N_PARAM = _query("n", {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 10}, f"How many items (1-{MAX_N}).")
ADMIN = [{"bearer": []}]

ATTRIBUTES: dict[str, dict[str, Any]] = {  # catalog fields a returned product carries where the catalog has them
    "brand": {"type": "string"},
    "category_path": {"type": "string"},
    "price": {"type": "number"},
}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """A closed JSON object: these properties only, the `required` ones always present."""
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


def _listed(item: str, key: str | None = None) -> dict[str, Any]:
    """A list response: `{key: id, model_version, items: [item, ...]}` (no key: model_version and items)."""
    head = {key: {"type": "string"}} if key else {}
    return _object(
        [*head, "model_version", "items"],
        {**head, "model_version": {"type": "string"}, "items": {"type": "array", "items": _ref(item)}},
    )


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "message"],
                "additionalProperties": False,
                "properties": {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "message": {"type": "string"},
                    "id": {"type": "string", "description": "Error id of a 500; the server log holds its traceback under this id."},
                    "details": {"type": "array", "items": {"type": "string"}, "description": "Every problem found (POST /events)."},
                },
            }
        },
    },
    "RecommendedItem": {
        "type": "object",
        "required": ["product_id", "score", "rank", "source", "reason"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "score": {"type": "number"},
            "rank": {"type": "integer", "minimum": 1},
            "source": {"type": "string", "enum": [*SOURCES, RULE_SOURCE], "description": "rules: pinned by a shop rule."},
            "reason": {"type": "string"},
            **ATTRIBUTES,
        },
    },
    "Recommendations": {
        "type": "object",
        "required": ["customer_id", "source", "model_version", "items"],
        "additionalProperties": False,
        "properties": {
            "customer_id": {"type": "string"},
            "source": {"type": "string", "enum": list(SOURCES), "description": "The model the customer was routed to."},
            "model_version": {"type": "string"},
            "items": {"type": "array", "items": _ref("RecommendedItem")},
        },
    },
    "SimilarItem": {
        "type": "object",
        "required": ["product_id", "score", "rank"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "score": {"type": "number"},
            "rank": {"type": "integer", "minimum": 1},
            **ATTRIBUTES,
        },
    },
    "Similar": _listed("SimilarItem", "product_id"),
    "Similarity": {
        "type": "object",
        "required": ["product_id", "other_id", "similarity", "parts"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "other_id": {"type": "string"},
            "similarity": {"type": "number"},
            "parts": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Per-feature similarity."},
        },
    },
    "PopularItem": {
        "type": "object",
        "required": ["product_id", "score", "rank", "source", "reason", "purchasers"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "score": {"type": "number", "description": "Popularity relative to the most popular product (1.0)."},
            "rank": {"type": "integer", "minimum": 1},
            "source": {"type": "string", "enum": ["popularity"]},
            "reason": {"type": "string"},
            "purchasers": {"type": "integer", "minimum": 0},
            **ATTRIBUTES,
        },
    },
    "Popular": _listed("PopularItem"),
    "Event": {
        "type": "object",
        "required": ["customer_id", "product_id", "type"],
        "additionalProperties": False,
        "properties": {
            "customer_id": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "product_id": {"type": "string", "minLength": 1, "pattern": "\\S"},
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "timestamp": {
                "oneOf": [
                    {"type": "number", "minimum": 0, "maximum": 4102444800000},
                    {"type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|20[0-9]{2})-"},
                ],
                "description": (
                    "Unix seconds, unix milliseconds (numbers from 1e11) or ISO-8601 (no zone = UTC); default: now. "
                    "Not before 1970 and not more than a day after now (the server's EVENTS_MAX_FUTURE_SECONDS); "
                    "numbers in one request use one unit: the minority unit is refused as mixed units."
                ),
            },
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["accepted"],
        "additionalProperties": False,
        "properties": {"accepted": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH}},
    },
    "Health": {
        "type": "object",
        "required": ["status", "model_version", "current_version", "loaded_at", "counts", "live_events", "last_reload_error", "pid"],
        "additionalProperties": False,
        "properties": {
            "status": {
                "type": "string",
                "enum": ["ok", "degraded"],
                "description": "degraded: the last new version was refused, `current` is unusable, or live events cannot be read.",
            },
            "model_version": {"type": "string", "description": "The version this worker serves."},
            "current_version": {"type": "string", "nullable": True, "description": "The version `current` names now."},
            "loaded_at": {"type": "string", "format": "date-time"},
            "counts": {
                "type": "object",
                "required": ["customers", "products", "pairs"],
                "additionalProperties": False,
                "properties": {n: {"type": "integer", "minimum": 0} for n in ("customers", "products", "pairs")},
            },
            "live_events": {"type": "integer", "minimum": 0, "nullable": True, "description": "null: the live store is unreadable."},
            "last_reload_error": {"type": "string", "nullable": True, "description": "Why the status is degraded (no absolute paths)."},
            "pid": {"type": "integer"},
        },
    },
    "Reload": {
        "type": "object",
        "required": ["status", "model_version"],
        "additionalProperties": False,
        "properties": {"status": {"type": "string", "enum": ["reloaded", "unchanged"]}, "model_version": {"type": "string"}},
    },
    "TrainJob": {
        "type": "object",
        "required": ["job_id", "status", "exit_code", "started_at", "finished_at", "output"],
        "additionalProperties": False,
        "properties": {
            "job_id": {"type": "string"},
            "status": {"type": "string", "enum": ["running", "succeeded", "failed"]},
            "exit_code": {"type": "integer", "nullable": True},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": {"type": "string", "format": "date-time", "nullable": True},
            "output": {"type": "array", "items": {"type": "string"}, "description": "Last lines of the training output."},
        },
    },
    "ProductIds": {"type": "array", "items": {"type": "string"}},
    "TrendingItem": {
        "type": "object",
        "required": ["product_id", "score", "rank", "customers", "reason"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "score": {"type": "number", "description": "Its share of customers in the window over its usual share."},
            "rank": {"type": "integer", "minimum": 1},
            "customers": {"type": "integer", "minimum": 0, "description": "Customers in the window."},
            "reason": {"type": "string"},
            **ATTRIBUTES,
        },
    },
    "Trending": _listed("TrendingItem", "window"),
    "RecentItem": {
        "type": "object",
        "required": ["product_id", "rank", "last_seen", "event", "available", "reason"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "rank": {"type": "integer", "minimum": 1},
            "last_seen": {"type": "string", "format": "date-time"},
            "event": {"type": "string", "enum": list(EVENT_TYPES)},
            "available": {"type": "boolean", "description": "false: unavailable now (history keeps it; no other list shows it)."},
            "reason": {"type": "string"},
            **ATTRIBUTES,
        },
    },
    "RecentlyViewed": _listed("RecentItem", "customer_id"),
    "TogetherItem": {
        "type": "object",
        "required": ["product_id", "score", "rank", "baskets", "reason"],
        "additionalProperties": False,
        "properties": {
            "product_id": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description": "Share of the product's baskets that held this one."},
            "rank": {"type": "integer", "minimum": 1},
            "baskets": {"type": "integer", "minimum": 1, "description": "Baskets (one customer, one day) with both products."},
            "reason": {"type": "string"},
            **ATTRIBUTES,
        },
    },
    "BoughtTogether": _listed("TogetherItem", "product_id"),
    "Forgotten": {
        "type": "object",
        "required": ["customer_hash", "live_events_removed"],
        "additionalProperties": False,
        "properties": {
            "customer_hash": {"type": "string", "description": "sha256 of the customer id: how the deletion list and the log name them."},
            "live_events_removed": {"type": "integer", "minimum": 0},
        },
    },
    "Availability": {
        "type": "object",
        "required": ["product_id", "available"],
        "additionalProperties": False,
        "properties": {"product_id": {"type": "string"}, "available": {"type": "boolean"}},
    },
    "Hidden": {
        "type": "object",
        "required": ["customer_id", "product_ids"],
        "additionalProperties": False,
        "properties": {"customer_id": {"type": "string"}, "product_ids": {"type": "array", "items": {"type": "string"}}},
    },
    "HideProducts": {
        "type": "object",
        "required": ["product_ids"],
        "additionalProperties": False,
        "properties": {
            "product_ids": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "pattern": "\\S"},
                "minItems": 1,
                "maxItems": MAX_BATCH,
            }
        },
    },
    "AvailabilityChange": {
        "type": "object",
        "required": ["available"],
        "additionalProperties": False,
        "properties": {"available": {"type": "boolean"}},
    },
}

_FILTERS = [
    {
        **_query(
            "category",
            {"type": "array", "items": {"type": "string"}},
            "Only products whose category path starts with one of these (repeat: `category=A&category=B`).",
        ),
        "style": "form",
        "explode": True,
    },
    {
        **_query("brand", {"type": "array", "items": {"type": "string"}}, "Only these brands (repeat: `brand=A&brand=B`)."),
        "style": "form",
        "explode": True,
    },
    _query("gender", {"type": "string"}, "Only this gender (Man, Woman, Child, Unisex, Other)."),
    _query("min_price", {"type": "number"}, "Lowest price."),
    _query("max_price", {"type": "number"}, "Highest price."),
    _query("exclude", {"type": "string"}, "Comma-separated product ids never to return."),
]
_SHUFFLE = _query(
    "shuffle",
    {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    "A visit's seed: the top half of the list stays, the lower half is drawn from the next-best products (same seed, same list).",
)
_NUMBER, _FACTOR = r"[0-9]{1,9}(\.[0-9]{1,6})?", r"([1-9][0-9]{0,5}(\.[0-9]{1,6})?|0\.[0-9]{0,5}[1-9])"
_BOOST_PATTERN = f"^((category|brand):.+|price:({_NUMBER})?-({_NUMBER})?):{_FACTOR}$"
_RULES = [
    {
        **_query(
            "boost",
            {"type": "array", "items": {"type": "string", "pattern": _BOOST_PATTERN}},
            "A business rule for this request, on top of the server's [rules]: FIELD:VALUE:FACTOR with FIELD category "
            "(path prefix), brand or price (LOW-HIGH); the factor multiplies the rank score 1/rank (below 1 buries). Repeatable.",
        ),
        "style": "form",
        "explode": True,
    },
    {
        **_query(
            "pin",
            {"type": "array", "items": {"type": "string", "pattern": "^.+:([1-9][0-9]{0,2}|1000)$"}},
            "PRODUCT:SLOT: put the product in that place (1 = first) when the customer may see it. Repeatable.",
        ),
        "style": "form",
        "explode": True,
    },
]
_CUSTOMER = _path_param("customer_id", "The customer's id; may contain `/` (percent-encoded or not).")
_PRODUCT = _path_param("product_id", "A product id from the catalog.")
_OTHER = _path_param("other_id", "A second product id.")
_DEFAULT = {"default": _error("Any other error (404 unknown route, 405, 500 with an error id, 503).")}
_ADMIN_ERRORS = {"401": _error("Missing or wrong bearer token."), "404": _error("Admin routes are off (no admin token configured).")}


def _get(summary: str, parameters: list, responses: dict, **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": {**responses, **_DEFAULT}, **extra}}


def _admin(summary: str, parameters: list, body: dict | None, responses: dict) -> dict[str, Any]:
    """An admin operation: bearer token, a JSON body when `body` is its schema."""
    operation: dict[str, Any] = {"summary": summary, "security": ADMIN, "parameters": parameters}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    bad = {"400": _error("Malformed JSON or a body of the wrong shape.")} if body is not None else {}
    operation["responses"] = {**bad, **_ADMIN_ERRORS, **responses, **_DEFAULT}
    return operation


PATHS: dict[str, dict[str, Any]] = {
    "/recommendations/{customer_id}": _get(
        "Recommendations for a customer, with the model and reason behind each item. Unknown customers get popular products.",
        [_CUSTOMER, N_PARAM, *_FILTERS, _SHUFFLE, *_RULES],
        {
            "200": _json(_ref("Recommendations"), "Recommendations."),
            "400": _error("Bad `n`, filter or rule."),
            "404": _error("A pinned product is unknown."),
        },
    ),
    "/trending": _get(
        "Products whose share of customers rose most in the last `window` of the training history.",
        [N_PARAM, _query("window", {"type": "string", "pattern": WINDOW_PATTERN}, "How far back, e.g. 7d (default), 12h, 2w.")],
        {"200": _json(_ref("Trending"), "Trending products."), "400": _error("Bad `n` or window.")},
    ),
    "/customers/{customer_id}/recently-viewed": _get(
        "The products a customer interacted with, newest first (training history and live events); empty for an unknown customer.",
        [_CUSTOMER, N_PARAM],
        {"200": _json(_ref("RecentlyViewed"), "Recently viewed products."), "400": _error("Bad `n`.")},
    ),
    "/products/{product_id}/similar": _get(
        "Products most similar to a product (category, brand, gender, price).",
        [_PRODUCT, N_PARAM],
        {"200": _json(_ref("Similar"), "Similar products."), "400": _error("Bad `n`."), "404": _error("Unknown product.")},
    ),
    "/products/{product_id}/similarity/{other_id}": _get(
        "Similarity of two products, with its per-feature parts.",
        [_PRODUCT, _OTHER],
        {"200": _json(_ref("Similarity"), "Similarity."), "404": _error("Unknown product.")},
    ),
    "/products/{product_id}/bought-together": _get(
        "Products bought in the same basket (one customer, one calendar day, UTC) as this one, most shared baskets first; "
        "each shared at least `bought_together.min_support` times. Unavailable products are left out.",
        [_PRODUCT, N_PARAM],
        {
            "200": _json(_ref("BoughtTogether"), "Bought together (may be empty)."),
            "400": _error("Bad `n`."),
            "404": _error("Unknown product."),
        },
    ),
    "/products/{product_id}/availability": {
        **_get(
            "Whether a product may be recommended now: the catalog's `available` column, overridden by PUT.",
            [_PRODUCT],
            {"200": _json(_ref("Availability"), "Availability."), "404": _error("Unknown product.")},
        ),
        "put": _admin(
            "Make a product available or unavailable from the next request on, in every worker; its events still train models. "
            "Overrides the catalog's `available` column until changed again.",
            [_PRODUCT],
            _ref("AvailabilityChange"),
            {
                "200": _json(_ref("Availability"), "Changed (durable)."),
                "404": _error("Unknown product, or admin routes are off."),
                "503": _error("The live store cannot be written; nothing changed."),
            },
        ),
    },
    "/customers/{customer_id}": {
        "delete": _admin(
            "Forget a customer: their live events and hide list are removed at once, their sha256 joins the deletion list "
            "(ingest drops their events up to now from every later snapshot, so the next model has never seen them), "
            "and they get popular products from now on. The log names them by hash only.",
            [_CUSTOMER],
            None,
            {
                "200": _json(_ref("Forgotten"), "Forgotten (durable)."),
                "503": _error("The live store cannot be written; nothing changed."),
            },
        )
    },
    "/customers/{customer_id}/hidden": {
        "get": _admin("A customer's hide list, oldest first.", [_CUSTOMER], None, {"200": _json(_ref("Hidden"), "The hide list.")}),
        "post": _admin(
            "Hide products from a customer: never recommended to them again (recently-viewed leaves them out too), "
            "from the next request on. Called by the shop's backend on the customer's behalf, hence the admin token.",
            [_CUSTOMER],
            _ref("HideProducts"),
            {
                "200": _json(_ref("Hidden"), "The whole hide list after the change (durable)."),
                "404": _error("Unknown product, or admin routes are off."),
                "503": _error("The live store cannot be written; nothing changed."),
            },
        ),
    },
    "/popular": _get(
        "The most popular products.", [N_PARAM], {"200": _json(_ref("Popular"), "Popular products."), "400": _error("Bad `n`.")}
    ),
    "/events": {
        "post": {
            "summary": f"Store live events (one object or an array of up to {MAX_BATCH}); they affect the next recommendations.",
            "description": "All events are validated first; any error rejects the whole batch and nothing is stored. "
            "Stored events are on disk before the 201 is sent.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [_ref("Event"), {"type": "array", "items": _ref("Event"), "minItems": 1, "maxItems": MAX_BATCH}]
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("Accepted"), "All events stored."),
                "400": _error("Malformed JSON or an invalid event (the message names events[i].field)."),
                "413": _error("Body over 1 MB."),
                "503": _error("The live-event store cannot be written; nothing was stored."),
                **_DEFAULT,
            },
        }
    },
    "/health": _get("Liveness and the model this worker serves.", [], {"200": _json(_ref("Health"), "Health.")}),
    "/metrics": _get(
        "Prometheus metrics of this worker process.",
        [],
        {"200": {"description": "Prometheus text format 0.0.4.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
    ),
    "/openapi.json": _get("This document.", [], {"200": _json({"type": "object"}, "OpenAPI 3.0 document.")}),
    "/admin/reload": {
        "post": {
            "summary": "Load the version `current` names now (this worker; the others within their poll interval).",
            "security": ADMIN,
            "responses": {
                "200": _json(_ref("Reload"), "Reloaded, or already serving it."),
                "409": _error("The new version was refused (e.g. a checksum mismatch); the old one keeps serving."),
                **_ADMIN_ERRORS,
                **_DEFAULT,
            },
        }
    },
    "/admin/train": {
        "post": {
            "summary": "Start `recsys train --data DATA --artifacts ARTIFACTS` in the background.",
            "security": ADMIN,
            "responses": {
                "202": _json(_ref("TrainJob"), "Started; poll /admin/train/{job_id}."),
                "409": _error("A training job started by this worker is still running."),
                **_ADMIN_ERRORS,
                **_DEFAULT,
            },
        }
    },
    "/admin/train/{job_id}": _get(
        "Status of a training job, with the last lines of its output.",
        [_path_param("job_id", "The id POST /admin/train returned.")],
        {"200": _json(_ref("TrainJob"), "The job."), **_ADMIN_ERRORS},
        security=ADMIN,
    ),
    "/recommender/train": _get(
        "Compatibility: the original's training trigger; starts the same job as POST /admin/train "
        "(so a customer whose id is `train` is not reachable through this compatibility route).",
        [],
        {
            "202": _json(_ref("TrainJob"), "Started; poll /admin/train/{job_id}."),
            "409": _error("A training job started by this worker is still running."),
            **_ADMIN_ERRORS,
        },
        security=ADMIN,
    ),
    "/recommender/{customer_id}": _get(
        "Compatibility: recommendations as a plain list of product ids.",
        [_CUSTOMER, N_PARAM],
        {"200": _json(_ref("ProductIds"), "Product ids, best first."), "400": _error("Bad `n`.")},
    ),
    "/similarity/{product_id}": _get(
        "Compatibility: similar products as a plain list of product ids.",
        [_PRODUCT, N_PARAM],
        {
            "200": _json(_ref("ProductIds"), "Product ids, most similar first."),
            "400": _error("Bad `n`."),
            "404": _error("Unknown product."),
        },
    ),
    "/similarity/{product_id}/{other_id}": _get(
        "Compatibility: similarity of two products as a plain number.",
        [_PRODUCT, _OTHER],
        {"200": _json({"type": "number"}, "Similarity."), "404": _error("Unknown product.")},
    ),
}


def document(version: str) -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    import copy

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "recsys",
            "version": version,
            "description": "Personalized product recommendations. Every error body is an `Error`. Ids are strings.",
        },
        "paths": copy.deepcopy(PATHS),
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "The server's admin token."}},
        },
    }
