"""PopularityModel: what "popular" means (customers, interactions, purchasers), trending windows; never a short list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recsys_cli.dataset import Dataset
from recsys_cli.models.popularity import PopularityModel

VIEW, CART, PURCHASE = 0, 1, 2
DAY = 86_400


def _events(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"]).astype({"type": "int64", "timestamp": "int64"})


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    # bought: A by 2 customers, B by 1 (and carted by 3), C by 1 (carted by 1)
    # only carted: D by 2; only viewed: E by 3, F by 1; G and H in the catalog but never touched
    events = _events(
        [
            ("u1", "A", PURCHASE, 10),
            ("u2", "A", PURCHASE, 11),
            ("u1", "B", PURCHASE, 12),
            ("u2", "B", CART, 13),
            ("u3", "B", CART, 14),
            ("u4", "B", CART, 15),
            ("u3", "C", PURCHASE, 16),
            ("u3", "C", CART, 17),
            ("u1", "D", CART, 18),
            ("u2", "D", CART, 19),
            ("u1", "D", VIEW, 20),
            ("u1", "E", VIEW, 21),
            ("u2", "E", VIEW, 22),
            ("u3", "E", VIEW, 23),
            ("u3", "E", VIEW, 24),
            ("u4", "F", VIEW, 25),
        ]
    )
    catalog = pd.DataFrame({"product_id": ["H", "G", "A", "B", "C", "D", "E", "F"]})
    return Dataset.construct(events, catalog)


def _external(dataset: Dataset, ids: np.ndarray) -> list[str]:
    return [dataset.items.external_ids[i] if i >= 0 else None for i in ids]


def test_ranking_is_purchasers_then_carters_then_viewers_then_index(dataset: Dataset) -> None:
    model = PopularityModel("purchasers").fit(dataset)
    assert _external(dataset, model.ranking) == ["A", "B", "C", "D", "E", "F", "H", "G"]
    assert np.all(np.diff(model.scores[model.ranking]) <= 0) and model.scores[model.ranking[0]] == 1.0


def test_customers_and_interactions_count_every_event_type(dataset: Dataset) -> None:
    by_customers = PopularityModel("customers").fit(dataset)
    # B and E: 4 and 3 distinct customers; E has 4 events from 3 customers
    assert _external(dataset, by_customers.ranking)[:3] == ["B", "E", "A"]
    by_events = PopularityModel("interactions").fit(dataset)
    assert _external(dataset, by_events.ranking)[:2] == ["B", "E"]
    # scores tell 4 customers from 2: relative to the best seller
    b, a = dataset.items.get("B"), dataset.items.get("A")
    assert by_customers.scores[b] == 1.0 and by_customers.scores[a] == pytest.approx(0.5)


def test_everyone_gets_the_same_full_list(dataset: Dataset) -> None:
    model = PopularityModel("purchasers").fit(dataset)
    ids, scores = model.recommend(np.arange(dataset.n_users), k=5)
    assert ids.shape == (dataset.n_users, 5)
    assert all(_external(dataset, row) == ["A", "B", "C", "D", "E"] for row in ids)
    assert np.all(np.diff(scores, axis=1) < 0)  # purchasers, carters, viewers: no two of these tie


def test_list_is_never_short_and_pads_only_beyond_the_catalog(dataset: Dataset) -> None:
    model = PopularityModel("purchasers").fit(dataset)
    ids, scores = model.recommend(np.array([0]), k=10)
    assert (ids[0, :8] >= 0).all() and len(set(ids[0, :8])) == 8
    assert (ids[0, 8:] == -1).all() and np.isneginf(scores[0, 8:]).all()


def test_excluded_items_are_skipped_and_the_list_stays_full(dataset: Dataset) -> None:
    model = PopularityModel("purchasers").fit(dataset)
    a, c, e = (dataset.items.get(p) for p in ("A", "C", "E"))
    exclude = sparse.csr_matrix(([1, 1, 1], ([0, 0, 1], [a, c, e])), shape=(3, dataset.n_items))
    ids, _ = model.recommend(np.array([0, 1, 2]), k=4, exclude=exclude)
    assert _external(dataset, ids[0]) == ["B", "D", "E", "F"]
    assert _external(dataset, ids[1]) == ["A", "B", "C", "D"]
    assert _external(dataset, ids[2]) == ["A", "B", "C", "D"]


def test_similar_items_are_the_popular_ones_except_itself(dataset: Dataset) -> None:
    model = PopularityModel("purchasers").fit(dataset)
    a, d = dataset.items.get("A"), dataset.items.get("D")
    ids, _ = model.similar_items(np.array([a, d]), k=3)
    assert _external(dataset, ids[0]) == ["B", "C", "D"]
    assert _external(dataset, ids[1]) == ["A", "B", "C"]


def test_window_counts_only_recent_pairs() -> None:
    events = _events(
        [
            ("u1", "old", PURCHASE, 0),
            ("u2", "old", PURCHASE, 0),
            ("u3", "old", PURCHASE, 0),
            ("u1", "new", PURCHASE, 30 * DAY),
            ("u2", "new", VIEW, 31 * DAY),
        ]
    )
    dataset = Dataset.construct(events)
    everything = PopularityModel("purchasers").fit(dataset)
    recent = PopularityModel("purchasers", window_days=7).fit(dataset)
    trending = PopularityModel("customers", window_fraction=0.1).fit(dataset)
    assert _external(dataset, trending.ranking) == ["new", "old"]
    assert _external(dataset, everything.ranking) == ["old", "new"]
    assert _external(dataset, recent.ranking) == ["new", "old"]
