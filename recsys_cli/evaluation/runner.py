"""One honest offline evaluation: one split, every model ranked over the full catalog, same truth.

The toolkit's models are trained through `training.fit_models` (the code path of `recsys train`)
and the routed hybrid is scored through `RecommendationService.route` (what `recommend`
returns). Baselines and peers exclude every train item and fall back to popularity for
customers they cannot score, like the hybrid.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import sparse

from ..config import Settings
from ..data.schema import EVENT_CODE
from ..dataset import Dataset, UserHistory
from ..errors import InputError
from ..models.base import Recommender
from ..service import RecommendationService, merge_candidates
from ..training import fit_models
from .metrics import auc, evaluate_ranking, popularity_share
from .split import NoSplitError, Split, last_item_split, relevant_truth, segment_labels, temporal_split, truth_matrix

Progress = Callable[[str], None]
SEGMENTS = ("cold", "few", "warm")
WARM_MIN_PRODUCTS = 5  # reporting bands: cold = no train history, few = 1-4 distinct products, warm = 5 or more
AUC_USERS = 2000
PEERS = ("als", "lightfm-plain", "ease", "itemknn")


def deterministic(settings: Settings) -> Settings:
    """The same settings with LightFM on one thread: its parallel SGD is not reproducible run to run."""
    return settings.updated({"lightfm": {"num_threads": 1}}, origin="evaluation")


def make_split(events: pd.DataFrame, *, kind: str = "temporal", test_fraction: float = 0.2, test_days: float | None = None) -> Split:
    try:
        if kind == "last":
            return last_item_split(events)
        return temporal_split(events, test_fraction=test_fraction, test_days=test_days)
    except NoSplitError as error:
        raise InputError(f"{error}; use --split {'temporal' if kind == 'last' else 'last'}") from None


def evaluate(
    events: pd.DataFrame,
    catalog: pd.DataFrame,
    settings: Settings,
    *,
    split: Split,
    ks: tuple[int, ...] = (10, 20),
    relevant: tuple[str, ...] | None = None,
    with_peers: bool = False,
    seed: int = 42,
    progress: Progress | None = None,
    dataset_summary: dict | None = None,
) -> dict:
    """Train on `split.train`, rank for every customer with non-empty truth, return the results dict."""
    progress = progress or (lambda stage: None)
    settings = deterministic(settings)
    rng = np.random.default_rng(seed)
    k_max = max(ks)
    timings: dict[str, float] = {}

    progress("training the toolkit's models")
    started = time.perf_counter()
    trained = fit_models(split.train, catalog, settings)
    train_seconds = time.perf_counter() - started
    service = RecommendationService.from_trained(trained, settings)
    dataset = trained.dataset

    relevant_codes = tuple(EVENT_CODE[name] for name in relevant) if relevant else None
    truth_pairs = relevant_truth(split, relevant_types=relevant_codes)
    test_customers = pd.unique(split.test["customer_id"].astype(object))
    customers = pd.unique(truth_pairs["customer_id"].astype(object))
    users = dataset.users.to_internal(customers)
    truth = truth_matrix(truth_pairs, customers, dataset)
    history = service.history_rows(users)
    train_items = _any_interaction(history)
    labels = segment_labels(np.asarray(customers, dtype=object), split.train, WARM_MIN_PRODUCTS)
    share = popularity_share(np.bincount(dataset.pairs["item"], minlength=dataset.n_items))

    popular_ids, _ = trained.popularity.recommend(np.zeros(1, dtype=np.int64), k=dataset.n_items)
    popular_order = popular_ids[0][popular_ids[0] >= 0]

    def with_fallback(ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        return merge_candidates(ids, scores, lambda rows, k: _popular_excluding(popular_order, train_items[rows], k))

    runs: dict[str, Callable[[], np.ndarray]] = {
        "random": lambda: _random(rng, train_items, dataset.n_items, k_max),
        "popularity": lambda: _popular_excluding(popular_order, train_items, k_max),
        "content": lambda: with_fallback(*trained.content.recommend(users, k=k_max, exclude=train_items, history=history)),
        "collaborative": lambda: with_fallback(*_score(trained.collaborative, users, history, train_items, k_max)),
        "hybrid": lambda: service.route(users, history, k_max).ids,
    }
    scorers: dict[str, Recommender] = {"collaborative": trained.collaborative, "popularity": trained.popularity}
    peer_seconds: dict[str, float] = {}
    if with_peers:
        for name, model in _peers(dataset, settings, progress, peer_seconds):
            scorers[name] = model
            runs[name] = (lambda m: lambda: with_fallback(*_score(m, users, history, train_items, k_max)))(model)

    models: dict[str, dict] = {}
    auc_rows = rng.choice(len(users), size=min(AUC_USERS, len(users)), replace=False) if len(users) else np.zeros(0, dtype=np.int64)
    for name, run in runs.items():
        progress(f"ranking: {name}")
        started = time.perf_counter()
        recommended = run()
        timings[name] = time.perf_counter() - started
        overall = evaluate_ranking(recommended, truth, ks, n_items=dataset.n_items, item_popularity_share=share)
        overall["auc"] = _auc(scorers.get(name), users, history, train_items, truth, auc_rows) if name in scorers else None
        segments = {}
        for segment in SEGMENTS:
            rows = np.flatnonzero(labels == segment)
            if len(rows):
                segments[segment] = evaluate_ranking(
                    recommended[rows], truth[rows], ks, n_items=dataset.n_items, item_popularity_share=share
                )
        seconds = timings[name] + peer_seconds.get(name, 0.0) + (train_seconds if name in ("hybrid",) else 0.0)
        models[name] = {"seconds": round(seconds, 3), "overall": overall, "segments": segments}

    return {
        "dataset": dataset_summary or {},
        "split": {
            "kind": split.kind,
            "cutoff": pd.Timestamp(split.cutoff, unit="s", tz="UTC").isoformat() if split.cutoff is not None else None,
            **split.sizes(),
            "test_customers": int(len(test_customers)),
            "truth_users": int(len(customers)),
            "skipped_empty_truth": int(len(test_customers) - len(customers)),
            "relevant": list(relevant) if relevant else "all event types",
        },
        "ks": list(ks),
        "seed": seed,
        "settings": settings.to_dict(),
        "training_seconds": {k: v for k, v in trained.seconds.items()},
        "models": models,
    }


def _any_interaction(history: UserHistory) -> sparse.csr_matrix:
    matrix = history.weights.copy().tocsr()
    matrix.data = np.ones_like(matrix.data, dtype=np.float32)
    return matrix.astype(np.int8)


def _score(
    model: Recommender, users: np.ndarray, history: UserHistory, exclude: sparse.csr_matrix, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k from a model in chunks (bounded memory); unknown customers get -1 rows."""
    ids = np.full((len(users), k), -1, dtype=np.int64)
    scores = np.full((len(users), k), -np.inf, dtype=np.float32)
    known = np.flatnonzero(users >= 0)
    for start in range(0, len(known), 2000):
        rows = known[start : start + 2000]
        sub = UserHistory(history.weights[rows], history.last_seen[rows], history.strongest[rows])
        ids[rows], scores[rows] = model.recommend(users[rows], k=k, exclude=exclude[rows], history=sub)
    return ids, scores


def _popular_excluding(order: np.ndarray, exclude: sparse.csr_matrix, k: int) -> np.ndarray:
    """The popularity ranking minus each row's excluded items."""
    out = np.full((exclude.shape[0], k), -1, dtype=np.int64)
    head = order[: k + int(np.diff(exclude.indptr).max(initial=0))]
    for row in range(exclude.shape[0]):
        blocked = exclude.indices[exclude.indptr[row] : exclude.indptr[row + 1]]
        kept = head[~np.isin(head, blocked)][:k] if len(blocked) else head[:k]
        out[row, : len(kept)] = kept
    return out


def _random(rng: np.random.Generator, exclude: sparse.csr_matrix, n_items: int, k: int) -> np.ndarray:
    out = np.full((exclude.shape[0], k), -1, dtype=np.int64)
    for row in range(exclude.shape[0]):
        draw = rng.choice(n_items, size=min(n_items, k + 64), replace=False)
        blocked = exclude.indices[exclude.indptr[row] : exclude.indptr[row + 1]]
        kept = draw[~np.isin(draw, blocked)][:k]
        out[row, : len(kept)] = kept
    return out


def _auc(
    model: Recommender | None,
    users: np.ndarray,
    history: UserHistory,
    exclude: sparse.csr_matrix,
    truth: sparse.csr_matrix,
    rows: np.ndarray,
) -> float | None:
    """Mean AUC over a sample of customers, from each model's full ranking of the catalog."""
    if model is None or not len(rows):
        return None
    rows = rows[users[rows] >= 0]
    n_items = exclude.shape[1]
    values = []
    for start in range(0, len(rows), 200):
        chunk = rows[start : start + 200]
        sub = UserHistory(history.weights[chunk], history.last_seen[chunk], history.strongest[chunk])
        ids, _ = model.recommend(users[chunk], k=n_items, history=sub)
        scores = np.full((len(chunk), truth.shape[1]), -np.inf)
        ranks = np.broadcast_to(-np.arange(n_items, dtype=np.float64), ids.shape)
        valid = ids >= 0
        row_index = np.repeat(np.arange(len(chunk)), valid.sum(axis=1))
        scores[row_index, ids[valid]] = ranks[valid]
        padded_exclude = sparse.csr_matrix(
            (exclude[chunk].data, exclude[chunk].indices, exclude[chunk].indptr), shape=(len(chunk), truth.shape[1])
        )
        values.append(auc(scores, truth[chunk], padded_exclude))
    merged = np.concatenate(values) if values else np.zeros(0)
    return float(np.nanmean(merged)) if np.isfinite(merged).any() else None


def _peers(dataset: Dataset, settings: Settings, progress: Progress, seconds: dict[str, float]):
    """The models a user would otherwise pick, configured as their users run them."""
    from ..models.als import ALSModel
    from ..models.collaborative import LightFMModel  # noqa: F401  (ensures lightfm is importable)
    from ..models.itembased import EASEModel, ItemKNNModel
    from ..models.peers import plain_lightfm

    candidates: list[tuple[str, Callable[[], Recommender]]] = [
        ("als", lambda: ALSModel(factors=64, iterations=15, regularization=0.01)),
        ("lightfm-plain", plain_lightfm),
        ("itemknn", lambda: ItemKNNModel(neighbours=100)),
    ]
    active_items = int((np.bincount(dataset.pairs["item"], minlength=dataset.n_items) > 0).sum())
    if active_items <= int(settings["ease"]["max_items"]):
        candidates.insert(2, ("ease", lambda: EASEModel(l2=200.0, max_items=int(settings["ease"]["max_items"]))))
    for name, build in candidates:
        progress(f"training peer: {name}")
        started = time.perf_counter()
        model = build().fit(dataset)
        seconds[name] = time.perf_counter() - started
        yield name, model


TUNE_MODEL_GRID: tuple[dict, ...] = (
    {"router": {"collaborative": "lightfm"}, "weighting": {"half_life_days": 0.0}},
    {"router": {"collaborative": "lightfm"}, "weighting": {"half_life_days": 30.0}},
    {"router": {"collaborative": "item"}, "weighting": {"half_life_days": 0.0}},
    {"router": {"collaborative": "item"}, "weighting": {"half_life_days": 30.0}},
)
TUNE_ROUTER_GRID: tuple[dict, ...] = tuple(
    {"warm_min_products": warm, "exclude": exclude}
    for warm in (1, 2, 3, 5, 8)
    for exclude in (["purchase_item"], ["view_product", "add_to_cart", "purchase_item"])
)


def tune(
    events: pd.DataFrame,
    catalog: pd.DataFrame,
    settings: Settings,
    *,
    split: Split,
    k: int = 10,
    validation_fraction: float = 0.2,
    progress: Progress | None = None,
) -> tuple[dict, list[dict]]:
    """Search model and router settings on a validation split carved from the train part.

    Models are fitted once per model-level candidate; router candidates reuse them. The score
    is the routed hybrid's NDCG@k. Returns (winning overrides, all trials best first).
    """

    progress = progress or (lambda stage: None)
    settings = deterministic(settings)
    inner = make_split(split.train, kind=split.kind, test_fraction=validation_fraction)
    truth_pairs = relevant_truth(inner)
    customers = pd.unique(truth_pairs["customer_id"].astype(object))
    trials = []
    for model_overrides in TUNE_MODEL_GRID:
        candidate = settings.updated(model_overrides, origin="tuning")
        progress(f"tuning: fitting {model_overrides}")
        trained = fit_models(inner.train, catalog, candidate)
        users = trained.dataset.users.to_internal(customers)
        truth = truth_matrix(truth_pairs, customers, trained.dataset)
        share = popularity_share(np.bincount(trained.dataset.pairs["item"], minlength=trained.dataset.n_items))
        for router in TUNE_ROUTER_GRID:
            overrides = {**model_overrides, "router": {**model_overrides.get("router", {}), **router}}
            trial_settings = settings.updated(overrides, origin="tuning")
            service = RecommendationService.from_trained(trained, trial_settings)
            history = service.history_rows(users)
            ids = service.route(users, history, k).ids
            metrics = evaluate_ranking(ids, truth, (k,), n_items=trained.dataset.n_items, item_popularity_share=share)
            trials.append({"settings": overrides, f"ndcg@{k}": metrics[f"ndcg@{k}"], f"recall@{k}": metrics[f"recall@{k}"]})
    trials.sort(key=lambda t: -t[f"ndcg@{k}"])
    return trials[0]["settings"], trials
