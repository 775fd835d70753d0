"""EASEModel and ItemKNNModel: closed forms checked by hand and by brute force, history handling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recsys_cli.dataset import Dataset, UserHistory
from recsys_cli.models.base import top_k
from recsys_cli.models.itembased import EASEModel, ItemKNNModel, sparse_top_k


def events_dataset(pairs: list[tuple[str, str]], products: list[str] | None = None) -> Dataset:
    events = pd.DataFrame(pairs, columns=["customer_id", "product_id"])
    events["type"] = np.zeros(len(events), dtype=np.int64)
    events["timestamp"] = np.arange(len(events), dtype=np.int64)
    catalog = pd.DataFrame({"product_id": products}) if products else None
    return Dataset.construct(events, catalog)


def random_dataset(n_users: int, n_items: int, n_pairs: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    items = rng.choice(n_items, n_pairs, p=popularity / popularity.sum())
    users = rng.integers(0, n_users, n_pairs)
    return events_dataset([(f"c{u}", f"p{i}") for u, i in zip(users, items, strict=True)], [f"p{i}" for i in range(n_items)])


def history_of(rows: list[list[int]], n_items: int) -> UserHistory:
    matrix = sparse.csr_matrix(
        (np.ones(sum(map(len, rows)), dtype=np.float32), ([r for r, row in enumerate(rows) for _ in row], sum(rows, []))),
        shape=(len(rows), n_items),
    )
    return UserHistory(weights=matrix, last_seen=matrix.copy(), strongest=matrix.astype(np.int8))


def test_ease_solves_a_hand_checked_case():
    # X = [[1,1,0],[0,1,1]], l2=1: G = [[2,1,0],[1,3,1],[0,1,2]], P = G^-1 = [[5,-2,1],[-2,4,-2],[1,-2,5]] / 8
    dataset = events_dataset([("u0", "a"), ("u0", "b"), ("u1", "b"), ("u1", "c")])
    model = EASEModel(l2=1.0).fit(dataset)
    expected = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    np.testing.assert_allclose(model.B, expected, atol=1e-6)
    ids, scores = model.recommend(np.array([0]), k=3)
    assert ids.tolist() == [[1, 0, 2]]  # history a,b: c = -0.2 + 0.4 = 0.2, b = 0.5, a = 0.4
    np.testing.assert_allclose(scores, [[0.5, 0.4, 0.2]], atol=1e-6)


def test_ease_matches_numpy_across_symmetrization_blocks():
    dataset = random_dataset(n_users=900, n_items=700, n_pairs=6000)
    model = EASEModel(l2=5.0).fit(dataset)
    x = (dataset.interactions[:, model.items] > 0).astype(np.float64).toarray()
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    assert np.all(np.diag(model.B) == 0)
    np.testing.assert_allclose(model.B, b, atol=2e-5)


def test_ease_restricts_to_the_most_interacted_items():
    dataset = random_dataset(n_users=300, n_items=60, n_pairs=2000)
    model = EASEModel(max_items=20).fit(dataset)
    counts = np.bincount(dataset.interactions.indices, minlength=dataset.n_items)
    assert len(model.items) == 20 and counts[model.items].min() >= np.delete(counts, model.items).max()
    ids, _ = model.recommend(np.arange(dataset.n_users), k=dataset.n_items)
    assert set(ids[ids >= 0].tolist()) <= set(model.items.tolist())
    outside = np.setdiff1d(np.arange(dataset.n_items), model.items)
    assert np.all(model.similar_items(outside[:3], k=3)[0] == -1)


@pytest.mark.parametrize("modelled", [1, 2], ids=["one product", "two products"])
def test_ease_explains_only_by_the_products_it_models(modelled):
    """A history product or a recommended one outside EASE's most active products (a blend's other
    items, a live product) has no affinity, also when EASE models a single product."""
    dataset = events_dataset([("u0", "a"), ("u0", "b"), ("u1", "a"), ("u1", "b"), ("u2", "a"), ("u3", "c")])
    model = EASEModel(max_items=modelled).fit(dataset)
    a, b, c = (dataset.items.get(p) for p in "abc")
    anchors = model.explain(history_of([[a, b, c]], dataset.n_items), np.array([[b, c, a]]))
    outside = [p for p in (b, c, a) if p not in model.items.tolist()]
    assert all(anchors[0, [b, c, a].index(p)] == -1 for p in outside)
    if modelled == 2:  # a and b co-occur: each explains the other
        assert anchors[0, 0] == a and anchors[0, 2] == b


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "weighted"])
def test_ease_names_a_requests_anchors_as_explain_does(binary):
    """A request's list comes with its anchors read from the rows EASE ranked (binary weights) or
    from `explain` (weighted): either way `explain`'s, for histories holding products EASE does not
    model, an explicit zero weight, tied affinities and a list shorter than k."""
    dataset = random_dataset(n_users=300, n_items=60, n_pairs=2000, seed=4)
    model = EASEModel(max_items=20, binary=binary).fit(dataset)
    outside = np.setdiff1d(np.arange(dataset.n_items), model.items)
    together = [(c, p) for c in ("u0", "u1") for p in "abc"] + [("u2", "d")]
    tied = EASEModel(binary=binary).fit(events_dataset(together))
    tied.B[[0, 1], 2] = 0.01  # an exact tie (the solve leaves the last bits apart): c's affinity to a and to b
    cases = [(model, [int(model.items[0]), int(outside[0]), int(model.items[5]), int(outside[1])], None)]
    cases += [(model, [int(p) for p in model.items[:8]], 3)]  # the fourth product's weight is an explicit zero
    cases += [(tied, [0, 1], None)]
    for fitted, items, zero in cases:
        order = np.sort(np.array(items, dtype=np.int32))
        weights = np.linspace(1.0, 3.0, len(order)).astype(np.float32)
        if zero is not None:
            weights[zero] = 0.0
        history = UserHistory.one(order, weights, 1_700_000_000.0 + np.arange(len(order)), np.ones(len(order), np.int8), fitted.n_items)
        assert history.weights.nnz == len(order)  # the zero stays stored, as a live merge may leave it
        for k in (3, fitted.n_items + 2):
            ids, scores, anchors = fitted.recommend_one_explained(0, history, k=k, allowed=None, excluded=order)
            want_ids, want_scores = fitted.recommend_one(0, history, k=k, allowed=None, excluded=order)
            np.testing.assert_array_equal(ids, want_ids)
            np.testing.assert_array_equal(scores, want_scores)
            np.testing.assert_array_equal(anchors, fitted.explain(history, ids[None, :])[0])
            assert anchors.dtype == np.int64 and (anchors[ids < 0] == -1).all()
            assert set(anchors[anchors >= 0].tolist()) <= set(order.tolist()) - set(outside.tolist() if fitted is model else [])


@pytest.mark.parametrize("make", [EASEModel, ItemKNNModel], ids=["ease", "itemknn"])
def test_live_history_counts_and_empty_history_pads(make):
    dataset = events_dataset([("u0", "a"), ("u0", "b"), ("u1", "b"), ("u1", "c"), ("u2", "c"), ("u2", "d")])
    model = make().fit(dataset)
    a, d = dataset.items.get("a"), dataset.items.get("d")
    live = history_of([[d], []], dataset.n_items)
    ids, _ = model.recommend(np.array([0, 1]), k=1, history=live)  # u0 now has only "d"; u1 nothing
    assert ids[0, 0] == dataset.items.get("c") and ids[1, 0] == -1
    unknown = np.array([-1, dataset.n_users + 3])
    assert np.all(model.recommend(unknown, k=2)[0] == -1)
    assert model.recommend(unknown, k=1, history=history_of([[a], [a]], dataset.n_items))[0][:, 0].tolist() == [dataset.items.get("b")] * 2


@pytest.mark.parametrize("block_rows", [512, 4])  # one block; many, built two at a time on threads
def test_itemknn_keeps_top_cosine_neighbours(block_rows, monkeypatch):
    from recsys_cli.models import itembased

    monkeypatch.setattr(itembased, "_BLOCK_ROWS", block_rows)
    dataset = random_dataset(n_users=400, n_items=120, n_pairs=3000, seed=3)
    model = ItemKNNModel(neighbours=5, shrink=2.0).fit(dataset)
    x = (dataset.interactions > 0).astype(np.float64).toarray()
    norms = np.linalg.norm(x, axis=0)
    sims = x.T @ x / (np.outer(norms, norms) + 2.0)
    np.fill_diagonal(sims, 0.0)
    s = model.S.toarray()
    assert np.all(np.diag(s) == 0) and np.all((s > 0).sum(axis=1) <= 5)
    for item in range(dataset.n_items):
        kept = np.flatnonzero(s[item])
        np.testing.assert_allclose(s[item, kept], sims[item, kept], rtol=1e-5)
        if len(kept):
            assert sims[item, kept].min() >= np.sort(sims[item])[-len(kept)] - 1e-6
    ids, scores = model.recommend(np.arange(dataset.n_users), k=10)
    dense = (dataset.interactions > 0).astype(np.float32) @ model.S
    expected = np.where(dense.toarray() > 0, dense.toarray(), -np.inf).astype(np.float32)
    np.testing.assert_allclose(scores, top_k(expected, 10)[1], rtol=1e-5)


def test_sparse_top_k_matches_dense_top_k():
    matrix = sparse.random(40, 300, density=0.05, random_state=1, format="csr", dtype=np.float32)
    dense = np.where(matrix.toarray() > 0, matrix.toarray(), -np.inf).astype(np.float32)
    for k in (1, 7, 400):
        ids, scores = sparse_top_k(matrix, k)
        expected_ids, expected_scores = top_k(dense, k)
        np.testing.assert_array_equal(scores, expected_scores)
        np.testing.assert_array_equal(ids, expected_ids)


@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_item_knn_ranks_the_neighbours_of_the_history_as_ranking_every_product_would(decay, monkeypatch):
    """ItemKNN ranks only the products connected to a customer's history (sparse), in chunks of
    customers: the list of scoring every product by history @ S, ties by product, with each
    customer's exclusions and a filter, for a batch and for one customer."""
    from recsys_cli.models import itembased

    monkeypatch.setattr(itembased, "_SPARSE_CHUNK", 7)  # several chunks of customers
    monkeypatch.setattr(itembased, "CHUNK_CELLS", 400)  # and of candidates: a few customers each, a heavy one alone
    dataset = random_dataset(60, 80, 700, seed=3)
    model = ItemKNNModel(neighbours=10, decay=decay).fit(dataset)
    rng = np.random.default_rng(0)
    users = np.arange(dataset.n_users)
    exclude = sparse.csr_matrix((rng.random((dataset.n_users, dataset.n_items)) < 0.1).astype(np.int8))
    allowed = rng.random(dataset.n_items) < 0.7
    dense = (model._history_rows(users, None) @ model.S).toarray()
    for mask in (None, allowed):
        for k in (1, 5, 90):
            ids, scores = model.recommend(users, k=k, exclude=exclude, allowed=mask)
            for user in users:
                row = dense[user]
                eligible = (row > 0) & (exclude[user].toarray().ravel() == 0) & (mask if mask is not None else True)
                order = np.lexsort((np.arange(len(row)), -row))  # best score first, then the smaller product
                expected = [item for item in order if eligible[item]][:k]
                assert ids[user][ids[user] >= 0].tolist() == expected
                np.testing.assert_allclose(scores[user][: len(expected)], row[expected], rtol=1e-6)
                one_ids, one_scores = model.recommend(users[user : user + 1], k=k, exclude=exclude[user], allowed=mask)
                np.testing.assert_array_equal(one_ids[0], ids[user])
                np.testing.assert_array_equal(one_scores[0], scores[user])
    # exclusions of products past S's columns (none it can propose) change nobody's list, not even the
    # next row's: each row here names, past the columns, the place of the next customer's best product
    best = model.recommend(users, k=1, exclude=exclude)[0][:, 0]
    past = sparse.csr_matrix(
        (np.ones(len(users) - 1, dtype=np.int8), (users[:-1], dataset.n_items + np.maximum(best[1:], 0))),
        shape=(len(users), 2 * dataset.n_items),
    )
    wider = sparse.hstack([exclude, sparse.csr_matrix((len(users), dataset.n_items), dtype=np.int8)]).tocsr() + past
    for got, expected in zip(model.recommend(users, k=5, exclude=wider), model.recommend(users, k=5, exclude=exclude)):
        np.testing.assert_array_equal(got, expected)
    # the chunks: every customer once, in order, each chunk within the candidate budget or one customer alone
    chunks, candidates = [], model._candidates
    monkeypatch.setattr(model, "_candidates", lambda rows, *rest: chunks.append(rows) or candidates(rows, *rest))
    model.recommend(users, k=5)
    assert sum(c.shape[0] for c in chunks) == len(users) and len(chunks) < len(users) / 2
    assert all(c.shape[0] == 1 or c.nnz * model.neighbours <= 400 for c in chunks)


@pytest.mark.parametrize("model", [ItemKNNModel, EASEModel])
def test_a_loaded_model_scored_from_many_threads_at_once_never_fails(model):
    """The service's batch routing scores one freshly loaded model from a thread pool: the first
    calls build the per-model caches concurrently (they once raised KeyError '_cached_S_targets')."""
    import pickle
    import threading

    from .test_contract import checkerboard

    stored = pickle.dumps(model().fit(checkerboard()))  # as loaded from an artifact: no caches
    failures: list[str] = []
    for _ in range(100):
        fresh = pickle.loads(stored)

        def score(fresh=fresh) -> None:
            try:
                fresh.recommend(np.arange(10), k=3)
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                failures.append(repr(error))

        threads = [threading.Thread(target=score) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not failures, failures[:3]


def test_products_bought_in_one_basket_count_alike_whatever_their_ids():
    """Recency decay ranks moments, not products: a basket's products share the newest weight."""
    rows = [(f"a{c}", p, 10) for c in range(6) for p in ("m", "x")] + [(f"b{c}", p, 10) for c in range(6) for p in ("n", "y")]
    rows += [("t", "old", 1), ("t", "m", 5), ("t", "n", 5)]  # m and n bought together, after "old"
    events = pd.DataFrame(rows, columns=["customer_id", "product_id", "timestamp"]).assign(type=2)
    dataset = Dataset.construct(events)
    model = ItemKNNModel(decay=0.5).fit(dataset)
    ids, scores = model.recommend(np.array([dataset.users.get("t")]), k=2, exclude=dataset.interactions[[dataset.users.get("t")]])
    by_product = dict(zip(dataset.items.external_ids[ids[0]], scores[0], strict=True))
    assert set(by_product) == {"x", "y"} and by_product["x"] == pytest.approx(by_product["y"])


def test_item_knn_that_found_no_neighbours_recommends_nothing_instead_of_failing():
    dataset = events_dataset([("u0", "a"), ("u1", "b")])  # no customer has two products
    model = ItemKNNModel().fit(dataset)
    ids, scores = model.recommend(np.array([0, 1]), k=3)
    assert (ids == -1).all() and np.isneginf(scores).all()
