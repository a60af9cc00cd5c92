"""The ledger: one SQLite file (WAL, synchronous=FULL) that is the service's memory.

Raw messages are committed before anything else happens to them; decisions,
the chain events that record them and the mail that answers them are written
in one transaction. Every event is appended to a hash chain (one chain per
vote, and one for messages not yet bound to a vote), so that removing or
changing a recorded event is detectable.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from voting.errors import ConfigError, LedgerError, StorageError, UsageError
from voting.ledger.chain import (
    CHAINED_LATER,
    GENESIS,
    Event,
    canonical_json,
    decision_differences,
    decision_event_data,
    event_hash,
    parse_utc,
    stored_json,
    utc_text,
)
from voting.ledger.records import (
    DecisionRecord,
    DraftRecord,
    IncomingMessage,
    MailboxStatus,
    MailNote,
    OutgoingMail,
    StoredMessage,
    VoteRecord,
)
from voting.ledger.schema import INDEXES, SCHEMA, SCHEMA_VERSION, migrate

__all__ = ["CHAINED_LATER", "GENESIS", "SCHEMA", "SCHEMA_VERSION", "DecisionRecord", "DraftRecord", "Event",
           "IncomingMessage", "Ledger", "MailNote", "MailboxStatus", "OutgoingMail", "StoredMessage", "VoteRecord",
           "canonical_json", "decision_differences", "decision_event_data", "event_hash", "parse_utc", "stored_json",
           "utc_text"]

T = TypeVar("T")


class Ledger:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db = connection
        self.path = path
        self._held: dict[tuple[Any, ...], list[Any]] | None = None
        """Rows read inside a `snapshot`, which cannot change before it ends: read once however often asked."""

    @classmethod
    def open(cls, path: Path) -> Ledger:
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

    def __enter__(self) -> Ledger:
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
            events.append(Event(chain, seq, at_text, kind, data, prev_hash, digest, data_json))
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
        with _decoding(f"the chain {chain!r}"):
            return [Event(chain, seq, at, kind, stored_json(data_json), prev_hash, digest, data_json)
                    for seq, at, kind, data_json, prev_hash, digest in rows]

    def _tuples(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows as plain tuples, for the long reads a check makes: a `sqlite3.Row` read by name costs more than
        the row itself."""
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(query, params).fetchall()

    # -- raw messages ----------------------------------------------------

    def store_message(self, raw: bytes, received_at: datetime, source: str, now: datetime) -> StoredMessage:
        """Commit the exact bytes first; the same bytes delivered again are recognised, not stored twice."""
        return self.store_messages([IncomingMessage(raw, received_at, source)], now)[0]

    def store_messages(self, messages: Sequence[IncomingMessage], now: datetime) -> list[StoredMessage]:
        """Commit the exact bytes of several messages in one transaction (or in the caller's), in their order.

        Bytes already in the ledger, or twice among these, are recognised by
        their SHA-256 and kept once: the copy gets the first one's record.
        """
        stored_at = utc_text(now)
        stored, received = [], []
        with self.transaction():
            for message in messages:
                sha256 = hashlib.sha256(message.raw).hexdigest()
                received_at = utc_text(message.received_at)
                cursor = self.db.execute(
                    "INSERT INTO messages (sha256, raw, received_at, source, stored_at) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (sha256) DO NOTHING",
                    (sha256, message.raw, received_at, message.source, stored_at),
                )
                if cursor.rowcount == 1:
                    stored.append(StoredMessage(int(cursor.lastrowid or 0), sha256, message.received_at,
                                                message.source, new=True))
                    received.append({"sha256": sha256, "received_at": received_at})
                    continue
                existing = self.db.execute(
                    "SELECT id, received_at, source FROM messages WHERE sha256 = ?", (sha256,)
                ).fetchone()
                stored.append(StoredMessage(existing["id"], sha256, parse_utc(existing["received_at"]),
                                            existing["source"]))
            self.append_events("", "message-received", received, now)
        return stored

    def is_decided(self, message_id: int) -> bool:
        return self.db.execute("SELECT 1 FROM decisions WHERE message = ?", (message_id,)).fetchone() is not None

    def has_source(self, source: str) -> bool:
        return self.db.execute("SELECT 1 FROM messages WHERE source = ?", (source,)).fetchone() is not None

    def undecided_messages(self) -> list[StoredMessage]:
        rows = self.db.execute(
            "SELECT id, sha256, received_at, source FROM messages"
            " WHERE id NOT IN (SELECT message FROM decisions) ORDER BY received_at, id"
        ).fetchall()
        return [StoredMessage(r["id"], r["sha256"], parse_utc(r["received_at"]), r["source"]) for r in rows]

    def message(self, message_id: int) -> StoredMessage:
        row = self.db.execute("SELECT id, sha256, received_at, source FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no message {message_id} in the ledger")
        return StoredMessage(row["id"], row["sha256"], parse_utc(row["received_at"]), row["source"])

    def raw_messages(self) -> Iterator[tuple[str, bytes]]:
        """Every message's SHA-256 and bytes, one at a time."""
        for row in self.db.execute("SELECT sha256, raw FROM messages ORDER BY id"):
            yield row["sha256"], bytes(row["raw"])

    def raw_message(self, message_id: int) -> bytes:
        row = self.db.execute("SELECT raw FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no message {message_id} in the ledger")
        return bytes(row["raw"])

    # -- the mailbox ---------------------------------------------------------

    def checkpoint(self, folder: str, uidvalidity: int) -> int:
        """The highest UID of this folder and UIDVALIDITY whose bytes are committed (0: none yet)."""
        row = self.db.execute(
            "SELECT last_uid FROM mailbox_checkpoints WHERE folder = ? AND uidvalidity = ?", (folder, uidvalidity)
        ).fetchone()
        return int(row["last_uid"]) if row else 0

    def set_checkpoint(self, folder: str, uidvalidity: int, uid: int, now: datetime) -> int:
        """Advance the checkpoint (it never moves back) and return where it stood before.

        Call it in the transaction that stores the messages up to `uid`, so
        that the checkpoint never stands past bytes not committed. The UIDs
        between the two are this caller's to move: another process that
        fetched the same messages finds the checkpoint past them, and leaves
        their move to the one that advanced it.
        """
        with self.transaction():
            before = self.checkpoint(folder, uidvalidity)
            self.db.execute(
                "INSERT INTO mailbox_checkpoints (folder, uidvalidity, last_uid, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (folder, uidvalidity) DO UPDATE"
                " SET last_uid = max(last_uid, excluded.last_uid), updated_at = excluded.updated_at",
                (folder, uidvalidity, uid, utc_text(now)),
            )
        return before

    def note_fetch(self, mailbox: str, connection: str, new: int, now: datetime) -> None:
        """A pass read the mailbox: `connection` is "connected" (IMAP) or "local" (a Maildir)."""
        self.db.execute(
            "INSERT INTO mailbox_state (id, mailbox, connection, since, last_fetch_at, last_fetch_new)"
            " VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " since = CASE WHEN connection = excluded.connection AND mailbox = excluded.mailbox"
            " THEN since ELSE excluded.since END,"
            " mailbox = excluded.mailbox, connection = excluded.connection,"
            " last_fetch_at = excluded.last_fetch_at, last_fetch_new = excluded.last_fetch_new",
            (mailbox, connection, utc_text(now), utc_text(now), new),
        )

    def note_mailbox_error(self, mailbox: str, error: str, now: datetime) -> None:
        """The mailbox could not be read; kept until the next error, so that status shows it after recovery too."""
        self.db.execute(
            "INSERT INTO mailbox_state (id, mailbox, connection, since, last_error, last_error_at)"
            " VALUES (1, ?, 'disconnected', ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
            " since = CASE WHEN connection = 'disconnected' AND mailbox = excluded.mailbox"
            " THEN since ELSE excluded.since END,"
            " mailbox = excluded.mailbox, connection = 'disconnected',"
            " last_error = excluded.last_error, last_error_at = excluded.last_error_at",
            (mailbox, utc_text(now), error, utc_text(now)),
        )

    def mailbox_status(self) -> MailboxStatus | None:
        row = self.db.execute("SELECT * FROM mailbox_state WHERE id = 1").fetchone()
        if row is None:
            return None
        return MailboxStatus(
            mailbox=row["mailbox"],
            connection=row["connection"],
            since=parse_utc(row["since"]),
            last_fetch_at=parse_utc(row["last_fetch_at"]) if row["last_fetch_at"] else None,
            last_fetch_new=row["last_fetch_new"],
            last_error=row["last_error"],
            last_error_at=parse_utc(row["last_error_at"]) if row["last_error_at"] else None,
        )

    # -- votes -------------------------------------------------------------

    def create_vote(
        self,
        vote_id: str,
        *,
        title: str,
        rule: str,
        opened_at: datetime,
        closes_at: datetime,
        first_ballot_final: bool,
        quorum: int | None,
        statement_hours: float,
        electorate_json: str,
        drafts: Sequence[DraftRecord],
    ) -> None:
        """Insert a vote and its drafts; call inside a transaction."""
        if self.db.execute("SELECT 1 FROM votes WHERE id = ?", (vote_id,)).fetchone():
            raise UsageError(f"a vote {vote_id} already exists")
        self.db.execute(
            "INSERT INTO votes (id, title, rule, opened_at, closes_at, first_ballot_final, quorum,"
            " statement_hours, electorate_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                vote_id,
                title,
                rule,
                utc_text(opened_at),
                utc_text(closes_at),
                int(first_ballot_final),
                quorum,
                statement_hours,
                electorate_json,
            ),
        )
        for position, draft in enumerate(drafts):
            self.db.execute(
                "INSERT INTO drafts (vote_id, position, symbol, title, text, sha256, parties_json, file_name,"
                " media_type, content, sponsors_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vote_id,
                    position,
                    draft.symbol,
                    draft.title,
                    draft.text,
                    draft.sha256,
                    json.dumps(list(draft.parties_to_dispute)),
                    draft.file_name,
                    draft.media_type,
                    draft.content,
                    json.dumps(list(draft.sponsors)),
                ),
            )

    def next_vote_number(self, prefix: str) -> int:
        rows = self.db.execute("SELECT id FROM votes WHERE id LIKE ?", (prefix + "%",)).fetchall()
        numbers = [int(r["id"][len(prefix) :]) for r in rows if r["id"][len(prefix) :].isdigit()]
        return max(numbers, default=0) + 1

    def add_ballot(self, vote_id: str, code: str, token: str, message_id: str) -> None:
        self.db.execute(
            "INSERT INTO ballots (vote_id, code, token, message_id) VALUES (?, ?, ?, ?)",
            (vote_id, code, token, message_id),
        )

    def ballot_tokens(self, vote_id: str) -> dict[str, str]:
        rows = self.db.execute("SELECT code, token FROM ballots WHERE vote_id = ?", (vote_id,)).fetchall()
        return {r["code"]: r["token"] for r in rows}

    def ballot_message_id(self, vote_id: str, code: str) -> str | None:
        row = self.db.execute(
            "SELECT message_id FROM ballots WHERE vote_id = ? AND code = ?", (vote_id, code)
        ).fetchone()
        return row["message_id"] if row else None

    def requests_since(self, code: str, since: datetime) -> int:
        """How many requests for its ballot the delegation made that were decided since then."""
        row = self.db.execute(
            "SELECT count(*) FROM decisions WHERE verdict = 'request' AND code = ? AND decided_at >= ?",
            (code, utc_text(since)),
        ).fetchone()
        return int(row[0])

    def reminders_sent(self, vote_id: str, code: str, closes_at: datetime) -> set[str]:
        """The reminders of the delegation before this deadline already sent or passed over; a moved deadline
        has reminders of its own."""
        rows = self.db.execute("SELECT reminder FROM reminders WHERE vote_id = ? AND code = ? AND closes_at = ?",
                               (vote_id, code, utc_text(closes_at)))
        return {r["reminder"] for r in rows}

    def add_reminders(self, vote_id: str, code: str, closes_at: datetime, reminders: Sequence[str],
                      message_id: str | None, now: datetime) -> None:
        """Note reminders before this deadline as sent (`message_id`), or as passed over for a later one (None);
        call inside the transaction that queues the reminder, so that no restart or concurrent pass sends it twice."""
        self.db.executemany(
            "INSERT INTO reminders (vote_id, code, closes_at, reminder, message_id, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(vote_id, code, utc_text(closes_at), reminder, message_id, utc_text(now)) for reminder in reminders],
        )

    def vote(self, vote_id: str) -> VoteRecord:
        row = self.db.execute("SELECT * FROM votes WHERE id = ?", (vote_id,)).fetchone()
        if row is None:
            raise UsageError(f"no vote {vote_id!r} in {self.path}")
        return _vote_record(row)

    def votes(self) -> list[VoteRecord]:
        return [_vote_record(r) for r in self.db.execute("SELECT * FROM votes ORDER BY opened_at, id")]

    def vote_ids(self) -> list[str]:
        """The votes' ids alone: read even where a vote's other values are damaged, for `voting check`."""
        return [r["id"] for r in self.db.execute("SELECT id FROM votes ORDER BY opened_at, id")]

    def drafts(self, vote_id: str) -> list[DraftRecord]:
        rows = self.db.execute("SELECT * FROM drafts WHERE vote_id = ? ORDER BY position", (vote_id,)).fetchall()
        with _decoding(f"the drafts of vote {vote_id}"):
            return [
                DraftRecord(r["symbol"], r["title"], r["text"], r["sha256"], tuple(json.loads(r["parties_json"])),
                            r["file_name"], r["media_type"],
                            bytes(r["content"]) if r["content"] is not None else r["text"].encode("utf-8"),
                            tuple(json.loads(r["sponsors_json"])))
                for r in rows
            ]

    def set_closes_at(self, vote_id: str, closes_at: datetime) -> None:
        self.db.execute("UPDATE votes SET closes_at = ? WHERE id = ?", (utc_text(closes_at), vote_id))

    def mark_closed(self, vote_id: str, closed_at: datetime, outcome: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE votes SET closed_at = ?, outcome_json = ? WHERE id = ? AND closed_at IS NULL",
            (utc_text(closed_at), canonical_json(outcome), vote_id),
        )

    # -- decisions -----------------------------------------------------------

    def record_decision(
        self,
        message: StoredMessage,
        *,
        vote_id: str | None,
        code: str | None,
        verdict: str,
        reason: str | None,
        detail: str,
        choices: dict[str, str],
        explanation: str,
        supersedes: int | None,
        signed_sha256: str | None,
        also_in: Sequence[str] = (),
        now: datetime,
    ) -> None:
        """Record what was decided about one message, and chain it; call inside a transaction.

        The decision event goes into the vote's chain, or for a message bound
        to no vote into the ledger's own chain and into `also_in`: the chains
        of the votes it may have been meant for, so that their audit bundles
        cannot leave it out unnoticed.
        """
        self.db.execute(
            "INSERT INTO decisions (message, vote_id, code, verdict, reason, detail, choices_json, explanation,"
            " supersedes, signed_sha256, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message.id,
                vote_id,
                code,
                verdict,
                reason,
                detail,
                canonical_json(choices),
                explanation,
                supersedes,
                signed_sha256,
                utc_text(now),
            ),
        )
        superseded_sha = (
            self.db.execute("SELECT sha256 FROM messages WHERE id = ?", (supersedes,)).fetchone()["sha256"]
            if supersedes
            else None
        )
        data = decision_event_data(message.sha256, message.received_at, code, verdict, reason, choices, superseded_sha,
                                   explanation, signed_sha256)
        for chain in [vote_id] if vote_id else ["", *also_in]:
            self.append_event(chain, "decision", data, now)

    def decisions(self, vote_id: str | None, code: str | None = None, among: Collection[str] | None = None,
                  received: tuple[datetime, datetime] | None = None) -> list[DecisionRecord]:
        """The decisions bound to the vote (or to none), in order of receipt; only the delegation's if `code`,
        only those on the messages of these SHA-256 if `among`, only those received from the first instant of
        `received` until before its second (read by the index of receipt times, however long the ledger)."""
        clause = "d.vote_id = ?" if vote_id is not None else "d.vote_id IS NULL"
        params: tuple[Any, ...] = (vote_id,) if vote_id is not None else ()
        if code is not None:
            clause += " AND d.code = ?"
            params += (code,)
        if among is not None:
            clause += " AND m.sha256 IN (SELECT value FROM json_each(?))"
            params += (json.dumps(sorted(among, key=str)),)
        if received is not None:
            clause += " AND m.received_at >= ? AND m.received_at < ?"
            params += (utc_text(received[0]), utc_text(received[1]))
        return self._held_or_read(("decisions", clause, params), lambda: self._decisions(clause, params, vote_id))

    def _decisions(self, clause: str, params: tuple[Any, ...], vote_id: str | None) -> list[DecisionRecord]:
        rows = self._tuples(
            "SELECT d.message, m.sha256, m.received_at, d.vote_id, d.code, d.verdict, d.reason, d.detail,"
            " d.choices_json, d.explanation, d.supersedes, d.signed_sha256"
            " FROM decisions d JOIN messages m INDEXED BY messages_by_id ON m.id = d.message"
            f" WHERE {clause} ORDER BY m.received_at, m.id",
            params,
        )
        with _decoding(f"the decisions of vote {vote_id}" if vote_id else "the decisions bound to no vote"):
            return [
                DecisionRecord(message, sha256, parse_utc(received_at), vote, code, verdict, reason, detail,
                               stored_json(choices_json), explanation, supersedes, signed_sha256)
                for message, sha256, received_at, vote, code, verdict, reason, detail, choices_json, explanation,
                supersedes, signed_sha256 in rows
            ]

    # -- the outbox ----------------------------------------------------------

    def queue_mail(
        self,
        *,
        message_id: str,
        kind: str,
        vote_id: str | None,
        envelope_from: str,
        recipients: Sequence[str],
        raw: bytes,
        now: datetime,
    ) -> None:
        """Queue an outgoing message; call in the transaction of the decision it announces."""
        self.db.execute(
            "INSERT INTO outbox (message_id, kind, vote_id, envelope_from, recipients_json, raw, next_attempt_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (message_id, kind, vote_id, envelope_from, json.dumps(list(recipients)), raw, utc_text(now), utc_text(now)),
        )

    def due_mail(self, now: datetime) -> list[OutgoingMail]:
        rows = self.db.execute(
            "SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at <= ? ORDER BY id", (utc_text(now),)
        ).fetchall()
        return [_outgoing(r) for r in rows]

    def outbox(self, status: str | None = None, *, attempted: bool = False) -> list[OutgoingMail]:
        """The outgoing mail, or only that of `status`; with `attempted`, only what was tried at least once."""
        return [_outgoing(r) for r in self._outbox_rows("*", status, attempted)]

    def outbox_notes(self, status: str, *, attempted: bool = False) -> list[MailNote]:
        """What `outbox` gives, without the bytes: what status shows of each message."""
        rows = self._outbox_rows("message_id, recipients_json, attempts, last_error", status, attempted)
        return [MailNote(r["message_id"], tuple(json.loads(r["recipients_json"])), r["attempts"], r["last_error"])
                for r in rows]

    def _outbox_rows(self, columns: str, status: str | None, attempted: bool) -> list[sqlite3.Row]:
        clause = (" AND status = ?" if status is not None else "") + (" AND attempts > 0" if attempted else "")
        params = (status,) if status is not None else ()
        return self.db.execute(f"SELECT {columns} FROM outbox WHERE 1{clause} ORDER BY id", params).fetchall()

    def outbox_counts(self) -> dict[str, int]:
        """How many messages are queued, sent and failed, counted without reading them."""
        counts = dict(self.db.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall())
        return {status: int(counts.get(status, 0)) for status in ("queued", "sent", "failed")}

    def claim_mail(self, mail_id: int, now: datetime, until: datetime) -> bool:
        """Take a due message for sending until `until`; False when another process took it or sent it first.

        Only the process that claimed a message sends it, so that two passes
        at once (a `serve` and an operator's `poll --once`) never send it twice.
        """
        with self.transaction():
            cursor = self.db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND status = 'queued' AND next_attempt_at <= ?",
                (utc_text(until), mail_id, utc_text(now)),
            )
        return cursor.rowcount == 1

    def mark_sent(self, mail_id: int, now: datetime) -> None:
        self.db.execute(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?, last_error = '' WHERE id = ?",
            (utc_text(now), mail_id),
        )

    def mark_attempt_failed(self, mail_id: int, error: str, *, permanent: bool, retry_at: datetime) -> None:
        self.db.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
            ("failed" if permanent else "queued", error, utc_text(retry_at), mail_id),
        )


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    """A stored value that no longer decodes (JSON, a time) is a damaged row: named in one line, not a traceback."""
    try:
        yield
    except ValueError as error:
        raise LedgerError(f"{what}: a value stored in the ledger no longer reads, damaged ({error})") from None


def _vote_record(row: sqlite3.Row) -> VoteRecord:
    with _decoding(f"the row of vote {row['id']}"):
        return VoteRecord(
            id=row["id"],
            title=row["title"],
            rule=row["rule"],
            opened_at=parse_utc(row["opened_at"]),
            closes_at=parse_utc(row["closes_at"]),
            closed_at=parse_utc(row["closed_at"]) if row["closed_at"] else None,
            first_ballot_final=bool(row["first_ballot_final"]),
            quorum=row["quorum"],
            statement_hours=row["statement_hours"],
            electorate_json=row["electorate_json"],
            outcome=json.loads(row["outcome_json"]) if row["outcome_json"] else None,
        )


def _outgoing(row: sqlite3.Row) -> OutgoingMail:
    return OutgoingMail(
        id=row["id"],
        message_id=row["message_id"],
        kind=row["kind"],
        vote_id=row["vote_id"],
        envelope_from=row["envelope_from"],
        recipients=tuple(json.loads(row["recipients_json"])),
        raw=bytes(row["raw"]),
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )
