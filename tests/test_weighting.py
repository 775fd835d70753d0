"""Recency weighting: every interaction keeps a positive weight, however short the half-life."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_cli.config import load_settings
from recsys_cli.errors import InputError
from recsys_cli.service import RecommendationService
from recsys_cli.weighting import WeightingConfig, pair_weights

from .conftest import train_copy


def test_a_tiny_half_life_keeps_old_interactions_positive():
    pairs = {
        "n_view": np.array([1, 0, 2]),
        "n_cart": np.array([0, 0, 0]),
        "n_purchase": np.array([0, 1, 0]),
        "last_ts": np.array([0, 10**9, 2 * 10**9]),
    }
    weights = pair_weights(pairs, WeightingConfig(half_life_days=0.05))
    assert (weights > 0).all()
    assert weights[2] == 2.0  # the newest interaction is not decayed
    assert weights[1] > weights[0]  # equally ancient: the purchase still outweighs the view


def test_warm_customers_get_recommendations_with_a_tiny_half_life(tmp_path):
    environ = {"RECSYS_WEIGHTING__HALF_LIFE_DAYS": "0.05"}
    data, artifacts = train_copy(tmp_path, environ)
    assert load_settings(environ=environ)["weighting"]["half_life_days"] == 0.05
    service = RecommendationService.load(artifacts)
    warm = pd.read_csv(data / "events.csv", dtype=str)["customer_id"].value_counts().index[:300]
    results = [service.recommend(customer, 10) for customer in warm]  # raised "operands could not be broadcast" before
    assert all(len(result["items"]) == 10 for result in results)


def _pairs(**columns: list[int]) -> dict[str, np.ndarray]:
    base = {"n_view": [0], "n_cart": [0], "n_purchase": [0], "last_ts": [0]}
    size = max(len(values) for values in columns.values())
    return {name: np.array(columns.get(name, base[name] * size)) for name in base}


def test_the_default_scheme_counts_once_or_several_and_the_strongest_event_wins():
    pairs = _pairs(n_view=[1, 2, 5, 0, 0, 0, 3], n_cart=[0, 0, 0, 1, 2, 0, 2], n_purchase=[0, 0, 0, 0, 0, 1, 2])
    assert pair_weights(pairs, WeightingConfig()).tolist() == [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_a_custom_scheme_is_used_as_given():
    scheme = {"view_product": (0.5, 0.75), "add_to_cart": (2.0, 2.5), "purchase_item": (10.0, 20.0)}
    pairs = _pairs(n_view=[1, 2, 0], n_cart=[0, 1, 0], n_purchase=[0, 0, 2])
    assert pair_weights(pairs, WeightingConfig(scheme=scheme)).tolist() == [0.5, 2.0, 20.0]


def test_a_half_life_halves_the_weight_per_half_life_of_age():
    day = 86400
    pairs = _pairs(n_view=[1, 1, 1], last_ts=[10 * day, 9 * day, 8 * day])
    weights = pair_weights(pairs, WeightingConfig(half_life_days=1.0))
    assert np.allclose(weights, [1.0, 0.5, 0.25])
    reference = pair_weights(pairs, WeightingConfig(half_life_days=1.0), now=12 * day)  # age from `now`, not the newest event
    assert np.allclose(reference, [0.25, 0.125, 0.0625])


def test_without_a_half_life_age_does_not_matter():
    pairs = _pairs(n_view=[1, 1], last_ts=[0, 2 * 10**9])
    assert pair_weights(pairs, WeightingConfig()).tolist() == [1.0, 1.0]


def test_no_pairs_give_no_weights():
    empty = {
        "n_view": np.array([], dtype=int),
        "n_cart": np.array([], dtype=int),
        "n_purchase": np.array([], dtype=int),
        "last_ts": np.array([], dtype=int),
    }
    assert pair_weights(empty, WeightingConfig(half_life_days=1.0)).shape == (0,)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scheme": {"view_product": (1.0, 2.0)}}, "lacks event types: add_to_cart, purchase_item"),
        ({"half_life_days": 0}, "half_life_days must be positive"),
        ({"half_life_days": -3.0}, "half_life_days must be positive"),
    ],
)
def test_an_unusable_weighting_config_is_an_input_error(options, message):
    with pytest.raises(InputError, match=message):
        WeightingConfig(**options)
