"""Reminding: before the deadline, delegations that have not voted are reminded, each reminder once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from voting import letters
from voting.mail.compose import text_as_html
from voting.model import Delegation
from voting.service.base import vote_electorate
from voting.service.closing import Closing
from voting.verdict import counted_ballots


class Reminding(Closing):
    def remind_due(self) -> int:
        """Queue the reminders due by now, `service.reminders` before each open vote's deadline; how many went.

        A delegation is reminded while some draft has no counted choice of its
        own, never once it has voted on every draft, never at or after the
        deadline, and never for a moment that came before the vote opened.
        """
        offsets = self.config.settings.service.reminder_offsets()
        now = self.clock()
        reminded = 0
        for vote in self.ledger.votes():
            if offsets and vote.is_open and any(vote.opened_at < vote.closes_at - before <= now
                                                for before in offsets.values()):
                reminded += sum(self._remind(vote.id, delegation, offsets, now)
                                for delegation in vote_electorate(vote).delegation)
        return reminded

    def _remind(self, vote_id: str, delegation: Delegation, offsets: Mapping[str, timedelta], now: datetime) -> bool:
        """Remind one delegation if a reminder is due and not yet sent to it, in one transaction with its record.

        The record makes each reminder go once per vote, delegation and
        deadline (a moved deadline has reminders of its own), whatever
        restarts or concurrent passes happen. Where several are due
        at once (the service was stopped), only the latest goes, and the
        earlier ones are recorded as passed over.
        """
        with self.ledger.transaction():
            vote = self.ledger.vote(vote_id)
            if not vote.is_open or now >= vote.closes_at:
                return False
            sent = self.ledger.reminders_sent(vote_id, delegation.code, vote.closes_at)
            due = sorted((vote.closes_at - before, name) for name, before in offsets.items()
                         if vote.opened_at < vote.closes_at - before <= now and name not in sent)
            if not due:
                return False
            drafts = self.ledger.drafts(vote_id)
            counted = counted_ballots(self._ballots(vote_id, vote.closes_at, delegation.code), [d.symbol for d in drafts])
            missing = [(d.symbol, d.title) for d in drafts if delegation.code not in counted[d.symbol]]
            if not missing:
                return False
            letter = letters.reminder(vote_id, vote.title, delegation, missing, vote.closes_at,
                                      self._zones(delegation), self._words(delegation))
            mail = self._write(delegation, letter.subject, letter.text, text_as_html(letter.text), "reminder", vote_id,
                               now, in_reply_to=self.ledger.ballot_message_id(vote_id, delegation.code))
            self.ledger.add_reminders(vote_id, delegation.code, vote.closes_at, [name for _, name in due[:-1]], None, now)
            self.ledger.add_reminders(vote_id, delegation.code, vote.closes_at, [due[-1][1]], mail.message_id, now)
        return True
