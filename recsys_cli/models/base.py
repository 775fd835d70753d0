"""The model interface every recommender implements (after implicit and RecTools).

Internal integer indices only, batched: arrays in, arrays out. `recommend` returns two arrays of
shape (len(users), k): item indices (int64, -1 where a model has fewer than k items for a
customer) and scores (float32, -inf at those positions), best first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from scipy import sparse

from ..dataset import Dataset, UserHistory, csr_row


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
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for internal `users`.

        `history` (rows aligned with `users`) replaces the fit-time interactions when given, so live
        events count; models that embed customers use it where they can. `exclude` (rows aligned
        with `users`, n_items columns) marks items that must not be returned to that customer;
        `allowed` (a boolean per item, for all rows) the only items that may be returned at all;
        a read-only one that owns its data is taken never to change (see `MaskCache`).
        """
        ...

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k other items for each of `items`, same shapes and padding as recommend."""
        ...


@runtime_checkable
class Explains(Protocol):
    """A model that can say which history item led to each recommendation."""

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """Per recommended item, the history item (internal index) that explains it, or -1."""
        ...


@runtime_checkable
class Covers(Protocol):
    """A model that can score only some customers (those it embedded at fit time)."""

    def covers_users(self, users: np.ndarray) -> np.ndarray:
        """True for each internal customer the model can score."""
        ...


@runtime_checkable
class ExplainsWhileRanking(Protocol):
    """A model whose ranking itself picks the history item behind each recommendation (content
    neighbours taken round-robin over the history), so it returns the anchors with the list."""

    def recommend_explained(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, anchors), each (len(users), k); anchors are history items or -1."""
        ...


@runtime_checkable
class SimilarProducts(Protocol):
    """The "similar products" slot: neighbours of products and the similarity of a pair."""

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def similarity(self, a: int, b: int) -> dict[str, float]:
        """{"total": similarity, <part>: contribution, ...} of products `a` and `b`."""
        ...

    def neighbour_count(self) -> int:
        """How many neighbours per product the model keeps (a useful depth for lookups)."""
        ...


@runtime_checkable
class Ranking(Protocol):
    """A model that ranks the same products for everyone (popularity): the cold-start list."""

    def ranked(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` products of the ranking and their scores."""
        ...

    def reason(self, item: int) -> str | None:
        """Why `item` is in the ranking, in words; None when the caller's default says it."""
        ...


@runtime_checkable
class KeepsCustomers(Protocol):
    """A model that can store, for the published version, what it would otherwise derive from each
    fit-time customer's history at every request (ALS: their factors)."""

    def keep_customers(self) -> Any: ...


@runtime_checkable
class Resumes(Protocol):
    """A model whose fit can start from an earlier fit with the same settings on part of the same
    shop's events (train's selection fits each candidate on the validation split first) and reach
    the same quality in fewer iterations: `state(dataset)` is what that fit learned, keyed by
    external product id; `fit(dataset, resume=state)` starts from it."""

    def state(self, dataset: Any) -> Any: ...

    def fit(self, dataset: Any, *, resume: Any = None) -> Any: ...


@runtime_checkable
class RecommendsOne(Protocol):
    """A model with a short path for one customer (what a request asks): plain arrays instead of the
    batch structures, and under a narrow filter only the allowed columns scored. It returns exactly
    the one row `recommend` returns for that customer alone with the same history, exclusions and mask."""

    def recommend_one(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores), each of length k, padded with -1 / -inf; `history` is the customer's one-row
        history, `excluded` the distinct products never to return."""
        ...


@runtime_checkable
class ExplainsOne(Protocol):
    """A `RecommendsOne` model that names the history item behind each product of its one-customer
    list with the list: from the rows it read to rank them where those hold what `explain` reads
    (EASE with binary weights and no decay), else by `explain` itself."""

    def recommend_one_explained(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, scores, anchors): exactly `recommend_one`'s list and `explain(history, ids)`'s row."""
        ...


def recommend_one(
    model: Recommender, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One customer's (ids, scores) from any model: its short path when it has one, else its batch
    path with one row."""
    if declares(model, RecommendsOne):
        return model.recommend_one(user, history, k=k, allowed=allowed, excluded=excluded)
    exclude = csr_row(history.weights.shape[1], np.ones(len(excluded), dtype=np.int8), np.asarray(excluded)) if len(excluded) else None
    ids, scores = model.recommend(np.array([user], dtype=np.int64), k=k, exclude=exclude, history=history, allowed=allowed)
    return ids[0], scores[0]


def recommend_one_explained(
    model: Recommender, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One customer's (ids, scores, anchors) from any model: in one step when it `ExplainsOne`, else
    `recommend_one` then `explain` (anchors -1 for a model that does not explain)."""
    if declares(model, ExplainsOne):
        return model.recommend_one_explained(user, history, k=k, allowed=allowed, excluded=excluded)
    ids, scores = recommend_one(model, user, history, k=k, allowed=allowed, excluded=excluded)
    anchors = model.explain(history, ids[None, :])[0] if declares(model, Explains) else np.full(len(ids), -1, dtype=np.int64)
    return ids, scores, anchors


_DECLARED: dict[tuple[type, type], bool] = {}


def declares(model: object, capability: type) -> bool:
    """isinstance(model, capability) for a method-only Protocol, decided once per class: the
    structural check reads every attribute and costs microseconds on a request path."""
    key = (type(model), capability)
    found = _DECLARED.get(key)
    if found is None:
        found = _DECLARED[key] = isinstance(model, capability)
    return found


@dataclass(frozen=True)
class Scorer:
    """Dense scores for a batch of customers, computed a block of rows at a time.

    `score(rows)` returns a writable float32 array (len(rows), n_cols) for those positions in the
    batch; its columns are `space.items` (all products when `space` is None). Rows where `active`
    is False have nothing to score. -inf marks a product the model will not propose.
    `score_at(rows, columns)`, when given, returns exactly `score(rows)[:, columns]` without
    scoring the other columns: a narrow filter's request then costs what the filter allows.
    """

    active: np.ndarray
    score: Callable[[np.ndarray], np.ndarray]
    n_cols: int
    space: "ItemSpace | None" = None
    score_at: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def top(self, k: int, *, exclude: sparse.csr_matrix | None = None, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The top-k products of every row (see `rank_rows`)."""
        return rank_rows(self.active, k, self.score, self.n_cols, exclude, space=self.space, allowed=allowed, score_at=self.score_at)


def block(matrix: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """matrix[np.ix_(rows, cols)] (a new array), by one flat take when `matrix` is C-contiguous:
    about half the cost of the 2-D fancy index for the few history rows of a request."""
    if not matrix.flags.c_contiguous:
        return matrix[np.ix_(rows, cols)]
    flat = (np.asarray(rows, dtype=np.int64)[:, None] * matrix.shape[1] + np.asarray(cols, dtype=np.int64)).ravel()
    return matrix.reshape(-1).take(flat).reshape(len(rows), len(cols))


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
    rows = np.arange(n_rows)[:, None]  # plain fancy indexing: take_along_axis costs more per call
    part_scores = scores[rows, part]
    order = np.argsort(-part_scores, axis=1, kind="stable")
    ids = part[rows, order].astype(np.int64)
    best = part_scores[rows, order].astype(np.float32)
    invalid = ~np.isfinite(best)
    ids[invalid] = -1
    best[invalid] = -np.inf
    if k_eff < k:
        ids = np.pad(ids, ((0, 0), (0, k - k_eff)), constant_values=-1)
        best = np.pad(best, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return ids, best


class DerivedCache:
    """Values a model derives from its fitted arrays (positions, restricted copies), computed once per
    loaded model in keys named `_cached_*`, which its pickle leaves out: artifacts stay as fitted."""

    def _cached(self, name: str, compute: Callable[[], Any]) -> Any:
        key = f"_cached_{name}"
        value = self.__dict__.get(key)
        if value is None:
            value = self.__dict__[key] = compute()
        return value

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_cached")}


class ItemSpace:
    """The products a model scores, as columns: `items[c]` is column c's product and
    `position[i]` product i's column (-1 when the model does not score it). `masks` keeps what
    the model derives from a filter's mask (see `MaskCache`)."""

    def __init__(self, items: np.ndarray, n_items: int) -> None:
        # the same object when it is an int64 array (np.asarray with a dtype gave a new view of
        # joblib-loaded arrays): EASE compares its cached space by identity at every request
        items = np.asarray(items)
        self.items = items if items.dtype == np.int64 else items.astype(np.int64)
        self.position = np.full(n_items, -1, dtype=np.int64)
        self.position[self.items] = np.arange(len(self.items))
        self.masks = MaskCache()


MASKS_KEPT = 64
"""Filter masks the service keeps per version (one per distinct brand, category or gender request;
283 KB each at 283k products), and what each model space keeps derived from them (MaskCache)."""


def kept_mask(mask: np.ndarray) -> bool:
    """Whether `mask` is a kept one: read-only and owning its data, so it never changes (the service's
    filter masks; a read-only view of a writable array could change under it)."""
    return not mask.flags.writeable and mask.flags.owndata


class MaskCache:
    """Values derived from an `allowed` mask, kept by the mask's identity when it is a kept mask.

    The service keeps each filter's mask read-only and passes the same array to every request
    with that filter (a brand page's visitors), so a model derives its allowed columns once per
    filter (index arrays: at most half a model's columns, or the blocked ones). Any other mask
    may change, so its values are computed every time. Holds the masks it keys on (an id cannot
    be reused while kept); emptied when it holds MASKS_KEPT.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[np.ndarray, Any]] = {}

    def get(self, mask: np.ndarray, compute: Callable[[], Any]) -> Any:
        if not kept_mask(mask):
            return compute()
        entry = self._entries.get(id(mask))
        if entry is not None and entry[0] is mask:
            return entry[1]
        value = compute()
        if len(self._entries) >= MASKS_KEPT:
            self._entries.clear()
        self._entries[id(mask)] = (mask, value)
        return value


def take_rows(matrix: sparse.csr_matrix, rows: np.ndarray) -> sparse.csr_matrix:
    """matrix[rows], without scipy's fancy-indexing copy when `rows` is every row in order
    (one customer's request, or a batch that fits one block)."""
    if len(rows) == matrix.shape[0] and (len(rows) == 0 or (rows[0] == 0 and rows[-1] == len(rows) - 1)):
        return matrix
    return matrix[rows]


def ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, stop) for each pair, without a Python loop."""
    if len(starts) == 1:
        return np.arange(starts[0], stops[0])
    lengths = stops - starts
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(total)


def lookup(matrix: sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (rows[i], cols[i, j]): whether `matrix` stores that entry, and its index in
    `matrix.data` (meaningful where found). `matrix` needs sorted indices; negative cols are never
    found. The one home of the sorted row * width + column key search."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64).reshape(len(rows), -1)
    if len(rows) == 1:  # one customer's request: a search in the row's own columns
        start, stop = int(matrix.indptr[rows[0]]), int(matrix.indptr[rows[0] + 1])
        if start == stop:
            return np.zeros(cols.shape, dtype=bool), np.zeros(cols.shape, dtype=np.int64)
        row = matrix.indices[start:stop]  # stored columns are never negative: a -1 is never found
        where = np.minimum(np.searchsorted(row, cols), stop - start - 1)
        return row[where] == cols, where + start
    starts, stops = matrix.indptr[rows].astype(np.int64), matrix.indptr[rows + 1].astype(np.int64)
    take = ranges(starts, stops)
    if not len(take):
        return np.zeros(cols.shape, dtype=bool), np.zeros(cols.shape, dtype=np.int64)
    width = np.int64(max(matrix.shape[1], int(cols.max(initial=0)) + 1))
    keys = np.repeat(np.arange(len(rows), dtype=np.int64), stops - starts) * width + matrix.indices[take]
    wanted = np.arange(len(rows), dtype=np.int64)[:, None] * width + np.maximum(cols, 0)
    where = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return (keys[where] == wanted) & (cols >= 0), take[where]


def pairs_in(matrix: sparse.csr_matrix, ids: np.ndarray) -> np.ndarray:
    """True where ids[r, j] is a stored column of row r of `matrix` (rows aligned with `ids`)."""
    matrix = matrix if matrix.has_sorted_indices else matrix.sorted_indices()
    return lookup(matrix, np.arange(matrix.shape[0]), ids)[0]


def mask_excluded(scores: np.ndarray, exclude: sparse.csr_matrix | None, rows: np.ndarray, space: ItemSpace | None = None) -> np.ndarray:
    """Set scores[j, c] to -inf where row rows[j] of `exclude` marks column c's product; in place.

    Reads the CSR arrays directly: no sparse slicing, whatever the number of rows.
    """
    if exclude is None or not exclude.nnz:
        return scores
    at, cols = excluded_pairs(exclude, rows, space, scores.shape[1])
    scores[at, cols] = -np.inf
    return scores


def excluded_pairs(exclude: sparse.csr_matrix, rows: np.ndarray, space: ItemSpace | None, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(j, column) for every product row rows[j] of `exclude` marks that has a column (in `space`
    when given, else the product itself below `n_cols`)."""
    if len(rows) == 1:  # one customer's request: its own row
        cols = exclude.indices[exclude.indptr[rows[0]] : exclude.indptr[rows[0] + 1]].astype(np.int64)
        at = np.zeros(len(cols), dtype=np.int64)
    else:
        starts, stops = exclude.indptr[rows], exclude.indptr[rows + 1]
        at = np.repeat(np.arange(len(rows)), stops - starts)
        cols = exclude.indices[ranges(starts, stops)].astype(np.int64)
    if space is not None:
        inside = cols < len(space.position)
        at, cols = at[inside], space.position[cols[inside]]
        return at[cols >= 0], cols[cols >= 0]
    return at[cols < n_cols], cols[cols < n_cols]


def explain_by_affinity(history_items: list[np.ndarray], ids: np.ndarray, affinity) -> np.ndarray:
    """For each recommended item, the history item with the highest `affinity(history, items)`.

    `history_items[r]` are row r's history items; `affinity` returns a (len(history), len(items))
    array. Items with no positive affinity to any history item get -1, as do -1 ids. Used for reasons.
    """
    anchors = np.full(ids.shape, -1, dtype=np.int64)
    for row, history in enumerate(history_items):
        if not len(history) or not ids.shape[1]:
            continue
        if ids[row].min() >= 0:  # a full list (a request's usual case): no positions to pick
            anchors[row] = best_anchor(history, np.asarray(affinity(history, ids[row])))
            continue
        valid = np.flatnonzero(ids[row] >= 0)
        if len(valid):
            anchors[row, valid] = best_anchor(history, np.asarray(affinity(history, ids[row, valid])))
    return anchors


def explain_by_vectors(rows: sparse.csr_matrix, ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """`explain_by_affinity` with the dot product of `vectors` rows as the affinity (ALS: item
    factors), every row of `rows` (the history) at once: the rows of one history length L in
    blocks, (B, L, f) @ (B, f, k), the same rule as `best_anchor` (first best history item)."""
    anchors = np.full(ids.shape, -1, dtype=np.int64)
    if not ids.shape[1]:
        return anchors
    # a block holds B x (L + k) vectors and B x L x k affinities: CHUNK_CELLS of the vectors' floats at most
    for block, at in blocks_by_length(rows.indptr, CHUNK_CELLS // vectors.shape[1], per_row=ids.shape[1]):
        history, wanted = rows.indices[at], ids[block]
        affinity = vectors[history] @ vectors[np.maximum(wanted, 0)].transpose(0, 2, 1)
        best = np.take_along_axis(history, affinity.argmax(axis=1), axis=1)
        anchors[block] = np.where((affinity.max(axis=1) > 0) & (wanted >= 0), best, -1)
    return anchors


def blocks_by_length(indptr: np.ndarray, cells: int, *, per_row: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """The non-empty rows of a CSR matrix (its `indptr`) grouped by their number of entries L, in
    blocks of at most `cells` entries, counting `per_row` more for each row (at least one row each):
    (row numbers, their entries' positions as a rows x L array) per block. What a batch of small
    per-row problems is computed as, one array operation per block."""
    lengths = np.diff(indptr)
    order = np.argsort(lengths, kind="stable")
    blocks = []
    for group in np.split(order, np.flatnonzero(np.diff(lengths[order])) + 1):
        length = int(lengths[group[0]]) if len(group) else 0
        if length:
            step = max(1, cells // (length + per_row))
            blocks += [
                (rows, indptr[rows][:, None] + np.arange(length)) for rows in (group[i : i + step] for i in range(0, len(group), step))
            ]
    return blocks


def map_threads(function: Callable[[Any], Any], items: Sequence[Any], threads: int) -> list[Any]:
    """[function(item) for item in items] in order, on up to `threads` threads: what the models run
    this way spend their time in numpy, scipy or implicit, which release the GIL."""
    threads = max(1, min(threads, len(items)))
    if threads == 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(function, items))


def best_anchor(history: np.ndarray, affinity: np.ndarray) -> np.ndarray:
    """Per column of `affinity` (history items x recommended items), the history item of highest
    positive affinity, else -1; the first such item on ties. The one home of the reasons' rule."""
    return np.where(affinity.max(axis=0) > 0, history[affinity.argmax(axis=0)], -1).astype(np.int64, copy=False)


CHUNK_CELLS = 4_000_000
"""Score cells per batch chunk (16 MB of float32): bounds memory when scoring many customers."""

_SAMPLE_STRIDE = 16


def select_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exactly `top_k(scores, k)` (same shapes and padding), several times faster on wide rows.

    The k-th best of every 16th column is a lower bound of the k-th best of the row, so only the
    few columns at or above it can be in the top k; `top_k` then ranks just those candidates.
    Rows without k finite sampled scores go straight to `top_k`.
    """
    scores = np.atleast_2d(scores)
    n_rows, n_cols = scores.shape
    n_sample = -(-n_cols // _SAMPLE_STRIDE)
    if k < 1 or n_sample < 4 * k:
        return top_k(scores, k)
    sample = np.partition(scores[:, ::_SAMPLE_STRIDE], n_sample - k, axis=1)
    threshold = sample[:, n_sample - k]
    sparse_rows = ~np.isfinite(threshold)
    if sparse_rows.any():
        ids = np.full((n_rows, k), -1, dtype=np.int64)
        best = np.full((n_rows, k), -np.inf, dtype=np.float32)
        ids[sparse_rows], best[sparse_rows] = top_k(scores[sparse_rows], k)
        dense_rows = np.flatnonzero(~sparse_rows)
        if len(dense_rows):
            ids[dense_rows], best[dense_rows] = select_top_k(scores[dense_rows], k)
        return ids, best
    flat = np.flatnonzero(scores >= threshold[:, None])
    rows, cols = np.divmod(flat, n_cols)
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(len(rows)) - starts[rows]
    candidates = np.full((n_rows, int(counts.max())), -np.inf, dtype=np.float32)
    columns = np.zeros(candidates.shape, dtype=np.int64)
    candidates[rows, position] = scores[rows, cols]
    columns[rows, position] = cols
    picked, best = top_k(candidates, k)
    ids = np.take_along_axis(columns, np.maximum(picked, 0), axis=1)
    ids[picked < 0] = -1
    return ids, best


def top_k_one(scores: np.ndarray, k: int, *, sample: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`select_top_k(scores[None, :], k)`'s one row for a 1-D `scores` (`top_k`'s with `sample`
    False), by the same steps without the batch bookkeeping (a request's top-k), so ids, scores
    and tie order are the same."""
    n_cols = len(scores)
    n_sample = -(-n_cols // _SAMPLE_STRIDE)
    candidates = None
    if sample and k >= 1 and n_sample >= 4 * k:
        threshold = np.partition(scores[::_SAMPLE_STRIDE], n_sample - k)[n_sample - k]
        if np.isfinite(threshold):
            candidates = np.flatnonzero(scores >= threshold)
            scores = scores[candidates].astype(np.float32, copy=False)  # as select_top_k's candidate array
            n_cols = len(scores)
    k_eff = min(k, n_cols)
    if k_eff == 0:
        return np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
    part = np.argpartition(-scores, k_eff - 1)[:k_eff] if k_eff < n_cols else np.arange(n_cols)
    part_scores = scores[part]
    order = np.argsort(-part_scores, kind="stable")
    picked, top = part[order], part_scores[order].astype(np.float32)
    if candidates is not None:
        picked = candidates[picked]
    valid = np.isfinite(top)
    if k_eff == k and valid.all():  # the usual case: k finite scores, nothing to pad
        return picked.astype(np.int64, copy=False), top
    ids, best = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
    ids[:k_eff] = np.where(valid, picked, -1)
    best[:k_eff] = np.where(valid, top, -np.inf)
    return ids, best


def take_padded(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values[positions] for one row of positions, -1 where a position is -1 (padding trails)."""
    if not len(positions) or positions[-1] >= 0:  # nothing padded
        return values[positions]
    return np.where(positions >= 0, values[np.maximum(positions, 0)], -1)


def members(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    """True where values[i] is one of `among` (any order; a request's few excluded products):
    a sorted search, without np.isin's set-up cost on small arrays."""
    ordered = np.sort(among)
    return ordered[np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)] == values


def rank_rows(
    active: np.ndarray,
    k: int,
    score: Callable[[np.ndarray], np.ndarray],
    n_cols: int,
    exclude: sparse.csr_matrix | None = None,
    *,
    space: ItemSpace | None = None,
    allowed: np.ndarray | None = None,
    score_at: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k per row, scored in chunks; rows where `active` is False get all -1 / -inf.

    `score(rows)` returns a writable float32 (len(rows), n_cols) array for those row positions.
    Its columns are `space.items` when a space is given (ids come back as products), else the
    products themselves. `exclude` (rows aligned with `active`, one column per product) marks
    pairs to skip; `allowed` (one flag per product, shared by all rows) the products that may be
    returned at all, e.g. a filter's: neither is ever expanded into a list of blocked pairs.
    A filter allowing under half the columns ranks only those, and for one customer with
    `score_at` (see `Scorer`) scores only those. The columns a kept mask allows (see
    `MaskCache`) are derived once per space (`ItemSpace.masks`).
    """
    n_rows = len(active)
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    best = np.full((n_rows, k), -np.inf, dtype=np.float32)
    rows = np.flatnonzero(active)
    blocked = kept = None
    if allowed is not None:
        if space is not None:
            kept, blocked = space.masks.get(allowed, lambda: allowed_columns(allowed[space.items], n_cols))
        else:
            kept, blocked = allowed_columns(allowed[:n_cols], n_cols)
        if kept is not None and len(rows) == 1 and exclude is not None and exclude.nnz:
            # one customer: their excluded products leave the kept columns, exactly as a mask with them folded in
            kept, exclude = drop_columns(kept, excluded_pairs(exclude, rows, space, n_cols)[1]), None
        if kept is not None and not len(kept):
            return ids, best
    if kept is not None and score_at is not None and len(rows) == 1:  # one customer: score the kept columns only
        picked, best[rows] = select_top_k(score_at(rows, kept), k)
        ids[rows] = np.where(picked >= 0, kept[np.maximum(picked, 0)], -1)
        return _products(ids, space), best
    chunk = max(1, CHUNK_CELLS // max(n_cols, 1))
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        scores = score(part)
        if blocked is not None and len(blocked):
            scores[:, blocked] = -np.inf
        mask_excluded(scores, exclude, part, space)
        if kept is None:
            ids[part], best[part] = select_top_k(scores, k)
        else:
            picked, best[part] = select_top_k(scores[:, kept], k)
            ids[part] = np.where(picked >= 0, kept[np.maximum(picked, 0)], -1)
    return _products(ids, space), best


def allowed_columns(columns: np.ndarray, n_cols: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(kept, None) for a narrow mask of columns (under half allowed: rank only those), else
    (None, blocked): the columns to set to -inf."""
    if 2 * int(np.count_nonzero(columns)) < n_cols:
        return np.flatnonzero(columns), None
    return None, np.flatnonzero(~columns)


def drop_columns(kept: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`kept` (increasing columns) without `columns`: one customer's exclusions taken out of a
    filter's kept columns, leaving exactly the columns the filter and exclusions folded give."""
    where = np.searchsorted(kept, columns)
    inside = where < len(kept)
    where = where[inside]
    keep = np.ones(len(kept), dtype=bool)  # np.delete's own result, without its argument handling
    keep[where[kept[where] == columns[inside]]] = False
    return kept[keep]


def _products(ids: np.ndarray, space: ItemSpace | None) -> np.ndarray:
    """Column ids as products (a model with no columns, nothing co-occurred, keeps its -1 padding)."""
    if space is not None and len(space.items):
        return np.where(ids >= 0, space.items[np.maximum(ids, 0)], -1)
    return ids
