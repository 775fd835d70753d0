"""ContentModel: the gender table, catalog-based neighbours and round-robin recommendations."""

from __future__ import annotations

import io
import math

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from recsys_cli.data.schema import GENDERS
from recsys_cli.dataset import Dataset, UserHistory
from recsys_cli.models.content import GENDER_SIMILARITY, ContentConfig, ContentModel, gender_similarity

VIEW, CART, PURCHASE = 0, 1, 2


def _events(rows: list[tuple[str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"]).astype({"type": "int64", "timestamp": "int64"})


def synthetic_catalog(n: int, seed: int = 0) -> pd.DataFrame:
    """A catalog shaped like the original assignment's: ~390 category tokens in 3 levels, ~1,500
    Zipf-distributed brands, 5 genders, log-normal prices, a few missing values."""
    rng = np.random.default_rng(seed)
    leaves = [f"T{t}|T{t}M{m}|T{t}M{m}L{leaf}" for t in range(9) for m in range(6) for leaf in range(6)]
    depth = rng.integers(1, 4, n)
    chosen = np.asarray(leaves, dtype=object)[rng.integers(0, len(leaves), n)]
    paths = ["|".join(path.split("|")[:d]) for path, d in zip(chosen, depth, strict=True)]
    catalog = pd.DataFrame(
        {
            "product_id": [f"p{i}" for i in range(n)],
            "category_path": paths,
            "brand": [f"brand{b}" for b in np.minimum(rng.zipf(1.3, n), 1500)],
            "gender": np.asarray(GENDERS, dtype=object)[rng.integers(0, len(GENDERS), n)],
            "price": np.round(rng.lognormal(6.0, 1.0, n), 2),
        }
    )
    catalog.loc[rng.random(n) < 0.03, "brand"] = np.nan
    catalog.loc[rng.random(n) < 0.03, "price"] = np.nan
    catalog.loc[rng.random(n) < 0.02, "gender"] = np.nan
    catalog.loc[rng.random(n) < 0.02, "category_path"] = np.nan
    return catalog


def synthetic_events(catalog: pd.DataFrame, n_customers: int, seed: int = 0) -> pd.DataFrame:
    """Each customer touches 1-7 random products at random times."""
    rng = np.random.default_rng(seed)
    per_customer = rng.integers(1, 8, n_customers)
    customer = np.repeat(np.arange(n_customers), per_customer)
    return pd.DataFrame(
        {
            "customer_id": [f"c{c}" for c in customer],
            "product_id": catalog["product_id"].to_numpy()[rng.integers(0, len(catalog), len(customer))],
            "type": rng.integers(0, 3, len(customer)).astype(np.int64),
            "timestamp": rng.integers(1_600_000_000, 1_700_000_000, len(customer)).astype(np.int64),
        }
    )


# ------------------------------------------------------------------ gender table


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Man", "Man", 1.0),
        ("Man", "Unisex", 1 / math.sqrt(3)),
        ("Man", "Woman", 0.0),
        ("Other", "Unisex", 0.866),
        ("Woman", "Other", 0.5),
        ("Other", "Child", 0.0),
        ("Child", "Child", 1.0),
        ("Unisex", "Unisex", 1.0),
        ("Woman", "Unisex", 1 / math.sqrt(3)),
        ("Child", "Unisex", 0.0),
    ],
)
def test_gender_table_matches_the_original_assignment(a: str, b: str, expected: float) -> None:
    assert gender_similarity(a, b) == pytest.approx(expected, abs=5e-4)
    assert gender_similarity(b, a) == pytest.approx(expected, abs=5e-4)
    assert GENDER_SIMILARITY[GENDERS.index(a), GENDERS.index(b)] == pytest.approx(expected, abs=5e-4)


def test_gender_table_is_symmetric_with_unit_diagonal() -> None:
    assert GENDER_SIMILARITY.shape == (5, 5)
    np.testing.assert_allclose(GENDER_SIMILARITY, GENDER_SIMILARITY.T)
    np.testing.assert_allclose(np.diag(GENDER_SIMILARITY), 1.0)


def test_unknown_or_missing_gender_counts_as_nothing() -> None:
    assert gender_similarity("man", "MAN") == 1.0
    assert gender_similarity("Man", "") == 0.0
    assert gender_similarity("Robot", "Robot") == 0.0


# ------------------------------------------------------------- a small catalog

SMALL_CATALOG = pd.DataFrame(
    {
        "product_id": ["h1", "s1", "s2", "s3", "h2", "b1", "b2", "b3", "bare"],
        "category_path": [
            "Shoes|Sneakers",
            "Shoes|Sneakers",
            "Shoes|Sneakers",
            "Shoes|Boots",
            "Bags|Backpacks",
            "Bags|Backpacks",
            "Bags|Backpacks",
            "Bags|Wallets",
            np.nan,
        ],
        "brand": ["Nike", "Nike", "Adidas", "Nike", "Osprey", "Osprey", "Deuter", "Osprey", np.nan],
        "gender": ["Woman", "Woman", "Woman", "Woman", "Man", "Man", "Man", "Man", np.nan],
        "price": [100.0, 100.0, 100.0, 120.0, 50.0, 50.0, 50.0, 60.0, np.nan],
    }
)


@pytest.fixture(scope="module")
def small() -> tuple[Dataset, ContentModel]:
    events = _events(
        [
            ("alice", "h1", VIEW, 100),  # older
            ("alice", "h2", PURCHASE, 200),  # most recent
            ("bob", "s1", VIEW, 100),
            ("ghost", "unlisted", VIEW, 50),  # a product the catalog does not know
        ]
    )
    dataset = Dataset.construct(events, SMALL_CATALOG)
    return dataset, ContentModel().fit(dataset)


def _ids(dataset: Dataset, names: list[str]) -> np.ndarray:
    return dataset.items.to_internal(names)


def _names(dataset: Dataset, ids: np.ndarray) -> list[str | None]:
    return [dataset.items.external_ids[i] if i >= 0 else None for i in ids]


def test_similar_products_share_category_brand_and_gender(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    ids, scores = model.similar_items(_ids(dataset, ["h1", "h2"]), k=3)
    assert _names(dataset, ids[0]) == ["s1", "s2", "s3"]
    assert _names(dataset, ids[1]) == ["b1", "b2", "b3"]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-6)  # same everything
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_a_product_is_never_its_own_neighbour(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    items = np.arange(dataset.n_items)
    ids, _ = model.similar_items(items, k=dataset.n_items)
    assert not (ids == items[:, None]).any()
    assert model.neighbours.diagonal().sum() == 0


def test_products_without_attributes_have_no_neighbours(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    ids, scores = model.similar_items(_ids(dataset, ["bare", "unlisted"]), k=4)
    assert (ids == -1).all() and np.isneginf(scores).all()


def test_k_beyond_the_neighbour_count_is_padded() -> None:
    dataset = Dataset.construct(_events([("u", "h1", VIEW, 1)]), SMALL_CATALOG)
    model = ContentModel(ContentConfig(neighbours=2)).fit(dataset)
    ids, scores = model.similar_items(_ids(dataset, ["h1"]), k=5)
    assert _names(dataset, ids[0][:2]) == ["s1", "s2"]
    assert (ids[0][2:] == -1).all() and np.isneginf(scores[0][2:]).all()
    assert model.neighbours.getnnz(axis=1).max() == 2


def test_similarity_explains_each_feature(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    h1, s2, s3, h2, bare = _ids(dataset, ["h1", "s2", "s3", "h2", "bare"])
    parts = model.similarity(h1, s3)
    assert parts["category"] == pytest.approx(0.5)  # {Shoes, Sneakers} vs {Shoes, Boots}
    assert parts["brand"] == 1.0
    assert parts["gender"] == 1.0
    assert parts["price"] == pytest.approx(100 / 120)  # exp(-|ln(100/120)|) with scale 1
    assert parts["total"] == pytest.approx(0.2 * 0.5 + 0.1 + 0.5 + 0.2 * 100 / 120)
    assert "text" not in parts
    assert model.similarity(h1, s2)["brand"] == 0.0
    assert model.similarity(h1, h2)["gender"] == 0.0
    assert model.similarity(h1, h2)["price"] == pytest.approx(0.5)  # twice the price scores 0.5
    assert model.similarity(h1, bare) == {"category": 0, "brand": 0, "gender": 0, "price": 0, "total": 0}


def test_similarity_matches_the_neighbour_scores(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    ids, scores = model.similar_items(_ids(dataset, ["h1"]), k=6)
    for item, score in zip(ids[0], scores[0], strict=True):
        assert model.similarity(_ids(dataset, ["h1"])[0], item)["total"] == pytest.approx(score, abs=1e-5)


def test_round_robin_over_history_most_recent_first(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    alice = dataset.users.to_internal(["alice"])
    ids, scores, anchors = model.recommend_explained(alice, k=6)
    assert _names(dataset, ids[0]) == ["b1", "s1", "b2", "s2", "b3", "s3"]
    assert _names(dataset, anchors[0]) == ["h2", "h1", "h2", "h1", "h2", "h1"]
    h1, h2 = _ids(dataset, ["h1", "h2"])
    for item, anchor, score in zip(ids[0], anchors[0], scores[0], strict=True):
        assert model.similarity(anchor, item)["total"] == pytest.approx(score, abs=1e-5)
    plain_ids, plain_scores = model.recommend(alice, k=6)
    np.testing.assert_array_equal(plain_ids, ids)
    np.testing.assert_array_equal(plain_scores, scores)
    assert h1 not in ids and h2 not in ids


def test_excluded_items_are_skipped(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    alice = dataset.users.to_internal(["alice"])
    b1, s2 = _ids(dataset, ["b1", "s2"])
    exclude = sparse.csr_matrix(([1, 1], ([0, 0], [b1, s2])), shape=(1, dataset.n_items))
    ids, _, anchors = model.recommend_explained(alice, k=4, exclude=exclude)
    # b1 was h2's first turn and s2 h1's second; skipped turns are not made up within the round
    assert _names(dataset, ids[0]) == ["s1", "b2", "b3", "s3"]
    assert _names(dataset, anchors[0]) == ["h1", "h2", "h2", "h1"]


def test_customers_without_history_get_nothing(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    ghost = dataset.users.to_internal(["ghost"])  # only touched an uncatalogued product
    ids, scores, anchors = model.recommend_explained(np.array([ghost[0], dataset.n_users + 5]), k=3)
    assert (ids == -1).all() and np.isneginf(scores).all() and (anchors == -1).all()


def test_live_history_replaces_fit_time_interactions(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    ghost = dataset.users.to_internal(["ghost"])
    b2 = _ids(dataset, ["b2"])[0]
    live = sparse.csr_matrix(([300.0], ([0], [b2])), shape=(1, dataset.n_items))
    history = UserHistory(weights=live, last_seen=live, strongest=live.astype(np.int8))
    ids, _, anchors = model.recommend_explained(ghost, k=2, history=history)
    assert _names(dataset, ids[0]) == ["h2", "b1"]  # equally similar: catalog order
    assert (anchors[0] == b2).all()


def test_text_similarity_uses_descriptions_without_html() -> None:
    catalog = pd.DataFrame(
        {
            "product_id": ["a", "b", "c"],
            "description": [
                "<p>Waterproof <b>hiking</b> boots</p>",
                "Waterproof hiking boots &amp; laces",
                "<div class='hiking'>Silk evening scarf</div>",
            ],
        }
    )
    dataset = Dataset.construct(_events([("u", "a", VIEW, 1)]), catalog)
    model = ContentModel(ContentConfig(category=0, brand=0, gender=0, price=0, text=1.0)).fit(dataset)
    a, b, c = _ids(dataset, ["a", "b", "c"])
    assert model.similarity(a, b)["text"] > 0.5
    assert model.similarity(a, c)["text"] == 0.0  # "hiking" in c's markup is not text
    ids, _ = model.similar_items(np.array([a]), k=2)
    assert list(ids[0]) == [b, -1]


def test_model_survives_pickling(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    items = np.arange(dataset.n_items)
    np.testing.assert_array_equal(loaded.similar_items(items, k=4)[0], model.similar_items(items, k=4)[0])
    users = np.arange(dataset.n_users)
    np.testing.assert_array_equal(loaded.recommend(users, k=4)[0], model.recommend(users, k=4)[0])


# ----------------------------------------------------- against a plain reference


def _dense_similarity(catalog: pd.DataFrame, config: ContentConfig) -> np.ndarray:
    """All-pairs similarity written the obvious way, to check the blocked computation against."""
    n = len(catalog)
    paths = catalog["category_path"]
    tokens = sorted({t for p in paths.dropna() for t in p.split("|")})
    onehot = np.zeros((n, len(tokens)))
    for i, p in enumerate(paths):
        if isinstance(p, str):
            onehot[i, [tokens.index(t) for t in p.split("|")]] = 1
    norm = np.linalg.norm(onehot, axis=1, keepdims=True)
    unit = np.divide(onehot, norm, out=np.zeros_like(onehot), where=norm > 0)
    brand = catalog["brand"].to_numpy(dtype=object)
    same_brand = (brand[:, None] == brand[None, :]) & pd.notna(brand)[:, None]
    g = catalog["gender"].map({name: i for i, name in enumerate(GENDERS)}).to_numpy()
    known_g = ~np.isnan(g)
    gender = np.zeros((n, n))
    gi = np.where(known_g, g, 0).astype(int)
    gender[:] = GENDER_SIMILARITY[gi[:, None], gi[None, :]]
    gender[~known_g, :] = 0
    gender[:, ~known_g] = 0
    logp = np.log(catalog["price"].to_numpy(dtype=float))
    price = np.exp(-np.abs(logp[:, None] - logp[None, :]) / config.price_scale)
    price = np.nan_to_num(price, nan=0.0)
    total = config.category * unit @ unit.T + config.brand * same_brand + config.gender * gender
    return total + config.price * price


@pytest.mark.parametrize("combo_table", [True, False])
def test_neighbours_are_the_exact_top_k(combo_table: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not combo_table:  # catalogs with many (category path, gender) combinations compute parts per group
        from recsys_cli.models import content

        monkeypatch.setattr(content, "_MAX_COMBO_TABLE", 0)
    catalog = synthetic_catalog(2500, seed=3)
    dataset = Dataset.construct(_events([("u", "p0", VIEW, 1)]), catalog)
    config = ContentConfig(neighbours=10)
    model = ContentModel(config).fit(dataset)
    dense = _dense_similarity(dataset.catalog, config)
    np.fill_diagonal(dense, -np.inf)
    ids, scores = model.similar_items(np.arange(dataset.n_items), k=10)
    expected = -np.sort(-dense, axis=1)[:, :10]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    chosen = np.take_along_axis(dense, ids, axis=1)
    np.testing.assert_allclose(chosen, expected, atol=1e-5)  # the ids carry those scores
    assert all(len(set(row)) == 10 for row in ids)


@pytest.mark.parametrize(
    ("columns", "config"),
    [
        (["category_path"], ContentConfig(neighbours=100)),  # a category only: brand and price bound nothing
        (["category_path", "gender", "price"], ContentConfig(neighbours=100, price_scale=0.3)),
        (["category_path", "brand", "gender", "price"], ContentConfig(neighbours=25, brand=0.4, price=0.6, gender=0.1)),
    ],
)
def test_pruned_neighbours_are_exact_for_sparse_catalogs(columns: list[str], config: ContentConfig) -> None:
    catalog = synthetic_catalog(3000, seed=8)
    for column in {"category_path", "brand", "gender", "price"} - set(columns):
        catalog[column] = np.nan
    dataset = Dataset.construct(_events([("u", "p0", VIEW, 1)]), catalog)
    model = ContentModel(config).fit(dataset)
    dense = _dense_similarity(dataset.catalog, config)
    np.fill_diagonal(dense, -np.inf)
    K = config.neighbours
    ids, scores = model.similar_items(np.arange(dataset.n_items), k=K)
    order = np.lexsort((np.broadcast_to(np.arange(dataset.n_items), dense.shape), -dense), axis=1)[:, :K]
    top = np.take_along_axis(dense, order, axis=1)
    expected = np.where(top > 1e-9, order, -1)  # positive similarities only, ties by index
    np.testing.assert_allclose(np.where(ids >= 0, scores, 0), np.where(expected >= 0, top, 0), atol=1e-5)
    clear = np.abs(np.diff(top, axis=1)).min(axis=1) > 1e-5  # rows without near-ties: the same ids
    np.testing.assert_array_equal(ids[clear], expected[clear])


def _reference_round_robin(
    model: ContentModel, history: list[int], seen: set[int], excluded: set[int], k: int
) -> tuple[list[int], list[int]]:
    """The original assignment's loop: level by level, most recent history item first."""
    out: list[int] = []
    anchors: list[int] = []
    ptr, idx = model.neighbours.indptr, model.neighbours.indices
    lists = [list(idx[ptr[h] : ptr[h + 1]]) for h in history]
    for level in range(max((len(x) for x in lists), default=0)):
        for anchor, neighbours in zip(history, lists, strict=True):
            if level < len(neighbours) and len(out) < k:
                item = int(neighbours[level])
                if item not in seen and item not in excluded and item not in out:
                    out.append(item)
                    anchors.append(anchor)
    return out, anchors


def test_batch_round_robin_matches_the_plain_loop() -> None:
    catalog = synthetic_catalog(400, seed=5)
    events = synthetic_events(catalog, 300, seed=6)
    dataset = Dataset.construct(events, catalog)
    model = ContentModel(ContentConfig(neighbours=6)).fit(dataset)  # K < k forces deeper passes
    rng = np.random.default_rng(7)
    users = np.arange(dataset.n_users)
    exclude = sparse.random(len(users), dataset.n_items, density=0.02, format="csr", random_state=rng)
    k = 10
    ids, scores, anchors = model.recommend_explained(users, k=k, exclude=exclude)
    last_seen = dataset.history(users).last_seen
    for row, _user in enumerate(users):
        start, end = last_seen.indptr[row], last_seen.indptr[row + 1]
        items, ts = last_seen.indices[start:end], last_seen.data[start:end]
        order = np.lexsort((items, -ts))
        expected, expected_anchors = _reference_round_robin(
            model,
            [int(i) for i in items[order]],
            set(items.tolist()),
            set(exclude[row].indices.tolist()),
            k,
        )
        got = [int(i) for i in ids[row] if i >= 0]
        assert got == expected
        assert [int(a) for a in anchors[row][: len(got)]] == expected_anchors
        assert (ids[row][len(got) :] == -1).all()


@pytest.mark.slow
def test_full_size_catalog_gets_k_neighbours_and_everyone_recommendations() -> None:
    catalog = synthetic_catalog(28_369, seed=0)
    events = synthetic_events(catalog, 65_000, seed=1)
    dataset = Dataset.construct(events, catalog)
    model = ContentModel().fit(dataset)
    counts = (model.similar_items(np.arange(dataset.n_items), k=100)[0] >= 0).sum(axis=1)
    described = dataset.catalog[["category_path", "brand", "gender", "price"]].notna().any(axis=1).to_numpy()
    assert (counts[described] == 100).all()
    ids, _, anchors = model.recommend_explained(np.arange(dataset.n_users), k=10)
    assert (ids >= 0).all() and (anchors >= 0).all()


def test_top_k_selection_is_exact_when_the_sampled_threshold_misses() -> None:
    from recsys_cli.models.content import _top_positive, _Workspace

    rng = np.random.default_rng(11)
    n, k = 30_000, 10
    scores = rng.random((4, n), dtype=np.float32)
    scores[1] = 0.5  # ties everywhere: column order decides
    scores[1, [0, 29 * 7]] = 0.9  # two sampled columns stand out, so the sample's threshold is too high
    scores[2, ::29] = 0.99  # every sampled column beats the rest
    scores[3] = 0.0  # nothing positive: no neighbours
    scores[3, 5] = 0.2
    counts, cols, values = _top_positive(scores.copy(), k, _Workspace(4, n))
    assert list(counts) == [k, k, k, 1]
    start = 0
    for row, count in enumerate(counts):
        positive = np.flatnonzero(scores[row] > 0)
        expected = positive[np.lexsort((positive, -scores[row, positive]))][:count]
        np.testing.assert_array_equal(cols[start : start + count], expected)
        np.testing.assert_array_equal(values[start : start + count], scores[row, expected])
        start += count


# ------------------------------------------------ products without events: on demand


@pytest.fixture(scope="module")
def sample() -> tuple[Dataset, ContentModel, ContentModel]:
    """The committed sample fitted twice: as is, and with an event on every product (all precomputed)."""
    from pathlib import Path

    from recsys_cli.data.ingest import validate
    from recsys_cli.data.readers import read_canonical

    events, catalog, _, _ = validate(read_canonical(Path(__file__).parents[2] / "data"))
    dataset = Dataset.construct(events, catalog)
    everything = pd.concat([events, _events([("probe", p, VIEW, 1) for p in catalog["product_id"]])], ignore_index=True)
    full = Dataset.construct(everything, catalog)
    assert list(full.items.external_ids[: dataset.n_items]) == list(dataset.items.external_ids)
    return dataset, ContentModel().fit(dataset), ContentModel().fit(full)


def test_only_products_with_events_are_precomputed(sample: tuple[Dataset, ContentModel, ContentModel]) -> None:
    dataset, model, full = sample
    with_events = np.bincount(dataset.pairs["item"], minlength=dataset.n_items) > 0
    np.testing.assert_array_equal(model.precomputed, with_events)
    assert (~with_events).sum() > 50  # the sample has products nobody touched
    assert (model.neighbours.getnnz(axis=1)[~with_events] == 0).all()
    assert full.precomputed.all()


def test_an_inactive_product_gets_the_list_the_precomputed_path_gives(sample: tuple[Dataset, ContentModel, ContentModel]) -> None:
    _, model, full = sample
    inactive = np.flatnonzero(~model.precomputed)
    ids, scores = model.similar_items(inactive, k=100)
    expected_ids, expected_scores = full.similar_items(inactive, k=100)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_array_equal(scores, expected_scores)  # bit for bit, not approximately
    assert (ids[:, 0] >= 0).all()
    # and asked one at a time, mixed with active products, from the cache the second time
    mixed = np.array([inactive[3], 0, inactive[3], inactive[7]])
    for _ in range(2):
        np.testing.assert_array_equal(model.similar_items(mixed, k=20)[0], full.similar_items(mixed, k=20)[0])


def test_a_products_neighbours_are_the_same_asked_alone_or_among_many(sample: tuple[Dataset, ContentModel, ContentModel]) -> None:
    # a request asks for a few products (one slice each), a batch for many (one vectorized gather)
    dataset, model, _ = sample
    inactive = np.flatnonzero(~model.precomputed)
    few = np.array([5, inactive[1], -1, dataset.n_items, 5, inactive[2]])
    many = np.concatenate([few, np.arange(40), inactive[:20]])
    for k in (1, 7, 100, 250):
        alone, among = model.similar_items(few, k=k), model.similar_items(many, k=k)
        for got, expected in zip(alone, among, strict=True):
            np.testing.assert_array_equal(got, expected[: len(few)])
        assert (alone[0][[2, 3]] == -1).all() and np.isneginf(alone[1][[2, 3]]).all()  # unknown products: padding only


def test_a_live_history_of_inactive_products_gets_recommendations(sample: tuple[Dataset, ContentModel, ContentModel]) -> None:
    dataset, model, full = sample
    inactive = np.flatnonzero(~model.precomputed)[[10, 20]]
    live = sparse.csr_matrix(([100.0, 200.0], ([0, 0], inactive)), shape=(1, dataset.n_items))
    history = UserHistory(weights=live, last_seen=live, strongest=live.astype(np.int8))
    got = model.recommend_explained(np.array([dataset.n_users]), k=12, history=history)
    expected = full.recommend_explained(np.array([dataset.n_users]), k=12, history=history)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(got[2][0]) == set(inactive)


def test_the_on_demand_cache_is_bounded_and_not_pickled(
    sample: tuple[Dataset, ContentModel, ContentModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recsys_cli.models import content

    dataset, model, full = sample
    fresh = ContentModel().fit(dataset)
    monkeypatch.setattr(content, "_CACHED_ROWS", 5)
    inactive = np.flatnonzero(~fresh.precomputed)[:12]
    fresh.similar_items(inactive, k=3)
    assert len(fresh._cache) == 5
    buffer = io.BytesIO()
    joblib.dump(fresh, buffer)
    buffer.seek(0)
    loaded = joblib.load(buffer)
    assert len(loaded._cache) == 0
    np.testing.assert_array_equal(loaded.similar_items(inactive, k=10)[0], full.similar_items(inactive, k=10)[0])


def test_a_model_pickled_before_on_demand_rows_still_loads(small: tuple[Dataset, ContentModel]) -> None:
    dataset, model = small
    state = model.__getstate__()
    del state["precomputed"]
    old = ContentModel.__new__(ContentModel)
    old.__setstate__(state)
    assert old.precomputed.all()
    items = np.arange(dataset.n_items)
    np.testing.assert_array_equal(
        old.similar_items(items, k=3)[0][model.precomputed], model.similar_items(items, k=3)[0][model.precomputed]
    )
