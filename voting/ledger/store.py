"""Opening the ledger's file, and the transactions and snapshots that every read and write of it goes through; and
appending to the hash chain, which every record of the ledger does."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from voting.errors import ConfigError, LedgerError, StorageError
from voting.ledger.chain import GENESIS, Event, canonical_json, event_hash, utc_text
from voting.ledger.schema import INDEXES, SCHEMA, SCHEMA_VERSION, migrate

T = TypeVar("T")


PAGE_CACHE_BYTES = 16 << 20
"""SQLite's page cache for each connection, rather than its default of 2 MiB: a check reads a large vote's decisions
in the order of an index, page by page out of order, and with the smaller cache read each page several times."""


class Store:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path
        self._held: dict[tuple[Any, ...], list[Any]] | None = None
        """Rows read inside a `snapshot`, which cannot change before it ends: read once however often asked."""

    @classmethod
    def open(cls, path: Path) -> Self:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Owner only, whatever the umask: SQLite gives its -wal and -shm files the database's mode. Made only
            # when missing: closing any descriptor of an open database drops this process's locks on it.
            try:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            connection = sqlite3.connect(path, isolation_level=None, timeout=30)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA cache_size=-{PAGE_CACHE_BYTES // 1024}")
            connection.executescript(SCHEMA)
            if connection.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                # Only when it differs: opening an existing ledger then takes no write lock.
                migrate(connection)
            connection.executescript(INDEXES)
        except sqlite3.DatabaseError as error:
            raise ConfigError(f"{path}: cannot open the ledger (service.database): {error}") from None
        except OSError as error:
            raise ConfigError(f"{path}: cannot open the ledger (service.database): {error.strerror}") from None
        return cls(connection, path)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT: everything inside lands together or not at all.

        Inside a transaction already open, it joins that one. A full or
        failing disk raises `StorageError`, with nothing of it committed.
        """
        if self.db.in_transaction:
            if self._held is not None:  # what it writes is read afresh
                self._held.clear()
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as error:
            if self.db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                self.db.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError) and error.sqlite_errorname.startswith(
                    ("SQLITE_FULL", "SQLITE_IOERR")):
                raise StorageError(f"{self.path}: the ledger cannot be written: {error}") from None
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside sees the ledger as one commit left it.

        Without it each query sees the latest commit, so a reader running
        beside a pass could find a decision whose chain event it read before
        that decision was committed, and report damage that is not there.
        Inside a transaction already open, it joins that one.
        """
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN DEFERRED")
        self._held = {}
        try:
            yield
        finally:
            self._held = None
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def _held_or_read(self, key: tuple[Any, ...], read: Callable[[], list[T]]) -> list[T]:
        if self._held is None:
            return read()
        if key not in self._held:
            self._held[key] = read()
        return list(self._held[key])

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: what is written inside is undone alone on an error, the rest of the transaction kept."""
        if not self.db.in_transaction:
            raise LedgerError("a savepoint belongs inside a transaction")
        self.db.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # SQLite may have rolled back the whole transaction already (a full disk does)
                self.db.execute("ROLLBACK TO part")
                self.db.execute("RELEASE part")
            raise
        self.db.execute("RELEASE part")

    def data_version(self) -> int:
        """Changes whenever another connection commits to the ledger (SQLite's `PRAGMA data_version`)."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # -- the hash chain --------------------------------------------------

    def append_event(self, chain: str, kind: str, data: dict[str, Any], at: datetime) -> Event:
        """Append to a chain; call inside a transaction so the event lands with what it records."""
        return self.append_events(chain, kind, [data], at)[0]

    def append_events(self, chain: str, kind: str, items: Sequence[dict[str, Any]], at: datetime) -> list[Event]:
        """Append events of one kind to a chain in order, reading its head once; call inside a transaction."""
        if not items:
            return []
        row = self.db.execute(
            "SELECT seq, hash FROM events WHERE chain = ? ORDER BY seq DESC LIMIT 1", (chain,)
        ).fetchone()
        seq, prev_hash = (row["seq"], row["hash"]) if row else (0, GENESIS)
        at_text = utc_text(at)
        events, rows = [], []
        for data in items:
            seq += 1
            data_json = canonical_json(data)
            digest = event_hash(prev_hash, seq, at_text, kind, data_json)
            events.append(Event(chain, seq, at_text, kind, prev_hash, digest, data_json))
            rows.append((chain, seq, at_text, kind, data_json, prev_hash, digest))
            prev_hash = digest
        self.db.executemany(
            "INSERT INTO events (chain, seq, at, kind, data_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
        )
        return events

    def events(self, chain: str) -> list[Event]:
        return self._held_or_read(("events", chain), lambda: self._events(chain))

    def _events(self, chain: str) -> list[Event]:
        rows = self._tuples("SELECT seq, at, kind, data_json, prev_hash, hash FROM events WHERE chain = ? ORDER BY seq",
                            (chain,))
        return [Event(chain, seq, at, kind, prev_hash, digest, data_json)
                for seq, at, kind, data_json, prev_hash, digest in rows]

    def _tuples(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows as plain tuples, for the long reads a check makes: a `sqlite3.Row` read by name costs more than
        the row itself."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(query, params).fetchall()
