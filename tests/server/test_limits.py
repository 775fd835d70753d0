"""The limits the OpenAPI document states (recsys_cli.limits) are the ones the server and the service enforce."""

from __future__ import annotations

import pytest

from recsys_cli.limits import MAX_BATCH, MAX_BODY, MAX_N
from recsys_cli.server import create_app


@pytest.fixture(scope="module")
def client(trained, tmp_path_factory):
    data = tmp_path_factory.mktemp("limits-data")  # live events posted here stay out of the shared data folder
    return create_app({"ARTIFACTS": trained[1], "DATA": data, "POLL_SECONDS": 0}).test_client()


def test_n_up_to_the_documented_maximum_is_served_and_one_more_is_a_400(client):
    spec = client.get("/openapi.json").get_json()
    n_param = next(p for p in spec["paths"]["/popular"]["get"]["parameters"] if p["name"] == "n")
    assert n_param["schema"]["maximum"] == MAX_N
    assert client.get(f"/popular?n={MAX_N}").status_code == 200
    assert client.get(f"/popular?n={MAX_N + 1}").status_code == 400


def test_a_batch_of_the_documented_size_is_stored_and_one_more_event_refuses_it(client):
    event = {"customer_id": "c", "product_id": "p", "type": "view_product"}
    assert client.post("/events", json=[event] * MAX_BATCH).get_json() == {"accepted": MAX_BATCH}
    refused = client.post("/events", json=[event] * (MAX_BATCH + 1))
    assert refused.status_code == 400 and f"at most {MAX_BATCH:,}" in refused.get_json()["error"]["message"]


def test_a_body_over_the_limit_is_a_413(client):
    response = client.post("/events", data=b" " * (MAX_BODY + 1), content_type="application/json")
    assert response.status_code == 413
