"""The event rules (recsys_cli/data/events.py) hold the same way for CSV ingest, POST /events and --viewed."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys_cli.data import events as events_module
from recsys_cli.data.events import EventRules, check_events, check_ids, from_json
from recsys_cli.data.ingest import ingest
from recsys_cli.data.schema import EVENT_CODE
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


# --- the validator itself: check_events and the JSON shapes of POST /events ------------------------


def frame(**columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns, dtype=object)


def test_check_events_parses_good_rows_and_names_the_first_problem_of_a_bad_one():
    checked = check_events(
        frame(
            customer_id=["a", "b", "", "d"],
            product_id=["x", "y", "z", "w"],
            type=["view_product", "purchase_item", "add_to_cart", "teleport"],
            timestamp=["1700000000", "2024-01-01T00:00:00Z", "1700000001", "1700000002"],
        ),
        now=1_750_000_000,
    )
    assert checked.ok.tolist() == [True, True, False, False]
    assert checked.type_code[:2].tolist() == [0, 2] and checked.timestamp[:2].tolist() == [1_700_000_000, 1_704_067_200]
    assert checked.first_problem().tolist()[2:] == [
        "empty customer_id",
        "unknown event type 'teleport' (one of view_product, add_to_cart, purchase_item)",
    ]
    assert checked.notes == ["timestamps read as unix seconds and ISO-8601"]


def test_all_milliseconds_are_read_as_milliseconds():
    checked = check_events(
        frame(customer_id=["a", "b"], product_id=["x", "y"], type=["view_product"] * 2, timestamp=["1700000000123", "1700000001999"]),
        now=1_750_000_000,
    )
    assert checked.ok.all() and checked.timestamp.tolist() == [1_700_000_000, 1_700_000_001]


def test_the_future_limit_is_a_rule_zero_allows_nothing_ahead_of_now():
    ahead = frame(customer_id=["a"], product_id=["x"], type=["view_product"], timestamp=["1750000060"])
    assert check_events(ahead, now=1_750_000_000).ok.all()
    assert not check_events(ahead, now=1_750_000_000, rules=EventRules(max_future_seconds=0)).ok.any()
    with pytest.raises(InputError, match="max_future_seconds must be 0 or more"):
        EventRules(max_future_seconds=-1)


EVENT = {"customer_id": "a", "product_id": "b", "type": "view_product"}


@pytest.mark.parametrize(
    ("body", "details"),
    [
        ([1], ["events[0]: must be an object, got a number"]),
        (
            [{"customer_id": "a"}],
            ["events[0].product_id: missing", "events[0].type: missing (one of view_product, add_to_cart, purchase_item)"],
        ),
        ([{**EVENT, "extra": 1}], ["events[0]: unknown field 'extra' (allowed: customer_id, product_id, type, timestamp)"]),
        ([EVENT, {**EVENT, "customer_id": 1}], ["events[1].customer_id: must be a string, got a number 1"]),
    ],
)
def test_every_problem_of_a_json_body_is_listed_by_position_and_field(body, details):
    with pytest.raises(EventsError) as refused:
        from_json(body, now=NOW)
    assert refused.value.details == details and str(refused.value).endswith("nothing was stored")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the array is empty"),
        (5, "must be an event object or an array of them, got a number"),
        ([EVENT] * 3, "3 events in one request; at most 2"),
    ],
)
def test_a_json_body_of_the_wrong_shape_or_size_is_refused_whole(body, message):
    with pytest.raises(EventsError, match=message):
        from_json(body, now=NOW, max_batch=2)


def test_one_json_object_is_one_event():
    assert from_json({**EVENT, "timestamp": 1_700_000_000}, now=NOW) == [("a", "b", 0, 1_700_000_000)]


def test_live_events_reach_training_only_if_ingest_would_accept_them():
    """Events that came in through the live store are held to ingest's rules before a train."""
    import time

    from recsys_cli.data.events import valid_canonical
    from recsys_cli.live import frame_of

    now = time.time()
    rows = [
        ("c1", "p1", 0, 1_700_000_000),
        ("c2", "p2", 2, int(now) + 10**9),  # decades ahead
        (" ", "p3", 1, 1_700_000_000),  # blank customer
        ("c4", "p4", 1, 1_700_000_100),
    ]
    kept, rejected = valid_canonical(frame_of(rows), now=now)
    assert kept["customer_id"].tolist() == ["c1", "c4"]
    assert kept["type"].tolist() == [0, 1] and kept["timestamp"].tolist() == [1_700_000_000, 1_700_000_100]
    assert len(rejected) == 2 and "future" in rejected.iloc[0] and "customer_id" in rejected.iloc[1]


_IDS = st.one_of(st.sampled_from(["c1", "10117", " p 7 ", "", "   ", "\ud800", "é"]), st.text(max_size=6), st.integers(-3, 3), st.none())
_TYPES = st.one_of(st.sampled_from(["view_product", "add_to_cart", "purchase_item", "teleport", "View_product", ""]), st.integers(0, 2))
_STAMPS = st.one_of(
    st.integers(-10, 2_000_000_000),
    st.integers(int(NOW) - 5, int(NOW) + 200_000),
    st.integers(10**11 - 2, 10**13),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=NOW + 86_400.0),
    st.sampled_from(["1700000000", "2024-01-01T00:00:00Z", "soon", True, None]),
)


@st.composite
def _event(draw) -> dict:
    event = {"customer_id": draw(_IDS), "product_id": draw(_IDS), "type": draw(_TYPES)}
    if draw(st.booleans()):
        event["timestamp"] = draw(_STAMPS)
    if draw(st.integers(0, 9)) == 0:
        event["colour"] = "red"
    if draw(st.integers(0, 9)) == 0:
        del event[draw(st.sampled_from(["customer_id", "product_id", "type"]))]
    return event


_PLAIN_IDS = st.one_of(
    st.sampled_from(["c1", "10117", " p 7 ", "x\u00a0", "x\ud800"]), st.text(alphabet="ab7 \u2003", min_size=1, max_size=4)
)


@st.composite
def _plain_event(draw, now: float, limit: float) -> dict:
    """Mostly what a shop sends, with the edges of each rule: times at 0, near now and the future
    limit, just under the milliseconds threshold; the odd value the plain path must hand on."""
    event = {"customer_id": draw(_PLAIN_IDS), "product_id": draw(_PLAIN_IDS), "type": draw(st.sampled_from(list(EVENT_CODE)))}
    stamp = draw(
        st.one_of(
            st.none(),
            st.integers(0, int(limit) + 2),
            st.floats(0, limit + 2, allow_nan=False),
            st.sampled_from([0, -0.0, int(now), now, limit, int(limit), limit + 1e-3, 10**11 - 1, 10**11, 1e11 - 0.5, True, "1700000000"]),
        )
    )
    if stamp is not None:
        event["timestamp"] = stamp
    return event


@st.composite
def _batch(draw) -> tuple[list[dict], float, EventRules]:
    now = draw(st.sampled_from([1_700_000_000.0, 1_700_000_000.75, 99_999_000_000.5]))
    rules = EventRules(max_future_seconds=draw(st.sampled_from([0.0, 0.5, 86_400.0, 10**12])))
    limit = now + rules.max_future_seconds
    events = draw(st.lists(st.one_of(_plain_event(now, limit), _event()), min_size=1, max_size=4))
    return events, now, rules


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_batch())
def test_a_plain_batch_reads_as_the_full_rules_read_it(monkeypatch, batch):
    """POST /events reads plain batches (string ids, a known type, unix seconds or no timestamp)
    without pandas; any batch gets the same rows, of the same types, or the same refusal, as the
    full rules give."""
    events, now, rules = batch

    def outcome() -> object:
        try:
            rows = from_json(events, now=now, rules=rules)
        except EventsError as refused:
            return ("refused", refused.details)
        return [(row, tuple(type(value) for value in row)) for row in rows]

    fast = outcome()
    with monkeypatch.context() as patched:
        patched.setattr(events_module, "_plain_rows", lambda *args: None)
        full = outcome()
    assert fast == full
