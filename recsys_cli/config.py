"""Settings: defaults <- config file (TOML) <- environment (RECSYS_SECTION__KEY) <- CLI options.

One nested mapping, validated against the defaults: unknown sections or keys and values of the
wrong type are errors that name where they came from.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import InputError
from .fsutil import atomic_write

DEFAULT_CONFIG_FILE = "recsys.toml"

DEFAULTS: dict[str, dict[str, Any]] = {
    "weighting": {
        # (once, several times) per event type; the strongest event of a pair wins
        "view_product": [1.0, 2.0],
        "add_to_cart": [3.0, 4.0],
        "purchase_item": [5.0, 6.0],
        "half_life_days": 0.0,  # 0 = no recency decay
    },
    "router": {
        # Which model serves each segment is chosen at train time on a validation split of the shop's
        # own events (see README: How the model is chosen); "auto" searches, a model name fixes it.
        "collaborative": "auto",  # warm customers: auto | itemknn | rp3beta | ease | als | lightfm | item | popularity
        "few": "auto",  # customers with 1 .. warm_min_products - 1 products: auto | same | a model name | content
        "warm_min_products": 5,  # customers with at least this many distinct products are "warm"
        "exclude": ["view_product", "add_to_cart", "purchase_item"],  # never recommend products with these events
        "session_items": 5,  # live products blended into a warm customer's scores
        "session_weight": 0.3,  # weight of similarity to live products in that blend
        # train stores each known customer's first N recommendations; a request for n <= N without
        # filters, live events or a session reads them (same list, no scoring). 0 = always score.
        "precomputed": 20,
        "precompute_seconds": 60.0,  # time budget for those lists, most active customers first (0 = no limit)
    },
    "selection": {
        # models tried for the few and warm segments; `kind:key=value` changes one of its settings.
        # rp3beta and lightfm are available but not tried by default: neither won a segment on the
        # seed preset, MovieLens-100k, Online Retail or Amazon Beauty, and each costs a fit.
        # ease:window=F: EASE fitted on the newest share F of the period, for shops whose tastes move
        "candidates": ["itemknn", "ease", "als", "als:alpha=4", "ease:window=0.5", "ease:window=0.25"],
        "decays": [1.0, 0.8, 0.5, 0.25],  # recency decays of the history tried for item-based models
        "blend_weights": [0.1, 0.25, 0.5, 0.75, 0.9],  # weights of popularity tried in blends with the best models
        "pair_weights": [0.25, 0.5],  # weights of the runner-up model tried in a blend with the best one
        "max_users": 3000,  # validation customers scored per segment (a seeded sample)
        "seed": 42,
    },
    "lightfm": {
        "no_components": 40,
        "epochs": 15,
        "loss": "warp",
        "learning_rate": 0.05,
        "item_alpha": 0.0,
        "user_alpha": 0.0,
        "max_sampled": 10,
        "use_item_features": False,
        "min_item_users": 1,
        "random_state": 42,
        "num_threads": 0,  # 0 = CPU count
    },
    # the model sections (ease, itemknn, rp3beta, als, content) are the models' own keyword defaults:
    # see _model_sections below, so a default is written once, where the model is
    # mode: auto | customers | interactions | purchasers; window_fraction: the most recent share of the
    # training period that counts (0 = all history); window_days does the same in days
    "popularity": {"mode": "auto", "window_fraction": 0.0, "window_days": 0.0},
    "artifacts": {"keep": 3},
    # engine: local (one machine, models chosen on a validation split) | spark (pyspark; models fixed by
    # router.collaborative / router.few, see README: Beyond one machine)
    "training": {"engine": "local"},
    # Spark: master URL, and any Spark property passed through as written ("spark.executor.memory" = "8g")
    "spark": {"master": "local[*]", "app_name": "recsys-train"},
}


def _keywords(cls: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A model class's keyword-only parameters and their defaults."""
    return {
        name: parameter.default
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in skip
    }


def _model_sections() -> dict[str, dict[str, Any]]:
    """Settings sections whose defaults are the models' own (one definition each)."""
    from .models.als import ALSModel
    from .models.content import ContentConfig
    from .models.itembased import EASEModel, ItemKNNModel, RP3betaModel

    return {
        "ease": _keywords(EASEModel, skip=("binary",)),
        "itemknn": _keywords(ItemKNNModel, skip=("binary",)),
        "rp3beta": _keywords(RP3betaModel),
        "als": _keywords(ALSModel),
        "content": {field.name: field.default for field in dataclasses.fields(ContentConfig)},
    }


DEFAULTS.update(_model_sections())
PASSED_THROUGH = {"spark": "spark."}
"""Sections that also take any key with this prefix, as a string (Spark's own properties)."""


class Settings:
    """Effective settings; `sources` says where each non-default value came from."""

    def __init__(self, values: dict[str, dict[str, Any]], sources: dict[str, str]):
        self.values = values
        self.sources = sources

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.values)

    def updated(self, changes: Mapping[str, Mapping[str, Any]], *, origin: str = "command line") -> "Settings":
        """These settings with `changes` on top, checked like any other layer (the one merge)."""
        values, sources = copy.deepcopy(self.values), dict(self.sources)
        _apply(values, sources, {section: dict(entries) for section, entries in changes.items() if entries}, origin=origin)
        return Settings(values, sources)


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Merge the layers. A missing explicit config file is an error; a missing default one is not."""
    values = copy.deepcopy(DEFAULTS)
    sources: dict[str, str] = {}
    environ = os.environ if environ is None else environ
    path = config_file or (Path(environ["RECSYS_CONFIG"]) if environ.get("RECSYS_CONFIG") else None)
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        if not path.exists():
            raise InputError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise InputError(f"config file {path}: {error}") from None
        _apply(values, sources, data, origin=str(path))
    for name, raw in environ.items():
        if not name.startswith("RECSYS_") or "__" not in name:
            continue
        section, _, key = name[len("RECSYS_") :].lower().partition("__")
        _apply(values, sources, {section: {key: _parse_env(raw)}}, origin=f"environment {name}")
    if overrides:
        _apply(values, sources, {s: dict(v) for s, v in overrides.items() if v}, origin="command line")
    return Settings(values, sources)


def _parse_env(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _apply(values: dict, sources: dict, data: Mapping[str, Any], *, origin: str) -> None:
    for section, entries in data.items():
        if section not in DEFAULTS:
            raise InputError(f"{origin}: unknown settings section [{section}] (known: {', '.join(DEFAULTS)})")
        if not isinstance(entries, Mapping):
            raise InputError(f"{origin}: [{section}] must be a table of settings")
        for key, value in entries.items():
            if key not in DEFAULTS[section] and key.startswith(PASSED_THROUGH.get(section, "\0")):
                values[section][key] = str(value).lower() if isinstance(value, bool) else str(value)
            elif key not in DEFAULTS[section]:
                raise InputError(f"{origin}: unknown setting {section}.{key} (known: {', '.join(DEFAULTS[section])})")
            else:
                values[section][key] = _coerce(DEFAULTS[section][key], value, f"{origin}: {section}.{key}")
            sources[f"{section}.{key}"] = origin


def _coerce(default: Any, value: Any, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise InputError(f"{where} must be true or false, got {value!r}")
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InputError(f"{where} must be a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{where} must be a number, got {value!r}") from None
        if isinstance(default, int) and not number.is_integer():
            raise InputError(f"{where} must be a whole number, got {value!r}")
        return int(number) if isinstance(default, int) else number
    if isinstance(default, list):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise InputError(f"{where} must be a list, got {value!r}")
        return value
    return str(value)


def write_settings(path: Path, updates: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge `updates` into the TOML file at `path` (created if absent)."""
    existing: dict[str, dict[str, Any]] = {}
    if path.exists():
        existing = tomllib.loads(path.read_text(encoding="utf-8"))
    for section, entries in updates.items():
        existing.setdefault(section, {}).update(entries)
    lines = ["# recsys settings (see README: Configuration)"]
    for section, entries in existing.items():
        lines.append(f"\n[{section}]")
        for key, value in entries.items():
            lines.append(f"{key} = {_toml_value(value)}")
    atomic_write(path, "\n".join(lines) + "\n")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
