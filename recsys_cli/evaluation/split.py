"""Train/test splits of canonical events, the held-out truth, and customer segments.

Events are the canonical frame: customer_id, product_id (str), type (int8 code, see
data/schema.py) and timestamp (int64 unix seconds). Splits never reorder or copy more than
they need: `train` and `test` keep the original row index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import sparse

from ..data.schema import EVENT_COLUMNS
from ..dataset import Dataset
from ..errors import InputError

SECONDS_PER_DAY = 86_400
SEGMENTS: tuple[str, ...] = ("cold", "few", "warm")
"""Customer segments by train history, in report order."""


@dataclass(frozen=True)
class Split:
    """Train and test events. `cutoff` (unix seconds) is where test begins for a temporal split."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: int | None
    kind: Literal["temporal", "last"]

    def sizes(self) -> dict[str, dict[str, int]]:
        """Events, distinct customers and distinct products in each part."""
        return {name: _part_sizes(part) for name, part in (("train", self.train), ("test", self.test))}


def _part_sizes(events: pd.DataFrame) -> dict[str, int]:
    return {
        "events": len(events),
        "customers": int(events["customer_id"].nunique()),
        "products": int(events["product_id"].nunique()),
    }


def _iso(timestamp: int) -> str:
    return pd.Timestamp(timestamp, unit="s", tz="UTC").isoformat()


def _require_events(events: pd.DataFrame) -> None:
    missing = [column for column in EVENT_COLUMNS if column not in events.columns]
    if missing:
        raise InputError(f"events are missing column(s) {', '.join(missing)}; expected {', '.join(EVENT_COLUMNS)}")
    if events.empty:
        raise InputError("there are no events to split; ingest some data first")


def temporal_split(events: pd.DataFrame, *, test_fraction: float = 0.2, test_days: float | None = None) -> Split:
    """Split at one global cutoff in time.

    With `test_days`, events at or after `newest - test_days` are test. Otherwise the cutoff is
    the (1 - test_fraction) quantile of the event timestamps and events after it are test: the
    last `test_fraction` of the events by time, the protocol of the shared evaluation harness.
    Raises InputError when train or test would come out empty.
    """
    _require_events(events)
    timestamps = events["timestamp"].to_numpy(dtype=np.int64)
    last = int(timestamps.max())
    if test_days is not None:
        if not test_days > 0:
            raise InputError(f"test days must be positive, got {test_days}")
        cutoff = last - int(round(test_days * SECONDS_PER_DAY))
        window = f"the last {test_days:g} day(s)"
    else:
        if not 0 < test_fraction < 1:
            raise InputError(f"test fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        cutoff = int(np.quantile(timestamps, 1 - test_fraction))
        window = f"the last {test_fraction:.0%} of the events"
        in_test = timestamps > cutoff
        if not in_test.any():
            raise NoSplitError(f"a temporal split on {window} finds no event after {_iso(cutoff)}: the newest events share one timestamp")
        return Split(train=events[~in_test], test=events[in_test], cutoff=cutoff, kind="temporal")
    # The newest event is always at or after the cutoff, so only train can come out empty.
    in_test = timestamps >= cutoff
    if in_test.all():
        raise InputError(
            f"a temporal split on {window} (cutoff {_iso(cutoff)}) leaves no training events: all "
            f"{len(timestamps)} events are at or after the cutoff; use a shorter test window"
        )
    return Split(train=events[~in_test], test=events[in_test], cutoff=cutoff, kind="temporal")


class NoSplitError(InputError):
    """The events have no room for this kind of split (the other kind may work)."""


LAST_ITEM_MIN_PRODUCTS = 3  # customers held out by a last-item split (the harness's rule)


def last_item_split(events: pd.DataFrame) -> Split:
    """Hold out each customer's last event (leave-last-out), as the shared evaluation harness does.

    The last event by timestamp; among events at the same time (one basket), the one that comes
    later in `events` (as exported: ingest keeps that order within a timestamp). Only customers
    with at least 3 distinct products are held out; the others stay wholly in train. The held-out
    product counts as truth only when it is new to the customer (see `relevant_truth`): a repeat
    of something they had already bought tells nothing a model could have predicted. Raises
    InputError when no customer has 3 distinct products.
    """
    _require_events(events)
    rows = pd.DataFrame(
        {"customer_id": events["customer_id"].to_numpy(), "timestamp": events["timestamp"].to_numpy(), "row": np.arange(len(events))}
    )
    last = rows.sort_values("timestamp", kind="stable").groupby("customer_id", sort=False).tail(1)
    distinct = events.groupby("customer_id", sort=False, observed=True)["product_id"].nunique()
    last = last[distinct.reindex(last["customer_id"]).to_numpy() >= LAST_ITEM_MIN_PRODUCTS]
    if last.empty:
        raise NoSplitError(
            f"a last-item split needs customers with at least {LAST_ITEM_MIN_PRODUCTS} distinct products, and there are none"
        )
    in_test = np.zeros(len(events), dtype=bool)
    in_test[last["row"].to_numpy()] = True
    return Split(train=events[~in_test], test=events[in_test], cutoff=None, kind="last")


def relevant_truth(split: Split, *, relevant_types: tuple[int, ...] | None = None) -> pd.DataFrame:
    """Held-out (customer_id, product_id) pairs: products a customer interacted with in test
    (only through `relevant_types` when given) and never, with any event type, in train.

    Sorted by customer_id then product_id, one row per pair.
    """
    test = split.test
    if relevant_types is not None:
        test = test[test["type"].isin(relevant_types)]
    keys = ["customer_id", "product_id"]
    candidates = test[keys].drop_duplicates()
    seen = split.train[keys].drop_duplicates()
    marked = candidates.merge(seen, on=keys, how="left", indicator=True)
    fresh = marked.loc[marked["_merge"] == "left_only", keys]
    return fresh.sort_values(keys, kind="stable").reset_index(drop=True)


def segment_labels(customer_ids: np.ndarray, train: pd.DataFrame, warm_min_products: int) -> np.ndarray:
    """Label each customer by distinct products in train: "cold" (none), "few"
    (1 .. warm_min_products - 1) or "warm" (at least warm_min_products)."""
    if warm_min_products < 1:
        raise InputError(f"the warm threshold must be at least 1 product, got {warm_min_products}")
    distinct = train.groupby("customer_id", observed=True)["product_id"].nunique()
    counts = distinct.reindex(pd.Index(np.asarray(customer_ids, dtype=object)), fill_value=0).to_numpy()
    return np.select([counts == 0, counts < warm_min_products], ["cold", "few"], default="warm")


def truth_matrix(truth_pairs: pd.DataFrame, customers: np.ndarray, dataset: Dataset) -> sparse.csr_matrix:
    """Rows = customers, columns = the train item map plus one column per item unseen in training.

    Items the training data never saw stay in the truth (they count in |truth|) but no model
    can hit them: that is what a shop would experience too.
    """
    rows = pd.Index(customers).get_indexer(truth_pairs["customer_id"].astype(object))
    items = dataset.items.to_internal(truth_pairs["product_id"].to_numpy(dtype=object))
    unseen = items < 0
    if unseen.any():
        codes, _ = pd.factorize(truth_pairs["product_id"].to_numpy(dtype=object)[unseen])
        items[unseen] = dataset.n_items + codes
    width = max(dataset.n_items, int(items.max()) + 1 if len(items) else 0)
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, items)), shape=(len(customers), width))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix
