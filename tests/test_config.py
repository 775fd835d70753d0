"""Settings: one set of defaults (the models' own), merged from TOML, environment and command line."""

from __future__ import annotations

import pytest

from recsys_cli.config import DEFAULTS, load_settings
from recsys_cli.errors import InputError
from recsys_cli.models.als import ALSModel
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
