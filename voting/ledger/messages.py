"""Raw messages, kept exactly as they arrived before anything else happens to them, and what the service last
knew of the mailbox they came from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime

from voting.errors import LedgerError
from voting.ledger.chain import parse_utc, utc_text
from voting.ledger.records import IncomingMessage, MailboxStatus, StoredMessage
from voting.ledger.store import Store


class Messages(Store):
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
