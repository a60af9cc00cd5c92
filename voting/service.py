"""The service: one pass of docs/design.md §2 over the mailbox, closing and tallying due votes, sending mail.

This is the imperative shell around the pure core (`verdict.judge`,
`rules.decide`, `ballot`, `smime`): it reads the mailbox and the electorate
file, writes the ledger, and hands mail to the outbox.
"""

from __future__ import annotations

import hashlib
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from functools import cached_property
from pathlib import Path
from typing import Any

from voting import ballot, letters, rules
from voting.bundle import published_bundle
from voting.config import Config
from voting.electorate import load_electorate, trust_of
from voting.errors import ConfigError, MailError, UsageError
from voting.ledger import (
    DecisionRecord,
    DraftRecord,
    Ledger,
    StoredMessage,
    VoteRecord,
    utc_text,
)
from voting.letters import Received
from voting.mail import maildir
from voting.mail.compose import (
    OutgoingMessage,
    message_id_in,
    signed_mail,
    text_as_html,
)
from voting.mail.imap import (
    ImapError,
    ImapMailbox,
    batches,
    imap_settings,
    mailbox_label,
)
from voting.mail.outbox import drain
from voting.mail.server import MailServer
from voting.model import Choice, Delegation, Electorate, Outcome
from voting.pki import SecretariatKeys
from voting.reasons import Reason
from voting.smime.verify import signed_sha256_of
from voting.record import (
    RejectedMessage,
    VoteBoard,
    build_board,
    record_body,
    record_text,
)
from voting.verdict import (
    BALLOT,
    REJECTED,
    STATEMENT,
    CountedBallot,
    Judgement,
    PriorBallot,
    VoteView,
    counted_ballots,
    counted_choices,
    judge,
    rejected,
)

Clock = Callable[[], datetime]

MAILBOX_SETTLING = timedelta(seconds=2)
"""A mail server dates a message a moment before it shows it (a Maildir delivery sets the time, then moves
the file into new/; an IMAP server sets INTERNALDATE, then completes the APPEND): a vote closes only after a
fetch that began this long after its deadline."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DraftFile:
    symbol: str
    path: Path


@dataclass
class PassReport:
    fetched: int = 0
    judgements: list[Judgement] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    mailbox_read: bool = True
    """Whether the fetch read the whole mailbox; while it cannot, no vote closes."""


def vote_electorate(vote: VoteRecord) -> Electorate:
    """The membership snapshot taken when the vote opened."""
    return Electorate.model_validate_json(vote.electorate_json)


class Service:
    def __init__(self, config: Config, *, clock: Clock = utcnow, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.ledger = Ledger.open(config.database)
        self.log = log or (lambda line: print(line, file=sys.stderr))

    def close_ledger(self) -> None:
        self.ledger.close()

    @cached_property
    def keys(self) -> SecretariatKeys:
        return SecretariatKeys.load(self.config.keys_dir, self.config.key_password())

    def electorate(self) -> Electorate:
        """Read afresh each time: certificates issued or revoked meanwhile take effect at once."""
        return load_electorate(self.config.electorate_file)

    @property
    def secretariat(self) -> tuple[str, str]:
        s = self.config.settings.secretariat
        return s.address, s.name

    # -- opening -------------------------------------------------------------

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
                )
                mail = self._write(delegation, f"Ballot: {title} [{vote_id}]", ballot.render_ballot_text(content),
                                   ballot.render_ballot_html(content), "ballot", vote_id, now)
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
            data = draft.path.read_bytes()
        except OSError as error:
            raise UsageError(f"--draft {draft.symbol}={draft.path}: {error.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--draft {draft.symbol}={draft.path}: not UTF-8 text") from None
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), draft.symbol)
        return DraftRecord(draft.symbol, first_line[:200], text, hashlib.sha256(data).hexdigest(), parties)

    # -- one pass --------------------------------------------------------------

    def poll_once(self) -> PassReport:
        report = PassReport()
        started = self.clock()
        report.fetched = self.fetch()
        report.mailbox_read = self.fetched_through is not None and self.fetched_through >= started
        report.judgements = self.decide_pending()
        report.closed = self.close_due()
        report.sent, report.failed = self.send()
        return report

    fetched_through: datetime | None = None
    """When the latest complete fetch began: everything delivered before then is in the ledger."""

    def fetch(self) -> int:
        """Keep it raw first: commit the exact bytes, and only then take the message out of the inbox."""
        started = self.clock()
        if self.config.settings.mailbox.kind == "imap":
            stored, complete = self._fetch_imap()
        else:
            stored, complete = self._fetch_maildir(), True
        if complete:
            self.fetched_through = started
        return stored

    def _fetch_maildir(self) -> int:
        inbox = self.config.inbox
        stored = 0
        try:
            for message in maildir.pending(inbox):
                raw = maildir.read(message)
                result = self.ledger.store_message(raw, message.received_at, f"maildir:{message.key}", self.clock())
                maildir.mark_processed(inbox, message)
                stored += result.new
        except MailError as error:
            raise ConfigError(f"{self.config.path}: [mailbox]: {error}") from None
        return stored

    @cached_property
    def _imap(self) -> ImapMailbox:
        """The IMAP session, kept open across passes and reopened with backoff."""
        return ImapMailbox(imap_settings(self.config))

    def _fetch_imap(self) -> tuple[int, bool]:
        """Fetch by UID past the checkpoint of (folder, UIDVALIDITY); commit, advance the checkpoint, then move.

        A crash after a commit leaves the message in the folder at or below
        the checkpoint, and the next pass moves it without fetching it again;
        a crash before the checkpoint fetches it again, and the ledger's
        SHA-256 dedupe keeps it once. A new UIDVALIDITY has no checkpoint, so
        the folder is read again in full under the same dedupe. A server
        problem never stops the pass: it is logged, recorded for `voting
        status`, and the session is reopened with backoff.
        """
        mailbox = self._imap
        name = mailbox.settings.folder
        stored = 0
        try:
            session = mailbox.session()
            if session is None:
                return 0, False
            folder = session.scan()
            done = self.ledger.checkpoint(name, folder.uidvalidity)
            session.mark_processed([uid for uid in folder.uids if uid <= done])
            for batch in batches([uid for uid in folder.uids if uid > done]):
                for message in session.fetch(batch):
                    source = f"imap:{name}:{folder.uidvalidity}:{message.uid}"
                    stored += self.ledger.store_message(message.raw, message.received_at, source, self.clock()).new
                self.ledger.set_checkpoint(name, folder.uidvalidity, batch[-1], self.clock())
                session.mark_processed(batch)
        except ImapError as error:
            mailbox.failed()
            self.ledger.note_mailbox_error(mailbox.settings.label, str(error), self.clock())
            self.log(f"mailbox: {error}")
            return stored, False
        self.ledger.note_fetch(mailbox.settings.label, "connected", stored, self.clock())
        return stored, True

    def wait_for_mail(self, seconds: float, stop: threading.Event) -> None:
        """Between passes: IDLE on an IMAP mailbox (or wait for the next reconnect), a plain wait otherwise."""
        if self.config.settings.mailbox.kind == "imap":
            self._imap.wait(seconds, stop)
        else:
            stop.wait(seconds)

    def close_mailbox(self) -> None:
        if "_imap" in self.__dict__:
            self._imap.close()

    def decide_pending(self) -> list[Judgement]:
        judgements: list[Judgement] = []
        pending = self.ledger.undecided_messages()
        if not pending:
            return judgements
        electorate = self.electorate()
        anchors = (self.keys.ca.certificate,)
        views = self._vote_views()
        prior = self._prior_ballots()
        for message in pending:
            try:
                raw = self.ledger.raw_message(message.id)
                trust = trust_of(electorate, anchors, message.received_at)
                judgement = self._record(message, raw, judge(raw, message.received_at, views, trust, prior,
                                                             self.keys.signer), electorate, views)
            except Exception as error:  # noqa: BLE001 - one message must never stop or freeze the service
                try:
                    judgement = self._record_unreadable(message, views, error)
                except Exception as failure:  # noqa: BLE001 - the ledger itself fails: retried next pass
                    self.log(f"message {message.sha256[:16]} left undecided: {type(failure).__name__}: {failure}")
                    continue
            if judgement.counted and judgement.vote_id and judgement.code:
                prior.setdefault((judgement.vote_id, judgement.code), []).append(
                    PriorBallot(message.id, judgement.signed_sha256 or "", frozenset(judgement.choices))
                )
            judgements.append(judgement)
        return judgements

    def _vote_views(self) -> dict[str, VoteView]:
        return {
            vote.id: VoteView(
                id=vote.id,
                opened_at=vote.opened_at,
                drafts=tuple(d.symbol for d in self.ledger.drafts(vote.id)),
                closes_at=vote.closes_at,
                closed_at=vote.closed_at,
                statement_hours=vote.statement_hours,
                first_ballot_final=vote.first_ballot_final,
                tokens=self.ledger.ballot_tokens(vote.id),
                counted=vote.closed_at is not None,
            )
            for vote in self.ledger.votes()
        }

    def _prior_ballots(self) -> dict[tuple[str, str], list[PriorBallot]]:
        prior: dict[tuple[str, str], list[PriorBallot]] = {}
        for vote in self.ledger.votes():
            for d in self.ledger.decisions(vote.id):
                if d.verdict == BALLOT and d.code:
                    prior.setdefault((vote.id, d.code), []).append(
                        PriorBallot(d.message, d.signed_sha256 or signed_sha256_of(
                            self.ledger.raw_message(d.message), self.keys.signer) or "", frozenset(d.choices))
                    )
        return prior

    def _record(self, message: StoredMessage, raw: bytes, judgement: Judgement, electorate: Electorate,
                views: Mapping[str, VoteView]) -> Judgement:
        """Record the judgement and queue its answer, in one transaction; returns what was recorded."""
        now = self.clock()
        outer = OuterHeaders.of(raw)
        answer_to = self._answer_delegation(judgement, outer, electorate)
        meant_for = [] if judgement.vote_id else [
            view.id for view in views.values() if view.opened_at <= message.received_at < view.statements_until
        ]
        with self.ledger.transaction():
            self.ledger.record_decision(
                message,
                vote_id=judgement.vote_id,
                code=judgement.code,
                verdict=judgement.verdict,
                reason=judgement.reason.value if judgement.reason else None,
                detail=judgement.detail,
                choices={symbol: str(choice) for symbol, choice in judgement.choices.items()},
                explanation=judgement.explanation,
                supersedes=judgement.supersedes,
                signed_sha256=judgement.signed_sha256 if judgement.counted else None,
                also_in=meant_for,
                now=now,
            )
            if answer_to is not None:
                self._answer(message, outer, judgement, answer_to, now)
        who = judgement.code or "unknown sender"
        what = judgement.reason.value if judgement.reason else judgement.verdict
        self.log(f"{utc_text(message.received_at)} {message.sha256[:12]} {who}: {what}")
        return judgement

    def _record_unreadable(self, message: StoredMessage, views: Mapping[str, VoteView], error: Exception) -> Judgement:
        """A message that failed to be judged or recorded is decided all the same, as `unreadable`.

        Left undecided, it would hold every vote open at its receipt time open
        for ever. The raw bytes stay in the ledger; the failure is chained into
        those votes, so their status and audit show it.
        """
        judgement = rejected(Reason.UNREADABLE, None, None, f"{type(error).__name__}: {error}"[:500])
        meant_for = [view.id for view in views.values() if view.opened_at <= message.received_at < view.statements_until]
        with self.ledger.transaction():
            self.ledger.record_decision(
                message, vote_id=None, code=None, verdict=REJECTED, reason=Reason.UNREADABLE.value,
                detail=judgement.detail.encode("utf-8", "replace").decode("utf-8"), choices={}, explanation="",
                supersedes=None, signed_sha256=None, also_in=meant_for, now=self.clock(),
            )
        self.log(f"{utc_text(message.received_at)} {message.sha256[:12]}: unreadable ({judgement.detail})")
        return judgement

    def _answer_delegation(self, judgement: Judgement, outer: OuterHeaders, electorate: Electorate) -> Delegation | None:
        """Whom to answer: the signer's delegation, else the delegation whose registered address is in From.

        Never an unregistered address: a forged message gets no answer at all
        unless it names a delegation's address, which then learns of it. An
        automatic message (RFC 3834 Auto-Submitted, an out-of-office notice, a
        bounce) that is rejected gets no answer either, so that two robots
        never write to each other for ever.
        """
        if judgement.verdict == "rejected" and outer.automatic:
            return None
        if judgement.code is not None:
            return electorate.get(judgement.code)
        sender = outer.from_address
        return next((d for d in electorate.delegation if sender and sender in d.addresses), None)

    def _answer(self, message: StoredMessage, outer: OuterHeaders, judgement: Judgement, delegation: Delegation,
                now: datetime) -> None:
        superseded = self.ledger.message(judgement.supersedes) if judgement.supersedes is not None else None
        letter = letters.answer(
            judgement,
            delegation,
            Received(message.sha256, message.received_at),
            Received(superseded.sha256, superseded.received_at) if superseded else None,
        )
        ballot_id = self.ledger.ballot_message_id(judgement.vote_id, delegation.code) if judgement.vote_id else None
        self._write(
            delegation,
            letter.subject,
            letter.text,
            text_as_html(letter.text),
            "receipt" if judgement.verdict != REJECTED else "rejection",
            judgement.vote_id,
            now,
            in_reply_to=outer.message_id or ballot_id,
            references=[ref for ref in (ballot_id, outer.message_id) if ref],
            auto_submitted="auto-replied",
        )

    def _write(
        self,
        delegation: Delegation,
        subject: str,
        text: str,
        html_body: str,
        kind: str,
        vote_id: str | None,
        now: datetime,
        *,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        auto_submitted: str = "auto-generated",
    ) -> OutgoingMessage:
        """Sign a message from the secretariat to a delegation's registered addresses and queue it.

        Call inside the transaction of what the message announces.
        """
        address, name = self.secretariat
        mail = signed_mail(
            self.keys.signer,
            sender=address,
            sender_name=name,
            recipients=delegation.addresses,
            subject=subject,
            text=text,
            html_body=html_body,
            sent_at=now,
            in_reply_to=in_reply_to,
            references=references,
            auto_submitted=auto_submitted,
        )
        self.ledger.queue_mail(
            message_id=mail.message_id,
            kind=kind,
            vote_id=vote_id,
            envelope_from=address,
            recipients=delegation.addresses,
            raw=mail.raw,
            now=now,
        )
        return mail

    # -- closing -----------------------------------------------------------------

    def close_due(self) -> list[str]:
        """Close the votes whose deadline had passed, by a settling moment, when the latest complete fetch began.

        Everything the mailbox received before the deadline was then in it,
        and is in the ledger; a vote with a message received before its
        deadline still undecided (one that failed this pass) waits for it. No
        ballot on time is left out of the count. While the mailbox cannot be
        read, nothing closes.
        """
        through = self.fetched_through
        if through is None:
            return []
        undecided = [m.received_at for m in self.ledger.undecided_messages()]
        due = [
            v.id for v in self.ledger.votes()
            if v.is_open and v.closes_at <= through - MAILBOX_SETTLING and not any(t < v.closes_at for t in undecided)
        ]
        for vote_id in due:
            self.close(vote_id, at=self.ledger.vote(vote_id).closes_at)
        return due

    def close_now(self, vote_id: str) -> None:
        """Close early: the deadline becomes now, then one pass takes in what was delivered before it and counts.

        Moving the deadline first means a message that arrives while the pass
        runs is late by the same rule in the service and in the audit.
        """
        vote = self.ledger.vote(vote_id)
        if not vote.is_open:
            raise UsageError(f"vote {vote_id} is already closed")
        now = self.clock()
        if now < vote.closes_at:
            with self.ledger.transaction():
                self.ledger.set_closes_at(vote_id, now)
                self.ledger.append_event(
                    vote_id, "deadline-moved", {"from": utc_text(vote.closes_at), "to": utc_text(now)}, now
                )
        time.sleep(max(0.0, (min(now, vote.closes_at) + MAILBOX_SETTLING - self.clock()).total_seconds()))
        self.fetch()
        self.decide_pending()
        if vote_id not in self.close_due():
            raise MailError(f"vote {vote_id} closes at {utc_text(min(now, vote.closes_at))} but is not counted yet:"
                            " the mailbox could not be read, or a message on time is still undecided (see voting"
                            " status); the service counts it at its next pass")

    def extend(self, vote_id: str, closes_at: datetime) -> None:
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        if not vote.is_open:
            raise UsageError(f"vote {vote_id} is closed; a closed vote cannot be extended")
        if not rules.RULES[vote.rule].extendable:
            raise UsageError(f"the rule {vote.rule} does not allow the deadline to be moved")
        if vote.closes_at <= now:
            raise UsageError(f"the deadline of vote {vote_id} has passed ({utc_text(vote.closes_at)}); it is being"
                             " counted and cannot be extended")
        if closes_at <= now:
            raise UsageError(f"--closes {utc_text(closes_at)} is not in the future")
        letter = letters.deadline_moved(vote_id, vote.title, vote.closes_at, closes_at)
        with self.ledger.transaction():
            self.ledger.set_closes_at(vote_id, closes_at)
            self.ledger.append_event(
                vote_id, "deadline-moved", {"from": utc_text(vote.closes_at), "to": utc_text(closes_at)}, now
            )
            for delegation in vote_electorate(vote).delegation:
                self._write(delegation, letter.subject, letter.text, text_as_html(letter.text), "notice", vote_id, now,
                            in_reply_to=self.ledger.ballot_message_id(vote_id, delegation.code))

    def close(self, vote_id: str, *, at: datetime) -> dict[str, Outcome]:
        """Tally under the vote's rule and queue the signed results, in one transaction."""
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        electorate = vote_electorate(vote)
        outcomes = self.outcomes(vote, at)
        with self.ledger.transaction():
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
            bundle = published_bundle(self, vote_id, self.config.records_dir)
            bundle_sha256 = hashlib.sha256(bundle.read_bytes()).hexdigest()
            board = self.board(vote_id)
            text = record_text(board, bundle_sha256)
            for delegation in electorate.delegation:
                self._write(delegation, f"Results: {vote.title} [{vote_id}]", text, record_body(board, bundle_sha256),
                            "results", vote_id, now,
                            in_reply_to=self.ledger.ballot_message_id(vote_id, delegation.code))
        return outcomes

    def _ballots(self, vote_id: str, deadline: datetime) -> list[tuple[str, CountedBallot]]:
        return [
            (d.code, CountedBallot(d.sha256, d.received_at, d.choices, d.message))
            for d in self.ledger.decisions(vote_id)
            if d.verdict == BALLOT and d.code and d.received_at < deadline
        ]

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
        return rules.decide_all(vote.rule, vote_electorate(vote), self.counted(vote, deadline), quorum=vote.quorum,
                                parties_to_dispute=parties)

    def rejections(self, vote: VoteRecord) -> list[DecisionRecord]:
        """Rejected messages of this vote, and those bound to no vote that arrived while it was open."""
        deadline = vote.closed_at or vote.closes_at
        window_end = deadline + timedelta(hours=vote.statement_hours)
        unbound = [d for d in self.ledger.decisions(None) if vote.opened_at <= d.received_at < window_end]
        bound = [d for d in self.ledger.decisions(vote.id) if d.verdict == "rejected"]
        return sorted(bound + unbound, key=lambda d: (d.received_at, d.sha256))

    def board(self, vote_id: str) -> VoteBoard:
        vote = self.ledger.vote(vote_id)
        deadline = vote.closed_at or vote.closes_at
        decisions = self.ledger.decisions(vote_id)
        last_ballot_at: dict[str, datetime] = {}
        explanations: dict[str, str] = {}
        for d in decisions:
            if d.code and d.verdict in (BALLOT, STATEMENT) and d.received_at < deadline + timedelta(
                    hours=vote.statement_hours):
                if d.verdict == BALLOT and d.received_at < deadline:
                    last_ballot_at[d.code] = d.received_at
                if d.explanation:
                    explanations[d.code] = d.explanation
        rejected = [_rejected(d) for d in self.rejections(vote)]
        outcomes = (
            {s: Outcome(**{**o, "vetoed_by": tuple(o["vetoed_by"])}) for s, o in vote.outcome.items()}
            if vote.outcome
            else None
        )
        return build_board(
            vote_id=vote.id,
            title=vote.title,
            rule=vote.rule,
            closes_at=vote.closes_at,
            drafts=[d.symbol for d in self.ledger.drafts(vote_id)],
            electorate=vote_electorate(vote),
            counted=self.counted(vote, deadline),
            last_ballot_at=last_ballot_at,
            explanations=explanations,
            outcomes=outcomes,
            rejected=rejected,
        )

    # -- sending -----------------------------------------------------------------

    def send(self) -> tuple[int, int]:
        return drain(self.ledger, self.config, self.clock)

    # -- status --------------------------------------------------------------------

    def status(self, vote_id: str) -> dict[str, Any]:
        vote = self.ledger.vote(vote_id)
        now = self.clock()
        board = self.board(vote_id)
        return {
            "vote": vote.id,
            "title": vote.title,
            "rule": vote.rule,
            "state": "open" if vote.is_open else "closed",
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
            "outcome": vote.outcome,
            "outbox": {
                status: len(self.ledger.outbox(status)) for status in ("queued", "sent", "failed")
            },
            "outbox_failures": [
                {"message_id": m.message_id, "recipients": list(m.recipients), "error": m.last_error}
                for m in self.ledger.outbox("failed")
            ],
            "outbox_retrying": [
                {"message_id": m.message_id, "attempts": m.attempts, "error": m.last_error}
                for m in self.ledger.outbox("queued") if m.attempts
            ],
            "mailbox": self._mailbox_status(),
        }

    def _mailbox_status(self) -> dict[str, Any]:
        """The mailbox as the service last saw it: connection, last fetch and last error."""
        mailbox = self.config.settings.mailbox
        if mailbox.kind != "imap":
            waiting = len(maildir.pending(self.config.inbox))
            return {"kind": mailbox.kind, "mailbox": str(self.config.inbox), "connection": "local",
                    "waiting": waiting}
        state = self.ledger.mailbox_status()
        if state is None:
            label = mailbox_label(mailbox.username, mailbox.host, mailbox.port, mailbox.folder)
            return {"kind": mailbox.kind, "mailbox": label, "connection": "not yet read", "since": None,
                    "last_fetch_at": None, "last_fetch_new": 0, "last_error": "", "last_error_at": None}
        return {
            "kind": mailbox.kind,
            "mailbox": state.mailbox,
            "connection": state.connection,
            "since": utc_text(state.since),
            "last_fetch_at": utc_text(state.last_fetch_at) if state.last_fetch_at else None,
            "last_fetch_new": state.last_fetch_new,
            "last_error": state.last_error,
            "last_error_at": utc_text(state.last_error_at) if state.last_error_at else None,
        }


def _rejected(decision: DecisionRecord) -> RejectedMessage:
    return RejectedMessage(decision.sha256, decision.received_at, decision.code, decision.reason or "")


@dataclass(frozen=True)
class OuterHeaders:
    """The unsigned outer headers, read once: for threading, for whom to warn, and for not answering robots.

    They are never trusted for anything that counts.
    """

    message_id: str | None
    from_address: str | None
    """The From header's one address, lowercased; None when it has none or several."""
    automatic: bool
    """RFC 3834 Auto-Submitted other than "no", or a bulk/list/auto-reply Precedence: a robot wrote it."""

    @classmethod
    def of(cls, raw: bytes) -> OuterHeaders:
        try:
            headers = BytesHeaderParser(policy=compat32).parsebytes(raw[: 256 * 1024])
        except Exception:  # noqa: BLE001 - unreadable headers are simply absent
            return cls(None, None, False)

        def value(name: str) -> str:
            return " ".join(str(headers.get(name, "")).split())

        addresses = [address for _, address in getaddresses([value("From")]) if address]
        auto_submitted = (value("Auto-Submitted") or "no").split(";")[0].strip().lower()
        return cls(
            message_id=message_id_in(value("Message-ID")),
            from_address=addresses[0].lower() if len(addresses) == 1 else None,
            automatic=auto_submitted != "no" or value("Precedence").lower() in ("bulk", "junk", "list", "auto_reply"),
        )


@contextmanager
def embedded_server(config: Config, *, required: bool) -> Iterator[MailServer | None]:
    """Run the built-in SMTP server for the duration, when the deployment uses it.

    For one pass (`required=False`), a server already listening on the port,
    such as a running `voting serve`, is used instead.
    """
    if config.settings.smtp.kind != "embedded":
        yield None
        return
    smtp = config.settings.smtp
    server = MailServer(config.resolve(config.settings.mailbox.root), host=smtp.host, port=smtp.port,
                        max_message_bytes=config.settings.service.max_message_bytes)
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
