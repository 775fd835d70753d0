"""The shop's own controls over what is served, as the service sees them at one moment.

Availability (the catalog's `available` column, overridden by `PUT /products/ID/availability` or
`recsys availability`) and the deletion list live in the live store; a `ShopState` is their
snapshot in internal indices, rebuilt by the service only when the store's controls generation
moves, so a request pays one small read and no per-item work when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .data.schema import CATALOG_AVAILABLE
from .dataset import IdMap
from .privacy import customer_hash


@dataclass(frozen=True)
class ShopState:
    """Availability and the deletion list at one controls generation."""

    generation: int
    unavailable: np.ndarray | None = None  # one flag per item, True = never recommend; None: every item is available
    allowed: np.ndarray | None = None  # recommendable and available; None: every item
    forgotten: Mapping[str, int] = field(default_factory=dict)  # customer hash -> when forgotten

    def forgets(self, customer_id: str) -> bool:
        """True when the customer is on the deletion list (hashes the id only when the list is not empty)."""
        return bool(self.forgotten) and customer_hash(customer_id) in self.forgotten

    def is_available(self, item: int) -> bool:
        return self.unavailable is None or not bool(self.unavailable[item])


def catalog_unavailable(catalog: pd.DataFrame) -> np.ndarray:
    """One flag per item: the catalog (aligned to internal order) marks it `available = false`."""
    if CATALOG_AVAILABLE not in catalog.columns:
        return np.zeros(len(catalog), dtype=bool)
    return catalog[CATALOG_AVAILABLE].astype(object).eq(False).to_numpy(dtype=bool)


def shop_state(
    generation: int,
    items: IdMap,
    recommendable: np.ndarray | None,
    from_catalog: np.ndarray,
    overrides: Mapping[str, bool],
    forgotten: Mapping[str, int],
) -> ShopState:
    """The state for `generation`: the catalog's availability with the store's overrides on top."""
    unavailable = from_catalog.copy()
    if overrides:
        ids = list(overrides)
        internal = items.to_internal(ids)
        flags = np.fromiter((not overrides[i] for i in ids), dtype=bool, count=len(ids))
        known = internal >= 0
        unavailable[internal[known]] = flags[known]
    if not unavailable.any():
        return ShopState(generation, None, recommendable, dict(forgotten))
    allowed = ~unavailable if recommendable is None else recommendable & ~unavailable
    return ShopState(generation, unavailable, allowed, dict(forgotten))
