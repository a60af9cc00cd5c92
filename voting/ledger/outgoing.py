"""The outbox: mail the service has to send, kept until it is sent, and each process's claim on a message it is
sending."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from voting.ledger.chain import utc_text
from voting.ledger.decisions import Decisions
from voting.ledger.records import MailNote, OutgoingMail


class Outgoing(Decisions):
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
