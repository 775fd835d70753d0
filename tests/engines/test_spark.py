"""`recsys train --engine spark` on local[2] with the committed sample: the version it publishes is
served by `recommend`, and its item-item neighbours are the local engine's."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from recsys_cli import artifacts as artifact_store
from recsys_cli.config import load_settings
from recsys_cli.errors import InputError
from recsys_cli.live import LiveStore
from recsys_cli.training import train

from ..conftest import SAMPLE

FIXED = {"RECSYS_ROUTER__COLLABORATIVE": "itemknn", "RECSYS_ROUTER__FEW": "same", "RECSYS_POPULARITY__MODE": "customers"}
SPARK = {**FIXED, "RECSYS_TRAINING__ENGINE": "spark", "RECSYS_SPARK__MASTER": "local[2]"}


def _java() -> bool:
    try:
        return subprocess.run(["java", "-version"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="session")
def spark():
    """One local[2] JVM for the whole test session; `train` reuses it (it stops only sessions it started)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
    if not _java():
        pytest.skip("no Java on this machine (Spark needs Java 17: apt-get install openjdk-17-jre-headless)")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("recsys-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def versions(spark, tmp_path_factory):
    """The sample (plus one live-only customer) trained by both engines with the same fixed models."""
    root = tmp_path_factory.mktemp("engines")
    data = root / "data"
    shutil.copytree(SAMPLE, data)
    LiveStore.in_folder(data).append([("live-only-customer", "10117", 2, 1_700_000_000)])
    trained = {}
    for engine, environ in (("local", FIXED), ("spark", SPARK)):
        artifacts = root / f"artifacts-{engine}"
        outcome = train(data, artifacts, load_settings(environ=environ))
        trained[engine] = (artifacts, artifact_store.load(artifacts, outcome.version))
    return data, trained


@pytest.mark.spark
def test_spark_publishes_a_version_recommend_serves(versions, run_cli):
    data, trained = versions
    artifacts, loaded = trained["spark"]
    assert loaded.manifest["engine"] == "spark"
    assert loaded.manifest["collaborative_model"] == "itemknn"
    assert loaded.manifest["selection"]["split"].startswith("none")
    events = pd.read_csv(SAMPLE / "events.csv", dtype=str)
    assert loaded.manifest["counts"]["events"] == len(events) + 1  # the live event is trained on too
    customer = events["customer_id"].value_counts().index[0]
    result = run_cli("recommend", customer, "-n", "5", "--format", "json", "--artifacts", artifacts)
    assert result.exit_code == 0, result.output
    assert '"product_id"' in result.stdout and '"source": "collaborative"' in result.stdout
    assert run_cli("recommend", "live-only-customer", "-n", "3", "--artifacts", artifacts).exit_code == 0


@pytest.mark.spark
def test_the_datasets_agree(versions):
    _, trained = versions
    local, spark = trained["local"][1].parts["dataset"], trained["spark"][1].parts["dataset"]
    assert (local.n_users, local.n_items, len(local.pairs)) == (spark.n_users, spark.n_items, len(spark.pairs))
    assert list(local.items.external_ids[: local.n_listed]) == list(spark.items.external_ids[: spark.n_listed])

    def keyed(dataset) -> pd.DataFrame:
        pairs = dataset.pairs.assign(
            customer_id=dataset.users.to_external(dataset.pairs["user"]), product_id=dataset.items.to_external(dataset.pairs["item"])
        )
        return pairs.drop(columns=["user", "item"]).sort_values(["customer_id", "product_id"], ignore_index=True)

    pd.testing.assert_frame_equal(keyed(local), keyed(spark), check_dtype=True)


@pytest.mark.spark
def test_itemknn_neighbours_agree_with_the_local_engine(versions):
    _, trained = versions
    local, spark = trained["local"][1].parts["collaborative"], trained["spark"][1].parts["collaborative"]
    local_items, spark_items = trained["local"][1].parts["dataset"].items, trained["spark"][1].parts["dataset"].items
    products = local_items.external_ids
    checked = 0
    for product in products:
        a = _neighbours(local.S, local_items, local_items.get(product))
        b = _neighbours(spark.S, spark_items, spark_items.get(product))
        assert np.allclose(sorted(a.values(), reverse=True), sorted(b.values(), reverse=True), rtol=1e-5), product
        if a:
            # the same neighbours, except which of several equally similar ones made the last place
            cutoff = min(a.values())
            assert {j for j, s in a.items() if s > cutoff * (1 + 1e-5)} == {j for j, s in b.items() if s > cutoff * (1 + 1e-5)}
            checked += 1
    assert checked > 100


def _neighbours(S, items, row: int) -> dict[str, float]:
    start, stop = S.indptr[row], S.indptr[row + 1]
    return dict(zip(items.to_external(S.indices[start:stop]), S.data[start:stop].astype(float)))


@pytest.mark.slow
@pytest.mark.spark
def test_als_factors_from_spark_serve_recommendations(spark, tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    environ = {**SPARK, "RECSYS_ROUTER__COLLABORATIVE": "als", "RECSYS_ALS__FACTORS": "8", "RECSYS_ALS__ITERATIONS": "3"}
    outcome = train(data, tmp_path / "artifacts", load_settings(environ=environ))
    model = artifact_store.load(tmp_path / "artifacts", outcome.version).parts["collaborative"]
    assert model.name == "als" and model.item_factors.shape[1] == 8
    assert np.abs(model.item_factors[model.items]).sum(axis=1).min() > 0  # every product with events has factors
    norms = np.linalg.norm(model._active_factors.astype(np.float64), axis=1)
    assert np.all(norms[1:] <= norms[:-1])  # kept as the local fit keeps them: a top-k can stop early
    customer = pd.read_csv(SAMPLE / "events.csv", dtype=str)["customer_id"].value_counts().index[0]
    result = run_cli("recommend", customer, "-n", "5", "--format", "json", "--artifacts", tmp_path / "artifacts")
    assert result.exit_code == 0 and result.stdout.count('"product_id"') == 5


@pytest.mark.spark
def test_spark_weights_follow_the_weighting_rule(spark):
    from recsys_cli.engines.spark import _pairs
    from recsys_cli.weighting import WeightingConfig, pair_weights

    events = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b", "b", "c"],
            "product_id": ["1", "1", "2", "1", "1", "3"],
            "type": [0, 0, 1, 2, 0, 2],
            "timestamp": [0, 86_400 * 10, 86_400 * 3, 86_400 * 20, 86_400 * 5, 86_400 * 30],
        }
    )
    config = WeightingConfig(half_life_days=7.0)
    frame = _pairs(spark.createDataFrame(events), config).toPandas().sort_values(["customer_id", "product_id"], ignore_index=True)
    assert np.allclose(frame["weight"], pair_weights(frame, config), rtol=1e-6)


def test_the_spark_engine_refuses_models_it_does_not_fit_before_any_work(tmp_path):
    settings = load_settings(environ={"RECSYS_TRAINING__ENGINE": "spark", "RECSYS_ROUTER__COLLABORATIVE": "ease"})
    with pytest.raises(InputError, match="--engine spark fits itemknn, als, popularity"):
        train(tmp_path / "no-data", tmp_path / "artifacts", settings)
    with pytest.raises(InputError, match="training.engine must be one of local, spark"):
        train(tmp_path / "no-data", tmp_path / "artifacts", load_settings(environ={"RECSYS_TRAINING__ENGINE": "dask"}))


def test_spark_properties_pass_through_from_the_settings_file(tmp_path):
    config = tmp_path / "recsys.toml"
    config.write_text('[training]\nengine = "spark"\n\n[spark]\nmaster = "yarn"\n"spark.executor.memory" = "8g"\n')
    settings = load_settings(config, environ={})
    assert settings["spark"]["master"] == "yarn" and settings["spark"]["spark.executor.memory"] == "8g"
    with pytest.raises(InputError, match="unknown setting spark.executor_memory"):
        load_settings(environ={"RECSYS_SPARK__EXECUTOR_MEMORY": "8g"})
