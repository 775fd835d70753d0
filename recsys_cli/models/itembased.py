"""Item-to-item models: a customer's history times an item-item matrix, so live events count.

Both keep the fit-time interactions to score customers when no `history` is given. With
`binary=True` interactions count as 1 both when fitting and when scoring. An item never
recommends itself (zero diagonal), but items in the customer's history can be returned:
excluding them is the caller's job (`exclude`). Customers with an empty history get all -1.

Which one serves a shop is chosen at train time on a validation split (selection.py); EASE's
dense item-item matrix costs max_items**2 * 4 bytes, so past `max_items` active products it
models only the most active ones.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import sparse
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits

from ..dataset import Dataset, UserHistory, csr_row
from ..errors import InputError
from .base import (
    CHUNK_CELLS,
    DerivedCache,
    ItemSpace,
    Scorer,
    allowed_columns,
    best_anchor,
    block,
    drop_columns,
    excluded_pairs,
    explain_by_affinity,
    lookup,
    map_threads,
    members,
    rank_rows,
    take_padded,
    take_rows,
    top_k,
    top_k_one,
)

_BLOCK_ROWS = 512
_USER_CHUNK = 4096
_SPARSE_CHUNK = 1024  # customers per sparse history @ S product (each row holds up to history x neighbours entries)


class _ItemToItem(DerivedCache):
    """History lookup and row activity shared by EASE and ItemKNN."""

    name: str
    binary: bool
    _interactions: sparse.csr_matrix

    @property
    def n_items(self) -> int:
        return self._interactions.shape[1]

    decay: float = 1.0

    def _history_rows(self, users: np.ndarray, history: UserHistory | None) -> sparse.csr_matrix:
        """Rows aligned with `users`: `history.weights` when given, else the fit-time rows (empty when unknown).

        With `decay` < 1 a customer's items weigh decay ** r, r = 0 for the most recent moment, 1 for
        the one before, ... (recency by order, so no clock is needed; one basket is one moment):
        recent interest leads.
        """
        if history is not None:
            weights = history.weights
            data = np.ones(weights.nnz, dtype=np.float32) if self.binary else weights.data.astype(np.float32)
            if self.decay < 1:
                data *= position_decay(weights, sparse.csr_matrix(history.last_seen), self.decay)
            if data.all():  # shares the history's index arrays: nothing to drop, nothing written
                if weights.shape[0] == 1:  # one customer's request
                    start, stop = weights.indptr[0], weights.indptr[1]
                    return csr_row(
                        weights.shape[1], data[start:stop], weights.indices[start:stop], sorted_indices=weights.has_sorted_indices
                    )
                return sparse.csr_matrix((data, weights.indices, weights.indptr), shape=weights.shape)
            rows = sparse.csr_matrix((data, weights.indices.copy(), weights.indptr.copy()), shape=weights.shape)
            rows.eliminate_zeros()
            return rows
        else:
            inside = (users >= 0) & (users < self._interactions.shape[0])
            keep = sparse.diags(inside.astype(np.float32))
            rows = sparse.csr_matrix(keep @ self._interactions[np.where(inside, users, 0)])
            recency = sparse.csr_matrix(keep @ self._last_seen[np.where(inside, users, 0)]) if self.decay < 1 else None
        if self.binary:
            rows.data = np.ones_like(rows.data)
        if self.decay < 1 and recency is not None:
            rows.data = rows.data * position_decay(rows, sparse.csr_matrix(recency), self.decay)
        rows.eliminate_zeros()
        return rows

    def _space(self, items: np.ndarray) -> ItemSpace:
        """`items` as score columns (cached per model; not stored in the artifact)."""
        cached = self.__dict__.get("_cached_space")
        if cached is None or cached.items is not items and not np.array_equal(cached.items, items):
            cached = self.__dict__["_cached_space"] = ItemSpace(items, self.n_items)
        return cached

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The history item contributing most to each recommended item's score (-1 if none)."""
        rows = history.weights.tocsr()
        items = [self._explainers(rows.indices[rows.indptr[r] : rows.indptr[r + 1]]) for r in range(rows.shape[0])]
        return explain_by_affinity(items, ids, self._affinity)

    def _explainers(self, items: np.ndarray) -> np.ndarray:
        """The history products that can explain a recommendation (all of them here)."""
        return items


def position_decay(rows: sparse.csr_matrix, last_seen: sparse.csr_matrix, decay: float) -> np.ndarray:
    """decay ** (recency rank within the row) for every stored entry of `rows` (0 = newest).

    The rank counts the distinct moments after the entry's: products last seen at the same time
    (one basket, one day of reviews) share a rank and a weight, so no arbitrary order inside a
    basket decides which of them leads. `last_seen` must share `rows`' sparsity pattern (as a
    UserHistory's matrices do).
    """
    n_rows = rows.shape[0]
    row_of = np.repeat(np.arange(n_rows), np.diff(rows.indptr))
    stamps = np.asarray(last_seen.data, dtype=np.float64)
    if len(stamps) != len(row_of):
        return np.ones(len(row_of), dtype=np.float32)
    order = np.lexsort((-stamps, row_of))  # by row, newest first
    rows_sorted, stamps_sorted = row_of[order], stamps[order]
    new_moment = np.ones(len(order), dtype=bool)
    new_moment[1:] = (rows_sorted[1:] != rows_sorted[:-1]) | (stamps_sorted[1:] != stamps_sorted[:-1])
    moment = np.cumsum(new_moment) - 1  # numbered across rows; a row's newest moment is its first
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = moment - moment[rows.indptr[rows_sorted]]
    return np.power(decay, rank).astype(np.float32)


def _training_matrix(dataset: Dataset, binary: bool) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(dataset.interactions, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    if binary:
        matrix.data = np.ones_like(matrix.data)
    return matrix


class EASEModel(_ItemToItem):
    """EASE (Steck 2019): B = -P / diag(P) with P = (X^T X + l2 I)^-1 and diag(B) = 0.

    When more than `max_items` items have interactions, only the `max_items` most-interacted
    (by distinct customers) are modelled; the others are never recommended nor used as evidence.
    Fit is a float32 Cholesky inverse on 2 BLAS threads; B is dense (m x m float32).
    """

    name = "ease"

    def __init__(self, *, l2: float = 200.0, max_items: int = 5000, binary: bool = True, decay: float = 1.0) -> None:
        # max_items 5,000: a dense 5,000-item solve takes ~1 s on 2 cores; 15,000 took 36 s
        self.l2 = l2
        self.max_items = max_items
        self.binary = binary
        self.decay = decay

    def fit(self, dataset: Dataset) -> "EASEModel":
        """Solve B in closed form on the (restricted) item set."""
        self._interactions = _training_matrix(dataset, self.binary)
        self._last_seen = dataset.history().last_seen
        counts = np.bincount(self._interactions.indices, minlength=dataset.n_items)
        kept = np.flatnonzero(counts > 0)
        if len(kept) > self.max_items:
            kept = np.sort(kept[np.argsort(-counts[kept], kind="stable")[: self.max_items]])
        self.items = kept
        self._position = np.full(dataset.n_items, -1, dtype=np.int64)
        self._position[kept] = np.arange(len(kept))
        x = self._interactions[:, kept]
        gram = np.asarray((x.T @ x).toarray(), dtype=np.float32, order="F")
        gram[np.diag_indices_from(gram)] += self.l2
        self.B = _ease_weights(gram) if len(kept) else np.zeros((0, 0), dtype=np.float32)
        return self

    def _explainers(self, items: np.ndarray) -> np.ndarray:
        """Only the products EASE models: the others have no affinity to anything, so they never
        explain (the first best-affinity product stays the same), and the affinity block needs
        no masking of its rows."""
        return items[self._position[items] >= 0]

    def _affinity(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """B[history, items] as a new array: `history` holds modelled products only (`_explainers`);
        recommended products EASE does not model (a blend's other candidates) have no affinity."""
        rows, cols = self._position[history], self._position[items]
        unmodelled = bool(len(cols)) and cols.min() < 0
        out = block(self.B, rows, np.maximum(cols, 0) if unmodelled else cols)
        if unmodelled:
            out[:, cols < 0] = 0.0
        return out

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items scored history @ B (see the module docstring for history and exclusion)."""
        return self.scorer(users, history=history).top(k, exclude=exclude, allowed=allowed)

    def recommend_one(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One customer's top-k (see `RecommendsOne`): the rows of B their history touches, at the
        columns the mask allows less the excluded ones (all columns when the mask is wide), summed
        in the batch path's order, so the scores are bit-identical to `recommend`'s."""
        ids, scores, _ = self._one(history, k, allowed, excluded, explained=False)
        return ids, scores

    def recommend_one_explained(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`recommend_one` and `explain`'s row for it (see `ExplainsOne`)."""
        return self._one(history, k, allowed, excluded, explained=True)

    def _one(
        self, history: UserHistory, k: int, allowed: np.ndarray | None, excluded: np.ndarray, *, explained: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        rows, weights = self._one_row(history)
        if not len(rows):
            return np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32), np.full(k, -1, dtype=np.int64)
        space = self._space(self.items)
        kept = blocked = None
        if allowed is not None:
            kept, blocked = space.masks.get(allowed, lambda: allowed_columns(allowed[space.items], len(self.items)))
        out = space.position[excluded[excluded < len(space.position)]] if len(excluded) else excluded
        out = out[out >= 0]
        if kept is not None:
            kept = drop_columns(kept, out) if len(out) else kept
            taken = block(self.B, rows, kept)
            at, best = top_k_one(_weighted_rows(weights, taken), k)
            columns = take_padded(kept, at) if len(kept) else at
        else:
            taken = self.B.take(rows, axis=0)
            scores = _weighted_rows(weights, taken)
            if blocked is not None and len(blocked):
                scores[blocked] = -np.inf
            scores[out] = -np.inf
            columns, best = top_k_one(scores, k)
            at = columns
        ids = take_padded(self.items, columns)
        if not explained:
            return ids, best, None
        if not self.binary or self.decay < 1:
            # the rows ranked were scaled, B's own values are gone: as `explain` says (for a session's
            # whole pool, then: more columns than its final list, the same anchor for each)
            return ids, best, self.explain(history, ids[None, :])[0]
        # every history product weighs 1 and each modelled one is a row here, in the history's order, so
        # `taken` holds B[explainers, columns] as `explain` reads it
        valid = at >= 0
        anchors = np.full(k, -1, dtype=np.int64)
        if valid.any():
            anchors[valid] = best_anchor(self.items[rows], taken.take(at[valid], axis=1))
        return ids, best, anchors

    def _one_row(self, history: UserHistory) -> tuple[np.ndarray, np.ndarray]:
        """(B rows, weights) of a one-row history's modelled products with a nonzero weight, as
        `_history_rows` and `_columns` give them for the batch path."""
        if self.decay < 1:
            row = _columns(self._history_rows(np.array([0]), history), self._position, len(self.items))
            return row.indices, row.data
        weights = history.weights
        items = weights.indices[weights.indptr[0] : weights.indptr[1]]
        data = (
            np.ones(len(items), dtype=np.float32) if self.binary else weights.data[weights.indptr[0] : weights.indptr[1]].astype(np.float32)
        )
        rows = self._position[items]
        keep = (rows >= 0) & (data != 0)
        return (rows, data) if keep.all() else (rows[keep], data[keep])

    def scorer(self, users: np.ndarray, *, history: UserHistory | None = None) -> Scorer:
        """history @ B over the modelled products."""
        users = np.asarray(users, dtype=np.int64)
        rows = _columns(self._history_rows(users, history), self._position, len(self.items))

        def score(part: np.ndarray) -> np.ndarray:
            return np.asarray(take_rows(rows, part) @ self.B, dtype=np.float32)

        def score_at(part: np.ndarray, columns: np.ndarray) -> np.ndarray:
            # the same sums in the same order over only the rows of B the customers touch
            sub = take_rows(rows, part)
            if sub.shape[0] == 1 and sub.has_sorted_indices:  # one customer's request: its own products, in order
                used = sub.indices
                compact = csr_row(len(used), sub.data, np.arange(len(used), dtype=used.dtype), sorted_indices=True)
            else:
                used = np.unique(sub.indices)
                at = np.searchsorted(used, sub.indices)
                compact = sparse.csr_matrix((sub.data, at, sub.indptr), shape=(sub.shape[0], len(used)))
            return np.asarray(compact @ block(self.B, used, columns), dtype=np.float32)

        return Scorer(np.diff(rows.indptr) > 0, score, len(self.items), self._space(self.items), score_at)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k other items by the item's row of B: what a customer whose history is that one item gets."""
        items = np.asarray(items, dtype=np.int64)
        inside = (items >= 0) & (items < self.n_items)
        position = np.where(inside, self._position[np.where(inside, items, 0)], -1)

        def score(part: np.ndarray) -> np.ndarray:
            scores = self.B[position[part]]
            scores[np.arange(len(part)), position[part]] = -np.inf
            return scores

        ids, best = rank_rows(position >= 0, k, score, len(self.items))
        return np.where(ids >= 0, self.items[np.maximum(ids, 0)], -1), best


def _ease_weights(gram: np.ndarray) -> np.ndarray:
    """B from the regularized Gram matrix (overwritten): Cholesky inverse, symmetrized in blocks."""
    with threadpool_limits(2, "blas"):
        factor, info = lapack.spotrf(gram, lower=False, overwrite_a=True)
        if info == 0:
            inverse, info = lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise InputError(f"EASE: the Gram matrix is not positive definite (LAPACK info {info}): raise l2")
    n = inverse.shape[0]
    for start in range(0, n, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n)
        inverse[start:stop, :start] = inverse[:start, start:stop].T
        square = inverse[start:stop, start:stop]
        square[...] = np.triu(square) + np.triu(square, 1).T
    diagonal = inverse.diagonal().copy()
    inverse /= -diagonal[None, :]
    inverse[np.diag_indices(n)] = 0.0
    return np.ascontiguousarray(inverse, dtype=np.float32)


class ItemKNNModel(_ItemToItem):
    """Item-item cosine neighbours: S[i, j] = x_i . x_j / (|x_i| |x_j| + shrink), top `neighbours` per row.

    Computed in blocks of rows so memory stays bounded; S is sparse CSR with a zero diagonal.
    Scores are history @ S, and only items connected to the history are returned (others are -1).
    """

    name = "itemknn"

    def __init__(self, *, neighbours: int = 100, shrink: float = 0.0, binary: bool = True, decay: float = 1.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink
        self.binary = binary
        self.decay = decay

    def fit(self, dataset: Dataset) -> "ItemKNNModel":
        """Build S block by block from the (binarized) user-item matrix."""
        self._interactions = _training_matrix(dataset, self.binary)
        self._last_seen = dataset.history().last_seen
        x, xt, norms = self._factors(self._interactions)
        n_items = x.shape[1]

        def block(start: int) -> sparse.csr_matrix:
            return self._neighbour_block(xt[start : min(start + _BLOCK_ROWS * 4, n_items)] @ x, start, norms)

        # blocks are independent: two at a time (1x seed: 1.34 s -> 0.75 s), each block's rows the
        # same whichever thread computes them
        blocks = map_threads(block, range(0, n_items, _BLOCK_ROWS * 4), min(2, os.cpu_count() or 1))
        self.S = sparse.vstack(blocks, format="csr") if blocks else sparse.csr_matrix((0, 0), dtype=np.float32)
        self.S.sort_indices()
        return self

    def _affinity(self, history: np.ndarray, items: np.ndarray) -> np.ndarray:
        """S[history][:, items] as a dense array, read from the CSR arrays (rows have sorted indices)."""
        found, position = lookup(self.S, history, np.broadcast_to(items, (len(history), len(items))))
        return np.where(found, self.S.data[position], 0.0).astype(np.float32)

    def _factors(self, x: sparse.csr_matrix) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
        """(left, right^T, item norms): similarity blocks are left^T[block] @ right."""
        xt = x.T.tocsr()
        norms = np.sqrt(np.asarray(xt.multiply(xt).sum(axis=1)).ravel()).astype(np.float32)
        return x, xt, norms

    def _similarity(self, dots: np.ndarray, rows: np.ndarray, cols: np.ndarray, norms: np.ndarray) -> np.ndarray:
        """Cosine with shrinkage from raw co-occurrence `dots` of item pairs (rows, cols)."""
        return dots / (norms[rows] * norms[cols] + self.shrink)

    def _neighbour_block(self, dots: sparse.csr_matrix, start: int, norms: np.ndarray) -> sparse.csr_matrix:
        dots = dots.tocoo()
        rows, cols = dots.row, dots.col
        sims = self._similarity(dots.data, rows + start, cols, norms).astype(np.float32)
        keep = (rows + start != cols) & (sims > 0)
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        order = np.lexsort((-sims, rows))
        rows, cols, sims = rows[order], cols[order], sims[order]
        counts = np.bincount(rows, minlength=dots.shape[0])
        rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        keep = rank < self.neighbours
        return sparse.csr_matrix((sims[keep], (rows[keep], cols[keep])), shape=dots.shape, dtype=np.float32)

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k products by history @ S among those connected to the history (score > 0; fewer
        are -1 / -inf), ties by product (see the module docstring for history and exclusion).

        Sparse throughout: a customer's candidates are their products' neighbours, so the cost
        follows the history, not the catalog (ranking every product cost 2.7-4x as much at 28k
        products); one customer takes the same path as many, so batch results equal single ones.
        """
        rows = self._history_rows(np.asarray(users, dtype=np.int64), history)
        n_rows = rows.shape[0]
        ids, best = np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, dtype=np.float32)
        exclude = exclude.tocsr() if exclude is not None and exclude.nnz else None
        # chunks of at most _SPARSE_CHUNK customers and about CHUNK_CELLS candidate entries (a history's
        # products x their neighbours), so a run of heavy customers cannot take gigabytes
        work = np.cumsum(np.diff(rows.indptr).astype(np.int64) * max(self.neighbours, 1))
        start = 0
        while start < n_rows:
            before = int(work[start - 1]) if start else 0
            stop = min(start + _SPARSE_CHUNK, n_rows, max(start + 1, int(np.searchsorted(work, before + CHUNK_CELLS, side="right"))))
            ids[start:stop], best[start:stop] = sparse_top_k(
                self._candidates(rows[start:stop], exclude, np.arange(start, stop), allowed), k
            )
            start = stop
        return ids, best

    def _candidates(
        self, rows: sparse.csr_matrix, exclude: sparse.csr_matrix | None, positions: np.ndarray, allowed: np.ndarray | None
    ) -> sparse.csr_matrix:
        """history @ S without the products scored 0 or less, excluded (row positions[j] of `exclude`
        for row j of `rows`) or not `allowed`."""
        scores = sparse.csr_matrix(rows @ self.S)
        owner = np.repeat(np.arange(scores.shape[0], dtype=np.int64), np.diff(scores.indptr))
        keep = scores.data > 0
        if allowed is not None:
            keep &= allowed[scores.indices]
        if exclude is not None:
            at, columns = excluded_pairs(exclude, positions, None, scores.shape[1])  # only products S has
            if len(at):
                width = np.int64(scores.shape[1])
                keep &= ~members(owner * width + scores.indices, at * width + columns)
        if keep.all():
            return scores
        indptr = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=scores.shape[0]))])
        return sparse.csr_matrix((scores.data[keep], scores.indices[keep], indptr), shape=scores.shape)

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k neighbours of each item (its row of S); unknown items get all -1."""
        items = np.asarray(items, dtype=np.int64)
        inside = (items >= 0) & (items < self.n_items)
        rows = sparse.diags(inside.astype(np.float32)) @ self.S[np.where(inside, items, 0)]
        return sparse_top_k(sparse.csr_matrix(rows), k)


class RP3betaModel(ItemKNNModel):
    """RP3beta (Paudel et al. 2017): a 3-step random walk user -> item -> user -> item, with the
    landing item's popularity penalised.

    W[i, j] = (sum_u x_ui / deg(i) * x_uj / deg(u)) ** alpha / deg(j) ** beta on the binarized
    matrix, top `neighbours` per row; scoring and explanations are ItemKNN's (history @ W).
    """

    name = "rp3beta"

    def __init__(self, *, neighbours: int = 100, alpha: float = 1.0, beta: float = 0.5, decay: float = 1.0) -> None:
        super().__init__(neighbours=neighbours, shrink=0.0, binary=True, decay=decay)
        self.alpha = alpha
        self.beta = beta

    def _factors(self, x: sparse.csr_matrix) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
        user_degree = np.asarray(x.sum(axis=1)).ravel()
        item_degree = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        walk_right = sparse.diags(1.0 / np.maximum(user_degree, 1)).astype(np.float32) @ x  # user -> item
        walk_left = sparse.diags(1.0 / np.maximum(item_degree, 1)).astype(np.float32) @ x.T.tocsr()  # item -> user
        return sparse.csr_matrix(walk_right), sparse.csr_matrix(walk_left), item_degree

    def _similarity(self, dots: np.ndarray, rows: np.ndarray, cols: np.ndarray, norms: np.ndarray) -> np.ndarray:
        penalty = np.power(np.maximum(norms[cols], 1.0), self.beta)
        return np.power(dots, self.alpha) / penalty


def _weighted_rows(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """sum_j weights[j] * rows[j] in float32, added row by row in order: the sums scipy's
    one-row CSR @ dense product computes (no -0.0: the sum starts from zero as scipy's does).
    A single column goes through cumsum: numpy sums a contiguous axis pairwise, not in order.
    `rows` (B's rows taken for this call) is scaled in place: a second array of a long history's
    full rows (20 x 5,000 floats) came from fresh pages each request and cost ten times the sum."""
    products = np.multiply(rows, weights.astype(np.float32)[:, None], out=rows)
    if products.shape[1] == 1 and len(products):
        return np.cumsum(products, axis=0)[-1] + np.float32(0.0)
    return products.sum(axis=0) + np.float32(0.0)


def _columns(rows: sparse.csr_matrix, position: np.ndarray, width: int) -> sparse.csr_matrix:
    """`rows` with each product moved to its column `position[product]` (dropped where -1):
    a column selection without scipy's fancy indexing. Positions increase with the product (the
    columns of a sorted subset), so sorted rows stay sorted."""
    columns = position[rows.indices]
    keep = columns >= 0
    if rows.shape[0] == 1:
        return csr_row(width, rows.data[keep], columns[keep], sorted_indices=rows.has_sorted_indices)
    indptr = np.concatenate([[0], np.cumsum(keep)])[rows.indptr]  # entries kept before each row's start
    return sparse.csr_matrix((rows.data[keep], columns[keep], indptr), shape=(rows.shape[0], width))


def sparse_top_k(scores: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of the stored entries of a CSR matrix, padded like `top_k` (-1 / -inf)."""
    n_rows = scores.shape[0]
    if k < 1:
        return top_k(np.zeros((n_rows, 0), dtype=np.float32), k)
    counts = np.diff(scores.indptr)
    rows = np.repeat(np.arange(n_rows), counts)
    order = np.lexsort((scores.indices, -scores.data, rows))
    rank = np.arange(len(order)) - scores.indptr[rows]
    keep = rank < k
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    best = np.full((n_rows, k), -np.inf, dtype=np.float32)
    ids[rows[keep], rank[keep]] = scores.indices[order][keep]
    best[rows[keep], rank[keep]] = scores.data[order][keep]
    return ids, best
