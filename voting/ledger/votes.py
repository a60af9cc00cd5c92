"""Votes as they were opened (their drafts, electorate and deadline), the ballot tokens sent for them, the
reminders sent, and their results."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from voting.errors import UsageError
from voting.ledger.chain import canonical_json, decoding, parse_utc, stored_text, utc_text
from voting.ledger.messages import Messages
from voting.ledger.records import DraftRecord, VoteRecord


class Votes(Messages):
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
        with decoding(f"the ballot tokens of vote {vote_id}"):
            return {stored_text(r["code"]): stored_text(r["token"]) for r in rows}

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
        with decoding(f"the drafts of vote {vote_id}"):
            return [
                DraftRecord(r["symbol"], r["title"], stored_text(r["text"]), r["sha256"],
                            tuple(json.loads(r["parties_json"])), r["file_name"], r["media_type"],
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


def _vote_record(row: sqlite3.Row) -> VoteRecord:
    with decoding(f"the row of vote {row['id']}"):
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
            electorate_json=stored_text(row["electorate_json"]),
            outcome=json.loads(row["outcome_json"]) if row["outcome_json"] else None,
        )
