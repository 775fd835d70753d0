"""Settings: defaults <- config file (TOML) <- environment (RECSYS_SECTION__KEY) <- command line.

One typed object (`Settings`, pydantic): each section is a model whose fields carry a type and a
default. The model sections (ease, itemknn, rp3beta, als, lightfm, content) are built from the
models' own keyword defaults, and the weighting scheme from weighting.DEFAULT_SCHEME, so a default is
written once, where it acts. Each source is checked as it is merged: an unknown section or key, or a
value of the wrong type, is an InputError naming the key, the value, the expected type and the source.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, create_model, model_validator

from .errors import InputError
from .fsutil import atomic_write
from .weighting import DEFAULT_SCHEME

DEFAULT_CONFIG_FILE = "recsys.toml"
ENV_PREFIX = "RECSYS_"
ENV_SEPARATOR = "__"


# --- value types: what a TOML value, an environment variable or a --set string may become --------


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read true as 1; a switch where a number belongs is a mistake
        raise ValueError("a number, not true/false")
    return value


def _list_from_text(value: Any) -> Any:
    """A list written as text (environment, --set): a JSON array, or names separated by commas."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value  # refused below as "not a list"
    return [part.strip() for part in text.split(",") if part.strip()]


Int = Annotated[int, BeforeValidator(_not_a_bool)]
Float = Annotated[float, BeforeValidator(_not_a_bool)]
Count = Annotated[int, BeforeValidator(_not_a_bool), Field(ge=0)]
NonNegative = Annotated[float, BeforeValidator(_not_a_bool), Field(ge=0)]
Names = Annotated[list[str], BeforeValidator(_list_from_text)]
Numbers = Annotated[list[Float], BeforeValidator(_list_from_text)]
OnceSeveral = Annotated[list[Float], BeforeValidator(_list_from_text), Field(min_length=2, max_length=2)]
"""An event type's weight when it happened once, and several times."""


class Section(BaseModel):
    """One [section] of settings: known keys only, each of its type; frozen (change it with Settings.updated)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- the sections written here (the others come from the models, below) ---------------------------


class WeightingSettings(Section):
    """(once, several times) per event type; the strongest event of a pair wins."""

    view_product: OnceSeveral = list(DEFAULT_SCHEME["view_product"])
    add_to_cart: OnceSeveral = list(DEFAULT_SCHEME["add_to_cart"])
    purchase_item: OnceSeveral = list(DEFAULT_SCHEME["purchase_item"])
    half_life_days: NonNegative = 0.0  # 0 = no recency decay


class RouterSettings(Section):
    """Which model serves each segment is chosen at train time on a validation split of the shop's
    own events (README: How the model is chosen); "auto" searches, a model name fixes it."""

    collaborative: str = "auto"  # warm customers: auto | itemknn | rp3beta | ease | als | lightfm | item | popularity
    few: str = "auto"  # customers with 1 .. warm_min_products - 1 products: auto | same | a model name | content
    warm_min_products: Count = 5  # customers with at least this many distinct products are "warm"
    exclude: Names = ["view_product", "add_to_cart", "purchase_item"]  # never recommend products with these events
    session_items: Count = 5  # live products blended into a warm customer's scores
    session_weight: NonNegative = 0.3  # weight of similarity to live products in that blend
    # train stores each known customer's first N recommendations; a request for n <= N without
    # filters, live events or a session reads them (same list, no scoring). 0 = always score.
    precomputed: Count = 20
    precompute_seconds: NonNegative = 60.0  # time budget for those lists, most active customers first (0 = no limit)


class SelectionSettings(Section):
    """Models tried for the few and warm segments; `kind:key=value` changes one of its settings.

    rp3beta and lightfm are available but not tried by default: neither won a segment on the seed
    preset, MovieLens-100k, Online Retail or Amazon Beauty, and each costs a fit.
    ease:window=F: EASE fitted on the newest share F of the period, for shops whose tastes move.
    split: what "next" means on the validation split. temporal: everything customers did after one
    cutoff (80% of the events by time), as for a list sent to everyone at once; last: each
    customer's last product (customers with 3 or more; it counts when it is new to them),
    predicted from what they did before it, whenever that was, as for a returning visitor's next
    step; auto: temporal, or last when timestamps carry no global time (absent, constant, or
    restarting per customer). An explicit choice that cannot be made on the data is an error.
    """

    candidates: Names = ["itemknn", "ease", "als", "als:alpha=4", "ease:window=0.5", "ease:window=0.25"]
    decays: Numbers = [1.0, 0.8, 0.5, 0.25]  # recency decays of the history tried for item-based models
    blend_weights: Numbers = [0.1, 0.25, 0.5, 0.75, 0.9]  # weights of popularity tried in blends with the best models
    pair_weights: Numbers = [0.25, 0.5]  # weights of the runner-up model tried in a blend with the best one
    max_users: Count = 3000  # validation customers scored per segment (a seeded sample)
    seed: Int = 42
    split: Literal["auto", "temporal", "last"] = "auto"


class PopularitySettings(Section):
    """mode: auto | customers | interactions | purchasers; window_fraction: the most recent share of
    the training period that counts (0 = all history); window_days does the same in days."""

    mode: str = "auto"
    window_fraction: NonNegative = 0.0
    window_days: NonNegative = 0.0


class ArtifactsSettings(Section):
    keep: Count = 3  # versions kept besides the current one's


class TrainingSettings(Section):
    """engine: local (one machine, models chosen on a validation split) | spark (pyspark; models
    fixed by router.collaborative / router.few, README: Beyond one machine)."""

    engine: str = "local"


class RulesSettings(Section):
    """Business rules on every personal list (README: Business rules); a request can add its own."""

    boost: Names = []  # FIELD:VALUE:FACTOR, e.g. "category:Women|Shoes:1.5", "brand:Acme:2", "price:0-50:0.5" (< 1 buries)
    pin: Names = []  # PRODUCT:SLOT, e.g. "SKU-17:1": that product in that slot whenever the customer may see it


class SparkSettings(Section):
    """Spark's master URL, and any Spark property passed through as written ("spark.executor.memory" = "8g")."""

    model_config = ConfigDict(extra="allow")

    master: str = "local[*]"
    app_name: str = "recsys-train"

    @model_validator(mode="before")
    @classmethod
    def _properties_as_text(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        return {
            key: (str(value).lower() if isinstance(value, bool) else str(value)) if key not in cls.model_fields else value
            for key, value in data.items()
        }


PASSED_THROUGH = {"spark": "spark."}
"""Sections that also take any key with this prefix, as text (Spark's own properties)."""


# --- the sections whose defaults are the models' own ---------------------------------------------

_SCALARS: dict[Any, Any] = {int: Int, float: Float}


def _section_from(name: str, fields: Mapping[str, tuple[Any, Any]]) -> type[Section]:
    """A Section class with these (type, default) fields; ints and floats refuse true/false as elsewhere."""
    typed = {key: (_SCALARS.get(kind, kind), default) for key, (kind, default) in fields.items()}
    return create_model(name, __base__=Section, **typed)


def _keywords(cls: type, *, skip: tuple[str, ...] = (), replace: Mapping[str, tuple[Any, Any]] | None = None) -> dict[str, tuple[Any, Any]]:
    """A model class's keyword-only parameters: (type, default) each."""
    hints = typing.get_type_hints(cls.__init__)
    fields = {
        name: (hints[name], parameter.default)
        for name, parameter in inspect.signature(cls).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in skip
    }
    fields.update(replace or {})
    return fields


def _model_sections() -> dict[str, type[Section]]:
    """Settings sections whose defaults are the models' own (one definition each)."""
    from .models.als import ALSModel
    from .models.collaborative import LightFMModel
    from .models.content import ContentConfig
    from .models.itembased import EASEModel, ItemKNNModel, RP3betaModel
    from .models.together import BoughtTogetherModel

    content_hints = typing.get_type_hints(ContentConfig)
    return {
        # LightFM's num_threads=None (all cores) is written 0 in settings: TOML has no null
        "lightfm": _section_from("LightFMSettings", _keywords(LightFMModel, replace={"num_threads": (int, 0)})),
        "ease": _section_from("EASESettings", _keywords(EASEModel, skip=("binary",))),
        "itemknn": _section_from("ItemKNNSettings", _keywords(ItemKNNModel, skip=("binary",))),
        "rp3beta": _section_from("RP3betaSettings", _keywords(RP3betaModel)),
        "als": _section_from("ALSSettings", _keywords(ALSModel)),
        "bought_together": _section_from("BoughtTogetherSettings", _keywords(BoughtTogetherModel)),
        "content": _section_from(
            "ContentSettings", {field.name: (content_hints[field.name], field.default) for field in dataclasses.fields(ContentConfig)}
        ),
    }


_MODELS = _model_sections()
LightFMSettings, EASESettings, ItemKNNSettings = _MODELS["lightfm"], _MODELS["ease"], _MODELS["itemknn"]
RP3betaSettings, ALSSettings, ContentSettings = _MODELS["rp3beta"], _MODELS["als"], _MODELS["content"]
BoughtTogetherSettings = _MODELS["bought_together"]


# --- the settings object ---------------------------------------------------------------------------


class Settings(BaseModel):
    """The effective settings: one typed section each (`settings.router.precomputed`), also readable as
    plain dicts (`settings["router"]["precomputed"]`); `sources` says where each non-default value came from.

    Build it with `load_settings` (every source) or `Settings().updated(...)`; it is frozen.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weighting: WeightingSettings = Field(default_factory=WeightingSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    lightfm: LightFMSettings = Field(default_factory=LightFMSettings)  # type: ignore[valid-type]
    popularity: PopularitySettings = Field(default_factory=PopularitySettings)
    artifacts: ArtifactsSettings = Field(default_factory=ArtifactsSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    ease: EASESettings = Field(default_factory=EASESettings)  # type: ignore[valid-type]
    itemknn: ItemKNNSettings = Field(default_factory=ItemKNNSettings)  # type: ignore[valid-type]
    rp3beta: RP3betaSettings = Field(default_factory=RP3betaSettings)  # type: ignore[valid-type]
    als: ALSSettings = Field(default_factory=ALSSettings)  # type: ignore[valid-type]
    content: ContentSettings = Field(default_factory=ContentSettings)  # type: ignore[valid-type]
    bought_together: BoughtTogetherSettings = Field(default_factory=BoughtTogetherSettings)  # type: ignore[valid-type]
    rules: RulesSettings = Field(default_factory=RulesSettings)

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, values: Mapping[str, Mapping[str, Any]] | None = None, sources: Mapping[str, str] | None = None, /) -> None:
        """Settings from plain values (checked like any source; what is missing keeps its default)."""
        if values is None:
            super().__init__()
        else:
            merged = _merge(Settings(), values, origin="settings")
            super().__init__(**{name: getattr(merged, name) for name in SECTIONS})
        self._sources = dict(sources or {})

    @property
    def sources(self) -> dict[str, str]:
        """`section.key` -> where its value came from (a file, an environment variable, the command line)."""
        return self._sources

    def __getitem__(self, section: str) -> dict[str, Any]:
        """One section as a plain dict (a copy)."""
        if section not in SECTIONS:
            raise KeyError(section)
        return getattr(self, section).model_dump()

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every section as a plain dict (a copy)."""
        return self.model_dump()

    def updated(self, changes: Mapping[str, Mapping[str, Any]], *, origin: str = "command line") -> "Settings":
        """These settings with `changes` on top, checked like any other source (the one merge)."""
        return _merge(self, {section: entries for section, entries in changes.items() if entries}, origin=origin)


SECTIONS: dict[str, type[Section]] = {name: field.annotation for name, field in Settings.model_fields.items()}
"""Every settings section (the fields of `Settings`), in the order they are written out."""


def _merge(base: Settings, data: Mapping[str, Any], *, origin: str) -> Settings:
    """`base` with one source's values on top; an unknown or ill-typed one is an InputError naming `origin`."""
    sections = {name: getattr(base, name) for name in SECTIONS}
    sources = dict(base.sources)
    for section, entries in data.items():
        cls = SECTIONS.get(section)
        if cls is None:
            raise InputError(f"{origin}: unknown settings section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(entries, Mapping):
            raise InputError(f"{origin}: [{section}] must be a table of settings, got {entries!r}")
        for key in entries:
            if key not in cls.model_fields and not key.startswith(PASSED_THROUGH.get(section, "\0")):
                raise InputError(f"{origin}: unknown setting {section}.{key} (known: {', '.join(cls.model_fields)})")
        try:
            sections[section] = cls.model_validate({**sections[section].model_dump(), **entries})
        except ValidationError as error:
            raise InputError(_describe(error, cls, section, entries, origin)) from None
        sources.update({f"{section}.{key}": origin for key in entries})
    merged = Settings.model_construct(**sections)
    merged._sources = sources
    return merged


_EXPECTED = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
_CONSTRAINTS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long", "finite_number")


def _expected(annotation: Any) -> str:
    """What a field's type means to a user: "a whole number", "a list of numbers", ..."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (str,)
        inner = _expected(item)
        return "a list of " + {"a number": "numbers", "a whole number": "whole numbers", "text": "names"}.get(inner, inner)
    if typing.get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(choice) for choice in typing.get_args(annotation))
    return _EXPECTED.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _describe(error: ValidationError, cls: type[Section], section: str, entries: Mapping[str, Any], origin: str) -> str:
    """The first problem as one line: where, which key, what was given and what was expected."""
    problem = error.errors()[0]
    key = str(problem["loc"][0]) if problem["loc"] else ""
    value = entries.get(key, problem.get("input"))
    field = cls.model_fields.get(key)
    expected = _expected(field.annotation) if field is not None else "text"
    if problem["type"] in _CONSTRAINTS:
        detail = problem["msg"].replace(" after validation", "").replace("Input should", "must").replace("Value should", "must")
        return f"{origin}: {section}.{key} = {value!r}: {detail}"
    return f"{origin}: {section}.{key} must be {expected}, got {value!r}"


DEFAULTS: dict[str, dict[str, Any]] = Settings().to_dict()
"""Every setting's default, as plain values (section -> key -> value)."""


# --- the sources ----------------------------------------------------------------------------------


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    assignments: Sequence[str] = (),
) -> Settings:
    """Merge the sources, lowest first: defaults, the TOML file, RECSYS_SECTION__KEY variables,
    `--set section.key=value` assignments, then `overrides` (command-line options).

    The file is `config_file`, else $RECSYS_CONFIG, else ./recsys.toml if it exists; a missing
    explicit file is an error, a missing default one is not.
    """
    environ = os.environ if environ is None else environ
    settings = Settings()
    path = config_file or (Path(environ["RECSYS_CONFIG"]) if environ.get("RECSYS_CONFIG") else None)
    if path is None and Path(DEFAULT_CONFIG_FILE).exists():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        settings = _merge(settings, read_toml(path), origin=str(path))
    for name, entries in environment_settings(environ):
        settings = _merge(settings, entries, origin=f"environment {name}")
    for text in assignments:
        settings = _merge(settings, parse_assignment(text), origin=f"--set {text}")
    if overrides:
        settings = settings.updated(overrides, origin="command line")
    return settings


def read_toml(path: Path) -> dict[str, Any]:
    """A settings file's tables; a missing or malformed file is an InputError naming it."""
    if not path.exists():
        raise InputError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"config file {path}: {error}") from None
    except OSError as error:  # a folder, or not readable
        raise InputError(f"config file {path}: {error.strerror or error}") from None


def environment_settings(environ: Mapping[str, str]) -> list[tuple[str, dict[str, dict[str, str]]]]:
    """(variable, {section: {key: text}}) for each RECSYS_SECTION__KEY variable, in name order.

    A variable that names a section with one underscore (RECSYS_ROUTER_PRECOMPUTED) is refused
    rather than ignored: it was meant as a setting. Other RECSYS_ variables (RECSYS_DATA, ...) are not settings.
    """
    found = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if ENV_SEPARATOR in rest:
            section, _, key = rest.partition(ENV_SEPARATOR)
            found.append((name, {section: {key: environ[name]}}))
        elif any(rest.startswith(section + "_") for section in SECTIONS):
            section = next(s for s in SECTIONS if rest.startswith(s + "_"))
            raise InputError(
                f"environment {name}: settings variables separate section and key with two underscores, "
                f"e.g. {ENV_PREFIX}{section.upper()}{ENV_SEPARATOR}{rest[len(section) + 1 :].upper()}"
            )
    return found


def parse_assignment(text: str) -> dict[str, dict[str, str]]:
    """`section.key=value` (the value as text, typed by the setting) as {section: {key: value}}."""
    name, equals, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not equals or not dot or not section or not key:
        raise InputError(f"--set {text}: write section.key=value, e.g. --set router.precomputed=50")
    return {section: {key: value.strip()}}


SERVED = {"router": ("warm_min_products", "exclude", "session_items", "session_weight")}
"""The settings a trained version reads while answering (RecommendationService): `recommend` and
`serve` may change these with --set; the others act in training and are fixed in the version."""


def serving_changes(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`--set section.key=value` for `recommend` and `serve`: settings in SERVED only, each checked."""
    changes: dict[str, dict[str, Any]] = {}
    served = ", ".join(f"{section}.{key}" for section, keys in SERVED.items() for key in keys)
    for text in assignments:
        assignment = parse_assignment(text)
        checked = Settings().updated(assignment, origin=f"--set {text}")  # unknown or ill-typed: the usual error
        for section, entries in assignment.items():
            for key in entries:
                if key not in SERVED.get(section, ()):
                    raise InputError(
                        f"--set {text}: {section}.{key} acts in training and is fixed in the trained version; "
                        f"give it to `recsys train` (served settings: {served})"
                    )
                changes.setdefault(section, {})[key] = checked[section][key]
    return changes


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
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    atomic_write(path, "\n".join(lines) + "\n")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
