"""IdMap (external <-> internal ids, append-only) and Dataset (frozen matrices built once).

The service is the only place that turns external ids into internal indices and back;
models see internal indices only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from .data.schema import CART, CATALOG_OPTIONAL, PURCHASE, VIEW
from .weighting import WeightingConfig, pair_weights


@dataclass(frozen=True)
class IdMap:
    """External string ids; an id's position in `external_ids` is its internal index."""

    external_ids: np.ndarray

    @classmethod
    def from_ids(cls, ids: "pd.Series | np.ndarray | list[str]") -> "IdMap":
        """Distinct ids in order of first appearance."""
        unique = pd.unique(pd.Series(ids, dtype=object))
        return cls(np.asarray(unique, dtype=object))

    def __len__(self) -> int:
        return len(self.external_ids)

    @property
    def _index(self) -> pd.Index:
        index = self.__dict__.get("_cached_index")
        if index is None:
            index = pd.Index(self.external_ids)
            object.__setattr__(self, "_cached_index", index)
        return index

    def to_internal(self, ids: "np.ndarray | list[str] | pd.Series") -> np.ndarray:
        """Internal indices (int64); -1 for ids this map does not know."""
        if len(ids) <= _FEW_IDS:  # a request's few ids: a lookup each (~1 us) beats building an index (~120 us)
            return np.fromiter((self.get(i) for i in ids), dtype=np.int64, count=len(ids))
        return self._index.get_indexer(pd.Index(np.asarray(ids, dtype=object))).astype(np.int64)

    def get(self, external_id: str) -> int:
        """Internal index of one id, or -1."""
        try:
            position = self._index.get_loc(external_id)
        except (KeyError, TypeError, pd.errors.InvalidIndexError):  # unknown, or not an id at all
            return -1
        return int(position) if isinstance(position, (int, np.integer)) else -1

    def to_external(self, internal: np.ndarray) -> np.ndarray:
        """External ids for internal indices (which must be valid)."""
        return self.external_ids[np.asarray(internal, dtype=np.int64)]

    def add_ids(self, ids: "np.ndarray | list[str] | pd.Series") -> "IdMap":
        """A new map with unseen ids appended; existing positions never move."""
        fresh = pd.unique(pd.Series(ids, dtype=object))
        fresh = fresh[self.to_internal(fresh) < 0]
        if len(fresh) == 0:
            return self
        return IdMap(np.concatenate([self.external_ids, np.asarray(fresh, dtype=object)]))

    def encode(self, ids: "np.ndarray | pd.Series") -> "tuple[IdMap, np.ndarray]":
        """(this map with the unseen ids appended, as `add_ids` does; each id's internal index): one
        hashing pass over a column of millions of ids, then a lookup of its distinct ids only."""
        values = np.asarray(ids, dtype=object)
        codes, distinct = pd.factorize(values)
        if (codes < 0).any():  # factorize leaves missing values (None, NaN) out: the two-pass way keeps each
            extended = self.add_ids(values)
            return extended, extended.to_internal(values)
        extended = self.add_ids(distinct)
        return extended, extended.to_internal(distinct)[codes] if len(codes) else np.zeros(0, dtype=np.int64)

    def __getstate__(self) -> dict:
        # a fixed-width unicode array pickles and loads ~100x faster than an object array of str
        return {"external_ids": np.asarray(self.external_ids, dtype=str) if len(self.external_ids) else np.asarray([], dtype="<U1")}

    def __setstate__(self, state: dict) -> None:
        object.__setattr__(self, "external_ids", np.asarray(state["external_ids"], dtype=object))
        # pandas' Arrow-backed strings: no Python object per id, so a swapped-out model leaves no
        # half-empty small-object arenas behind in a long-running server
        object.__setattr__(self, "_cached_index", pd.Index(self.external_ids, dtype="string[pyarrow]"))


_FEW_IDS = 32


@dataclass(frozen=True)
class UserHistory:
    """Interaction rows of some customers: weights, last-seen unix seconds, strongest event code + 1.

    All three matrices share one sparsity pattern; row i belongs to the i-th customer asked about.
    """

    weights: sparse.csr_matrix
    last_seen: sparse.csr_matrix
    strongest: sparse.csr_matrix

    def __len__(self) -> int:
        return self.weights.shape[0]

    @classmethod
    def one(
        cls,
        indices: np.ndarray,
        weights: np.ndarray,
        last_seen: np.ndarray,
        strongest: np.ndarray,
        n_items: int,
        *,
        sorted_indices: bool | None = None,
    ) -> "UserHistory":
        """One customer's history from its arrays (`indices` distinct; the arrays are shared, not
        copied); `sorted_indices` as `csr_row`'s."""
        ordered = _increasing(indices) if sorted_indices is None else sorted_indices
        return cls(*(csr_row(n_items, values, indices, sorted_indices=ordered) for values in (weights, last_seen, strongest)))


_EMPTY_ROWS: dict[tuple[int, np.dtype], sparse.csr_matrix] = {}


def csr_row(n_cols: int, values: np.ndarray, indices: np.ndarray, *, sorted_indices: bool | None = None) -> sparse.csr_matrix:
    """A 1 x n_cols CSR matrix holding `values` at the distinct `indices` (arrays shared, not copied).

    What a request builds several times: a shallow copy of a cached empty row given the arrays
    (under 1 us) instead of scipy's validating constructor (about 10 us). `sorted_indices` says
    whether `indices` increase, when the caller knows (checked otherwise)."""
    key = (n_cols, values.dtype)
    empty = _EMPTY_ROWS.get(key)
    if empty is None:
        if len(_EMPTY_ROWS) >= 1024:  # widths vary with history lengths (EASE's compact rows): stay bounded
            _EMPTY_ROWS.clear()
        empty = _EMPTY_ROWS[key] = sparse.csr_matrix((1, n_cols), dtype=values.dtype)
    row = object.__new__(type(empty))  # copy.copy's shallow copy, without its protocol lookups
    row.__dict__.update(empty.__dict__)
    row.data, row.indices, row.indptr = values, indices, np.array([0, len(indices)], dtype=indices.dtype)
    row.has_sorted_indices = _increasing(indices) if sorted_indices is None else sorted_indices
    row.has_canonical_format = row.has_sorted_indices  # indices are distinct: canonical exactly when sorted
    return row


def _increasing(indices: np.ndarray) -> bool:
    return bool(len(indices) < 2 or (indices[1:] > indices[:-1]).all())


@dataclass(frozen=True)
class Dataset:
    """Everything models train on, in internal indices.

    `pairs` has one row per (user, item) with n_view, n_cart, n_purchase, last_ts;
    `catalog` has one row per item in internal order (NaN where the catalog says nothing).
    """

    users: IdMap
    items: IdMap
    pairs: pd.DataFrame
    catalog: pd.DataFrame
    weighting: WeightingConfig
    n_listed: int = 0
    """Products from the catalog (they come first in `items`); 0 when there was no catalog."""

    @classmethod
    def construct(
        cls,
        events: pd.DataFrame,
        catalog: pd.DataFrame | None = None,
        weighting: WeightingConfig | None = None,
        users: IdMap | None = None,
        items: IdMap | None = None,
    ) -> "Dataset":
        """Build id maps and per-pair counts from canonical events (type as code 0..2, int64 timestamps).

        Items are the catalog's products (catalog order) followed by products seen only in events.
        Passing `users`/`items` extends existing maps instead of building new ones.
        """
        weighting = weighting or WeightingConfig()
        catalog = catalog if catalog is not None else pd.DataFrame({"product_id": pd.Series([], dtype=object)})
        if items is None:
            items = IdMap.from_ids(catalog["product_id"].astype(object))
        items, item_of = items.encode(events["product_id"])
        users, user_of = (users or IdMap(np.asarray([], dtype=object))).encode(events["customer_id"])
        pairs = _aggregate_pairs(
            user_of,
            item_of,
            events["type"].to_numpy(dtype=np.int8),
            events["timestamp"].to_numpy(dtype=np.int64),
        )
        aligned = _align_catalog(catalog, items)
        listed = int(catalog["product_id"].nunique())
        return cls(users=users, items=items, pairs=pairs, catalog=aligned, weighting=weighting, n_listed=listed)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def recommendable(self) -> np.ndarray:
        """Items that may be recommended: the catalog's products when there is a catalog, else every item.

        Products known only from events (a typo, a retired product, an id forged through the API)
        are kept as history but never recommended and never counted as popular.
        """
        if self.n_listed <= 0:
            return np.ones(self.n_items, dtype=bool)
        return np.arange(self.n_items) < self.n_listed

    def _matrix(self, values: np.ndarray, dtype: type) -> sparse.csr_matrix:
        matrix = sparse.csr_matrix(
            (values.astype(dtype), (self.pairs["user"].to_numpy(), self.pairs["item"].to_numpy())),
            shape=(self.n_users, self.n_items),
        )
        matrix.sort_indices()
        return matrix

    @property
    def interactions(self) -> sparse.csr_matrix:
        """Weighted user x item matrix (float32), cached."""
        cached = self.__dict__.get("_interactions")
        if cached is None:
            cached = self._matrix(pair_weights(self.pairs, self.weighting), np.float32)
            object.__setattr__(self, "_interactions", cached)
        return cached

    def history(self, users: np.ndarray | None = None) -> UserHistory:
        """Interaction rows of `users` (all users when None) as a UserHistory."""
        cached = self.__dict__.get("_history")
        if cached is None:
            cached = UserHistory(
                weights=self.interactions,
                last_seen=self._matrix(self.pairs["last_ts"].to_numpy(), np.float64),
                strongest=self._matrix(strongest_code(self.pairs) + 1, np.int8),
            )
            object.__setattr__(self, "_history", cached)
        if users is None:
            return cached
        rows = np.asarray(users, dtype=np.int64)
        return UserHistory(cached.weights[rows], cached.last_seen[rows], cached.strongest[rows])

    def item_counts(self) -> pd.DataFrame:
        """Per item: distinct purchasers, carters and viewers (index = internal item)."""
        counts = pd.DataFrame(
            {
                "purchasers": np.bincount(self.pairs["item"][self.pairs["n_purchase"] > 0], minlength=self.n_items),
                "carters": np.bincount(self.pairs["item"][self.pairs["n_cart"] > 0], minlength=self.n_items),
                "viewers": np.bincount(self.pairs["item"][self.pairs["n_view"] > 0], minlength=self.n_items),
            }
        )
        return counts

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)


def strongest_code(counts: "pd.DataFrame | Mapping[str, np.ndarray]") -> np.ndarray:
    """Strongest event code per (customer, product) pair from its `n_purchase` and `n_cart` counts: PURCHASE > CART > VIEW.

    The one home of this rule: training histories and the service's live-event merge both use it.
    """
    purchased, carted = np.asarray(counts["n_purchase"]) > 0, np.asarray(counts["n_cart"]) > 0
    return np.where(purchased, PURCHASE, np.where(carted, CART, VIEW)).astype(np.int8)


def _aggregate_pairs(user: np.ndarray, item: np.ndarray, kind: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "user": user.astype(np.int32),
            "item": item.astype(np.int32),
            "n_view": (kind == VIEW).astype(np.int32),
            "n_cart": (kind == CART).astype(np.int32),
            "n_purchase": (kind == PURCHASE).astype(np.int32),
            "last_ts": ts,
        }
    )
    grouped = frame.groupby(["user", "item"], sort=True).agg(
        n_view=("n_view", "sum"), n_cart=("n_cart", "sum"), n_purchase=("n_purchase", "sum"), last_ts=("last_ts", "max")
    )
    return grouped.reset_index()


def _align_catalog(catalog: pd.DataFrame, items: IdMap) -> pd.DataFrame:
    """Catalog rows in internal item order; products absent from the catalog get NaN attributes."""
    base = catalog.drop_duplicates("product_id", keep="last").set_index("product_id")
    aligned = base.reindex(pd.Index(items.external_ids, name="product_id"))
    for column in CATALOG_OPTIONAL:
        if column not in aligned.columns:
            aligned[column] = np.nan
    aligned = aligned.reset_index()
    aligned["price"] = pd.to_numeric(aligned["price"], errors="coerce")
    return aligned
