"""Forgetting a customer: the hashed id the deletion list, the logs and ingest share.

The deletion list (in the live store) holds sha256(customer_id) and when the customer was forgotten,
never the id in clear. Ingest drops the events of a listed customer up to that time from every
later snapshot, so a model trained afterwards has never seen them; events a returning customer
makes after the deletion are theirs again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd


def customer_hash(customer_id: str) -> str:
    """sha256 of the customer id (UTF-8), hex: how the deletion list and the logs name a forgotten customer."""
    return hashlib.sha256(str(customer_id).encode("utf-8")).hexdigest()


def drop_forgotten(events: pd.DataFrame, forgotten: Mapping[str, int]) -> tuple[pd.DataFrame, int]:
    """`events` without those of forgotten customers up to when they were forgotten; and how many were dropped.

    Hashes each distinct customer id once.
    """
    if not forgotten or not len(events):
        return events, 0
    customers = pd.unique(events["customer_id"].to_numpy(dtype=object))
    cutoff = pd.Series([forgotten.get(customer_hash(c), -1) for c in customers], index=customers, dtype=np.int64)
    cutoff = cutoff[cutoff >= 0]
    if not len(cutoff):
        return events, 0
    limit = events["customer_id"].map(cutoff).fillna(-1).to_numpy(dtype=np.int64)
    drop = events["timestamp"].to_numpy(dtype=np.int64) <= limit
    return events.loc[~drop].reset_index(drop=True), int(drop.sum())
