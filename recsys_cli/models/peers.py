"""Peer baselines for evaluation: what a user of another library would pick instead, run as they run it."""

from __future__ import annotations

import numpy as np

from ..dataset import Dataset
from ..errors import InputError
from .collaborative import FactorModel, LightFMModel


class ALSModel(FactorModel):
    """implicit's CPU AlternatingLeastSquares (Hu, Koren, Volinsky 2008) on the weighted interactions.

    Configured as implicit's users run it: the weights are the confidences, `alpha` scales them,
    BLAS is limited to one thread during fit as implicit advises. Items without interactions are
    never recommended; customers without interactions get all -1; `history` is ignored.
    """

    name = "als"

    def __init__(
        self,
        *,
        factors: int = 64,
        iterations: int = 15,
        regularization: float = 0.01,
        alpha: float = 1.0,
        random_state: int = 42,
        num_threads: int = 0,
    ) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.random_state = random_state
        self.num_threads = num_threads

    def fit(self, dataset: Dataset) -> "ALSModel":
        """Factorize `dataset.interactions` and keep [factors, 0] per item and [factors, 1] per customer."""
        try:
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError as exc:
            raise InputError("implicit is not installed: pip install implicit") from exc
        from threadpoolctl import threadpool_limits

        matrix = dataset.interactions.tocsr()
        n_users, n_items = matrix.shape
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.random_state,
                num_threads=self.num_threads,
            )
            model.fit(matrix, show_progress=False)
        self.user_vectors = np.hstack([_numpy(model.user_factors), np.ones((n_users, 1))]).astype(np.float32)
        self.item_vectors = np.hstack([_numpy(model.item_factors), np.zeros((n_items, 1))]).astype(np.float32)
        self._covered = np.diff(matrix.indptr) > 0
        self._allowed = np.bincount(matrix.indices, minlength=n_items) > 0
        return self


def _numpy(factors: object) -> np.ndarray:
    """implicit's factors as numpy (GPU models hold implicit.gpu arrays)."""
    to_numpy = getattr(factors, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy is not None else factors)


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
