"""Splits, held-out truth and segments on small hand-made event frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_cli.data.schema import CART, PURCHASE, VIEW
from recsys_cli.errors import InputError
from recsys_cli.evaluation.runner import make_split
from recsys_cli.evaluation.split import (
    last_item_split,
    relevant_truth,
    segment_labels,
    temporal_split,
)

DAY = 86_400


def _events(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    customer, product, kind, timestamp = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(customer, dtype=object),
            "product_id": pd.Series(product, dtype=object),
            "type": np.array(kind, dtype=np.int8),
            "timestamp": np.array(timestamp, dtype=np.int64),
        }
    )


def _pairs(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(frame["customer_id"], frame["product_id"], strict=True))


def test_temporal_split_puts_the_last_fraction_of_the_events_in_test() -> None:
    events = _events(
        [
            ("a", "p1", VIEW, 0),
            ("a", "p2", VIEW, 10),
            ("b", "p1", CART, 50),
            ("b", "p3", VIEW, 79),
            ("a", "p3", PURCHASE, 80),
            ("c", "p2", VIEW, 100),
            ("c", "p1", VIEW, 101),
            ("a", "p4", VIEW, 102),
            ("b", "p4", VIEW, 103),
            ("c", "p4", VIEW, 104),
        ]
    )
    split = temporal_split(events, test_fraction=0.2)
    # ten events, the newest 20% by time are test: the cutoff is the 80% quantile of the timestamps
    # (102.2 -> 102), as the shared harness cuts; events after it are test
    assert split.cutoff == 102
    assert split.kind == "temporal"
    assert split.train["timestamp"].tolist() == [0, 10, 50, 79, 80, 100, 101, 102]
    assert split.test["timestamp"].tolist() == [103, 104]
    assert split.sizes() == {
        "train": {"events": 8, "customers": 3, "products": 4},
        "test": {"events": 2, "customers": 2, "products": 1},
    }


def test_temporal_split_with_test_days_counts_back_from_the_newest_event() -> None:
    events = _events([("a", f"p{day}", VIEW, day * DAY) for day in (0, 5, 7, 8, 9, 10)])
    split = temporal_split(events, test_days=2)
    # newest event on day 10, two days back = day 8: days 8, 9, 10 are test
    assert split.cutoff == 8 * DAY
    assert split.test["product_id"].tolist() == ["p8", "p9", "p10"]
    assert split.train["product_id"].tolist() == ["p0", "p5", "p7"]


def test_temporal_split_refuses_to_leave_train_empty() -> None:
    events = _events([("a", "p1", VIEW, 5 * DAY), ("b", "p2", VIEW, 6 * DAY)])
    with pytest.raises(InputError, match="no training events"):
        temporal_split(events, test_days=30)
    same_time = _events([("a", "p1", VIEW, 100), ("b", "p2", VIEW, 100)])
    with pytest.raises(InputError, match="share one timestamp; use --split last"):
        make_split(same_time)  # what `evaluate` says: the other kind of split may work


@pytest.mark.parametrize("options", [{"test_fraction": 0.0}, {"test_fraction": 1.0}, {"test_days": 0}])
def test_temporal_split_rejects_bad_windows(options: dict) -> None:
    events = _events([("a", "p1", VIEW, 0), ("a", "p2", VIEW, 100)])
    with pytest.raises(InputError):
        temporal_split(events, **options)


def test_splits_reject_empty_events() -> None:
    empty = _events([("a", "p1", VIEW, 0)]).iloc[:0]
    with pytest.raises(InputError, match="no events"):
        temporal_split(empty)
    with pytest.raises(InputError, match="no events"):
        last_item_split(empty)


def test_relevant_truth_excludes_products_seen_in_train() -> None:
    events = _events(
        [
            ("a", "p1", VIEW, 0),  # train
            ("a", "p1", PURCHASE, 90),  # test, but a saw p1 in train: not truth (leak)
            ("a", "p2", PURCHASE, 95),  # test, new to a: truth
            ("a", "p2", VIEW, 96),  # same pair again: one truth row
            ("b", "p3", VIEW, 10),  # train
            ("b", "p1", VIEW, 100),  # test, new to b (a saw it, b did not): truth
            ("c", "p4", CART, 99),  # test only customer (cold): truth
        ]
    )
    split = temporal_split(events, test_days=30 / 86_400)  # the last 30 s: cutoff 70
    truth = relevant_truth(split)
    assert list(truth.columns) == ["customer_id", "product_id"]
    assert _pairs(truth) == [("a", "p2"), ("b", "p1"), ("c", "p4")]


def test_relevant_truth_narrowed_to_relevant_types() -> None:
    events = _events(
        [
            ("a", "p0", VIEW, 0),
            ("a", "p1", VIEW, 90),  # viewed only: not a purchase
            ("a", "p2", PURCHASE, 95),
            ("b", "p3", VIEW, 91),
            ("b", "p3", PURCHASE, 92),  # viewed and bought in test: counts once
        ]
    )
    split = temporal_split(events, test_days=10 / 86_400)  # the last 10 s: cutoff 85
    assert _pairs(relevant_truth(split)) == [("a", "p1"), ("a", "p2"), ("b", "p3")]
    assert _pairs(relevant_truth(split, relevant_types=(PURCHASE,))) == [("a", "p2"), ("b", "p3")]
    assert _pairs(relevant_truth(split, relevant_types=(CART,))) == []


def test_last_item_split_holds_out_each_customers_last_event() -> None:
    events = _events(
        [
            ("a", "p1", VIEW, 1),
            ("a", "p2", VIEW, 2),
            ("a", "p3", CART, 3),
            ("a", "p2", PURCHASE, 5),  # a's last event: held out, but a had viewed p2, so it is no truth
            ("b", "p1", VIEW, 4),  # b has two distinct products: stays in train
            ("b", "p2", VIEW, 9),
            ("c", "p3", VIEW, 6),
            ("c", "p4", VIEW, 7),  # c's p4 and p5 at t=7 (one basket): the later line, p5, is held out
            ("c", "p5", VIEW, 7),
            ("d", "p9", VIEW, 8),  # the same for d, whatever the ids' order: p5
            ("d", "p8", VIEW, 8),
            ("d", "p5", VIEW, 8),
        ]
    )
    split = last_item_split(events)
    assert split.kind == "last" and split.cutoff is None
    assert _pairs(split.test) == [("a", "p2"), ("c", "p5"), ("d", "p5")]
    assert split.test.index.tolist() == [3, 8, 11]  # original rows, original order
    assert _pairs(split.train) == [
        ("a", "p1"),
        ("a", "p2"),
        ("a", "p3"),
        ("b", "p1"),
        ("b", "p2"),
        ("c", "p3"),
        ("c", "p4"),
        ("d", "p9"),
        ("d", "p8"),
    ]
    assert _pairs(relevant_truth(split)) == [("c", "p5"), ("d", "p5")]


def test_last_item_split_needs_a_customer_with_three_products() -> None:
    events = _events([("a", "p1", VIEW, 1), ("a", "p2", PURCHASE, 2), ("b", "p2", VIEW, 3)])
    with pytest.raises(InputError, match="at least 3 distinct products"):
        last_item_split(events)


def test_segment_labels_by_distinct_train_products() -> None:
    train = _events(
        [
            ("a", "p1", VIEW, 0),
            ("a", "p1", PURCHASE, 1),  # repeated product counts once
            ("a", "p2", VIEW, 2),
            ("a", "p3", VIEW, 3),  # a: 3 distinct
            ("b", "p1", VIEW, 4),  # b: 1 distinct
            ("d", "p1", VIEW, 5),
            ("d", "p2", VIEW, 6),  # d: 2 distinct
        ]
    )
    customers = np.array(["a", "b", "c", "d"], dtype=object)  # c never appears in train
    assert segment_labels(customers, train, 3).tolist() == ["warm", "few", "cold", "few"]
    assert segment_labels(customers, train, 2).tolist() == ["warm", "few", "cold", "warm"]
    # with a threshold of 1 nobody with history is "few"
    assert segment_labels(customers, train, 1).tolist() == ["warm", "warm", "cold", "warm"]
    with pytest.raises(InputError):
        segment_labels(customers, train, 0)
