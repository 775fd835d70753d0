"""Content-based product similarity from catalog attributes, and recommendations built on it.

The similarity of two products is the weighted sum of per-feature similarities (see
`ContentConfig` for the weights), each in [0, 1]:

- category: cosine of the binary token vectors of the `|`-separated `category_path`;
- brand: 1 if both brands are known and equal (compared trimmed and case-folded), else 0;
- gender: the original assignment's table, `GENDER_SIMILARITY`;
- price: ``exp(-|ln(p1 / p2)| / price_scale)``, i.e. ``min(p1/p2, p2/p1) ** (1 / price_scale)``:
  1 for equal prices, smoothly decreasing with the price ratio and symmetric in it; with the
  default scale 1.0 a product twice (or half) as expensive scores 0.5;
- text (off by default): cosine of TF-IDF vectors of the description with HTML stripped.

A feature that is missing on either side (no category path, brand, known gender, positive price or
description) contributes 0 for that pair; the weights are not renormalised, so sparse catalog rows
simply score lower.

`fit` precomputes the top-K neighbours (never itself, similarity > 0 only) of every product with
events, so `similar_items` and `recommend` are lookups for them; any other product's neighbours are
computed by the same exact code when first asked for and kept in a bounded cache. Fit time thus
follows the products with events, not the catalog: each block of rows scores only the items that
can still reach its top K (see `_pruned_tasks` and `_block_candidates`).
"""

from __future__ import annotations

import html
import math
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from ..data.schema import CATEGORY_SEPARATOR, GENDERS
from ..dataset import Dataset, UserHistory
from ..errors import InputError, NotFoundError
from .base import map_threads

_GENDER_LABELS: dict[str, frozenset[str]] = {
    "Man": frozenset({"man"}),
    "Woman": frozenset({"woman"}),
    "Child": frozenset({"child"}),
    "Unisex": frozenset({"man", "woman", "unisex"}),
    "Other": frozenset({"man", "woman", "unisex", "other"}),
}


def _gender_table() -> np.ndarray:
    labels = sorted(set().union(*_GENDER_LABELS.values()))
    onehot = np.array([[label in _GENDER_LABELS[g] for label in labels] for g in GENDERS], dtype=np.float64)
    onehot /= np.linalg.norm(onehot, axis=1, keepdims=True)
    table = onehot @ onehot.T
    table.setflags(write=False)
    return table


GENDER_SIMILARITY: np.ndarray = _gender_table()
"""5x5 gender similarity in `schema.GENDERS` order: the cosine of the label sets Man={man},
Woman={woman}, Child={child}, Unisex={man, woman, unisex}, Other={man, woman, unisex, other}."""

_GENDER_INDEX: dict[str, int] = {g.casefold(): i for i, g in enumerate(GENDERS)}
_MISSING_GENDER = len(GENDERS)


def gender_similarity(a: str, b: str) -> float:
    """Similarity of two gender labels (case-insensitive); 0.0 if either is not one of `GENDERS`."""
    i = _GENDER_INDEX.get(str(a).strip().casefold(), _MISSING_GENDER)
    j = _GENDER_INDEX.get(str(b).strip().casefold(), _MISSING_GENDER)
    if i == _MISSING_GENDER or j == _MISSING_GENDER:
        return 0.0
    return float(GENDER_SIMILARITY[i, j])


@dataclass(frozen=True)
class ContentConfig:
    """Feature weights, neighbour count K and the price scale of the content model.

    The default weights sum to 1, so similarities lie in [0, 1]. Text is off by default; turning
    it on (weight 0.2, K = 20) made `fit` about 3.6 s instead of 3.0 s on the seed's 28k products.
    """

    category: float = 0.2
    brand: float = 0.1
    gender: float = 0.5
    price: float = 0.2
    text: float = 0.0
    neighbours: int = 100
    price_scale: float = 1.0

    def __post_init__(self) -> None:
        weights = self.weights()
        if any(not math.isfinite(w) or w < 0 for w in weights.values()):
            raise InputError("content weights must be finite and non-negative")
        if sum(weights.values()) <= 0:
            raise InputError("at least one content weight must be positive")
        if self.neighbours < 1:
            raise InputError("content neighbours must be at least 1")
        if not (math.isfinite(self.price_scale) and self.price_scale > 0):
            raise InputError("content price_scale must be positive")

    def weights(self) -> dict[str, float]:
        """Feature name -> weight."""
        return {
            "category": self.category,
            "brand": self.brand,
            "gender": self.gender,
            "price": self.price,
            "text": self.text,
        }


_BLOCK_ROWS = 32  # small blocks keep the working set in cache; measured fastest on 28k products
_CANDIDATE_CELLS = 1 << 20  # scores per candidate block (4 MB of float32)
_MAX_COMBO_TABLE = 4096  # (category path, gender) combinations: precompute their table up to this many
_PRICE_BLOCK_ROWS = 16  # rows per candidate block: a narrow price range bounds scores tightly
_BOUND_SLACK = 1e-4  # bounds are float64, scores float32 sums of at most five parts in [0, 1]
_FEW_ITEMS = 8  # similar_items for up to this many products (a request's) fills each row from a slice
_CACHED_ROWS = 50_000  # on-demand neighbour rows kept (about 1 KB each at K = 100)
_SEED_ITEMS = 8  # times K + 1: items scored first per block, for each row's K-th best similarity
# ln(p / midrange price) / scale is clipped here so exp(+-it) and their products stay finite in float32;
# neighbour scores are exact unless the catalog's max/min price ratio exceeds exp(160 * scale)
_PRICE_CLIP = 80.0
_TAG = re.compile(r"<[^>]*>")


@dataclass
class _Features:
    """Integer codes and small tables describing the catalog; compact enough to pickle."""

    path_code: np.ndarray  # int32 per item, index into path_tokens; the last row is "no category"
    path_tokens: sparse.csr_matrix  # (n_paths + 1) x n_tokens, L2-normalised rows, float32
    gender_code: np.ndarray  # int8 per item, index into GENDERS; len(GENDERS) = missing
    brand_code: np.ndarray  # int32 per item, -1 = missing
    log_price: np.ndarray  # float64 per item, NaN = missing
    text: sparse.csr_matrix | None  # n_items x vocabulary TF-IDF (L2-normalised), when enabled


class ContentModel:
    """Products are similar when their catalog attributes are; customers get neighbours of their history."""

    name = "content"

    def __init__(self, config: ContentConfig = ContentConfig()) -> None:
        self.config = config
        self.n_items = 0
        self.features: _Features | None = None
        self.neighbours: sparse.csr_matrix = sparse.csr_matrix((0, 0), dtype=np.float32)
        self.precomputed: np.ndarray = np.zeros(0, dtype=bool)
        self._fit_last_seen: sparse.csr_matrix = sparse.csr_matrix((0, 0))
        self._init_on_demand()

    def _init_on_demand(self) -> None:
        self._inputs: _BlockInputs | None = None
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_inputs", "_cache", "_lock"):  # rebuilt on demand; a lock does not pickle
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "precomputed" not in state:  # saved before on-demand rows: every row was precomputed
            self.precomputed = np.ones(self.n_items, dtype=bool)
        self._init_on_demand()

    # ------------------------------------------------------------------ fit

    def fit(self, dataset: Dataset) -> "ContentModel":
        """Encode the catalog and precompute the top-K neighbours of every product with events.

        `neighbours` is an n_items x n_items CSR matrix whose row i holds at most K entries in rank
        order (similarity descending, then index) when `precomputed[i]`, and is empty otherwise:
        read it through `indptr`/`indices`/`data`, do not call `sort_indices` on it. Rows of the
        other products are computed exactly when first asked for (`similar_items`, or a live history
        that holds them) and kept in a bounded cache, so fit time follows the products with events
        rather than the size of the catalog.
        """
        self.n_items = dataset.n_items
        self.features = _encode(dataset.catalog, self.config)
        self._init_on_demand()
        self.precomputed = np.bincount(dataset.pairs["item"].to_numpy(), minlength=self.n_items) > 0
        rows = np.flatnonzero(self.precomputed)
        computed = _neighbours(self.features, self._block_inputs(), self.config, rows)
        counts = np.zeros(self.n_items, dtype=np.int64)
        counts[rows] = np.diff(computed.indptr)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        self.neighbours = sparse.csr_matrix((computed.data, computed.indices, indptr), shape=(self.n_items, self.n_items))
        self._fit_last_seen = dataset.history().last_seen.astype(np.float64)
        return self

    # ------------------------------------------------------------ similarity

    def neighbour_count(self) -> int:
        """Neighbours kept per product (`ContentConfig.neighbours`)."""
        return self.config.neighbours

    def similarity(self, a: int, b: int) -> dict[str, float]:
        """Similarity of products `a` and `b` (internal indices): each feature's part and the total.

        Parts are the unweighted feature similarities in [0, 1]; "total" is their weighted sum.
        "text" is present only when the text weight is positive.
        """
        f = self._fitted()
        for item in (a, b):
            if not 0 <= int(item) < self.n_items:
                raise NotFoundError(f"product index {item} is not in the fitted catalog; retrain to include it")
        a, b = int(a), int(b)
        row_a, row_b = f.path_tokens[f.path_code[a]], f.path_tokens[f.path_code[b]]
        parts = {
            "category": float(row_a.multiply(row_b).sum()),
            "brand": float(f.brand_code[a] >= 0 and f.brand_code[a] == f.brand_code[b]),
            "gender": _gender_pair(int(f.gender_code[a]), int(f.gender_code[b])),
            "price": _price_pair(f.log_price[a], f.log_price[b], self.config.price_scale),
        }
        if f.text is not None:
            parts["text"] = float(f.text[a].multiply(f.text[b]).sum())
        parts = {key: min(max(value, 0.0), 1.0) for key, value in parts.items()}
        weights = self.config.weights()
        parts["total"] = float(sum(weights[key] * value for key, value in parts.items()))
        return parts

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top-k neighbours of `items` (precomputed or on demand); -1 / -inf beyond K or for unknown items."""
        self._fitted()
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        ids = np.full((len(items), max(k, 0)), -1, dtype=np.int64)
        scores = np.full((len(items), max(k, 0)), -np.inf, dtype=np.float32)
        if k <= 0 or len(items) == 0:
            return ids, scores
        if len(items) <= _FEW_ITEMS:  # a request's few products: a slice of each list
            return self._few_similar(items.tolist(), ids, scores)
        known = (items >= 0) & (items < self.n_items)
        rows = np.flatnonzero(known)
        start, degree, indices, data = self._rows(items[rows])
        length = np.minimum(degree, k)
        out_row = np.repeat(rows, length)
        rank = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        source = np.repeat(start, length) + rank
        ids[out_row, rank] = indices[source]
        scores[out_row, rank] = data[source]
        return ids, scores

    def _few_similar(self, items: list[int], ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`similar_items` for a few products: each row filled from a slice of its list (`_rows`),
        cut to the width of `ids` (already padded with -1 / -inf)."""
        rows = [row for row, item in enumerate(items) if 0 <= item < self.n_items]
        if rows:
            start, length, indices, data = self._rows(np.array([items[row] for row in rows], dtype=np.int64))
            for row, first, width in zip(rows, start.tolist(), np.minimum(length, ids.shape[1]).tolist(), strict=True):
                ids[row, :width], scores[row, :width] = indices[first : first + width], data[first : first + width]
        return ids, scores

    def _rows(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Neighbour lists of `items` (valid indices) as (start, length, indices, data).

        Item items[i]'s list is indices[start[i] : start[i] + length[i]], with data its scores.
        """
        ptr = self.neighbours.indptr
        stored = self.precomputed[items]
        if stored.all():
            return ptr[items], ptr[items + 1] - ptr[items], self.neighbours.indices, self.neighbours.data
        extra_length, extra_indices, extra_data = self._on_demand(items[~stored])
        from_fit = items[stored]
        fit_length = ptr[from_fit + 1] - ptr[from_fit]
        fit_source = np.repeat(ptr[from_fit] - np.cumsum(fit_length) + fit_length, fit_length) + np.arange(fit_length.sum())
        length = np.empty(len(items), dtype=np.int64)
        length[stored], length[~stored] = fit_length, extra_length
        start = np.empty(len(items), dtype=np.int64)
        start[stored] = np.cumsum(fit_length) - fit_length
        start[~stored] = fit_length.sum() + np.cumsum(extra_length) - extra_length
        indices = np.concatenate([self.neighbours.indices[fit_source], extra_indices])
        data = np.concatenate([self.neighbours.data[fit_source], extra_data])
        return start, length, indices, data

    def _on_demand(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact neighbour lists of `items` (not precomputed) as (lengths, indices, data): cached, else computed now."""
        with self._lock:
            found = {i: self._cache[i] for i in items.tolist() if i in self._cache}
            for i in found:
                self._cache.move_to_end(i)
        todo = np.unique(np.array([i for i in items.tolist() if i not in found], dtype=np.int64))
        if len(todo):
            computed = _neighbours(self._fitted(), self._block_inputs(), self.config, todo)
            with self._lock:
                for r, item in enumerate(todo.tolist()):
                    span = slice(computed.indptr[r], computed.indptr[r + 1])
                    found[item] = self._cache[item] = (computed.indices[span].copy(), computed.data[span].copy())
                while len(self._cache) > _CACHED_ROWS:
                    self._cache.popitem(last=False)
        lists = [found[i] for i in items.tolist()]
        lengths = np.array([len(ids) for ids, _ in lists], dtype=np.int64)
        return lengths, np.concatenate([ids for ids, _ in lists]), np.concatenate([values for _, values in lists])

    def _block_inputs(self) -> _BlockInputs:
        """The catalog's combination tables and bounds, built once per fit or load."""
        inputs = self._inputs
        if inputs is None:
            with self._lock:
                if self._inputs is None:
                    self._inputs = _block_inputs(self._fitted(), self.config)
                inputs = self._inputs
        return inputs

    # -------------------------------------------------------- recommendations

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of each customer's history, round-robin over history items (see recommend_explained)."""
        ids, scores, _ = self.recommend_explained(users, k=k, exclude=exclude, history=history, allowed=allowed)
        return ids, scores

    def recommend_explained(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-k items per customer with, for each, the history item ("anchor") it is a neighbour of.

        History items (from `history` when given, else the fit-time interactions) are taken most
        recent first; the k slots are shared round-robin: the best neighbour of the most recent
        item, the best of the second most recent, ..., then the second-best neighbours, and so on.
        Items the customer already interacted with, items in `exclude`, items not `allowed` and
        repeats are skipped.
        A score is the similarity between the item and its anchor, so scores follow the
        round-robin order and need not decrease. Customers without history get -1 / -inf / -1.
        """
        self._fitted()
        users = np.atleast_1d(np.asarray(users, dtype=np.int64))
        n_users, k = len(users), max(int(k), 0)
        ids = np.full((n_users, k), -1, dtype=np.int64)
        scores = np.full((n_users, k), -np.inf, dtype=np.float32)
        anchors = np.full((n_users, k), -1, dtype=np.int64)
        if k == 0 or n_users == 0:
            return ids, scores, anchors
        last_seen = history.last_seen if history is not None else self._fit_history(users)
        last_seen = sparse.csr_matrix(last_seen)
        if last_seen.shape[0] != n_users:
            raise InputError(f"history has {last_seen.shape[0]} rows for {n_users} customers; align them")
        width = max(self.n_items, last_seen.shape[1], exclude.shape[1] if exclude is not None else 0)

        seen = last_seen.tocoo()
        h_row, h_item, h_ts = seen.row.astype(np.int64), seen.col.astype(np.int64), seen.data
        order = np.lexsort((h_item, -h_ts, h_row))  # per customer: most recent first
        h_row, h_item = h_row[order], h_item[order]
        seen_keys = np.unique(h_row * width + h_item)
        excluded_keys = _keys(exclude, width)

        per_user = np.bincount(h_row, minlength=n_users)
        h_rank = np.arange(len(h_row)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
        inside = h_item < self.n_items
        degree = np.zeros(len(h_item), dtype=np.int64)
        start = np.zeros(len(h_item), dtype=np.int64)
        start[inside], degree[inside], lists, list_scores = self._rows(h_item[inside])

        # Depth per customer: enough neighbours per anchor to fill k slots when nothing is skipped;
        # customers left short while some anchor has deeper neighbours retry with double depth.
        depth = np.zeros(n_users, dtype=np.int64)
        has_history = per_user > 0
        depth[has_history] = -(-k // per_user[has_history]) + 1
        active = has_history.copy()
        max_degree = int(degree.max()) if len(degree) else 0
        while active.any():
            take = active[h_row]
            filled, truncated = self._round_robin(
                h_row[take],
                h_rank[take],
                h_item[take],
                start[take],
                degree[take],
                depth,
                k,
                width,
                seen_keys,
                excluded_keys,
                allowed,
                (lists, list_scores),
                (ids, scores, anchors),
            )
            retry = active & (filled < k) & truncated & (depth < max_degree)
            depth[retry] *= 2
            active = retry
        return ids, scores, anchors

    def _round_robin(
        self,
        row: np.ndarray,
        rank: np.ndarray,
        item: np.ndarray,
        start: np.ndarray,
        degree: np.ndarray,
        depth: np.ndarray,
        k: int,
        width: int,
        seen_keys: np.ndarray,
        excluded_keys: np.ndarray,
        allowed: np.ndarray | None,
        lists: tuple[np.ndarray, np.ndarray],
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fill `out` rows for the anchors given; return per-row filled counts and whether any anchor was cut.

        `lists` holds the neighbour ids and scores that `start` and `degree` point into.
        """
        n_rows = len(out[0])
        length = np.minimum(degree, depth[row])
        truncated = np.bincount(row[degree > length], minlength=n_rows) > 0
        anchor = np.repeat(np.arange(len(row)), length)
        level = np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
        source = start[anchor] + level
        cand = lists[0][source].astype(np.int64)
        cand_row = row[anchor]
        keys = cand_row * width + cand
        keep = ~(_contains(seen_keys, keys) | _contains(excluded_keys, keys))
        if allowed is not None:
            keep &= allowed[np.minimum(cand, len(allowed) - 1)] & (cand < len(allowed))
        anchor, level, source, cand, cand_row, keys = (a[keep] for a in (anchor, level, source, cand, cand_row, keys))
        max_rank = int(rank.max()) + 1 if len(rank) else 1
        max_level = int(level.max()) + 1 if len(level) else 1
        order = np.argsort((cand_row * max_level + level) * max_rank + rank[anchor], kind="stable")
        _, first = np.unique(keys[order], return_index=True)
        order = order[np.sort(first)]
        cand_row = cand_row[order]
        per_row = np.bincount(cand_row, minlength=n_rows)
        slot = np.arange(len(order)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        fits = slot < k
        order, cand_row, slot = order[fits], cand_row[fits], slot[fits]
        ids, scores, anchors = out
        ids[cand_row, slot] = cand[order]
        scores[cand_row, slot] = lists[1][source[order]]
        anchors[cand_row, slot] = item[anchor[order]]
        return np.minimum(per_row, k), truncated

    # --------------------------------------------------------------- helpers

    def _fitted(self) -> _Features:
        if self.features is None:
            raise RuntimeError("ContentModel is not fitted; call fit(dataset) first")
        return self.features

    def _fit_history(self, users: np.ndarray) -> sparse.csr_matrix:
        """Fit-time last-seen rows of `users`; customers unknown at fit time get empty rows."""
        known = (users >= 0) & (users < self._fit_last_seen.shape[0])
        rows = self._fit_last_seen[np.where(known, users, 0)]
        if known.all():
            return rows
        lengths = np.diff(rows.indptr) * known
        keep = np.repeat(known, np.diff(rows.indptr))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        return sparse.csr_matrix((rows.data[keep], rows.indices[keep], indptr), shape=rows.shape)


def _keys(matrix: sparse.spmatrix | None, width: int) -> np.ndarray:
    """Sorted unique row * width + column keys of a matrix's stored entries."""
    if matrix is None or matrix.nnz == 0:
        return np.zeros(0, dtype=np.int64)
    coo = sparse.coo_matrix(matrix)
    return np.unique(coo.row.astype(np.int64) * width + coo.col.astype(np.int64))


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys


def _gender_pair(i: int, j: int) -> float:
    if i == _MISSING_GENDER or j == _MISSING_GENDER:
        return 0.0
    return float(GENDER_SIMILARITY[i, j])


def _price_pair(log_a: float, log_b: float, scale: float) -> float:
    if not (np.isfinite(log_a) and np.isfinite(log_b)):
        return 0.0
    return float(np.exp(-abs(log_a - log_b) / scale))


# ---------------------------------------------------------------- encoding


def _encode(catalog: pd.DataFrame, config: ContentConfig) -> _Features:
    """Catalog rows (internal item order) -> integer codes, token matrix and log prices."""
    n = len(catalog)
    path_code, path_tokens = _encode_paths(_text_column(catalog, "category_path"))

    gender = _text_column(catalog, "gender").str.strip().str.casefold().fillna("")
    gender_code = pd.Index(list(_GENDER_INDEX)).get_indexer(gender)
    gender_code = np.where(gender_code < 0, _MISSING_GENDER, gender_code).astype(np.int8)

    brand = _text_column(catalog, "brand").str.strip().str.casefold()
    brand_code = pd.factorize(brand.mask(brand == ""))[0].astype(np.int32)

    price = pd.to_numeric(catalog["price"], errors="coerce").to_numpy(dtype=np.float64) if n else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_price = np.where(np.isfinite(price) & (price > 0), np.log(np.where(price > 0, price, 1.0)), np.nan)

    text = _encode_text(_text_column(catalog, "description")) if config.text > 0 else None
    return _Features(path_code, path_tokens, gender_code, brand_code, log_price, text)


def _text_column(catalog: pd.DataFrame, column: str) -> pd.Series:
    """A catalog column as pandas strings (missing values stay missing), even when all are missing."""
    if column not in catalog.columns:
        return pd.Series(pd.NA, index=catalog.index, dtype="string")
    values = catalog[column]
    return values.astype(object).where(values.notna(), None).astype("string")


def _encode_paths(paths: pd.Series) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Distinct category paths and their normalised binary token vectors (last row: no category)."""
    code, uniques = pd.factorize(paths)
    n_paths = len(uniques)
    tokens = pd.Series(uniques, dtype=object).str.split(CATEGORY_SEPARATOR, regex=False).explode().str.strip()
    tokens = tokens[tokens.notna() & (tokens != "")]
    token_code, _ = pd.factorize(tokens)
    matrix = sparse.csr_matrix(
        (np.ones(len(tokens), dtype=np.float32), (tokens.index.to_numpy(), token_code)),
        shape=(n_paths + 1, max(token_code.max() + 1 if len(token_code) else 0, 1)),
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    matrix = sparse.csr_matrix(sparse.diags(1.0 / norms).astype(np.float32) @ matrix, dtype=np.float32)
    code = np.where(code < 0, n_paths, code).astype(np.int32)
    return code, matrix


def _encode_text(descriptions: pd.Series) -> sparse.csr_matrix:
    """TF-IDF (L2-normalised rows) of descriptions with HTML tags and entities removed.

    Products without a description get empty rows. In catalogs of 100+ described products, terms
    found in more than half of the descriptions are dropped: they carry no signal and make the
    similarity blocks dense.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    text = descriptions.fillna("").str.replace(_TAG, " ", regex=True).astype(object).map(html.unescape)
    described = int(text.str.strip().astype(bool).sum())
    if described == 0:
        return sparse.csr_matrix((len(text), 1), dtype=np.float32)
    vectorizer = TfidfVectorizer(strip_accents="unicode", sublinear_tf=True, max_df=0.5 if described >= 100 else 1.0, dtype=np.float32)
    try:
        return sparse.csr_matrix(vectorizer.fit_transform(text), dtype=np.float32)
    except ValueError:  # no usable terms at all (e.g. only punctuation)
        return sparse.csr_matrix((len(text), 1), dtype=np.float32)


# -------------------------------------------------------------- neighbours


@dataclass
class _BlockInputs:
    """What each row block needs, built once per fitted catalog (and again after unpickling)."""

    combo_code: np.ndarray  # per item: index of its (category path, gender) combination
    combo_tokens_t: sparse.csc_matrix  # tokens x combos
    combo_gender: np.ndarray  # per combination: gender code
    gender_table: np.ndarray  # (len(GENDERS) + 1)^2, zero row/column for missing
    brand: np.ndarray  # int32 per item, -1 missing
    price_q: np.ndarray  # float32 p ** (1/scale) (centred), 0 where missing
    price_r: np.ndarray  # float32 1 / price_q, 0 where missing
    combo_sizes: np.ndarray  # per combination: its number of items
    combo_extra: np.ndarray  # float64 per combination: the largest `extra` among its items
    extra: np.ndarray  # float64 per item: the most brand, price and text can add to its similarity
    by_key: np.ndarray  # items sorted by (combination, price exponent), missing prices first
    key: np.ndarray  # float64 combination * _KEY_SPAN + price exponent (+ _KEY_OFFSET), sorted
    by_brand: np.ndarray  # items with a brand, sorted by (brand, combination)
    brand_key: np.ndarray  # int64 brand * combinations + combination, sorted
    combo_table: np.ndarray | None = None  # combos x combos category + gender part, when small


_KEY_SPAN = 1024.0  # price exponents lie in [-_PRICE_CLIP, _PRICE_CLIP]; missing prices sort first
_KEY_OFFSET = 512.0


def _block_inputs(f: _Features, config: ContentConfig) -> _BlockInputs:
    """Combination codes, price factors, per-item bounds and the (combination, price) index of a catalog."""
    combo, combo_code = np.unique(f.path_code.astype(np.int64) * 8 + f.gender_code, return_inverse=True)
    combo_code = combo_code.astype(np.intp).ravel()
    gender_table = np.zeros((_MISSING_GENDER + 1, _MISSING_GENDER + 1), dtype=np.float32)
    gender_table[:_MISSING_GENDER, :_MISSING_GENDER] = GENDER_SIMILARITY
    finite = f.log_price[np.isfinite(f.log_price)]
    centred = f.log_price - (finite.min() + finite.max()) / 2 if len(finite) else f.log_price
    exponent = np.clip(centred / config.price_scale, -_PRICE_CLIP, _PRICE_CLIP)
    known = np.isfinite(exponent)
    q = np.where(known, np.exp(np.where(known, exponent, 0.0)), 0.0).astype(np.float32)
    r = np.where(known, np.exp(-np.where(known, exponent, 0.0)), 0.0).astype(np.float32)
    # brand, price and text each add at most their weight, and nothing where the item lacks them
    extra = config.brand * (f.brand_code >= 0) + config.price * known
    if f.text is not None and config.text > 0:
        extra = extra + config.text * (np.diff(f.text.indptr) > 0)
    combo_extra = np.zeros(len(combo), dtype=np.float64)
    np.maximum.at(combo_extra, combo_code, extra)
    key = combo_code * _KEY_SPAN + np.where(known, exponent + _KEY_OFFSET, 0.0)
    by_key = np.argsort(key, kind="stable")
    branded = np.flatnonzero(f.brand_code >= 0)
    brand_key = f.brand_code[branded].astype(np.int64) * len(combo) + combo_code[branded]
    by_brand = np.argsort(brand_key, kind="stable")
    inputs = _BlockInputs(
        combo_code=combo_code,
        combo_tokens_t=f.path_tokens[combo // 8].T.tocsc(),
        combo_gender=(combo % 8).astype(np.intp),
        gender_table=gender_table,
        brand=f.brand_code.astype(np.int64),
        price_q=q,
        price_r=r,
        combo_sizes=np.bincount(combo_code, minlength=len(combo)),
        combo_extra=combo_extra,
        extra=extra.astype(np.float64),
        by_key=by_key,
        key=key[by_key],
        by_brand=branded[by_brand],
        brand_key=brand_key[by_brand],
    )
    if len(combo) <= _MAX_COMBO_TABLE:
        inputs.combo_table = _combo_part(np.arange(len(combo)), f, inputs, config)
    return inputs


@dataclass
class _Group:
    """Rows sharing a (category path, gender) combination, and what bounds their neighbours."""

    table_row: np.ndarray  # float32 per combination: the rows' category + gender part
    combos: np.ndarray  # combinations that can hold a neighbour, by part descending
    seed: int  # the first `seed` of `combos` hold at least K + 1 items
    floor: float  # the (K+1)-th largest part over all items: every row has K others at least this similar


def _neighbours(f: _Features, x: _BlockInputs, config: ContentConfig, rows: np.ndarray) -> sparse.csr_matrix:
    """Top-K neighbours (rank order per row) of the items `rows` (sorted, distinct) among all items.

    Row r of the len(rows) x n result belongs to item rows[r]. Computed in row blocks on up to 2
    threads; a row's list depends only on the catalog, never on which other rows are computed with it.
    """
    n = len(f.path_code)
    K = min(config.neighbours, max(n - 1, 0))
    if len(rows) == 0 or K == 0:
        return sparse.csr_matrix((len(rows), n), dtype=np.float32)
    local = threading.local()
    tasks = _pruned_tasks(rows, n, K, f, x, config)

    def block(task: tuple[np.ndarray, _Group | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        items, group = task
        if group is None:  # every item is a candidate: the dense block path
            if not hasattr(local, "workspace"):  # one set of buffers per thread, reused by every block
                local.workspace = _Workspace(min(_BLOCK_ROWS, n), n)
            scores = _block_scores(items, f, x, config, local.workspace)
            kept, picked, values = _top_positive(scores, K, local.workspace)
            return items, kept, picked, values
        if not hasattr(local, "scratch"):
            local.scratch = _Scratch(_CANDIDATE_CELLS)
        columns = _block_candidates(items, group, K, f, x, config, local.scratch)
        if not len(columns):
            return items, np.zeros(len(items), dtype=np.int64), columns, np.zeros(0, dtype=np.float32)
        kept, picked, values = np.zeros(len(items), dtype=np.int64), [], []
        step = max(1, _CANDIDATE_CELLS // max(len(columns), 1))
        part = group.table_row[x.combo_code[columns]]
        for i in range(0, len(items), step):  # a wide candidate set is scored a few rows at a time
            scores = _candidate_scores(items[i : i + step], columns, part, f, x, config, local.scratch)
            counts, cols, vals = _top_positive(scores, K, local.scratch.view(scores.shape))
            kept[i : i + step] = counts
            picked.append(columns[cols])
            values.append(vals)
        return items, kept, np.concatenate(picked), np.concatenate(values)

    parts = map_threads(block, tasks, min(2, os.cpu_count() or 1))
    position = np.searchsorted(rows, np.concatenate([np.repeat(p[0], p[1]) for p in parts]))
    order = np.argsort(position, kind="stable")  # row order; each row's rank order is kept
    counts = np.bincount(position, minlength=len(rows))
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([p[2] for p in parts]).astype(np.int32)[order]
    data = np.concatenate([p[3] for p in parts]).astype(np.float32)[order]
    return sparse.csr_matrix((data, indices, indptr), shape=(len(rows), n))


def _pruned_tasks(rows: np.ndarray, n: int, K: int, f: _Features, x: _BlockInputs, config: ContentConfig) -> list:
    """Blocks of `rows` sharing a combination, each with its `_Group` (None: score against every item).

    Items sharing a (category path, gender) combination share the category + gender part of their
    similarity to every item, so a row's similarity to an item is at least that part and at most
    the part plus the item's `extra` (what brand, price and text can add given what it has). With
    t the (K+1)-th largest part (the row itself may be one), at least K other items score t or
    more, so a combination whose part + largest extra is below t, or zero, can never hold a
    neighbour: pruning is exact. `_block_candidates` narrows further per block. The work here is
    over combinations, not the whole catalog.
    """
    codes = x.combo_code[rows]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    tasks: list = []
    dense_rows: list[np.ndarray] = []
    for group in np.split(rows[order], bounds):
        if not len(group):
            continue
        combo = x.combo_code[group[0]]
        table_row = x.combo_table[combo] if x.combo_table is not None else _combo_part(np.array([combo]), f, x, config)[0]
        by_part = np.argsort(-table_row, kind="stable")
        reach = np.cumsum(x.combo_sizes[by_part])
        floor = float(table_row[by_part[np.searchsorted(reach, K + 1)]]) if n > K + 1 else -np.inf
        seed = int(np.searchsorted(reach, min(_SEED_ITEMS * (K + 1), n))) + 1
        upper = table_row[by_part].astype(np.float64) + x.combo_extra[by_part]
        possible = (upper >= floor - _BOUND_SLACK) & (upper > 0)
        combos = by_part[possible]  # the possible ones among the first `seed` come first
        if x.combo_sizes[combos].sum() > n // 2:
            dense_rows.append(group)
            continue
        info = _Group(table_row, combos, int(possible[:seed].sum()), floor)
        group = group[np.argsort(x.price_q[group], kind="stable")]  # blocks of similar price prune best
        tasks.extend((group[i : i + _PRICE_BLOCK_ROWS], info) for i in range(0, len(group), _PRICE_BLOCK_ROWS))
    if dense_rows:
        dense = np.sort(np.concatenate(dense_rows))
        tasks.extend((dense[i : i + _BLOCK_ROWS], None) for i in range(0, len(dense), _BLOCK_ROWS))
    return tasks


def _block_candidates(
    rows: np.ndarray, g: _Group, K: int, f: _Features, x: _BlockInputs, config: ContentConfig, work: "_Scratch"
) -> np.ndarray:
    """The items (sorted) that can reach the top K of some row in `rows`, a block of one combination.

    Each row's exact K-th best similarity among the items of the seed combinations, L, bounds its
    K-th best overall from below. An item of combination c can reach it only if part(c) + text +
    brand + price >= L, where the price part min(q_i / q_j, q_j / q_i) ** (1 / scale) is at least
    a given value exactly on a window of prices around the row's: so each row needs, per
    combination, one price window of the (combination, price) index, the items sharing its brand
    (the (brand, combination) index), or the whole combination when the part alone can reach L.
    Pruning is exact: a superset of every row's top K is returned.
    """
    seed = np.sort(_segments(x, g.combos[: g.seed])[: work.cells // len(rows)])  # any subset bounds from below
    floor = np.full(len(rows), -np.inf)
    if len(seed) > K:
        scores = _candidate_scores(rows, seed, g.table_row[x.combo_code[seed]], f, x, config, work)
        kth = -np.partition(-scores, K - 1, axis=1)[:, K - 1].astype(np.float64)
        floor = np.where(kth > 0, kth, -np.inf)
    floor = np.maximum(floor, g.floor) - _BOUND_SLACK
    text = config.text if f.text is not None and config.text > 0 else 0.0
    part = g.table_row[g.combos].astype(np.float64)
    reach = (part + x.combo_extra[g.combos])[None, :] >= floor[:, None]
    need = floor[:, None] - part[None, :] - text
    whole = (reach & (need <= 0)).any(axis=0)  # some row may need any item of these combinations
    found = [_segments(x, g.combos[whole])]
    open_ = reach & ~whole[None, :]

    q = x.price_q[rows].astype(np.float64)
    if config.price > 0:
        # rows are price-adjacent, so per combination one window spanning every row's window
        # (a superset of their union) costs one binary search and no duplicates
        row, col = np.nonzero(open_ & (q[:, None] > 0) & (need <= config.price))
        ratio = np.log(need[row, col] / config.price)  # ln of the price part needed, <= 0
        low = np.maximum(ratio, -2 * _PRICE_CLIP - 1.0)  # known exponents lie within +-_PRICE_CLIP
        centre = np.log(q[row])
        first = np.full(len(g.combos), np.inf)
        last = np.full(len(g.combos), -np.inf)
        np.minimum.at(first, col, centre + low)
        np.maximum.at(last, col, centre - low)
        windowed = np.flatnonzero(np.isfinite(first))
        base = g.combos[windowed] * _KEY_SPAN + _KEY_OFFSET
        start = np.searchsorted(x.key, base + first[windowed] - _BOUND_SLACK, side="left")
        end = np.searchsorted(x.key, base + last[windowed] + _BOUND_SLACK, side="right")
        found.append(_ranges(x.by_key, start, np.maximum(start, end)))
    brand = x.brand[rows]
    if config.brand > 0:
        row, col = np.nonzero(open_ & (brand[:, None] >= 0) & (need <= config.brand + config.price))
        keys = np.unique(brand[row] * len(x.combo_sizes) + g.combos[col])
        start = np.searchsorted(x.brand_key, keys, side="left")
        end = np.searchsorted(x.brand_key, keys, side="right")
        found.append(_ranges(x.by_brand, start, end))
    candidates = np.sort(np.concatenate(found))
    return candidates[np.concatenate([[True], candidates[1:] != candidates[:-1]])] if len(candidates) else candidates


def _segments(x: _BlockInputs, combos: np.ndarray) -> np.ndarray:
    """All items of the given combinations."""
    ends = np.cumsum(x.combo_sizes)
    return _ranges(x.by_key, ends[combos] - x.combo_sizes[combos], ends[combos])


def _ranges(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """values[start[0]:end[0]], values[start[1]:end[1]], ... concatenated."""
    lengths = end - start
    return values[np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())]


class _Scratch:
    """Reused flat buffers for candidate blocks (fresh large arrays would fault in every page)."""

    def __init__(self, cells: int) -> None:
        self.cells = cells
        self.flat = {name: np.empty(cells, dtype=np.float32) for name in ("scores", "up", "down")}
        self.flat_mask = np.empty(cells, dtype=bool)
        self.mask = self.flat_mask

    def take(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        return self.flat[name][: shape[0] * shape[1]].reshape(shape)

    def view(self, shape: tuple[int, int]) -> "_Scratch":
        self.mask = self.flat_mask[: shape[0] * shape[1]].reshape(shape)
        return self


def _candidate_scores(
    rows: np.ndarray, columns: np.ndarray, part: np.ndarray, f: _Features, x: _BlockInputs, config: ContentConfig, work: _Scratch
) -> np.ndarray:
    """Similarities of `rows` (one combination) to the candidate `columns` (float32, rows x columns).

    `part` is the rows' category + gender part for each candidate, aligned with `columns`.
    """
    shape = (len(rows), len(columns))
    scores = work.take("scores", shape)
    scores[:] = part[None, :]
    if config.brand > 0:
        query = np.where(x.brand[rows] >= 0, x.brand[rows], -2)
        mask = work.view(shape).mask
        np.equal(query[:, None], x.brand[columns][None, :], out=mask)
        up = work.take("up", shape)
        np.multiply(mask, np.float32(config.brand), out=up)
        scores += up
    if config.price > 0:
        weight = np.float32(config.price)
        up, down = work.take("up", shape), work.take("down", shape)
        np.multiply.outer(weight * x.price_q[rows], x.price_r[columns], out=up)
        np.multiply.outer(weight * x.price_r[rows], x.price_q[columns], out=down)
        np.minimum(up, down, out=up)
        scores += up
    if f.text is not None and config.text > 0:
        scores += (f.text[columns] @ (config.text * f.text[rows].T).toarray()).T
    at = np.searchsorted(columns, rows)
    own = (at < len(columns)) & (columns[np.minimum(at, len(columns) - 1)] == rows)
    scores[np.flatnonzero(own), at[own]] = -np.inf
    return scores


class _Workspace:
    """Preallocated block buffers: fresh large arrays per block would cost a page fault per page."""

    def __init__(self, rows: int, n: int) -> None:
        self.scores = np.empty((rows, n), dtype=np.float32)
        self.scratch = np.empty((rows, n), dtype=np.float32)
        self.scratch2 = np.empty((rows, n), dtype=np.float32)
        self.mask = np.empty((rows, n), dtype=bool)


def _block_scores(rows: np.ndarray, f: _Features, x: _BlockInputs, config: ContentConfig, work: _Workspace) -> np.ndarray:
    """Dense similarities of items `rows` to every item (float32, B x n, a view of a work buffer)."""
    b = len(rows)
    scores, mask = work.scores[:b], work.mask[:b]
    if x.combo_table is not None:
        table = x.combo_table[x.combo_code[rows]]
    else:
        table = _combo_part(x.combo_code[rows], f, x, config)
    np.take(table, x.combo_code, axis=1, out=scores, mode="clip")  # clip: no buffering, codes are valid
    if config.brand > 0:
        query = np.where(x.brand[rows] >= 0, x.brand[rows], -2)
        np.equal(query[:, None], x.brand[None, :], out=mask)
        np.multiply(mask, np.float32(config.brand), out=work.scratch[:b])  # faster than add(where=)
        scores += work.scratch[:b]
    if config.price > 0:
        weight = np.float32(config.price)
        up, down = work.scratch[:b], work.scratch2[:b]
        np.multiply.outer(weight * x.price_q[rows], x.price_r, out=up)
        np.multiply.outer(weight * x.price_r[rows], x.price_q, out=down)
        np.minimum(up, down, out=up)
        scores += up
    if f.text is not None and config.text > 0:
        # sparse @ dense beats sparse @ sparse here: common terms make the product nearly dense
        scores += (f.text @ (config.text * f.text[rows].T).toarray()).T
    scores[np.arange(b), rows] = -np.inf
    return scores


def _combo_part(combos: np.ndarray, f: _Features, x: _BlockInputs, config: ContentConfig) -> np.ndarray:
    """Category + gender similarity of the given (path, gender) combinations to every combination."""
    table = np.zeros((len(combos), len(x.combo_gender)), dtype=np.float32)
    if config.category > 0:
        query = x.combo_tokens_t[:, combos].T.tocsr()
        table += config.category * (query @ x.combo_tokens_t).toarray()
    if config.gender > 0:
        table += config.gender * x.gender_table[x.combo_gender[combos]][:, x.combo_gender]
    return table


def _top_positive(scores: np.ndarray, K: int, work: _Workspace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise top-K of the positive entries (score descending, then column), as ragged arrays.

    On wide rows a threshold from a strided sample of each row keeps roughly 3K candidates, so only
    those are sorted; rows the threshold leaves short are redone with their exact K-th value. On
    narrow rows the exact K-th value is the threshold.
    """
    n_rows, n = scores.shape
    tiny = np.float32(np.finfo(np.float32).tiny)
    stride = max(1, n // 1024)
    if n > 8 * K and stride > 1:
        sample = scores[:, ::stride]
        m = sample.shape[1]
        r = min(m, max(1, math.ceil(3 * K * m / n)))
        threshold = np.partition(sample, m - r, axis=1)[:, m - r]
    elif n > K:  # narrow blocks: the exact K-th value is cheap and leaves only ties to sort
        threshold = -np.partition(-scores, K - 1, axis=1)[:, K - 1]
    else:
        threshold = np.full(n_rows, -np.inf, dtype=np.float32)
    threshold = np.maximum(threshold, tiny)
    mask = work.mask[:n_rows]
    np.greater_equal(scores, threshold[:, None], out=mask)
    row, col = np.divmod(np.flatnonzero(mask), n)
    counts = np.bincount(row, minlength=n_rows)
    short = np.flatnonzero((counts < K) & (threshold > tiny))
    if len(short):  # the sample overestimated these rows' K-th value: redo them with the exact one
        exact = np.maximum(-np.partition(-scores[short], K - 1, axis=1)[:, K - 1], tiny)
        again_row, again_col = np.divmod(np.flatnonzero(scores[short] >= exact[:, None]), n)
        keep = ~np.isin(row, short)
        row = np.concatenate([row[keep], short[again_row]])
        col = np.concatenate([col[keep], again_col])
        counts = np.bincount(row, minlength=n_rows)
    # one stable sort orders entries by (row, score descending); within a row the entries arrive in
    # column order, so ties stay in column order. row * span - value is exact in float64.
    value = scores.reshape(-1)[row * n + col].astype(np.float64)
    span = float(value.max()) + 1.0 if len(value) else 1.0
    order = np.argsort(row * span - value, kind="stable")
    starts = np.cumsum(counts) - counts
    picked = order[(np.arange(len(order)) - starts[row[order]]) < K]
    kept = np.minimum(counts, K)
    return kept, col[picked], value[picked].astype(np.float32)
