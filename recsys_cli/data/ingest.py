"""Validate raw input and write a fingerprinted Parquet snapshot that train and evaluate reuse.

Nothing is dropped silently: every rejected row is reported with file, line and reason (the
first few on screen, all of them in the snapshot's rejects.csv). Re-running on unchanged inputs
is a no-op because the snapshot is named by a fingerprint of the inputs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import train_lock
from ..errors import ArtifactWriteError, DataError, InputError
from ..fsutil import TEMP_PREFIX, atomic_folder, prune, sweep_temporaries, update_digest
from ..privacy import drop_forgotten
from .events import EventRules, check_events
from .readers import MALFORMED, RawInput, empty_rejects, read_canonical, rejected_lines
from .schema import AVAILABLE_WORDS, CATALOG_AVAILABLE, CATALOG_COLUMNS, CATALOG_FILE, EVENT_TYPES, EVENTS_GLOB, GENDERS

SNAPSHOT_FORMAT = 2  # 2: the summary counts physical event lines read and rejected
SNAPSHOTS_DIR = "snapshots"
MAX_BAD_SHARE = 0.5
SHOWN_REJECTS = 20
KEEP_SNAPSHOTS = 2


@dataclass
class Snapshot:
    """A validated dataset on disk: canonical events and catalog plus what ingest found."""

    path: Path
    fingerprint: str
    summary: dict
    reused: bool = False
    rejects: pd.DataFrame = field(default_factory=empty_rejects)

    def events(self) -> pd.DataFrame:
        """Canonical events: customer_id, product_id (str), type (int8 code), timestamp (int64 s)."""
        return _read_parquet(self.path / "events.parquet")

    def catalog(self) -> pd.DataFrame:
        return _read_parquet(self.path / "catalog.parquet")


def _read_parquet(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    for column in frame.columns:
        if column in ("customer_id", "product_id") or frame[column].dtype.kind in "OUT" or str(frame[column].dtype) in ("str", "string"):
            if column not in ("type", "timestamp", "price"):
                frame[column] = frame[column].astype(object)
    return frame


def fingerprint_inputs(data_dir: Path, fmt: str, options: dict) -> str:
    """sha256 over the input files' names and contents plus the reading options."""
    if fmt == "canonical":
        files = sorted(data_dir.glob(EVENTS_GLOB)) + [p for p in [data_dir / CATALOG_FILE] if p.exists()]
    else:
        files = sorted(p for p in data_dir.iterdir() if p.is_file() and ".sqlite" not in p.name) if data_dir.is_dir() else []
    digest = hashlib.sha256(json.dumps({"format": fmt, "snapshot": SNAPSHOT_FORMAT, **options}, sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode() + b"\0")
        update_digest(digest, path)
    return digest.hexdigest()


def ingest(
    data_dir: Path,
    artifacts_dir: Path,
    *,
    fmt: str = "canonical",
    strict: bool = False,
    encoding: str = "utf8",
    force: bool = False,
    log: Callable[[str], None] | None = None,
    locked: bool = False,
    rules: EventRules | None = None,
    forgotten: Mapping[str, int] | None = None,
) -> Snapshot:
    """Read, validate and snapshot `data_dir`; reuse the snapshot when the inputs are unchanged.

    Writing takes the artifacts folder's lock (waiting for a running train) unless the caller
    already holds it (`locked`), so cleaning up a killed run's temporaries never hits a live one.
    `forgotten` is the live store's deletion list (customer hash -> when): those customers' events
    up to then never reach the snapshot, and a change of the list is a change of the inputs.
    """
    log = log or (lambda message: None)
    reader = _reader(fmt, encoding)
    if not data_dir.exists():
        raise InputError(f"data directory {data_dir} does not exist")
    options = {"strict": strict, "encoding": encoding, "max_future_seconds": (rules or EventRules()).max_future_seconds}
    if forgotten:
        options["forgotten"] = hashlib.sha256(json.dumps(sorted(forgotten.items())).encode()).hexdigest()
    fingerprint = fingerprint_inputs(data_dir, fmt, options)
    target = artifacts_dir / SNAPSHOTS_DIR / fingerprint[:16]
    if not force and (target / "snapshot.json").exists():
        meta = json.loads((target / "snapshot.json").read_text())
        if meta.get("fingerprint") == fingerprint:
            log(f"inputs unchanged since snapshot {fingerprint[:16]}: nothing to do")
            return Snapshot(path=target, fingerprint=fingerprint, summary=meta["summary"], reused=True)
    started = time.perf_counter()
    log(f"reading {data_dir}")
    raw = reader(data_dir)
    log(f"validating {len(raw.events):,} event rows")
    events, catalog, rejects, summary = validate(raw, strict=strict, rules=rules)
    events, dropped = drop_forgotten(events, forgotten or {})
    if dropped:
        # the counts describe the snapshot; the line counts (event_lines...) still describe the input
        summary.update(summarize(events, catalog, rejects, duplicates=summary["duplicates_collapsed"], notes=summary["notes"]))
        log(f"dropped {dropped:,} events of {len(forgotten or {}):,} forgotten customers")
    summary["forgotten_events_dropped"] = dropped
    summary["format"] = fmt
    summary["seconds"] = round(time.perf_counter() - started, 3)
    with nullcontext() if locked else train_lock(artifacts_dir, wait=True):
        _write_snapshot(target, fingerprint, events, catalog, rejects, summary)
        _prune_snapshots(artifacts_dir / SNAPSHOTS_DIR, keep=target)
    log(f"snapshot {fingerprint[:16]} written")
    return Snapshot(path=target, fingerprint=fingerprint, summary=summary, rejects=rejects)


def _reader(fmt: str, encoding: str) -> Callable[[Path], RawInput]:
    if fmt == "canonical":
        return lambda data_dir: read_canonical(data_dir, encoding=encoding)
    from .presets import PRESETS

    if fmt not in PRESETS:
        raise InputError(f"unknown format '{fmt}' (choose canonical, {', '.join(sorted(PRESETS))})")
    return PRESETS[fmt]


# --- validation -----------------------------------------------------------------------------


def validate(
    raw: RawInput, *, strict: bool = False, now: float | None = None, rules: EventRules | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Turn raw rows into canonical typed frames; every rejected row gets a reason (the rules are data/events.py's)."""
    events = raw.events
    reasons = pd.Series(pd.NA, index=events.index, dtype=object)
    notes = list(raw.notes)

    def reject(mask: pd.Series | np.ndarray, reason: pd.Series | str) -> None:
        mask = pd.Series(np.asarray(mask, dtype=bool), index=events.index) & reasons.isna()
        if mask.any():
            reasons[mask] = reason[mask] if isinstance(reason, pd.Series) else reason

    fields = events[["customer_id", "product_id", "type", "timestamp"]].astype(str)
    reject((fields == "").all(axis=1), "empty line")
    checked = check_events(fields, now=time.time() if now is None else now, rules=rules, group=events["file"])
    reject(checked.ok == False, checked.first_problem())  # noqa: E712 (a numpy mask)
    notes.extend(checked.notes)
    timestamps = checked.timestamp

    bad = reasons.notna()
    new_rejects = pd.DataFrame({"file": events.loc[bad, "file"], "line": events.loc[bad, "line"], "reason": reasons[bad], "lines": 1})
    rejects = pd.concat([r for r in (raw.rejects, new_rejects) if len(r)] or [empty_rejects()], ignore_index=True)
    rejects["lines"] = rejected_lines(rejects)
    rejects = rejects.sort_values(["file", "line"], kind="stable").reset_index(drop=True)
    lines_read, lines_bad = _physical_lines(raw, rejects)
    _check_rejects(rejects, lines_read, lines_bad, strict=strict)

    good = events.loc[~bad]
    canonical = pd.DataFrame(
        {
            "customer_id": good["customer_id"].to_numpy(dtype=object),
            "product_id": good["product_id"].to_numpy(dtype=object),
            "type": checked.type_code[~bad.to_numpy()],
            "timestamp": timestamps[~bad.to_numpy()],
        }
    )
    before = len(canonical)
    canonical = canonical.drop_duplicates(ignore_index=True)
    duplicates = before - len(canonical)
    canonical = canonical.sort_values("timestamp", kind="stable", ignore_index=True)

    catalog, catalog_rejects = _validate_catalog(raw.catalog)
    if strict and len(catalog_rejects):
        first = catalog_rejects.iloc[0]
        raise DataError(f"{first['file']} line {first['line']}: {first['reason']} (--strict stops at the first bad row)")
    if len(catalog_rejects):
        rejects = pd.concat([rejects, catalog_rejects], ignore_index=True)
    summary = summarize(canonical, catalog, rejects, duplicates=duplicates, notes=notes)
    catalog_files = set(raw.catalog["file"]) if "file" in raw.catalog.columns else set()
    event_files = set(events["file"]) | (set(raw.rejects["file"]) - catalog_files)
    summary["event_lines"] = int(sum(lines_read.get(name, 0) for name in event_files))
    # Input errors only, for the publish guard's reject rate: malformed records and rows the event
    # rules refused. Rows a preset drops by its documented rules (Online Retail's cancelled
    # invoices and rows without CustomerID, a quarter of that file) are not errors in the input.
    errors = pd.concat([raw.rejects[raw.rejects["reason"].astype(str).str.startswith(MALFORMED)], new_rejects])
    errors = errors[errors["file"].isin(event_files)]
    summary["event_lines_rejected"] = int(rejected_lines(errors).sum()) if len(errors) else 0
    return canonical, catalog, rejects, summary


def _physical_lines(raw: RawInput, rejects: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
    """Per file: physical data lines read, and those inside rejected records.

    Lines, not records: one unclosed quote can turn thousands of lines into a single malformed
    record, and counting records would call that file 50% good.
    """
    read = [frame["file"] for frame in (raw.events, raw.catalog) if "file" in frame.columns and len(frame)]
    if len(read) == 2:  # a preset may derive its catalog from the events file: count each file's rows once
        read[1] = read[1][~read[1].isin(set(read[0]))]
    rows = pd.concat(read).value_counts() if read else pd.Series(dtype="int64")
    by_reader = rejected_lines(raw.rejects).groupby(raw.rejects["file"]).sum() if len(raw.rejects) else pd.Series(dtype="int64")
    bad = rejects["lines"].groupby(rejects["file"]).sum() if len(rejects) else pd.Series(dtype="int64")
    names = set(rows.index) | set(by_reader.index)
    totals = {str(name): int(rows.get(name, 0)) + int(by_reader.get(name, 0)) for name in names}
    return totals, {str(name): int(count) for name, count in bad.items()}


def _check_rejects(rejects: pd.DataFrame, lines_read: dict[str, int], lines_bad: dict[str, int], *, strict: bool) -> None:
    if not len(rejects):
        return
    first = rejects.iloc[0]
    where = f"{first['file']} line {first['line']}: {first['reason']}"
    if strict:
        raise DataError(f"{where} (--strict stops at the first bad row)")
    for name, bad in lines_bad.items():
        total = max(lines_read.get(name, bad), bad)
        if total and bad / total > MAX_BAD_SHARE:
            sample = rejects[rejects["file"] == name].iloc[0]
            raise DataError(
                f"{name}: {bad:,} of {int(total):,} lines are bad ({bad / total:.0%}, more than {MAX_BAD_SHARE:.0%}); "
                f"first at line {sample['line']}: {sample['reason']}. Is this the right file and format?"
            )


def _validate_catalog(catalog: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical catalog (one row per product) and the catalog rows refused or amended, with reasons."""
    if not len(catalog):
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in CATALOG_COLUMNS}).assign(
            price=pd.Series([], dtype=float)
        ), empty_rejects()
    frame = catalog.copy()
    for column in CATALOG_COLUMNS:
        if column not in frame.columns:
            frame[column] = ""
    if "file" not in frame.columns:
        frame["file"], frame["line"] = CATALOG_FILE, np.arange(2, len(frame) + 2)
    problems = []
    empty_id = frame["product_id"].astype(str).str.strip() == ""
    problems.append(pd.DataFrame({"file": frame.loc[empty_id, "file"], "line": frame.loc[empty_id, "line"], "reason": "empty product_id"}))
    frame = frame.loc[~empty_id]
    duplicated = frame["product_id"].duplicated(keep="first")
    problems.append(
        pd.DataFrame(
            {
                "file": frame.loc[duplicated, "file"],
                "line": frame.loc[duplicated, "line"],
                "reason": "duplicate product_id '" + frame.loc[duplicated, "product_id"].astype(str) + "' (first row kept)",
            }
        )
    )
    frame = frame.loc[~duplicated]
    price_text = frame["price"].astype(str).str.strip()
    price = pd.to_numeric(price_text.where(price_text != "", None), errors="coerce")
    bad_price = (price_text != "") & price_text.str.lower().ne("nan") & (price.isna() | (price < 0) | ~np.isfinite(price.fillna(0)))
    problems.append(
        pd.DataFrame(
            {
                "file": frame.loc[bad_price, "file"],
                "line": frame.loc[bad_price, "line"],
                "reason": "bad price '" + price_text[bad_price].str.slice(0, 40) + "' (product kept without price)",
            }
        )
    )
    gender = frame["gender"].astype(str).str.strip()
    bad_gender = (gender != "") & ~gender.isin(GENDERS)
    problems.append(
        pd.DataFrame(
            {
                "file": frame.loc[bad_gender, "file"],
                "line": frame.loc[bad_gender, "line"],
                "reason": "unknown gender '" + gender[bad_gender].str.slice(0, 40) + "' (product kept without gender)",
            }
        )
    )
    flag = frame[CATALOG_AVAILABLE].astype(str).str.strip().str.lower() if CATALOG_AVAILABLE in frame.columns else None
    bad_flag = (flag != "") & ~flag.isin(list(AVAILABLE_WORDS)) if flag is not None else None
    if flag is not None:
        problems.append(
            pd.DataFrame(
                {
                    "file": frame.loc[bad_flag, "file"],
                    "line": frame.loc[bad_flag, "line"],
                    "reason": "bad available '"
                    + frame.loc[bad_flag, CATALOG_AVAILABLE].astype(str).str.slice(0, 40)
                    + "' (use true/false, yes/no or 1/0; product kept as available)",
                }
            )
        )
    out = pd.DataFrame({"product_id": frame["product_id"].to_numpy(dtype=object)})
    for column in ("category_id", "category_path", "brand", "description"):
        values = frame[column].astype(object).where(frame[column].astype(str).str.strip() != "", None)
        out[column] = values.to_numpy(dtype=object)
    out["gender"] = gender.where(gender.isin(GENDERS), None).to_numpy(dtype=object)
    out["price"] = price.where(~bad_price & (price >= 0)).to_numpy(dtype=float)
    if flag is not None:
        out[CATALOG_AVAILABLE] = (~flag.map(AVAILABLE_WORDS).eq(False)).to_numpy(dtype=bool)
    rejects = pd.concat([p for p in problems if len(p)] or [empty_rejects()], ignore_index=True)
    return out, rejects


# --- summary and storage --------------------------------------------------------------------


def summarize(events: pd.DataFrame, catalog: pd.DataFrame, rejects: pd.DataFrame, *, duplicates: int, notes: list[str]) -> dict:
    """The numbers `recsys ingest` prints and stores."""
    customers = int(events["customer_id"].nunique())
    products = int(events["product_id"].nunique())
    pairs = int(len(events[["customer_id", "product_id"]].drop_duplicates())) if len(events) else 0
    catalog_ids = pd.Index(catalog["product_id"]) if len(catalog) else pd.Index([])
    unknown = int((~events["product_id"].isin(catalog_ids)).sum()) if len(catalog_ids) else int(len(events))
    counts = np.bincount(events["type"].to_numpy(dtype=np.int64), minlength=len(EVENT_TYPES))
    start = events["timestamp"].min() if len(events) else None
    end = events["timestamp"].max() if len(events) else None
    return {
        "events": int(len(events)),
        "events_by_type": {name: int(counts[code]) for code, name in enumerate(EVENT_TYPES)},
        "customers": customers,
        "products_in_events": products,
        "catalog_products": int(len(catalog)),
        "pairs": pairs,
        "sparsity": round(1.0 - pairs / (customers * products), 6) if customers and products else 1.0,
        "time_range": [_iso(start), _iso(end)],
        "rejected": int(len(rejects)),
        "rejected_by_reason": _reason_counts(rejects),
        "duplicates_collapsed": int(duplicates),
        "events_unknown_product": unknown,
        "notes": notes,
    }


def _reason_counts(rejects: pd.DataFrame) -> dict[str, int]:
    if not len(rejects):
        return {}
    kinds = rejects["reason"].astype(str).str.replace(r" '.*", "", regex=True).str.replace(r" \(.*", "", regex=True)
    return {str(k): int(v) for k, v in kinds.value_counts().items()}


def _iso(seconds: float | None) -> str | None:
    if seconds is None or pd.isna(seconds):
        return None
    return pd.Timestamp(int(seconds), unit="s", tz="UTC").isoformat()


def _write_snapshot(
    target: Path, fingerprint: str, events: pd.DataFrame, catalog: pd.DataFrame, rejects: pd.DataFrame, summary: dict
) -> None:
    """Write into a temporary sibling folder, then rename: a crash never leaves half a snapshot."""
    try:
        with atomic_folder(target, replace=True) as temp:
            events.to_parquet(temp / "events.parquet", index=False)
            catalog.to_parquet(temp / "catalog.parquet", index=False)
            rejects.to_csv(temp / "rejects.csv", index=False)
            meta = {
                "format": SNAPSHOT_FORMAT,
                "fingerprint": fingerprint,
                "created_at": pd.Timestamp.now(tz="UTC").isoformat(),
                "summary": summary,
            }
            (temp / "snapshot.json").write_text(json.dumps(meta, indent=2))
    except OSError as error:
        raise ArtifactWriteError(
            f"could not write the snapshot in {target.parent}: {error.strerror or error}; the previous snapshot is unchanged"
        ) from None


def _prune_snapshots(root: Path, keep: Path) -> None:
    """Keep the newest snapshots; remove temporaries a killed run left (safe: the caller holds the lock)."""
    sweep_temporaries(root)
    others = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(TEMP_PREFIX) and p != keep]
    prune(others, keep=KEEP_SNAPSHOTS - 1)
