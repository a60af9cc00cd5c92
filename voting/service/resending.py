"""Sending a ballot again, with its same token: on a delegation's signed BALLOT request, or by `voting resend`."""

from __future__ import annotations

from datetime import datetime, timedelta

from voting import letters, rules
from voting.errors import UsageError
from voting.ledger import VoteRecord
from voting.mail.compose import OutgoingMessage, text_as_html
from voting.model import Delegation
from voting.service.base import vote_electorate
from voting.service.intake import Intake
from voting.verdict import Judgement

REQUESTS_PER_HOUR = 3
"""Requests of one delegation answered in any hour: a request repeated or replayed by whoever holds a copy
cannot make the service flood the delegation's mailboxes. Every request is recorded all the same."""


class Resending(Intake):
    def resend(self, vote_id: str, code: str) -> str:
        """Queue the delegation's ballot again, with its same token; returns the new message's Message-ID."""
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        if not vote.is_open or now >= vote.closes_at:
            raise UsageError(f"vote {vote_id} is closed or past its deadline; its ballots can no longer be sent")
        if code not in self.ledger.ballot_tokens(vote_id):
            raise UsageError(f"{code} has no ballot in vote {vote_id}")
        delegation = self.electorate().get(code) or vote_electorate(vote).get(code)
        assert delegation is not None, "a delegation with a ballot is in the vote's snapshot"
        with self.ledger.transaction():
            return self._resend(vote, delegation, now).message_id

    def _resend(self, vote: VoteRecord, delegation: Delegation, now: datetime,
                request_id: str | None = None) -> OutgoingMessage:
        """The same ballot, to the delegation's addresses as registered now, threaded under the first one."""
        first = self.ledger.ballot_message_id(vote.id, delegation.code)
        electorate = vote_electorate(vote)
        return self._queue_ballot(vote.id, vote.title, vote.closes_at, self.ledger.drafts(vote.id),
                                  vote.first_ballot_final, rules.resolve(vote.rule, electorate).silence, electorate,
                                  delegation, self.ledger.ballot_tokens(vote.id)[delegation.code],
                                  now, in_reply_to=request_id or first,
                                  references=[ref for ref in (first, request_id) if ref])

    def _answer_request(self, judgement: Judgement, delegation: Delegation, request_id: str | None,
                        now: datetime) -> None:
        """Answer a BALLOT request, just recorded, with the ballots it asks for (each open one when it names no
        vote), unless the delegation asked more than REQUESTS_PER_HOUR times in the last hour."""
        if self.ledger.requests_since(delegation.code, now - timedelta(hours=1)) > REQUESTS_PER_HOUR:
            self.log(f"{delegation.code}: ballot request not answered: more than {REQUESTS_PER_HOUR} in an hour")
            return
        asked = [self.ledger.vote(judgement.vote_id)] if judgement.vote_id else self.ledger.votes()
        votes = [vote for vote in asked
                 if vote.is_open and now < vote.closes_at and delegation.code in self.ledger.ballot_tokens(vote.id)]
        for vote in votes:
            self._resend(vote, delegation, now, request_id)
        if not votes:
            letter = letters.no_open_ballot(delegation, self._words(delegation))
            self._write(delegation, letter.subject, letter.text, text_as_html(letter.text), "receipt", None, now,
                        in_reply_to=request_id, references=[request_id] if request_id else (),
                        auto_submitted="auto-replied")
