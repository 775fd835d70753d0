"""Frequently bought together: products purchased in the same basket, counted at train time.

A basket is one customer's purchases on one calendar day (UTC), which holds a session that ends
before midnight. For each product the model keeps the `neighbours` products that shared most
baskets with it, each seen in at least `min_support` baskets together; a product bought alone has
none. Built from purchase events (a Dataset keeps one row per customer and product, not baskets),
in internal indices like every model.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..data.schema import PURCHASE

DAY = 86_400


class BoughtTogetherModel:
    """Per product: the products bought with it, most shared baskets first."""

    name = "bought_together"

    def __init__(self, *, min_support: int = 2, neighbours: int = 50) -> None:
        self.min_support = max(int(min_support), 1)
        self.neighbours = max(int(neighbours), 1)
        self.ids = np.zeros((0, self.neighbours), dtype=np.int32)
        self.support = np.zeros((0, self.neighbours), dtype=np.int32)
        self.confidence = np.zeros((0, self.neighbours), dtype=np.float32)
        self.baskets = np.zeros(0, dtype=np.int32)

    def fit_purchases(
        self, n_items: int, users: np.ndarray, items: np.ndarray, types: np.ndarray, timestamps: np.ndarray
    ) -> "BoughtTogetherModel":
        """Count shared baskets over events given as internal customer and product indices, event type codes and unix seconds."""
        purchase = (np.asarray(types) == PURCHASE) & (np.asarray(users) >= 0) & (np.asarray(items) >= 0)
        users, items = np.asarray(users, dtype=np.int64)[purchase], np.asarray(items, dtype=np.int64)[purchase]
        days = np.asarray(timestamps, dtype=np.int64)[purchase] // DAY
        _, basket = np.unique(np.stack([users, days]), axis=1, return_inverse=True)
        basket = basket.ravel()
        n_baskets = int(basket.max()) + 1 if len(basket) else 0
        contents = sparse.csr_matrix((np.ones(len(items), dtype=np.int32), (basket, items)), shape=(n_baskets, n_items))
        contents.data[:] = 1  # a product bought twice in one basket counts once
        self.baskets = np.asarray(contents.sum(axis=0)).ravel().astype(np.int32)
        shared = (contents.T @ contents).tocoo()
        keep = (shared.row != shared.col) & (shared.data >= self.min_support)
        rows, cols, counts = shared.row[keep], shared.col[keep], shared.data[keep]
        order = np.lexsort((cols, -counts, rows))  # per product: most shared baskets first, then index
        rows, cols, counts = rows[order], cols[order], counts[order]
        start = np.searchsorted(rows, np.arange(n_items))
        rank = np.arange(len(rows)) - start[rows]
        first = rank < self.neighbours
        self.ids = np.full((n_items, self.neighbours), -1, dtype=np.int32)
        self.support = np.zeros((n_items, self.neighbours), dtype=np.int32)
        self.ids[rows[first], rank[first]] = cols[first]
        self.support[rows[first], rank[first]] = counts[first]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.confidence = np.where(self.ids >= 0, self.support / np.maximum(self.baskets, 1)[:, None], 0.0).astype(np.float32)
        return self

    def together(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, shared baskets, confidence) of the first `k` products bought with each of `items`; -1 padding.

        Confidence is the share of the product's baskets that also held the other one.
        """
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        k = max(min(int(k), self.neighbours), 0)
        inside = (items >= 0) & (items < len(self.ids))
        rows = np.where(inside, items, 0)
        ids = np.where(inside[:, None], self.ids[rows, :k], -1).astype(np.int64)
        return ids, np.where(ids >= 0, self.support[rows, :k], 0), np.where(ids >= 0, self.confidence[rows, :k], 0.0)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The model interface's neighbours: products bought with each item, scored by confidence (-inf padding)."""
        ids, _, confidence = self.together(items, k=k)
        return ids, np.where(ids >= 0, confidence, -np.inf).astype(np.float32)
