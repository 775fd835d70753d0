"""Settings: one set of defaults (the models' own), merged from TOML, environment and command line."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
from pydantic import ValidationError

from recsys_cli import config as settings_module
from recsys_cli.config import DEFAULTS, Settings, load_settings, write_settings
from recsys_cli.errors import InputError
from recsys_cli.models.als import ALSModel
from recsys_cli.models.collaborative import LightFMModel
from recsys_cli.models.content import ContentConfig
from recsys_cli.models.itembased import EASEModel, ItemKNNModel
from recsys_cli.training import content_config


def test_model_sections_are_the_models_own_defaults():
    """A default is written once: the settings a user sees are what the model does when built bare."""
    ease, knn, als = EASEModel(), ItemKNNModel(), ALSModel()
    assert DEFAULTS["ease"] == {"l2": ease.l2, "max_items": ease.max_items, "decay": ease.decay}
    assert DEFAULTS["itemknn"] == {"neighbours": knn.neighbours, "shrink": knn.shrink, "decay": knn.decay}
    assert DEFAULTS["als"]["factors"] == als.factors and DEFAULTS["als"]["alpha"] == als.alpha
    assert content_config(load_settings(environ={})) == ContentConfig()


def test_layers_override_in_order(tmp_path):
    config = tmp_path / "recsys.toml"
    config.write_text("[content]\nprice_scale = 2.0\nbrand = 0.3\n[ease]\nmax_items = 800\n")
    settings = load_settings(config, environ={"RECSYS_CONTENT__BRAND": "0.4"}, overrides={"ease": {"max_items": 900}})
    assert settings["content"]["price_scale"] == 2.0  # settable now that the section is ContentConfig's fields
    assert settings["content"]["brand"] == 0.4  # the environment beats the file
    assert settings["ease"]["max_items"] == 900  # the command line beats both
    assert content_config(settings).price_scale == 2.0
    assert "environment RECSYS_CONTENT__BRAND" in settings.sources.values()


@pytest.mark.parametrize(
    ("toml", "environ", "named"),
    [
        ("[ease]\nmax_itemz = 3\n", {}, "max_itemz"),
        ("[eas]\nl2 = 3\n", {}, "eas"),
        ("", {"RECSYS_ALS__FACTORZ": "8"}, "factorz"),
        ("[als]\nfactors = 'many'\n", {}, "factors"),
    ],
)
def test_unknown_keys_and_wrong_types_are_errors_that_name_them(tmp_path, toml, environ, named):
    config = tmp_path / "recsys.toml"
    config.write_text(toml)
    with pytest.raises(InputError, match=named):
        load_settings(config, environ=environ)


def test_updated_layers_changes_on_top_and_checks_them():
    base = load_settings(environ={"RECSYS_ALS__FACTORS": "32"})
    changed = base.updated({"als": {"alpha": 4}}, origin="tuning")
    assert changed["als"]["factors"] == 32 and changed["als"]["alpha"] == 4.0 and base["als"]["alpha"] == 1.0
    assert changed.sources["als.alpha"] == "tuning"
    with pytest.raises(InputError, match="tuning: unknown setting als.alfa"):
        base.updated({"als": {"alfa": 4}}, origin="tuning")


# --- every setting from every source --------------------------------------------------------------


def _changed(value: object, section: str = "", key: str = "") -> object:
    """A valid value other than the default, of the same type (another choice for a setting with choices)."""
    annotation = Settings.model_fields[section].annotation.model_fields[key].annotation if section else None
    if typing.get_origin(annotation) is typing.Literal:
        return next(choice for choice in typing.get_args(annotation) if choice != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, list):
        if not value:  # an empty list of names (rules.boost, rules.pin)
            return ["changed"]
        return [7.0, 8.0] if all(isinstance(v, float) for v in value) else list(reversed(value))
    return f"{value}-changed"


def _as_text(value: object) -> str:
    """How a user writes the value in an environment variable or --set."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


SETTINGS = [(section, key) for section, entries in DEFAULTS.items() for key in entries]


@pytest.mark.parametrize(("section", "key"), SETTINGS, ids=[f"{s}.{k}" for s, k in SETTINGS])
def test_every_setting_is_reachable_from_the_file_the_environment_and_set(tmp_path, section, key):
    value = _changed(DEFAULTS[section][key], section, key)
    config = tmp_path / "recsys.toml"
    write_settings(config, {section: {key: value}})
    assert load_settings(config, environ={})[section][key] == value
    variable = f"RECSYS_{section.upper()}__{key.upper()}"
    from_environment = load_settings(environ={variable: _as_text(value)})
    assert from_environment[section][key] == value and from_environment.sources == {f"{section}.{key}": f"environment {variable}"}
    assert load_settings(environ={}, assignments=[f"{section}.{key}={_as_text(value)}"])[section][key] == value


def test_sources_are_merged_in_order_file_environment_set_options(tmp_path):
    config = tmp_path / "recsys.toml"
    config.write_text("[router]\nprecomputed = 1\nsession_items = 1\nwarm_min_products = 1\nfew = 'content'\n")
    settings = load_settings(
        config,
        environ={"RECSYS_ROUTER__SESSION_ITEMS": "2", "RECSYS_ROUTER__WARM_MIN_PRODUCTS": "2", "RECSYS_ROUTER__FEW": "same"},
        assignments=["router.warm_min_products=3", "router.few=itemknn"],
        overrides={"router": {"few": "ease"}},
    )
    assert settings.router.precomputed == 1 and settings.router.session_items == 2
    assert settings.router.warm_min_products == 3 and settings.router.few == "ease"
    assert settings.sources == {
        "router.precomputed": str(config),
        "router.session_items": "environment RECSYS_ROUTER__SESSION_ITEMS",
        "router.warm_min_products": "--set router.warm_min_products=3",
        "router.few": "command line",
    }
    assert load_settings(environ={}).sources == {}


def test_the_default_file_is_recsys_toml_in_the_working_folder_or_recsys_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recsys.toml").write_text("[artifacts]\nkeep = 5\n")
    (tmp_path / "other.toml").write_text("[artifacts]\nkeep = 7\n")
    assert load_settings(environ={})["artifacts"]["keep"] == 5
    assert load_settings(environ={"RECSYS_CONFIG": "other.toml"})["artifacts"]["keep"] == 7
    with pytest.raises(InputError, match="config file missing.toml does not exist"):
        load_settings(Path("missing.toml"), environ={})
    (tmp_path / "folder.toml").mkdir()
    with pytest.raises(InputError, match="config file folder.toml: Is a directory"):
        load_settings(Path("folder.toml"), environ={})
    (tmp_path / "broken.toml").write_text("[router\n")
    with pytest.raises(InputError, match="config file broken.toml: Expected ']'"):
        load_settings(Path("broken.toml"), environ={})


def test_settings_are_typed_and_frozen():
    settings = load_settings(environ={"RECSYS_SELECTION__DECAYS": "[1, 0.5]", "RECSYS_LIGHTFM__USE_ITEM_FEATURES": "yes"})
    assert settings.selection.decays == [1.0, 0.5] and all(isinstance(d, float) for d in settings.selection.decays)
    assert settings.lightfm.use_item_features is True and settings.router.precomputed == 20
    assert settings["router"] == settings.router.model_dump() == DEFAULTS["router"]
    with pytest.raises(ValidationError):
        settings.router.precomputed = 5  # change settings with .updated, which checks and records the source
    with pytest.raises(KeyError):
        settings["routers"]


def test_lightfm_section_is_the_models_keyword_defaults():
    model = LightFMModel()
    for key, value in DEFAULTS["lightfm"].items():
        assert value == (getattr(model, key) or 0), key  # num_threads None (every core) is written 0


def test_settings_from_plain_values_are_checked_and_keep_their_sources():
    settings = Settings({"router": {"collaborative": "ease"}}, {"router.collaborative": "benchmark"})
    assert settings["router"]["collaborative"] == "ease" and settings["router"]["few"] == "auto"
    assert settings.sources == {"router.collaborative": "benchmark"}
    with pytest.raises(InputError, match="unknown setting router.colaborative"):
        Settings({"router": {"colaborative": "ease"}})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"toml": "[router]\nprecomputed = 'many'\n"}, "{config}: router.precomputed must be a whole number, got 'many'"),
        ({"toml": "[router]\nprecomputed = true\n"}, "{config}: router.precomputed must be a whole number, got True"),
        ({"toml": "[als]\nfactors = 2.5\n"}, "{config}: als.factors must be a whole number, got 2.5"),
        ({"toml": "[lightfm]\nloss = 3\n"}, "{config}: lightfm.loss must be text, got 3"),
        ({"toml": "[lightfm]\nuse_item_features = 'maybe'\n"}, "{config}: lightfm.use_item_features must be true or false, got 'maybe'"),
        ({"toml": "[selection]\ndecays = [1, 'x']\n"}, "{config}: selection.decays must be a list of numbers, got [1, 'x']"),
        (
            {"toml": "[router]\nexclude = 'purchase_item'\nprecomputed = -1\n"},
            "{config}: router.precomputed = -1: must be greater than or equal to 0",
        ),
        ({"toml": "[weighting]\nview_product = [1.0]\n"}, "{config}: weighting.view_product = [1.0]: must have at least 2 items"),
        ({"toml": "[content]\nbrand = nan\n"}, "{config}: content.brand = nan: must be a finite number"),
        ({"toml": "router = 3\n"}, "{config}: [router] must be a table of settings, got 3"),
        (
            {"env": {"RECSYS_ROUTER__SESSION_WEIGHT": "heavy"}},
            "environment RECSYS_ROUTER__SESSION_WEIGHT: router.session_weight must be a number, got 'heavy'",
        ),
        ({"env": {"RECSYS_ROUTER__PRECOMPUTD": "5"}}, "environment RECSYS_ROUTER__PRECOMPUTD: unknown setting router.precomputd"),
        ({"env": {"RECSYS_ROUTERS__PRECOMPUTED": "5"}}, "environment RECSYS_ROUTERS__PRECOMPUTED: unknown settings section [routers]"),
        (
            {"env": {"RECSYS_ROUTER_PRECOMPUTED": "5"}},
            "environment RECSYS_ROUTER_PRECOMPUTED: settings variables separate section and key with two underscores, e.g. RECSYS_ROUTER__PRECOMPUTED",
        ),
        ({"set": ["als.factors=many"]}, "--set als.factors=many: als.factors must be a whole number, got 'many'"),
        ({"set": ["als.factor=8"]}, "--set als.factor=8: unknown setting als.factor"),
        ({"set": ["factors=8"]}, "--set factors=8: write section.key=value"),
    ],
)
def test_a_mistake_names_the_key_the_value_the_type_and_the_source(tmp_path, source, message):
    config = tmp_path / "recsys.toml"
    config.write_text(source.get("toml", ""))
    with pytest.raises(InputError) as raised:
        load_settings(config, environ=source.get("env", {}), assignments=source.get("set", ()))
    assert str(raised.value).startswith(message.format(config=config))


def test_other_recsys_variables_are_not_settings():
    assert (
        load_settings(environ={"RECSYS_DATA": "d", "RECSYS_ADMIN_TOKEN": "t", "RECSYS_LIVE_STORE": "x", "RECSYS_RESULTS_DIR": "r"}).sources
        == {}
    )


def test_written_settings_read_back_the_same(tmp_path):
    config = tmp_path / "tuned.toml"
    config.write_text('[spark]\n"spark.executor.memory" = "8g"\n')
    write_settings(config, {"router": {"warm_min_products": 3, "exclude": ["purchase_item"]}, "popularity": {"mode": "customers"}})
    settings = load_settings(config, environ={})
    assert settings["router"]["warm_min_products"] == 3 and settings["router"]["exclude"] == ["purchase_item"]
    assert settings["popularity"]["mode"] == "customers" and settings["spark"]["spark.executor.memory"] == "8g"


# --- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_set_reaches_the_command_and_beats_the_environment(tmp_path, monkeypatch, command, run_cli):
    seen = []

    def load_and_stop(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        raise InputError("stopped after the settings")

    real = settings_module.load_settings
    monkeypatch.setattr(settings_module, "load_settings", load_and_stop)
    monkeypatch.setenv("RECSYS_ROUTER__PRECOMPUTED", "7")
    monkeypatch.setenv("RECSYS_ALS__FACTORS", "7")
    monkeypatch.chdir(tmp_path)
    result = run_cli(command, "--data", tmp_path, "--set", "router.precomputed=50", "--set", "als.factors=8")
    assert result.exit_code == 2 and "stopped after the settings" in result.stderr
    assert seen[0].router.precomputed == 50 and seen[0].als.factors == 8
    assert seen[0].sources["router.precomputed"] == "--set router.precomputed=50"


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_settings_mistake_on_the_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, command, run_cli):
    monkeypatch.chdir(tmp_path)
    result = run_cli(command, "--data", tmp_path, "--set", "router.precomputed=lots")
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: --set router.precomputed=lots: router.precomputed must be a whole number, got 'lots'"
    monkeypatch.setenv("RECSYS_ROUTER__PRECOMPUTD", "5")
    result = run_cli(command, "--data", tmp_path)
    assert result.exit_code == 2 and "environment RECSYS_ROUTER__PRECOMPUTD: unknown setting router.precomputd" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_served_version_uses_its_own_settings_not_the_working_folders(tmp_path, monkeypatch, sample_artifacts):
    from recsys_cli.service import RecommendationService

    monkeypatch.chdir(tmp_path)
    (tmp_path / "recsys.toml").write_text("[router]\nsession_items = 'not read'\n")
    monkeypatch.setenv("RECSYS_ROUTER__SESSION_ITEMS", "also not read")
    service = RecommendationService.load(sample_artifacts[1])
    assert service.settings.router.session_items == DEFAULTS["router"]["session_items"]
    assert service.settings.sources == {}  # trained with the defaults


# --- served settings: recommend and serve --set --------------------------------------------------


def _top_customer(data: Path) -> tuple[str, set[str]]:
    """The customer with the most distinct products, and those products."""
    import pandas as pd

    events = pd.read_csv(data / "events.csv", dtype=str)
    customer = events.groupby("customer_id")["product_id"].nunique().idxmax()
    return customer, set(events.loc[events["customer_id"] == customer, "product_id"])


def test_recommend_set_changes_a_served_setting(sample_artifacts, run_cli):
    data, artifacts = sample_artifacts
    customer, seen = _top_customer(data)
    default = json.loads(run_cli("recommend", customer, "-n", "10", "--format", "json", "--artifacts", artifacts).stdout)
    assert not seen & {item["product_id"] for item in default["items"]}  # every event type is excluded by default
    result = run_cli(
        "recommend", customer, "-n", "10", "--format", "json", "--artifacts", artifacts, "--set", "router.exclude=purchase_item"
    )
    assert result.exit_code == 0, result.stderr
    assert seen & {item["product_id"] for item in json.loads(result.stdout)["items"]}  # viewed products may come back


def test_serve_set_reaches_every_worker_and_survives_reloads(sample_artifacts, tmp_path, monkeypatch, run_cli):
    from recsys_cli import serving

    data, artifacts = sample_artifacts
    customer, seen = _top_customer(data)
    result = run_cli(
        "serve",
        "--get",
        f"/recommendations/{customer}?n=10",
        "--artifacts",
        artifacts,
        "--data",
        tmp_path,
        "--set",
        "router.exclude=purchase_item",
    )
    assert result.exit_code == 0, result.stderr
    assert seen & {item["product_id"] for item in json.loads(result.stdout)["items"]}
    changes = {"router": {"session_weight": 0.75}}  # what `serve --set router.session_weight=0.75` hands each granian worker
    for process_wide in ("configure_logging", "threadpool_limits", "_limit_malloc_arenas"):  # a worker's, not this test process's
        monkeypatch.setattr(serving, process_wide, lambda *args, **kwargs: None)
    monkeypatch.setenv(
        serving.SERVE_CONFIG_ENV, json.dumps({"ARTIFACTS": str(artifacts), "DATA": str(tmp_path), "POLL_SECONDS": 0, "SETTINGS": changes})
    )
    holder = serving.app_from_environment().extensions["recsys"].holder
    assert holder.service.settings.router.session_weight == 0.75 and holder.changes == changes


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "lightfm.epochs=3",
            "--set lightfm.epochs=3: lightfm.epochs acts in training and is fixed in the trained version; give it to `recsys train`",
        ),
        ("router.session_weight=heavy", "--set router.session_weight=heavy: router.session_weight must be a number, got 'heavy'"),
        ("router.sesion_weight=0.5", "--set router.sesion_weight=0.5: unknown setting router.sesion_weight"),
    ],
)
@pytest.mark.parametrize("command", ["recommend", "serve"])
def test_recommend_and_serve_refuse_settings_they_do_not_read(sample_artifacts, tmp_path, run_cli, command, assignment, message):
    target = ["c1"] if command == "recommend" else ["--get", "/health", "--data", tmp_path]
    result = run_cli(command, *target, "--artifacts", sample_artifacts[1], "--set", assignment)
    assert result.exit_code == 2 and result.stderr.startswith(f"Error: {message}"), result.stderr
