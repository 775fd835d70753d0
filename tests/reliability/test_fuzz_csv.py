"""Property-based tests of the CSV readers and ingest: whatever the bytes, no traceback, no lost row.

Files are generated as Python rows and serialized with `csv.writer`, so the number of data records
(and the physical line each starts on) is known by construction. Every generated file must end in
success with `kept + duplicates collapsed + rejected rows == records`, or in a clear `Error:` that
names the file with exit code 1 or 2 and no snapshot written.

The fast tier (150 files through the CLI) runs with `make test`; the slow tier (8,300 generated cases, over 10,000 files counting catalogs and second events files, mostly
through `ingest()` directly) with `make reliability`, and records its counts in
fuzz_csv.json in $RECSYS_RESULTS_DIR (tests/results.py; a temporary folder by default).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from recsys_cli.cli import app
from recsys_cli.data.events import parse_timestamps
from recsys_cli.data.ingest import ingest
from recsys_cli.data.schema import CATALOG_OPTIONAL, EVENT_COLUMNS, EVENT_TYPES, GENDERS
from recsys_cli.errors import RecsysError
from tests.results import write_results

COUNTS: dict[str, Counter] = {}
STARTED = time.perf_counter()

FAST = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


def slow(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))


# --- what a generated input looks like ----------------------------------------------------------


@dataclass
class CsvFile:
    """One generated file: its bytes and what is known about it by construction."""

    name: str
    data: bytes
    records: int = 0  # data records (the header excluded); blank lines count, they must be reported
    starts: list[int] = field(default_factory=list)  # physical line each record starts on
    clean: bool = True  # every record is valid: must be kept or collapsed as a duplicate, never rejected
    unusable: bool = False  # a file-level problem (missing column, empty, wrong encoding): exit 2 allowed
    structured: bool = True  # records/starts are known (False for random bytes)


@dataclass
class Case:
    files: list[CsvFile]
    encoding: str = "utf8"
    strict: bool = False

    @property
    def events(self) -> list[CsvFile]:
        return [f for f in self.files if f.name.startswith("events")]

    @property
    def catalog(self) -> CsvFile | None:
        return next((f for f in self.files if f.name == "catalog.csv"), None)


# --- field strategies -----------------------------------------------------------------------------

TRICKY = st.text(
    alphabet=st.sampled_from(list(",\"\n\r \t;|'") + ["é", "ß", "中", "🙂", "\x00", "\u2028", "a", "Z", "0"]), min_size=1, max_size=12
)
PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)
HUGE = st.sampled_from(["x", "é", "a,b", 'q"', "line\n"]).map(lambda chunk: (chunk * 100_000)[:100_000])


IDENT = st.one_of(PLAIN, PLAIN, PLAIN, PLAIN, st.tuples(PLAIN, TRICKY).map("".join), st.sampled_from(["NA", "null", "nan", "0", "007"]))
IDENT_OR_HUGE = st.one_of(IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, IDENT, st.tuples(PLAIN, HUGE).map("".join))


def iso(seconds: int, style: int) -> str:
    stamp = time.gmtime(seconds)
    if style == 0:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", stamp)
    if style == 1:
        return time.strftime("%Y-%m-%d %H:%M:%S", stamp)
    if style == 2:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", stamp)
    return time.strftime("%Y-%m-%d", stamp)


TIME_MODES = ("seconds", "float seconds", "milliseconds", "iso")
SECONDS = st.integers(min_value=40_000_000, max_value=1_700_000_000)  # 1971 .. 2023: later would be "in the future" one day


def good_timestamp(mode: str) -> st.SearchStrategy[str]:
    if mode == "seconds":
        return SECONDS.map(str)
    if mode == "float seconds":
        return st.tuples(SECONDS, st.integers(0, 999)).map(lambda t: f"{t[0]}.{t[1]:03d}")
    if mode == "milliseconds":
        return st.integers(min_value=200_000_000_000, max_value=1_700_000_000_000).map(str)
    return st.tuples(SECONDS, st.integers(0, 3)).map(lambda t: iso(*t))


BAD_TIMESTAMP = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "Infinity",
            "1e400",
            "-1",
            "-1.5",
            "yesterday",
            "0x10",
            "12:00",
            "2023-13-45",
            "0001-01-01",
            "9999-12-31T00:00:00Z",
            "1969-07-20",
            "1e15",
            "--5",
            "1,5",
            "tomorrow\nnoon",
        ]
    ),
    st.integers(max_value=-1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    TRICKY,
)


# --- events files ---------------------------------------------------------------------------------

ROW_KINDS = ["valid"] * 14 + ["duplicate", "unknown type", "empty id", "bad timestamp", "wrong count", "blank"]


@st.composite
def event_rows(draw, header: list[str], mode: str, max_rows: int) -> tuple[list[list[str]], bool]:
    """Rows in header order, and whether every one is valid."""
    rows: list[list[str]] = []
    valid_rows: list[list[str]] = []
    clean = True
    for _ in range(draw(st.integers(0, max_rows))):
        kind = draw(st.sampled_from(ROW_KINDS))
        if kind == "duplicate" and valid_rows:
            rows.append(list(draw(st.sampled_from(valid_rows))))
            continue
        values = {
            "customer_id": draw(IDENT_OR_HUGE),
            "product_id": draw(IDENT),
            "type": draw(st.sampled_from(EVENT_TYPES)),
            "timestamp": draw(good_timestamp(mode)),
        }
        if kind in ("valid", "duplicate"):
            pass
        elif kind == "unknown type":
            values["type"] = draw(st.one_of(st.sampled_from(["teleport", "View_Product", " view_product", "", "0", "purchase"]), TRICKY))
        elif kind == "empty id":
            values[draw(st.sampled_from(["customer_id", "product_id"]))] = draw(st.sampled_from(["", " ", "\t", "  \n "]))
        elif kind == "bad timestamp":
            values["timestamp"] = draw(BAD_TIMESTAMP)
        row = [
            values.get(column.strip(), "") if column.strip() in values else draw(st.one_of(PLAIN, TRICKY, st.just(""))) for column in header
        ]
        # a repeated column: only its first occurrence is read, the copy gets noise
        seen: set[str] = set()
        for i, column in enumerate(header):
            if column.strip() in seen:
                row[i] = draw(st.one_of(PLAIN, TRICKY))
            seen.add(column.strip())
        if kind == "wrong count":
            row = row[: draw(st.integers(0, len(row) - 1))] if draw(st.booleans()) else row + draw(st.lists(PLAIN, min_size=1, max_size=3))
            if row == [""] * len(header):
                row = row + ["x"]
        elif kind == "blank":
            row = []
        if kind in ("valid", "duplicate"):
            valid_rows.append(row)
        else:
            clean = False
        rows.append(row)
    return rows, clean


def serialize(header: list[str], rows: list[list[str]]) -> tuple[str, list[int]]:
    """CSV text and the physical line each data record starts on."""
    buffer = io.StringIO(newline="")
    # csv.writer quotes a value holding '\r' only when '\r' is in the line terminator
    carriage_return = any("\r" in value for row in [header, *rows] for value in row)
    writer = csv.writer(buffer, lineterminator="\r\n" if carriage_return else "\n")
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow(row)
    return buffer.getvalue(), starts


ENCODINGS = ["utf8"] * 6 + ["bom", "latin-1", "utf-16"]


@st.composite
def encoded(draw, text: str) -> tuple[bytes, str, bool]:
    """(bytes, the --encoding to read them with, whether that may be the wrong encoding)."""
    kind = draw(st.sampled_from(ENCODINGS))
    if kind == "utf8":
        return text.encode("utf-8"), "utf8", False
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8"), draw(st.sampled_from(["utf8", "utf8", "utf-8", "UTF8"])), False
    if kind == "latin-1":
        data = text.encode("latin-1", errors="replace")  # replaced characters become '?', never structure
        read_as = draw(st.sampled_from(["latin-1", "latin-1", "utf8"]))
        return data, read_as, read_as == "utf8"
    read_as = draw(st.sampled_from(["utf-16", "utf8", "latin-1"]))
    return text.encode("utf-16"), read_as, read_as != "utf-16"


@st.composite
def events_file(draw, name: str = "events.csv", max_rows: int = 12) -> tuple[CsvFile, str]:
    header = list(EVENT_COLUMNS)
    unusable = False
    shape = draw(st.sampled_from(["plain"] * 6 + ["permuted", "extra", "padded", "repeated", "missing", "header only", "empty"]))
    if shape == "empty":
        return CsvFile(name, b"", unusable=True), draw(st.sampled_from(["utf8", "latin-1"]))
    if shape == "permuted":
        header = draw(st.permutations(header))
    elif shape == "extra":
        extras = draw(st.lists(st.sampled_from(["note", "", "price", "Type", "session id", "a,b"]), min_size=1, max_size=3))
        for extra in extras:
            header.insert(draw(st.integers(0, len(header))), extra)
    elif shape == "padded":
        header = [f" {column} " if draw(st.booleans()) else column for column in header]
    elif shape == "repeated":
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(EVENT_COLUMNS)))
    elif shape == "missing":
        header.remove(draw(st.sampled_from(EVENT_COLUMNS)))
        unusable = True
    mode = draw(st.sampled_from(TIME_MODES))
    rows, clean = ([], True) if shape == "header only" else draw(event_rows(header, mode, max_rows))
    text, starts = serialize(header, rows)
    data, read_as, wrong_encoding = draw(encoded(text))
    return CsvFile(name, data, len(rows), starts, clean, unusable or wrong_encoding), read_as


# --- catalog files --------------------------------------------------------------------------------

CATALOG_KINDS = ["valid"] * 8 + ["duplicate id", "empty id", "bad price", "bad gender", "wrong count", "blank"]


@st.composite
def catalog_file(draw, encoding: str, max_rows: int = 8) -> CsvFile:
    if draw(st.integers(0, 19)) == 0:
        return CsvFile("catalog.csv", b"", unusable=True)
    header = ["product_id"] + draw(st.lists(st.sampled_from(CATALOG_OPTIONAL), unique=True, max_size=len(CATALOG_OPTIONAL)))
    header = draw(st.permutations(header))
    unusable = False
    if draw(st.integers(0, 9)) == 0:
        header = [c for c in header if c != "product_id"] + ["productid"]
        unusable = True
    if draw(st.integers(0, 9)) == 0:
        header.insert(draw(st.integers(0, len(header))), draw(st.sampled_from(["extra", "", "product_id"])))
    rows, ids, clean = [], [], True
    for _ in range(draw(st.integers(0, max_rows))):
        kind = draw(st.sampled_from(CATALOG_KINDS))
        values = {
            "product_id": draw(IDENT),
            "category_id": draw(PLAIN),
            "category_path": draw(st.lists(PLAIN, min_size=1, max_size=3).map("|".join)),
            "brand": draw(st.one_of(PLAIN, TRICKY)),
            "gender": draw(st.sampled_from(GENDERS + ("",))),
            "description": draw(st.one_of(PLAIN, TRICKY, HUGE)) if draw(st.integers(0, 20)) == 0 else draw(PLAIN),
            "price": draw(st.one_of(st.just(""), st.floats(0, 1e6).map(lambda p: f"{p:.2f}"))),
        }
        if kind == "duplicate id" and ids:
            values["product_id"] = draw(st.sampled_from(ids))
        elif kind == "empty id":
            values["product_id"] = draw(st.sampled_from(["", " "]))
        elif kind == "bad price":
            values["price"] = draw(st.sampled_from(["abc", "-1", "inf", "1e999", "$5"]))
        elif kind == "bad gender":
            values["gender"] = draw(st.sampled_from(["Martian", "man", "?"]))
        if values["product_id"] in ids and kind != "duplicate id":
            kind = "duplicate id"
        seen: set[str] = set()
        row = []
        for column in header:
            row.append(values.get(column, draw(PLAIN)) if column not in seen else draw(PLAIN))
            seen.add(column)
        if kind == "wrong count":
            row = row[:-1] if len(row) > 1 and draw(st.booleans()) else row + ["surplus"]
        elif kind == "blank":
            row = []
        if kind == "valid" or kind in ("bad price", "bad gender"):
            ids.append(values["product_id"])
        if kind not in ("valid",):
            clean = False
        rows.append(row)
    text, starts = serialize(header, rows)
    if encoding == "utf-16":
        data = text.encode("utf-16")
    elif encoding == "latin-1":
        data = text.encode("latin-1", errors="replace")
    else:
        data = text.encode("utf-8")
    return CsvFile("catalog.csv", data, len(rows), starts, clean, unusable)


# --- whole cases ----------------------------------------------------------------------------------


@st.composite
def events_case(draw, max_rows: int = 12) -> Case:
    first, encoding = draw(events_file(max_rows=max_rows))
    files = [first]
    if draw(st.integers(0, 9)) == 0:
        second, other = draw(events_file("events-2.csv", max_rows=max_rows))
        second.unusable = second.unusable or other != encoding
        files.append(second)
    return Case(files, encoding=encoding)


@st.composite
def events_and_catalog_case(draw) -> Case:
    case = draw(events_case(max_rows=10))
    catalog_encoding = "utf-16" if case.encoding.lower() == "utf-16" else draw(st.sampled_from(["utf-8", "latin-1"]))
    catalog = draw(catalog_file(catalog_encoding))
    if catalog_encoding == "latin-1" and case.encoding.lower().replace("-", "") in ("utf8",):
        catalog.unusable = True
    case.files.append(catalog)
    case.strict = draw(st.integers(0, 14)) == 0
    return case


NOISE = st.lists(st.sampled_from(list('abc,,,"\n\n\r ;\t\x00é') + ["view_product", "17000000", "-1"]), max_size=120).map("".join)


@st.composite
def random_bytes_case(draw) -> Case:
    """Random bytes, or a valid header followed by random bytes or CSV-ish noise."""
    header = ",".join(draw(st.permutations(EVENT_COLUMNS))) + "\n"
    body = draw(st.one_of(st.binary(max_size=300), NOISE.map(lambda t: t.encode("utf-8")), st.binary(max_size=40).map(lambda b: b * 20)))
    data = draw(st.sampled_from([b"", header.encode(), b"\xef\xbb\xbf" + header.encode(), header.encode("utf-16")])) + body
    text = _decoded(data)
    known = text is not None and '"' not in text and "\r" not in text
    records = 0
    if known:
        lines = text.split("\n")[1:]
        records = len(lines) - (1 if lines and lines[-1] == "" else 0)
    encoding = draw(st.sampled_from(["utf8"] * 4 + ["latin-1", "utf-16"]))
    return Case(
        [CsvFile("events.csv", data, records=records, clean=False, unusable=True, structured=known and encoding == "utf8")], encoding
    )


def _decoded(data: bytes) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


# --- running ingest and checking the outcome ------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stderr: str
    snapshot: object | None = None


def write_case(case: Case, root: Path) -> tuple[Path, Path]:
    data = root / "data"
    data.mkdir()
    for f in case.files:
        (data / f.name).write_bytes(f.data)
    return data, root / "artifacts"


def run_cli(case: Case, data: Path, artifacts: Path) -> Outcome:
    args = ["ingest", "--data", str(data), "--artifacts", str(artifacts), "--encoding", case.encoding] + (
        ["--strict"] if case.strict else []
    )
    result = CliRunner().invoke(app, args, catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback

        raise AssertionError("ingest raised instead of exiting cleanly:\n" + "".join(traceback.format_exception(result.exception)))
    return Outcome(result.exit_code, result.stderr)


def run_direct(case: Case, data: Path, artifacts: Path) -> Outcome:
    """`ingest()` plus the CLI's RecsysError -> exit code mapping; anything else propagates."""
    try:
        snapshot = ingest(data, artifacts, strict=case.strict, encoding=case.encoding)
    except RecsysError as error:
        return Outcome(error.exit_code, f"Error: {error}")
    return Outcome(0, "", snapshot)


def read_rejects(artifacts: Path) -> tuple[dict, list[dict]]:
    (folder,) = [p for p in (artifacts / "snapshots").iterdir() if (p / "snapshot.json").exists()]
    summary = json.loads((folder / "snapshot.json").read_text())["summary"]
    with open(folder / "rejects.csv", newline="", encoding="utf-8") as handle:
        return summary, list(csv.DictReader(handle))


def check(case: Case, outcome: Outcome, artifacts: Path, tier: str) -> None:
    """The reliability contract: success with every record accounted for, or a clean error."""
    label = {0: "success", 1: "exit 1", 2: "exit 2"}.get(outcome.code, f"exit {outcome.code}")
    COUNTS.setdefault(tier, Counter())[label] += 1
    COUNTS[tier]["files"] += len(case.files)
    assert outcome.code in (0, 1, 2), outcome.stderr
    if outcome.code:
        assert "Error:" in outcome.stderr
        assert any(f.name in outcome.stderr for f in case.files), outcome.stderr
        assert not (artifacts / "snapshots").exists()
        if outcome.code == 2:
            assert any(f.unusable for f in case.files), f"exit 2 for usable input: {outcome.stderr}"
        else:
            assert case.strict or not all(f.clean for f in case.files), f"exit 1 for clean input: {outcome.stderr}"
        return
    summary, rejects = read_rejects(artifacts)
    by_file = Counter(row["file"] for row in rejects)
    events = case.events
    if case.strict:
        assert not rejects
    if all(f.structured for f in events):
        records = sum(f.records for f in events)
        rejected = sum(by_file[f.name] for f in events)
        assert summary["events"] + summary["duplicates_collapsed"] + rejected == records, (summary, rejects)
    for f in events:
        lines = [int(row["line"]) for row in rejects if row["file"] == f.name]
        assert len(set(lines)) == len(lines), f"{f.name}: one row reported twice: {lines}"
        if f.structured and f.starts:
            assert set(lines) <= set(f.starts), f"{f.name}: reported lines {lines} are not record starts {f.starts}"
        if f.clean:
            assert not lines, f"{f.name}: clean rows rejected: {rejects}"
    catalog = case.catalog
    if catalog is not None and catalog.structured:
        dropped = [
            row
            for row in rejects
            if row["file"] == "catalog.csv" and row["reason"].startswith(("empty product_id", "duplicate product_id", "malformed"))
        ]
        assert summary["catalog_products"] + len(dropped) == catalog.records, (summary, rejects)
        lines = [int(row["line"]) for row in rejects if row["file"] == "catalog.csv"]
        assert set(lines) <= set(catalog.starts), (lines, catalog.starts)
        if catalog.clean:
            assert not lines, rejects


def run_and_check(case: Case, *, tier: str, cli: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data, artifacts = write_case(case, Path(tmp))
        outcome = (run_cli if cli else run_direct)(case, data, artifacts)
        check(case, outcome, artifacts, tier)


# --- regression examples for the bugs this suite found ---------------------------------------------

H = "customer_id,product_id,type,timestamp\n"


def case_of(
    text: str | bytes,
    *,
    records: int,
    starts: list[int],
    clean: bool = False,
    unusable: bool = False,
    encoding: str = "utf8",
    catalog: CsvFile | None = None,
) -> Case:
    data = text.encode("utf-8") if isinstance(text, str) else text
    files = [CsvFile("events.csv", data, records, starts, clean, unusable)] + ([catalog] if catalog else [])
    return Case(files, encoding=encoding)


PADDED_HEADER = case_of("customer_id, product_id ,type,timestamp\na,p,view_product,1\n", records=1, starts=[2], clean=True)
REPEATED_COLUMN = case_of("customer_id,product_id,type,timestamp,type\na,p,view_product,1,noise\n", records=1, starts=[2], clean=True)
NEWLINE_IN_IGNORED_COLUMN = case_of(
    'customer_id,note,product_id,type,timestamp\na,"x\ny",p,view_product,1\nb,n,p,teleport,2\nc,n,p,view_product,3\n',
    records=3,
    starts=[2, 4, 5],
)
BOM_WITH_UTF_8_SPELLED_OUT = case_of(
    b"\xef\xbb\xbf" + H.encode() + b"a,p,view_product,1\n", records=1, starts=[2], clean=True, encoding="utf-8"
)
UNKNOWN_ENCODING = case_of(H + "a,p,view_product,1\n", records=1, starts=[2], clean=True, unusable=True, encoding="no-such-codec")
ISO_BEFORE_1970 = case_of(
    H + "a,p,view_product,2020-01-01\nb,p,view_product,1969-07-20\nc,p,view_product,2021-01-01\n", records=3, starts=[2, 3, 4]
)
MALFORMED_CATALOG_LINE = case_of(
    H + "a,p,view_product,1\n",
    records=1,
    starts=[2],
    clean=True,
    catalog=CsvFile("catalog.csv", b"product_id,price\np,1\nq,2,3\n", records=2, starts=[2, 3], clean=False),
)


def test_iso_timestamps_before_1970_or_in_the_future_are_rejected_like_numeric_ones():
    values = pd.Series(["2020-01-01T00:00:00Z", "1969-07-20", "0001-01-01", "9999-12-31", "2020-01-02"])
    parsed, reasons, label = parse_timestamps(values, now=1_600_000_000)
    assert label == "ISO-8601"
    assert list(reasons.isna()) == [True, False, False, False, True]
    assert parsed[0] == 1_577_836_800


def test_newline_in_an_ignored_column_keeps_line_numbers_exact(tmp_path):
    data, artifacts = write_case(NEWLINE_IN_IGNORED_COLUMN, tmp_path)
    snapshot = ingest(data, artifacts)
    assert snapshot.rejects[["line", "reason"]].values.tolist() == [
        [4, "unknown event type 'teleport' (one of view_product, add_to_cart, purchase_item)"]
    ]


def test_one_malformed_catalog_line_is_reported_not_fatal(tmp_path):
    data, artifacts = write_case(MALFORMED_CATALOG_LINE, tmp_path)
    snapshot = ingest(data, artifacts)
    assert snapshot.rejects[["file", "line"]].values.tolist() == [["catalog.csv", 3]]
    assert list(snapshot.catalog()["product_id"]) == ["p"]


def test_unknown_encoding_is_a_clean_exit_2(tmp_path):
    data, artifacts = write_case(UNKNOWN_ENCODING, tmp_path)
    outcome = run_cli(UNKNOWN_ENCODING, data, artifacts)
    assert outcome.code == 2 and "unknown encoding 'no-such-codec'" in outcome.stderr


def test_utf16_without_byte_order_mark_is_a_clean_exit_2(tmp_path):
    case = case_of((H + "a,p,view_product,1\n").encode("utf-16-le"), records=1, starts=[2], unusable=True, encoding="utf-16")
    data, artifacts = write_case(case, tmp_path)
    outcome = run_cli(case, data, artifacts)
    assert outcome.code == 2 and "events.csv: cannot be read as utf-16" in outcome.stderr


def test_strict_stops_at_a_bad_catalog_row_too(tmp_path):
    catalog = CsvFile("catalog.csv", b"product_id,price\np,1\n,2\n", records=2, starts=[2, 3], clean=False)
    case = Case([CsvFile("events.csv", (H + "a,p,view_product,1\n").encode(), 1, [2])] + [catalog], strict=True)
    data, artifacts = write_case(case, tmp_path)
    outcome = run_cli(case, data, artifacts)
    assert outcome.code == 1 and "catalog.csv line 3: empty product_id" in outcome.stderr


# --- the fast tier: 150 files through the CLI ------------------------------------------------------


@FAST
@given(events_case())
@example(PADDED_HEADER)
@example(REPEATED_COLUMN)
@example(NEWLINE_IN_IGNORED_COLUMN)
@example(BOM_WITH_UTF_8_SPELLED_OUT)
@example(ISO_BEFORE_1970)
def test_cli_events_files(case):
    run_and_check(case, tier="fast", cli=True)


@FAST
@given(events_and_catalog_case())
@example(MALFORMED_CATALOG_LINE)
def test_cli_events_and_catalog(case):
    run_and_check(case, tier="fast", cli=True)


@FAST
@given(random_bytes_case())
def test_cli_random_bytes(case):
    run_and_check(case, tier="fast", cli=True)


# --- the slow tier: 8,300 cases, over 10,000 files ------------------------------------------------


@pytest.mark.slow
@pytest.mark.reliability
@slow(3_800)
@given(events_case())
def test_many_events_files(case):
    run_and_check(case, tier="slow", cli=False)


@pytest.mark.slow
@pytest.mark.reliability
@slow(2_000)
@given(events_and_catalog_case())
def test_many_events_and_catalog(case):
    run_and_check(case, tier="slow", cli=False)


@pytest.mark.slow
@pytest.mark.reliability
@slow(2_000)
@given(random_bytes_case())
def test_many_random_bytes(case):
    run_and_check(case, tier="slow", cli=False)


@pytest.mark.slow
@pytest.mark.reliability
@slow(500)
@given(st.one_of(events_case(), events_and_catalog_case(), random_bytes_case()))
def test_many_through_the_cli(case):
    run_and_check(case, tier="slow cli", cli=True)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    """Print how many files each tier generated and how they ended; record the slow tier's in JSON."""
    yield
    seconds = round(time.perf_counter() - STARTED, 1)
    for tier, counts in sorted(COUNTS.items()):
        print(f"\nfuzz_csv {tier}: {dict(counts)}")
    slow_tiers = {tier: dict(counts) for tier, counts in COUNTS.items() if tier.startswith("slow")}
    if slow_tiers:
        total = Counter()
        for counts in slow_tiers.values():
            total.update(counts)
        write_results(
            "fuzz_csv.json",
            {
                "benchmark": "fuzz_csv",
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": seconds,
                "total": dict(total),
                "tiers": slow_tiers,
            },
        )
