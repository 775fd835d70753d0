"""The router as users meet it: sources, reasons, exclusions, fill-up, ids (never indices)."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_cli.config import load_settings
from recsys_cli.errors import InputError, NotFoundError
from recsys_cli.service import CONTENT, POPULARITY, SOURCES, Filters, RecommendationService


def customers_with(service: RecommendationService, low: int, high: int) -> np.ndarray:
    distinct = np.diff(service.dataset.interactions.indptr)
    return np.flatnonzero((distinct >= low) & (distinct <= high))


def test_routes_by_history(service):
    warm = service.dataset.users.external_ids[customers_with(service, 10, 10_000)[0]]
    one = service.dataset.users.external_ids[customers_with(service, 1, 1)[0]]
    product = service.dataset.items.external_ids[service.popularity.ranking[0]]
    few_source = SOURCES[service.source_of(service.few)]
    # on the sample, selection sends warm customers to a collaborative model
    assert service.recommend(warm, 10)["source"] == "collaborative"
    assert service.recommend(one, 10)["source"] == few_source
    assert service.recommend("never-seen-customer", 10)["source"] == "popularity"
    assert service.recommend("never-seen-customer", 10, viewed=[product])["source"] == few_source


def test_threshold_sends_thin_histories_to_content(service):
    settings = load_settings(environ={}, overrides={"router": {"warm_min_products": 3}})
    strict = RecommendationService(service.dataset, service.popularity, service.content, service.collaborative, settings)
    few = service.dataset.users.external_ids[customers_with(service, 1, 2)[0]]
    assert strict.recommend(few, 10)["source"] == "content"


def test_every_item_has_product_id_score_rank_source_reason(service):
    customer = service.dataset.users.external_ids[0]
    result = service.recommend(customer, 10)
    assert result["model_version"] == service.version
    assert [item["rank"] for item in result["items"]] == list(range(1, 11))
    catalog_ids = set(service.dataset.items.external_ids)
    for item in result["items"]:
        assert {"product_id", "score", "rank", "source", "reason"} <= set(item)
        assert {key: item[key] for key in ("brand", "category_path", "price") if key in item} == {
            key: value for key, value in service.product(item["product_id"]).items() if key in ("brand", "category_path", "price")
        }
        assert isinstance(item["product_id"], str) and item["product_id"] in catalog_ids
        assert item["reason"]


def test_returns_product_ids_not_internal_indices(service):
    """The original returned LightFM's internal indices; ids here are catalog ids (e.g. '10117', not 0..n)."""
    users = customers_with(service, 3, 10_000)[:50]
    for user in users:
        result = service.recommend(service.dataset.users.external_ids[user], 10)
        internal = service.dataset.items.to_internal([i["product_id"] for i in result["items"]])
        assert (internal >= 0).all()
        assert [i["product_id"] for i in result["items"]] == list(service.dataset.items.external_ids[internal])
    # product ids in the sample are 5-digit numbers while internal indices are < 1,500
    assert all(int(i["product_id"]) >= 10_000 for i in service.recommend(service.dataset.users.external_ids[users[0]], 10)["items"])


def test_excludes_what_the_customer_interacted_with_and_never_duplicates(service):
    for user in customers_with(service, 1, 10_000)[:200]:
        customer = service.dataset.users.external_ids[user]
        seen = set(service.dataset.items.external_ids[service.dataset.interactions[user].indices])
        ids = [i["product_id"] for i in service.recommend(customer, 30)["items"]]
        assert len(ids) == len(set(ids)) == 30
        assert not seen & set(ids)


def test_purchases_only_exclusion_is_configurable(sample_artifacts):
    from recsys_cli.config import load_settings

    base = RecommendationService.load(sample_artifacts[1])
    settings = load_settings(
        environ={}, overrides={**base.settings.to_dict(), "router": {**base.settings["router"], "exclude": ["purchase_item"]}}
    )
    service = RecommendationService(base.dataset, base.popularity, base.content, base.collaborative, settings)
    history = service.dataset.history()
    purchased = history.strongest.multiply(history.strongest == 3)
    for user in np.flatnonzero(np.diff(purchased.tocsr().indptr))[:100]:
        bought = set(service.dataset.items.external_ids[purchased.tocsr()[user].indices])
        ids = {i["product_id"] for i in service.recommend(service.dataset.users.external_ids[user], 50)["items"]}
        assert not bought & ids


@pytest.fixture
def content_router(service):
    """The sample's models with content similarity serving short histories (router.few = content)."""
    return RecommendationService(service.dataset, service.popularity, service.content, service.collaborative, service.settings)


def test_short_lists_are_filled_from_the_next_model(content_router):
    """n larger than the content model can offer: popularity fills up, no duplicates."""
    service = content_router
    product = service.dataset.items.external_ids[service.popularity.ranking[3]]
    result = service.recommend("visitor", 400, viewed=[product])
    sources = [i["source"] for i in result["items"]]
    assert len(result["items"]) == 400
    assert sources[0] == "content" and "popularity" in sources
    assert set(sources[sources.index("popularity") :]) == {"popularity"}
    assert len({i["product_id"] for i in result["items"]}) == 400
    assert product not in {i["product_id"] for i in result["items"]}


def test_content_reason_names_the_history_product_and_the_event(content_router):
    service = content_router
    first, second = service.dataset.items.external_ids[[10, 20]]
    result = service.recommend("visitor", 6, viewed=[first, second])
    anchors = [i["reason"] for i in result["items"]]
    # round-robin over the session, most recent first
    assert anchors[0] == f"similar to {second}, which you viewed"
    assert anchors[1] == f"similar to {first}, which you viewed"
    assert all(i["source"] == "content" for i in result["items"])


def test_unknown_viewed_product_is_not_found(service):
    with pytest.raises(NotFoundError, match="unknown product 'nope'"):
        service.recommend("visitor", 5, viewed=["nope"])


def test_popularity_reason_and_order(service):
    result = service.recommend("nobody-at-all", 5)
    assert [i["product_id"] for i in result["items"]] == [p["product_id"] for p in service.popular(5)]
    assert all(i["reason"].startswith("popular") for i in result["items"])


@pytest.mark.parametrize("n", [0, 1001, -3, "ten", 2.5])
def test_n_out_of_range_is_a_clear_error(service, n):
    with pytest.raises(InputError, match="n must be"):
        service.recommend("x", n)


def test_unknown_product_is_not_found(service):
    with pytest.raises(NotFoundError, match="unknown product 'nope'"):
        service.similar("nope", 5)
    with pytest.raises(NotFoundError):
        service.similarity(service.dataset.items.external_ids[0], "nope")


def test_similar_and_similarity_agree(service):
    product = service.dataset.items.external_ids[service.popularity.ranking[0]]
    similar = service.similar(product, 5)
    assert product not in {s["product_id"] for s in similar}
    pair = service.similarity(product, similar[0]["product_id"])
    assert pair["similarity"] == pytest.approx(similar[0]["score"], abs=1e-4)
    assert set(pair["parts"]) >= {"category", "brand", "gender", "price"}


def test_filters_apply_before_the_cut(service):
    customer = service.dataset.users.external_ids[customers_with(service, 3, 10_000)[0]]
    brand = service.dataset.catalog["brand"].value_counts().index[0]
    result = service.recommend(customer, 10, filters=Filters(brand=brand, max_price=100.0))
    assert len(result["items"]) == 10
    for item in result["items"]:
        info = service.product(item["product_id"])
        assert info["brand"] == brand and info["price"] <= 100.0
    top = service.recommend(customer, 3)["items"][0]["product_id"]
    again = service.recommend(customer, 3, filters=Filters(exclude=(top,)))
    assert top not in {i["product_id"] for i in again["items"]}


def test_a_repeated_filter_gives_the_same_products_after_an_exclusion(service):
    """Filter masks are kept per brand between requests: excluding a product in one request must
    not remove it from the next request's brand filter."""
    customer = service.dataset.users.external_ids[customers_with(service, 3, 10_000)[0]]
    brand = service.dataset.catalog["brand"].value_counts().index[0]
    first = service.recommend(customer, 5, filters=Filters(brand=brand))
    top = first["items"][0]["product_id"]
    excluded = service.recommend(customer, 5, filters=Filters(brand=brand, exclude=(top,)))
    assert top not in {i["product_id"] for i in excluded["items"]}
    assert service.recommend(customer, 5, filters=Filters(brand=brand)) == first
    two = service.filter_mask(Filters(brand=(brand, "no such brand")))
    assert two.sum() == (service.dataset.catalog["brand"] == brand).sum()
    two[:] = False  # the caller's copy: the kept mask is untouched
    assert service.filter_mask(Filters(brand=(brand, "no such brand"))).sum() == (service.dataset.catalog["brand"] == brand).sum()


def test_batch_equals_single_calls(service):
    customers = list(service.dataset.users.external_ids[:300]) + ["unknown-1"]
    batch = {r["customer_id"]: r for r in service.recommend_many(customers, 10)}
    for customer in customers[::37] + ["unknown-1"]:
        single = service.recommend(customer, 10)
        assert [i["product_id"] for i in batch[customer]["items"]] == [i["product_id"] for i in single["items"]]
        assert batch[customer]["source"] == single["source"]


def test_route_internal_arrays_have_no_duplicates(service):
    users = np.arange(service.dataset.n_users)
    routed = service.route(users, service.dataset.history(users), 20)
    assert (routed.ids >= 0).all()
    ordered = np.sort(routed.ids, axis=1)
    assert not (ordered[:, 1:] == ordered[:, :-1]).any()
    assert set(np.unique(routed.route)) <= {0, CONTENT, POPULARITY}


def test_live_history_overrides(service, tmp_path):
    from recsys_cli.live import LiveStore

    live = LiveStore(tmp_path / "live.sqlite")
    with_live = RecommendationService(
        service.dataset, service.popularity, service.content, service.collaborative, service.settings, live=live
    )
    product = service.dataset.items.external_ids[5]
    assert with_live.recommend("brand-new", 5)["source"] == "popularity"
    live.append([("brand-new", product, 0, 1_700_000_000)])
    result = with_live.recommend("brand-new", 5)
    assert result["source"] == "content"
    assert all(i["reason"] == f"similar to {product}, which you viewed" for i in result["items"])
    warm = service.dataset.users.external_ids[customers_with(service, 5, 10_000)[0]]
    top = with_live.recommend(warm, 5)["items"][0]["product_id"]
    live.append([(warm, top, 2, 1_700_000_001)])
    assert top not in {i["product_id"] for i in with_live.recommend(warm, 5)["items"]}


def _variant(service: RecommendationService, **changes) -> RecommendationService:
    """The same models with other stored lists or live store (default: none of either)."""
    return RecommendationService(
        service.dataset, service.popularity, service.content, service.collaborative, service.settings, few=service.few, **changes
    )


def _without_precomputed(service: RecommendationService) -> RecommendationService:
    return _variant(service)


def _same_list(a: dict, b: dict) -> None:
    """Same source, scores (to float precision, rank by rank) and items; equal scores may swap places."""
    assert a["source"] == b["source"]
    assert [i["score"] for i in a["items"]] == pytest.approx([i["score"] for i in b["items"]], abs=1e-5)
    described = lambda result: {(i["product_id"], i["source"], i["reason"]) for i in result["items"]}  # noqa: E731
    assert described(a) == described(b)


def test_a_trained_version_answers_known_customers_from_its_stored_lists(service):
    """train stores each known customer's first lists; reading them gives what scoring gives."""
    assert service.precomputed is not None and service.precomputed.k >= 10
    scoring = _without_precomputed(service)
    users = np.concatenate([customers_with(service, 1, 4)[:40], customers_with(service, 5, 10_000)[:40]])
    ids = [str(c) for c in service.dataset.users.external_ids[users]]
    for customer in ids:
        for n in (1, 10, service.precomputed.k):
            _same_list(service.recommend(customer, n), scoring.recommend(customer, n))
    for stored, scored in zip(service.recommend_many(ids + ["never-seen"], 10), scoring.recommend_many(ids + ["never-seen"], 10)):
        _same_list(stored, scored)
    for n in (1, 10, 100):  # unknown customers share one list, routed once
        unknown = scoring.route(np.array([-1]), scoring._empty_history, n)
        assert [i["product_id"] for i in service.recommend("never-seen", n)["items"]] == list(
            service.dataset.items.external_ids[unknown.ids[0]]
        )


def test_filters_live_events_and_long_lists_are_scored_not_read(service, tmp_path):
    """What the stored lists cannot know (a filter, a new event, more items than stored) is scored."""
    from recsys_cli.live import LiveStore

    scoring = _without_precomputed(service)
    customer = str(service.dataset.users.external_ids[customers_with(service, 5, 10_000)[0]])
    brand = str(service.dataset.catalog["brand"].dropna().iloc[0])
    filtered = service.recommend(customer, 10, filters=Filters(brand=brand))
    _same_list(filtered, scoring.recommend(customer, 10, filters=Filters(brand=brand)))
    assert all(service.product(i["product_id"]).get("brand") == brand for i in filtered["items"])
    longer = service.precomputed.k + 5
    assert len(service.recommend(customer, longer)["items"]) == longer

    before = service.recommend(customer, 10)
    live = LiveStore(tmp_path / "live.db")
    bought = [i["product_id"] for i in before["items"][:3]]
    live.append([(customer, product, 2, 1_700_000_000 + j) for j, product in enumerate(bought)])  # 2: purchase_item
    with_live = _variant(service, live=live, precomputed=service.precomputed)
    after = with_live.recommend(customer, 10)
    assert not set(bought) & {i["product_id"] for i in after["items"]}  # purchased now, so never recommended again


def test_one_customer_gets_the_list_a_batch_gives_them_under_a_narrow_or_wide_filter(service):
    """One request passes the filter's kept mask with the customer's purchases beside it (models
    drop them from the filter's columns) and ranks only the allowed products; a batch checks
    excluded pairs over every product: the lists are the same."""
    users = np.concatenate([customers_with(service, 1, 4)[:15], customers_with(service, 5, 10_000)[:25]])
    catalog = service.dataset.catalog
    narrow = Filters(brand=str(catalog["brand"].value_counts().index[0]))
    wide = Filters(max_price=float(catalog["price"].quantile(0.9)))
    assert service.filter_mask(narrow).mean() < 0.5 < service.filter_mask(wide).mean()
    for filters in (narrow, wide):
        batch = service.route(users, service.history_rows(users), 10, allowed=service.allowed(filters))
        for row, user in enumerate(users):
            alone = service.recommend(str(service.dataset.users.external_ids[user]), 10, filters=filters)
            valid = batch.ids[row] >= 0
            assert [i["product_id"] for i in alone["items"]] == list(service.dataset.items.external_ids[batch.ids[row][valid]])
            assert [i["score"] for i in alone["items"]] == pytest.approx(batch.scores[row][valid].tolist(), abs=1e-5)


def test_one_customer_with_viewed_products_gets_the_list_a_batch_gives_them(service):
    """A request with a session (viewed products) re-ranks the warm model's candidates on the
    one-customer path; a batch routing the same history and session gives the same list."""
    from scipy import sparse

    from recsys_cli.dataset import UserHistory
    from recsys_cli.models.base import RecommendsOne, declares

    assert declares(service.collaborative, RecommendsOne) and service.session_weight > 0  # else both sides take the batch path
    catalog_ids = service.dataset.items.external_ids
    for offset, user in enumerate(customers_with(service, max(service.warm_min, 5), 10_000)[:12]):
        customer = str(service.dataset.users.external_ids[user])
        viewed = [str(catalog_ids[(7 * offset + j) % len(catalog_ids)]) for j in range(2)]
        alone = service.recommend(customer, 10, viewed=viewed)
        _, history, recent = service.history_for(customer, viewed)
        twice = UserHistory(*(sparse.vstack([m, m], format="csr") for m in (history.weights, history.last_seen, history.strongest)))
        batch = service.route(np.array([user, user]), twice, 10, session=[recent, recent])
        valid = batch.ids[0] >= 0
        assert [i["product_id"] for i in alone["items"]] == list(catalog_ids[batch.ids[0][valid]])
        assert [i["score"] for i in alone["items"]] == pytest.approx(batch.scores[0][valid].tolist(), abs=1e-5)
        assert [i["source"] for i in alone["items"]] == [SOURCES[s] for s in batch.sources[0][valid]]


def test_customers_left_out_of_the_stored_lists_are_scored(service):
    """train's time budget may stop before the least active customers: they are scored instead."""
    from dataclasses import replace

    pre = service.precomputed
    active = np.diff(service.dataset.interactions.indptr)
    assert pre.has(np.arange(service.dataset.n_users)).all()  # the sample fits any budget
    assert (pre.row[np.argsort(-active, kind="stable")] == np.arange(service.dataset.n_users)).all()  # most active first
    least = np.argsort(active, kind="stable")[:30]
    row = pre.row.copy()
    row[least] = -1
    partial = _variant(service, precomputed=replace(pre, row=row))
    scoring = _without_precomputed(service)
    ids = [str(c) for c in service.dataset.users.external_ids[least]]
    for customer in ids[:10]:
        _same_list(partial.recommend(customer, 10), scoring.recommend(customer, 10))
    for stored, scored in zip(partial.recommend_many(ids, 10), scoring.recommend_many(ids, 10)):
        _same_list(stored, scored)


def test_a_visit_seed_varies_the_lower_half_and_keeps_the_top(service):
    """?shuffle=SEED: repeat visits see other products near the bottom; the top stays; a seed repeats."""
    customer = str(service.dataset.users.external_ids[customers_with(service, 5, 10_000)[0]])
    plain = [i["product_id"] for i in service.recommend(customer, 10)["items"]]
    wider = [i["product_id"] for i in service.recommend(customer, 15)["items"]]
    lists = {seed: service.recommend(customer, 10, shuffle=seed) for seed in range(8)}
    for result in lists.values():
        ids = [i["product_id"] for i in result["items"]]
        assert ids[:5] == plain[:5] and len(set(ids)) == 10 and set(ids) <= set(wider)
        assert [i["rank"] for i in result["items"]] == list(range(1, 11))
        assert [wider.index(p) for p in ids] == sorted(wider.index(p) for p in ids)  # still best first
    assert len({tuple(i["product_id"] for i in r["items"]) for r in lists.values()}) > 1
    assert service.recommend(customer, 10, shuffle=3) == lists[3]
    with pytest.raises(InputError, match="shuffle"):
        service.recommend(customer, 10, shuffle="tomorrow")


def test_recently_viewed_folds_in_live_events_newest_first(service, tmp_path):
    from recsys_cli.live import LiveStore

    customer = str(service.dataset.users.external_ids[customers_with(service, 5, 10_000)[0]])
    before = service.recently_viewed(customer, 50)
    assert [i["last_seen"] for i in before] == sorted((i["last_seen"] for i in before), reverse=True)
    live = LiveStore(tmp_path / "live.db")
    fresh = str(service.dataset.items.external_ids[service.popularity.ranking[-1]])
    live.append([(customer, fresh, 1, 2_000_000_000)])  # 1: add_to_cart, in 2033
    after = _variant(service, live=live).recently_viewed(customer, 3)
    assert after[0]["product_id"] == fresh and after[0]["event"] == "add_to_cart" and after[0]["last_seen"].startswith("2033")
    assert service.recently_viewed("never-seen", 5) == []


def test_trending_is_the_rise_of_a_products_share_in_the_window(service):
    pairs = service.dataset.pairs
    span = int(pairs["last_ts"].max() - pairs["last_ts"].min())
    everything = service.trending(20, window=f"{span // 60 + 1440}m")  # a window over all history: nothing rises
    assert all(abs(item["score"] - 1.0) < 0.2 for item in everything)
    recent = service.trending(10, window=f"{max(span // 86400 // 4, 1)}d")
    scores = [item["score"] for item in recent]
    assert scores == sorted(scores, reverse=True) and all(item["customers"] >= 3 for item in recent)
    for window in ("7", "d", "-3d", "7x", "1.2.3d"):
        with pytest.raises(InputError, match="window"):
            service.trending(5, window=window)


def test_the_session_boost_takes_each_products_best_neighbour_score():
    from recsys_cli.service import _best_per_item

    ids = np.array([3, -1, 3, 5, 7])
    scores = np.array([0.2, 0.9, 0.5, 0.1, 0.4], dtype=np.float32)
    np.testing.assert_allclose(_best_per_item(ids, scores, np.array([3, 4, 5])), [0.5, 0.0, 0.1], rtol=1e-6)
    assert _best_per_item(np.array([-1]), np.array([1.0]), np.array([1, 2])).tolist() == [0.0, 0.0]
