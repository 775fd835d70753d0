"""Peer baselines for evaluation: what a user of another library would pick instead, run as they run it."""

from __future__ import annotations

from .collaborative import LightFMModel


def plain_lightfm() -> LightFMModel:
    """LightFM as its users run it: the library's defaults (10 components, learning rate 0.05, no
    regularization, max_sampled 10) with WARP loss and 30 epochs, as in LightFM's README quickstart
    and examples. (LightFM's own defaults are loss="logistic" and fit(epochs=1), which nobody ships.)
    """
    return LightFMModel(
        no_components=10,
        epochs=30,
        loss="warp",
        learning_rate=0.05,
        item_alpha=0.0,
        user_alpha=0.0,
        max_sampled=10,
        num_threads=1,  # LightFM's Hogwild threads make runs irreproducible; evaluation must be deterministic
    )
