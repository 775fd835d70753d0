"""REST routes for the shop's own controls and scenarios (issue 12), as thin as the others.

Each route parses the request, calls one service method and formats the answer. What they change
lives in the live store (durable, shared by every worker and replica), so it counts from the next
request on. Registered by `server.create_app`, which turns errors into responses.
"""

from __future__ import annotations

from flask import Blueprint, Response, g, jsonify

from .errors import InputError
from .privacy import customer_hash
from .web import json_body, n_arg, require_admin, server_state

shop = Blueprint("shop", __name__)


@shop.get("/products/<idpath:product_id>/availability")
def get_availability(product_id: str) -> Response:
    return jsonify(server_state().service.availability(product_id))


@shop.put("/products/<idpath:product_id>/availability")
def put_availability(product_id: str) -> Response:
    service = require_admin().service
    body = json_body()
    if not isinstance(body, dict) or set(body) != {"available"} or not isinstance(body["available"], bool):
        raise InputError('the body must be {"available": true} or {"available": false}')
    service.set_availability([product_id], body["available"])
    return jsonify(service.availability(product_id))


@shop.post("/customers/<idpath:customer_id>/hidden")
def hide(customer_id: str) -> Response:
    service = require_admin().service
    body = json_body('{"product_ids": ["..."]}')
    if not isinstance(body, dict) or set(body) != {"product_ids"}:
        raise InputError('the body must be {"product_ids": ["<product id>", ...]}')
    return jsonify(service.hide(customer_id, body["product_ids"]))


@shop.get("/customers/<idpath:customer_id>/hidden")
def hidden(customer_id: str) -> Response:
    return jsonify(require_admin().service.hidden(customer_id))


@shop.get("/products/<idpath:product_id>/bought-together")
def bought_together(product_id: str) -> Response:
    service = server_state().service
    return jsonify({"product_id": product_id, "model_version": service.version, "items": service.bought_together(product_id, n_arg())})


@shop.delete("/customers/<idpath:customer_id>")
def forget(customer_id: str) -> Response:
    g.recsys_logged_path = f"/customers/sha256:{customer_hash(customer_id)}"  # the access log never shows this id
    return jsonify(require_admin().service.forget(customer_id))
