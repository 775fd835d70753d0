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
from .base import Explains, Recommender, declares, recommend_one, take_padded, top_k, top_k_one
from .popularity import PopularityModel


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
        self.scales = (
            typical_best(self.first, users, history, sample=sample, seed=seed),
            typical_best(self.second, users, history, sample=sample, seed=seed),
        )
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
        """Top-k of the blended scores; rows where neither model has a candidate get all -1."""
        pool = max(self.pool, k)
        first = self.first.recommend(users, k=pool, exclude=exclude, history=history, allowed=allowed)
        second = self.second.recommend(users, k=pool, exclude=exclude, history=history, allowed=allowed)
        return combine(first, second, self.weight, self.scales, k)

    def recommend_one(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One customer's top-k (see `RecommendsOne`) from each model's own short path."""
        pool = max(self.pool, k)
        first = recommend_one(self.first, user, history, k=pool, allowed=allowed, excluded=excluded)
        second = recommend_one(self.second, user, history, k=pool, allowed=allowed, excluded=excluded)
        return combine_one(first, second, self.weight, self.scales, k)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The first model's similar items (a popularity prior says nothing about similarity)."""
        return self.first.similar_items(items, k=k)

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The first model's explanation when it has one, else no anchors."""
        if not declares(self.first, Explains):
            return np.full(ids.shape, -1, dtype=np.int64)
        return self.first.explain(history, ids)


def _scaled(scores: np.ndarray, scale: float) -> np.ndarray:
    """Scores divided by the model's typical best score; negative and missing (-inf) count 0."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.where(np.isfinite(scores), np.maximum(scores, 0.0) / scale, 0.0)


def typical_best(model: Recommender, users: np.ndarray, history: UserHistory, *, sample: int = 1000, seed: int = 0) -> float:
    """The median best score `model` gives to up to `sample` of `users` (rows of `history`); 1.0 when none."""
    if isinstance(model, PopularityModel):
        return 1.0  # its best item scores 1.0 by construction
    rows = np.flatnonzero(np.diff(history.weights.indptr) > 0)
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=sample, replace=False))
    if not len(rows):
        return 1.0
    part = UserHistory(history.weights[rows], history.last_seen[rows], history.strongest[rows])
    _, best = model.recommend(np.asarray(users, dtype=np.int64)[rows], k=1, history=part)
    top = best[:, 0][np.isfinite(best[:, 0]) & (best[:, 0] > 0)]
    return float(np.median(top)) if len(top) else 1.0


def combine(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], weight: float, scales: tuple[float, float], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of (1 - weight) * first + weight * second over two models' candidate lists (ids, scores)."""
    if len(first[0]) == 1:  # one customer's request
        ids, best = combine_one((first[0][0], first[1][0]), (second[0][0], second[1][0]), weight, scales, k)
        return ids[None, :], best[None, :]
    ids = np.concatenate([first[0], second[0]], axis=1)
    scores = np.concatenate([(1 - weight) * _scaled(first[1], scales[0]), weight * _scaled(second[1], scales[1])], axis=1)
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


def combine_one(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], weight: float, scales: tuple[float, float], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """`combine` for one customer's 1-D candidate lists: sort the candidates by product, sum equal
    neighbours (the first model's part before the second's, as in the batch path), top k."""
    parts = []
    for (ids, scores), share, scale in ((first, 1 - weight, scales[0]), (second, weight, scales[1])):
        proposed = ids >= 0
        parts.append((ids[proposed], share * _scaled(scores[proposed], scale)))
    items, values = np.concatenate((parts[0][0], parts[1][0])), np.concatenate((parts[0][1], parts[1][1]))
    if not len(items):
        return np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
    order = np.argsort(items, kind="stable")
    items, values = items[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], items[1:] != items[:-1])))
    picked, best = top_k_one(np.add.reduceat(values, starts) + 0.0, k, sample=False)  # + 0.0: no -0.0
    return take_padded(items[starts], picked), best
