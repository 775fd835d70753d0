"""`recsys ingest`: validation, exact exit codes, messages naming file, line and reason."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from recsys_cli.data.events import parse_timestamps
from recsys_cli.data.ingest import ingest
from recsys_cli.errors import DataError, InputError

from ..conftest import EVENTS_HEADER, write

NOW = 1_750_000_000  # a fixed "now" for the timestamp rules

CATALOG = "product_id,category_path,brand,gender,price\n85123A,Home|Decor,Acme,Unisex,2.55\n22423,Home|Kitchen,Acme,Woman,12.75\n"


def good_events(rows: int = 6) -> str:
    lines = [f"c{i % 3},{'85123A' if i % 2 else '22423'},view_product,{1_700_000_000 + i}" for i in range(rows)]
    return EVENTS_HEADER + "\n".join(lines) + "\n"


def test_clean_input_writes_snapshot_and_keeps_string_ids(tmp_path, run_cli):
    data = tmp_path / "data"
    write(data, "events.csv", good_events())
    write(data, "catalog.csv", CATALOG)
    result = run_cli("ingest", "--data", data, "--artifacts", tmp_path / "art")
    assert result.exit_code == 0, result.output
    assert "customers" in result.stdout and "sparsity" in result.stdout
    snapshot = ingest(data, tmp_path / "art")
    assert snapshot.reused
    events = snapshot.events()
    assert set(events["product_id"]) == {"85123A", "22423"}
    assert events["timestamp"].dtype == "int64"


def test_rerun_on_unchanged_inputs_is_a_noop(tmp_path, run_cli):
    data = tmp_path / "data"
    write(data, "events.csv", good_events())
    run_cli("ingest", "--data", data, "--artifacts", tmp_path / "art")
    again = run_cli("ingest", "--data", data, "--artifacts", tmp_path / "art")
    assert again.exit_code == 0
    assert "unchanged" in again.stdout


def test_missing_directory_exit_2(tmp_path, run_cli):
    result = run_cli("ingest", "--data", tmp_path / "nope", "--artifacts", tmp_path / "art")
    assert result.exit_code == 2
    assert "nope" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "art").exists()


def test_missing_events_file_exit_2(tmp_path, run_cli):
    write(tmp_path / "data", "catalog.csv", CATALOG)
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 2
    assert "events*.csv" in result.stderr


def test_missing_required_column_names_file_and_column(tmp_path, run_cli):
    write(tmp_path / "data", "events.csv", "customer_id,product_id,timestamp\n1,2,3\n")
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 2
    assert "events.csv" in result.stderr and "'type'" in result.stderr
    assert not (tmp_path / "art" / "snapshots").exists()


def test_empty_file_exit_2(tmp_path, run_cli):
    write(tmp_path / "data", "events.csv", "")
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 2
    assert "events.csv" in result.stderr and "empty" in result.stderr


def test_bad_rows_are_skipped_and_reported_with_file_line_reason(tmp_path, run_cli):
    text = (
        good_events(10)
        + "c1,85123A,teleport,1700000100\nc1,,view_product,1700000101\nc2,22423,view_product,yesterday\nc3,22423,view_product\n"
    )
    write(tmp_path / "data", "events.csv", text)
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 0, result.output
    assert "events.csv:12: unknown event type 'teleport'" in result.stderr
    assert "events.csv:13: empty product_id" in result.stderr
    assert "events.csv:14: unparseable timestamp 'yesterday'" in result.stderr
    assert "events.csv:15: malformed line: expected 4 fields, got 3" in result.stderr
    snapshot = ingest(tmp_path / "data", tmp_path / "art")
    rejects = pd.read_csv(snapshot.path / "rejects.csv")
    assert list(rejects["line"]) == [12, 13, 14, 15]
    assert len(snapshot.events()) == 10  # every good row kept, every bad one reported


def test_strict_fails_on_first_bad_row_exit_1(tmp_path, run_cli):
    write(tmp_path / "data", "events.csv", good_events(4) + "c1,85123A,teleport,1700000100\n")
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art", "--strict")
    assert result.exit_code == 1
    assert "events.csv line 6: unknown event type 'teleport'" in result.stderr
    assert not (tmp_path / "art" / "snapshots").exists()


def test_mostly_bad_file_fails_exit_1(tmp_path, run_cli):
    write(tmp_path / "data", "events.csv", EVENTS_HEADER + "a,b,nonsense,1\n" * 3 + "a,b,view_product,1\n")
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 1
    assert "events.csv" in result.stderr and "75%" in result.stderr and "line 2" in result.stderr


def test_duplicates_collapsed_and_unknown_products_kept(tmp_path):
    write(tmp_path / "data", "events.csv", EVENTS_HEADER + "a,85123A,view_product,5\n" * 3 + "a,ZZZ,view_product,6\n")
    write(tmp_path / "data", "catalog.csv", CATALOG)
    snapshot = ingest(tmp_path / "data", tmp_path / "art")
    assert snapshot.summary["duplicates_collapsed"] == 2
    assert snapshot.summary["events_unknown_product"] == 1
    assert "ZZZ" in set(snapshot.events()["product_id"])


def test_quoted_newline_keeps_line_numbers_exact(tmp_path):
    text = EVENTS_HEADER + 'a,"multi\nline",view_product,5\n' + "b,p,bogus,6\n"
    write(tmp_path / "data", "events.csv", text)
    with pytest.raises(DataError, match="events.csv line 4: unknown event type 'bogus'"):
        ingest(tmp_path / "data", tmp_path / "art", strict=True)


def test_non_utf8_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "events.csv").write_bytes(EVENTS_HEADER.encode() + b"a,caf\xe9,view_product,5\n")
    with pytest.raises(InputError, match="events.csv: not valid UTF-8 at line 2"):
        ingest(folder, tmp_path / "art")
    snapshot = ingest(folder, tmp_path / "art", encoding="latin-1")
    assert "café" in set(snapshot.events()["product_id"])


def test_timestamp_formats_detected_per_file(tmp_path):
    folder = tmp_path / "data"
    write(folder, "events-a.csv", EVENTS_HEADER + "a,p,view_product,1700000000000\n")
    write(folder, "events-b.csv", EVENTS_HEADER + "b,p,view_product,2023-11-14T22:13:20Z\n")
    write(folder, "events-c.csv", EVENTS_HEADER + "c,p,view_product,1700000000\n")
    snapshot = ingest(folder, tmp_path / "art")
    assert set(snapshot.events()["timestamp"]) == {1_700_000_000}
    notes = " ".join(snapshot.summary["notes"])
    assert "events-a.csv: timestamps read as unix milliseconds" in notes
    assert "events-b.csv: timestamps read as ISO-8601" in notes
    assert "events-c.csv: timestamps read as unix seconds" in notes


def test_parse_timestamps_rejects_negative_and_nan():
    parsed, reasons, label = parse_timestamps(pd.Series(["100", "-5", "nan", "200.7"]), now=NOW)
    assert label == "unix seconds"
    assert list(reasons.isna()) == [True, False, False, True]
    assert reasons[1] == "timestamp before 1970 ('-5')"
    assert parsed[3] == 200


def test_catalog_problems_reported_product_kept(tmp_path):
    folder = tmp_path / "data"
    write(folder, "events.csv", good_events())
    write(folder, "catalog.csv", "product_id,price,gender\n85123A,abc,Martian\n85123A,3,Man\n,1,Man\n")
    snapshot = ingest(folder, tmp_path / "art")
    reasons = pd.read_csv(snapshot.path / "rejects.csv")["reason"].tolist()
    assert "bad price 'abc' (product kept without price)" in reasons
    assert "unknown gender 'Martian' (product kept without gender)" in reasons
    assert any(r.startswith("duplicate product_id '85123A'") for r in reasons)
    assert "empty product_id" in reasons
    assert list(snapshot.catalog()["product_id"]) == ["85123A"]


def test_summary_is_stored(tmp_path):
    write(tmp_path / "data", "events.csv", good_events())
    snapshot = ingest(tmp_path / "data", tmp_path / "art")
    meta = json.loads((snapshot.path / "snapshot.json").read_text())
    assert meta["summary"]["events"] == 6
    assert meta["summary"]["events_by_type"]["view_product"] == 6


def test_disk_full_while_writing_snapshot_is_a_clear_error(tmp_path, run_cli, monkeypatch):
    write(tmp_path / "data", "events.csv", good_events())

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    result = run_cli("ingest", "--data", tmp_path / "data", "--artifacts", tmp_path / "art")
    assert result.exit_code == 1
    assert "could not write the snapshot" in result.stderr and "No space left on device" in result.stderr
    assert not [p for p in (tmp_path / "art" / "snapshots").iterdir()]
