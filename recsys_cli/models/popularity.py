"""Most popular products: the same ranking for every customer, the fallback for cold starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from ..dataset import Dataset, UserHistory
from ..errors import InputError

_SECONDS_PER_DAY = 86_400


class PopularityModel:
    """Products ranked by distinct purchasers, then distinct add-to-carters, then distinct viewers.

    Remaining ties (and products nobody touched) follow internal index, so `ranking` covers every
    item. With `window_days`, only (customer, product) pairs last seen within that many days of the
    newest event count.
    """

    name = "popularity"

    def __init__(self, window_days: float | None = None) -> None:
        if window_days is not None and not window_days > 0:
            raise InputError("popularity window_days must be positive")
        self.window_days = window_days
        self.ranking: np.ndarray = np.zeros(0, dtype=np.int64)
        self.scores: np.ndarray = np.zeros(0, dtype=np.float32)
        self.counts: pd.DataFrame = pd.DataFrame(columns=["purchasers", "carters", "viewers"])
        self._position: np.ndarray = np.zeros(0, dtype=np.int64)

    def fit(self, dataset: Dataset) -> "PopularityModel":
        """Count distinct purchasers, carters and viewers per item and rank the items.

        `scores[item]` is rank-based: 1.0 for the most popular item, falling by 1/n_items per
        place, so it is strictly monotone in `ranking`.
        """
        self.counts = self._counts(dataset)
        n = dataset.n_items
        index = np.arange(n)
        counts = self.counts
        # lexsort's last key is the primary one
        keys = (index, -counts["viewers"].to_numpy(), -counts["carters"].to_numpy(), -counts["purchasers"].to_numpy())
        self.ranking = np.lexsort(keys).astype(np.int64)
        self._position = np.empty(n, dtype=np.int64)
        self._position[self.ranking] = index
        self.scores = (1.0 - self._position / max(n, 1)).astype(np.float32)
        return self

    def _counts(self, dataset: Dataset) -> pd.DataFrame:
        if self.window_days is None or dataset.pairs.empty:
            return dataset.item_counts()
        pairs = dataset.pairs
        newest = int(pairs["last_ts"].max())
        recent = pairs[pairs["last_ts"] >= newest - self.window_days * _SECONDS_PER_DAY]
        item = recent["item"].to_numpy()
        return pd.DataFrame(
            {
                column: np.bincount(item[recent[source].to_numpy() > 0], minlength=dataset.n_items)
                for column, source in (("purchasers", "n_purchase"), ("carters", "n_cart"), ("viewers", "n_view"))
            }
        )

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ranking's first k items not excluded for each customer (`history` is not used)."""
        n_rows = len(np.atleast_1d(users))
        rows = cols = np.zeros(0, dtype=np.int64)
        if exclude is not None and exclude.nnz:
            coo = sparse.coo_matrix(exclude)
            rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        return self._first_allowed(n_rows, k, rows, cols)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The most popular items other than each item itself."""
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        return self._first_allowed(len(items), k, np.arange(len(items)), items)

    def _first_allowed(self, n_rows: int, k: int, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the first k ranking positions not among that row's excluded (row, item) pairs.

        With a row's excluded positions sorted as p_0 < p_1 < ..., p_i - i is the number of allowed
        positions before p_i, so the j-th allowed position is j + #{i : p_i - i <= j}.
        """
        n, k = len(self.ranking), max(int(k), 0)
        known = (cols >= 0) & (cols < n)
        rows, position = rows[known], self._position[cols[known]]
        key = np.unique(rows * (n + 1) + position)  # sorted, one entry per distinct (row, position)
        rows, position = key // (n + 1), key % (n + 1)
        per_row = np.bincount(rows, minlength=n_rows)
        start = np.cumsum(per_row) - per_row
        gap_key = rows * (n + 1) + (position - (np.arange(len(key)) - start[rows]))
        wanted = np.arange(n_rows)[:, None] * (n + 1) + np.arange(k)[None, :]
        skipped = np.searchsorted(gap_key, wanted, side="right") - start[:, None]
        chosen = np.arange(k)[None, :] + skipped
        ids = np.full((n_rows, k), -1, dtype=np.int64)
        scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
        inside = chosen < n
        ids[inside] = self.ranking[chosen[inside]]
        scores[inside] = self.scores[ids[inside]]
        return ids, scores
