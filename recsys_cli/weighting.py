"""Events -> one weight per (customer, product).

The default scheme is the original assignment's: viewed once 1, several times 2, added to
cart once 3, several times 4, purchased once 5, several times 6; the strongest event wins.
An optional recency half-life multiplies each weight by 0.5 ** (age_days / half_life_days),
age measured from the newest event in the data, floored at MIN_DECAY: an interaction, however
old, keeps a positive weight (a float32 weight that underflowed to 0 would vanish from the sparse
matrices, and the weights and strongest-event matrices would no longer line up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError

DEFAULT_SCHEME: dict[str, tuple[float, float]] = {
    "view_product": (1.0, 2.0),
    "add_to_cart": (3.0, 4.0),
    "purchase_item": (5.0, 6.0),
}
MIN_DECAY = 1e-6
"""The smallest recency factor: older interactions all weigh this fraction of their full weight."""


@dataclass(frozen=True)
class WeightingConfig:
    """How events become weights: (once, several times) per event type, and a recency half-life."""

    scheme: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SCHEME))
    half_life_days: float | None = None

    def __post_init__(self) -> None:
        missing = set(DEFAULT_SCHEME) - set(self.scheme)
        if missing:
            raise InputError(f"weighting scheme lacks event types: {', '.join(sorted(missing))}")
        if self.half_life_days is not None and self.half_life_days <= 0:
            raise InputError("weighting half_life_days must be positive")


def pair_weights(pairs: "pd.DataFrame | Mapping[str, np.ndarray]", config: WeightingConfig, now: int | None = None) -> np.ndarray:
    """One float32 weight per row of `pairs` (columns n_view, n_cart, n_purchase, last_ts); the
    counts are whole numbers (aggregated events), each read as never, once or several times."""
    size = len(pairs["n_view"])
    weights = np.zeros(size, dtype=np.float32)
    for column, event in (("n_view", "view_product"), ("n_cart", "add_to_cart"), ("n_purchase", "purchase_item")):
        once, several = config.scheme[event]
        by_count = np.array([0.0, once, several], dtype=np.float32)  # never, once, several times
        counts = np.minimum(np.maximum(np.asarray(pairs[column], dtype=np.int64), 0), 2)  # np.clip: 5x the call cost
        weights = np.maximum(weights, by_count[counts])
    if config.half_life_days is not None and size:
        last = np.asarray(pairs["last_ts"], dtype=np.int64)
        reference = int(last.max()) if now is None else now
        age_days = np.clip(reference - last, 0, None) / 86400.0
        decay = np.maximum(np.power(0.5, age_days / config.half_life_days), MIN_DECAY)
        weights = weights * decay.astype(np.float32)
    return weights
