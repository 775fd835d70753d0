"""The one training code path: events -> Dataset -> three models -> (optionally) a published version.

`recsys train` and `recsys evaluate` both call `fit_models`, so what is evaluated is what is served.
"""

from __future__ import annotations

import copy
import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import __version__, artifacts, publish_guard
from .config import Settings
from .data.events import valid_canonical
from .data.ingest import ingest
from .data.schema import PURCHASE
from .dataset import Dataset
from .errors import InputError
from .live import open_live_store
from .models.base import KeepsCustomers, Recommender, Resumes, declares
from .models.blend import BlendModel
from .models.content import ContentConfig, ContentModel
from .models.popularity import PopularityModel
from .models.together import BoughtTogetherModel
from .publish_guard import GuardConfig
from .selection import build_model, check_model_names, select, wrap_blend
from .service import Precomputed, RecommendationService
from .weighting import WeightingConfig

Progress = Callable[[str], None]
STAGES = ("ingest", "selection", "dataset", "popularity", "content", "collaborative", "lists", "together", "write")
ENGINES = ("local", "spark")


@dataclass
class Trained:
    """Fitted models and what they were fitted on.

    `collaborative` serves warm customers and `few` customers with a short history; either may be
    the popularity model itself when nothing beat popularity for that segment on validation.
    """

    dataset: Dataset
    popularity: PopularityModel
    content: ContentModel
    collaborative: Recommender
    few: Recommender
    selection: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    precomputed: Precomputed | None = None  # every known customer's first lists (router.precomputed)
    together: BoughtTogetherModel | None = None  # products bought in the same basket (bought_together)

    def parts(self) -> dict[str, Any]:
        """What a version stores; a segment model that is another part is stored as that part's name."""
        parts: dict[str, Any] = {"dataset": self.dataset, "popularity": self.popularity, "content": self.content}
        parts["collaborative"] = self._reference(self.collaborative, parts)
        parts["few"] = self._reference(self.few, parts)
        if self.precomputed is not None:
            parts["precomputed"] = self.precomputed
        if self.together is not None:
            parts["together"] = self.together
        return parts

    def fit_together(self, events: pd.DataFrame, settings: Settings, progress: Progress | None = None) -> None:
        """Count the products bought in the same basket (one customer, one day) in `events` (bought_together)."""
        (progress or (lambda stage: None))("together")
        started = time.perf_counter()
        events = events[events["type"].to_numpy() == PURCHASE]  # only purchases fill baskets: map just their ids
        self.together = BoughtTogetherModel(**settings["bought_together"]).fit_purchases(
            self.dataset.n_items,
            self.dataset.users.to_internal(events["customer_id"].to_numpy(dtype=object)),
            self.dataset.items.to_internal(events["product_id"].to_numpy(dtype=object)),
            events["type"].to_numpy(),
            events["timestamp"].to_numpy(),
        )
        self.seconds["together"] = round(time.perf_counter() - started, 3)

    def precompute(self, settings: Settings, progress: Progress | None = None) -> None:
        """Store every known customer's first `router.precomputed` recommendations (0: none)."""
        k = int(settings["router"]["precomputed"])
        if k > 0:
            (progress or (lambda stage: None))("lists")
            started = time.perf_counter()
            budget = float(settings["router"]["precompute_seconds"])
            service = RecommendationService.from_trained(self, settings)
            self.precomputed = service.precompute(k, seconds=budget if budget > 0 else None)
            self.seconds["lists"] = round(time.perf_counter() - started, 3)

    @staticmethod
    def _reference(model: Recommender, parts: dict[str, Any]) -> Any:
        for name, part in parts.items():
            if part is model:
                return name
        return model


def weighting_from(settings: Settings) -> WeightingConfig:
    section = settings["weighting"]
    scheme = {name: tuple(float(v) for v in section[name]) for name in ("view_product", "add_to_cart", "purchase_item")}
    half_life = float(section["half_life_days"]) or None
    return WeightingConfig(scheme=scheme, half_life_days=half_life)


def content_config(settings: Settings) -> ContentConfig:
    return ContentConfig(**settings["content"])


def fit_models(
    events: pd.DataFrame, catalog: pd.DataFrame, settings: Settings, progress: Progress | None = None, *, publish: bool = False
) -> Trained:
    """Choose the models on a validation split (unless settings fix them), then fit them on all events.

    `publish` (train's fit, which becomes a version) also stores what models keep per customer
    for serving (`KeepsCustomers`); evaluation and tuning fits skip it."""
    progress = progress or (lambda stage: None)
    seconds: dict[str, float] = {}
    weighting = weighting_from(settings)

    def timed(stage: str, build: Callable[[], Any]) -> Any:
        progress(stage)
        started = time.perf_counter()
        result = build()
        seconds[stage] = round(time.perf_counter() - started, 3)
        return result

    chosen = timed(
        "selection",
        lambda: select(
            events, catalog, settings, build_dataset=lambda part: Dataset.construct(part, catalog, weighting), progress=progress
        ),
    )
    dataset = timed("dataset", lambda: Dataset.construct(events, catalog, weighting))
    popularity = timed("popularity", lambda: PopularityModel(**chosen.popularity).fit(dataset))
    content = timed("content", lambda: ContentModel(content_config(settings)).fit(dataset))

    def fit_segments() -> tuple[Recommender, Recommender]:
        models: dict[str, Recommender] = {}
        calibration = (np.arange(dataset.n_users), dataset.history())

        def popular(options: dict[str, Any]) -> PopularityModel:
            if options == chosen.popularity:
                return popularity
            key = f"popularity/{sorted(options.items())}"
            if key not in models:
                models[key] = PopularityModel(**options).fit(dataset)
            return models[key]

        def fitted(spec: dict[str, Any]) -> Recommender:
            if spec.get("pair"):
                first = {k: v for k, v in spec.items() if k not in ("pair", "mix")}
                return BlendModel(fitted(first), fitted(spec["pair"]), float(spec["mix"])).calibrate(*calibration)
            if spec["kind"] == "popularity":
                return popular(spec.get("popularity", chosen.popularity))
            if spec["kind"] == "content":
                return content
            key = f"{spec['kind']}/{sorted((spec.get('params') or {}).items())}"
            if key not in models:
                model, state = build_model(spec, settings), chosen.resume_state(spec)
                models[key] = model.fit(dataset, resume=state) if state is not None and declares(model, Resumes) else model.fit(dataset)
                if publish and declares(models[key], KeepsCustomers):
                    models[key].keep_customers()
            model = models[key]
            if hasattr(model, "decay") and model.decay != spec.get("decay", model.decay):
                # the recency decay only changes scoring: one fit serves both segments
                model = copy.copy(model)
                model.decay = float(spec["decay"])
            return wrap_blend(model, spec, popular(spec.get("popularity", chosen.popularity)), calibration)

        return fitted(chosen.warm), fitted(chosen.few)

    collaborative, few = timed("collaborative", fit_segments)
    return Trained(
        dataset=dataset,
        popularity=popularity,
        content=content,
        collaborative=collaborative,
        few=few,
        selection=chosen.to_dict(),
        seconds=seconds,
    )


@dataclass(frozen=True)
class TrainOutcome:
    version: str | None
    skipped: bool
    fingerprint: str
    seconds: dict[str, float]
    summary: dict
    selection: dict = field(default_factory=dict)


def engine_of(settings: Settings) -> str:
    """training.engine, checked (and, for spark, the model choice it allows) before any work."""
    engine = settings["training"]["engine"]
    if engine not in ENGINES:
        raise InputError(f"training.engine must be one of {', '.join(ENGINES)}, not '{engine}'")
    if engine == "spark":
        from .engines.spark import Plan

        Plan.from_settings(settings)
    return engine


def training_fingerprint(snapshot_fingerprint: str, live_watermark: tuple[int, int], settings: Settings) -> str:
    """Inputs + live events + effective settings: equal fingerprints train equal models."""
    payload = json.dumps({"snapshot": snapshot_fingerprint, "live": live_watermark, "settings": settings.to_dict()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def train(
    data_dir: Path,
    artifacts_dir: Path,
    settings: Settings,
    *,
    fmt: str = "canonical",
    encoding: str = "utf8",
    strict: bool = False,
    if_changed: bool = False,
    wait: bool = False,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
    guard: GuardConfig | None = None,
    live_store: str | None = None,
) -> TrainOutcome:
    """Ingest (reusing an unchanged snapshot), fit, publish a new version and switch `current` to it.

    Live events come from `live_store` (a postgresql:// URL) or, when None, the SQLite store in `data_dir`.
    """
    progress = progress or (lambda stage: None)
    log = log or (lambda message: None)
    check_model_names(settings)  # a typo fails before ingest, not after it
    engine = engine_of(settings)
    started = time.perf_counter()
    with artifacts.train_lock(artifacts_dir, wait=wait):
        progress("ingest")
        live = open_live_store(data_dir, live_store)
        snapshot = ingest(
            data_dir, artifacts_dir, fmt=fmt, strict=strict, encoding=encoding, log=log, locked=True, forgotten=live.forgotten()
        )
        ingest_seconds = round(time.perf_counter() - started, 3)
        watermark = live.watermark()
        fingerprint = training_fingerprint(snapshot.fingerprint, watermark, settings)
        current = artifacts.current_version(artifacts_dir)
        if if_changed and current is not None:
            try:
                manifest = artifacts.verify(artifacts_dir / artifacts.VERSIONS_DIR / current)
            except Exception:  # a broken current version is a reason to train, not to stop
                manifest = {}
            if manifest.get("input_fingerprint") == fingerprint:
                log(f"inputs and settings unchanged since version {current}: nothing to do")
                return TrainOutcome(version=current, skipped=True, fingerprint=fingerprint, seconds={}, summary=snapshot.summary)
        live_events, rejected = valid_canonical(live.to_frame(), now=time.time())
        if len(rejected):
            log(f"ignoring {len(rejected):,} live events that ingest would reject (first: {rejected.iloc[0]})")
        if len(live_events):
            log(f"including {len(live_events):,} live events from {live.where}")

        def all_events() -> pd.DataFrame:
            return pd.concat([snapshot.events(), live_events], ignore_index=True) if len(live_events) else snapshot.events()

        if engine == "spark":
            from .engines.spark import fit_models_spark, session

            with session(settings) as spark:
                events_uri = str(snapshot.path / "events.parquet")
                trained, n_events = fit_models_spark(
                    spark, events_uri, live_events, snapshot.catalog(), settings, weighting_from(settings), progress
                )
        else:
            events = all_events()
            trained = fit_models(events, snapshot.catalog(), settings, progress, publish=True)
            n_events = len(events)
        trained.precompute(settings, progress)
        if engine == "spark":  # Spark read the snapshot itself; baskets need the events on the driver
            events = all_events()
        trained.fit_together(events, settings, progress)
        progress("write")
        write_started = time.perf_counter()
        seconds = {"ingest": ingest_seconds, **trained.seconds}
        manifest = {
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "input_fingerprint": fingerprint,
            "snapshot_fingerprint": snapshot.fingerprint,
            "live_events": watermark[0],
            "data_dir": str(data_dir),
            "engine": engine,
            "settings": settings.to_dict(),
            "settings_sources": settings.sources,
            "collaborative_model": trained.collaborative.name,
            "few_model": trained.few.name,
            "selection": trained.selection,
            "counts": {
                "events": int(n_events),
                "customers": trained.dataset.n_users,
                "products": trained.dataset.n_items,
                "pairs": int(len(trained.dataset.pairs)),
            },
            "training_seconds": seconds,
            "versions": _library_versions(),
        }
        publish_guard.check(artifacts_dir, manifest["counts"], snapshot.summary, guard, log=log)
        version = artifacts.publish(artifacts_dir, trained.parts(), manifest, keep=int(settings["artifacts"]["keep"]))
        seconds["write"] = round(time.perf_counter() - write_started, 3)
        seconds["total"] = round(time.perf_counter() - started, 3)
        return TrainOutcome(
            version=version, skipped=False, fingerprint=fingerprint, seconds=seconds, summary=snapshot.summary, selection=trained.selection
        )


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"recsys": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "joblib", "lightfm-next", "pyspark"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
