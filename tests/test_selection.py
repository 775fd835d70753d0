"""Train-time selection: the winner on the shop's own validation split serves each segment."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recsys_cli.config import load_settings
from recsys_cli.dataset import Dataset
from recsys_cli.errors import InputError
from recsys_cli.selection import select, validation_split, winners
from recsys_cli.service import POPULARITY, SOURCES, RecommendationService
from recsys_cli.training import fit_models, weighting_from

FAST = {"selection": {"candidates": ["itemknn", "rp3beta"], "decays": [1.0, 0.5], "blend_weights": [0.25], "max_users": 500}}


def paired_events(seed: int = 0, customers: int = 400, pairs: int = 30) -> pd.DataFrame:
    """Products come in pairs (a_i, b_i): whoever buys a_i buys b_i a while later. Popularity is
    flat, so only a model that learned the pairs can predict what a customer does next."""
    rng = np.random.default_rng(seed)
    span = 1_000_000
    rows = []
    for c in range(customers):
        for pair in rng.choice(pairs, 6, replace=False):
            t = 1_700_000_000 + int(rng.integers(0, int(0.7 * span)))
            rows.append((f"c{c}", f"a{pair}", 2, t))
            rows.append((f"c{c}", f"b{pair}", 2, t + span // 4))
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])


def skewed_random_events(seed: int = 0, customers: int = 600, products: int = 200) -> pd.DataFrame:
    """Each customer picks products independently by a steep popularity law: nothing to learn
    about who goes with what, so no model can beat plain popularity."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, products + 1) ** 1.2
    weights /= weights.sum()
    rows = []
    for c in range(customers):
        for j, p in enumerate(rng.choice(products, 8, replace=False, p=weights)):
            rows.append((f"c{c}", f"p{p}", 0, 1_700_000_000 + c * 50 + j * 5 + int(rng.integers(0, 30_000))))
    return pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])


def _select(events: pd.DataFrame, overrides: dict | None = None):
    settings = load_settings(environ={}, overrides={**FAST, **(overrides or {})})
    catalog = pd.DataFrame({"product_id": pd.unique(events["product_id"])})
    weighting = weighting_from(settings)
    return select(events, catalog, settings, build_dataset=lambda part: Dataset.construct(part, catalog, weighting))


def test_selection_picks_the_model_that_learned_the_planted_pairs():
    chosen = _select(paired_events())
    assert chosen.warm["kind"] in ("itemknn", "rp3beta")
    rows = {row["segment"]: row for row in winners(chosen.to_dict())}
    assert rows["warm"]["ndcg"] > 2 * rows["warm"]["best_popularity"]
    assert any(r["candidate"].startswith("popularity") for r in chosen.table), "popularity is always a candidate"


def test_a_segment_goes_to_popularity_when_no_model_beats_it():
    chosen = _select(skewed_random_events())
    table = {row["candidate"]: row for row in chosen.table}
    for segment, spec in (("few", chosen.few), ("warm", chosen.warm)):
        best_pop = max(r[segment] for r in chosen.table if r["role"] == "popularity" and segment in r)
        if spec["kind"] == "popularity":
            continue
        # a model may serve the segment only if it scored above popularity there
        label = next(r["candidate"] for r in chosen.table if segment in r.get("chosen_for", []))
        assert table[label][segment] > best_pop


def test_fixed_choices_skip_the_search():
    chosen = _select(paired_events(), {"router": {"collaborative": "itemknn", "few": "same"}, "popularity": {"mode": "customers"}})
    assert chosen.warm == {"kind": "itemknn", "decay": 1.0} and chosen.few == chosen.warm
    assert [r["role"] for r in chosen.table] == ["popularity"], "only the fixed popularity ranking is scored"


def test_validation_split_is_leave_last_when_timestamps_restart_per_customer():
    rows = [(f"c{c}", f"p{(c + j) % 50}", 2, 1_500_000_000 + j * 86_400) for c in range(40) for j in range(5)]
    events = pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])
    assert validation_split(events).kind == "last"
    assert validation_split(paired_events()).kind == "temporal"


def test_selection_split_setting_chooses_what_next_means():
    events = paired_events()
    assert validation_split(events, "last").kind == "last"
    chosen = _select(events, {"selection": {**FAST["selection"], "split": "last"}})
    # each customer's own last product: every validation customer has a history, none is cold
    assert chosen.split.startswith("last") and "'cold': 0" in chosen.split
    assert _select(events).split.startswith("temporal")


def test_a_temporal_split_that_cannot_be_made_is_an_error_naming_the_setting():
    events = paired_events()
    events.loc[events["timestamp"] >= events["timestamp"].quantile(0.7), "timestamp"] = events["timestamp"].max()  # the newest 30% at once
    assert validation_split(events).kind == "last", "auto falls back to each customer's last product"
    with pytest.raises(InputError, match="selection.split = temporal: .*share one timestamp; set selection.split to last or auto"):
        _select(events, {"selection": {**FAST["selection"], "split": "temporal"}})  # asked by name: train says it cannot


def test_a_last_item_split_with_nothing_new_to_predict_is_no_evidence():
    # every customer's last event repeats a product they had viewed: the harness's rule counts no truth
    rows = [(f"c{c}", p, 0, 1_700_000_000 + 10 * j) for c in range(20) for j, p in enumerate(["p1", "p2", "p3"])]
    rows += [(f"c{c}", "p1", 2, 1_700_000_100) for c in range(20)]
    events = pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])
    with pytest.raises(InputError, match="selection.split = last: no product held out by the last split is new"):
        _select(events, {"selection": {**FAST["selection"], "split": "last"}})
    chosen = _select(events)  # auto (every customer starts at one moment: the last-item split): no search, popularity
    assert chosen.split.startswith("none: no product held out by the last split is new")
    assert chosen.few["kind"] == chosen.warm["kind"] == "popularity"


def test_an_export_of_a_few_minutes_gets_no_empty_trending_window():
    start = 1_700_000_000
    events = pd.DataFrame(
        [("c1", "p1", 0, start), ("c1", "p2", 2, start + 100), ("c2", "p1", 0, start + 200), ("c2", "p2", 0, start + 300)],
        columns=["customer_id", "product_id", "type", "timestamp"],
    )
    chosen = _select(events)  # 5-25% of 200 seconds: the windows that round to 0 days are not tried
    assert chosen.split.startswith("temporal")
    windows = [float(m) for row in chosen.table for m in re.findall(r"last ([0-9.e-]+) days", row["candidate"])]
    assert all(days > 0 for days in windows)


def test_an_export_too_small_to_hold_anything_out_trains_with_popularity():
    # one moment and nobody with 3 products: neither a temporal nor a last-item split can be made
    events = pd.DataFrame(
        [("c1", "p1", 0, 1_700_000_000), ("c2", "p2", 2, 1_700_000_000), ("c2", "p1", 2, 1_700_000_000)],
        columns=["customer_id", "product_id", "type", "timestamp"],
    )
    chosen = _select(events)
    assert chosen.split.startswith("none:") and "at least 3 distinct products" in chosen.split
    assert chosen.few["kind"] == chosen.warm["kind"] == "popularity" and chosen.table == []
    fixed = _select(events, {"router": {"collaborative": "itemknn", "few": "same"}})
    assert fixed.warm["kind"] == fixed.few["kind"] == "itemknn", "what the settings fix still holds"


def test_the_router_serves_each_segment_with_its_winner():
    events = paired_events()
    catalog = pd.DataFrame({"product_id": pd.unique(events["product_id"])})
    settings = load_settings(
        environ={}, overrides={**FAST, "router": {"collaborative": "itemknn", "few": "popularity", "warm_min_products": 5}}
    )
    trained = fit_models(events, catalog, settings)
    service = RecommendationService.from_trained(trained, settings)
    warm_customer = "c3"  # 12 products
    assert service.recommend(warm_customer, 5)["source"] == "collaborative"
    few_visitor = service.recommend("visitor", 5, viewed=["a1", "b2"])
    assert few_visitor["source"] == SOURCES[POPULARITY]
    assert service.recommend("nobody", 5)["source"] == "popularity"


@pytest.mark.parametrize("mode", ["customers", "interactions", "purchasers"])
def test_products_missing_from_the_catalog_are_never_popular(mode):
    from recsys_cli.models.popularity import PopularityModel

    events = pd.DataFrame(
        [(f"c{i}", "forged", 2, 1_700_000_000 + i) for i in range(30)] + [("c0", "real", 0, 1_700_000_100)],
        columns=["customer_id", "product_id", "type", "timestamp"],
    )
    dataset = Dataset.construct(events, pd.DataFrame({"product_id": ["real", "other"]}))
    model = PopularityModel(mode).fit(dataset)
    ranked = dataset.items.to_external(model.ranking).tolist()
    assert "forged" not in ranked and ranked[0] == "real"


def test_a_misspelt_model_fails_before_any_work(run_cli, tmp_path):
    result = run_cli("train", "--data", tmp_path / "missing", "--artifacts", tmp_path / "art", "--collaborative", "lightfmm")
    assert result.exit_code == 2 and "router.collaborative" in result.stderr and "lightfmm" in result.stderr
    assert not (tmp_path / "art").exists(), "nothing was ingested or written"


def test_a_segment_served_by_another_popularity_ranking_is_labelled_popularity():
    events = paired_events()
    catalog = pd.DataFrame({"product_id": pd.unique(events["product_id"])})
    settings = load_settings(environ={}, overrides={**FAST, "router": {"collaborative": "itemknn", "few": "popularity"}})
    trained = fit_models(events, catalog, settings)
    from recsys_cli.models.popularity import PopularityModel

    trained.few = PopularityModel("interactions").fit(trained.dataset)  # not the cold ranking itself
    service = RecommendationService.from_trained(trained, settings)
    result = service.recommend("visitor", 3, viewed=["a1"])
    assert result["source"] == "popularity" and all(item["reason"].startswith("popular") for item in result["items"])


def test_a_trending_ranking_must_beat_all_time_popularity_by_more_than_noise():
    """Without any change in demand, a trending window's lead on validation is noise: cold customers
    keep the all-time ranking (the simplest) unless a window leads it by more than two standard errors."""
    rng = np.random.default_rng(5)
    weights = 1.0 / np.arange(1, 201) ** 1.2
    rows = []
    for c in range(1500):  # steady demand; customers arrive all through the period, so many are new at the cut
        start = 1_700_000_000 + int(rng.integers(0, 1_000_000))
        for j, p in enumerate(rng.choice(200, int(rng.integers(1, 9)), replace=False, p=weights / weights.sum())):
            rows.append((f"c{c}", f"p{p}", 0, start + j * 60))
    chosen = _select(pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"]))
    cold = {row["candidate"]: row["cold"] for row in chosen.table if row["role"] == "popularity"}
    simplest = "popularity (customers)"
    assert simplest in cold and chosen.popularity == {"mode": "customers", "window_days": None}
    assert max(cold.values()) > cold[simplest], "some variant led by chance, so the rule was exercised"


def test_lead_needs_more_than_two_standard_errors():
    from recsys_cli.selection import _leads

    rng = np.random.default_rng(0)
    base = rng.random(400)
    assert _leads(base + 0.05, base)  # every customer gains: a clear lead
    noisy = base + rng.normal(0.0, 1.0, 400)  # spread 1: a standard error of 0.05, five times the 0.01 gain
    assert not _leads(noisy - noisy.mean() + base.mean() + 0.01, base)
    assert not _leads(np.array([1.0]), np.array([0.0])), "one customer is no evidence"


def test_a_shift_in_demand_seen_in_everyone_moves_cold_customers_to_the_trending_ranking():
    """Demand moves from one set of products to another; regular customers show it, the handful of
    new customers at the end are too few to show it on their own."""
    rng = np.random.default_rng(11)
    start, span = 1_700_000_000, 1_000_000
    rows = []
    for c in range(300):
        for t in np.sort(rng.integers(0, span, 10)):
            shifted = t > 0.6 * span
            product = int(rng.integers(20, 40)) if shifted else int(rng.integers(0, 20))
            if rng.random() < 0.3:  # steady sellers keep the all-time ranking plausible
                product = int(rng.integers(40, 45))
            rows.append((f"c{c}", f"p{product}", 2, start + int(t)))
    for c in range(6):  # new at the end, one product each
        rows.append((f"new{c}", f"p{int(rng.integers(20, 40))}", 2, start + span - 1000 * c))
    chosen = _select(pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"]))
    assert chosen.popularity["window_days"] is not None, chosen.table


def test_a_blend_of_two_models_that_clearly_leads_serves_and_train_says_which_were_passed_over():
    """On the planted pairs (seed 1) item kNN blended with RP3beta leads item kNN alone clearly and
    serves the warm customers; every blend passed over is marked in the table."""
    chosen = _select(paired_events(seed=1))
    assert "pair" in chosen.warm, chosen.table
    served = next(r for r in chosen.table if "warm" in r.get("chosen_for", []))
    assert served["warm"] > max(r["warm"] for r in chosen.table if r["role"] == "model" and "warm" in r)
    for row in chosen.table:
        for segment in row.get("within_noise_for", []):
            assert row[segment] > next(r for r in chosen.table if segment in r.get("chosen_for", []))[segment]


def test_train_holds_blends_with_popularity_to_the_noise_rule_as_blends_of_two_models(monkeypatch):
    """Every blend `train` scores, with popularity or with a second model, is one that must lead
    the best single model by more than noise; single models never are."""
    from recsys_cli import selection

    seen: list[set[str]] = []
    real = selection._serving_candidate

    def recording(scored, blends, customers, floor):
        seen.append(set(blends))
        return real(scored, blends, customers, floor)

    monkeypatch.setattr(selection, "_serving_candidate", recording)
    chosen = _select(paired_events(seed=0))
    blends = {r["candidate"] for r in chosen.table if r["role"] == "blend" and "warm" in r}
    assert any("x popularity" in name for name in blends) and any("x popularity" not in name for name in blends)
    assert seen and seen[-1] == blends, (seen, blends)


def test_a_blend_must_lead_the_best_single_model_by_more_than_noise():
    """Which candidate serves a segment, from each candidate's per-customer validation scores: a
    blend (two models, or a model with popularity: two lists scored and merged at every request)
    only when its lead over the best single model that beats popularity is more than two standard
    errors."""
    from recsys_cli.selection import _serving_candidate

    rng = np.random.default_rng(0)
    single = rng.random(500)
    noisy = single + rng.normal(0.0, 0.5, 500)
    noisy += single.mean() + 0.01 - noisy.mean()  # ahead by 0.01 with a standard error of 0.02
    clear = single + 0.05  # every customer gains
    scores = {"ease": single, "ease + 0.25 x als": noisy, "ease + 0.5 x als": clear}

    def serving(names, floor=0.0):
        scored = [(float(scores[n].mean()), n) for n in names]
        return _serving_candidate(scored, {n for n in names if "+" in n}, scores, floor)

    assert serving(["ease", "ease + 0.25 x als"]) == ("ease", ["ease + 0.25 x als"])
    assert serving(["ease", "ease + 0.5 x als"]) == ("ease + 0.5 x als", [])
    wide = single + rng.normal(0.0, 1.2, 500)
    scores["ease + 0.25 x als"] = wide + single.mean() + 0.06 - wide.mean()  # the best-scoring blend: noise (SE ~0.05)
    assert serving(["ease", "ease + 0.25 x als", "ease + 0.5 x als"]) == ("ease + 0.5 x als", ["ease + 0.25 x als"])
    # a model blended with popularity is held to the same rule
    scores["ease + 0.1 x popularity (customers)"] = noisy
    assert serving(["ease", "ease + 0.1 x popularity (customers)"]) == ("ease", ["ease + 0.1 x popularity (customers)"])
    scores["ease + 0.1 x popularity (customers)"] = clear
    assert serving(["ease", "ease + 0.1 x popularity (customers)"]) == ("ease + 0.1 x popularity (customers)", [])
    # nothing cheaper beats popularity: the blend is only held to the popularity floor
    assert serving(["ease", "ease + 0.25 x als"], floor=1.0) == ("ease + 0.25 x als", [])
    assert serving([]) == ("", [])


def test_train_fits_the_chosen_als_from_where_selection_left_it():
    """The final fit of a model selection already fitted on the validation split starts from that
    fit (ALS: its item factors, product by product) and runs `resumed_iterations`: with none, the
    published factors are selection's for every product it knew."""
    events = paired_events()
    catalog = pd.DataFrame({"product_id": pd.unique(events["product_id"])})
    overrides = {"selection": {**FAST["selection"], "candidates": ["als"], "blend_weights": []}, "als": {"factors": 8, "num_threads": 1}}
    chosen = _select(events, overrides)
    assert chosen.warm["kind"] == "als" and list(chosen.states) == ["als"], chosen.table
    products, factors = chosen.states["als"]
    for iterations in (0, 2):
        settings = load_settings(environ={}, overrides={**FAST, **overrides, "als": {**overrides["als"], "resumed_iterations": iterations}})
        trained = fit_models(events, catalog, settings)
        got = trained.collaborative.item_factors[trained.dataset.items.to_internal(products)]
        assert np.array_equal(got, factors) == (iterations == 0)
