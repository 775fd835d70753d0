"""The synthetic store generator: sizes, determinism, format, and structure a model can learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_cli.data.schema import CATALOG_COLUMNS, CATEGORY_SEPARATOR, EVENT_COLUMNS, EVENT_TYPES, GENDERS
from recsys_cli.data.synthetic import PRESETS, GenerateSummary, generate
from recsys_cli.errors import InputError

COMMITTED = Path(__file__).resolve().parents[2] / "data"
FILES = ("events.csv", "catalog.csv")
DAY = 86400


def _read(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    events = pd.read_csv(out / "events.csv", dtype={"customer_id": str, "product_id": str, "type": str})
    catalog = pd.read_csv(out / "catalog.csv", dtype=str, keep_default_na=False)
    return events, catalog


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateSummary, pd.DataFrame, pd.DataFrame]:
    out = tmp_path_factory.mktemp("seed")
    summary = generate(out, **PRESETS["seed"], seed=42)
    return (summary, *_read(out))


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, **PRESETS["sample"], seed=42)
    return out


def _close(actual: float, target: float, tolerance: float = 0.02) -> bool:
    return abs(actual - target) <= tolerance * target


# --- sizes ------------------------------------------------------------------------------------


def test_seed_preset_hits_the_target_counts(seed_run) -> None:
    _assert_seed_counts(*seed_run)


def test_seed_preset_hits_the_target_counts_with_another_seed(tmp_path: Path) -> None:
    summary = generate(tmp_path, **PRESETS["seed"], seed=7)
    _assert_seed_counts(summary, *_read(tmp_path))


def _assert_seed_counts(summary: GenerateSummary, events: pd.DataFrame, catalog: pd.DataFrame) -> None:
    """The original store's counts, within 2% (events and catalog size exactly)."""
    assert events["product_id"].nunique() == 28_369, "every product of the original was seen in its events"
    assert len(events) == summary.events == 653_419
    counts = events["type"].value_counts()
    for name, target in {"view_product": 592_299, "add_to_cart": 46_121, "purchase_item": 14_999}.items():
        assert _close(counts[name], target), (name, counts[name])
        assert summary.by_type[name] == counts[name]
    assert events["customer_id"].nunique() == summary.customers == 83_762
    assert len(catalog) == catalog["product_id"].nunique() == summary.products == 28_369

    pairs = len(events.drop_duplicates(["customer_id", "product_id"]))
    assert pairs == summary.pairs
    assert _close(pairs, 358_000), pairs
    per_customer = events["customer_id"].value_counts()
    assert _close((per_customer > 7).sum(), 18_800), (per_customer > 7).sum()
    per_product = events["product_id"].value_counts()
    assert _close((per_product > 50).sum(), 2_300), (per_product > 50).sum()
    assert set(events["product_id"]) <= set(catalog["product_id"])


def test_odd_sizes_are_exact_and_every_customer_appears(tmp_path: Path) -> None:
    summary = generate(tmp_path / "nested" / "out", customers=37, products=11, events=523, seed=3)
    events, catalog = _read(tmp_path / "nested" / "out")
    assert len(events) == summary.events == 523
    assert events["customer_id"].nunique() == 37
    assert len(catalog) == 11
    assert summary.files == [str(tmp_path / "nested" / "out" / name) for name in FILES]


def test_one_customer_one_product_one_event(tmp_path: Path) -> None:
    summary = generate(tmp_path, customers=1, products=1, events=1)
    events, _ = _read(tmp_path)
    assert summary.by_type == {"view_product": 1, "add_to_cart": 0, "purchase_item": 0}
    assert events["type"].tolist() == ["view_product"]


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"customers": 0, "products": 10, "events": 10}, "customers must be positive"),
        ({"customers": 10, "products": -1, "events": 10}, "products must be positive"),
        ({"customers": 10, "products": 10, "events": 0}, "events must be positive"),
        ({"customers": 100, "products": 10, "events": 99}, "at least customers"),
        ({"customers": 10, "products": 10, "events": 10**9}, "above the limit"),
        ({"customers": 10.5, "products": 10, "events": 100}, "whole number"),
        ({"customers": True, "products": 10, "events": 100}, "whole number"),
        ({"customers": 10, "products": 10, "events": 100, "seed": -1}, "seed"),
    ],
)
def test_nonsense_sizes_are_refused(tmp_path: Path, sizes: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        generate(tmp_path / "out", **sizes)
    assert not (tmp_path / "out").exists()


def test_progress_reports_each_stage(tmp_path: Path) -> None:
    seen: list[str] = []
    generate(tmp_path, customers=20, products=30, events=200, progress=seen.append)
    assert seen == ["catalog", "customers", "events", "writing"]


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path, sample_dir: Path) -> None:
    generate(tmp_path / "again", **PRESETS["sample"], seed=42)
    generate(tmp_path / "other", **PRESETS["sample"], seed=43)
    for name in FILES:
        assert (tmp_path / "again" / name).read_bytes() == (sample_dir / name).read_bytes()
        assert (tmp_path / "other" / name).read_bytes() != (sample_dir / name).read_bytes()


def test_committed_sample_is_what_the_generator_makes(sample_dir: Path) -> None:
    for name in FILES:
        assert (COMMITTED / name).read_bytes() == (sample_dir / name).read_bytes(), (
            f"data/{name} drifted from the generator; regenerate it with generate(Path('data'), **PRESETS['sample'], seed=42)"
        )
    assert sum((COMMITTED / name).stat().st_size for name in FILES) < 3_000_000


# --- format -------------------------------------------------------------------------------------


def test_files_are_in_the_canonical_format(sample_dir: Path) -> None:
    events, catalog = _read(sample_dir)
    assert (sample_dir / "events.csv").read_text().splitlines()[0] == ",".join(EVENT_COLUMNS)
    assert (sample_dir / "catalog.csv").read_text().splitlines()[0] == ",".join(CATALOG_COLUMNS)
    assert set(events["type"]) == set(EVENT_TYPES)
    assert events["customer_id"].str.fullmatch(r"[1-9]\d{5,}").all()
    assert catalog["product_id"].str.fullmatch(r"[1-9]\d{4,}").all()
    assert events["timestamp"].dtype == np.int64
    assert events["timestamp"].is_monotonic_increasing
    span = events["timestamp"].max() - events["timestamp"].min()
    assert 80 * DAY < span <= 90 * DAY

    assert catalog["price"].str.fullmatch(r"\d+\.\d{2}").all()
    assert (catalog["price"].astype(float) > 0).all()
    assert set(catalog["gender"]) <= set(GENDERS)
    assert catalog["description"].str.contains("<p>").mean() > 0.5
    assert catalog["description"].str.contains("<b>").any()
    assert catalog["category_id"].nunique() == catalog["category_path"].nunique()


def test_catalog_looks_like_a_sports_and_fashion_store(seed_run) -> None:
    _, _, catalog = seed_run
    tokens = {token for path in catalog["category_path"] for token in path.split(CATEGORY_SEPARATOR)}
    assert 340 <= len(tokens) <= 370
    assert {"Women", "Men", "Kids", "Sports", "Women's Ballerinas", "Running Shoes"} <= tokens

    top = catalog["category_path"].str.split(CATEGORY_SEPARATOR).str[0]
    expected = {"Women": "Woman", "Men": "Man", "Kids": "Child", "Home & Lifestyle": "Other"}
    for level, gender in expected.items():
        assert (catalog.loc[top == level, "gender"] == gender).all(), level
    assert catalog.loc[top == "Sports", "gender"].value_counts().idxmax() == "Unisex"

    # Long-tailed brands: the biggest 5% of brands make most products, the smaller half very few.
    sizes = catalog["brand"].value_counts().to_numpy()
    assert len(sizes) > 300
    assert sizes[: len(sizes) // 20].sum() > 0.5 * len(catalog)
    assert sizes[len(sizes) // 2 :].sum() < 0.1 * len(catalog)

    # Prices are log-normal around a category's level: footwear dearer than socks.
    price = catalog["price"].astype(float)
    footwear = price[catalog["category_path"].str.contains("Footwear")].median()
    socks = price[catalog["category_path"].str.endswith("Socks")].median()
    assert footwear > 2 * socks


# --- structure ----------------------------------------------------------------------------------


def test_carts_follow_views_and_purchases_follow_carts(sample_dir: Path) -> None:
    events, _ = _read(sample_dir)
    events = events.reset_index(names="row")
    first = events.pivot_table(index=["customer_id", "product_id"], columns="type", values="row", aggfunc="min")
    carted = first["add_to_cart"].notna()
    bought = first["purchase_item"].notna()
    assert (first.loc[carted, "view_product"] < first.loc[carted, "add_to_cart"]).all()
    assert (first.loc[bought, "add_to_cart"] < first.loc[bought, "purchase_item"]).all()


def test_popularity_and_activity_are_long_tailed(seed_run) -> None:
    _, events, catalog = seed_run
    per_product = events["product_id"].value_counts().to_numpy()
    assert per_product[: len(catalog) // 100].sum() > 0.15 * len(events)
    per_customer = events["customer_id"].value_counts()
    assert per_customer.median() <= 4 < per_customer.mean()
    assert per_customer.max() > 100


def test_later_purchases_follow_earlier_preferences(sample_dir: Path) -> None:
    events, catalog = _read(sample_dir)
    catalog["subcategory"] = catalog["category_path"].str.split(CATEGORY_SEPARATOR).str[:2].str.join("|")
    events = events.merge(catalog[["product_id", "subcategory", "brand"]], on="product_id")
    bounds = events.groupby("customer_id")["timestamp"].agg(["min", "max"])
    midpoint = events["customer_id"].map((bounds["min"] + bounds["max"]) / 2)
    early = events[events["timestamp"] <= midpoint]
    late = events[(events["timestamp"] > midpoint) & (events["type"] == "purchase_item")]
    assert len(late) > 100

    rng = np.random.default_rng(0)
    for column, factor in (("subcategory", 2.0), ("brand", 1.3)):
        seen = set(zip(early["customer_id"], early[column], strict=True))
        hit = np.mean([key in seen for key in zip(late["customer_id"], late[column], strict=True)])
        # Chance: the same purchases handed to random other buyers.
        shuffled = rng.permutation(late[column].to_numpy())
        chance = np.mean([key in seen for key in zip(late["customer_id"], shuffled, strict=True)])
        assert hit > factor * chance, (column, hit, chance)


def test_sessions_are_bursts_of_events(sample_dir: Path) -> None:
    events, _ = _read(sample_dir)
    gaps = events.sort_values(["customer_id", "timestamp"], kind="stable").groupby("customer_id")["timestamp"].diff()
    gaps = gaps.dropna()
    # Most consecutive events of a customer are minutes apart (same session), some days apart.
    assert (gaps < 600).mean() > 0.5
    assert (gaps > DAY).mean() > 0.05
