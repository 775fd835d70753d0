"""LightFMModel, ALSModel and the shared factor scoring: what the contract tests cannot see."""

from __future__ import annotations

import copy
import sys

import lightfm
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from recsys_cli.dataset import Dataset
from recsys_cli.errors import InputError
from recsys_cli.models import als
from recsys_cli.models.als import ALSModel
from recsys_cli.models.base import select_top_k, top_k
from recsys_cli.models.collaborative import LightFMModel, item_feature_matrix
from recsys_cli.models.peers import plain_lightfm


def small_dataset(seed: int = 0, n_users: int = 60, n_items: int = 30) -> Dataset:
    """Random events, plus customer "loner" whose only product "rare" nobody else touched."""
    rng = np.random.default_rng(seed)
    n = 600
    events = pd.DataFrame(
        {
            "customer_id": [f"c{u}" for u in rng.integers(0, n_users, n)] + ["loner"],
            "product_id": [f"p{i}" for i in rng.integers(0, n_items, n)] + ["rare"],
            "type": np.append(rng.integers(0, 3, n), 2).astype(np.int64),
            "timestamp": np.arange(n + 1, dtype=np.int64) + 1_700_000_000,
        }
    )
    catalog = pd.DataFrame(
        {
            "product_id": [f"p{i}" for i in range(n_items)] + ["rare"],
            "category_path": ["Women|Shoes", "Women|Bags", "Men|Shoes"] * (n_items // 3) + [np.nan],
            "brand": [f"b{i % 4}" for i in range(n_items)] + ["b9"],
            "gender": ["Woman", "Woman", "Man"] * (n_items // 3) + [np.nan],
            "price": np.linspace(5, 200, n_items + 1),
        }
    )
    return Dataset.construct(events, catalog)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return small_dataset()


def test_precomputed_vectors_rank_like_lightfm_predict(dataset, monkeypatch):
    trained = []

    class Recording(lightfm.LightFM):
        def fit(self, *args, **kwargs):
            trained.append((self, kwargs.get("item_features")))
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(lightfm, "LightFM", Recording)
    for hybrid in (False, True):
        model = LightFMModel(no_components=6, epochs=3, num_threads=1, use_item_features=hybrid).fit(dataset)
        library, features = trained[-1]
        users = np.flatnonzero(model.covers_users(np.arange(dataset.n_users)))
        items = np.arange(dataset.n_items)  # min_item_users=1 trains every item, in internal order
        expected = np.vstack([library.predict(int(u), items, item_features=features, num_threads=1) for u in users])
        scores = model.user_vectors[users] @ model.item_vectors.T
        np.testing.assert_allclose(scores - scores[:, :1], expected - expected[:, :1], rtol=1e-4, atol=1e-4)
        ids, _ = model.recommend(users, k=5)
        np.testing.assert_array_equal(ids, top_k(expected, 5)[0])


def test_fitted_model_keeps_only_arrays(dataset):
    model = LightFMModel(no_components=4, epochs=1, num_threads=1).fit(dataset)
    for name, value in vars(model).items():
        assert isinstance(value, (np.ndarray, int, float, str, bool, type(None))), name
    assert model.item_vectors.shape == (dataset.n_items, 5) and model.item_vectors.dtype == np.float32
    assert np.all(model.user_vectors[:, -1] == 1.0)


def test_min_item_users_leaves_rare_items_out(dataset):
    model = LightFMModel(no_components=4, epochs=2, num_threads=1, min_item_users=2).fit(dataset)
    rare, loner = dataset.items.get("rare"), dataset.users.get("loner")
    users = np.arange(dataset.n_users)
    ids, _ = model.recommend(users, k=dataset.n_items)
    assert rare not in ids
    assert not model.covers_users(np.array([loner]))[0]
    assert np.all(model.recommend(np.array([loner]), k=3)[0] == -1)
    assert np.all(model.similar_items(np.array([rare]), k=3)[0] == -1)
    assert rare not in model.similar_items(np.arange(dataset.n_items), k=dataset.n_items)[0]


def test_unknown_customers_get_padding(dataset):
    model = LightFMModel(no_components=4, epochs=1, num_threads=1).fit(dataset)
    users = np.array([-1, dataset.n_users, dataset.n_users + 100, 0])
    assert model.covers_users(users).tolist() == [False, False, False, True]
    ids, scores = model.recommend(users, k=4)
    assert np.all(ids[:3] == -1) and np.all(np.isneginf(scores[:3]))
    assert np.all(ids[3] >= 0)


def test_item_features_are_normalized_tokens():
    catalog = pd.DataFrame(
        {
            "product_id": ["a", "b", "c"],
            "category_path": ["Women|Shoes", "Men|Shoes", np.nan],
            "brand": ["x", "x", np.nan],
            "gender": ["Woman", "Man", np.nan],
            "price": [10.0, 20.0, np.nan],
        }
    )
    features = item_feature_matrix(catalog)
    np.testing.assert_allclose(np.asarray(features.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    dense = features.toarray()
    assert np.allclose(dense[:, :3], np.diag(dense.diagonal()))  # identity block first
    # a: identity, Women, Women|Shoes, x, Woman, price band -> 6; c has only its identity
    assert (dense[0] > 0).sum() == 6 and (dense[2] > 0).sum() == 1
    shared = (dense[0] > 0) & (dense[1] > 0)
    assert shared.sum() == 1, "a and b share the brand only: 'Men|Shoes' is not 'Women|Shoes'"


@pytest.mark.parametrize("k", [1, 5, 40])
def test_select_top_k_matches_top_k(k):
    rng = np.random.default_rng(k)
    scores = rng.standard_normal((50, 3000)).astype(np.float32)
    scores[:, rng.integers(0, 3000, 500)] = -np.inf
    scores[3] = -np.inf
    scores[4, :2990] = -np.inf
    scores[5] = np.round(scores[5])  # many ties
    ids, best = select_top_k(scores, k)
    expected_ids, expected_best = top_k(scores, k)
    np.testing.assert_array_equal(best, expected_best)
    np.testing.assert_array_equal(ids[[0, 1, 2, 3, 4]], expected_ids[[0, 1, 2, 3, 4]])
    rows = np.arange(len(scores))[:, None]
    np.testing.assert_array_equal(np.where(ids >= 0, scores[rows, np.maximum(ids, 0)], -np.inf), best)


def test_als_scores_customers_with_a_history_and_only_products_with_interactions(dataset):
    model = ALSModel(factors=4, iterations=2, num_threads=1).fit(dataset)
    ids, _ = model.recommend(np.array([0, -1, dataset.n_users]), k=3)
    assert np.all(ids[0] >= 0) and np.all(ids[1:] == -1), "no history, no recommendations"
    everything, _ = model.recommend(np.arange(dataset.n_users), k=dataset.n_items)
    active = set(np.flatnonzero(np.bincount(dataset.pairs["item"], minlength=dataset.n_items) > 0).tolist())
    assert set(everything[everything >= 0].tolist()) <= active


def test_als_kept_customer_factors_give_the_same_lists_and_new_events_still_count(dataset):
    """The published ALS keeps every fit-time customer's factors: the lists are exactly the ones
    it solves for, one customer or a batch, and a customer whose history changed (a live event)
    is solved again rather than answered from the fit."""
    from recsys_cli.dataset import UserHistory

    solving = ALSModel(factors=4, iterations=2, num_threads=1).fit(dataset)
    kept = copy.deepcopy(solving).keep_customers()
    users, history = np.arange(dataset.n_users), dataset.history()
    for part in (users, users[:1], users[5:6]):
        rows = UserHistory(history.weights[part], history.last_seen[part], history.strongest[part])
        expected = solving.recommend(part, k=5, history=rows)
        got = kept.recommend(part, k=5, history=rows)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
    changed = history.weights[:1].tolil()
    changed[0, int(np.argmin(dataset.interactions[0].toarray()))] = 5.0  # a purchase since the fit
    one = UserHistory(changed.tocsr(), history.last_seen[:1], history.strongest[:1])
    np.testing.assert_array_equal(kept.recommend(users[:1], k=5, history=one)[1], solving.recommend(users[:1], k=5, history=one)[1])
    assert not np.array_equal(
        kept.recommend(users[:1], k=5, history=one)[1],
        kept.recommend(users[:1], k=5, history=UserHistory(history.weights[:1], history.last_seen[:1], history.strongest[:1]))[1],
    )
    # a batch mixing a changed customer, unchanged ones and one unknown at fit time (a session)
    mixed_users = np.array([0, 1, -1, 2])
    order = [0, 1, 3, 2]
    weights = sparse.vstack([changed.tocsr(), history.weights[1:2], history.weights[3:4], history.weights[2:3]]).tocsr()
    mixed = UserHistory(weights, history.last_seen[order], history.strongest[order])
    for got, expected in zip(kept.recommend(mixed_users, k=5, history=mixed), solving.recommend(mixed_users, k=5, history=mixed)):
        np.testing.assert_array_equal(got, expected)
    # no customers at all, with or without kept factors
    for model in (solving, kept):
        ids, scores = model.recommend(np.zeros(0, dtype=np.int64), k=5)
        assert ids.shape == scores.shape == (0, 5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), n_columns=st.integers(1, 120), k=st.integers(1, 12), n_blocked=st.integers(0, 130))
def test_als_top_k_by_decreasing_norm_stops_early_with_every_columns_answer(monkeypatch, seed, n_columns, k, n_blocked):
    """The pruned top-k (columns by decreasing factor norm, scored a few at a time until no later
    column can reach a customer's k-th score) gives the products and scores of implicit's one call
    over every column, in each customer's first `needed` places, with blocked columns."""
    from implicit.cpu.topk import topk

    monkeypatch.setattr(als, "_FIRST_COLUMNS", 4)  # several rounds on small arrays
    rng = np.random.default_rng(seed)
    factors = (rng.normal(size=(n_columns, 3)) * rng.exponential(size=(n_columns, 1)) ** 2).astype(np.float32)
    factors = factors[np.argsort(-np.linalg.norm(factors.astype(np.float64), axis=1), kind="stable")]
    norms = np.linalg.norm(factors.astype(np.float64), axis=1)
    vectors = rng.normal(size=(7, 3)).astype(np.float32)
    vectors[0] = 0  # a customer whose every score is 0: never settled early
    k = min(k, n_columns)
    blocked = np.unique(rng.integers(0, n_columns, n_blocked)).astype(np.int32) if n_blocked else None
    needed = rng.integers(1, k + 1, len(vectors))
    expected_ids, expected_scores = topk(factors, vectors, k, filter_items=blocked, num_threads=1)
    got_ids, got_scores = als._top(factors, norms, vectors, k, blocked, needed=needed)
    exact = factors.astype(np.float64) @ vectors.astype(np.float64).T  # column x customer
    for row, places in enumerate(needed):
        real = expected_scores[row, :places] > als._FILTERED  # blocked places: any column, the lowest float
        assert np.array_equal(got_scores[row, :places] > als._FILTERED, real)
        # float32 products round differently in a narrower block: scores agree to rounding, and the
        # products are the same ones (their exact scores agree: a near-tie may swap two places)
        np.testing.assert_allclose(got_scores[row, :places][real], expected_scores[row, :places][real], rtol=1e-5, atol=1e-7)
        got, expected = got_ids[row, :places][real], expected_ids[row, :places][real]
        np.testing.assert_allclose(exact[got, row], exact[expected, row], rtol=1e-5, atol=1e-7)
        assert len(set(got.tolist())) == len(got) and (blocked is None or not np.isin(got, blocked).any())


def skewed_events(seed: int = 0, n_users: int = 400, n_items: int = 600, n: int = 8000) -> pd.DataFrame:
    """Few products bought by many, most by few (as in a shop): ALS factor norms spread widely."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"c{u}" for u in rng.integers(0, n_users, n)],
            "product_id": [f"p{i}" for i in np.minimum(rng.zipf(1.4, n), n_items) - 1],
            "type": rng.integers(0, 3, n).astype(np.int64),
            "timestamp": np.arange(n, dtype=np.int64) + 1_700_000_000,
        }
    )


def skewed_dataset(seed: int = 0, n_items: int = 600) -> Dataset:
    return Dataset.construct(skewed_events(seed, n_items=n_items), pd.DataFrame({"product_id": [f"p{i}" for i in range(n_items)]}))


def test_als_keeps_columns_by_decreasing_norm_and_an_older_models_order_gives_the_same_lists(monkeypatch):
    """A fitted ALS stores its columns by decreasing factor norm (what lets a top-k stop early); its
    lists, through the early stop, are those of a model saved before that (columns in product order,
    every column scored): batch and one customer, excluding their history, unfiltered, with a wide
    filter (blocked columns) and a narrow one (only its columns, with their norms)."""
    import implicit.cpu.topk

    from recsys_cli.dataset import UserHistory

    monkeypatch.setattr(als, "_FIRST_COLUMNS", 16)  # several rounds over the dataset's products
    dataset = skewed_dataset()
    model = ALSModel(factors=8, iterations=5, num_threads=1).fit(dataset)
    norms = np.linalg.norm(model._active_factors.astype(np.float64), axis=1)
    assert np.all(norms[1:] <= norms[:-1])
    np.testing.assert_array_equal(model.item_factors[model.items], model._active_factors)
    older = copy.deepcopy(model)
    by_product = np.argsort(older.items)
    older.items, older._active_factors = older.items[by_product], older._active_factors[by_product]
    assert older._ranked(None)[3] is None  # the old order scores every column
    scored, topk = [], implicit.cpu.topk.topk

    def counting(factors, query, *args, **kwargs):
        scored.append(len(factors) * len(query))
        return topk(factors, query, *args, **kwargs)

    monkeypatch.setattr(implicit.cpu.topk, "topk", counting)
    model.recommend(np.arange(dataset.n_users), k=5)
    assert sum(scored) < 0.5 * dataset.n_users * len(model.items)  # the early stop is taken: the test below means something
    users, history = np.arange(dataset.n_users), dataset.history()
    # every other customer's ten best products excluded (as if bought since): their lists look past them
    best, _ = older.recommend(users, k=10)
    best[1::2] = -1
    rows, columns = np.nonzero(best >= 0)
    exclude = sparse.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, best[rows, columns])), shape=dataset.interactions.shape)
    wide, narrow = np.arange(dataset.n_items) % 3 > 0, np.arange(dataset.n_items) % 3 == 0
    scored.clear()
    model.recommend(users, k=3, allowed=narrow, exclude=exclude)  # a narrow filter's kept columns stop early too
    assert sum(scored) < 0.75 * dataset.n_users * len(model._ranked(narrow)[0])
    for mask in (None, wide, narrow):
        for k in (3, 12):
            got, expected = (
                model.recommend(users, k=k, allowed=mask, exclude=exclude),
                older.recommend(users, k=k, allowed=mask, exclude=exclude),
            )
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)  # a narrower block may round the last bit
            for user in users[:25]:
                row = UserHistory(history.weights[user : user + 1], history.last_seen[user : user + 1], history.strongest[user : user + 1])
                excluded = exclude.indices[exclude.indptr[user] : exclude.indptr[user + 1]]
                got = model.recommend_one(int(user), row, k=k, allowed=mask, excluded=excluded)
                expected = older.recommend_one(int(user), row, k=k, allowed=mask, excluded=excluded)
                np.testing.assert_array_equal(got[0], expected[0])
                np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)


def test_als_solves_a_batch_of_customers_in_blocks_as_it_solves_one(monkeypatch):
    """Many customers' factors (a batch, the published model's kept factors) are solved in blocks
    of one history length, short ones through the Woodbury identity, on two threads: the same
    factors as solving each customer alone, short and long histories, in small blocks or large,
    and one by one again for a block whose systems numpy cannot solve together."""
    rng = np.random.default_rng(3)
    n_items, factors = 400, 16
    model = ALSModel(factors=factors, alpha=4.0, num_threads=2)
    interactions = sparse.random(300, n_items, density=0.02, random_state=4, format="csr", dtype=np.float32)
    model.with_item_factors(interactions, np.arange(n_items), rng.normal(size=(n_items, factors)).astype(np.float32))
    lengths = np.concatenate([np.repeat([1, 2, 3, 7, factors, factors + 1, 30, 120], 12), np.zeros(4, dtype=int)])
    rng.shuffle(lengths)
    indices = np.concatenate([np.sort(rng.choice(n_items, size=n, replace=False)) for n in lengths])
    weights = rng.choice(np.array([0.5, 1.0, 3.0, 8.0], dtype=np.float32), size=len(indices))
    rows = sparse.csr_matrix((weights, indices, np.concatenate([[0], np.cumsum(lengths)])), shape=(len(lengths), n_items))
    alone = np.vstack([model.user_factors(rows[r]) for r in range(rows.shape[0])])
    assert np.all(alone[lengths == 0] == 0) and np.all(np.abs(alone[lengths > 0]).sum(axis=1) > 0)
    np.testing.assert_allclose(model.user_factors(rows), alone, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(als, "_SOLVE_CELLS", 64)  # one or two customers per block
    np.testing.assert_allclose(model.user_factors(rows), alone, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(als, "_PARALLEL_ROWS", 1)  # on two threads, as the published model's kept factors are
    np.testing.assert_allclose(model.user_factors(rows), alone, rtol=1e-5, atol=1e-6)

    def singular(*args):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(als, "_solve_block", singular)
    np.testing.assert_array_equal(model.user_factors(rows), alone)


def test_als_resumes_an_earlier_fit_by_product_on_a_dataset_that_orders_them_differently():
    """A fit that resumes an earlier one (train's final fit after selection's) starts from its item
    factors product by product, whatever internal index each product has in the new dataset; a
    product the earlier fit did not know starts as implicit starts any (small, seeded); a product
    with no interactions gets no factors. With its resumed iterations it learns from there."""
    events = skewed_events(seed=1)
    full = Dataset.construct(events)
    part = Dataset.construct(events[events["product_id"] != events["product_id"].iloc[0]].iloc[2000:])  # other indices, fewer products
    earlier = ALSModel(factors=8, iterations=5, num_threads=1).fit(part)
    products, factors = earlier.state(part)
    started = ALSModel(factors=8, num_threads=1, resumed_iterations=0).fit(full, resume=(products, factors))
    known = full.items.to_internal(products)
    assert (known >= 0).all() and not np.array_equal(known, part.items.to_internal(products))
    np.testing.assert_array_equal(started.item_factors[known], factors)
    new = np.setdiff1d(started.items, known)
    assert len(new) and np.all((started.item_factors[new] >= 0) & (started.item_factors[new] < 0.01))
    assert not started.item_factors[np.setdiff1d(np.arange(full.n_items), started.items)].any()
    resumed = ALSModel(factors=8, num_threads=1, resumed_iterations=2).fit(full, resume=(products, factors))
    assert not np.allclose(resumed.item_factors[known], factors)


def test_als_explains_a_batch_at_once_by_the_rule_of_one_customer_at_a_time(monkeypatch):
    """ALS's reasons for many customers (the stored lists) are computed by history length in
    blocks; each is the history product whose factors have the highest positive dot product with
    the recommended one's, the first on ties, -1 where none is positive or the slot is empty:
    the rule `explain_by_affinity` applies one customer at a time."""
    from recsys_cli.models.base import explain_by_affinity

    dataset = skewed_dataset(seed=2)
    model = ALSModel(factors=8, iterations=3, num_threads=1).fit(dataset)
    history = dataset.history()
    ids, _ = model.recommend(np.arange(dataset.n_users), k=12)
    rng = np.random.default_rng(0)
    ids[1::2] = rng.integers(0, dataset.n_items, size=ids[1::2].shape)  # any product: some unrelated to the history
    ids[::7, 5:] = -1  # short lists
    ids[3] = -1
    rows = history.weights
    items = [rows.indices[rows.indptr[r] : rows.indptr[r + 1]] for r in range(rows.shape[0])]
    tied = copy.deepcopy(model)  # products share one of four factor vectors: ties everywhere
    tied.item_factors = rng.normal(size=(4, 8)).astype(np.float32)[rng.integers(0, 4, dataset.n_items)]
    unexplained = 0
    for explaining in (model, tied):
        factors = explaining.item_factors
        expected = explain_by_affinity(items, ids, lambda h, i, factors=factors: factors[h] @ factors[i].T)
        assert (expected >= 0).mean() > 0.3
        unexplained += int(((expected < 0) & (ids >= 0)).sum())
        for cells in (4_000_000, 40):  # large blocks, and a few rows each
            monkeypatch.setattr("recsys_cli.models.base.CHUNK_CELLS", cells)
            np.testing.assert_array_equal(explaining.explain(history, ids), expected)
    assert unexplained, "some products have no history product of positive affinity"


def test_als_given_new_factors_forgets_what_it_derived_from_the_old(dataset):
    """with_item_factors on a model that has served: the norms, masks and gram derived from the
    old factors go, so its lists are a fresh model's."""
    model = ALSModel(factors=4, iterations=2, num_threads=1).fit(dataset)
    fresh = ALSModel(factors=4, iterations=3, num_threads=1).fit(dataset)
    mask, users = np.arange(dataset.n_items) % 2 == 0, np.arange(dataset.n_users)
    model.recommend(users, k=4, allowed=mask)  # derives norms, the mask's columns, the solve's gram
    order = np.argsort(fresh.items)
    model.with_item_factors(fresh._interactions, fresh.items[order], fresh._active_factors[order])
    for got, expected in zip(model.recommend(users, k=4, allowed=mask), fresh.recommend(users, k=4, allowed=mask)):
        np.testing.assert_array_equal(got, expected)


def test_als_without_implicit_says_how_to_install(dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)
    with pytest.raises(InputError, match="pip install implicit"):
        ALSModel().fit(dataset)


def test_plain_lightfm_is_the_library_defaults_with_warp():
    model = plain_lightfm()
    assert (model.no_components, model.learning_rate, model.loss, model.epochs) == (10, 0.05, "warp", 30)
    assert (model.item_alpha, model.user_alpha, model.max_sampled, model.use_item_features) == (0.0, 0.0, 10, False)
