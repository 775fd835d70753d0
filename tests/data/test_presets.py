"""Preset readers: hand-written fixtures for each mapping, plus the real public copies when present."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from recsys_cli.data.presets import (
    PRESETS,
    read_beauty,
    read_movielens,
    read_online_retail,
    read_retailrocket,
)
from recsys_cli.data.readers import RawInput
from recsys_cli.errors import InputError

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


def rows(frame: pd.DataFrame, *columns: str) -> list[tuple]:
    return [tuple(r) for r in frame[list(columns)].itertuples(index=False)]


def test_registry_names_every_preset() -> None:
    assert set(PRESETS) == {"retailrocket", "movielens", "online-retail", "beauty"}


@pytest.mark.parametrize("name", ["retailrocket", "movielens", "online-retail", "beauty"])
def test_missing_files_raise_input_error_naming_the_file(name: str, tmp_path: Path) -> None:
    expected = {
        "retailrocket": "events.csv",
        "movielens": "u.data or ratings.csv",
        "online-retail": ".parquet, .xlsx or .csv",
        "beauty": "Beauty.txt",
    }[name]
    with pytest.raises(InputError) as info:
        PRESETS[name](tmp_path)
    message = str(info.value)
    assert expected in message and str(tmp_path) in message and "\n" not in message


# ---------------------------------------------------------------------------------------------
# retailrocket


def test_retailrocket_maps_events_and_ms_to_seconds(tmp_path: Path) -> None:
    write(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,318965,4000\n"
        "1433221999999,111016,wishlist,318965,\n"
        "\n"
        "soon,111016,view,318965,\n",
    )
    raw = read_retailrocket(tmp_path)

    assert isinstance(raw, RawInput)
    assert rows(raw.events, "customer_id", "product_id", "type", "timestamp", "line") == [
        ("257597", "355908", "view_product", "1433221332", 2),
        ("992329", "248676", "add_to_cart", "1433224214", 3),
        ("111016", "318965", "purchase_item", "1433221999", 4),
    ]
    assert set(raw.events["file"]) == {"events.csv"}
    assert rows(raw.rejects, "file", "line", "reason") == [
        ("events.csv", 5, "unknown event 'wishlist'"),
        ("events.csv", 7, "bad timestamp 'soon'"),
    ]
    assert sorted(raw.catalog["product_id"]) == ["248676", "318965", "355908"]
    assert raw.files == ["events.csv"]


def test_retailrocket_notes_unread_item_properties(tmp_path: Path) -> None:
    write(tmp_path / "events.csv", "timestamp,visitorid,event,itemid,transactionid\n1000,1,view,2,\n")
    write(tmp_path / "item_properties_part1.csv", "timestamp,itemid,property,value\n")
    raw = read_retailrocket(tmp_path)
    assert any("item_properties_part1.csv" in note for note in raw.notes)


# ---------------------------------------------------------------------------------------------
# movielens


def test_movielens_100k_ratings_and_genres(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t5\t891717742\n22\t377\t4\t878887116\n7\t242\tx\t1\n")
    flags_242 = ["0"] * 19
    flags_242[3] = flags_242[4] = flags_242[5] = "1"  # Animation, Children's, Comedy
    flags_302 = ["0"] * 19
    write(
        tmp_path / "u.item",
        "242|Kolya (1996)|24-Jan-1997||http://x|" + "|".join(flags_242) + "\n"
        "302|L.A. Confidential (1997)|01-Jan-1997||http://y|" + "|".join(flags_302) + "\n"
        "377|Heavyweights (1994)|01-Jan-1994||http://z|" + "|".join(["0"] * 18 + ["1"]) + "\n",
        encoding="latin-1",
    )
    raw = read_movielens(tmp_path)

    assert rows(raw.events, "customer_id", "product_id", "type", "timestamp", "line") == [
        ("196", "242", "view_product", "881250949", 1),
        ("186", "302", "purchase_item", "891717742", 2),
        ("22", "377", "add_to_cart", "878887116", 3),
    ]
    assert rows(raw.rejects, "file", "line", "reason") == [("u.data", 4, "bad rating 'x'")]
    assert rows(raw.catalog, "product_id", "category_path", "description", "line") == [
        ("242", "Animation|Children's|Comedy", "Kolya (1996)", 1),
        ("302", "", "L.A. Confidential (1997)", 2),
        ("377", "Western", "Heavyweights (1994)", 3),
    ]


def test_movielens_ratings_csv_half_stars_and_movies_csv(tmp_path: Path) -> None:
    write(
        tmp_path / "ratings.csv",
        "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n1,3,3.5,964981247\n2,6,5.0,964982224\n",
    )
    write(
        tmp_path / "movies.csv",
        'movieId,title,genres\n1,"Toy Story (1995)",Adventure|Animation\n3,"Money, Money (1995)",(no genres listed)\n',
    )
    raw = read_movielens(tmp_path)

    assert rows(raw.events, "product_id", "type", "line") == [
        ("1", "add_to_cart", 2),
        ("3", "view_product", 3),
        ("6", "purchase_item", 4),
    ]
    assert rows(raw.catalog, "product_id", "category_path", "description", "line") == [
        ("1", "Adventure|Animation", "Toy Story (1995)", 2),
        ("3", "", "Money, Money (1995)", 3),
    ]


# ---------------------------------------------------------------------------------------------
# online-retail

RETAIL_CSV = (
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom\n"
    "536366,85123A,WHITE HANGING HEART T-LIGHT HOLDER,2,2010-12-01 08:28:00,2.95,17850.0,United Kingdom\n"
    "536367,85123A,white heart holder,1,2010-12-01 08:34:00,3.10,13047,United Kingdom\n"
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.50,14527.0,United Kingdom\n"
    "536414,22139,,56,2010-12-01 11:52:00,0.00,,United Kingdom\n"
    "536380,22961,JAM MAKING SET PRINTED,-3,2010-12-01 09:41:00,1.45,17809.0,United Kingdom\n"
    "536381,22961,JAM MAKING SET PRINTED,12,2010-12-01 09:45:00,1.45,17809.0,United Kingdom\n"
)


def test_online_retail_csv_mapping_rejects_and_catalog(tmp_path: Path) -> None:
    write(tmp_path / "Online Retail.csv", RETAIL_CSV)
    raw = read_online_retail(tmp_path)

    assert rows(raw.events, "customer_id", "product_id", "type", "timestamp", "line") == [
        ("17850", "85123A", "purchase_item", "1291191960", 2),
        ("17850", "85123A", "purchase_item", "1291192080", 3),
        ("13047", "85123A", "purchase_item", "1291192440", 4),
        ("17809", "22961", "purchase_item", "1291196700", 8),
    ]
    assert rows(raw.rejects, "file", "line", "reason") == [
        ("Online Retail.csv", 5, "cancelled invoice C536379"),
        ("Online Retail.csv", 6, "no CustomerID"),
        ("Online Retail.csv", 7, "non-positive quantity -3"),
    ]
    catalog = raw.catalog.set_index("product_id")
    assert catalog.loc["85123A", "price"] == pytest.approx(2.95)  # median of 2.55, 2.95, 3.10
    assert catalog.loc["85123A", "description"] == "WHITE HANGING HEART T-LIGHT HOLDER"  # the most frequent
    assert catalog.loc["22961", "price"] == pytest.approx(1.45)
    assert set(catalog.index) == {"85123A", "22961"}  # products seen only in rejected rows are not listed
    assert any("1 cancelled-invoice rows rejected" in note for note in raw.notes)


def test_online_retail_parquet_keeps_ids_as_text_and_numbers_rows(tmp_path: Path) -> None:
    frame = pd.read_csv(io.StringIO(RETAIL_CSV), dtype={"InvoiceNo": str, "StockCode": str})
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    assert frame["CustomerID"].dtype == "float64"  # as in the UCI copy
    frame.to_parquet(tmp_path / "online_retail.parquet")
    raw = read_online_retail(tmp_path)

    assert list(raw.events["customer_id"]) == ["17850", "17850", "13047", "17809"]
    assert list(raw.events["product_id"]) == ["85123A", "85123A", "85123A", "22961"]
    assert list(raw.events["line"]) == [1, 2, 3, 7]  # 1-based row number: Parquet has no header line
    assert list(raw.rejects["line"]) == [4, 5, 6]


def test_online_retail_latin1_csv_and_bad_dates(tmp_path: Path) -> None:
    text = RETAIL_CSV.replace("JAM MAKING SET PRINTED,12,2010-12-01 09:45:00", "CAFÉ SET,12,someday")
    write(tmp_path / "retail.csv", text, encoding="latin-1")
    raw = read_online_retail(tmp_path)
    assert rows(raw.rejects, "line", "reason")[-1] == (8, "bad InvoiceDate 'someday'")
    assert len(raw.events) + len(raw.rejects) == 7


def test_online_retail_xlsx_without_openpyxl_is_an_input_error(tmp_path: Path) -> None:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        (tmp_path / "Online Retail.xlsx").write_bytes(b"PK")
        with pytest.raises(InputError, match="openpyxl"):
            read_online_retail(tmp_path)
    else:
        pytest.skip("openpyxl is installed")


def test_online_retail_refuses_two_candidate_files(tmp_path: Path) -> None:
    write(tmp_path / "a.csv", RETAIL_CSV)
    write(tmp_path / "b.csv", RETAIL_CSV)
    with pytest.raises(InputError, match="a.csv, b.csv"):
        read_online_retail(tmp_path)


# ---------------------------------------------------------------------------------------------
# beauty


def test_beauty_sequences_become_ordered_purchases(tmp_path: Path) -> None:
    write(tmp_path / "Beauty.txt", "1 10 11 12\n2 11\n3\n\n4 12 10\n")
    write(tmp_path / "Beauty_item2attributes.json", json.dumps({"10": [1, 2], "11": [], "99": [3]}))
    raw = read_beauty(tmp_path)

    assert rows(raw.events, "customer_id", "product_id", "type", "timestamp", "line") == [
        ("1", "10", "purchase_item", "1", 1),
        ("1", "11", "purchase_item", "2", 1),
        ("1", "12", "purchase_item", "3", 1),
        ("2", "11", "purchase_item", "1", 2),
        ("4", "12", "purchase_item", "1", 5),
        ("4", "10", "purchase_item", "2", 5),
    ]
    assert rows(raw.rejects, "file", "line", "reason") == [("Beauty.txt", 3, "customer with no items")]
    catalog = raw.catalog.set_index("product_id")
    assert catalog.loc["10", "category_path"] == "a1|a2"
    assert catalog.loc["11", "category_path"] == ""
    assert catalog.loc["12", "file"] == "Beauty.txt"  # no attributes: named by its first appearance
    assert set(catalog.index) == {"10", "11", "12", "99"}
    assert any("--split last" in note for note in raw.notes)


# ---------------------------------------------------------------------------------------------
# real public copies (skipped when ../shared/datasets is absent)


def dataset_dir(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.mark.datasets
def test_real_movielens_100k() -> None:
    raw = read_movielens(dataset_dir("movielens-100k"))
    events = raw.events
    assert len(events) == 100_000 and raw.rejects.empty
    assert events["customer_id"].nunique() == 943
    assert events["product_id"].nunique() == 1_682
    assert len(raw.catalog) == 1_682
    assert set(raw.catalog["product_id"]) == set(events["product_id"])
    assert (raw.catalog["category_path"] != "").all()
    toy_story = raw.catalog.set_index("product_id").loc["1"]
    assert toy_story["category_path"] == "Animation|Children's|Comedy"
    assert toy_story["description"] == "Toy Story (1995)"


@pytest.mark.datasets
def test_real_online_retail_accounts_for_every_row() -> None:
    directory = dataset_dir("online-retail")
    raw = read_online_retail(directory)
    total = len(pd.read_parquet(directory / "online_retail.parquet", columns=["InvoiceNo"]))
    events = raw.events

    assert total == 541_909
    assert len(events) + len(raw.rejects) == total
    assert sorted(pd.concat([events["line"], raw.rejects["line"]])) == list(range(1, total + 1))
    assert len(events) == 397_924
    assert events["customer_id"].nunique() == 4_339
    assert not events["customer_id"].str.contains(".", regex=False).any()
    assert "85123A" in set(events["product_id"])
    assert len(raw.catalog) == events["product_id"].nunique() == 3_665
    reasons = raw.rejects["reason"]
    assert reasons.str.startswith("cancelled invoice C").sum() == 9_288
    assert (reasons == "no CustomerID").sum() == 135_080 - 383  # 383 cancelled lines also lack one


@pytest.mark.datasets
def test_real_amazon_beauty() -> None:
    raw = read_beauty(dataset_dir("amazon-beauty"))
    events = raw.events
    assert len(events) == 198_502 and raw.rejects.empty
    assert events["customer_id"].nunique() == 22_363
    assert events["product_id"].nunique() == 12_101
    assert set(events["product_id"]) <= set(raw.catalog["product_id"])
    assert (raw.catalog["category_path"].str.match(r"^a\d+(\|a\d+)*$")).mean() > 0.9


def test_a_presets_own_rules_are_not_input_errors_for_the_publish_guard(tmp_path: Path) -> None:
    from recsys_cli.data.ingest import ingest
    from recsys_cli.publish_guard import check

    (tmp_path / "data").mkdir()
    write(tmp_path / "data" / "Online Retail.csv", RETAIL_CSV)
    snapshot = ingest(tmp_path / "data", tmp_path / "artifacts", fmt="online-retail")
    assert snapshot.summary["rejected"] == 3 and snapshot.summary["event_lines"] == 7  # 3 of 7 lines dropped by the preset
    assert snapshot.summary["event_lines_rejected"] == 0
    check(tmp_path / "artifacts", {"events": 4, "customers": 3, "products": 2}, snapshot.summary)  # publishes
