"""What was decided about each message, recorded with the chain event that records it."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from voting.ledger.chain import canonical_json, decision_event_data, decoding, parse_utc, stored_json, utc_text
from voting.ledger.records import DecisionRecord, StoredMessage
from voting.ledger.votes import Votes


class Decisions(Votes):
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
        with decoding(f"the decisions of vote {vote_id}" if vote_id else "the decisions bound to no vote"):
            return [
                DecisionRecord(message, sha256, parse_utc(received_at), vote, code, verdict, reason, detail,
                               stored_json(choices_json), explanation, supersedes, signed_sha256, received_at,
                               choices_json)
                for message, sha256, received_at, vote, code, verdict, reason, detail, choices_json, explanation,
                supersedes, signed_sha256 in rows
            ]
