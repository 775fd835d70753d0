"""Recency weighting: every interaction keeps a positive weight, however short the half-life."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_cli.config import load_settings
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
