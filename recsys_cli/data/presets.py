"""Readers for public data formats (`recsys ingest --data DIR --format NAME`).

Each preset maps its source to the same `RawInput` the canonical CSV reader produces: events with
canonical type names and unix-second timestamps (as strings), a catalog with whatever canonical
columns the source can fill, and a reject for every source row the preset's own rules refuse, so
that accepted + rejected always equals the rows in the source. Values are otherwise left for
ingest to validate.

Line numbers: for text files, the exact 1-based physical line (the header, where there is one, is
line 1; quoted newlines counted), read by the same reader as canonical CSVs, whose malformed lines
become rejects; blank lines (and lines whose fields are all empty) are not rows. For Parquet/Excel sources and JSON objects, see the reader's docstring.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_cli.data.readers import REJECT_COLUMNS, RawInput, read_table
from recsys_cli.data.schema import CATEGORY_SEPARATOR
from recsys_cli.errors import InputError

EVENT_FRAME_COLUMNS = ("customer_id", "product_id", "type", "timestamp", "file", "line")

RETAILROCKET_EVENTS = {"view": "view_product", "addtocart": "add_to_cart", "transaction": "purchase_item"}

MOVIELENS_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
"""The 19 genre flags of MovieLens-100k's u.item, in the order of u.genre."""

ONLINE_RETAIL_COLUMNS = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# helpers


def _require(data_dir: Path, preset: str, *alternatives: str) -> Path:
    """The first of `alternatives` present in `data_dir`, or an InputError naming them all."""
    for name in alternatives:
        path = data_dir / name
        if path.is_file():
            return path
    expected = " or ".join(alternatives)
    raise InputError(f"--format {preset}: expected {expected} in {data_dir}")


def _read_text_table(path: Path, *, sep: str, header: bool, names: list[str] | None = None, **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A delimited file as all-string columns ("" for empty fields) plus its exact 1-based physical
    `line`, and the malformed lines as rejects: the canonical reader's rules (readers.read_table)."""
    return read_table(path, sep=sep, header=header, names=names, skip_blank=True, **options)


def _require_columns(frame: pd.DataFrame, path: Path, columns: tuple[str, ...] | list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path.name}: missing column(s) {', '.join(missing)}")


def _rejects(file: str, lines: pd.Series, reasons: pd.Series | str) -> pd.DataFrame:
    """A rejects frame (file, line, reason)."""
    lines = lines.astype(np.int64).to_numpy()
    if isinstance(reasons, str):
        reason = np.full(len(lines), reasons, dtype=object)
    else:
        reason = reasons.astype(str).to_numpy()
    return pd.DataFrame({"file": file, "line": lines, "reason": reason}, columns=list(REJECT_COLUMNS))


def _concat_rejects(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=list(REJECT_COLUMNS))
    return pd.concat(parts, ignore_index=True).sort_values(["file", "line"], kind="stable", ignore_index=True)


def _events(customer, product, types, seconds, file: str, line) -> pd.DataFrame:
    """The canonical events frame; `seconds` (int) becomes decimal text."""

    def column(values) -> pd.Series:
        return values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)

    return pd.DataFrame(
        {
            "customer_id": column(customer).astype(str),
            "product_id": column(product).astype(str),
            "type": column(types).astype(str),
            "timestamp": column(seconds).astype(np.int64).astype(str),
            "file": file,
            "line": column(line).astype(np.int64),
        },
        columns=list(EVENT_FRAME_COLUMNS),
    )


def _seen_products(events: pd.DataFrame) -> pd.DataFrame:
    """One catalog row per product in `events`, named by its first appearance."""
    first = events.drop_duplicates("product_id")
    return first[["product_id", "file", "line"]].reset_index(drop=True)


def _id_text(values: pd.Series) -> pd.Series:
    """Ids as text: integral numbers without ".0" (17850.0 -> "17850"), strings as given."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        finite = values.dropna()
        if len(finite) == 0 or bool((finite % 1 == 0).all()):
            return values.astype("Int64").astype(str).where(values.notna(), "")
        return values.astype(str).where(values.notna(), "")
    text = values.astype(str).where(values.notna(), "").str.strip()
    return text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)


def _count_note(preset: str, count: int, what: str) -> str:
    return f"{preset}: {count:,} {what}"


# ---------------------------------------------------------------------------------------------
# retailrocket


def read_retailrocket(data_dir: Path) -> RawInput:
    """RetailRocket `events.csv` (timestamp,visitorid,event,itemid,transactionid; ms timestamps).

    view/addtocart/transaction -> view_product/add_to_cart/purchase_item; any other event name is
    rejected ("unknown event 'x'"), as is a timestamp that is not a whole number of milliseconds.
    Timestamps are floored to seconds. `item_properties*.csv` and `category_tree.csv` are not read
    (their values are hashed and change over time); the catalog is the product ids seen.
    """
    path = _require(data_dir, "retailrocket", "events.csv")
    raw, malformed = _read_text_table(path, sep=",", header=True)
    _require_columns(raw, path, ("timestamp", "visitorid", "event", "itemid"))

    millis = pd.to_numeric(raw["timestamp"], errors="coerce")
    bad_time = millis.isna() | (millis % 1 != 0)
    types = raw["event"].map(RETAILROCKET_EVENTS)
    unknown = types.isna() & ~bad_time
    ok = ~bad_time & ~unknown

    rejects = _concat_rejects(
        [
            malformed,
            _rejects(path.name, raw.loc[bad_time, "line"], "bad timestamp '" + raw.loc[bad_time, "timestamp"] + "'"),
            _rejects(path.name, raw.loc[unknown, "line"], "unknown event '" + raw.loc[unknown, "event"] + "'"),
        ]
    )
    good = raw.loc[ok]
    seconds = np.floor_divide(millis[ok].to_numpy(dtype=np.float64), 1000).astype(np.int64)
    events = _events(good["visitorid"], good["itemid"], types[ok], seconds, path.name, good["line"])

    notes = [f"retailrocket: {path.name} timestamps in unix ms, floored to seconds"]
    ignored = sorted(p.name for p in data_dir.glob("item_properties*.csv"))
    if (data_dir / "category_tree.csv").is_file():
        ignored.append("category_tree.csv")
    if ignored:
        notes.append(f"retailrocket: not read: {', '.join(ignored)} (catalog is the product ids seen)")
    if bad_time.any():
        notes.append(_count_note("retailrocket", int(bad_time.sum()), "rows with a bad timestamp rejected"))
    if unknown.any():
        notes.append(_count_note("retailrocket", int(unknown.sum()), "rows with an unknown event rejected"))
    return RawInput(events=events, catalog=_seen_products(events), rejects=rejects, notes=notes, files=[path.name])


# ---------------------------------------------------------------------------------------------
# movielens


def _rating_types(rating: pd.Series) -> np.ndarray:
    """Rating -> event type: >= 5 purchase_item, >= 4 add_to_cart, else view_product."""
    return np.select([rating >= 5, rating >= 4], ["purchase_item", "add_to_cart"], "view_product").astype(object)


def _movielens_catalog_100k(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = ["product_id", "title", "release", "video_release", "url", *MOVIELENS_GENRES]
    items, malformed = _read_text_table(path, sep="|", header=False, names=names, encoding="latin-1", quoted=False)
    flags = items[list(MOVIELENS_GENRES)].to_numpy() == "1"
    genre_names = np.array(MOVIELENS_GENRES, dtype=object)
    # Vectorized "|".join over the flagged genres: append a separator to each flagged name, sum, trim.
    tokens = np.where(flags, genre_names + CATEGORY_SEPARATOR, "")
    paths = pd.Series(tokens.sum(axis=1) if len(items) else [], dtype=object).str.rstrip(CATEGORY_SEPARATOR)
    catalog = pd.DataFrame(
        {
            "product_id": items["product_id"].to_numpy(dtype=object),
            "category_path": paths.to_numpy(dtype=object),
            "description": items["title"].to_numpy(dtype=object),
            "file": path.name,
            "line": items["line"].to_numpy(),
        }
    )
    return catalog, malformed


def _movielens_catalog_csv(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    movies, malformed = _read_text_table(path, sep=",", header=True)
    _require_columns(movies, path, ("movieId", "title", "genres"))
    genres = movies["genres"].where(movies["genres"] != "(no genres listed)", "")
    catalog = pd.DataFrame(
        {
            "product_id": movies["movieId"].to_numpy(dtype=object),
            "category_path": genres.to_numpy(dtype=object),
            "description": movies["title"].to_numpy(dtype=object),
            "file": path.name,
            "line": movies["line"].to_numpy(),
        }
    )
    return catalog, malformed


def read_movielens(data_dir: Path) -> RawInput:
    """MovieLens `u.data` (100k: user, item, rating, unix ts; tab-separated, no header) or `ratings.csv`.

    Ratings become events: >= 5 purchase_item, >= 4 add_to_cart, anything lower view_product
    (so 4.5 is add_to_cart). A rating that is not a number is rejected. Genres from `u.item` or
    `movies.csv` (optional) become category_path and the title the description.
    """
    path = _require(data_dir, "movielens", "u.data", "ratings.csv")
    if path.name == "u.data":
        raw, malformed = _read_text_table(path, sep="\t", header=False, names=["userId", "movieId", "rating", "timestamp"])
    else:
        raw, malformed = _read_text_table(path, sep=",", header=True)
        _require_columns(raw, path, ("userId", "movieId", "rating", "timestamp"))

    rating = pd.to_numeric(raw["rating"], errors="coerce")
    bad = rating.isna()
    good = raw.loc[~bad]
    events = pd.DataFrame(
        {
            "customer_id": good["userId"].to_numpy(dtype=object),
            "product_id": good["movieId"].to_numpy(dtype=object),
            "type": _rating_types(rating[~bad]),
            "timestamp": good["timestamp"].to_numpy(dtype=object),  # already unix seconds
            "file": path.name,
            "line": good["line"].to_numpy(),
        },
        columns=list(EVENT_FRAME_COLUMNS),
    )
    rejects = [malformed, _rejects(path.name, raw.loc[bad, "line"], "bad rating '" + raw.loc[bad, "rating"] + "'")]

    notes = [f"movielens: {path.name} ratings >= 5 -> purchase_item, >= 4 -> add_to_cart, lower -> view_product"]
    if bad.any():
        notes.append(_count_note("movielens", int(bad.sum()), "rows with a bad rating rejected"))
    files = [path.name]
    items_path = next((data_dir / n for n in ("u.item", "movies.csv") if (data_dir / n).is_file()), None)
    if items_path is None:
        catalog = _seen_products(events)
        notes.append("movielens: no u.item or movies.csv; catalog has product ids only")
    else:
        reader = _movielens_catalog_100k if items_path.name == "u.item" else _movielens_catalog_csv
        catalog, catalog_malformed = reader(items_path)
        rejects.append(catalog_malformed)
        files.append(items_path.name)
    return RawInput(events=events, catalog=catalog, rejects=_concat_rejects(rejects), notes=notes, files=files)


# ---------------------------------------------------------------------------------------------
# online-retail


def _find_online_retail(data_dir: Path) -> Path:
    for pattern in ("*.parquet", "*.xlsx", "*.csv"):
        found = sorted(p for p in data_dir.glob(pattern) if p.is_file())
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise InputError(f"--format online-retail: several {pattern} files in {data_dir} ({names}); keep one")
        if found:
            return found[0]
    raise InputError(f"--format online-retail: expected one Online Retail .parquet, .xlsx or .csv file in {data_dir}")


def _load_online_retail(path: Path) -> tuple[pd.DataFrame, str, pd.DataFrame]:
    """The source table plus a `line` column, a note on what `line` means, and malformed CSV lines."""
    if path.suffix == ".csv":
        try:
            frame, malformed = _read_text_table(path, sep=",", header=True)
        except InputError:  # the UCI file is often saved as Latin-1
            frame, malformed = _read_text_table(path, sep=",", header=True, encoding="latin-1")
        return frame, f"{path.name}: line = physical line (header is line 1)", malformed
    if path.suffix == ".xlsx":
        try:
            frame = pd.read_excel(path, engine="openpyxl", dtype={"InvoiceNo": str, "StockCode": str, "Description": str})
        except ImportError as exc:
            raise InputError(f"{path.name}: reading .xlsx needs openpyxl (pip install openpyxl); or save as CSV") from exc
        except Exception as exc:  # openpyxl raises zipfile/XML errors of several types
            raise InputError(f"{path.name}: cannot be read as Excel ({exc})") from exc
        frame["line"] = np.arange(len(frame), dtype=np.int64) + 2
        return frame, f"{path.name}: line = spreadsheet row (header is row 1)", _rejects(path.name, pd.Series([], dtype=np.int64), "")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise InputError(f"{path.name}: cannot be read as Parquet ({exc})") from exc
    frame["line"] = np.arange(len(frame), dtype=np.int64) + 1
    return frame, f"{path.name}: line = 1-based Parquet row number (no header)", _rejects(path.name, pd.Series([], dtype=np.int64), "")


def read_online_retail(data_dir: Path) -> RawInput:
    """UCI Online Retail (.parquet, .xlsx or .csv): each invoice line a purchase_item.

    Rejected, first rule that applies: cancelled invoices ("cancelled invoice C536379"), rows
    without CustomerID ("no CustomerID"), non-positive quantities ("non-positive quantity -3"),
    unparseable dates ("bad InvoiceDate 'x'"). CustomerID is integer text ("17850"), StockCode
    as given ("85123A"), InvoiceDate (no zone given; read as UTC) to unix seconds. Catalog: per
    StockCode of the accepted rows, the most frequent Description and the median UnitPrice.
    """
    path = _find_online_retail(data_dir)
    raw, line_note, malformed = _load_online_retail(path)
    _require_columns(raw, path, ONLINE_RETAIL_COLUMNS[:7])

    invoice = raw["InvoiceNo"].astype(str).where(raw["InvoiceNo"].notna(), "").str.strip()
    customer = _id_text(raw["CustomerID"])
    quantity = pd.to_numeric(raw["Quantity"], errors="coerce")
    when = raw["InvoiceDate"]
    if not pd.api.types.is_datetime64_any_dtype(when.dtype):
        when = pd.to_datetime(when.replace("", None), errors="coerce")
    if getattr(when.dt, "tz", None) is not None:
        when = when.dt.tz_convert("UTC").dt.tz_localize(None)

    cancelled = invoice.str.startswith("C")
    no_customer = ~cancelled & (customer == "")
    bad_quantity = ~cancelled & ~no_customer & ~(quantity > 0)
    bad_date = ~cancelled & ~no_customer & ~bad_quantity & when.isna()
    ok = ~(cancelled | no_customer | bad_quantity | bad_date)

    quantity_text = raw["Quantity"].astype(str)
    rejects = _concat_rejects(
        [
            malformed,
            _rejects(path.name, raw.loc[cancelled, "line"], "cancelled invoice " + invoice[cancelled]),
            _rejects(path.name, raw.loc[no_customer, "line"], "no CustomerID"),
            _rejects(path.name, raw.loc[bad_quantity, "line"], "non-positive quantity " + quantity_text[bad_quantity]),
            _rejects(
                path.name,
                raw.loc[bad_date, "line"],
                "bad InvoiceDate '" + raw.loc[bad_date, "InvoiceDate"].astype(str) + "'",
            ),
        ]
    )

    stock = raw["StockCode"].astype(str).where(raw["StockCode"].notna(), "").str.strip()
    seconds = (when[ok] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    events = _events(customer[ok], stock[ok], np.full(int(ok.sum()), "purchase_item"), seconds, path.name, raw.loc[ok, "line"])

    accepted = pd.DataFrame(
        {
            "product_id": stock[ok].to_numpy(dtype=object),
            "description": raw.loc[ok, "Description"].to_numpy(dtype=object),
            "price": pd.to_numeric(raw.loc[ok, "UnitPrice"], errors="coerce").to_numpy(dtype=np.float64),
            "line": raw.loc[ok, "line"].to_numpy(),
        }
    )
    catalog = accepted.groupby("product_id", sort=False).agg(price=("price", "median"), line=("line", "min"))
    described = accepted[accepted["description"].notna() & (accepted["description"].astype(str).str.strip() != "")]
    counts = described.groupby(["product_id", "description"], sort=False).size().rename("n").reset_index()
    # Most frequent description per product; ties go to the alphabetically first, so it is deterministic.
    counts = counts.sort_values(["product_id", "n", "description"], ascending=[True, False, True], kind="stable")
    catalog["description"] = counts.drop_duplicates("product_id").set_index("product_id")["description"]
    catalog = catalog.reset_index()
    catalog["description"] = catalog["description"].fillna("")
    catalog["file"] = path.name
    catalog = catalog[["product_id", "description", "price", "file", "line"]].sort_values("line", ignore_index=True)

    notes = [line_note, "online-retail: InvoiceDate has no time zone; read as UTC"]
    for mask, what in (
        (cancelled, "cancelled-invoice rows rejected"),
        (no_customer, "rows without CustomerID rejected"),
        (bad_quantity, "rows with non-positive quantity rejected"),
        (bad_date, "rows with a bad InvoiceDate rejected"),
    ):
        if mask.any():
            notes.append(_count_note("online-retail", int(mask.sum()), what))
    return RawInput(events=events, catalog=catalog, rejects=rejects, notes=notes, files=[path.name])


# ---------------------------------------------------------------------------------------------
# beauty


def read_beauty(data_dir: Path) -> RawInput:
    """Amazon Beauty as prepared for S3-Rec: `Beauty.txt`, one `customer item item ...` line each.

    Every item is a purchase_item. There are no timestamps: each customer's items get 1, 2, 3 ...
    seconds in line order, so order is kept but times are not comparable across customers (use
    `--split last`). A line with a customer and no items is rejected. `Beauty_item2attributes.json`
    (optional, item -> attribute codes) gives category_path "a1|a2|..."; its catalog `line` is the
    item's 1-based position in the JSON object. Items without attributes get a catalog row named
    by their first appearance in Beauty.txt.
    """
    path = _require(data_dir, "beauty", "Beauty.txt")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path.name}: not UTF-8 text ({exc.reason})") from exc
    lines = pd.Series(text.splitlines(), dtype=object)
    lines = pd.DataFrame({"tokens": lines.str.split(), "line": np.arange(len(lines), dtype=np.int64) + 1})
    lines = lines[lines["tokens"].str.len() > 0]
    lonely = lines["tokens"].str.len() == 1
    rejects = _concat_rejects([_rejects(path.name, lines.loc[lonely, "line"], "customer with no items")])

    lines = lines[~lonely]
    customers = lines["tokens"].str[0]
    items = lines["tokens"].str[1:].explode()
    position = items.groupby(level=0, sort=False).cumcount() + 1
    index = items.index
    events = _events(
        customers.loc[index],
        items,
        np.full(len(items), "purchase_item"),
        position,
        path.name,
        lines.loc[index, "line"],
    )

    notes = ["beauty: no real timestamps; order kept as 1,2,3... seconds per customer; use --split last"]
    if lonely.any():
        notes.append(_count_note("beauty", int(lonely.sum()), "lines without items rejected"))
    files = [path.name]
    seen = _seen_products(events)
    attributes_path = data_dir / "Beauty_item2attributes.json"
    if attributes_path.is_file():
        try:
            attributes = json.loads(attributes_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{attributes_path.name}: not valid JSON ({exc})") from exc
        if not isinstance(attributes, dict):
            raise InputError(f"{attributes_path.name}: expected a JSON object of item -> attribute codes")
        ids = pd.Series(list(attributes.keys()), dtype=object)
        codes = pd.Series(list(attributes.values()), dtype=object).explode()
        tokens = ("a" + codes.dropna().astype(str)).groupby(level=0).agg(CATEGORY_SEPARATOR.join)
        described = pd.DataFrame(
            {
                "product_id": ids.to_numpy(),
                "category_path": tokens.reindex(range(len(ids)), fill_value="").to_numpy(dtype=object),
                "file": attributes_path.name,
                "line": np.arange(len(ids), dtype=np.int64) + 1,
            }
        )
        missing = seen[~seen["product_id"].isin(described["product_id"])].assign(category_path="")
        catalog = pd.concat([described, missing[described.columns]], ignore_index=True)
        files.append(attributes_path.name)
    else:
        catalog = seen
        notes.append("beauty: no Beauty_item2attributes.json; catalog has product ids only")
    return RawInput(events=events, catalog=catalog, rejects=rejects, notes=notes, files=files)


PRESETS: dict[str, Callable[[Path], RawInput]] = {
    "retailrocket": read_retailrocket,
    "movielens": read_movielens,
    "online-retail": read_online_retail,
    "beauty": read_beauty,
}
"""Preset readers by `--format` name."""
