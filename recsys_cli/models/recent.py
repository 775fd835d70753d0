"""A collaborative model fitted on the recent part of the history only.

Tastes and catalogs move: what customers bought together last month says more about next month
than what they bought together two years ago. `RecentModel` fits its inner model on the pairs
whose last event falls in the newest `fraction` of the period, and scores customers from their
whole history (so an old purchase still counts as evidence). Whether that helps a shop is
decided on its own validation split (selection's `kind:window=F` candidates).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse

from ..dataset import Dataset, UserHistory
from ..errors import InputError
from .base import Explains, Recommender, declares


class RecentModel:
    """`inner` fitted on the pairs active in the newest `fraction` of the period."""

    def __init__(self, inner: Recommender, fraction: float) -> None:
        if not 0 < fraction <= 1:
            raise InputError(f"window must be a share of the period in (0, 1], got {fraction:g}")
        self.inner = inner
        self.fraction = float(fraction)
        self.name = inner.name

    @property
    def decay(self) -> float:
        return getattr(self.inner, "decay", 1.0)

    @decay.setter
    def decay(self, value: float) -> None:
        self.inner.decay = value

    def fit(self, dataset: Dataset) -> "RecentModel":
        self._full = dataset.history()  # customers are scored from all of their history
        stamps = dataset.pairs["last_ts"].to_numpy()
        if len(stamps):
            low, high = int(stamps.min()), int(stamps.max())
            cutoff = high - self.fraction * (high - low)
            dataset = dataclasses.replace(dataset, pairs=dataset.pairs[stamps >= cutoff].reset_index(drop=True))
        self.inner.fit(dataset)
        return self

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The inner model's top-k, scored from `history` (by default the whole fit-time history)."""
        if history is None:
            users = np.asarray(users, dtype=np.int64)
            inside = (users >= 0) & (users < self._full.weights.shape[0])
            keep = sparse.diags(inside.astype(np.float32))
            rows = np.where(inside, users, 0)
            history = UserHistory(
                sparse.csr_matrix(keep @ self._full.weights[rows]),
                sparse.csr_matrix(keep @ self._full.last_seen[rows]),
                sparse.csr_matrix(keep.astype(np.int8) @ self._full.strongest[rows]),
            )
        return self.inner.recommend(users, k=k, exclude=exclude, history=history, allowed=allowed)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.inner.similar_items(items, k=k)

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The inner model's explanation, or no anchors when it has none."""
        if not declares(self.inner, Explains):
            return np.full(ids.shape, -1, dtype=np.int64)
        return self.inner.explain(history, ids)
