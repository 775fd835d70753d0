"""Reading input files into raw canonical frames (strings, as given), with every bad line reported.

A reader never validates values (that is ingest's job); it only gets rows out of files, keeping
each row's file and line so that a rejected row can be named.
"""

from __future__ import annotations

import codecs
import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import InputError
from .schema import CATALOG_FILE, CATALOG_READ, CATALOG_REQUIRED, EVENT_COLUMNS, EVENTS_GLOB

MALFORMED = "malformed"
"""How every reason for a line that is not a CSV record of the header's width begins."""
REJECT_COLUMNS = ("file", "line", "reason", "lines")
"""A rejected record: its file, first physical line, why, and how many physical lines it spans
(more than 1 when quoted newlines, or one unclosed quote, joined lines into one record)."""


@dataclass
class RawInput:
    """What a reader hands to ingest.

    events: columns customer_id, product_id, type, timestamp (strings as read; a preset may
        already map its own event names to the canonical ones), file (str), line (int, 1-based
        physical line of the row in its file; the header is line 1).
    catalog: canonical catalog columns that the source has (product_id required), strings or
        floats for price, plus file and line.
    rejects: rows the reader itself could not use (malformed lines, preset-specific rules),
        columns file, line, reason and optionally lines (physical lines spanned; 1 if absent).
    notes: human-readable remarks for the summary (e.g. "events.csv: timestamps in unix ms").
    """

    events: pd.DataFrame
    catalog: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REJECT_COLUMNS)))
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def empty_rejects() -> pd.DataFrame:
    """An empty rejects frame with the right columns."""
    return pd.DataFrame(
        {
            "file": pd.Series([], dtype=object),
            "line": pd.Series([], dtype="int64"),
            "reason": pd.Series([], dtype=object),
            "lines": pd.Series([], dtype="int64"),
        }
    )


def rejected_lines(rejects: pd.DataFrame) -> pd.Series:
    """Physical lines each rejected record spans (1 where a reader did not say)."""
    if "lines" not in rejects.columns:
        return pd.Series(1, index=rejects.index, dtype="int64")
    return pd.to_numeric(rejects["lines"], errors="coerce").fillna(1).astype("int64").clip(lower=1)


def read_csv_rows(
    path: Path, columns: tuple[str, ...], *, required: tuple[str, ...], encoding: str = "utf8"
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Read one canonical CSV file as strings: (rows with file/line, rejected lines, notes).

    Every column in `required` must be in the header (InputError otherwise, with a hint when the
    file uses another separator or the names another letter case); columns outside `columns` are
    ignored and noted. Lines with the wrong number of fields are rejected with their physical line
    number; quoted values may contain newlines and line numbers stay exact.
    """
    name = path.name
    encoding = _check_encoding(encoding)
    if path.stat().st_size == 0:
        raise InputError(f"{name}: file is empty (expected a header line with {', '.join(required)})")
    header = _read_header(path, encoding)
    missing = [column for column in required if column not in header]
    if missing:
        shown = ", ".join(header)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        hint = "; is the encoding right? (pass --encoding, e.g. latin-1 or utf-16)" if "\x00" in shown or "\ufffd" in shown else ""
        hint = hint or _header_hint(header, required, missing[0])
        raise InputError(f"{name}: missing required column '{missing[0]}' (header has: {shown.replace(chr(0), '') or 'nothing'}){hint}")
    notes = []
    extra = [column for column in header if column not in columns]
    if extra:
        notes.append(f"{name}: ignored extra columns {', '.join(extra)}")
    repeated = sorted({column for column in header if column in columns and header.count(column) > 1})
    if repeated:
        notes.append(f"{name}: repeated columns {', '.join(repeated)} (the first of each is used)")
    everything, rejects = _read_records(path, header, sep=",", encoding=encoding, quoted=True, has_header=True)
    # the first occurrence of each known column wins
    chosen: dict[str, str] = {}
    for placeholder, column in zip(everything.columns[:-1], header, strict=True):
        if column in columns and column not in chosen.values():
            chosen[placeholder] = column
    frame = everything[list(chosen)].rename(columns=chosen)
    for column in frame.columns:
        frame[column] = frame[column].astype(object)
    frame["file"] = name
    frame["line"] = everything["line"].to_numpy()
    return frame, rejects, notes


SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _header_hint(header: list[str], required: tuple[str, ...], missing: str) -> str:
    """Why a required column looks missing when it is there in another form: another separator, or another letter case."""
    if len(header) == 1:
        for separator, label in SEPARATORS.items():
            if separator in header[0]:
                return (
                    f"; the file looks {label}-separated: files must be comma-separated "
                    f"(re-save it as CSV with commas, e.g. in a spreadsheet choose 'CSV (comma delimited)')"
                )
    by_lower = {column.lower(): column for column in header}
    wrong_case = [(by_lower[c], c) for c in required if c not in header and c in by_lower]
    if wrong_case:
        renames = ", ".join(f"'{given}' -> '{wanted}'" for given, wanted in wrong_case)
        return f"; column names are lower case: rename {renames}"
    return f"; the header must name {', '.join(required)}"


def read_table(
    path: Path,
    *,
    sep: str = ",",
    header: bool = True,
    names: list[str] | None = None,
    encoding: str = "utf8",
    quoted: bool = True,
    skip_blank: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A delimited text file as all-string columns ("" for empty fields) plus `line`, and its rejects.

    Columns are named by the header (or `names`; a repeated name gets ".1", ".2"). `line` is the
    record's exact 1-based physical line (the header, if any, is line 1; quoted newlines counted).
    A record with the wrong number of fields is a reject (file, line, reason, lines). With
    `skip_blank`, blank lines and lines whose fields are all empty are neither rows nor rejects.
    `quoted=False` reads quote characters as text (e.g. MovieLens u.item).
    """
    encoding = _check_encoding(encoding)
    fields = _read_header(path, encoding, sep=sep, quoted=quoted) if header else []
    columns = list(names) if names is not None else fields
    if not columns:
        raise InputError(f"{path.name}: file is empty (expected a header line)")
    everything, rejects = _read_records(path, columns, sep=sep, encoding=encoding, quoted=quoted, has_header=header, skip_blank=skip_blank)
    everything.columns = [*_unique(columns), "line"]
    if skip_blank:
        data = everything.columns[:-1]
        everything = everything.loc[~(everything[data] == "").all(axis=1)].reset_index(drop=True)
    return everything, rejects


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        unique.append(name if count == 0 else f"{name}.{count}")
        seen[name] = count + 1
    return unique


def _read_records(
    path: Path, header: list[str], *, sep: str, encoding: str, quoted: bool, has_header: bool, skip_blank: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every record of `path` as strings under placeholder names, plus `line`; malformed records as rejects.

    pyarrow reads the header (when there is one) as data row 0 under placeholder names, so that
    header names with spaces around them or repeated names (which pyarrow cannot select by) are
    still usable by the caller.
    """
    name = path.name
    placeholders = [f"column {i}" for i in range(len(header))]
    bad: list[tuple[int | None, str, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text, row.actual_columns))
        return "skip"

    try:
        with _undecodable_rows() as undecodable:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(use_threads=False, encoding=encoding, block_size=1 << 24, column_names=placeholders),
                parse_options=pacsv.ParseOptions(
                    delimiter=sep,
                    quote_char='"' if quoted else False,
                    invalid_row_handler=on_invalid,
                    newlines_in_values=quoted,
                    ignore_empty_lines=False,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={column: pa.string() for column in placeholders},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, UnicodeError) as error:
        raise InputError(_explain_arrow_error(path, encoding, undecodable[0] if undecodable else error)) from None
    everything = table.to_pandas(types_mapper=None)
    first = 1
    if has_header:
        if any(number == 1 for number, _, _ in bad):
            bad = [row for row in bad if row[0] != 1]  # pyarrow split the header differently; it is not a data row
        else:
            everything = everything.iloc[1:].reset_index(drop=True)
        first = 2 + sum(column.count("\n") for column in header)
    lines, bad_lines, bad_spans = _line_numbers(everything, bad, first_line=first, first_number=2 if has_header else 1)
    everything["line"] = lines
    if skip_blank:  # a blank line keeps its place in the numbering but is not a record
        kept = [i for i, (_, text, _) in enumerate(bad) if text.strip()]
        bad, bad_lines, bad_spans = [bad[i] for i in kept], bad_lines[kept], bad_spans[kept]
    rejects = pd.DataFrame(
        {
            "file": name,
            "line": pd.Series(bad_lines, dtype="int64"),
            "reason": [_malformed(len(header), count, start, span) for (_, _, count), start, span in zip(bad, bad_lines, bad_spans)],
            "lines": pd.Series(bad_spans, dtype="int64"),
        }
    )
    return everything, rejects if len(rejects) else empty_rejects()


@contextmanager
def _undecodable_rows() -> Iterator[list[UnicodeDecodeError]]:
    """Collect the UnicodeDecodeError pyarrow hits when it hands a malformed, non-UTF-8 row to the
    invalid-row handler: it cannot raise it, so Python would print "Exception ignored in ..."
    before our one-line error. (sys.unraisablehook is process-wide; reading runs in one thread.)"""
    caught: list[UnicodeDecodeError] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, UnicodeDecodeError):
            caught.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def _malformed(expected: int, got: int, start: int, span: int) -> str:
    if span <= 1:
        return f"{MALFORMED} line: expected {expected} fields, got {got}"
    return f"{MALFORMED} record spanning lines {start}-{start + span - 1} (an unclosed quote?): expected {expected} fields, got {got}"


def _check_encoding(encoding: str) -> str:
    """The encoding name to read with ("utf8" for every spelling of UTF-8, so a BOM is skipped)."""
    try:
        canonical = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(f"unknown encoding '{encoding}' (try utf8 or latin-1)") from None
    return "utf8" if canonical == "utf-8" else encoding


def _read_header(path: Path, encoding: str, *, sep: str = ",", quoted: bool = True) -> list[str]:
    with open(path, encoding=encoding if encoding != "utf8" else "utf-8-sig", errors="replace", newline="") as handle:
        try:
            fields = next(csv.reader(handle, delimiter=sep, quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE))
        except (StopIteration, csv.Error):
            return []
        except UnicodeError as error:  # e.g. a UTF-16 file without its byte order mark
            raise InputError(
                f"{path.name}: cannot be read as {encoding} ({error}); re-save it as UTF-8 or pass the right --encoding"
            ) from None
    return [field.strip() for field in fields]


def _line_numbers(
    frame: pd.DataFrame, bad: list[tuple[int | None, str, int]], *, first_line: int = 2, first_number: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical start lines of accepted rows and of rejected records, and the rejected records' spans.

    pyarrow numbers records (the header, if any, = 1), not physical lines, so quoted newlines are
    counted here: every record spans 1 + (newlines inside its values) lines. `first_line` is the
    physical line of the first data record and `first_number` its pyarrow record number.
    """
    n = len(frame)
    spans = np.ones(n, dtype=np.int64)
    for column in frame.columns:
        values = frame[column]
        if n and values.str.contains("\n", regex=False).any():
            spans += values.str.count("\n").to_numpy(dtype=np.int64)
    total = n + len(bad)
    is_bad = np.zeros(total, dtype=bool)
    record_spans = np.ones(total, dtype=np.int64)
    bad_positions = np.array([(number or 0) - first_number for number, _, _ in bad], dtype=np.int64)
    bad_positions = np.clip(bad_positions, 0, max(total - 1, 0))
    is_bad[bad_positions] = True
    record_spans[bad_positions] = [1 + text.count("\n") for _, text, _ in bad]
    record_spans[~is_bad] = spans[: int((~is_bad).sum())]
    starts = first_line + np.concatenate([[0], np.cumsum(record_spans)[:-1]]) if total else np.zeros(0, dtype=np.int64)
    return starts[~is_bad], starts[bad_positions], record_spans[bad_positions]


def _explain_arrow_error(path: Path, encoding: str, error: Exception) -> str:
    message = str(error)
    if "UTF8" in message or "utf-8" in message.lower() or isinstance(error, UnicodeDecodeError):
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            where = ""
        except UnicodeDecodeError as decode_error:
            line = data[: decode_error.start].count(b"\n") + 1
            where = f" at line {line}"
        return f"{path.name}: not valid UTF-8{where}; re-save it as UTF-8 or pass --encoding latin-1"
    first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
    return f"{path.name}: cannot be read as CSV: {first}"


def read_canonical(data_dir: Path, *, encoding: str = "utf8") -> RawInput:
    """Read DATA_DIR/events*.csv (one or many) and the optional DATA_DIR/catalog.csv."""
    if not data_dir.exists():
        raise InputError(f"data directory {data_dir} does not exist")
    if not data_dir.is_dir():
        raise InputError(f"{data_dir} is not a directory (pass the folder holding events*.csv and catalog.csv)")
    event_files = sorted(data_dir.glob(EVENTS_GLOB))
    if not event_files:
        raise InputError(f"{data_dir}: no {EVENTS_GLOB} file (expected columns {','.join(EVENT_COLUMNS)})")
    frames, rejects, notes = [], [], []
    for path in event_files:
        frame, bad, file_notes = read_csv_rows(path, EVENT_COLUMNS, required=EVENT_COLUMNS, encoding=encoding)
        frames.append(frame)
        rejects.append(bad)
        notes.extend(file_notes)
    catalog_path = data_dir / CATALOG_FILE
    if catalog_path.exists():
        catalog, bad, file_notes = read_csv_rows(catalog_path, CATALOG_READ, required=CATALOG_REQUIRED, encoding=encoding)
        rejects.append(bad)
        notes.extend(file_notes)
    else:
        catalog = pd.DataFrame({"product_id": pd.Series([], dtype=object)})
        notes.append(f"no {CATALOG_FILE}: products are known by id only (content similarity has nothing to compare)")
    return RawInput(
        events=pd.concat(frames, ignore_index=True),
        catalog=catalog,
        rejects=pd.concat([r for r in rejects if len(r)] or [empty_rejects()], ignore_index=True),
        notes=notes,
        files=[p.name for p in event_files] + ([CATALOG_FILE] if catalog_path.exists() else []),
    )
