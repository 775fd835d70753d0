"""Ranking and catalog metrics over a batch of users, vectorized with numpy.

Conventions shared by every function:

- `recommended` is an int64 array (n_users, k_max) of internal item ids, best first; -1 is
  padding (the model had fewer than k_max items to offer). Rows hold no duplicate items.
  Padding always counts as a miss; when k > k_max the missing columns count as padding.
- `truth` is a scipy CSR matrix (n_users x n_items) whose non-zeros mark the held-out
  relevant items; row u of `truth` belongs to row u of `recommended`.
- Per-user ranking metrics return float64 arrays of length n_users. A user with empty truth
  gets 0.0 (never a division by zero); `summarize` leaves such users out of the means and
  reports how many it left out.
- A mean over nothing (no evaluable user, no recommended item) is nan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ..models.base import pairs_in

RANKING_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr")
"""Per-user metrics, in report order; each is keyed `"<name>@<k>"`."""

CATALOG_METRICS: tuple[str, ...] = ("coverage", "novelty")
"""Metrics of the recommendation lists as a whole, keyed `"<name>@<k>"`."""


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def _top_k(recommended: np.ndarray, k: int) -> np.ndarray:
    """The first k columns as int64, padded with -1 when fewer than k exist."""
    _check_k(k)
    recommended = np.asarray(recommended, dtype=np.int64)
    if recommended.ndim != 2:
        raise ValueError(f"recommended must be 2-D (n_users, k_max), got shape {recommended.shape}")
    top = recommended[:, :k]
    if top.shape[1] < k:
        pad = np.full((top.shape[0], k - top.shape[1]), -1, dtype=np.int64)
        top = np.hstack([top, pad])
    return top


def _clean_csr(truth: sparse.spmatrix | sparse.sparray) -> sparse.csr_matrix:
    """A private CSR copy with explicit zeros dropped and indices sorted (the caller's is untouched)."""
    truth = sparse.csr_matrix(truth, copy=True)
    truth.eliminate_zeros()
    truth.sum_duplicates()
    return truth


def _truth_sizes(truth: sparse.spmatrix | sparse.sparray) -> np.ndarray:
    return np.diff(_clean_csr(truth).indptr).astype(np.int64)


def hits_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """Boolean (n_users, k): whether the item at each of the first k positions is relevant."""
    top = _top_k(recommended, k)
    truth = _clean_csr(truth)
    if truth.shape[0] != top.shape[0]:
        raise ValueError(f"recommended has {top.shape[0]} rows but truth has {truth.shape[0]}")
    valid = (top >= 0) & (top < truth.shape[1])
    if truth.nnz == 0:
        return np.zeros_like(valid)
    return valid & pairs_in(truth, np.where(valid, top, -1))


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _discounts(k: int) -> np.ndarray:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# Metrics from a precomputed hit matrix (n_users, k) and truth sizes, so evaluate_ranking
# looks items up once per k instead of once per metric.


def _precision(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    return hits.sum(axis=1) / float(hits.shape[1])


def _recall(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    return _safe_divide(hits.sum(axis=1), sizes)


def _ndcg(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    discounts = _discounts(k)
    ideal_cumulative = np.concatenate([[0.0], np.cumsum(discounts)])
    return _safe_divide(hits @ discounts, ideal_cumulative[np.minimum(sizes, k)])


def _map(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    precision_at_position = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    return _safe_divide((precision_at_position * hits).sum(axis=1), np.minimum(sizes, k))


def _hit_rate(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    return hits.any(axis=1).astype(np.float64)


def _mrr(hits: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    first_rank = np.argmax(hits, axis=1) + 1
    return np.where(hits.any(axis=1), 1.0 / first_rank, 0.0)


_PER_USER = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "map": _map,
    "hit_rate": _hit_rate,
    "mrr": _mrr,
}


def precision_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """Hits in the top k divided by k (k is the denominator even when fewer were recommended)."""
    return _precision(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def recall_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """Hits in the top k divided by the number of relevant items (0.0 for empty truth)."""
    return _recall(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def ndcg_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """Binary-gain NDCG: DCG with discount 1/log2(rank+1), rank from 1, over the ideal DCG of
    min(|truth|, k) hits at the top (0.0 for empty truth)."""
    return _ndcg(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def map_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """Average precision: the sum of precision@position over hit positions, divided by
    min(|truth|, k) (0.0 for empty truth)."""
    return _map(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def hit_rate_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """1.0 when any of the top k is relevant, else 0.0."""
    return _hit_rate(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def mrr_at_k(recommended: np.ndarray, truth: sparse.spmatrix | sparse.sparray, k: int) -> np.ndarray:
    """1 / rank of the first relevant item in the top k (rank from 1), 0.0 when there is none."""
    return _mrr(hits_at_k(recommended, truth, k), _truth_sizes(truth))


def catalog_coverage(recommended: np.ndarray, k: int, n_items: int) -> float:
    """Share of the catalog (n_items) that appears at least once in anyone's top k."""
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    top = _top_k(recommended, k)
    shown = np.bincount(top[(top >= 0) & (top < n_items)], minlength=n_items)
    return np.count_nonzero(shown) / float(n_items)


def popularity_share(item_counts: np.ndarray) -> np.ndarray:
    """Each item's interaction count / the total count, as `novelty` expects.

    Items with a zero count get a share of 1/total (as if seen once) so that -log2(share)
    stays finite; an all-zero input gives every item a share of 1.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return np.ones_like(counts)
    return np.where(counts > 0, counts, 1.0) / total


def novelty(recommended: np.ndarray, k: int, item_popularity_share: np.ndarray) -> float:
    """Mean self-information -log2(share) over every non-padding item in the top k lists
    (nan when nothing was recommended). Build the shares with `popularity_share`."""
    shares = np.asarray(item_popularity_share, dtype=np.float64)
    if np.any(shares <= 0):
        raise ValueError("item popularity shares must be positive; build them with popularity_share()")
    top = _top_k(recommended, k)
    items = top[(top >= 0) & (top < len(shares))]
    if len(items) == 0:
        return float("nan")
    return float(np.mean(-np.log2(shares[items])))


def auc(
    scores: np.ndarray,
    truth: sparse.spmatrix | sparse.sparray,
    exclude: sparse.spmatrix | sparse.sparray | None = None,
) -> np.ndarray:
    """Per-user ROC AUC from dense scores over the whole catalog.

    The probability that a random relevant item scores above a random negative item, ties
    counting 1/2. Negatives are items neither relevant nor in `exclude` (typically the
    user's train items); relevant items count even if excluded. A nan score counts as the
    lowest possible. Returns float64 per user, nan for users with no relevant or no negative
    item (skip them with np.nanmean).

    `scores` is (n_users, n_items) for one batch of users; the work is one sort per row and
    memory about twice the size of `scores`, so chunk large user sets (a few million cells per
    call is comfortable).
    """
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf, posinf=np.inf, neginf=-np.inf)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}")
    truth = _clean_csr(truth)
    if truth.shape != scores.shape:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} differ in shape")
    positive = truth.astype(bool).toarray()
    negative = ~positive
    if exclude is not None:
        negative &= ~_clean_csr(exclude).astype(bool).toarray()
    n_pos = np.diff(truth.indptr)
    n_neg = negative.sum(axis=1)

    # Each row's negative scores, sorted ascending; everything else is nan and sorts last.
    negative_sorted = np.where(negative, scores, np.nan)
    negative_sorted.sort(axis=1)
    # Mann-Whitney U: for every positive, negatives strictly below it plus 1/2 per tied one.
    # The sort above is the O(n_items log n_items) work per row, done for all rows at once;
    # numpy has no batched searchsorted, so this loop makes two small calls per user.
    u_statistic = np.zeros(scores.shape[0])
    for user in np.flatnonzero((n_pos > 0) & (n_neg > 0)):
        row = negative_sorted[user, : n_neg[user]]
        relevant = scores[user, truth.indices[truth.indptr[user] : truth.indptr[user + 1]]]
        below = np.searchsorted(row, relevant, side="left")
        at_or_below = np.searchsorted(row, relevant, side="right")
        u_statistic[user] = below.sum() + 0.5 * (at_or_below - below).sum()

    out = np.full(scores.shape[0], np.nan)
    ok = (n_pos > 0) & (n_neg > 0)
    out[ok] = u_statistic[ok] / (n_pos[ok] * n_neg[ok])
    return out


@dataclass(frozen=True)
class Summary:
    """Means over the users with non-empty truth, and how many users had empty truth."""

    means: dict[str, float]
    users: int
    skipped: int


def summarize(per_user: Mapping[str, np.ndarray], truth: sparse.spmatrix | sparse.sparray) -> Summary:
    """Mean of each per-user metric over users with at least one relevant item."""
    keep = _truth_sizes(truth) > 0
    users = int(keep.sum())
    means = {}
    for name, values in per_user.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != keep.shape:
            raise ValueError(f"metric {name!r} has {values.shape[0]} users, truth has {keep.shape[0]}")
        means[name] = float(values[keep].mean()) if users else float("nan")
    return Summary(means=means, users=users, skipped=int(len(keep) - users))


def evaluate_ranking(
    recommended: np.ndarray,
    truth: sparse.spmatrix | sparse.sparray,
    ks: Sequence[int],
    *,
    n_items: int,
    item_popularity_share: np.ndarray,
) -> dict[str, float]:
    """Every ranking and catalog metric at every k, averaged over users with non-empty truth.

    Keys are `"<metric>@<k>"` for metric in RANKING_METRICS + CATALOG_METRICS, plus "users"
    (the number of users averaged over). Coverage and novelty are computed on the same
    users' lists, so numbers for a segment describe that segment's recommendations.
    """
    recommended = np.asarray(recommended, dtype=np.int64)
    sizes = _truth_sizes(truth)
    keep = sizes > 0
    result: dict[str, float] = {"users": int(keep.sum())}
    for k in ks:
        _check_k(k)
    all_hits = hits_at_k(recommended, truth, max(ks)) if len(ks) else None
    for k in ks:
        hits = all_hits[:, :k]  # the top k of the longest list
        per_user = {f"{name}@{k}": fn(hits, sizes) for name, fn in _PER_USER.items()}
        result.update(summarize(per_user, truth).means)
        result[f"coverage@{k}"] = catalog_coverage(recommended[keep], k, n_items)
        result[f"novelty@{k}"] = novelty(recommended[keep], k, item_popularity_share)
    return result
