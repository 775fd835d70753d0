"""The shop's controls over REST (issue 12); every response is validated against /openapi.json."""

from __future__ import annotations

import pytest

from recsys_cli.privacy import customer_hash
from recsys_cli.server import create_app

from .conftest import OpenAPIChecker

TOKEN = "shop-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def app(trained, tmp_path_factory):
    """Its own data folder: what these tests change in the live store stays out of other modules."""
    return create_app({"ARTIFACTS": trained[1], "DATA": tmp_path_factory.mktemp("shop-data"), "POLL_SECONDS": 0, "ADMIN_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


@pytest.fixture(scope="module")
def api(client) -> OpenAPIChecker:
    return OpenAPIChecker(client.get("/openapi.json").get_json())


@pytest.fixture(scope="module")
def warm(app) -> str:
    dataset = app.extensions["recsys"].service.dataset
    return str(dataset.users.external_ids[int(dataset.pairs["user"].value_counts().index[0])])


def call(client, api, template: str, url: str, method: str = "get", **kwargs):
    response = getattr(client, method)(url, **kwargs)
    api.check(response, template, method)
    return response


def products(response) -> list[str]:
    return [item["product_id"] for item in response.get_json()["items"]]


AVAILABILITY = "/products/{product_id}/availability"


def test_put_availability_takes_effect_at_the_next_request(client, api, warm):
    first = products(client.get(f"/recommendations/{warm}?n=5"))[0]
    popular = products(client.get("/popular?n=1"))[0]
    for product in (first, popular):
        response = call(client, api, AVAILABILITY, f"/products/{product}/availability", "put", json={"available": False}, headers=AUTH)
        assert response.status_code == 200 and response.get_json() == {"product_id": product, "available": False}
    assert first not in products(client.get(f"/recommendations/{warm}?n=5"))
    assert popular not in products(client.get("/popular?n=5")) and popular not in products(client.get("/recommendations/nobody?n=5"))
    assert call(client, api, AVAILABILITY, f"/products/{first}/availability").get_json()["available"] is False
    for product in (first, popular):
        client.put(f"/products/{product}/availability", json={"available": True}, headers=AUTH)
    assert products(client.get(f"/recommendations/{warm}?n=5"))[0] == first


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"available": "no"}, 400, '{"available": false}'),
        ({"available": False, "extra": 1}, 400, '{"available": false}'),
        ([False], 400, '{"available": false}'),
    ],
)
def test_bad_availability_bodies_are_400s(client, api, body, status, message):
    product = products(client.get("/popular?n=1"))[0]
    response = call(client, api, AVAILABILITY, f"/products/{product}/availability", "put", json=body, headers=AUTH)
    assert response.status_code == status and message in response.get_json()["error"]["message"]


def test_availability_needs_the_admin_token_and_a_known_product(client, api):
    product = products(client.get("/popular?n=1"))[0]
    assert call(client, api, AVAILABILITY, f"/products/{product}/availability", "put", json={"available": False}).status_code == 401
    assert client.get("/popular?n=1").get_json()["items"][0]["product_id"] == product
    response = call(client, api, AVAILABILITY, "/products/nope/availability", "put", json={"available": False}, headers=AUTH)
    assert response.status_code == 404 and "unknown product 'nope'" in response.get_json()["error"]["message"]
    empty = call(client, api, AVAILABILITY, f"/products/{product}/availability", "put", data=b"", headers=AUTH)
    assert empty.status_code == 400 and "empty" in empty.get_json()["error"]["message"]


HIDDEN = "/customers/{customer_id}/hidden"


def test_a_hidden_product_never_comes_back_over_rest(client, api, warm):
    first, second = products(client.get(f"/recommendations/{warm}?n=5"))[:2]
    response = call(client, api, HIDDEN, f"/customers/{warm}/hidden", "post", json={"product_ids": [first]}, headers=AUTH)
    assert response.status_code == 200 and response.get_json() == {"customer_id": warm, "product_ids": [first]}
    assert products(client.get(f"/recommendations/{warm}?n=5"))[0] == second
    assert first not in products(client.get(f"/recommendations/{warm}?n=50&min_price=0"))
    assert call(client, api, HIDDEN, f"/customers/{warm}/hidden", headers=AUTH).get_json()["product_ids"] == [first]
    assert call(client, api, HIDDEN, f"/customers/{warm}/hidden").status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"product_ids": []}, 400, "product_ids must have 1 to"),
        ({"product_ids": "abc"}, 400, "product_ids must be a list"),
        ({"products": ["a"]}, 400, '{"product_ids": ['),
        ({"product_ids": ["no-such-product"]}, 404, "unknown product 'no-such-product'"),
        ({"product_ids": ["\ud800"]}, 400, "product_ids is not valid Unicode"),  # JSON carries lone surrogates (was a 500)
    ],
)
def test_bad_hide_requests_are_clear_errors(client, api, body, status, message):
    response = call(client, api, HIDDEN, "/customers/c-9/hidden", "post", json=body, headers=AUTH)
    assert response.status_code == status and message in response.get_json()["error"]["message"]


def test_category_and_brand_filters_take_several_values(client, api, app, warm):
    catalog = app.extensions["recsys"].service.dataset.catalog
    roots = catalog["category_path"].dropna().str.split("|").str[0].value_counts().index[:2].tolist()
    query = "&".join(f"category={root}" for root in roots)
    items = call(client, api, "/recommendations/{customer_id}", f"/recommendations/{warm}?n=30&{query}").get_json()["items"]
    assert {item["category_path"].split("|")[0] for item in items} == set(roots)


def test_bought_together_over_rest(client, api, app):
    service = app.extensions["recsys"].service
    together = service.together
    product_index = int((together.ids[:, 0] >= 0).argmax())  # a product with a partner in the sample, if any
    product = str(service.dataset.items.external_ids[product_index])
    body = call(client, api, "/products/{product_id}/bought-together", f"/products/{product}/bought-together?n=3").get_json()
    assert body["product_id"] == product and body["items"] == service.bought_together(product, 3)
    assert all(item["baskets"] >= 2 and item["reason"].startswith(f"bought with {product}") for item in body["items"])
    missing = call(client, api, "/products/{product_id}/bought-together", "/products/nope/bought-together")
    assert missing.status_code == 404


def test_forgetting_a_customer_over_rest_logs_only_a_hash(client, api, app, caplog):
    import logging

    dataset = app.extensions["recsys"].service.dataset
    customer = str(dataset.users.external_ids[int(dataset.pairs["user"].value_counts().index[1])])
    client.post("/events", json={"customer_id": customer, "product_id": str(dataset.items.external_ids[0]), "type": "view_product"})
    assert call(client, api, "/customers/{customer_id}", f"/customers/{customer}", "delete").status_code == 401
    with caplog.at_level(logging.INFO):
        response = call(client, api, "/customers/{customer_id}", f"/customers/{customer}", "delete", headers=AUTH)
    assert response.status_code == 200 and response.get_json() == {"customer_hash": customer_hash(customer), "live_events_removed": 1}
    assert customer not in caplog.text and customer_hash(customer) in caplog.text
    answer = client.get(f"/recommendations/{customer}?n=5").get_json()
    assert answer["source"] == "popularity" and answer["items"] == client.get("/recommendations/nobody-at-all?n=5").get_json()["items"]


def test_a_requests_own_rules_boost_and_pin(client, api, warm):
    template = "/recommendations/{customer_id}"
    plain = products(client.get(f"/recommendations/{warm}?n=5"))
    pinned = call(client, api, template, f"/recommendations/{warm}?n=5&pin={plain[4]}:1")
    assert products(pinned)[0] == plain[4] and pinned.get_json()["items"][0]["source"] == "rules"
    bad = call(client, api, template, f"/recommendations/{warm}?boost=brand:Acme:lots")
    assert bad.status_code == 400 and "request: boost 'brand:Acme:lots' must be FIELD:VALUE:FACTOR" in bad.get_json()["error"]["message"]
    unknown = call(client, api, template, f"/recommendations/{warm}?pin=no-such-product:1")
    assert unknown.status_code == 404 and "unknown product 'no-such-product'" in unknown.get_json()["error"]["message"]
