"""The live-event store on PostgreSQL: one store shared by `recsys serve` replicas on several machines.

Same interface as the SQLite store (live.LiveEvents). Each batch of events is one transaction,
committed (with PostgreSQL's default `synchronous_commit=on`, so flushed to its WAL) before the
server answers 201: an acknowledged event survives the death of the replica that took it, and of
the database server. Every replica reads a customer's events from the same table, so whichever
replica answers next sees them.

The table is `recsys_live_events` in the connection's schema; to keep several shops in one
database give each its own schema with libpq's options, e.g.
`postgresql://host/db?options=-csearch_path%3Dshop1`. Only parameterised SQL is used.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from .errors import InputError, LiveStoreError
from .live import SQLStore, Statements

log = logging.getLogger("recsys.live")

TABLE = "recsys_live_events"
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_MS = 30_000  # as SQLite's busy timeout: a stuck database fails the request (503) instead of hanging it
_SCHEMA_LOCK = 0x7265637379730001  # pg_advisory_xact_lock key: replicas starting together create the table once

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    type SMALLINT NOT NULL,
    timestamp BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_customer ON {TABLE} (customer_id, id);
CREATE TABLE IF NOT EXISTS recsys_availability (
    product_id TEXT PRIMARY KEY,
    available BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS recsys_hidden (
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    hidden_at BIGINT NOT NULL,
    PRIMARY KEY (customer_id, product_id)
);
CREATE TABLE IF NOT EXISTS recsys_forgotten (
    customer_hash TEXT PRIMARY KEY,
    forgotten_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS recsys_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
"""


def redact(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresLiveStore(SQLStore):
    """Append and read live events in PostgreSQL; one connection per thread, reopened after a failure."""

    sql = Statements.of(
        "%s",
        events=TABLE,
        availability="recsys_availability",
        hidden="recsys_hidden",
        forgotten="recsys_forgotten",
        generation="recsys_generation",
    )

    def __init__(self, url: str):
        try:
            import psycopg  # noqa: F401  (fail at startup, not at the first event)
        except ImportError:
            raise InputError("a postgresql:// live store needs psycopg: pip install -e '.[postgres]'") from None
        super().__init__()
        self.url = url

    @property
    def where(self) -> str:
        return redact(self.url)

    def exists(self) -> bool:
        """The table is created on first use, so a reachable database always has the store."""
        return True

    def _connection(self):
        import psycopg

        connection = getattr(self._local, "connection", None)
        if connection is not None and not connection.closed:
            return connection
        try:
            connection = psycopg.connect(self._conninfo(), autocommit=True)
            self._ensure_schema(connection)
        except psycopg.Error as error:
            raise LiveStoreError(f"live event store {self.where}: {_message(error)}") from None
        self._local.connection = connection
        return connection

    def _conninfo(self) -> str:
        """The URL with recsys' defaults added: a connect timeout, a statement timeout (kept beside
        any options the URL has, such as a search_path) and an application name."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        try:
            given = conninfo_to_dict(self.url)
        except Exception as error:  # psycopg.ProgrammingError for a malformed URL
            raise InputError(f"live store URL {self.where} is not a valid PostgreSQL URL: {_message(error)}") from None
        options = " ".join(filter(None, [f"-c statement_timeout={STATEMENT_TIMEOUT_MS}", given.get("options")]))
        return make_conninfo(
            self.url,
            options=options,
            connect_timeout=given.get("connect_timeout", CONNECT_TIMEOUT_SECONDS),
            application_name=given.get("application_name", "recsys"),
        )

    def _ensure_schema(self, connection) -> None:
        if self._ready:
            return
        with self._setup_lock:
            if self._ready:
                return
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                connection.execute(_SCHEMA)
            self._ready = True

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg

        try:
            connection = self._connection()
            with connection.transaction():
                return connection.execute(sql, params).fetchall()
        except psycopg.Error as error:
            self.close()  # a broken connection is reopened on the next call
            raise LiveStoreError(f"live event store {self.where}: {_message(error)}") from None

    def _write(self, steps: list[tuple[str, list[tuple]]], what: str, *, counted: bool = True) -> list[int]:
        """Run each (sql, rows) in one committed transaction; rows changed per step (`counted=False`:
        one executemany per step, whose rowcount is not the sum on every psycopg version)."""
        import psycopg

        try:
            connection = self._connection()
        except LiveStoreError as error:
            raise LiveStoreError(f"{error}; nothing was written") from None
        changed = []
        try:
            with connection.transaction(), connection.cursor() as cursor:
                for sql, rows in steps:
                    if not counted:
                        cursor.executemany(sql, rows)
                        changed.append(len(rows))
                        continue
                    total = 0
                    for params in rows:  # executemany's rowcount is not the sum on every psycopg version
                        cursor.execute(sql, params)
                        total += max(cursor.rowcount, 0)
                    changed.append(total)
        except psycopg.Error as error:
            self.close()
            raise LiveStoreError(
                f"live event store {self.where}: could not store {what} ({_message(error)}); nothing was written"
            ) from None
        return changed

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a connection whose server is gone must not raise
                pass
            self._local.connection = None


def _message(error: Exception) -> str:
    """psycopg's message on one line (it can span several, with hints)."""
    return " ".join(str(error).split()) or type(error).__name__
