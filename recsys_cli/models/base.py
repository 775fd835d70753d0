"""The model interface every recommender implements (after implicit and RecTools).

Internal integer indices only, batched: arrays in, arrays out. `recommend` returns two arrays of
shape (len(users), k): item indices (int64, -1 where a model has fewer than k items for a
customer) and scores (float32, -inf at those positions), best first.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from scipy import sparse

from ..dataset import Dataset, UserHistory


@runtime_checkable
class Recommender(Protocol):
    """fit once on a Dataset; recommend for customers; similar_items for products."""

    name: str

    def fit(self, dataset: Dataset) -> "Recommender": ...

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for internal `users`.

        `history` (rows aligned with `users`) replaces the fit-time interactions when given, so live
        events count; models that embed customers use it where they can. `exclude` (rows aligned
        with `users`, n_items columns) marks items that must not be returned.
        """
        ...

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k other items for each of `items`, same shapes and padding as recommend."""
        ...


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a dense score matrix via argpartition; -inf entries become -1 padding."""
    scores = np.atleast_2d(scores)
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    if k_eff == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=np.float32)
    if k_eff < n_cols:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.tile(np.arange(n_cols), (n_rows, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best = np.take_along_axis(part_scores, order, axis=1).astype(np.float32)
    invalid = ~np.isfinite(best)
    ids[invalid] = -1
    best[invalid] = -np.inf
    if k_eff < k:
        ids = np.pad(ids, ((0, 0), (0, k - k_eff)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return ids, best


def mask_excluded(scores: np.ndarray, exclude: sparse.csr_matrix | None) -> np.ndarray:
    """Set scores of excluded (row, item) pairs to -inf in place and return the array."""
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    return scores


def explain_by_affinity(history_items: list[np.ndarray], ids: np.ndarray, affinity) -> np.ndarray:
    """For each recommended item, the history item with the highest `affinity(history, items)`.

    `history_items[r]` are row r's history items; `affinity` returns a (len(history), len(items))
    array. Items with no positive affinity to any history item get -1. Used for reasons.
    """
    anchors = np.full(ids.shape, -1, dtype=np.int64)
    for row, history in enumerate(history_items):
        valid = np.flatnonzero(ids[row] >= 0)
        if not len(history) or not len(valid):
            continue
        weights = np.asarray(affinity(history, ids[row, valid]), dtype=np.float64)
        best = weights.argmax(axis=0)
        anchors[row, valid] = np.where(weights.max(axis=0) > 0, history[best], -1)
    return anchors
