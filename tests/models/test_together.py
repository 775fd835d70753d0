"""Bought together: baskets are one customer's purchases on one calendar day; pairs need min_support baskets."""

from __future__ import annotations

import joblib
import numpy as np

from recsys_cli.data.schema import PURCHASE, VIEW
from recsys_cli.models.together import DAY, BoughtTogetherModel

T0 = 1_700_000_000 - 1_700_000_000 % DAY  # midnight UTC


def fitted(rows: list[tuple[int, int, int, int]], n_items: int = 6, **options: int) -> BoughtTogetherModel:
    users, items, types, stamps = (np.array(column) for column in zip(*rows))
    return BoughtTogetherModel(**options).fit_purchases(n_items, users, items, types, stamps)


def test_a_pair_in_enough_baskets_is_found_both_ways_with_its_support():
    rows = [(u, item, PURCHASE, T0 + 3600 * u) for u in range(3) for item in (0, 1)]
    model = fitted(rows + [(0, 2, PURCHASE, T0), (0, 3, VIEW, T0)], min_support=2)
    ids, support, confidence = model.together(np.array([0, 1, 2, 3]), k=3)
    assert ids[0].tolist() == [1, -1, -1] and ids[1].tolist() == [0, -1, -1]
    assert support[0, 0] == 3 and confidence[0, 0] == 1.0
    assert (ids[2] == -1).all() and (ids[3] == -1).all()  # 0 and 2 shared one basket only; 3 was only viewed


def test_only_the_same_customer_on_the_same_day_is_a_basket():
    other_customer = [(0, 0, PURCHASE, T0), (1, 1, PURCHASE, T0), (2, 0, PURCHASE, T0), (3, 1, PURCHASE, T0)]
    next_day = [(4, 0, PURCHASE, T0 + 10), (4, 1, PURCHASE, T0 + DAY + 10), (5, 0, PURCHASE, T0 + 5), (5, 1, PURCHASE, T0 + DAY)]
    assert (fitted(other_customer + next_day, min_support=1).ids == -1).all()


def test_neighbours_are_cut_and_ordered_by_support_and_padding_is_minus_one():
    rows = []
    for user, partners in enumerate([(1, 2, 3), (1, 2), (1,)]):
        rows += [(user, 0, PURCHASE, T0)] + [(user, p, PURCHASE, T0) for p in partners]
    model = fitted(rows, min_support=1, neighbours=2)
    ids, scores = model.similar_items(np.array([0, 5, -1]), k=5)
    assert ids.shape == (3, 2) and ids[0].tolist() == [1, 2]
    assert (ids[1:] == -1).all() and np.isneginf(scores[1:]).all()


def test_no_purchases_and_a_pickle_round_trip(tmp_path):
    empty = fitted([(0, 1, VIEW, T0)])
    assert (empty.together(np.array([1]), k=3)[0] == -1).all()
    model = fitted([(u, item, PURCHASE, T0) for u in range(2) for item in (2, 4)])
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    assert again.together(np.array([2]), k=1)[0].tolist() == [[4]]
