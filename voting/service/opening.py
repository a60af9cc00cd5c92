"""Opening a vote: the drafts recorded, and one signed ballot per delegation queued, in one transaction."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from typing import NamedTuple

from voting import letters, rules
from voting.errors import UsageError
from voting.drafts import MAX_DRAFT_BYTES, checked_sponsors, draft_lines, opened_entry, read_draft, sponsors_shown
from voting.ledger import DraftRecord, utc_text
from voting.mail.compose import Attachment, OutgoingMessage, text_as_html
from voting.model import Delegation, Electorate
from voting.service.base import ServiceBase


class DraftFile(NamedTuple):
    symbol: str
    path: Path
    title: str | None = None
    """The draft's title; by default the first line of a text file (a PDF or a Word document needs one)."""


def _shown(drafts: Sequence[DraftRecord]) -> tuple[str, ...]:
    """The drafts in full, as every ballot and observer notice shows them."""
    return tuple(line for draft in drafts for line in ["", *draft_lines(draft)])


def _attached(drafts: Sequence[DraftRecord]) -> list[Attachment]:
    """The drafts' files, attached as circulated to every ballot and observer notice."""
    return [Attachment(d.file_name, d.media_type, d.content) for d in drafts]


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
        sponsors: Mapping[str, Sequence[str]] | None = None,
        vote_id: str | None = None,
        observers: Sequence[str] = (),
        allow_missing: bool = False,
    ) -> str:
        """Record the vote and queue one signed ballot per delegation, and the observers' notice, in one transaction.

        The vote's `observers` join the electorate file's in the vote's snapshot;
        each draft's `sponsors` are delegation codes, or sponsors from outside
        the electorate named in words (`drafts.checked_sponsors`).

        A delegation that cannot vote now (`electorate.why_cannot_vote`) is
        named and the vote refused, unless `allow_missing`: then it is sent its
        ballot all the same, and can vote once a certificate is registered.
        One without an address is refused even so: no ballot could reach it.
        """
        from voting import ballot

        now = self.clock()
        if closes_at <= now:
            raise UsageError(f"--closes {utc_text(closes_at)} is not in the future")
        if not drafts:
            raise UsageError("a vote needs at least one --draft SYMBOL=FILE")
        symbols = [d.symbol for d in drafts]
        if len(set(symbols)) != len(symbols):
            raise UsageError("the same draft symbol is given twice")
        electorate = self._with_observers(self.electorate(), observers)
        parties = {symbol: tuple(codes) for symbol, codes in (parties_to_dispute or {}).items()}
        for symbol, codes in parties.items():
            if symbol not in symbols:
                raise UsageError(f"parties to dispute given for {symbol}, which is not a draft of this vote")
            unknown = [c for c in codes if electorate.get(c) is None]
            if unknown:
                raise UsageError(f"parties to dispute {', '.join(unknown)} are not in the electorate")
        sponsored = {symbol: checked_sponsors(symbol, who, electorate) for symbol, who in (sponsors or {}).items()}
        for symbol in sponsored:
            if symbol not in symbols:
                raise UsageError(f"--sponsor {symbol}: {symbol} is not a draft of this vote"
                                 f" (its drafts: {', '.join(symbols)})")
        for symbol in symbols:
            rules.check(rule, electorate, quorum=quorum, parties_to_dispute=parties.get(symbol, ()))
        silence = rules.resolve(rule, electorate).silence
        from voting.electorate import NO_ADDRESS, unable_to_vote

        missing = unable_to_vote(electorate, now)
        silent = [code for code, why in missing.items() if why == NO_ADDRESS]
        if silent:
            raise UsageError(f"delegations without an address cannot receive a ballot: {', '.join(silent)}")
        if missing and not allow_missing:
            by_reason: dict[str, list[str]] = {}
            for code, why in missing.items():
                by_reason.setdefault(why, []).append(code)
            raise UsageError(
                "these delegations cannot vote: " + "; ".join(f"{', '.join(c)} ({why})" for why, c in by_reason.items())
                + ". Register a certificate for each (voting keys sign, issue or import), or open with --allow-missing"
            )
        records = [self._draft_record(d, parties.get(d.symbol, ()), sponsored.get(d.symbol, ())) for d in drafts]
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
            for delegation in electorate.delegation:
                token = ballot.new_ballot_token()
                tokens[delegation.code] = hashlib.sha256(token.encode()).hexdigest()
                mail = self._queue_ballot(vote_id, title, closes_at, records, first_ballot_final, silence, electorate,
                                          delegation, token, now)
                self.ledger.add_ballot(vote_id, delegation.code, token, mail.message_id)
            notice = letters.observer_notice(vote_id, title, rule, closes_at, _shown(records),
                                             (self.config.settings.secretariat.timezone,), self.secretariat_words())
            for observer in electorate.observers:
                self._write([observer], notice.subject, notice.text, text_as_html(notice.text), "notice", vote_id, now,
                            attachments=_attached(records))
            self.ledger.append_event(
                vote_id,
                "vote-opened",
                {
                    "title": title,
                    "rule": rule,
                    "closes_at": utc_text(closes_at),
                    "first_ballot_final": first_ballot_final,
                    "quorum": quorum,
                    "statement_hours": self.config.settings.service.statement_hours,
                    "drafts": [opened_entry(r.symbol, r.sha256, r.parties_to_dispute, r.sponsors,
                                            (r.title, r.file_name, r.media_type)) for r in records],
                    "electorate_sha256": hashlib.sha256(electorate.model_dump_json().encode()).hexdigest(),
                    "ballot_tokens_sha256": tokens,
                },
                now,
            )
        return vote_id

    def _with_observers(self, electorate: Electorate, observers: Sequence[str]) -> Electorate:
        """The electorate with the vote's own observers beside the file's: who takes part in this vote."""
        merged = list(dict.fromkeys([*electorate.observers, *(address.strip().lower() for address in observers)]))
        own = self.config.settings.secretariat.address.lower()
        if own in merged:
            raise UsageError(f"{own} is the secretariat's own address; it cannot be an observer")
        if merged == electorate.observers:
            return electorate
        try:
            return Electorate.model_validate({**electorate.model_dump(), "observers": merged})
        except ValidationError as error:
            raise UsageError(f"--observer: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None

    def _queue_ballot(self, vote_id: str, title: str, closes_at: datetime, drafts: Sequence[DraftRecord],
                      first_ballot_final: bool, silence: bool, electorate: Electorate, delegation: Delegation,
                      token: str, now: datetime, *,
                      in_reply_to: str | None = None, references: Sequence[str] = ()) -> OutgoingMessage:
        """Sign and queue the delegation's ballot with its token; call inside the transaction that records it."""
        from voting import ballot

        content = ballot.Ballot(
            vote_id=vote_id,
            token=token,
            delegation_code=delegation.code,
            delegation_name=delegation.name_in(delegation.language),
            closes=closes_at,
            drafts=tuple((d.symbol, d.title) for d in drafts),
            sponsors={d.symbol: sponsors_shown(d.sponsors, electorate, delegation.language)
                      for d in drafts if d.sponsors},
            title=title,
            first_ballot_final=first_ballot_final,
            zones=self._zones(delegation),
            words=self._words(delegation),
            appendix=_shown(drafts),
            silence=silence,
        )
        return self._write(delegation, f"Ballot: {title} [{vote_id}]", ballot.render_ballot_text(content),
                           ballot.render_ballot_html(content), "ballot", vote_id, now, in_reply_to=in_reply_to,
                           references=references, attachments=_attached(drafts))

    def _draft_record(self, draft: DraftFile, parties: tuple[str, ...], sponsors: tuple[str, ...]) -> DraftRecord:
        try:
            with draft.path.open("rb") as file:
                data = file.read(MAX_DRAFT_BYTES + 1)
        except OSError as error:
            raise UsageError(f"--draft {draft.symbol}={draft.path}: {error.strerror}") from None
        return read_draft(draft.symbol, draft.path.name, data, title=draft.title, parties=parties, sponsors=sponsors)
