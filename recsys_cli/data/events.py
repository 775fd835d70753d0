"""The one set of rules an event must pass, wherever it comes from: CSV ingest, `POST /events`
and the ids given to `recommend --viewed`.

Rules, per field (each failure is a message that names the field and the value):
- customer_id, product_id: not empty after trimming, valid Unicode; otherwise opaque strings.
- type: one of EVENT_TYPES.
- timestamp: unix seconds, unix milliseconds or ISO-8601 (no zone = UTC); not before 1970 and not
  more than `max_future_seconds` (default 1 day) after now. Numbers from 1e11 up are milliseconds
  (1e11 seconds would be the year 5138); the unit of a group (a file, a request) is what most of
  its numbers use, and numbers in the other unit are rejected as mixed units, never read as 1970.

Everything is vectorized over a frame; callers decide what a rejected row means (ingest reports
and skips it, REST refuses the request). A plain `POST /events` batch (string ids, a known type, no
timestamp or unix seconds) is read without pandas (`_plain_rows`), to the same rows: a property
test holds the two together.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import EventsError, InputError
from ..limits import MAX_BATCH
from .schema import EVENT_CODE, EVENT_TYPES

ID_FIELDS = ("customer_id", "product_id")
FIELDS = ("customer_id", "product_id", "type", "timestamp")
MS_THRESHOLD = 1e11  # 1e11 seconds is the year 5138; 1e11 ms is 1973
DEFAULT_MAX_FUTURE_SECONDS = 86400.0
SHOWN = 40


@dataclass(frozen=True)
class EventRules:
    """Limits that are a matter of policy rather than format."""

    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS

    def __post_init__(self) -> None:
        if not self.max_future_seconds >= 0:
            raise InputError(f"max_future_seconds must be 0 or more, got {self.max_future_seconds}")


@dataclass
class CheckedEvents:
    """The outcome of `check_events`, aligned with the input frame's rows.

    problems: per field, the reason the field is bad (NA where it is fine).
    type_code, timestamp: the parsed values (meaningful only for rows that are `ok`).
    notes: one remark per group about how its timestamps were read.
    """

    problems: dict[str, pd.Series]
    type_code: np.ndarray
    timestamp: np.ndarray
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        return ~np.logical_or.reduce([problem.notna().to_numpy() for problem in self.problems.values()])

    def first_problem(self) -> pd.Series:
        """Each row's first problem in field order (NA for good rows): what ingest reports."""
        first = pd.Series(pd.NA, index=self.problems["customer_id"].index, dtype=object)
        for name in FIELDS:
            first = first.fillna(self.problems[name])
        return first


def shown(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= SHOWN else text[: SHOWN - 3] + "...")


def id_problems(values: pd.Series, name: str) -> pd.Series:
    """Why each id is unusable (NA when it is fine)."""
    broken = _not_encodable(values)
    text = _escaped(values, broken).astype(str)
    reasons = pd.Series(pd.NA, index=values.index, dtype=object)
    reasons[text.str.strip() == ""] = f"empty {name}"
    reasons[reasons.isna() & broken] = f"{name} is not valid Unicode (a lone surrogate escape)"
    return reasons


def check_ids(values: Iterable[str], name: str) -> list[str]:
    """The ids, or InputError naming the first unusable one (for ids given on the command line)."""
    ids = list(values)
    reasons = id_problems(pd.Series(ids, dtype=object), name)
    bad = reasons.dropna()
    if len(bad):
        raise InputError(f"{bad.iloc[0]}: {shown(ids[bad.index[0]])}")
    return ids


def type_problems(values: pd.Series) -> pd.Series:
    """Why each event type is unusable (NA when it is one of EVENT_TYPES)."""
    text = values.astype(str)
    reasons = pd.Series(pd.NA, index=values.index, dtype=object)
    unknown = ~text.isin(EVENT_TYPES)
    reasons[unknown] = "unknown event type " + text[unknown].str.slice(0, SHOWN).map(repr) + f" (one of {', '.join(EVENT_TYPES)})"
    return reasons


def parse_timestamps(values: pd.Series, *, now: float, rules: EventRules | None = None) -> tuple[np.ndarray, pd.Series, str]:
    """Unix seconds of each value, the reason where a value is refused, and how the group was read."""
    rules = rules or EventRules()
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    is_number = numbers.notna()
    finite = is_number & np.isfinite(numbers.fillna(0))
    looks_ms = finite & (numbers.abs() >= MS_THRESHOLD)
    in_ms = int(looks_ms.sum()) > int((finite & ~looks_ms).sum())
    seconds = numbers.where(~looks_ms, numbers / 1000.0)
    iso = pd.Series(np.nan, index=values.index)
    candidates = ~is_number & (text != "")
    if candidates.any():
        stamps = pd.to_datetime(text[candidates], format="ISO8601", utc=True, errors="coerce")
        good = stamps.notna()
        if good.any():
            iso[good[good].index] = stamps[good].astype("int64").to_numpy() / _unit_divisor(stamps[good])
    seconds = seconds.where(is_number, iso)
    reasons = pd.Series(pd.NA, index=values.index, dtype=object)
    quoted = text.str.slice(0, SHOWN).map(repr)

    def refuse(mask: pd.Series, reason: pd.Series) -> None:
        mask = mask & reasons.isna()
        reasons[mask] = reason[mask]

    unit = "unix milliseconds" if in_ms else "unix seconds"
    refuse(seconds.isna() & ~(is_number & ~finite), "unparseable timestamp " + quoted + " (unix seconds, unix milliseconds or ISO-8601)")
    refuse(is_number & ~finite, "timestamp too large (" + quoted + ")")
    other = "seconds" if in_ms else "milliseconds"
    refuse(finite & (looks_ms != in_ms), f"timestamp in {other} among {unit} (" + quoted + "; mixed units in one file or request)")
    refuse(seconds < 0, "timestamp before 1970 (" + quoted + ")")
    limit = now + rules.max_future_seconds
    refuse(seconds > limit, "timestamp in the future (" + quoted + f", more than {_duration(rules.max_future_seconds)} after now)")
    parsed = np.floor(seconds.where(reasons.isna(), 0).fillna(0)).to_numpy(dtype=np.int64)
    kinds = [unit] if finite.any() else []
    kinds += ["ISO-8601"] if iso.notna().any() else []
    label = " and ".join(kinds) or "nothing parseable"
    mixed = int((finite & (looks_ms != in_ms)).sum())
    if mixed:
        label += f"; {mixed:,} in {other} rejected (mixed units)"
    return parsed, reasons, label


def check_events(frame: pd.DataFrame, *, now: float, rules: EventRules | None = None, group: pd.Series | None = None) -> CheckedEvents:
    """Check the columns customer_id, product_id, type (strings) and timestamp (text) of `frame`.

    `group` labels the rows whose timestamps share a unit (ingest: the file); default one group.
    """
    problems = {name: id_problems(frame[name], name) for name in ID_FIELDS}
    # a lone surrogate (JSON can carry one) cannot become a pandas string: checked as its escaped text
    frame = frame.assign(**{name: _escaped(frame[name], _not_encodable(frame[name])) for name in ("type", "timestamp")})
    problems["type"] = type_problems(frame["type"])
    codes = frame["type"].astype(str).map(EVENT_CODE).fillna(-1).to_numpy(dtype=np.int8)
    stamps = np.zeros(len(frame), dtype=np.int64)
    timestamp_problems = pd.Series(pd.NA, index=frame.index, dtype=object)
    notes = []
    groups = group if group is not None else pd.Series("", index=frame.index)
    for name, rows in groups.groupby(groups, sort=False).groups.items():
        parsed, reasons, label = parse_timestamps(frame.loc[rows, "timestamp"], now=now, rules=rules)
        stamps[frame.index.get_indexer(rows)] = parsed
        timestamp_problems[rows] = reasons
        notes.append(f"{name}: timestamps read as {label}" if name else f"timestamps read as {label}")
    problems["timestamp"] = timestamp_problems
    return CheckedEvents(problems=problems, type_code=codes, timestamp=stamps, notes=notes)


def valid_canonical(frame: pd.DataFrame, *, now: float, rules: EventRules | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of a canonical frame (type as code, unix seconds) that ingest's rules accept, and the
    first problem of each rejected row: what reaches training from outside ingest is checked the
    same way."""
    if not len(frame):
        return frame, pd.Series([], dtype=object)
    codes = frame["type"].to_numpy()
    named = np.where((codes >= 0) & (codes < len(EVENT_TYPES)), np.asarray(EVENT_TYPES, dtype=object)[np.clip(codes, 0, 2)], "")
    text = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype(str).to_numpy(),
            "product_id": frame["product_id"].astype(str).to_numpy(),
            "type": named,
            "timestamp": frame["timestamp"].astype(str).to_numpy(),
        }
    )
    checked = check_events(text, now=now, rules=rules)
    ok = checked.ok
    return frame[ok].reset_index(drop=True), checked.first_problem()[~ok].reset_index(drop=True)


def from_json(payload: Any, *, now: float, rules: EventRules | None = None, max_batch: int = MAX_BATCH) -> list[tuple[str, str, int, int]]:
    """A `POST /events` body (one event object or an array of them) as live-store rows
    (customer_id, product_id, type code, unix seconds); a missing timestamp means `now`.

    EventsError lists every problem as `events[i].field: reason`; one bad event refuses the batch.
    """
    if isinstance(payload, list):
        if not payload:
            raise EventsError("events: the array is empty; send at least one event")
        if len(payload) > max_batch:
            raise EventsError(f"events: {len(payload):,} events in one request; at most {max_batch:,}, nothing was stored")
        items = payload
    elif isinstance(payload, dict):
        items = [payload]
    else:
        raise EventsError(f"the body must be an event object or an array of them, got {_json_type(payload)}")
    plain = _plain_rows(items, now, rules or EventRules())
    if plain is not None:
        return plain
    problems: list[list[str]] = [[] for _ in items]
    shaped = np.ones((len(items), len(FIELDS)), dtype=bool)  # False: the field already has a problem of JSON shape
    columns: dict[str, list[str]] = {name: [] for name in FIELDS}
    for index, item in enumerate(items):
        where = f"events[{index}]"
        if not isinstance(item, dict):
            problems[index].append(f"{where}: must be an object, got {_json_type(item)}")
            shaped[index] = False
            for name in FIELDS:
                columns[name].append("")
            continue
        unknown = [key for key in item if key not in FIELDS]
        if unknown:
            problems[index].append(f"{where}: unknown field {', '.join(_json_shown(k) for k in unknown)} (allowed: {', '.join(FIELDS)})")
        for position, name in enumerate(FIELDS):
            value, problem = _json_field(name, item[name] if name in item else _ABSENT, now)
            if problem:
                problems[index].append(f"{where}.{name}: {problem}")
                shaped[index, position] = False
            columns[name].append(value)
    checked = check_events(pd.DataFrame(columns, dtype=object), now=now, rules=rules)
    for position, name in enumerate(FIELDS):
        for index, reason in checked.problems[name].dropna().items():
            if shaped[index, position]:
                problems[index].append(f"events[{index}].{name}: {reason}")
    found = [problem for row in problems for problem in row]
    if found:
        more = f" (and {len(found) - 5} more problems)" if len(found) > 5 else ""
        raise EventsError("; ".join(found[:5]) + more + "; nothing was stored", details=found[:100])
    return list(zip(columns["customer_id"], columns["product_id"], checked.type_code.tolist(), checked.timestamp.tolist(), strict=True))


_ABSENT = object()
_FIELD_SET = frozenset(FIELDS)


def _plain_rows(items: list, now: float, rules: EventRules) -> list[tuple[str, str, int, int]] | None:
    """The rows of a batch whose every event has the plain form a shop sends (string ids with
    text, a known type, no timestamp or unix seconds as a JSON number), read exactly as
    `check_events` reads them; None as soon as one event is anything else, which then goes through
    `check_events` and its messages. Pandas costs ~5 ms a call however few the events: this is
    what a request of one page view pays instead. A property test holds the two to the same rows."""
    limit, rows, text = now + rules.max_future_seconds, [], []
    for item in items:
        if type(item) is not dict or not item.keys() <= _FIELD_SET:
            return None
        customer, product, kind = item.get("customer_id"), item.get("product_id"), item.get("type")
        if type(customer) is not str or type(product) is not str or type(kind) is not str or kind not in EVENT_CODE:
            return None
        stamp = item.get("timestamp", _ABSENT)
        seconds = float(now) if stamp is _ABSENT else stamp if type(stamp) in (int, float) else None
        # unix seconds below the milliseconds threshold keep the group's unit seconds; NaN fails every test
        if seconds is None or not (0 <= seconds < MS_THRESHOLD and seconds <= limit) or not customer.strip() or not product.strip():
            return None
        rows.append((customer, product, EVENT_CODE[kind], math.floor(seconds)))
        text += (customer, product)
    try:
        "".join(text).encode("utf-8")  # lone surrogates: refused by the rules
    except UnicodeEncodeError:
        return None
    return rows


def _json_field(name: str, value: Any, now: float) -> tuple[str, str | None]:
    """A JSON field as the text the rules check, or a problem with its JSON shape (an absent
    timestamp means now; an explicit null is refused, as the document says)."""
    if value is _ABSENT and name == "timestamp":
        return repr(float(now)), None
    if value is _ABSENT or (value is None and name != "timestamp"):
        return "", "missing" + (f" (one of {', '.join(EVENT_TYPES)})" if name == "type" else "")
    if name != "timestamp":
        return (value, None) if isinstance(value, str) else ("", f"must be a string, got {_json_type(value)} {_json_shown(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return "", f"must be unix seconds, unix milliseconds or an ISO-8601 string, got {_json_type(value)}"
    return (repr(value) if isinstance(value, float) else str(value)), None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _json_shown(value: Any) -> str:
    import json

    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _not_encodable(values: pd.Series) -> pd.Series:
    """Values whose text has lone surrogates (JSON can carry them; UTF-8, pandas strings and SQLite
    cannot). One encode of everything first, so the common case costs no per-row work; a pyarrow
    string column (what ingest reads) cannot hold one, so it costs nothing."""
    if getattr(values.dtype, "storage", None) == "pyarrow":
        return pd.Series(False, index=values.index)
    try:
        "".join(map(str, values)).encode("utf-8")
    except UnicodeEncodeError:
        return ~values.map(lambda value: _encodes(str(value))).astype(bool)
    return pd.Series(False, index=values.index)


def _escaped(values: pd.Series, broken: pd.Series) -> pd.Series:
    """`values` with each `broken` one as its text with the surrogates backslash-escaped (object dtype)."""
    if not broken.any():
        return values
    escaped = [
        str(value).encode("utf-8", "backslashreplace").decode("utf-8") if bad else value for value, bad in zip(values, broken, strict=True)
    ]
    return pd.Series(escaped, index=values.index, dtype=object)


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unit_divisor(stamps: pd.Series) -> int:
    unit = np.datetime_data(stamps.dtype.base if hasattr(stamps.dtype, "base") else stamps.dtype)[0]
    return {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]


def _duration(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} day" + ("" if days == 1 else "s") if seconds >= 86400 or seconds == 0 else f"{seconds:g} seconds"
