"""Closing: a vote is counted once everything received before its deadline is decided, and the results sent."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from voting import letters, rules
from voting.errors import LedgerError, MailError, UsageError
from voting.integrity import damage_text, publication_damage
from voting.ledger import DecisionRecord, VoteRecord, utc_text
from voting.mail.compose import text_as_html
from voting.model import Choice, Delegation, Outcome
from voting.record import RejectedMessage, VoteBoard, build_board, record_body, record_text
from voting.service.base import vote_electorate
from voting.service.judging import Judging
from voting.verdict import BALLOT, REJECTED, STATEMENT, counted_ballots, counted_choices, received_times
from voting.wording import Wording

MAILBOX_SETTLING = timedelta(seconds=2)
"""A mail server dates a message a moment before it shows it (a Maildir delivery sets the time, then moves
the file into new/; an IMAP server sets INTERNALDATE, then completes the APPEND): a vote closes only after a
fetch that began this long after its deadline."""


def _rejected(decision: DecisionRecord) -> RejectedMessage:
    return RejectedMessage(decision.sha256, decision.received_at, decision.code, decision.reason or "")


class Closing(Judging):
    def close_due(self) -> list[str]:
        """Close the votes whose deadline had passed, by a settling moment, when the latest complete fetch began.

        Everything the mailbox received before the deadline was then in it,
        and is in the ledger; a vote with a message received before its
        deadline still undecided (one that failed this pass) waits for it. No
        ballot on time is left out of the count. While the mailbox cannot be
        read, nothing closes; nor does a vote whose ledger rows are damaged
        (`integrity`), which is logged. A bundle that a process closing a vote left
        aside when it died is published or removed first (`settle_bundles`).
        """
        from voting.bundle import settle_bundles  # with the audit it builds on: not for commands that only read

        settle_bundles(self)
        through = self.fetched_through
        if through is None:
            return []
        due = [v.id for v in self.ledger.votes() if v.is_open and v.closes_at <= through - MAILBOX_SETTLING]
        closed = []
        for vote_id in due:
            try:
                if self.close(vote_id) is not None:
                    closed.append(vote_id)
            except LedgerError as error:  # damaged: it stays open, and status and check say why
                self.log(str(error))
        return closed

    def close_now(self, vote_id: str) -> None:
        """Close early: the deadline becomes now, then one pass takes in what was delivered before it and counts.

        Moving the deadline first means a message that arrives while the pass
        runs is late by the same rule in the service and in the audit.
        """
        vote = self.ledger.vote(vote_id)
        if not vote.is_open:
            raise UsageError(f"vote {vote_id} is already closed")
        self.refuse_if_damaged(vote_id)  # before the deadline moves: a move would overwrite a damaged deadline
        now = self.clock()
        unbroken = [symbol for symbol, choices in self.counted(vote, now).items() if Choice.NO not in choices.values()]
        if now < vote.closes_at and rules.resolve(vote.rule, vote_electorate(vote)).silence and unbroken:
            raise UsageError(f"vote {vote_id} is under the silence procedure and no member has broken silence on"
                             f" {', '.join(unbroken)}: it cannot be closed before its deadline,"
                             f" {utc_text(vote.closes_at)}, when a draft no member objected to is adopted")
        if now < vote.closes_at:
            with self.ledger.transaction():
                self.ledger.set_closes_at(vote_id, now)
                self.ledger.append_event(
                    vote_id, "deadline-moved", {"from": utc_text(vote.closes_at), "to": utc_text(now)}, now
                )
        time.sleep(max(0.0, (min(now, vote.closes_at) + MAILBOX_SETTLING - self.clock()).total_seconds()))
        self.fetch()
        self.decide_pending()
        self.close_due()
        if self.ledger.vote(vote_id).is_open:
            self.refuse_if_damaged(vote_id)
            raise MailError(f"vote {vote_id} closes at {utc_text(min(now, vote.closes_at))} but is not counted yet:"
                            " the mailbox could not be read, or a message on time is still undecided (see voting"
                            " status); the service counts it at its next pass")

    def refuse_if_damaged(self, vote_id: str) -> None:
        """Raise `LedgerError`, naming what is damaged, when anything the vote's count rests on is, or a page of the
        database (`integrity`)."""
        damage = publication_damage(self.ledger, vote_id, self.keys.signer)
        if damage:
            raise LedgerError(f"vote {vote_id} is not closed: {damage_text(damage)}")

    def extend(self, vote_id: str, closes_at: datetime) -> None:
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        if not vote.is_open:
            raise UsageError(f"vote {vote_id} is closed; a closed vote cannot be extended")
        if not rules.resolve(vote.rule, vote_electorate(vote)).extendable:
            raise UsageError(f"the rule {vote.rule} does not allow the deadline to be moved")
        if vote.closes_at <= now:
            raise UsageError(f"the deadline of vote {vote_id} has passed ({utc_text(vote.closes_at)}); it is being"
                             " counted and cannot be extended")
        if closes_at <= now:
            raise UsageError(f"--closes {utc_text(closes_at)} is not in the future")
        with self.ledger.transaction():
            self.ledger.set_closes_at(vote_id, closes_at)
            self.ledger.append_event(
                vote_id, "deadline-moved", {"from": utc_text(vote.closes_at), "to": utc_text(closes_at)}, now
            )
            for delegation in vote_electorate(vote).delegation:
                letter = letters.deadline_moved(vote_id, vote.title, vote.closes_at, closes_at, self._zones(delegation),
                                                self._words(delegation))
                self._write(delegation, letter.subject, letter.text, text_as_html(letter.text), "notice", vote_id, now,
                            in_reply_to=self.ledger.ballot_message_id(vote_id, delegation.code))

    def close(self, vote_id: str) -> dict[str, Outcome] | None:
        """Tally under the vote's rule and queue the signed results, in one transaction; None if it cannot close.

        The vote and the messages it waits for are read again under the write
        lock, so that whatever runs at once (`voting serve`, `voting close`,
        another pass) the vote closes once, with one result and one bundle:
        not when another process closed it first, nor while a message
        received before its deadline is still undecided. The bundle is
        published only once the close is committed.
        """
        from voting.bundle import bundles_on_commit

        with bundles_on_commit(self) as bundle_of, self.ledger.transaction():
            vote = self.ledger.vote(vote_id)
            at = vote.closes_at
            if not vote.is_open or any(m.received_at < at for m in self.ledger.undecided_messages()):
                return None
            self.refuse_if_damaged(vote_id)
            now = self.clock()
            electorate = vote_electorate(vote)
            outcomes = self.outcomes(vote, at)
            self.ledger.mark_closed(vote_id, at, {s: o.as_dict() for s, o in outcomes.items()})
            self.ledger.append_event(
                vote_id,
                "vote-closed",
                {
                    "closed_at": utc_text(at),
                    "outcomes": {s: o.as_dict() for s, o in outcomes.items()},
                    "counted": self._counted_messages(vote_id, at),
                },
                now,
            )
            publication = bundle_of(vote_id)
            board = self.board(vote_id)

            def results(to: Delegation | list[str], words: Wording, in_reply_to: str | None = None) -> None:
                self._write(to, words("record.subject", title=vote.title, vote_id=vote_id),
                            record_text(board, publication, words), record_body(board, publication, words),
                            "results", vote_id, now, in_reply_to=in_reply_to)

            for delegation in electorate.delegation:
                results(delegation, self._words(delegation), self.ledger.ballot_message_id(vote_id, delegation.code))
            for observer in electorate.observers:
                results([observer], self.secretariat_words())
        return outcomes

    def counted(self, vote: VoteRecord, deadline: datetime) -> dict[str, dict[str, Choice]]:
        symbols = [d.symbol for d in self.ledger.drafts(vote.id)]
        return counted_choices(self._ballots(vote.id, deadline), symbols)

    def _counted_messages(self, vote_id: str, deadline: datetime) -> dict[str, dict[str, str]]:
        """Per draft and delegation, the SHA-256 of the ballot whose choice counts."""
        symbols = [d.symbol for d in self.ledger.drafts(vote_id)]
        counted = counted_ballots(self._ballots(vote_id, deadline), symbols)
        return {symbol: {code: b.message for code, b in per.items()} for symbol, per in counted.items() if per}

    def outcomes(self, vote: VoteRecord, deadline: datetime) -> dict[str, Outcome]:
        parties = {draft.symbol: draft.parties_to_dispute for draft in self.ledger.drafts(vote.id)}
        counted = counted_ballots(self._ballots(vote.id, deadline), parties)
        return rules.decide_all(vote.rule, vote_electorate(vote), self.counted(vote, deadline), quorum=vote.quorum,
                                parties_to_dispute=parties, cast_at=received_times(counted))

    def rejections(self, vote: VoteRecord) -> list[DecisionRecord]:
        """Rejected messages of this vote, and those bound to no vote that arrived while it was open."""
        deadline = vote.closed_at or vote.closes_at
        window_end = deadline + timedelta(hours=vote.statement_hours)
        unbound = [d for d in self.ledger.decisions(None, received=(vote.opened_at, window_end))
                   if d.verdict == REJECTED]
        bound = [d for d in self.ledger.decisions(vote.id) if d.verdict == REJECTED]
        return sorted(bound + unbound, key=lambda d: (d.received_at, d.sha256))

    def board(self, vote_id: str) -> VoteBoard:
        vote = self.ledger.vote(vote_id)
        deadline = vote.closed_at or vote.closes_at
        decisions = self.ledger.decisions(vote_id)
        statements_until = deadline + timedelta(hours=vote.statement_hours)
        last_ballot_at: dict[str, datetime] = {}
        explanations: dict[str, str] = {}
        for d in decisions:
            if d.code and d.verdict in (BALLOT, STATEMENT) and d.received_at < statements_until:
                if d.verdict == BALLOT and d.received_at < deadline:
                    last_ballot_at[d.code] = d.received_at
                if d.explanation:
                    explanations[d.code] = d.explanation
        rejected = [_rejected(d) for d in self.rejections(vote)]
        outcomes = {s: Outcome.from_dict(o) for s, o in vote.outcome.items()} if vote.outcome else None
        electorate = vote_electorate(vote)
        drafts = self.ledger.drafts(vote_id)
        return build_board(
            vote_id=vote.id,
            title=vote.title,
            rule=vote.rule,
            closes_at=vote.closes_at,
            drafts=[d.symbol for d in drafts],
            electorate=electorate,
            counted=self.counted(vote, deadline),
            last_ballot_at=last_ballot_at,
            explanations=explanations,
            outcomes=outcomes,
            rejected=rejected,
            timezone=self.config.settings.secretariat.timezone,
            documents=[(d.symbol, d.title, d.sha256, d.sponsors) for d in drafts],
            closed=not vote.is_open,
        )
