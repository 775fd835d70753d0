"""Every metric against hand-computed values. Arithmetic is in the comments."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from recsys_cli.evaluation import metrics

N_ITEMS = 10

# Four users, best first, -1 = padding.
RECOMMENDED = np.array(
    [
        [1, 2, 3, 4],  # user 0: truth {2, 4}  -> hits at ranks 2 and 4
        [5, 6, -1, -1],  # user 1: truth {5}   -> hit at rank 1, only 2 recommendations
        [0, 1, 2, 3],  # user 2: empty truth
        [7, 8, 9, 0],  # user 3: truth {0..5} (|truth| = 6 > k) -> hit at rank 4 only
    ],
    dtype=np.int64,
)
TRUTH_SETS = [{2, 4}, {5}, set(), {0, 1, 2, 3, 4, 5}]


def _csr(rows: list[set[int]], n_items: int = N_ITEMS) -> sparse.csr_matrix:
    dense = np.zeros((len(rows), n_items))
    for user, items in enumerate(rows):
        dense[user, sorted(items)] = 1.0
    return sparse.csr_matrix(dense)


TRUTH = _csr(TRUTH_SETS)


def test_hits_mark_relevant_positions_and_never_padding() -> None:
    hits = metrics.hits_at_k(RECOMMENDED, TRUTH, 4)
    assert hits.tolist() == [
        [False, True, False, True],
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, True],
    ]


def test_precision_at_k_uses_k_as_denominator_even_with_padding() -> None:
    got = metrics.precision_at_k(RECOMMENDED, TRUTH, 4)
    # user 0: 2 hits / 4 = 0.5; user 1: 1 hit / 4 = 0.25 (2 padded slots are misses);
    # user 2: 0 / 4 = 0; user 3: 1 / 4 = 0.25
    np.testing.assert_allclose(got, [0.5, 0.25, 0.0, 0.25])


def test_precision_when_k_exceeds_the_recommendation_width() -> None:
    got = metrics.precision_at_k(RECOMMENDED, TRUTH, 8)
    # the 4 missing columns are padding: user 0: 2 / 8 = 0.25; user 1: 1 / 8 = 0.125; user 3: 1 / 8
    np.testing.assert_allclose(got, [0.25, 0.125, 0.0, 0.125])


def test_recall_at_k() -> None:
    got = metrics.recall_at_k(RECOMMENDED, TRUTH, 4)
    # user 0: 2 / |{2,4}| = 1.0; user 1: 1 / 1 = 1.0; user 2: empty truth -> 0.0, no division;
    # user 3: 1 / 6 = 0.166667
    np.testing.assert_allclose(got, [1.0, 1.0, 0.0, 1 / 6])
    assert 1 / 6 == pytest.approx(0.166667, abs=1e-6)


def test_ndcg_at_k() -> None:
    got = metrics.ndcg_at_k(RECOMMENDED, TRUTH, 4)
    # user 0: DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061607
    #         IDCG over min(2, 4) = 2 positions = 1/log2(2) + 1/log2(3) = 1.630930
    #         NDCG = 1.061607 / 1.630930 = 0.650921
    # user 1: hit at rank 1: DCG = 1, IDCG over min(1, 4) = 1 position = 1 -> 1.0
    # user 2: empty truth -> 0.0
    # user 3: |truth| = 6 > k, so IDCG is over 4 positions:
    #         IDCG = 1 + 0.630930 + 0.5 + 0.430677 = 2.561606; DCG = 1/log2(5) = 0.430677
    #         NDCG = 0.430677 / 2.561606 = 0.168128
    np.testing.assert_allclose(got, [0.650921, 1.0, 0.0, 0.168128], atol=1e-6)


def test_ndcg_hit_at_rank_1_beats_hit_at_rank_k() -> None:
    truth = _csr([{5}, {5}])
    recommended = np.array([[5, 1, 2], [1, 2, 5]])
    got = metrics.ndcg_at_k(recommended, truth, 3)
    # rank 1: 1/log2(2) / 1 = 1.0; rank 3: 1/log2(4) / 1 = 0.5
    np.testing.assert_allclose(got, [1.0, 0.5])


def test_ndcg_at_smaller_k_with_miss_beyond_it() -> None:
    got = metrics.ndcg_at_k(RECOMMENDED, TRUTH, 2)
    # user 0 top 2 = [1, 2]: DCG = 1/log2(3) = 0.630930; IDCG = 1 + 0.630930 -> 0.386853
    # user 3 top 2 = [7, 8]: no hit -> 0.0
    np.testing.assert_allclose(got, [0.386853, 1.0, 0.0, 0.0], atol=1e-6)


def test_map_at_k() -> None:
    got = metrics.map_at_k(RECOMMENDED, TRUTH, 4)
    # user 0: hits at 2 and 4: precision@2 = 1/2, precision@4 = 2/4 -> (0.5 + 0.5) / min(2, 4) = 0.5
    # user 1: hit at 1: precision@1 = 1 -> 1 / min(1, 4) = 1.0
    # user 2: empty truth -> 0.0
    # user 3: hit at 4: precision@4 = 1/4 -> 0.25 / min(6, 4) = 0.0625 (divided by k, not |truth|)
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0, 0.0625])


def test_map_at_k_at_k_2() -> None:
    got = metrics.map_at_k(RECOMMENDED, TRUTH, 2)
    # user 0: hit at 2 only: (1/2) / min(2, 2) = 0.25
    np.testing.assert_allclose(got, [0.25, 1.0, 0.0, 0.0])


def test_hit_rate_at_k() -> None:
    np.testing.assert_allclose(metrics.hit_rate_at_k(RECOMMENDED, TRUTH, 4), [1.0, 1.0, 0.0, 1.0])
    # at k = 2 user 3's only hit (rank 4) is out of reach
    np.testing.assert_allclose(metrics.hit_rate_at_k(RECOMMENDED, TRUTH, 2), [1.0, 1.0, 0.0, 0.0])


def test_mrr_at_k() -> None:
    got = metrics.mrr_at_k(RECOMMENDED, TRUTH, 4)
    # first hits: user 0 rank 2 -> 1/2; user 1 rank 1 -> 1; user 2 none -> 0; user 3 rank 4 -> 1/4
    np.testing.assert_allclose(got, [0.5, 1.0, 0.0, 0.25])


def test_summarize_skips_users_with_empty_truth() -> None:
    per_user = {
        "precision@4": metrics.precision_at_k(RECOMMENDED, TRUTH, 4),
        "recall@4": metrics.recall_at_k(RECOMMENDED, TRUTH, 4),
    }
    summary = metrics.summarize(per_user, TRUTH)
    assert summary.users == 3
    assert summary.skipped == 1
    # precision over users 0, 1, 3: (0.5 + 0.25 + 0.25) / 3 = 0.333333
    assert summary.means["precision@4"] == pytest.approx(1 / 3)
    # recall: (1 + 1 + 1/6) / 3 = 2.166667 / 3 = 0.722222
    assert summary.means["recall@4"] == pytest.approx(0.722222, abs=1e-6)


def test_summarize_with_nobody_to_average_gives_nan() -> None:
    truth = _csr([set(), set()])
    summary = metrics.summarize({"recall@2": np.zeros(2)}, truth)
    assert (summary.users, summary.skipped) == (0, 2)
    assert np.isnan(summary.means["recall@2"])


def test_catalog_coverage_counts_distinct_items_in_top_k_without_padding() -> None:
    # top 2 lists: [1, 2], [5, 6], [0, 1], [7, 8] -> distinct {0, 1, 2, 5, 6, 7, 8} = 7 of 10 = 0.7
    assert metrics.catalog_coverage(RECOMMENDED, 2, N_ITEMS) == pytest.approx(0.7)
    # top 4: user 1's padding adds nothing; distinct {0..9} = 10 of 10 = 1.0
    assert metrics.catalog_coverage(RECOMMENDED, 4, N_ITEMS) == pytest.approx(1.0)
    # all padding -> 0 of 10
    assert metrics.catalog_coverage(np.full((2, 3), -1), 3, N_ITEMS) == 0.0


def test_popularity_share_gives_unseen_items_one_interaction() -> None:
    counts = np.array([4, 2, 1, 1, 0])
    # total = 4 + 2 + 1 + 1 = 8: shares 4/8, 2/8, 1/8, 1/8, and the zero count gets 1/8
    np.testing.assert_allclose(metrics.popularity_share(counts), [0.5, 0.25, 0.125, 0.125, 0.125])


def test_novelty_is_mean_self_information_of_recommended_items() -> None:
    shares = metrics.popularity_share(np.array([4, 2, 1, 1, 0]))
    recommended = np.array([[0, 1, -1], [2, -1, -1]])
    # items 0, 1, 2 (padding ignored): -log2(0.5) = 1, -log2(0.25) = 2, -log2(0.125) = 3 -> mean 2.0
    assert metrics.novelty(recommended, 3, shares) == pytest.approx(2.0)
    # k = 1: items 0 and 2 -> (1 + 3) / 2 = 2.0; a zero-count item (4) costs -log2(1/8) = 3 bits
    assert metrics.novelty(np.array([[0], [2]]), 1, shares) == pytest.approx(2.0)
    assert metrics.novelty(np.array([[4]]), 1, shares) == pytest.approx(3.0)
    assert np.isnan(metrics.novelty(np.full((1, 2), -1), 2, shares))


def test_novelty_rejects_zero_shares() -> None:
    with pytest.raises(ValueError, match="popularity_share"):
        metrics.novelty(np.array([[0]]), 1, np.array([0.0, 1.0]))


def test_auc_perfect_worst_ties_and_exclusions() -> None:
    scores = np.array(
        [
            [0.9, 0.8, 0.1, 0.2],  # truth {0, 1}: every positive above every negative -> 1.0
            [0.9, 0.8, 0.1, 0.2],  # truth {2, 3}: every positive below every negative -> 0.0
            [0.5, 0.5, 0.5, 0.1],  # truth {0}: vs 1 tie 1/2, vs 2 tie 1/2, vs 3 win 1 -> 2/3
            [0.1, 0.9, 0.5, 0.3],  # truth {2}, exclude {1}: negatives {0, 3} both lower -> 1.0
            [0.1, 0.9, 0.5, 0.3],  # truth {2}, nothing excluded: beats 0 and 3, loses to 1 -> 2/3
            [0.1, 0.2, 0.3, 0.4],  # no relevant item -> skipped (nan)
            [0.1, 0.2, 0.3, 0.4],  # truth {0, 1}, exclude {2, 3}: no negative left -> skipped (nan)
        ]
    )
    truth = _csr([{0, 1}, {2, 3}, {0}, {2}, {2}, set(), {0, 1}], n_items=4)
    exclude = _csr([set(), set(), set(), {1}, set(), set(), {2, 3}], n_items=4)
    got = metrics.auc(scores, truth, exclude)
    np.testing.assert_allclose(got[:5], [1.0, 0.0, 2 / 3, 1.0, 2 / 3])
    assert np.isnan(got[5]) and np.isnan(got[6])


def test_auc_treats_nan_scores_as_lowest_and_keeps_infinities() -> None:
    scores = np.array([[np.nan, 0.5, 0.2], [np.inf, 0.5, -np.inf]])
    truth = _csr([{0}, {0}], n_items=3)
    # row 0: the relevant item's nan score ranks below both negatives -> 0 / 2 = 0.0
    # row 1: +inf beats 0.5 and -inf -> 2 / 2 = 1.0
    np.testing.assert_allclose(metrics.auc(scores, truth), [0.0, 1.0])


def test_auc_all_tied_is_one_half() -> None:
    # 2 positives x 2 negatives, all 4 pairs tied -> 4 * 0.5 / 4 = 0.5
    got = metrics.auc(np.zeros((1, 4)), _csr([{0, 3}], n_items=4))
    np.testing.assert_allclose(got, [0.5])


def test_evaluate_ranking_reports_every_metric_at_every_k() -> None:
    shares = metrics.popularity_share(np.ones(N_ITEMS))  # every item 1/10: -log2(0.1) = 3.321928 bits
    result = metrics.evaluate_ranking(RECOMMENDED, TRUTH, [2, 4], n_items=N_ITEMS, item_popularity_share=shares)
    expected_keys = {"users"} | {
        f"{name}@{k}" for k in (2, 4) for name in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty")
    }
    assert set(result) == expected_keys
    assert result["users"] == 3  # user 2 (empty truth) is skipped
    # means over users 0, 1, 3 of the per-user values tested above
    assert result["precision@4"] == pytest.approx((0.5 + 0.25 + 0.25) / 3)  # 0.333333
    assert result["ndcg@4"] == pytest.approx((0.650921 + 1.0 + 0.168128) / 3, abs=1e-6)  # 0.606350
    assert result["map@4"] == pytest.approx((0.5 + 1.0 + 0.0625) / 3)  # 0.520833
    assert result["mrr@2"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)  # 0.5
    assert result["hit_rate@2"] == pytest.approx(2 / 3)
    # coverage over the evaluated users' top 2: [1, 2], [5, 6], [7, 8] -> 6 of 10
    assert result["coverage@2"] == pytest.approx(0.6)
    assert result["novelty@4"] == pytest.approx(3.321928, abs=1e-6)


def test_metrics_leave_the_callers_truth_untouched() -> None:
    truth = sparse.csr_matrix((np.array([1.0, 0.0, 1.0]), np.array([3, 1, 0]), np.array([0, 3])), shape=(1, 4))
    before = (truth.data.copy(), truth.indices.copy())
    # explicit zero at item 1 is not relevant; unsorted indices are handled
    np.testing.assert_allclose(metrics.recall_at_k(np.array([[0, 1, 3]]), truth, 3), [1.0])
    np.testing.assert_array_equal(truth.data, before[0])
    np.testing.assert_array_equal(truth.indices, before[1])
