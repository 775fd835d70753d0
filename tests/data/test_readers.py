"""The one CSV reader: hints when a header is right in another form, exact lines for presets too."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys_cli.data.presets import read_retailrocket
from recsys_cli.data.readers import read_canonical, read_table
from recsys_cli.errors import InputError

ROWS = [("a", "p1", "view_product", "1700000000"), ("b", "p2", "purchase_item", "1700000100")]


def shop(folder: Path, *, sep: str = ",", header: str = "customer_id,product_id,type,timestamp") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [header.replace(",", sep), *(sep.join(row) for row in ROWS)]
    (folder / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize(("sep", "label"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_another_separator_is_named_in_the_error(tmp_path, sep, label):
    with pytest.raises(InputError) as info:
        read_canonical(shop(tmp_path / "d", sep=sep))
    message = str(info.value)
    assert "missing required column 'customer_id'" in message
    assert f"looks {label}-separated" in message and "comma-separated" in message


def test_a_header_in_another_letter_case_says_which_names_to_change(tmp_path):
    with pytest.raises(InputError) as info:
        read_canonical(shop(tmp_path / "d", header="Customer_ID,Product_ID,type,TimeStamp"))
    message = str(info.value)
    assert "lower case" in message
    assert "'Customer_ID' -> 'customer_id'" in message and "'TimeStamp' -> 'timestamp'" in message


def test_us_dates_list_the_accepted_timestamp_formats(tmp_path, run_cli):
    data = tmp_path / "d"
    data.mkdir()
    (data / "events.csv").write_text(
        "customer_id,product_id,type,timestamp\na,p1,view_product,11/30/2024 10:00\nb,p2,view_product,12/01/2024 11:00\n"
    )
    result = run_cli("ingest", "--data", data, "--artifacts", tmp_path / "a")
    assert result.exit_code != 0
    assert "'11/30/2024 10:00'" in result.stderr
    assert all(name in result.stderr for name in ("unix seconds", "unix milliseconds", "ISO-8601"))


def test_presets_count_quoted_newlines_and_reject_malformed_lines_like_canonical_files(tmp_path):
    (tmp_path / "events.csv").write_text(
        "timestamp,visitorid,event,itemid,transactionid\n"
        '1433221332117,1,view,10,"a note\nover two lines"\n'
        "1433221332118,2,view,11,\n"
        "1433221332119,3,view,12,,too,many\n"
        "\n"
        "1433221332120,4,view,13,\n"
    )
    raw = read_retailrocket(tmp_path)
    assert list(raw.events["line"]) == [2, 4, 7]
    assert list(raw.rejects["line"]) == [5] and raw.rejects["reason"][0].startswith("malformed")


def test_read_table_without_header_or_quotes(tmp_path):
    path = tmp_path / "u.item"
    path.write_text('1|"Toy Story|x\n\n2|Heat|y\n', encoding="latin-1")
    frame, rejects = read_table(path, sep="|", header=False, names=["id", "title", "flag"], encoding="latin-1", quoted=False)
    assert frame.values.tolist() == [["1", '"Toy Story', "x", 1], ["2", "Heat", "y", 3]]
    assert len(rejects) == 0
