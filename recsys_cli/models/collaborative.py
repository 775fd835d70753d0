"""LightFM behind the model interface, and its factor-model scoring.

This is the only module of the package that imports lightfm, and only inside `fit`: a fitted model
keeps nothing but precomputed vectors, so loading and serving one never needs the library.
A factor model scores with one matrix product, `user_vectors @ item_vectors.T`, and a top-k.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import sparse

from ..data.schema import CATEGORY_SEPARATOR
from ..dataset import Dataset, UserHistory
from .base import explain_by_affinity, rank_rows


class FactorModel:
    """Recommend and similar_items from precomputed vectors (shared by LightFM and ALS).

    Subclasses set in `fit`: `user_vectors` (n_users x (d+1), last column 1), `item_vectors`
    (n_items x (d+1), last column the item bias), `_covered` (customers with training
    interactions) and `_allowed` (items the model may return).
    """

    name: str
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    _covered: np.ndarray
    _allowed: np.ndarray

    @property
    def n_items(self) -> int:
        return self.item_vectors.shape[0]

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The history item whose embedding is most similar (cosine) to each recommended item."""
        vectors = self.item_vectors[:, :-1]
        rows = sparse.csr_matrix(history.weights)
        items = [rows.indices[rows.indptr[r] : rows.indptr[r + 1]] for r in range(rows.shape[0])]

        def cosine(h: np.ndarray, i: np.ndarray) -> np.ndarray:
            a, b = vectors[h], vectors[i]
            return (a @ b.T) / np.outer(np.linalg.norm(a, axis=1) + 1e-9, np.linalg.norm(b, axis=1) + 1e-9)

        return explain_by_affinity(items, ids, cosine)

    def covers_users(self, users: np.ndarray) -> np.ndarray:
        """True for customers this model can score (in the training range, with training interactions)."""
        users = np.asarray(users, dtype=np.int64)
        inside = (users >= 0) & (users < len(self._covered))
        return inside & self._covered[np.where(inside, users, 0)]

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items per customer; customers outside `covers_users` get all -1 (the router falls back).

        `history` is ignored: customer vectors are fixed at fit time, so live events only count
        after the next training run.
        """
        users = np.asarray(users, dtype=np.int64)
        blocked = np.flatnonzero(~self._allowed)

        def score(rows: np.ndarray) -> np.ndarray:
            scores = self.user_vectors[users[rows]] @ self.item_vectors.T
            scores[:, blocked] = -np.inf
            return scores

        return rank_rows(self.covers_users(users), k, score, self.n_items, exclude, allowed=allowed)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k other items by cosine of item embeddings (bias left out); unknown items get all -1."""
        items = np.asarray(items, dtype=np.int64)
        inside = (items >= 0) & (items < self.n_items)
        valid = inside & self._allowed[np.where(inside, items, 0)]
        embeddings = self.item_vectors[:, :-1]
        norms = np.linalg.norm(embeddings, axis=1)
        unit = embeddings / np.where(norms > 0, norms, 1.0)[:, None]
        blocked = np.flatnonzero(~self._allowed)

        def score(rows: np.ndarray) -> np.ndarray:
            scores = unit[items[rows]] @ unit.T
            scores[:, blocked] = -np.inf
            scores[np.arange(len(rows)), items[rows]] = -np.inf
            return scores

        return rank_rows(valid, k, score, self.n_items)


class LightFMModel(FactorModel):
    """LightFM (Kula 2015) on the weighted interactions: WARP by default, optionally hybrid.

    With `use_item_features`, items are represented by identity + category-path prefixes + brand +
    gender + price decile from `dataset.catalog` (rows normalized to sum 1, as LightFM expects).
    Items with fewer than `min_item_users` distinct customers are left out of training and never
    recommended. Customers' vectors are fixed at fit time (`history` is ignored). `num_threads`
    None means os.cpu_count(); LightFM trains lock-free in parallel, so results are reproducible
    for a given `random_state` only with num_threads=1.
    """

    name = "lightfm"

    def __init__(
        self,
        *,
        no_components: int = 40,
        epochs: int = 15,
        loss: str = "warp",
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        max_sampled: int = 10,
        num_threads: int | None = None,
        random_state: int = 42,
        use_item_features: bool = False,
        min_item_users: int = 1,
    ) -> None:
        self.no_components = no_components
        self.epochs = epochs
        self.loss = loss
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.max_sampled = max_sampled
        self.num_threads = num_threads
        self.random_state = random_state
        self.use_item_features = use_item_features
        self.min_item_users = min_item_users

    def fit(self, dataset: Dataset) -> "LightFMModel":
        """Train on `dataset.interactions` (weights as sample_weight), then precompute vectors."""
        from lightfm import LightFM

        matrix = dataset.interactions
        n_users, n_items = matrix.shape
        item_users = np.bincount(matrix.indices[matrix.data > 0], minlength=n_items)
        kept = np.flatnonzero(item_users >= max(self.min_item_users, 1))
        train = matrix[:, kept].tocsr()
        train.eliminate_zeros()

        d = self.no_components
        self.user_vectors = np.zeros((n_users, d + 1), dtype=np.float32)
        self.user_vectors[:, d] = 1.0
        self.item_vectors = np.zeros((n_items, d + 1), dtype=np.float32)
        self._covered = np.diff(train.indptr) > 0
        self._allowed = np.zeros(n_items, dtype=bool)
        if train.nnz == 0:
            return self
        self._allowed[kept] = True

        weights = train.tocoo()
        positives = sparse.coo_matrix((np.ones(weights.nnz, dtype=np.float32), (weights.row, weights.col)), shape=weights.shape)
        features = item_feature_matrix(dataset.catalog.iloc[kept]) if self.use_item_features else None
        model = LightFM(
            no_components=d,
            loss=self.loss,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            user_alpha=self.user_alpha,
            max_sampled=self.max_sampled,
            random_state=self.random_state,
        )
        model.fit(
            positives,
            item_features=features,
            sample_weight=weights,
            epochs=self.epochs,
            num_threads=self.num_threads or os.cpu_count() or 1,
        )
        item_bias, item_embedding = model.get_item_representations(features)
        _, user_embedding = model.get_user_representations()
        self.item_vectors[kept, :d] = item_embedding
        self.item_vectors[kept, d] = item_bias
        self.user_vectors[:, :d] = user_embedding
        return self


def item_feature_matrix(catalog: pd.DataFrame) -> sparse.csr_matrix:
    """Hybrid item features for the catalog's rows: identity, then one column per token, rows summing to 1.

    Tokens: every category-path prefix ("Women", "Women|Shoes", ...), brand, gender and price decile;
    attributes the catalog lacks (NaN) give no token.
    """
    n = len(catalog)
    positions = np.arange(n)
    token_rows: list[np.ndarray] = []
    tokens: list[pd.Series] = []

    def add(prefix: str, values: pd.Series) -> None:
        values = values.reset_index(drop=True)
        present = values.notna().to_numpy()
        token_rows.append(positions[present])
        tokens.append(prefix + values[present].astype(str))

    if "category_path" in catalog and catalog["category_path"].notna().any():
        levels = catalog["category_path"].astype("string").str.split(CATEGORY_SEPARATOR, expand=True)
        path = None
        for column in levels.columns:
            path = levels[column] if path is None else path + CATEGORY_SEPARATOR + levels[column]
            add("category:", path)
    for column in ("brand", "gender"):
        if column in catalog:
            add(f"{column}:", catalog[column])
    if "price" in catalog and catalog["price"].notna().sum() > 1:
        add("price:", pd.qcut(catalog["price"], q=10, labels=False, duplicates="drop"))

    rows = np.concatenate([positions, *token_rows])
    if tokens:
        codes, _ = pd.factorize(pd.concat(tokens, ignore_index=True))
        n_tokens = int(codes.max()) + 1 if len(codes) else 0
        cols = np.concatenate([positions, n + codes])
    else:
        n_tokens, cols = 0, positions
    matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n + n_tokens), dtype=np.float32)
    matrix.sum_duplicates()
    matrix.data = np.ones_like(matrix.data)
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.csr_matrix(sparse.diags(1.0 / row_sums) @ matrix, dtype=np.float32)
