"""`recsys train --engine spark`: the heavy steps of training as Apache Spark jobs (pyspark).

What runs on Spark, over the validated events (the ingest snapshot's Parquet file plus the live
events, shipped from the driver):

- the weighting: events -> one row per (customer, product) with its counts, last time and weight;
- the item-item model: co-occurrence of products in customers' histories (a self-join on the
  customer), cosine similarity with shrinkage, and the top `itemknn.neighbours` per product;
- ALS, when chosen: `pyspark.ml.recommendation.ALS` with implicit preferences on those weights.

What stays on the driver, because the artifact holds it whole and `serve` loads it into one
process anyway: the id maps, the pairs table (Spark aggregates it, the driver receives it), the
popularity counts over it (one bincount), and the content model (the catalog's attributes; the
catalog must fit one machine, see README: Beyond one machine). Spark's results are loaded into the
same model classes the local engine fits and published by the same code, so the version is in
exactly the format `recommend` and `serve` read.

Models are fixed by settings (router.collaborative: itemknn | als | popularity, auto = itemknn;
router.few: same | itemknn | als | popularity | content, auto = same): there is no train-time
selection, which would fit every candidate on a validation split.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..config import Settings
from ..dataset import Dataset, IdMap, _align_catalog
from ..errors import InputError, SparkError
from ..models.als import ALSModel
from ..models.base import Recommender
from ..models.content import ContentModel
from ..models.itembased import ItemKNNModel
from ..models.popularity import PopularityModel
from ..weighting import MIN_DECAY, WeightingConfig

if TYPE_CHECKING:  # pyspark is an optional extra
    from pyspark.sql import DataFrame, SparkSession

    from ..training import Trained

log = logging.getLogger("recsys.spark")
Progress = Callable[[str], None]

WARM_MODELS = ("itemknn", "als", "popularity")
FEW_MODELS = (*WARM_MODELS, "content")
DEFAULT_POPULARITY = "customers"
"""The popularity ranking when popularity.mode is auto (the local engine chooses it on validation)."""
LOCAL_DRIVER_MEMORY = "4g"
SESSION_DEFAULTS = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
}


@dataclass(frozen=True)
class Plan:
    """Which models the Spark engine fits: one per segment, fixed by settings."""

    warm: str
    few: str
    popularity: dict[str, Any]

    @classmethod
    def from_settings(cls, settings: Settings) -> "Plan":
        router = settings["router"]
        warm = "itemknn" if router["collaborative"] == "auto" else router["collaborative"]
        if warm not in WARM_MODELS:
            raise InputError(
                f"--engine spark fits {', '.join(WARM_MODELS)} for warm customers, not '{warm}' "
                "(set router.collaborative, or train with --engine local)"
            )
        few = warm if router["few"] in ("auto", "same") else router["few"]
        if few not in FEW_MODELS:
            raise InputError(f"--engine spark fits {', '.join(FEW_MODELS)} for the few-products segment, not '{few}' (set router.few)")
        section = settings["popularity"]
        popularity = {
            "mode": DEFAULT_POPULARITY if section["mode"] == "auto" else section["mode"],
            "window_fraction": float(section["window_fraction"]) or None,
            "window_days": float(section["window_days"]) or None,
        }
        return cls(warm=warm, few=few, popularity=popularity)

    def spec(self, kind: str, settings: Settings) -> dict[str, Any]:
        """The model spec recorded in the manifest, as selection.fixed_spec writes it."""
        if kind == "popularity":
            return {"kind": "popularity", "popularity": self.popularity}
        return {"kind": kind, **({"decay": float(settings[kind]["decay"])} if kind == "itemknn" else {})}


@contextmanager
def session(settings: Settings) -> Iterator["SparkSession"]:
    """The running Spark session if there is one (spark-submit, tests), else one built from the
    [spark] settings and stopped afterwards.

    Under spark-submit the master and properties given to spark-submit win; the [spark] section's
    properties are applied only where spark-submit set none.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError("--engine spark needs pyspark: pip install -e '.[spark]' (and Java 17 for Spark 4)") from None
    # pyspark 4.x warns on every conversion that it does not yet fully support pandas 3; the conversions
    # used here (Arrow, plain columns) are checked by tests/engines against the local engine
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    section = settings["spark"]
    builder = SparkSession.builder.appName(section["app_name"])
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # started by spark-submit: its --master and --conf hold
    if not submitted:
        builder = builder.master(section["master"])
    defaults = dict(SESSION_DEFAULTS)
    if section["master"].startswith("local"):
        # Spark's 200 shuffle partitions are for clusters; on one machine they are mostly task overhead
        cores = section["master"].partition("[")[2].rstrip("]").split(",")[0]
        defaults["spark.sql.shuffle.partitions"] = str(2 * (int(cores) if cores.isdigit() else os.cpu_count() or 1))
        # in local mode the executors are threads of the driver's JVM: Spark's 1g default heap spills the self-join
        defaults["spark.driver.memory"] = LOCAL_DRIVER_MEMORY
    for key, value in {**defaults, **{k: v for k, v in section.items() if k.startswith("spark.")}}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    except Exception as error:  # py4j / PySparkRuntimeError: no Java, a bad master URL, ...
        raise SparkError(
            f"Spark could not start on master {section['master']!r}: {' '.join(str(error).split())[:400]} "
            "(Spark needs Java 17: set JAVA_HOME or install openjdk-17-jre-headless)"
        ) from None
    try:
        yield spark
    finally:
        spark.stop()


def fit_models_spark(
    spark: "SparkSession",
    events_uri: str,
    live_events: pd.DataFrame,
    catalog: pd.DataFrame,
    settings: Settings,
    weighting: WeightingConfig,
    progress: Progress | None = None,
) -> tuple["Trained", int]:
    """Fit the planned models with Spark on the events at `events_uri` (Parquet, canonical columns)
    plus `live_events`; (Trained, number of events)."""
    import time

    from ..training import Trained, content_config

    progress = progress or (lambda stage: None)
    plan = Plan.from_settings(settings)
    seconds: dict[str, float] = {}

    def timed(stage: str, build: Callable[[], Any]) -> Any:
        progress(stage)
        started = time.perf_counter()
        result = build()
        seconds[stage] = round(time.perf_counter() - started, 3)
        return result

    events = _events(spark, events_uri, live_events)
    pairs = _pairs(events, weighting).cache()
    try:
        dataset, n_events = timed("dataset", lambda: _dataset(events, pairs, catalog, weighting))
        popularity = timed("popularity", lambda: PopularityModel(**plan.popularity).fit(dataset))
        content = timed("content", lambda: ContentModel(content_config(settings)).fit(dataset))
        models: dict[str, Recommender] = {"popularity": popularity, "content": content}

        def fitted(kind: str) -> Recommender:
            if kind not in models:
                if kind == "itemknn":
                    models[kind] = _itemknn(spark, pairs, dataset, settings)
                elif kind == "als":
                    models[kind] = _als(spark, pairs, dataset, settings)
            return models[kind]

        collaborative, few = timed("collaborative", lambda: (fitted(plan.warm), fitted(plan.few)))
    finally:
        pairs.unpersist()
    selection = {
        "popularity": plan.popularity,
        "few": plan.spec(plan.few, settings),
        "warm": plan.spec(plan.warm, settings),
        "split": "none: engine spark, models fixed by settings",
        "table": [],
        "seconds": 0.0,
        "engine": "spark",
    }
    trained = Trained(
        dataset=dataset,
        popularity=popularity,
        content=content,
        collaborative=collaborative,
        few=few,
        selection=selection,
        seconds=seconds,
    )
    return trained, n_events


# --- the Spark jobs ---------------------------------------------------------------------------------


def _events(spark: "SparkSession", uri: str, live: pd.DataFrame) -> "DataFrame":
    """Canonical events (customer_id, product_id strings; type code; unix seconds) from Parquet + the live events."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, LongType, StringType, StructField, StructType

    columns = [
        F.col("customer_id").cast("string").alias("customer_id"),
        F.col("product_id").cast("string").alias("product_id"),
        F.col("type").cast("int").alias("type"),
        F.col("timestamp").cast("long").alias("timestamp"),
    ]
    events = spark.read.parquet(uri).select(*columns)
    if len(live):
        import pyarrow as pa

        schema = StructType(
            [
                StructField("customer_id", StringType(), False),
                StructField("product_id", StringType(), False),
                StructField("type", IntegerType(), False),
                StructField("timestamp", LongType(), False),
            ]
        )
        table = pa.table(
            {
                "customer_id": pa.array(live["customer_id"].astype(str).tolist(), pa.string()),
                "product_id": pa.array(live["product_id"].astype(str).tolist(), pa.string()),
                "type": pa.array(live["type"].to_numpy(dtype=np.int32)),
                "timestamp": pa.array(live["timestamp"].to_numpy(dtype=np.int64)),
            }
        )
        events = events.unionByName(spark.createDataFrame(table.to_pandas(), schema=schema))
    return events


def _pairs(events: "DataFrame", weighting: WeightingConfig) -> "DataFrame":
    """One row per (customer, product): n_view, n_cart, n_purchase, last_ts and the weight (weighting.pair_weights' rule)."""
    from pyspark.sql import functions as F

    from ..data.schema import CART, PURCHASE, VIEW

    pairs = events.groupBy("customer_id", "product_id").agg(
        F.sum((F.col("type") == VIEW).cast("int")).alias("n_view"),
        F.sum((F.col("type") == CART).cast("int")).alias("n_cart"),
        F.sum((F.col("type") == PURCHASE).cast("int")).alias("n_purchase"),
        F.max("timestamp").alias("last_ts"),
    )
    weight = F.lit(0.0)
    for column, event in (("n_view", "view_product"), ("n_cart", "add_to_cart"), ("n_purchase", "purchase_item")):
        once, several = weighting.scheme[event]
        value = F.when(F.col(column) >= 2, F.lit(float(several))).when(F.col(column) == 1, F.lit(float(once))).otherwise(F.lit(0.0))
        weight = F.greatest(weight, value)
    if weighting.half_life_days is not None:
        newest = F.max("last_ts").over(_whole())
        age_days = F.greatest(newest - F.col("last_ts"), F.lit(0)) / 86400.0
        weight = weight * F.greatest(F.pow(F.lit(0.5), age_days / weighting.half_life_days), F.lit(MIN_DECAY))
    return pairs.withColumn("weight", weight.cast("float"))


def _whole():
    from pyspark.sql import Window

    return Window.partitionBy()


def _dataset(events: "DataFrame", pairs: "DataFrame", catalog: pd.DataFrame, weighting: WeightingConfig) -> tuple[Dataset, int]:
    """The Dataset the artifact stores, from the pairs Spark aggregated: catalog products first (in
    catalog order), then products seen only in events, customers in id order."""
    n_events = int(events.count())
    local = pairs.select("customer_id", "product_id", "n_view", "n_cart", "n_purchase", "last_ts").toPandas()
    listed = catalog["product_id"].astype(object)
    items = IdMap.from_ids(listed).add_ids(np.sort(pd.unique(local["product_id"].to_numpy(dtype=object))))
    users = IdMap.from_ids(np.sort(pd.unique(local["customer_id"].to_numpy(dtype=object))))
    frame = pd.DataFrame(
        {
            "user": users.to_internal(local["customer_id"].to_numpy(dtype=object)).astype(np.int32),
            "item": items.to_internal(local["product_id"].to_numpy(dtype=object)).astype(np.int32),
            "n_view": local["n_view"].to_numpy(dtype=np.int32),
            "n_cart": local["n_cart"].to_numpy(dtype=np.int32),
            "n_purchase": local["n_purchase"].to_numpy(dtype=np.int32),
            "last_ts": local["last_ts"].to_numpy(dtype=np.int64),
        }
    )
    frame = frame.sort_values(["user", "item"], kind="stable", ignore_index=True)
    dataset = Dataset(
        users=users,
        items=items,
        pairs=frame,
        catalog=_align_catalog(catalog, items),
        weighting=weighting,
        n_listed=int(listed.nunique()),
    )
    return dataset, n_events


def neighbour_table(seen: "DataFrame", *, neighbours: int, shrink: float) -> "DataFrame":
    """(i, j, sim): for each product i its top `neighbours` products j by cosine similarity of the
    binarized customer columns, dot / (|i| |j| + shrink); ties broken by j.

    `seen` has one row per (customer_id, item) a customer interacted with, items as integers.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    norms = seen.groupBy("item").agg(F.sqrt(F.count("*").cast("double")).alias("norm"))
    left = seen.withColumnRenamed("item", "i")
    right = seen.withColumnRenamed("item", "j")
    # co-occurrence is symmetric: count each unordered pair once (half the join's output), then mirror it
    upper = left.join(right, "customer_id").where(F.col("i") < F.col("j")).groupBy("i", "j").agg(F.count("*").cast("double").alias("dot"))
    dots = upper.unionByName(upper.select(F.col("j").alias("i"), F.col("i").alias("j"), "dot"))
    scored = (
        dots.join(F.broadcast(norms.withColumnRenamed("item", "i").withColumnRenamed("norm", "norm_i")), "i")
        .join(F.broadcast(norms.withColumnRenamed("item", "j").withColumnRenamed("norm", "norm_j")), "j")
        .withColumn("sim", F.col("dot") / (F.col("norm_i") * F.col("norm_j") + F.lit(float(shrink))))
        .where(F.col("sim") > 0)
    )
    rank = F.row_number().over(Window.partitionBy("i").orderBy(F.desc("sim"), F.asc("j")))
    return scored.withColumn("rank", rank).where(F.col("rank") <= int(neighbours)).select("i", "j", "sim")


def _item_ids(spark: "SparkSession", dataset: Dataset) -> "DataFrame":
    """(product_id, item): the dataset's internal item index of every product, to join on."""
    frame = pd.DataFrame({"product_id": dataset.items.external_ids.astype(str), "item": np.arange(dataset.n_items, dtype=np.int32)})
    return spark.createDataFrame(frame)


def _itemknn(spark: "SparkSession", pairs: "DataFrame", dataset: Dataset, settings: Settings) -> ItemKNNModel:
    """An ItemKNNModel whose similarity matrix Spark computed (the state `ItemKNNModel.fit` leaves)."""
    from pyspark.sql import functions as F

    section = settings["itemknn"]
    seen = pairs.join(F.broadcast(_item_ids(spark, dataset)), "product_id").select("customer_id", "item")
    table = neighbour_table(seen, neighbours=int(section["neighbours"]), shrink=float(section["shrink"])).toPandas()
    n = dataset.n_items
    model = ItemKNNModel(neighbours=int(section["neighbours"]), shrink=float(section["shrink"]), decay=float(section["decay"]))
    model._interactions = _binary_interactions(dataset)
    model._last_seen = dataset.history().last_seen
    model.S = sparse.csr_matrix(
        (table["sim"].to_numpy(dtype=np.float32), (table["i"].to_numpy(dtype=np.int64), table["j"].to_numpy(dtype=np.int64))),
        shape=(n, n),
        dtype=np.float32,
    )
    model.S.sort_indices()
    return model


def _binary_interactions(dataset: Dataset) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix(dataset.interactions, dtype=np.float32, copy=True)
    matrix.eliminate_zeros()
    matrix.data = np.ones_like(matrix.data)
    return matrix


def _als(spark: "SparkSession", pairs: "DataFrame", dataset: Dataset, settings: Settings) -> ALSModel:
    """An ALSModel whose item factors Spark's ALS (implicit preferences) fitted on the pair weights.

    Spark's ALS scales the regularization by each row's number of ratings and uses confidence
    1 + alpha * weight (implicit uses alpha * weight), so equal settings give close, not equal, factors;
    a customer's factors are solved at recommend time by ALSModel itself, as with the local engine.
    """
    from pyspark.ml.recommendation import ALS
    from pyspark.sql import functions as F

    section = settings["als"]
    users = spark.createDataFrame(
        pd.DataFrame({"customer_id": dataset.users.external_ids.astype(str), "user": np.arange(dataset.n_users, dtype=np.int32)})
    )
    items = _item_ids(spark, dataset)
    ratings = pairs.join(F.broadcast(items), "product_id").join(users, "customer_id").select("user", "item", "weight")
    estimator = ALS(
        rank=int(section["factors"]),
        maxIter=int(section["iterations"]),
        regParam=float(section["regularization"]),
        alpha=float(section["alpha"]),
        implicitPrefs=True,
        seed=int(section["random_state"]),
        userCol="user",
        itemCol="item",
        ratingCol="weight",
    )
    factors = estimator.fit(ratings).itemFactors.toPandas()
    model = ALSModel(**{key: section[key] for key in ("factors", "iterations", "regularization", "alpha", "random_state", "num_threads")})
    matrix = sparse.csr_matrix(dataset.interactions, dtype=np.float32)
    every = np.zeros((dataset.n_items, model.factors), dtype=np.float32)
    if len(factors):
        every[factors["id"].to_numpy(dtype=np.int64)] = np.stack(factors["features"].to_numpy()).astype(np.float32)
    items = np.flatnonzero(np.bincount(matrix.indices, minlength=matrix.shape[1]) > 0)
    model.with_item_factors(matrix, items, every[items])
    return model
