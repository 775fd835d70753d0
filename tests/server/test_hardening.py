"""A bad file or a hostile client degrades the service, never takes it down (issue 9, item 5).

Each failure ends in a one-line CLI error with its exit code, a JSON error with the right status,
or "degraded" in /health; no response shows an absolute path.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys_cli import artifacts as artifact_store
from recsys_cli.config import load_settings
from recsys_cli.live import LIVE_DB
from recsys_cli.server import create_app
from recsys_cli.training import train

from .conftest import copy_artifacts

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hardening-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLASHED = "bag/black=1"


@pytest.fixture(scope="module")
def slashed(tmp_path_factory) -> tuple[Path, Path]:
    """The sample plus a product whose id holds a slash (bought and viewed by sample customers)."""
    base = tmp_path_factory.mktemp("slashed")
    data = base / "data"
    shutil.copytree(ROOT / "data", data)
    catalog = pd.read_csv(data / "catalog.csv", dtype=str, keep_default_na=False)
    twin = catalog.iloc[0].copy()
    twin["product_id"] = SLASHED
    pd.concat([catalog, twin.to_frame().T]).to_csv(data / "catalog.csv", index=False)
    events = pd.read_csv(data / "events.csv", dtype=str)
    extra = events.head(40).assign(product_id=SLASHED)
    pd.concat([events, extra]).to_csv(data / "events.csv", index=False)
    train(data, base / "artifacts", load_settings(environ={"RECSYS_ROUTER__COLLABORATIVE": "itemknn"}))
    return data, base / "artifacts", catalog.iloc[0]["product_id"]


def test_product_ids_with_slashes_are_reachable(slashed):
    data, artifacts, twin = slashed
    client = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0}).test_client()
    response = client.get("/products/bag%2Fblack%3D1/similar?n=3")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["product_id"] == SLASHED and len(response.get_json()["items"]) == 3
    pair = client.get(f"/products/bag%2Fblack%3D1/similarity/{twin}")
    assert pair.status_code == 200 and pair.get_json()["similarity"] > 0.99  # the twin has the same catalog row
    assert client.get(f"/products/{twin}/similarity/bag%2Fblack%3D1").status_code == 200


@pytest.fixture
def served(trained, tmp_path):
    """An app over a private copy of the artifacts and data: (client, artifacts, data)."""
    artifacts = copy_artifacts(trained[1], tmp_path / "artifacts")
    data = tmp_path / "data"
    shutil.copytree(trained[0], data, ignore=shutil.ignore_patterns(f"{LIVE_DB}*"))
    app = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0, "ADMIN_TOKEN": TOKEN})
    return app.test_client(), artifacts, data


def no_paths(response, *roots: Path) -> None:
    text = response.get_data(as_text=True)
    for root in roots:
        assert str(root) not in text and str(root.parent) not in text, text


def point_outside(artifacts: Path) -> None:
    """A complete, verifiable version outside the artifacts folder, and `current` pointing at it."""
    name = artifact_store.current_version(artifacts)
    shutil.copytree(artifacts / "versions" / name, artifacts.parent / "outside" / name)
    (artifacts / "current").write_text(f"../../outside/{name}\n")


BAD_POINTERS = {
    "outside": point_outside,
    "parent": lambda a: (a / "current").write_text("..\n"),
    "binary": lambda a: (a / "current").write_bytes(bytes(range(256)) * 4),
    "directory": lambda a: ((a / "current").unlink(), (a / "current").mkdir()),
}


@pytest.mark.parametrize("kind", list(BAD_POINTERS))
def test_a_bad_current_is_a_degraded_health_and_a_409_reload(served, kind):
    client, artifacts, data = served
    serving = client.get("/health").get_json()["model_version"]
    BAD_POINTERS[kind](artifacts)
    health = client.get("/health")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "degraded" and body["model_version"] == serving and body["current_version"] is None
    assert "current" in body["last_reload_error"]
    no_paths(health, artifacts, data)
    reload = client.post("/admin/reload", headers=AUTH)
    assert reload.status_code == 409 and "still serving" in reload.get_json()["error"]["message"]
    assert client.get("/popular?n=3").status_code == 200


@pytest.mark.parametrize("kind", list(BAD_POINTERS))
def test_a_bad_current_is_a_one_line_cli_error(trained, tmp_path, run_cli, kind):
    artifacts = copy_artifacts(trained[1], tmp_path / "artifacts")
    BAD_POINTERS[kind](artifacts)
    result = run_cli("recommend", "someone", "--artifacts", artifacts)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "current" in result.stderr


def test_a_corrupt_live_store_still_serves_recommendations(served, trained):
    client, artifacts, data = served
    warm = pd.read_csv(trained[0] / "events.csv", dtype=str)["customer_id"].iloc[0]
    before = client.get(f"/recommendations/{warm}?n=5").get_json()["items"]
    (data / LIVE_DB).write_bytes(b"this is not a database" * 100)
    response = client.get(f"/recommendations/{warm}?n=5")
    assert response.status_code == 200 and response.get_json()["items"] == before
    health = client.get("/health")
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"
    assert "live events are not used" in health.get_json()["last_reload_error"]
    no_paths(health, artifacts, data)
    stored = client.post("/events", json={"customer_id": "c", "product_id": "p", "type": "view_product"})
    assert stored.status_code == 503  # an event that cannot be stored is never acknowledged
    no_paths(stored, artifacts, data)


def test_a_live_store_that_recovers_clears_the_degraded_state(served):
    client, artifacts, data = served
    (data / LIVE_DB).write_bytes(b"garbage" * 1000)
    assert client.get("/recommendations/c?n=3").status_code == 200
    assert client.get("/health").get_json()["status"] == "degraded"
    (data / LIVE_DB).unlink()  # the operator moves the broken file away
    assert client.get("/recommendations/c?n=3").status_code == 200
    assert client.get("/health").get_json()["status"] == "ok"
    assert client.post("/events", json={"customer_id": "c", "product_id": "p", "type": "view_product"}).status_code == 201


def test_a_second_training_job_is_a_409_across_workers(served):
    client, artifacts, data = served
    other_worker = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0, "ADMIN_TOKEN": TOKEN})
    quick = functools.partial(time.sleep, 2)  # a job's work runs in a child process: it must pickle
    client.application.extensions["recsys"].jobs.work = quick
    other_worker.extensions["recsys"].jobs.work = quick
    first = client.post("/admin/train", headers=AUTH)
    assert first.status_code == 202
    job = first.get_json()["job_id"]
    second = other_worker.test_client().post("/admin/train", headers=AUTH)
    assert second.status_code == 409
    assert f"/admin/train/{job}" in second.get_json()["error"]["message"]
    assert client.post("/admin/train", headers=AUTH).status_code == 409
    deadline = time.monotonic() + 30
    while client.get(f"/admin/train/{job}", headers=AUTH).get_json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert other_worker.test_client().post("/admin/train", headers=AUTH).status_code == 202  # free again once it ended


def test_a_training_job_while_recsys_train_runs_is_a_409(served):
    client, artifacts, data = served
    with artifact_store.train_lock(artifacts):
        response = client.post("/admin/train", headers=AUTH)
    assert response.status_code == 409 and "recsys train" in response.get_json()["error"]["message"]


def test_csv_output_escapes_cells_a_spreadsheet_would_run(trained, tmp_path, run_cli):
    hostile = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "plain"]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(hostile) + "\n", encoding="utf-8")
    out = tmp_path / "recs.csv"
    result = run_cli("recommend", "--customers-file", ids, "--format", "csv", "-o", out, "-n", "2", "--artifacts", trained[1])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(rows["customer_id"]) == {"'=cmd|' /C calc'!A0", "'+1+1", "'-2+3", "'@SUM(A1)", "plain"}
    assert not any(value.startswith(("=", "+", "-", "@", "\t")) for column in rows.columns for value in rows[column])


def test_a_non_utf8_line_with_too_many_fields_is_one_clean_error(tmp_path, run_cli, capfd):
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.csv").write_bytes(
        b"customer_id,product_id,type,timestamp\na,p,view_product,1700000000\nb,\xff\xfe,view_product,1700000000,extra,more\n"
    )
    result = run_cli("ingest", "--data", data, "--artifacts", tmp_path / "artifacts")
    assert result.exit_code == 2
    assert "events.csv: not valid UTF-8 at line 3" in result.stderr
    assert "Exception ignored" not in result.stderr + capfd.readouterr().err


def test_health_never_shows_absolute_paths(served):
    client, artifacts, data = served
    shutil.rmtree(artifacts / "versions")
    (artifacts / "current").write_text("20990101T000000.000000-1\n")
    body = client.get("/health")
    assert body.get_json()["status"] == "ok"  # nothing new to load yet: the poll decides
    reload = client.post("/admin/reload", headers=AUTH)
    assert reload.status_code == 409
    health = client.get("/health")
    assert health.get_json()["status"] == "degraded"
    no_paths(health, artifacts, data)
    assert json.dumps(health.get_json()).count("<artifacts>") >= 1


def test_events_for_products_outside_the_catalog_are_stored_and_counted(served):
    client, artifacts, data = served
    before = client.get("/health").get_json()["live_events"]
    hostile = "<img src=x onerror=alert(1)>"
    response = client.post("/events", json=[{"customer_id": f"bot-{i}", "product_id": hostile, "type": "purchase_item"} for i in range(30)])
    assert response.status_code == 201 and response.get_json() == {"accepted": 30}  # the validator does not judge the catalog
    assert client.get("/health").get_json()["live_events"] == before + 30


def test_a_degraded_health_matches_its_documented_schema(served):
    from .conftest import OpenAPIChecker

    client, artifacts, data = served
    (data / LIVE_DB).write_bytes(b"not sqlite" * 100)
    (artifacts / "current").write_text("..\n")
    api = OpenAPIChecker(client.get("/openapi.json").get_json())
    response = client.get("/health")
    api.check(response, "/health")
    assert response.get_json()["status"] == "degraded" and response.get_json()["live_events"] is None
