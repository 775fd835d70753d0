"""The event rules (recsys_cli/data/events.py) hold the same way for CSV ingest, POST /events and --viewed."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from recsys_cli.data.events import EventRules, check_ids, from_json
from recsys_cli.data.ingest import ingest
from recsys_cli.errors import EventsError, InputError

from ..conftest import EVENTS_HEADER, write

NOW = time.time()
DAY = 86400


def ingested(tmp_path, rows: list[str], rules: EventRules | None = None):
    folder = tmp_path / "data"
    write(folder, "events.csv", EVENTS_HEADER + "".join(f"{row}\n" for row in rows))
    return ingest(folder, tmp_path / "artifacts", rules=rules)


def reasons_of(snapshot) -> dict[int, str]:
    return dict(zip(snapshot.rejects["line"], snapshot.rejects["reason"]))


def test_mixed_seconds_and_milliseconds_are_reported_not_read_as_1970(tmp_path):
    rows = [f"c{i},p{i},view_product,{1_700_000_000 + i}" for i in range(8)]
    rows += ["c8,p8,view_product,1700000000123", "c9,p9,view_product,1700000000456"]
    snapshot = ingested(tmp_path, rows)
    assert sorted(snapshot.events()["timestamp"]) == [1_700_000_000 + i for i in range(8)]  # nothing near 1970
    reasons = reasons_of(snapshot)
    assert reasons[10] == "timestamp in milliseconds among unix seconds ('1700000000123'; mixed units in one file or request)"
    assert "events.csv: timestamps read as unix seconds; 2 in milliseconds rejected (mixed units)" in snapshot.summary["notes"]


def test_far_future_timestamps_are_refused_with_a_configurable_skew(tmp_path):
    soon, later = int(NOW + 3600), int(NOW + 3 * DAY)
    rows = [f"c1,p1,view_product,{soon}", f"c2,p2,view_product,{later}", "c3,p3,view_product,2099-12-31T23:59:59"]
    rows += [f"c{i},p{i},view_product,{int(NOW) - i}" for i in range(4, 10)]
    snapshot = ingested(tmp_path, rows)
    reasons = reasons_of(snapshot)
    assert set(reasons) == {3, 4}
    assert reasons[3].startswith(f"timestamp in the future ('{later}', more than 1 day after now")
    assert reasons[4].startswith("timestamp in the future ('2099-12-31T23:59:59'")
    lenient = ingested(tmp_path / "lenient", rows, EventRules(max_future_seconds=7 * DAY))
    assert set(reasons_of(lenient)) == {4}


def test_a_400_digit_integer_is_a_reported_row_not_a_crash(tmp_path):
    rows = ["c1,p1,view_product," + "9" * 400] + [f"c{i},p{i},view_product,{1_700_000_000 + i}" for i in range(2, 6)]
    snapshot = ingested(tmp_path, rows)
    assert reasons_of(snapshot)[2].startswith("timestamp too large ('99999")
    assert len(snapshot.events()) == 4


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("customer_id", "  ", "empty customer_id"),
        ("product_id", "", "empty product_id"),
        ("type", "teleport", "unknown event type 'teleport' (one of view_product, add_to_cart, purchase_item)"),
        ("timestamp", "soon", "unparseable timestamp 'soon' (unix seconds, unix milliseconds or ISO-8601)"),
        ("timestamp", "-5", "timestamp before 1970 ('-5')"),
        ("timestamp", "9999-12-31T23:59:59", "timestamp in the future ('9999-12-31T23:59:59', more than 1 day after now)"),
    ],
)
def test_ingest_and_rest_refuse_the_same_values_for_the_same_reason(tmp_path, field, value, reason):
    good = {"customer_id": "c1", "product_id": "p1", "type": "view_product", "timestamp": "1700000000"}
    bad = {**good, field: value}
    rows = [",".join(bad.values())] + [f"c{i},p{i},view_product,{1_700_000_000 + i}" for i in range(2, 6)]
    assert reasons_of(ingested(tmp_path, rows))[2] == reason
    with pytest.raises(EventsError) as refused:
        from_json([good, bad], now=NOW)
    assert refused.value.details == [f"events[1].{field}: {reason}"]


def test_rest_rows_are_parsed_like_ingest_rows():
    rows = from_json(
        [
            {"customer_id": "a", "product_id": "1", "type": "purchase_item", "timestamp": "2024-01-01T00:00:00Z"},
            {"customer_id": "a", "product_id": "2", "type": "view_product"},
        ],
        now=1_750_000_000.7,
    )
    assert rows == [("a", "1", 2, 1_704_067_200), ("a", "2", 0, 1_750_000_000)]


def test_viewed_ids_follow_the_id_rules():
    assert check_ids(["10117", "a/b"], "product_id") == ["10117", "a/b"]
    with pytest.raises(InputError, match="empty product_id"):
        check_ids(["10117", " "], "product_id")


def test_a_clean_file_has_no_problems(tmp_path):
    snapshot = ingested(tmp_path, [f"c{i},p{i},view_product,{1_700_000_000 + i}" for i in range(5)])
    assert snapshot.rejects.empty and isinstance(snapshot.events(), pd.DataFrame)
