"""Most popular products: the same ranking for every customer, the fallback for cold starts.

What "popular" means is a choice the shop's own data makes at train time (see selection.py):

- `customers`: distinct customers with any event on the product (what a held-out future looks like
  when every event type counts);
- `interactions`: every event counts, so a product viewed 30 times by one customer counts 30;
- `purchasers`: distinct purchasers, then distinct add-to-carters, then distinct viewers (the
  original assignment's ranking).

`window_fraction` keeps only the most recent share of the training period (trending popularity);
products with no event in the window follow, ranked on all history.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from ..dataset import Dataset, UserHistory
from ..errors import InputError
from .base import DerivedCache, MaskCache, members

MODES = ("customers", "interactions", "purchasers")


class PopularityModel(DerivedCache):
    """Products ranked by one popularity count; ties and untouched products follow internal index.

    `ranking` covers every recommendable item (products absent from a non-empty catalog are never
    ranked). `scores[item]` is the item's count divided by the top item's count (1.0 for the most
    popular), so a score says how popular an item is relative to the best seller.
    """

    name = "popularity"

    def __init__(self, mode: str = "customers", window_fraction: float | None = None, *, window_days: float | None = None) -> None:
        if mode not in MODES:
            raise InputError(f"popularity mode must be one of {', '.join(MODES)}, not '{mode}'")
        if window_fraction is not None and not 0 < window_fraction <= 1:
            raise InputError("popularity window_fraction must be in (0, 1]")
        if window_days is not None and not window_days > 0:
            raise InputError("popularity window_days must be positive")
        self.mode = mode
        self.window_fraction = window_fraction
        self.window_days = window_days
        self.ranking: np.ndarray = np.zeros(0, dtype=np.int64)
        self.scores: np.ndarray = np.zeros(0, dtype=np.float32)
        self.counts: np.ndarray = np.zeros(0, dtype=np.float64)
        self._position: np.ndarray = np.zeros(0, dtype=np.int64)

    @property
    def label(self) -> str:
        """A short human description, e.g. `customers, last 10% of the period`."""
        if self.window_fraction:
            return f"{self.mode}, last {self.window_fraction:.0%} of the period"
        if self.window_days:
            return f"{self.mode}, last {self.window_days:.3g} days"
        return self.mode

    def ranked(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `n` products of the ranking and their scores (count / the top product's count)."""
        top = self.ranking[: max(int(n), 0)]
        return top, self.scores[top]

    def reason(self, item: int) -> str | None:
        """Why `item` is popular in this ranking's own terms; None when the caller's "bought by N
        customers" says it (all-time purchasers)."""
        window = f" in the last {self.window_days:.0f} days" if self.window_days else ""
        if self.window_fraction:
            window = f" in the last {self.window_fraction:.0%} of the period"
        if self.mode == "purchasers" or item >= len(self.counts):
            return f"popular: trending{window}" if window else None
        count = int(round(float(self.counts[item])))
        noun = "customer" if self.mode == "customers" else "interaction"
        return f"popular: {count:,} {noun}{'s' if count != 1 else ''}{window}"

    def fit(self, dataset: Dataset) -> "PopularityModel":
        """Count per item and rank: recent counts first (with a window), then all-time counts."""
        pairs = dataset.pairs
        n = dataset.n_items
        total = _counts(pairs, self.mode, n)
        recent = total
        if (self.window_fraction or self.window_days) and len(pairs):
            last = pairs["last_ts"].to_numpy()
            newest, oldest = int(last.max()), int(last.min())
            span = self.window_days * 86_400 if self.window_days else self.window_fraction * (newest - oldest)
            recent = _counts(pairs[last >= newest - span], self.mode, n)
        recommendable = dataset.recommendable
        recent = np.where(recommendable, recent, 0.0)
        total = np.where(recommendable, total, 0.0)
        # lexsort's last key is the primary one
        order = np.lexsort((np.arange(n), -total, -recent)).astype(np.int64)
        self.ranking = order[recommendable[order]]
        self.counts = recent
        self._position = np.full(n, n, dtype=np.int64)
        self._position[self.ranking] = np.arange(len(self.ranking))
        top = recent[self.ranking[0]] if len(self.ranking) else 0.0
        self.scores = (recent / top if top > 0 else np.zeros(n)).astype(np.float32)
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
        """The ranking's first k items not excluded for each customer (`history` is not used)."""
        n_rows = len(np.atleast_1d(users))
        rows = cols = np.zeros(0, dtype=np.int64)
        if exclude is not None and exclude.nnz:
            coo = sparse.coo_matrix(exclude)
            rows, cols = coo.row.astype(np.int64), coo.col.astype(np.int64)
        if allowed is None:
            return self._first_allowed(n_rows, k, rows, cols)
        ranking = self.ranking[allowed[self.ranking]]
        position = np.full(len(self._position), len(ranking), dtype=np.int64)
        position[ranking] = np.arange(len(ranking))
        return self._first_allowed(n_rows, k, rows, cols, ranking=ranking, position=position)

    def recommend_one(
        self, user: int, history: UserHistory, *, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One customer's first k of the ranking (see `RecommendsOne`): a narrow filter's allowed
        ranking is derived once per kept mask, a wide one's head is read per request, then the
        excluded products are skipped."""
        wanted = max(k, 0) + len(excluded)
        if allowed is None:
            first = self.ranking[:wanted]
        else:
            narrow = self._cached("masks", MaskCache).get(allowed, lambda: self._narrow_ranking(allowed))
            first = narrow[:wanted] if narrow is not None else self._allowed_head(allowed, wanted)
        ids, scores = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
        if len(excluded):
            first = first[~members(first, excluded)][:k]
        ids[: len(first)] = first
        scores[: len(first)] = self.scores[first]
        return ids, scores

    def _narrow_ranking(self, allowed: np.ndarray) -> np.ndarray | None:
        """The ranking's products `allowed` keeps when they are under half of it (kept per filter:
        at most half the ranking's memory); None for a wider mask."""
        ranked = self.ranking[allowed[self.ranking]]
        return ranked if 2 * len(ranked) < len(self.ranking) else None

    def _allowed_head(self, allowed: np.ndarray, wanted: int) -> np.ndarray:
        """The first `wanted` products of the ranking that a wide mask allows: at least half of it
        passes, so twice as many leading products usually hold them."""
        size = 2 * wanted
        while True:
            head = self.ranking[:size]
            first = head[allowed[head]][:wanted]
            if len(first) == wanted or size >= len(self.ranking):
                return first
            size *= 2

    def similar_items(self, items: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The most popular items other than each item itself."""
        items = np.atleast_1d(np.asarray(items, dtype=np.int64))
        return self._first_allowed(len(items), k, np.arange(len(items)), items)

    def _first_allowed(
        self,
        n_rows: int,
        k: int,
        rows: np.ndarray,
        cols: np.ndarray,
        *,
        ranking: np.ndarray | None = None,
        position: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the first k `ranking` positions not among that row's excluded (row, item) pairs.

        `ranking` defaults to the whole ranking, `position` (item -> its place in `ranking`, or
        len(ranking)) to its inverse. With a row's excluded positions sorted as p_0 < p_1 < ...,
        p_i - i is the number of allowed positions before p_i, so the j-th allowed position is
        j + #{i : p_i - i <= j}.
        """
        ranking = self.ranking if ranking is None else ranking
        places = self._position if position is None else position
        n, k = len(ranking), max(int(k), 0)
        known = (cols >= 0) & (cols < len(places))
        rows, position = rows[known], places[cols[known]]
        ranked = position < n
        rows, position = rows[ranked], position[ranked]
        key = np.unique(rows * (n + 1) + position)  # sorted, one entry per distinct (row, position)
        rows, position = key // (n + 1), key % (n + 1)
        per_row = np.bincount(rows, minlength=n_rows)
        start = np.cumsum(per_row) - per_row
        gap_key = rows * (n + 1) + (position - (np.arange(len(key)) - start[rows]))
        wanted = np.arange(n_rows)[:, None] * (n + 1) + np.arange(k)[None, :]
        skipped = np.searchsorted(gap_key, wanted, side="right") - start[:, None]
        chosen = np.arange(k)[None, :] + skipped
        ids = np.full((n_rows, k), -1, dtype=np.int64)
        scores = np.full((n_rows, k), -np.inf, dtype=np.float32)
        inside = chosen < n
        ids[inside] = ranking[chosen[inside]]
        scores[inside] = self.scores[ids[inside]]
        return ids, scores


def _counts(pairs, mode: str, n_items: int) -> np.ndarray:
    """One popularity count per item from (user, item) pair rows."""
    item = pairs["item"].to_numpy()
    if mode == "customers":
        return np.bincount(item, minlength=n_items).astype(np.float64)
    if mode == "interactions":
        events = (pairs["n_view"] + pairs["n_cart"] + pairs["n_purchase"]).to_numpy()
        return np.bincount(item, weights=events, minlength=n_items)
    # purchasers, then carters, then viewers: one number that sorts the same way
    scale = float(max(len(pairs), 1) + 1)
    purchasers = np.bincount(item[pairs["n_purchase"].to_numpy() > 0], minlength=n_items)
    carters = np.bincount(item[pairs["n_cart"].to_numpy() > 0], minlength=n_items)
    viewers = np.bincount(item[pairs["n_view"].to_numpy() > 0], minlength=n_items)
    return (purchasers * scale + carters) * scale + viewers
