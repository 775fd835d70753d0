"""One contract for both live-event stores (SQLite, PostgreSQL): what the server and training rely on."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from recsys_cli.errors import InputError, LiveStoreError
from recsys_cli.live import Controls, LiveStore, open_live_store
from recsys_cli.live_postgres import PostgresLiveStore, redact

ODD_IDS = ["'; DROP TABLE events; --", "ümlaut-ü", "a/b?c=d", "x" * 300]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path: Path) -> str:
    """A URL for an empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'live.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path):
    opened = open_live_store(tmp_path, store_url)
    yield opened
    opened.close()


class TestLiveStoreContract:
    def test_a_customers_events_come_back_newest_first_and_limited(self, store):
        store.append([("c1", "p1", 0, 100), ("c2", "p9", 2, 101), ("c1", "p2", 1, 102), ("c1", "p3", 2, 103)])
        assert store.for_customer("c1") == [("p3", 2, 103), ("p2", 1, 102), ("p1", 0, 100)]
        assert store.for_customer("c1", limit=2) == [("p3", 2, 103), ("p2", 1, 102)]
        assert store.for_customer("nobody") == []
        assert store.read_error is None

    def test_count_and_watermark_change_with_every_batch(self, store):
        assert store.count() == 0 and store.watermark() == (0, 0)
        assert store.append([("c1", "p1", 0, 1), ("c1", "p2", 0, 2)]) == 2
        first = store.watermark()
        assert first[0] == 2 and store.count() == 2
        assert store.append([]) == 0
        assert store.watermark() == first
        store.append([("c2", "p1", 2, 3)])
        assert store.watermark()[0] == 3 and store.watermark()[1] > first[1]

    def test_to_frame_is_canonical_events_oldest_first(self, store):
        empty = store.to_frame()
        assert list(empty.columns) == ["customer_id", "product_id", "type", "timestamp"] and len(empty) == 0
        assert empty["type"].dtype == np.int8 and empty["timestamp"].dtype == np.int64
        store.append([("c1", "p1", 0, 1_700_000_000), ("c2", "p2", 2, 1_700_000_001)])
        frame = store.to_frame()
        assert frame.to_dict("list") == {
            "customer_id": ["c1", "c2"],
            "product_id": ["p1", "p2"],
            "type": [0, 2],
            "timestamp": [1_700_000_000, 1_700_000_001],
        }
        assert frame["type"].dtype == np.int8 and frame["timestamp"].dtype == np.int64

    def test_ids_are_opaque_strings(self, store):
        store.append([(odd, odd, 1, 5) for odd in ODD_IDS])
        for odd in ODD_IDS:
            assert store.for_customer(odd) == [(odd, 1, 5)]
        assert store.count() == len(ODD_IDS)

    def test_another_process_opening_the_same_store_sees_every_acknowledged_event(self, store_url, tmp_path):
        writer, reader = open_live_store(tmp_path, store_url), open_live_store(tmp_path, store_url)
        try:
            writer.append([("c1", "p1", 0, 1)])
            assert reader.for_customer("c1") == [("p1", 0, 1)]
            reader.append([("c1", "p2", 2, 2)])
            assert writer.for_customer("c1")[0] == ("p2", 2, 2)
        finally:
            writer.close()
            reader.close()

    def test_concurrent_writers_lose_nothing(self, store):
        def post(worker: int) -> None:
            for batch in range(10):
                store.append([(f"c{worker}", f"p{batch}-{i}", 0, batch) for i in range(5)])

        threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count() == 4 * 10 * 5
        assert len(store.to_frame()) == 200


@pytest.mark.postgres
class TestControlsContract:
    """Availability overrides, hide lists and the deletion list: durable, and one generation that moves with them."""

    def test_availability_overrides_move_the_generation(self, store):
        assert store.controls("c1") == Controls(0, ()) and store.availability() == {}
        store.set_availability(["p1", "p2"], False, at=10)
        first = store.controls("c1").generation
        assert first > 0 and store.availability() == {"p1": False, "p2": False}
        store.set_availability(["p1"], True, at=11)
        assert store.availability() == {"p1": True, "p2": False} and store.controls("c1").generation > first

    def test_a_hide_list_is_per_customer_and_reads_with_the_controls(self, store):
        assert store.hide("c1", ["p2", "p1"], at=1) == 2
        assert store.hide("c1", ["p1", "p3"], at=2) == 1  # p1 was already hidden
        assert store.controls("c1").hidden[2] == "p3"  # oldest first
        assert sorted(store.controls("c1").hidden) == ["p1", "p2", "p3"] and store.hidden("c2") == []
        assert store.controls("c2").hidden == ()

    def test_a_request_reads_events_and_controls_in_one_round_trip(self, store):
        assert store.for_request("c1") == ([], Controls(0, ()))
        store.append([("c1", "p1", 0, 100), ("c2", "p9", 2, 101), ("c1", "p2", 1, 99), ("c1", "p3", 2, 103)])
        store.hide("c1", ["h1"], at=5)
        store.hide("c1", ["h2"], at=6)
        store.set_availability(["p1"], False, at=7)
        events, controls = store.for_request("c1", limit=2)
        assert events == store.for_customer("c1", limit=2) == [("p3", 2, 103), ("p2", 1, 99)]
        assert controls == store.controls("c1") and controls.hidden == ("h1", "h2") and controls.generation > 0
        assert store.for_request("c2") == ([("p9", 2, 101)], Controls(controls.generation, ()))

    def test_forget_removes_events_and_hide_list_and_keeps_only_a_hash(self, store):
        store.append([("c1", "p1", 0, 1), ("c1", "p2", 2, 2), ("c2", "p1", 0, 3)])
        store.hide("c1", ["p9"], at=1)
        before = store.controls("c1").generation
        assert store.forget("c1", "hash-of-c1", at=100) == 2
        assert store.for_customer("c1") == [] and store.hidden("c1") == [] and len(store.for_customer("c2")) == 1
        assert store.forgotten() == {"hash-of-c1": 100} and store.controls("c2").generation > before
        assert "c1" not in set(store.to_frame()["customer_id"])


def test_an_unreachable_database_fails_writes_and_serves_reads_without_live_events():
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = PostgresLiveStore(f"postgresql://someone:secret@127.0.0.1:{port}/shop")
    with pytest.raises(LiveStoreError) as raised:
        store.append([("c1", "p1", 0, 1)])
    assert "nothing was written" in str(raised.value) and "secret" not in str(raised.value)
    assert store.for_customer("c1") == []
    assert store.read_error and "secret" not in store.read_error
    with pytest.raises(LiveStoreError):
        store.count()


@pytest.mark.postgres
def test_a_search_path_in_the_url_keeps_two_shops_apart(postgres_url):
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute("CREATE SCHEMA shop1")
        connection.execute("CREATE SCHEMA shop2")
    one = open_live_store(Path("."), postgres_url + "?options=-csearch_path%3Dshop1")
    two = open_live_store(Path("."), postgres_url + "?options=-csearch_path%3Dshop2")
    one.append([("c1", "p1", 0, 1)])
    assert one.count() == 1 and two.count() == 0


def test_the_url_chooses_the_backend(tmp_path):
    assert isinstance(open_live_store(tmp_path), LiveStore)
    assert open_live_store(tmp_path).where == str(tmp_path / "live_events.sqlite")
    assert isinstance(open_live_store(tmp_path, f"sqlite://{tmp_path}/other.sqlite"), LiveStore)
    assert isinstance(open_live_store(tmp_path, "postgresql://h/db"), PostgresLiveStore)
    assert isinstance(open_live_store(tmp_path, "postgres://h/db"), PostgresLiveStore)
    with pytest.raises(InputError, match="postgresql:// or sqlite://"):
        open_live_store(tmp_path, "mysql://h/db")


def test_messages_never_show_the_password():
    assert redact("postgresql://shop:hunter2@db.internal:5433/live") == "postgresql://shop:***@db.internal:5433/live"
    assert redact("postgresql://db.internal/live") == "postgresql://db.internal/live"
    assert "hunter2" not in open_live_store(Path("."), "postgresql://shop:hunter2@h/db").where


@pytest.mark.postgres
def test_train_folds_in_the_postgresql_live_events(tmp_path, postgres_url):
    import shutil

    from recsys_cli import artifacts as artifact_store
    from recsys_cli.config import load_settings
    from recsys_cli.training import train

    from .conftest import SAMPLE

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    open_live_store(data, postgres_url).append([("live-only-customer", "10117", 2, 1_700_000_000)])
    settings = load_settings(
        environ={"RECSYS_ROUTER__COLLABORATIVE": "itemknn", "RECSYS_ROUTER__FEW": "same", "RECSYS_POPULARITY__MODE": "customers"}
    )
    messages: list[str] = []
    outcome = train(data, tmp_path / "artifacts", settings, live_store=postgres_url, log=messages.append)
    assert any("including 1 live events from postgresql://" in m for m in messages)
    loaded = artifact_store.load(tmp_path / "artifacts", outcome.version)
    assert loaded.manifest["live_events"] == 1
    assert loaded.parts["dataset"].users.get("live-only-customer") >= 0  # the live customer was trained on
    assert not (data / "live_events.sqlite").exists()  # the SQLite default was not consulted (or created)
