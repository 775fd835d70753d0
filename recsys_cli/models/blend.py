"""A blend of two recommenders' normalised scores, the weight chosen on the shop's own data.

Each model proposes its top `pool` candidates for a customer; a candidate's score from each model
is divided by that model's typical best score (the median top score over a sample of customers,
measured once by `calibrate`), negative scores and candidates a model did not propose count 0,
and the blend is (1 - weight) * first + weight * second. The scale is one number per model, so a
customer's blended scores do not depend on which products a filter or an exclusion removed: the
remaining products keep their order. Typical pairs: a collaborative model and (trending)
popularity, or two collaborative models that see different things (EASE on the most active
products with item kNN or ALS over the whole catalog).
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
        self.scales = (1.0, 1.0)

    def fit(self, dataset: Dataset) -> "BlendModel":
        """Fit both models and calibrate on the fitted data (a blend is usually assembled from
        already fitted models and calibrated instead)."""
        self.first.fit(dataset)
        self.second.fit(dataset)
        return self.calibrate(np.arange(dataset.n_users), dataset.history())

    def calibrate(self, users: np.ndarray, history: UserHistory, *, sample: int = 1000, seed: int = 0) -> "BlendModel":
        """Measure each model's typical best score on up to `sample` of `users` (rows of `history`)."""
        rows = np.flatnonzero(np.diff(history.weights.indptr) > 0)
        if len(rows) > sample:
            rows = np.sort(np.random.default_rng(seed).choice(rows, size=sample, replace=False))
        if not len(rows):
            return self
        part = UserHistory(history.weights[rows], history.last_seen[rows], history.strongest[rows])
        scales = []
        for model in (self.first, self.second):
            _, best = model.recommend(np.asarray(users, dtype=np.int64)[rows], k=1, history=part)
            top = best[:, 0][np.isfinite(best[:, 0]) & (best[:, 0] > 0)]
            scales.append(float(np.median(top)) if len(top) else 1.0)
        self.scales = (scales[0], scales[1])
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
            [(1 - self.weight) * _scaled(first_scores, self.scales[0]), self.weight * _scaled(second_scores, self.scales[1])],
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


def _scaled(scores: np.ndarray, scale: float) -> np.ndarray:
    """Scores divided by the model's typical best score; negative and missing (-inf) count 0."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isfinite(scores), np.maximum(scores, 0.0) / scale, 0.0)
