"""Opening a vote: the drafts recorded, and one signed ballot per delegation queued, in one transaction."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from voting import ballot, rules
from voting.errors import UsageError
from voting.drafts import MAX_DRAFT_BYTES, draft_lines, read_draft
from voting.ledger import DraftRecord, utc_text
from voting.mail.compose import Attachment
from voting.service.base import ServiceBase


@dataclass(frozen=True)
class DraftFile:
    symbol: str
    path: Path
    title: str | None = None
    """The draft's title; by default the first line of a text file (a PDF or a Word document needs one)."""


class Opening(ServiceBase):
    def open_vote(
        self,
        drafts: Sequence[DraftFile],
        *,
        rule: str,
        closes_at: datetime,
        title: str,
        first_ballot_final: bool = False,
        quorum: int | None = None,
        parties_to_dispute: Mapping[str, Sequence[str]] | None = None,
        vote_id: str | None = None,
    ) -> str:
        """Record the vote and queue one signed ballot per delegation, in one transaction."""
        now = self.clock()
        if closes_at <= now:
            raise UsageError(f"--closes {utc_text(closes_at)} is not in the future")
        if not drafts:
            raise UsageError("a vote needs at least one --draft SYMBOL=FILE")
        symbols = [d.symbol for d in drafts]
        if len(set(symbols)) != len(symbols):
            raise UsageError("the same draft symbol is given twice")
        electorate = self.electorate()
        parties = {symbol: tuple(codes) for symbol, codes in (parties_to_dispute or {}).items()}
        for symbol, codes in parties.items():
            if symbol not in symbols:
                raise UsageError(f"parties to dispute given for {symbol}, which is not a draft of this vote")
            unknown = [c for c in codes if electorate.get(c) is None]
            if unknown:
                raise UsageError(f"parties to dispute {', '.join(unknown)} are not in the electorate")
        for symbol in symbols:
            rules.check(rule, electorate, quorum=quorum, parties_to_dispute=parties.get(symbol, ()))
        silence = rules.resolve(rule, electorate).silence
        silent = [d.code for d in electorate.delegation if not d.addresses]
        if silent:
            raise UsageError(f"delegations without an address cannot receive a ballot: {', '.join(silent)}")
        records = [self._draft_record(d, parties.get(d.symbol, ())) for d in drafts]
        with self.ledger.transaction():
            if vote_id is None:
                prefix = f"{self.config.settings.secretariat.vote_prefix}-{closes_at.year}-"
                vote_id = f"{prefix}{self.ledger.next_vote_number(prefix):04d}"
            elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", vote_id):
                raise UsageError(f"vote id {vote_id!r}: use letters, digits, '.', '_' and '-'")
            self.ledger.create_vote(
                vote_id,
                title=title,
                rule=rule,
                opened_at=now,
                closes_at=closes_at,
                first_ballot_final=first_ballot_final,
                quorum=quorum,
                statement_hours=self.config.settings.service.statement_hours,
                electorate_json=electorate.model_dump_json(),
                drafts=records,
            )
            tokens: dict[str, str] = {}
            appendix = tuple(line for record in records for line in ["", *draft_lines(record)])
            files = [Attachment(r.file_name, r.media_type, r.content) for r in records]
            for delegation in electorate.delegation:
                token = ballot.new_ballot_token()
                tokens[delegation.code] = hashlib.sha256(token.encode()).hexdigest()
                content = ballot.Ballot(
                    vote_id=vote_id,
                    token=token,
                    delegation_code=delegation.code,
                    delegation_name=delegation.name,
                    closes=closes_at,
                    drafts=tuple((r.symbol, r.title) for r in records),
                    title=title,
                    first_ballot_final=first_ballot_final,
                    zones=self._zones(delegation),
                    appendix=appendix,
                    silence=silence,
                )
                mail = self._write(delegation, f"Ballot: {title} [{vote_id}]", ballot.render_ballot_text(content),
                                   ballot.render_ballot_html(content), "ballot", vote_id, now, attachments=files)
                self.ledger.add_ballot(vote_id, delegation.code, token, mail.message_id)
            self.ledger.append_event(
                vote_id,
                "vote-opened",
                {
                    "title": title,
                    "rule": rule,
                    "closes_at": utc_text(closes_at),
                    "first_ballot_final": first_ballot_final,
                    "quorum": quorum,
                    "drafts": [{"symbol": r.symbol, "sha256": r.sha256, "parties": list(r.parties_to_dispute)}
                               for r in records],
                    "electorate_sha256": hashlib.sha256(electorate.model_dump_json().encode()).hexdigest(),
                    "ballot_tokens_sha256": tokens,
                },
                now,
            )
        return vote_id

    def _draft_record(self, draft: DraftFile, parties: tuple[str, ...]) -> DraftRecord:
        try:
            with draft.path.open("rb") as file:
                data = file.read(MAX_DRAFT_BYTES + 1)
        except OSError as error:
            raise UsageError(f"--draft {draft.symbol}={draft.path}: {error.strerror}") from None
        return read_draft(draft.symbol, draft.path.name, data, title=draft.title, parties=parties)
