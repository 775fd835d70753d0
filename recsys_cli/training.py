"""The one training code path: events -> Dataset -> three models -> (optionally) a published version.

`recsys train` and `recsys evaluate` both call `fit_models`, so what is evaluated is what is served.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from .data.ingest import ingest
from .dataset import Dataset
from .live import LiveStore
from .models.base import Recommender
from .models.content import ContentConfig, ContentModel
from .models.popularity import PopularityModel
from .publish_guard import GuardConfig
from .weighting import WeightingConfig

Progress = Callable[[str], None]
STAGES = ("ingest", "dataset", "popularity", "content", "collaborative", "write")


@dataclass
class Trained:
    """Fitted models and what they were fitted on."""

    dataset: Dataset
    popularity: PopularityModel
    content: ContentModel
    collaborative: Recommender
    seconds: dict[str, float] = field(default_factory=dict)

    def parts(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "popularity": self.popularity, "content": self.content, "collaborative": self.collaborative}


def weighting_from(settings: Settings) -> WeightingConfig:
    section = settings["weighting"]
    scheme = {name: tuple(float(v) for v in section[name]) for name in ("view_product", "add_to_cart", "purchase_item")}
    half_life = float(section["half_life_days"]) or None
    return WeightingConfig(scheme=scheme, half_life_days=half_life)


def make_collaborative(settings: Settings, n_items: int) -> Recommender:
    """The collaborative model the settings name (`n_items`: products with interactions)."""
    choice = settings["router"]["collaborative"]
    if choice == "lightfm":
        from .models.collaborative import LightFMModel

        params = dict(settings["lightfm"])
        params["num_threads"] = params["num_threads"] or (os.cpu_count() or 1)
        return LightFMModel(**params)
    from .models.itembased import EASEModel, ItemKNNModel, make_item_based

    if choice == "ease":
        return EASEModel(**settings["ease"])
    if choice == "itemknn":
        return ItemKNNModel(**settings["itemknn"])
    if choice == "item":
        return make_item_based(n_items, **settings["ease"], neighbours=settings["itemknn"]["neighbours"])
    from .errors import InputError

    raise InputError(f"router.collaborative must be lightfm, ease, itemknn or item, not '{choice}'")


def content_config(settings: Settings) -> ContentConfig:
    section = settings["content"]
    return ContentConfig(
        category=section["category"],
        brand=section["brand"],
        gender=section["gender"],
        price=section["price"],
        text=section["text"],
        neighbours=int(section["neighbours"]),
    )


def fit_models(events: pd.DataFrame, catalog: pd.DataFrame, settings: Settings, progress: Progress | None = None) -> Trained:
    """Build the Dataset and fit popularity, content and the configured collaborative model."""
    progress = progress or (lambda stage: None)
    seconds: dict[str, float] = {}

    def timed(stage: str, build: Callable[[], Any]) -> Any:
        progress(stage)
        started = time.perf_counter()
        result = build()
        seconds[stage] = round(time.perf_counter() - started, 3)
        return result

    dataset = timed("dataset", lambda: Dataset.construct(events, catalog, weighting_from(settings)))
    window = float(settings["popularity"]["window_days"]) or None
    popularity = timed("popularity", lambda: PopularityModel(window_days=window).fit(dataset))
    content = timed("content", lambda: ContentModel(content_config(settings)).fit(dataset))
    active_items = int((np.bincount(dataset.pairs["item"], minlength=dataset.n_items) > 0).sum())
    collaborative = timed("collaborative", lambda: make_collaborative(settings, active_items).fit(dataset))
    return Trained(dataset=dataset, popularity=popularity, content=content, collaborative=collaborative, seconds=seconds)


@dataclass(frozen=True)
class TrainOutcome:
    version: str | None
    skipped: bool
    fingerprint: str
    seconds: dict[str, float]
    summary: dict


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
) -> TrainOutcome:
    """Ingest (reusing an unchanged snapshot), fit, publish a new version and switch `current` to it."""
    progress = progress or (lambda stage: None)
    log = log or (lambda message: None)
    started = time.perf_counter()
    with artifacts.train_lock(artifacts_dir, wait=wait):
        progress("ingest")
        snapshot = ingest(data_dir, artifacts_dir, fmt=fmt, strict=strict, encoding=encoding, log=log, locked=True)
        ingest_seconds = round(time.perf_counter() - started, 3)
        live = LiveStore.in_folder(data_dir)
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
        events = snapshot.events()
        live_events = live.to_frame()
        if len(live_events):
            log(f"including {len(live_events):,} live events from {live.path}")
            events = pd.concat([events, live_events], ignore_index=True)
        trained = fit_models(events, snapshot.catalog(), settings, progress)
        progress("write")
        write_started = time.perf_counter()
        seconds = {"ingest": ingest_seconds, **trained.seconds}
        manifest = {
            "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
            "input_fingerprint": fingerprint,
            "snapshot_fingerprint": snapshot.fingerprint,
            "live_events": watermark[0],
            "data_dir": str(data_dir),
            "settings": settings.to_dict(),
            "settings_sources": settings.sources,
            "collaborative_model": trained.collaborative.name,
            "counts": {
                "events": int(len(events)),
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
        return TrainOutcome(version=version, skipped=False, fingerprint=fingerprint, seconds=seconds, summary=snapshot.summary)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"recsys": __version__, "python": platform.python_version()}
    for name in ("numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "joblib", "lightfm-next"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
