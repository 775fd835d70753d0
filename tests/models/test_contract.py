"""Every model through the same interface checks, on a checkerboard whose right answers are known.

Two groups of customers and products: group-A customers interact only with group-A products (and B
with B), and the catalog gives each group its own category, brand and gender. Each customer has 4
random products of their group's 8, so the 4 others are the right recommendations.

LightFM runs here with BPR: on a catalog this tiny WARP only pushes down the negatives that outrank
a positive, i.e. the unseen products of the customer's own group, so its order among negatives is
not a test of what it learned (test_collaborative covers WARP).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recsys_cli.dataset import Dataset, UserHistory
from recsys_cli.models.base import Explains, ExplainsOne, KeepsCustomers, RecommendsOne, declares, recommend_one, recommend_one_explained

GROUP_SIZE = 8
SEEN = 4
CUSTOMERS_PER_GROUP = 40


def checkerboard(seed: int = 0) -> Dataset:
    """Customers c{g}{i} and products p{g}{j} for groups g in A, B (products A first)."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in "AB":
        for i in range(CUSTOMERS_PER_GROUP):
            for j, product in enumerate(rng.choice(GROUP_SIZE, SEEN, replace=False)):
                kind = int(rng.integers(0, 3))
                rows.append((f"c{group}{i}", f"p{group}{product}", kind, 1_700_000_000 + 60 * (i * SEEN + j)))
    events = pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])
    events["type"] = events["type"].astype(np.int64)
    events["timestamp"] = events["timestamp"].astype(np.int64)
    catalog = pd.DataFrame(
        {
            "product_id": [f"p{g}{j}" for g in "AB" for j in range(GROUP_SIZE)],
            "category_path": ["Women|Shoes"] * GROUP_SIZE + ["Men|Shirts"] * GROUP_SIZE,
            "brand": ["Alpha"] * GROUP_SIZE + ["Beta"] * GROUP_SIZE,
            "gender": ["Woman"] * GROUP_SIZE + ["Man"] * GROUP_SIZE,
            "price": [20.0 + j for j in range(GROUP_SIZE)] + [200.0 + 5 * j for j in range(GROUP_SIZE)],
        }
    )
    return Dataset.construct(events, catalog)


def _factory(module: str, cls: str, **params: object) -> Callable[[], object]:
    def make() -> object:
        # an import error fails the contract rather than skipping it: a renamed module must not hide
        found = importlib.import_module(f"recsys_cli.models.{module}")
        return getattr(found, cls)(**params)

    return make


def _blend() -> object:
    from recsys_cli.models.blend import BlendModel
    from recsys_cli.models.itembased import ItemKNNModel
    from recsys_cli.models.popularity import PopularityModel

    return BlendModel(ItemKNNModel(), PopularityModel(), 0.25)


def _recent() -> object:
    from recsys_cli.models.itembased import EASEModel
    from recsys_cli.models.recent import RecentModel

    return RecentModel(EASEModel(), 0.6)


# (factory, collaborative: right group expected in recommend, grouped: right group in similar_items)
MODELS: dict[str, tuple[Callable[[], object], bool, bool]] = {
    "popularity": (_factory("popularity", "PopularityModel"), False, False),
    "content": (_factory("content", "ContentModel"), False, True),
    "lightfm": (_factory("collaborative", "LightFMModel", no_components=8, epochs=30, loss="bpr", num_threads=1), True, True),
    "lightfm-hybrid": (
        _factory(
            "collaborative",
            "LightFMModel",
            no_components=8,
            epochs=30,
            loss="bpr",
            num_threads=1,
            use_item_features=True,
        ),
        True,
        True,
    ),
    "ease": (_factory("itembased", "EASEModel"), True, True),
    "ease-weighted-recency": (
        _factory("itembased", "EASEModel", binary=False, decay=0.5),
        False,
        True,
    ),  # negative scores may rank below the other group's zeros
    "itemknn": (_factory("itembased", "ItemKNNModel"), True, True),
    "itemknn-recency": (_factory("itembased", "ItemKNNModel", decay=0.5), True, True),
    "rp3beta": (_factory("itembased", "RP3betaModel"), True, True),
    "rp3beta-recency": (_factory("itembased", "RP3betaModel", decay=0.5, beta=0.3), True, True),
    "als": (_factory("als", "ALSModel", factors=4, regularization=10.0, iterations=10, num_threads=1), True, True),
    "blend": (_blend, False, True),  # its popularity part crosses groups by design
    "blend-ease-als": (lambda: _blend_ease_als(), True, True),
    "ease-recent": (_recent, True, True),
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return checkerboard()


@pytest.fixture(scope="module", params=list(MODELS), ids=list(MODELS))
def case(request: pytest.FixtureRequest, dataset: Dataset) -> tuple[str, object]:
    make, _, _ = MODELS[request.param]
    return request.param, make().fit(dataset)


def group_of(dataset: Dataset, internal: np.ndarray) -> np.ndarray:
    return np.array([str(x)[1] for x in dataset.items.to_external(internal)])


def customer_groups(dataset: Dataset) -> np.ndarray:
    return np.array([str(x)[1] for x in dataset.users.external_ids])


def seen(dataset: Dataset) -> sparse.csr_matrix:
    return sparse.csr_matrix(dataset.interactions != 0)


def check_shape_and_padding(name: str, ids: np.ndarray, scores: np.ndarray, n_rows: int, k: int, n_items: int) -> None:
    assert ids.shape == (n_rows, k) and scores.shape == (n_rows, k)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    padding = ids == -1
    assert np.all((ids >= 0) & (ids < n_items) | padding)
    assert np.all(np.isneginf(scores) == padding)
    assert np.all(padding[:, :-1] <= padding[:, 1:]), "padding must trail the returned items"
    for row in ids:
        returned = row[row >= 0]
        assert len(set(returned.tolist())) == len(returned), "duplicate items in a row"
    if name != "content":  # ContentModel documents a round-robin order over history items
        steps = np.diff(np.where(padding, 0.0, scores), axis=1)[~padding[:, 1:]]
        assert np.all(steps <= 0), "scores must not increase along a row"


def test_recommend_shapes_order_and_padding(case, dataset):
    name, model = case
    users = np.arange(dataset.n_users)
    ids, scores = model.recommend(users, k=5)
    check_shape_and_padding(name, ids, scores, len(users), 5, dataset.n_items)


def test_k_larger_than_catalog_pads(case, dataset):
    name, model = case
    k = dataset.n_items + 4
    ids, scores = model.recommend(np.arange(dataset.n_users), k=k)
    check_shape_and_padding(name, ids, scores, dataset.n_users, k, dataset.n_items)
    assert np.all(ids[:, dataset.n_items :] == -1)


def test_excluded_items_are_never_returned(case, dataset):
    _, model = case
    exclude = seen(dataset)
    ids, _ = model.recommend(np.arange(dataset.n_users), k=dataset.n_items, exclude=exclude)
    rows, cols = np.nonzero(ids >= 0)
    assert exclude[rows, ids[rows, cols]].sum() == 0


@pytest.mark.parametrize("share", [0.25, 0.75], ids=["narrow-filter", "wide-filter"])
def test_an_allowed_mask_keeps_the_order_among_allowed_products(case, dataset, share):
    """A filter returns only allowed products, each with the score it has unfiltered, best first."""
    name, model = case
    allowed = np.random.default_rng(1).random(dataset.n_items) < share
    users = np.arange(dataset.n_users)
    ids, scores = model.recommend(users, k=3, exclude=seen(dataset), allowed=allowed)
    check_shape_and_padding(name, ids, scores, len(users), 3, dataset.n_items)
    assert allowed[ids[ids >= 0]].all(), "a product outside the mask was returned"
    every_id, every_score = model.recommend(users, k=dataset.n_items, exclude=seen(dataset))
    for row in range(len(users)):
        unfiltered = dict(zip(every_id[row].tolist(), every_score[row].tolist()))
        if name == "content":  # content's round-robin order has no per-item score to compare
            continue
        returned = ids[row][ids[row] >= 0]
        for item, score in zip(returned, scores[row]):
            assert score == pytest.approx(unfiltered[item], rel=1e-5, abs=1e-6)
        passed_over = [v for i, v in unfiltered.items() if i >= 0 and allowed[i] and i not in set(returned.tolist())]
        if len(returned) == 3 and passed_over:
            assert max(passed_over) <= scores[row][-1] + 1e-6, "a better allowed product was passed over"


@pytest.mark.parametrize("share", [None, 0.25, 0.0], ids=["no-filter", "narrow-filter", "nothing-allowed"])
def test_one_customer_alone_gets_their_row_of_the_batch(case, dataset, share):
    """A request scores one customer: the one-row paths give exactly what a batch gives that customer,
    down to an empty list when the filter allows nothing."""
    name, model = case
    allowed = None if share is None else np.random.default_rng(2).random(dataset.n_items) < share
    users, exclude = np.arange(dataset.n_users), seen(dataset)
    ids, scores = model.recommend(users, k=4, exclude=exclude, allowed=allowed)
    for user in users:
        one_ids, one_scores = model.recommend(users[user : user + 1], k=4, exclude=exclude[user : user + 1], allowed=allowed)
        check_shape_and_padding(name, one_ids, one_scores, 1, 4, dataset.n_items)
        # rank by rank the same scores and the same products (products with equal scores may swap places)
        np.testing.assert_allclose(one_scores[0], scores[user], rtol=1e-5, atol=1e-6)
        assert set(one_ids[0].tolist()) == set(ids[user].tolist())
    if share == 0.0:
        assert (ids == -1).all()


def test_a_kept_filter_mask_answers_like_a_fresh_one_request_after_request(case, dataset):
    """The service passes a filter's mask read-only, the same array at every request with that
    filter, and models keep what they derive from it: the second request, and a request with
    another kept filter in between, get exactly what a fresh copy of the mask gives."""
    _, model = case
    users, exclude = np.arange(dataset.n_users), seen(dataset)
    rng = np.random.default_rng(3)
    masks = [rng.random(dataset.n_items) < share for share in (0.25, 0.75, 0.25)]
    for mask in masks:
        mask.setflags(write=False)
    for mask in masks + masks:  # each mask twice, others in between
        expected_ids, expected_scores = model.recommend(users, k=3, exclude=exclude, allowed=mask.copy())
        kept_ids, kept_scores = model.recommend(users, k=3, exclude=exclude, allowed=mask)
        np.testing.assert_array_equal(kept_ids, expected_ids)
        np.testing.assert_array_equal(kept_scores, expected_scores)
        assert mask[kept_ids[kept_ids >= 0]].all()


@pytest.mark.parametrize("share", [0.25, 0.75], ids=["narrow-filter", "wide-filter"])
def test_one_customer_with_a_kept_mask_gets_exactly_the_folded_mask_list(case, dataset, share):
    """For one customer the service folds their exclusions into a fresh mask, except for a filter's
    kept mask, which goes unchanged with the exclusions beside it: the same list, product by
    product and score by score, ties included, for a narrow filter. Near half the catalog the
    exclusions can tip a filter from wide to narrow (ranked over its columns rather than blocked),
    which may order exactly tied products differently. ALS ranks the filter's kept factor rows and
    drops the purchases after, so its dot products (and a blend's with it) may round differently in the last bits."""
    name, model = case
    exclude = seen(dataset)
    mask = np.random.default_rng(4).random(dataset.n_items) < share
    kept = mask.copy()
    kept.setflags(write=False)
    for user in range(dataset.n_users):
        folded = mask.copy()
        folded[exclude[user].indices] = False
        one = np.array([user])
        expected_ids, expected_scores = model.recommend(one, k=4, allowed=folded)
        got_ids, got_scores = model.recommend(one, k=4, exclude=exclude[user : user + 1], allowed=kept)
        if share < 0.5 and "als" not in name:
            np.testing.assert_array_equal(got_ids, expected_ids)
            np.testing.assert_array_equal(got_scores, expected_scores)
        else:
            np.testing.assert_allclose(got_scores, expected_scores, rtol=1e-6, atol=1e-7)  # float32 rounding of near-zero sums
            for score in np.unique(expected_scores[np.isfinite(expected_scores)]):
                tied = np.isclose(expected_scores[0], score, rtol=1e-6, atol=1e-7)
                assert set(got_ids[0][tied]) == set(expected_ids[0][tied]) or tied[-1], "a product other than a tied one"


def _blend_ease_als() -> object:
    from recsys_cli.models.als import ALSModel
    from recsys_cli.models.blend import BlendModel
    from recsys_cli.models.itembased import EASEModel

    return BlendModel(EASEModel(), ALSModel(factors=4, regularization=10.0, iterations=10, num_threads=1), 0.3)


def _with_product(history: UserHistory, item: int) -> UserHistory:
    """A one-row history with `item` viewed once more since the fit (a live event)."""
    row = history.weights
    items = np.union1d(row.indices, [item])
    at = np.searchsorted(items, row.indices)
    arrays = [np.zeros(len(items), dtype=dtype) for dtype in (np.float32, np.float64, np.int8)]
    for array, matrix in zip(arrays, (history.weights, history.last_seen, history.strongest), strict=True):
        array[at] = matrix.data
    new = np.searchsorted(items, item)
    arrays[0][new], arrays[1][new], arrays[2][new] = arrays[0][new] + 1.0, 1_800_000_000, max(arrays[2][new], 1)
    return UserHistory.one(items, *arrays, row.shape[1])


@pytest.mark.parametrize("mask", ["none", "narrow-kept", "wide-kept", "narrow-fresh", "one-product", "nothing"])
def test_the_one_customer_path_gives_exactly_the_one_row_batch(case, dataset, mask):
    """A request takes a model's short path (`recommend_one`, where the model has one) with the
    customer's exclusions beside the mask: the same products in the same order and bit-identical
    scores as `recommend` with that one row, for a history as fitted, one changed since (a live
    event), a long one (ten products: sums over many rows at one allowed column) and an empty
    one, k within and beyond the catalog; ALS also with its kept customer factors. The anchors
    given with the list (`recommend_one_explained`; EASE reads them from the rows it ranked) are
    `explain`'s. Models without a short path take their batch path, so EASE, ALS, popularity and
    blends test one here. The short path scales the rows it takes in place: EASE's weights stay
    as fitted."""
    name, model = case
    fitted_weights = [
        (part, part.B.copy()) for part in (model, getattr(model, "first", None), getattr(model, "second", None)) if hasattr(part, "B")
    ]
    if name.startswith(("ease", "als", "blend", "popularity")) and name != "ease-recent":
        assert declares(model, RecommendsOne)
    if name.startswith("ease") and name != "ease-recent":
        assert declares(model, ExplainsOne)
    rng = np.random.default_rng(5)
    allowed = {
        "none": None,
        "narrow-kept": rng.random(dataset.n_items) < 0.25,
        "wide-kept": rng.random(dataset.n_items) < 0.75,
        "narrow-fresh": rng.random(dataset.n_items) < 0.25,
        "one-product": np.arange(dataset.n_items) == GROUP_SIZE - 1,  # in the long history, scored from its other rows
        "nothing": np.zeros(dataset.n_items, dtype=bool),
    }[mask]
    if mask.endswith("kept") or mask == "one-product":
        allowed.setflags(write=False)
    exclude = seen(dataset)
    models = [model]
    if declares(model, KeepsCustomers):
        models.append(copy.deepcopy(model).keep_customers())
    empty = UserHistory.one(np.zeros(0, dtype=np.int32), np.zeros(0, np.float32), np.zeros(0), np.zeros(0, np.int8), dataset.n_items)
    ten = np.arange(10, dtype=np.int32)
    longs = [  # weights whose float32 sums at one column depend on the order of adding (a pairwise sum differs)
        UserHistory.one(ten, weights.astype(np.float32), 1_700_000_000.0 + 60 * ten, np.ones(10, np.int8), dataset.n_items)
        for weights in (np.random.default_rng(seed).uniform(0.5, 3.0, 10) for seed in range(4))
    ]
    for user in range(0, dataset.n_users, 3):
        fitted = dataset.history(np.array([user]))
        changed = _with_product(fitted, (user * 5) % dataset.n_items)
        nothing = np.zeros(0, dtype=np.int32)
        for history, excluded in [(fitted, fitted.weights.indices), (changed, exclude[user].indices), (empty, nothing)] + [
            (long, nothing) for long in longs
        ]:
            row = sparse.csr_matrix((np.ones(len(excluded), dtype=np.int8), excluded, [0, len(excluded)]), shape=(1, dataset.n_items))
            for scorer in models:
                for k in (4, dataset.n_items + 3):
                    want_ids, want_scores = scorer.recommend(np.array([user]), k=k, exclude=row, history=history, allowed=allowed)
                    got_ids, got_scores = recommend_one(scorer, user, history, k=k, allowed=allowed, excluded=np.asarray(excluded))
                    np.testing.assert_array_equal(got_ids, want_ids[0])
                    np.testing.assert_array_equal(got_scores, want_scores[0])
                    ids, scores, anchors = recommend_one_explained(
                        scorer, user, history, k=k, allowed=allowed, excluded=np.asarray(excluded)
                    )
                    np.testing.assert_array_equal(ids, want_ids[0])
                    np.testing.assert_array_equal(scores, want_scores[0])
                    want_anchors = scorer.explain(history, want_ids)[0] if declares(scorer, Explains) else np.full(k, -1)
                    np.testing.assert_array_equal(anchors, want_anchors)
    for part, weights in fitted_weights:
        np.testing.assert_array_equal(part.B, weights)


def test_recommendations_stay_in_the_customers_group(case, dataset):
    name, model = case
    if not MODELS[name][1]:
        pytest.skip(f"{name} does not learn from co-interactions")
    ids, _ = model.recommend(np.arange(dataset.n_users), k=GROUP_SIZE - SEEN, exclude=seen(dataset))
    assert np.all(ids >= 0), "every customer has 3 unseen products of their group"
    expected = np.repeat(customer_groups(dataset)[:, None], ids.shape[1], axis=1)
    assert np.array_equal(group_of(dataset, ids.ravel()).reshape(ids.shape), expected)


def test_similar_items_are_other_products_of_the_group(case, dataset):
    name, model = case
    items = np.arange(dataset.n_items)
    ids, scores = model.similar_items(items, k=3)
    check_shape_and_padding(name, ids, scores, len(items), 3, dataset.n_items)
    assert not np.any(ids == items[:, None]), "an item is never similar to itself"
    if MODELS[name][2]:
        assert np.all(ids >= 0)
        expected = np.repeat(group_of(dataset, items)[:, None], 3, axis=1)
        assert np.array_equal(group_of(dataset, ids.ravel()).reshape(ids.shape), expected)


def test_pickle_round_trip_gives_identical_recommendations(case, dataset, tmp_path):
    _, model = case
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    users = np.arange(dataset.n_users)
    for before, after in zip(model.recommend(users, k=4), loaded.recommend(users, k=4), strict=True):
        np.testing.assert_array_equal(before, after)
    for before, after in zip(model.similar_items(np.arange(4), k=3), loaded.similar_items(np.arange(4), k=3), strict=True):
        np.testing.assert_array_equal(before, after)


def test_same_seed_same_results(case, dataset):
    name, model = case
    again = MODELS[name][0]().fit(dataset)
    users = np.arange(dataset.n_users)
    for first, second in zip(model.recommend(users, k=4), again.recommend(users, k=4), strict=True):
        np.testing.assert_array_equal(first, second)


def test_a_model_that_cannot_be_imported_fails_the_contract_rather_than_skipping_it():
    """A renamed module is an error in every contract test of that model, not a quiet skip."""
    with pytest.raises(ModuleNotFoundError, match="recsys_cli.models.renamed"):
        _factory("renamed", "GoneModel")()
