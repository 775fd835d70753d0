"""A blend of two recommenders' normalised scores, the weight chosen on the shop's own data.

Each model proposes its top `pool` candidates for a customer; a candidate's score from each model
is scaled to [0, 1] over that customer's candidates (divided by the row's best score after shifting
the worst to 0), missing scores count 0, and the blend is (1 - weight) * first + weight * second.
The typical pair is a collaborative model and (trending) popularity: personal taste, nudged
towards what is selling now.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..dataset import Dataset, UserHistory
from .base import Recommender, top_k


class BlendModel:
    """(1 - weight) * first + weight * second over the union of both models' candidates."""

    def __init__(self, first: Recommender, second: Recommender, weight: float, *, pool: int = 50) -> None:
        self.first = first
        self.second = second
        self.weight = float(weight)
        self.pool = pool
        self.name = f"{first.name}+{second.name}"

    def fit(self, dataset: Dataset) -> "BlendModel":
        """Fit both models (a blend is usually assembled from already fitted ones instead)."""
        self.first.fit(dataset)
        self.second.fit(dataset)
        return self

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of the blended scores; rows where neither model has a candidate get all -1."""
        pool = max(self.pool, k)
        first_ids, first_scores = self.first.recommend(users, k=pool, exclude=exclude, history=history)
        second_ids, second_scores = self.second.recommend(users, k=pool, exclude=exclude, history=history)
        ids = np.concatenate([first_ids, second_ids], axis=1)
        scores = np.concatenate(
            [(1 - self.weight) * _scaled(first_scores), self.weight * _scaled(second_scores)],
            axis=1,
        )
        scores[ids < 0] = 0.0
        # sum the two parts of an item proposed by both: sort by id, add equal neighbours
        order = np.argsort(np.where(ids < 0, np.iinfo(np.int64).max, ids), axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        same = (ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] >= 0)
        scores[:, :-1] += np.where(same, scores[:, 1:], 0.0)
        scores[:, 1:][same] = -np.inf
        scores[ids < 0] = -np.inf
        picked, best = top_k(scores, k)
        chosen = np.take_along_axis(ids, np.maximum(picked, 0), axis=1)
        chosen[picked < 0] = -1
        return chosen, best

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first model's similar items (a popularity prior says nothing about similarity)."""
        return self.first.similar_items(items, k=k)

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The first model's explanation when it has one, else no anchors."""
        explain = getattr(type(self.first), "explain", None)
        if explain is None:
            return np.full(ids.shape, -1, dtype=np.int64)
        return self.first.explain(history, ids)


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Each row's finite scores mapped to (0, 1]: (s - min) / (max - min), all 1 when equal; -inf -> 0."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    low = np.where(finite, scores, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.where(high > low, (scores - low) / span, 1.0)
    # the row's worst candidate still beats an item the model did not propose
    scaled = 0.05 + 0.95 * scaled
    return np.where(finite, scaled, 0.0)
