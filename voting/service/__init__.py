"""The service: one pass of docs/design.md §2 over the mailbox, closing and tallying due votes, sending mail.

Each stage lives in the module named after it (`opening`, `intake`,
`resending`, `judging`, `closing`, `reminding`, on the shared `base`);
`Service` is all of them, run in order by `poll_once`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voting.config import Config
from voting.drafts import sponsor_names
from voting.errors import LedgerError, MailError
from voting.files import free_bytes
from voting.integrity import vote_damage
from voting.ledger import utc_text
from voting.service.base import Clock, utcnow, vote_electorate
from voting.service.closing import MAILBOX_SETTLING
from voting.service.opening import DraftFile
from voting.service.reminding import Reminding
from voting.verdict import Judgement
from voting.wording import DEFAULT_LANGUAGE

if TYPE_CHECKING:
    from voting.mail.server import MailServer

__all__ = ["MAILBOX_SETTLING", "Clock", "DraftFile", "PassReport", "Service", "embedded_server", "utcnow",
           "vote_electorate"]


@dataclass
class PassReport:
    fetched: int = 0
    judgements: list[Judgement] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    reminded: int = 0
    """Delegations reminded that they have not voted yet."""
    sent: int = 0
    failed: int = 0
    mailbox_read: bool = True
    """Whether the fetch read the whole mailbox; while it cannot, no vote closes."""


class Service(Reminding):
    def poll_once(self) -> PassReport:
        report = PassReport()

        def answer() -> None:
            sent, failed = self.send()
            report.sent += sent
            report.failed += failed

        started = self.clock()
        report.fetched = self.fetch()
        report.mailbox_read = self.fetched_through is not None and self.fetched_through >= started
        report.judgements = self.decide_pending(answer)
        report.reminded = self.remind_due()
        report.closed = self.close_due()
        answer()
        return report

    def status(self, vote_id: str) -> dict[str, Any]:
        """The vote's state, as one commit left the ledger (a pass may be committing meanwhile); where a damaged row
        cannot even be read, only what is damaged (state "unreadable")."""
        with self.ledger.snapshot():
            damaged = vote_damage(self.ledger, vote_id, full=False, decryption=lambda: self.decryption()[0])
            try:
                return self._status(vote_id, damaged)
            except (ValueError, LedgerError):  # a value no longer of its type (a choice, JSON): the damage says which
                if not damaged:
                    raise
                return {"vote": vote_id, "state": "unreadable", "damaged": damaged}

    def _status(self, vote_id: str, damaged: list[str]) -> dict[str, Any]:
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        board = self.board(vote_id)
        electorate = vote_electorate(vote)
        return {
            "vote": vote.id,
            "title": vote.title,
            "rule": vote.rule,
            "state": "open" if vote.is_open else "closed",
            "damaged": damaged,
            "closes_at": utc_text(vote.closes_at),
            "closed_at": utc_text(vote.closed_at) if vote.closed_at else None,
            "seconds_left": max(0, int((vote.closes_at - now).total_seconds())) if vote.is_open else 0,
            "voted": {r.code: dict(r.choices) for r in board.rows if r.received_at},
            "not_voted": [r.code for r in board.rows if not r.received_at],
            "rejected": [
                {"sha256": d.sha256, "received_at": utc_text(d.received_at), "code": d.code, "reason": d.reason,
                 "detail": d.detail}
                for d in self.rejections(vote)
            ],
            "drafts": [{"symbol": d.symbol, "title": d.title, "sha256": d.sha256,
                        "sponsors": [{"code": code, "name": name}
                                     for code, name in sponsor_names(d.sponsors, electorate, DEFAULT_LANGUAGE)]}
                       for d in self.ledger.drafts(vote_id)],
            "outcome": vote.outcome,
            "outbox": self.ledger.outbox_counts(),
            "outbox_failures": [
                {"message_id": m.message_id, "recipients": list(m.recipients), "error": m.last_error}
                for m in self.ledger.outbox_notes("failed")
            ],
            "outbox_retrying": [
                {"message_id": m.message_id, "attempts": m.attempts, "error": m.last_error}
                for m in self.ledger.outbox_notes("queued", attempted=True)
            ],
            "mailbox": self._mailbox_status(),
            "storage": self._storage(),
        }

    def _storage(self) -> dict[str, Any]:
        """Free space where the ledger and the mail are kept: `full` below one message's largest size.

        The service itself cannot record that its disk is full, so status
        looks at the disk: while it is full the mail server answers 451, the
        passes take nothing in, and `voting serve` resumes once space is freed.
        """
        places = [self.config.database.parent]
        if self.config.settings.mailbox.kind != "imap":
            places.append(self.config.inbox)
        free, where = min((free_bytes(place), place) for place in places)
        return {"free_bytes": free, "where": str(where),
                "full": free < self.config.settings.service.max_message_bytes}


@contextmanager
def embedded_server(config: Config, *, required: bool,
                    delivered: Callable[[], None] | None = None) -> Iterator[MailServer | None]:
    """Run the built-in SMTP server for the duration, when the deployment uses it.

    For one pass (`required=False`), a server already listening on the port,
    such as a running `voting serve`, is used instead. aiosmtpd is imported
    here, not by the commands that only read the ledger.
    """
    from voting.mail.server import MailServer

    if config.settings.smtp.kind != "embedded":
        yield None
        return
    smtp = config.settings.smtp
    server = MailServer(config.resolve(config.settings.mailbox.root), host=smtp.host, port=smtp.port,
                        max_message_bytes=config.settings.service.max_message_bytes,
                        inbox=config.settings.secretariat.address, delivered=delivered)
    try:
        server.start()
    except MailError:
        if required:
            raise
        yield None
        return
    try:
        yield server
    finally:
        server.stop()
