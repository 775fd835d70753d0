"""Ids are opaque strings: slashes, dots, percent escapes, unicode, control characters, 10 kB and
SQL-looking ids reach the routes and the live store unchanged, never break a route (documented
200/400/404 JSON, no 5xx), never touch a file outside the artifacts and data folders, and the
live store never builds SQL from them."""

from __future__ import annotations

import builtins
import io
import os
import re
import threading
from pathlib import Path
from urllib.parse import quote

import pytest

import recsys_cli.live
import recsys_cli.live_postgres
from recsys_cli.live import LiveStore
from recsys_cli.server import create_app

from ..conftest import train_copy

ROOT = Path(__file__).resolve().parents[2]
NASTY = [
    "a/b",
    "../../../../etc/passwd",
    "..",
    "%2F..%2Fsecret",
    "..%2f..%2fetc%2fpasswd",
    "C:\\Windows\\win.ini",
    "顧客-ü-🛒-ﷺ",
    "tab\tnew\nline\rbell\x07esc\x1bdel\x7f",
    "x" * 10_240,
    "'; DROP TABLE events; --",
    "1 OR 1=1",
    '" OR ""="',
    "?n=1&x=y#frag",
    " leading and trailing ",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path]:
    return train_copy(tmp_path_factory.mktemp("ids"), {"RECSYS_ROUTER__COLLABORATIVE": "itemknn"})


@pytest.fixture(scope="module")
def client(folders):
    data, artifacts = folders
    return create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0}).test_client()


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every path Python code opens on this thread while the test runs (builtins.open, io.open,
    os.open). The test client handles requests on this thread; other threads (a poll thread left
    by another app in the same test process) are not this test's requests."""
    paths: list[str] = []
    me = threading.get_ident()

    def recording(original):
        def wrapper(file, *args, **kwargs):
            if threading.get_ident() == me and isinstance(file, (str, bytes, os.PathLike)):
                paths.append(os.fsdecode(file))
            return original(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", recording(builtins.open))
    monkeypatch.setattr(io, "open", recording(io.open))
    monkeypatch.setattr(os, "open", recording(os.open))
    return paths


def assert_json_answer(response, allowed: set[int]) -> dict | list:
    assert response.status_code in allowed, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.is_json, response.mimetype
    body = response.get_json()
    if response.status_code >= 400:
        assert body["error"]["status"] == response.status_code and body["error"]["message"]
    return body


def urls(identifier: str) -> list[tuple[str, set[int]]]:
    """Every GET route with `identifier` in each id position, percent-encoded (slashes included) and raw."""
    encoded = quote(identifier, safe="")
    product = "10117"
    return [
        (f"/recommendations/{encoded}?n=3", {200}),
        (f"/recommender/{encoded}?n=3", {200}),
        (f"/recommendations/{quote(identifier, safe='/')}?n=3", {200, 404}),  # raw slashes; `..` segments may be normalised away
        (f"/products/{encoded}/similar?n=3", {404}),
        (f"/products/{encoded}/similarity/{product}", {404}),
        (f"/products/{product}/similarity/{encoded}", {404}),
        (f"/similarity/{encoded}?n=3", {404}),
        (f"/similarity/{encoded}/{product}", {404}),
        (f"/recommendations/{product}?n=3&exclude={encoded}&brand={encoded}&category={encoded}&gender={encoded}", {200}),
    ]


@pytest.mark.parametrize("identifier", NASTY, ids=lambda s: repr(s)[:24])
def test_get_routes_treat_ids_as_opaque_strings(client, folders, opened, identifier):
    for url, allowed in urls(identifier):
        body = assert_json_answer(client.get(url), allowed)
        if url.startswith("/recommendations/" + quote(identifier, safe="")):
            assert body["customer_id"] == identifier  # percent-encoded: arrives byte-identical
            assert body["source"] == "popularity" and len(body["items"]) == 3
    roots = [str(folder.resolve()) for folder in folders]
    outside = [path for path in opened if not any(str(Path(path).resolve()).startswith(root) for root in roots)]
    assert outside == [], outside


def test_events_with_nasty_ids_round_trip_exactly(client, folders, opened):
    data, _ = folders
    events = [
        {"customer_id": customer, "product_id": product, "type": "view_product", "timestamp": 1_700_000_000 + i}
        for i, (customer, product) in enumerate(zip(NASTY, reversed(NASTY), strict=True))
    ]
    response = client.post("/events", json=events)
    assert assert_json_answer(response, {201}) == {"accepted": len(events)}
    stored = LiveStore.in_folder(data).to_frame()
    rows = stored[stored["timestamp"].between(1_700_000_000, 1_700_000_000 + len(NASTY))]
    assert list(zip(rows["customer_id"], rows["product_id"], rows["timestamp"], strict=True)) == [
        (e["customer_id"], e["product_id"], e["timestamp"]) for e in events
    ]
    assert [c.encode("utf-8") for c in rows["customer_id"]] == [e["customer_id"].encode("utf-8") for e in events]
    for event in events:  # the events table survived the "DROP TABLE" id, and each customer sees their own live event
        body = client.get(f"/recommendations/{quote(event['customer_id'], safe='')}?n=3").get_json()
        assert body["customer_id"] == event["customer_id"]
    assert LiveStore.in_folder(data).count() >= len(events)
    assert client.get("/health").status_code == 200  # reads ARTIFACTS/current: proves the recorder sees opens
    assert opened, "the open() recorder saw nothing"
    roots = [str(folder.resolve()) for folder in folders]
    assert [p for p in opened if not any(str(Path(p).resolve()).startswith(root) for root in roots)] == []


def test_events_reject_ids_that_are_not_strings_or_empty(client, folders):
    before = LiveStore.in_folder(folders[0]).count()
    for bad in ("", "   ", 42, None, ["a"], {"a": 1}):
        response = client.post("/events", json={"customer_id": bad, "product_id": "10117", "type": "view_product"})
        error = assert_json_answer(response, {400})["error"]
        assert "events[0].customer_id" in error["message"]
    assert LiveStore.in_folder(folders[0]).count() == before


@pytest.mark.parametrize("module", [recsys_cli.live, recsys_cli.live_postgres], ids=["sqlite", "postgres"])
def test_live_store_builds_no_sql_from_strings(module):
    """Every execute* call of both stores takes a literal SQL string or one of the fixed statements
    (`Statements`, built once from table names and placeholders); values only travel as parameters."""
    source = Path(module.__file__).read_text(encoding="utf-8")
    calls = re.findall(r"\.(?:execute|executemany|executescript)\(([^,)]*)", source)
    assert calls, "no SQL calls found: the check is looking at the wrong thing"
    for argument in calls:
        argument = argument.strip()
        assert argument.startswith(('"', "self.sql.")) or argument in {"sql", "_SCHEMA"}, f"SQL built from an expression: {argument}"
    assert not re.search(r"""execute\w*\(\s*f["']""", source)
    assert not re.search(r"""(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)[^"\n]*"\s*(%|\.format\(|\+)""", source)
    # the fixed statements are built from literals and module constants (table names) only
    built = re.findall(r"Statements\.of\(([^)]*)\)", source)
    assert built, "no Statements.of call found: the check is looking at the wrong thing"
    for arguments in built:
        for argument in filter(None, (a.strip() for a in arguments.split(","))):
            value = argument.partition("=")[2].strip() if "=" in argument else argument
            assert value.startswith('"') or re.fullmatch(r"[A-Z_]+", value), f"Statements built from an expression: {argument}"
    # `sql` is only ever a literal or one of the fixed statements
    for match in re.finditer(r"self\._(?:query|read_for_request)\(\s*([^,)]+)", source):
        argument = match.group(1).strip()
        assert argument.startswith('"') or argument.startswith("self.sql.") or argument == "sql", match.group(0)
