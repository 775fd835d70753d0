"""The live-event store: events posted to the server, durable before they are acknowledged.

Two backends behind one interface (`LiveEvents`), chosen by `open_live_store`:

- SQLite (the embedded default, `DATA/live_events.sqlite`): WAL mode (one writer at a time, many
  readers, safe across the worker processes of one machine), `synchronous=FULL` so an
  acknowledged event survives a crash;
- PostgreSQL (`--live-store postgresql://...`, live_postgres.py): one store shared by server
  replicas on several machines, each batch committed before it is acknowledged.

`recsys train` folds these events into training. Only parameterised SQL is used: ids are opaque strings.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from .data.schema import EVENT_CODE, EVENT_TYPES
from .errors import InputError, LiveStoreError

log = logging.getLogger("recsys.live")

LIVE_DB = "live_events.sqlite"
BUSY_SECONDS = 30.0  # how long a writer waits for another one before giving up (503)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_customer ON events (customer_id, id);
CREATE TABLE IF NOT EXISTS availability (
    product_id TEXT PRIMARY KEY,
    available INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hidden (
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    hidden_at INTEGER NOT NULL,
    PRIMARY KEY (customer_id, product_id)
);
CREATE TABLE IF NOT EXISTS forgotten (
    customer_hash TEXT PRIMARY KEY,
    forgotten_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Controls:
    """What a request needs from the shop's own controls, read in one query.

    `generation` changes whenever availability or the deletion list changes (the service then
    re-reads them); `hidden` is the customer's hide list.
    """

    generation: int
    hidden: tuple[str, ...] = ()


NO_CONTROLS = Controls(0)


def unreadable(store: "LiveEvents", error: Exception, message: str) -> None:
    """Remember in `store.read_error` why a read failed (serving goes on without it); log `message`
    only when the store was readable before, so a broken store does not flood the log."""
    if store.read_error is None:
        log.error("%s: %s", message, error)
    store.read_error = str(error)


def split_request_rows(rows: list[tuple]) -> tuple[list[tuple[str, int, int]], Controls]:
    """(events newest first, Controls) from the rows of a store's one-round-trip request query."""
    events = [(product, int(kind), int(stamp)) for product, kind, stamp, _ in rows if kind >= 0]
    hidden = tuple(product for product, kind, _, _ in rows if kind == -1)
    generation = next((int(stamp) for _, kind, stamp, _ in rows if kind == -2), 0)
    return events, Controls(generation, hidden)


class LiveEvents(Protocol):
    """What the server, the service and training need from a live-event store."""

    read_error: str | None
    """Why the last read for a recommendation failed (None once one succeeds)."""

    @property
    def where(self) -> str:
        """The store's location for messages (no password)."""

    def exists(self) -> bool: ...

    def append(self, events: list[tuple[str, str, int, int]]) -> int:
        """Store (customer_id, product_id, type code, timestamp) rows, durably, in one transaction."""

    def for_customer(self, customer_id: str, *, limit: int = 500) -> list[tuple[str, int, int]]:
        """The customer's most recent events as (product_id, type code, timestamp), newest first; [] when unreadable."""

    def count(self) -> int: ...

    def watermark(self) -> tuple[int, int]:
        """(count, highest id): changes whenever events are added."""

    def to_frame(self) -> pd.DataFrame:
        """All live events as canonical events (type as code)."""

    def close(self) -> None: ...

    def controls(self, customer_id: str) -> Controls:
        """The controls generation and the customer's hidden products; NO_CONTROLS (and `read_error`) when unreadable."""

    def for_request(self, customer_id: str, *, limit: int = 500) -> tuple[list[tuple[str, int, int]], Controls]:
        """`for_customer` and `controls` in one round trip: what one recommendation request reads."""

    def set_availability(self, product_ids: list[str], available: bool, *, at: int) -> None:
        """Record that `product_ids` are (un)available from now on, durably; overrides the catalog."""

    def availability(self) -> dict[str, bool]:
        """Every recorded availability override: product_id -> available."""

    def hide(self, customer_id: str, product_ids: list[str], *, at: int) -> int:
        """Add products to a customer's hide list, durably; how many were new."""

    def hidden(self, customer_id: str) -> list[str]:
        """A customer's hidden products, oldest first."""

    def forget(self, customer_id: str, customer_hash: str, *, at: int) -> int:
        """Remove a customer's live events and hide list and add their hash to the deletion list,
        in one transaction; how many live events were removed."""

    def forgotten(self) -> dict[str, int]:
        """The deletion list: customer hash -> when they were forgotten (unix seconds)."""


def open_live_store(data_dir: Path, url: str | None = None) -> LiveEvents:
    """The live store `url` names: a postgresql:// URL, or the SQLite file in `data_dir` when None or empty.

    `sqlite:///path/to/file.sqlite` names another SQLite file.
    """
    if not url:
        return LiveStore.in_folder(data_dir)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        from .live_postgres import PostgresLiveStore

        return PostgresLiveStore(url)
    if scheme == "sqlite":
        return LiveStore(Path(url.split("://", 1)[1]))
    raise InputError(f"--live-store must be a postgresql:// or sqlite:// URL, got '{url.split('://', 1)[0][:20]}://...'")


def frame_of(rows: list[tuple]) -> pd.DataFrame:
    """(customer_id, product_id, type, timestamp) rows as canonical events with the canonical dtypes."""
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "type", "timestamp"])
    if not len(frame):
        frame = pd.DataFrame({column: pd.Series([], dtype=object) for column in frame.columns})
    frame["customer_id"] = frame["customer_id"].astype(object)
    frame["product_id"] = frame["product_id"].astype(object)
    frame["type"] = frame["type"].astype(np.int8)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


@dataclass(frozen=True)
class Statements:
    """The SQL both stores run, in one dialect: `placeholder` ("?" or "%s") and their table names."""

    request: str
    append: str
    events: str
    bump: str
    set_availability: str
    availability: str
    hide: str
    hidden: str
    forget: tuple[str, str, str]
    forgotten: str
    count: str
    watermark: str
    everything: str

    @classmethod
    def of(cls, p: str, events: str, availability: str, hidden: str, forgotten: str, generation: str) -> "Statements":
        return cls(
            # one round trip: the newest events (kind = type code), the hide list (kind -1) and the
            # controls generation (kind -2, its value in the timestamp column)
            request=(
                f"SELECT product_id, type, timestamp, id FROM ("
                f"SELECT product_id, type, timestamp, id FROM {events} WHERE customer_id = {p} ORDER BY id DESC LIMIT {p}) AS recent"
                f" UNION ALL SELECT product_id, -1, hidden_at, 0 FROM {hidden} WHERE customer_id = {p}"
                f" UNION ALL SELECT '', -2, value, 0 FROM {generation} WHERE id = 1"
                " ORDER BY 4 DESC, 3"
            ),
            append=f"INSERT INTO {events} (customer_id, product_id, type, timestamp) VALUES ({p}, {p}, {p}, {p})",
            events=f"SELECT product_id, type, timestamp FROM {events} WHERE customer_id = {p} ORDER BY id DESC LIMIT {p}",
            bump=f"INSERT INTO {generation} (id, value) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET value = {generation}.value + 1",
            set_availability=(
                f"INSERT INTO {availability} (product_id, available, updated_at) VALUES ({p}, {p}, {p}) ON CONFLICT (product_id)"
                " DO UPDATE SET available = excluded.available, updated_at = excluded.updated_at"
            ),
            availability=f"SELECT product_id, available FROM {availability}",
            hide=f"INSERT INTO {hidden} (customer_id, product_id, hidden_at) VALUES ({p}, {p}, {p}) ON CONFLICT DO NOTHING",
            hidden=f"SELECT product_id FROM {hidden} WHERE customer_id = {p} ORDER BY hidden_at",
            forget=(
                f"DELETE FROM {events} WHERE customer_id = {p}",
                f"DELETE FROM {hidden} WHERE customer_id = {p}",
                f"INSERT INTO {forgotten} (customer_hash, forgotten_at) VALUES ({p}, {p}) ON CONFLICT (customer_hash)"
                " DO UPDATE SET forgotten_at = excluded.forgotten_at",
            ),
            forgotten=f"SELECT customer_hash, forgotten_at FROM {forgotten}",
            count=f"SELECT COUNT(*) FROM {events}",
            watermark=f"SELECT COUNT(*), COALESCE(MAX(id), 0) FROM {events}",
            everything=f"SELECT customer_id, product_id, type, timestamp FROM {events} ORDER BY id",
        )


class SQLStore(ABC):
    """The reads and writes both stores run the same way, each in its own dialect (`sql`).

    A store provides `_query(sql, params)` (rows; LiveStoreError when it fails), `_write(steps,
    what, counted=)` (one durable transaction; rows changed per step) and `close()`; reads answer
    empty while `_absent()` (the SQLite file before anyone wrote to it). Reading for a
    recommendation never fails the request: an unreadable store gives no live events, and
    `read_error` says why until a read succeeds again.
    """

    sql: Statements

    def __init__(self) -> None:
        self._local = threading.local()  # one connection per thread
        self._setup_lock = threading.Lock()
        self._ready = False  # the schema is in place
        self.read_error: str | None = None

    @abstractmethod
    def _query(self, sql: str, params: tuple = ()) -> list[tuple]: ...

    @abstractmethod
    def _write(self, steps: list[tuple[str, list[tuple]]], what: str, *, counted: bool = True) -> list[int]:
        """Each (sql, rows) in one durable transaction; rows changed per step (`counted=False`: the
        rows given, when the store can write faster without counting)."""

    def append(self, events: list[tuple[str, str, int, int]]) -> int:
        """Store (customer_id, product_id, type code, timestamp) rows in one transaction."""
        self._write([(self.sql.append, events)], "events", counted=False)
        return len(events)

    @abstractmethod
    def close(self) -> None: ...

    def _absent(self) -> bool:
        return False

    def _read_for_request(self, sql: str, params: tuple) -> list[tuple] | None:
        """Rows; None when there is nothing to read (no file) or the store is unreadable (logged, and
        the connection reopened at the next read): the caller then keeps the controls it knows."""
        if self._absent():
            self.read_error = None
            return None
        try:
            rows = self._query(sql, params)
        except LiveStoreError as error:
            unreadable(self, error, "live events unreadable, serving without them")
            self.close()
            return None
        self.read_error = None
        return rows

    def for_request(self, customer_id: str, *, limit: int = 500) -> tuple[list[tuple[str, int, int]], Controls]:
        """The customer's live events (as `for_customer`) and the controls (as `controls`) in one query:
        the one read a recommendation request makes. Unreadable or absent: ([], NO_CONTROLS), which
        keeps the availability and deletion list last read (and `read_error` says why when unreadable)."""
        rows = self._read_for_request(self.sql.request, (customer_id, limit, customer_id))
        return ([], NO_CONTROLS) if rows is None else split_request_rows(rows)

    def for_customer(self, customer_id: str, *, limit: int = 500) -> list[tuple[str, int, int]]:
        """The customer's most recent live events as (product_id, type code, timestamp), newest first."""
        rows = self._read_for_request(self.sql.events, (customer_id, limit)) or []
        return [(product, int(kind), int(stamp)) for product, kind, stamp in rows]

    def controls(self, customer_id: str) -> Controls:
        """The controls generation and the customer's hidden products: `for_request` without events."""
        return self.for_request(customer_id, limit=0)[1]

    def set_availability(self, product_ids: list[str], available: bool, *, at: int) -> None:
        rows = [(product_id, bool(available), int(at)) for product_id in product_ids]
        self._write([(self.sql.set_availability, rows), (self.sql.bump, [()])], "availability")

    def availability(self) -> dict[str, bool]:
        if self._absent():
            return {}
        return {product_id: bool(flag) for product_id, flag in self._query(self.sql.availability)}

    def hide(self, customer_id: str, product_ids: list[str], *, at: int) -> int:
        rows = [(customer_id, product_id, int(at)) for product_id in product_ids]
        return self._write([(self.sql.hide, rows)], "hidden products")[0]

    def hidden(self, customer_id: str) -> list[str]:
        if self._absent():
            return []
        return [row[0] for row in self._query(self.sql.hidden, (customer_id,))]

    def forget(self, customer_id: str, customer_hash: str, *, at: int) -> int:
        events, hidden, forgotten = self.sql.forget
        steps = [(events, [(customer_id,)]), (hidden, [(customer_id,)]), (forgotten, [(customer_hash, int(at))]), (self.sql.bump, [()])]
        return self._write(steps, "the deletion")[0]

    def forgotten(self) -> dict[str, int]:
        if self._absent():
            return {}
        return {digest: int(at) for digest, at in self._query(self.sql.forgotten)}

    def count(self) -> int:
        return 0 if self._absent() else int(self._query(self.sql.count)[0][0])

    def watermark(self) -> tuple[int, int]:
        """(count, highest id): changes whenever events are added; part of the training fingerprint."""
        if self._absent():
            return (0, 0)
        count, highest = self._query(self.sql.watermark)[0]
        return int(count), int(highest)

    def to_frame(self) -> pd.DataFrame:
        """All live events, oldest first, as canonical events (type as code)."""
        return frame_of([] if self._absent() else self._query(self.sql.everything))


class LiveStore(SQLStore):
    """Append and read live events in a SQLite file; one connection per thread."""

    sql = Statements.of("?", events="events", availability="availability", hidden="hidden", forgotten="forgotten", generation="generation")

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)
        self._file_seen = False

    @classmethod
    def in_folder(cls, data_dir: Path) -> "LiveStore":
        return cls(Path(data_dir) / LIVE_DB)

    @property
    def where(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def _absent(self) -> bool:
        """True while the file does not exist: reads then answer empty instead of creating it.

        Checked until the file is first seen, and again after a read error closed the connection
        (an operator may move a broken file away): not once per request, where the stat call,
        which releases the GIL, cost the server a tenth of its throughput on its fast routes."""
        if self._file_seen:
            return False
        self._file_seen = self.path.exists()
        return not self._file_seen

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
                connection.execute("PRAGMA synchronous=FULL")
                self._ensure_schema(connection)
            except (sqlite3.Error, OSError) as error:
                if connection is not None:
                    connection.close()
                raise LiveStoreError(f"live event store {self.path}: {error}") from None
            self._local.connection = connection
        return connection

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL and create the table, once per store.

        Changing the journal mode fails at once with "database is locked" (SQLite does not call the
        busy handler for it) while another process holds a write lock, so it is retried until
        BUSY_SECONDS have passed; once done, later connections of this store skip it.
        """
        if self._ready:
            return
        with self._setup_lock:
            deadline = time.monotonic() + BUSY_SECONDS
            pause = 0.005
            while not self._ready:
                try:
                    connection.execute("PRAGMA journal_mode=WAL")
                    connection.executescript(_SCHEMA)
                    self._ready = True
                except sqlite3.OperationalError as error:
                    if ("locked" not in str(error) and "busy" not in str(error)) or time.monotonic() > deadline:
                        raise
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise LiveStoreError(f"live event store {self.path}: {error}") from None

    def _write(self, steps: list[tuple[str, list[tuple]]], what: str, *, counted: bool = True) -> list[int]:
        """Run each (sql, rows) with executemany in one durable transaction; rows changed per step
        (SQLite counts them cheaply, so always)."""
        connection = self._connection()
        changed = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for sql, rows in steps:
                before = connection.total_changes
                connection.executemany(sql, rows)
                changed.append(connection.total_changes - before)
            connection.execute("COMMIT")
        except sqlite3.Error as error:
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # SQLite rolls the transaction back itself when it cannot; the batch is not committed
            raise LiveStoreError(f"live event store {self.path}: could not store {what} ({error}); nothing was written") from None
        return changed

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        self._file_seen = False


def type_code(name: str) -> int:
    """Code of a canonical event type name (KeyError if unknown)."""
    return EVENT_CODE[name]


__all__ = [
    "Controls",
    "NO_CONTROLS",
    "LiveEvents",
    "LiveStore",
    "LiveStoreError",
    "LIVE_DB",
    "EVENT_TYPES",
    "frame_of",
    "open_live_store",
    "type_code",
]
