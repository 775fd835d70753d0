"""Implicit-feedback matrix factorisation (Hu, Koren and Volinsky 2008) fitted with implicit's ALS.

The only module that imports `implicit`. Item factors come from the fit; a customer's factors are
solved from their history at recommend time (one small least-squares solve each, exactly the ALS
user step), so live events count and a customer unknown at fit time is scored from a session. The
published model keeps every fit-time customer's solved factors (`keep_customers`) and looks them up
for a history that has not changed since.
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
    DerivedCache,
    MaskCache,
    allowed_columns,
    blocks_by_length,
    explain_by_vectors,
    map_threads,
    members,
    pairs_in,
    ranges,
    rank_rows,
    take_rows,
)

_TOPK_BLOCK = 100  # customers per call of implicit's top-k kernel (its own block size)
_FIRST_COLUMNS = 2048  # columns a pruned top-k scores first; each further round doubles them
_FILTERED = -np.finfo(np.float32).max
_ONE_BY_ONE = 32  # rows up to which user_factors solves one by one (a request); more go in blocks
_SOLVE_CELLS = 1 << 20  # history factors per block of a batch solve (8 MB of float64)
_WOODBURY_MAX = 48  # history length up to which a block solves L x L systems instead of f x f
_PARALLEL_ROWS = 20_000  # rows from which a batch solve runs on every core
FACTORS_KEPT = 1 << 20  # bytes of a filter's factor rows kept with its mask (MASKS_KEPT filters: 64 MB at most)


class ALSModel(DerivedCache):
    """Weighted ALS: confidence = alpha * interaction weight, preference 1 for every interaction.

    Only products with interactions are recommended (the others' factors are noise).
    """

    name = "als"

    def __init__(
        self,
        *,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.05,
        alpha: float = 1.0,
        random_state: int = 42,
        num_threads: int = 0,
        resumed_iterations: int = 5,
    ) -> None:
        self.factors = factors
        self.iterations = iterations
        self.resumed_iterations = resumed_iterations
        self.regularization = regularization
        self.alpha = alpha
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, dataset: Dataset, *, resume: tuple[np.ndarray, np.ndarray] | None = None) -> "ALSModel":
        """Fit item (and fit-time user) factors on the weighted interactions.

        `resume` (see `state`): start from an earlier fit's item factors, for the products it knew,
        and run `resumed_iterations` instead of `iterations` (train's final fit after selection
        fitted the same settings on the validation split: on the seed preset, Online Retail and
        Amazon Beauty 3 to 5 resumed iterations score what 15 from random factors do)."""
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError as error:  # a runtime dependency, but an install can still be broken
            raise InputError("implicit is not installed: pip install implicit") from error

        matrix = sparse.csr_matrix(dataset.interactions, dtype=np.float32)
        # only products with interactions are fitted and scored: the cost follows the events, not the
        # catalog (the others keep zero factors)
        items = np.flatnonzero(np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0)
        with threadpool_limits(1, "blas"):  # implicit parallelises itself; nested BLAS threads only slow it
            model = AlternatingLeastSquares(
                factors=self.factors,
                iterations=self.iterations if resume is None else self.resumed_iterations,
                regularization=self.regularization,
                alpha=self.alpha,
                random_state=self.random_state,
                num_threads=self.num_threads,
            )
            if resume is not None:
                model.item_factors = self._resumed_factors(dataset, items, *resume)
            model.fit(sparse.csr_matrix(matrix[:, items]), show_progress=False)
        return self.with_item_factors(matrix, items, model.item_factors)

    def state(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(external product ids, their item factors): what a later fit can `resume` from."""
        return dataset.items.to_external(self.items), self._active_factors

    def _resumed_factors(self, dataset: Dataset, items: np.ndarray, products: np.ndarray, factors: np.ndarray) -> np.ndarray:
        """Starting item factors for `items`: the earlier fit's where it knew the product; for the
        others, small seeded values drawn as implicit draws its own start (uniform in [0, 0.01))."""
        start = np.random.default_rng(self.random_state).random((len(items), self.factors), dtype=np.float32) * 0.01
        column = np.full(dataset.n_items, -1, dtype=np.int64)
        column[items] = np.arange(len(items))
        known = dataset.items.to_internal(products)
        at = np.where(known >= 0, column[np.maximum(known, 0)], -1)
        start[at[at >= 0]] = factors[at >= 0]
        return start

    def with_item_factors(self, interactions: sparse.csr_matrix, items: np.ndarray, factors: np.ndarray) -> "ALSModel":
        """Keep fitted item factors (`factors[j]` for product `items[j]`, the products with
        interactions in `interactions`, the fit's matrix); any fitting engine ends here.
        The columns are stored by decreasing factor norm, so a top-k can stop early (`_top`)."""
        for key in [key for key in self.__dict__ if key.startswith("_cached")]:  # derived from the factors replaced
            del self.__dict__[key]
        fitted = np.ascontiguousarray(factors, dtype=np.float32)
        self._interactions = interactions
        self._gram = (fitted.T @ fitted).astype(np.float64)
        by_norm = np.argsort(-np.linalg.norm(fitted.astype(np.float64), axis=1), kind="stable")
        self.items, self._active_factors = np.asarray(items)[by_norm], np.ascontiguousarray(fitted[by_norm])
        self.item_factors = np.zeros((interactions.shape[1], self.factors), dtype=np.float32)
        self.item_factors[self.items] = self._active_factors
        return self

    @property
    def n_items(self) -> int:
        return self.item_factors.shape[0]

    def user_factors(self, rows: sparse.csr_matrix) -> np.ndarray:
        """Solve (YtY + Yh^T (C - I) Yh + reg I) x = Yh^T C 1 for every history row.

        The matrix is YtY over the other products + Yh^T C Yh + reg I: positive definite for
        positive confidences. A few rows (a request) are solved one by one with a Cholesky solve
        (LAPACK dposv, a general solve as the fallback when a zero or negative weight makes it
        indefinite); many rows (a batch, the published model's kept factors) in blocks of rows
        of one length (`_solve_block`), the same solution up to float64 rounding."""
        out = np.zeros((rows.shape[0], self.factors), dtype=np.float32)
        regularized = self._cached("regularized_gram", lambda: self._gram + self.regularization * np.eye(self.factors))
        if rows.shape[0] > _ONE_BY_ONE:
            self._solve_blocks(rows, regularized, out)
            return out
        for row in range(rows.shape[0]):
            start, stop = rows.indptr[row], rows.indptr[row + 1]
            if start < stop:
                out[row] = self._solve_row(regularized, rows.indices[start:stop], rows.data[start:stop])
        return out

    def _solve_row(self, regularized: np.ndarray, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        confidence = self.alpha * weights.astype(np.float64)
        factors = self.item_factors[items].astype(np.float64)
        a = regularized + (factors.T * (confidence - 1.0)) @ factors
        b = factors.T @ confidence
        _, solved, info = lapack.dposv(a, b)
        return solved if info == 0 else np.linalg.solve(a, b)

    def _solve_blocks(self, rows: sparse.csr_matrix, regularized: np.ndarray, out: np.ndarray) -> None:
        """`user_factors` for many rows: rows of one length are solved together (`_solve_block`),
        in blocks of about _SOLVE_CELLS history factors, on every core (numpy releases the GIL)."""
        try:
            inverse = self._cached("regularized_inverse", lambda: np.linalg.inv(regularized))
            woodbury = min(_WOODBURY_MAX, self.factors)  # an L x L solve only where it is smaller than f x f
        except np.linalg.LinAlgError:  # YtY + reg I singular (regularization 0): every row solves A itself
            inverse, woodbury = regularized, 0
        blocks = blocks_by_length(rows.indptr, _SOLVE_CELLS // self.factors)

        def solve(job: tuple[np.ndarray, np.ndarray]) -> None:
            block, at = job
            try:
                out[block] = _solve_block(
                    self.item_factors[rows.indices[at]], self.alpha * rows.data[at].astype(np.float64), regularized, inverse, woodbury
                )
            except np.linalg.LinAlgError:  # a singular row (zero or negative weights): one by one, as a request is
                for row, where in zip(block, at):
                    out[row] = self._solve_row(regularized, rows.indices[where], rows.data[where])

        # threads only for a large batch (the published model's kept factors): a request batch is
        # already one of the service's workers, and a pool costs more than a few blocks
        if rows.shape[0] < _PARALLEL_ROWS:
            map_threads(solve, blocks, 1)
            return
        with threadpool_limits(1, "blas"):  # BLAS threads would only contend with the blocks'
            map_threads(solve, blocks, self.num_threads or os.cpu_count() or 1)

    def _rows(self, users: np.ndarray, history: UserHistory | None) -> sparse.csr_matrix:
        if history is not None:
            rows = history.weights.tocsr()
            if rows.dtype == np.float32 and rows.data.all():  # read only below: no copy needed
                return rows
            rows = rows.astype(np.float32)  # a copy: dropping zeros must not change the caller's history
        else:
            inside = (users >= 0) & (users < self._interactions.shape[0])
            rows = sparse.csr_matrix(sparse.diags(inside.astype(np.float32)) @ self._interactions[np.where(inside, users, 0)])
        rows.eliminate_zeros()
        return rows

    def recommend(
        self,
        users: np.ndarray,
        *,
        k: int,
        exclude: sparse.csr_matrix | None = None,
        history: UserHistory | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by user factors . item factors; customers with an empty history get all -1.

        Scores and selects with implicit's fused kernel (a dot product and a C++ heap selection
        per block of 100 customers), the same ranking as a dense score and `base.rank_rows` at
        about half the cost, and stops early by factor norm (`_top`: a fifth of the columns on
        seed). A mask that allows under half the products scores only those (a filter's usual case).
        """
        rows, vectors = self._vectors(users, history)
        n_rows = rows.shape[0]
        ids = np.full((n_rows, k), -1, dtype=np.int64)
        best = np.full((n_rows, k), -np.inf, dtype=np.float32)
        ranked = self._ranked(allowed)
        if ranked is None:
            return ids, best
        columns, factors, blocked, norms = ranked
        exclude = exclude.tocsr() if exclude is not None and exclude.nnz else None
        excluded = np.diff(exclude.indptr) if exclude is not None else np.zeros(n_rows, dtype=np.int64)
        k_eff = min(k, len(columns))
        active = np.flatnonzero(np.diff(rows.indptr) > 0)
        for start in range(0, len(active), _TOPK_BLOCK):  # one block per call: implicit adds no OpenMP pool
            part = active[start : start + _TOPK_BLOCK]
            # ask for as many more as the block's longest exclusion list, then drop the excluded:
            # implicit's own per-customer filter slices a sparse row per customer (~20 us each)
            wanted = min(k_eff + int(excluded[part].max()), len(columns))
            got, scores = _top(factors, norms, vectors[part], wanted, blocked, needed=np.minimum(k_eff + excluded[part], wanted))
            found = scores > _FILTERED  # implicit marks filtered products with the lowest finite float
            got = columns[got]
            if exclude is not None:
                found &= ~pairs_in(take_rows(exclude, part), got)
                order = np.argsort(~found, axis=1, kind="stable")[:, :k_eff]
                at = np.arange(len(part))[:, None]  # plain fancy indexing: take_along_axis costs more per call
                got, scores, found = got[at, order], scores[at, order], found[at, order]
            ids[part, :k_eff] = np.where(found[:, :k_eff], got[:, :k_eff], -1)
            best[part, :k_eff] = np.where(found[:, :k_eff], scores[:, :k_eff], -np.inf)
        return ids, best

    def recommend_one(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One customer's top-k (see `RecommendsOne`): the same kernel call as `recommend`, without
        its batch bookkeeping."""
        ids, best = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
        vector = self._vector_one(user, history)
        if vector is None:
            return ids, best
        ranked = self._ranked(allowed)
        if ranked is None:
            return ids, best
        columns, factors, blocked, norms = ranked
        k_eff = min(k, len(columns))
        got, scores = _top(factors, norms, vector, min(k_eff + len(excluded), len(columns)), blocked)
        got, scores = columns[got[0]], scores[0]
        found = scores > _FILTERED
        if len(excluded):
            found &= ~members(got, excluded)
            order = np.argsort(~found, kind="stable")[:k_eff]
            got, scores, found = got[order], scores[order], found[order]
        ids[:k_eff] = np.where(found[:k_eff], got[:k_eff], -1)
        best[:k_eff] = np.where(found[:k_eff], scores[:k_eff], -np.inf)
        return ids, best

    def _vector_one(self, user: int, history: UserHistory) -> np.ndarray | None:
        """A one-row history's factors (1 x factors) as `_vectors` gives them; None when it is empty."""
        weights = history.weights
        start, stop = weights.indptr[0], weights.indptr[1]
        data = weights.data[start:stop].astype(np.float32, copy=False)
        if start == stop or not data.all():  # zero weights to drop: the general path
            rows, vectors = self._vectors(np.array([user], dtype=np.int64), history)
            return vectors if rows.nnz else None
        kept = self.__dict__.get("customer_factors")
        if kept is not None and self._fit_row_is(user, weights.indices[start:stop], data):
            return kept[user : user + 1]
        return self.user_factors(csr_row(weights.shape[1], data, weights.indices[start:stop]))

    def _ranked(self, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None] | None:
        """(product of each ranked column, their factors, blocked columns or None, their factor norms
        when the columns are in decreasing norm order, else None) under `allowed`; None when it
        allows nothing."""
        norms = self._cached("norms", self._sorted_norms)
        norms = norms if len(norms) else None
        if allowed is None:
            return self.items, self._active_factors, None, norms
        kept, factors, blocked = self._cached("masks", MaskCache).get(allowed, lambda: self._allowed_factors(allowed))
        if kept is None:
            columns, factors = self.items, self._active_factors
        else:  # a filter allowing under half the products: score only those (take: a third of [kept]'s cost)
            columns, factors = self.items[kept], factors if factors is not None else self._active_factors.take(kept, axis=0)
            norms = norms[kept] if norms is not None and len(kept) > _FIRST_COLUMNS else None  # kept columns keep their order
        if not len(columns) or (blocked is not None and len(blocked) == len(self.items)):
            return None
        return columns, factors, blocked, norms

    def _sorted_norms(self) -> np.ndarray:
        """The active columns' factor norms when they decrease (a model fitted since columns are kept
        in that order), else an empty array: an older model's top-k scores every column."""
        norms = np.linalg.norm(self._active_factors.astype(np.float64), axis=1)
        return norms if np.all(norms[1:] <= norms[:-1]) else np.zeros(0)

    def _allowed_factors(self, allowed: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(kept columns, their factors, blocked columns) to rank under `allowed`, kept per filter
        (see `MaskCache`): a mask allowing under half the products keeps only their columns (a
        filter's usual case) and a copy of their factors up to FACTORS_KEPT bytes (past that they
        are gathered per request); a wider one blocks columns."""
        kept, blocked = allowed_columns(allowed[self.items], len(self.items))
        if kept is None:
            return None, None, blocked.astype(np.int32) if len(blocked) else None
        small = len(kept) * self._active_factors.shape[1] * self._active_factors.itemsize <= FACTORS_KEPT
        return kept, self._active_factors.take(kept, axis=0) if small else None, None

    def keep_customers(self) -> "ALSModel":
        """Solve every fit-time customer's factors now, for the published model (train calls it):
        a request for a customer whose history has not changed since the fit then looks them up
        instead of solving them (the same numbers; ~35 us of a request). n_users x factors float32."""
        with threadpool_limits(1, "blas"):
            self.customer_factors = self.user_factors(self._interactions)
        return self

    def _vectors(self, users: np.ndarray, history: UserHistory | None) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(history rows, customer factors: kept ones where the row is the fit-time row, else solved)."""
        users = np.asarray(users, dtype=np.int64)
        rows = self._rows(users, history)
        kept = self.__dict__.get("customer_factors")
        unchanged = self._unchanged(users, rows) if kept is not None else np.zeros(len(users), dtype=bool)
        if kept is not None and unchanged.all():
            return rows, kept[users]
        changed = np.flatnonzero(~unchanged)
        part = rows if len(changed) == len(users) else rows[changed]
        if part.shape[0] > 64:  # many small solves: BLAS threads only contend; the limit itself costs ~1 ms
            with threadpool_limits(1, "blas"):
                solved = self.user_factors(part)
        else:
            solved = self.user_factors(part)
        if not unchanged.any():
            return rows, solved
        vectors = np.empty((len(users), self.factors), dtype=np.float32)
        vectors[changed] = solved
        vectors[unchanged] = kept[users[unchanged]]
        return rows, vectors

    def _unchanged(self, users: np.ndarray, rows: sparse.csr_matrix) -> np.ndarray:
        """Per row: the customer is a fit-time one and `rows` holds exactly their fit-time row."""
        if len(users) == 1:  # one customer's request: compare the two rows directly
            start, stop = rows.indptr[0], rows.indptr[1]
            return np.array([self._fit_row_is(int(users[0]), rows.indices[start:stop], rows.data[start:stop])])
        fit = self._interactions
        known = (users >= 0) & (users < fit.shape[0])
        result = np.zeros(len(users), dtype=bool)
        inside = np.flatnonzero(known)
        if len(inside):
            mine, theirs = rows[inside], fit[users[inside]]  # rows in their stored order
            lengths = np.diff(mine.indptr)
            same = np.flatnonzero(lengths == np.diff(theirs.indptr))
            a = ranges(mine.indptr[same], mine.indptr[same + 1])
            b = ranges(theirs.indptr[same], theirs.indptr[same + 1])
            differing = (mine.indices[a] != theirs.indices[b]) | (mine.data[a] != theirs.data[b])  # entry by entry, in order
            result[inside[same]] = np.bincount(np.repeat(np.arange(len(same)), lengths[same]), weights=differing, minlength=len(same)) == 0
        return result

    def _fit_row_is(self, user: int, indices: np.ndarray, data: np.ndarray) -> bool:
        """Whether `user` is a fit-time customer whose fit-time row holds exactly these entries, in order."""
        fit = self._interactions
        if not 0 <= user < fit.shape[0]:
            return False
        at, end = fit.indptr[user], fit.indptr[user + 1]
        return end - at == len(indices) and np.array_equal(indices, fit.indices[at:end]) and np.array_equal(data, fit.data[at:end])

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items by cosine of item factors (the item itself excluded); unknown items get -1."""
        items = np.asarray(items, dtype=np.int64)
        inside = (items >= 0) & (items < self.n_items)
        norms = np.linalg.norm(self.item_factors, axis=1) + 1e-9
        unit = self.item_factors / norms[:, None]

        def score(part: np.ndarray) -> np.ndarray:
            scores = unit[items[part]] @ unit.T
            scores[np.arange(len(part)), items[part]] = -np.inf
            return scores

        return rank_rows(inside, k, score, self.n_items)

    def explain(self, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The history item whose factors are closest (dot product) to each recommended item's."""
        return explain_by_vectors(sparse.csr_matrix(history.weights), ids, self.item_factors)


def _solve_block(factors: np.ndarray, confidence: np.ndarray, regularized: np.ndarray, inverse: np.ndarray, woodbury: int) -> np.ndarray:
    """The ALS user step for B rows of L history products each: `factors` (B, L, f) their item
    factors, `confidence` (B, L, float64). A = R + Yh^T D Yh with R = YtY + reg I and D = C - I; x = A^-1 Yh^T c.
    For short rows (L <= `woodbury`) through `inverse` = R^-1, by the Woodbury identity:
    x = u - Z^T (I + D Yh Z^T)^-1 D Yh u, with Z = Yh R^-1 and u = R^-1 Yh^T c: an L x L solve per
    row instead of f x f. Longer rows build A and solve it."""
    y, c = factors.astype(np.float64), confidence
    d = c - 1.0
    length = y.shape[1]
    if length > woodbury:
        a = regularized + (y * d[:, :, None]).transpose(0, 2, 1) @ y
        return np.linalg.solve(a, np.einsum("blf,bl->bf", y, c)[..., None])[..., 0]
    z = y @ inverse
    u = np.einsum("blf,bl->bf", z, c)
    m = d[:, :, None] * (z @ y.transpose(0, 2, 1))
    m[:, np.arange(length), np.arange(length)] += 1.0
    w = np.linalg.solve(m, (d * np.einsum("blf,bf->bl", y, u))[..., None])[..., 0]
    return u - np.einsum("blf,bl->bf", z, w)


def _top(
    factors: np.ndarray,
    norms: np.ndarray | None,
    vectors: np.ndarray,
    k: int,
    blocked: np.ndarray | None,
    *,
    needed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """implicit's top-k of `vectors` . `factors` (columns and scores, best first; blocked columns and
    missing places get implicit's lowest finite float): the same products as one call over every
    column in each row's first `needed` places (default all k; the rest may differ), scores equal
    up to float32 rounding (BLAS may sum a narrower block in another order).

    With `norms` (the columns' factor norms, decreasing) it scores the first _FIRST_COLUMNS columns,
    then, only for the customers whose k-th score could still be beaten, twice as many, and so on:
    no column past c can score above |customer| * norms[c] (Cauchy-Schwarz), and on seed data the
    first 2-4k of 28k columns settle almost every customer (a fifth of the work)."""
    from implicit.cpu.topk import topk  # imported on first use, not at module import

    n = len(factors)
    if norms is None or n <= _FIRST_COLUMNS:
        return topk(factors, vectors, k, filter_items=blocked, num_threads=1)
    stop = max(_FIRST_COLUMNS, k)
    got, scores = topk(factors[:stop], vectors, k, filter_items=_within(blocked, 0, stop), num_threads=1)
    lengths = np.linalg.norm(vectors.astype(np.float64), axis=1)
    last = np.full(len(vectors), k - 1) if needed is None else np.asarray(needed) - 1
    while stop < n:
        # a margin above the bound: float32 dot products round (a customer kept open only costs time)
        open_rows = np.flatnonzero(scores[np.arange(len(scores)), last] <= lengths * norms[stop] * (1 + 1e-4) + 1e-30)
        if not len(open_rows):
            break
        start, stop = stop, min(2 * stop, n)
        more, more_scores = topk(
            factors[start:stop], vectors[open_rows], min(k, stop - start), filter_items=_within(blocked, start, stop), num_threads=1
        )
        both = np.concatenate([got[open_rows], more + start], axis=1)
        both_scores = np.concatenate([scores[open_rows], more_scores], axis=1)
        best = np.argsort(-both_scores, axis=1, kind="stable")[:, :k]
        at = np.arange(len(open_rows))[:, None]
        got[open_rows], scores[open_rows] = both[at, best], both_scores[at, best]
    return got, scores


def _within(blocked: np.ndarray | None, start: int, stop: int) -> np.ndarray | None:
    """The blocked columns in [start, stop), counted from start (int32, as implicit takes them)."""
    if blocked is None:
        return None
    inside = blocked[(blocked >= start) & (blocked < stop)]
    return (inside - start).astype(np.int32) if len(inside) else None
