"""Judging what was taken in: each message decided once, recorded with its answer, never left undecided."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import NamedTuple, TYPE_CHECKING, TypeVar

from voting import letters, rules
from voting.errors import StorageError
from voting.ledger import StoredMessage
from voting.letters import Received
from voting.mail.compose import message_id_in, text_as_html
from voting.model import Delegation, Electorate
from voting.reasons import Reason
from voting.service.base import counted_pairs, vote_electorate
from voting.service.resending import Resending
from voting.times import log_time
from voting.verdict import (
    BALLOT,
    REJECTED,
    REQUEST,
    CountedBallot,
    Judgement,
    PriorBallot,
    Reading,
    VoteView,
    count_ballot,
    counted_ballots,
    read_message,
    rejected,
    settle,
)

if TYPE_CHECKING:
    from voting.electorate import TrustAt
    from voting.read_ahead import ReadingProcess, Sent


class OuterHeaders(NamedTuple):
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
        head = raw[: 256 * 1024]
        # The parser reads every line of what it is given, body included: it is given the header block only.
        ends = [end for end in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if end >= 0]
        block = head[: min(ends) + 2] if ends else head
        fields = plain_fields(block) if ends else None
        if fields is None:
            try:
                headers = BytesHeaderParser(policy=compat32).parsebytes(block)
            except Exception:  # noqa: BLE001 - unreadable headers are simply absent
                return cls(None, None, False)

        def value(name: str) -> str:
            if fields is not None:
                return fields.get(name, "")
            return " ".join(str(headers.get(name, "")).split())

        addresses = [address for _, address in getaddresses([value("from")]) if address]
        auto_submitted = (value("auto-submitted") or "no").split(";")[0].strip().lower()
        return cls(
            message_id=message_id_in(value("message-id")),
            from_address=addresses[0].lower() if len(addresses) == 1 else None,
            automatic=auto_submitted != "no" or value("precedence").lower() in ("bulk", "junk", "list", "auto_reply"),
        )


_PLAIN_FIELD = re.compile(r"[\041-\071\073-\176]+:[\t\x20-\x7e]*")
"""A field's first line as the email parser takes one (its name as the parser's `headerRE` allows), printable ASCII."""
_PLAIN_FOLD = re.compile(r"[\t ][\t\x20-\x7e]*")


def plain_fields(block: bytes) -> dict[str, str] | None:
    """The fields of a plain header block, the first of each name (lowercased), whitespace collapsed: what `email`'s
    compat32 parser reads from it, for less than half its cost; None for any other block, which the parser reads.

    Plain: printable ASCII lines (tabs allowed) ending in CRLF or LF, each a field or the fold of one, then blank
    lines alone. Anything else (a Unix From line, a bare CR, 8-bit bytes, a line the parser would take for the
    body) is left to the parser, whose reading of it is the reference.
    """
    try:
        lines = block.decode("ascii").replace("\r\n", "\n").split("\n")
    except UnicodeDecodeError:
        return None
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return None
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if current is not None and _PLAIN_FOLD.fullmatch(line):
            current.append(line)
        elif _PLAIN_FIELD.fullmatch(line):
            name, _, first = line.partition(":")
            current = [first]
            fields.setdefault(name.lower(), current)
        else:
            return None
    return {name: " ".join(" ".join(pieces).split()) for name, pieces in fields.items()}


K = TypeVar("K")
V = TypeVar("V")


class ReadOnce(dict[K, V]):
    """Values read from the ledger the first time each key is asked for: a pass reads those of the votes and
    delegations whose mail it judges, not every one ever recorded."""

    def __init__(self, read: Callable[[K], V]) -> None:
        super().__init__()
        self._read = read

    def __missing__(self, key: K) -> V:
        found = self[key] = self._read(key)
        return found

    def get(self, key: K, default: object = None) -> V:  # type: ignore[override]
        return self[key]


@dataclass
class DelegationBallots:
    """A delegation's ballots counted in one vote, as judging its next ones needs them: read from the ledger's
    index once a pass, then kept up to date with each one the pass records."""

    prior: list[PriorBallot]
    """Oldest first: what tells a copy of one of them, and which one a new ballot supersedes."""
    counted: dict[str, dict[str, CountedBallot]]
    """Its ballot that counts per draft (`counted_ballots`): the vote as its receipts state it."""


class PriorBallots(Mapping[tuple[str, str], Sequence[PriorBallot]]):
    """What `judge` reads of each (vote, delegation)'s ballots: the earlier ones, read when first asked for."""

    def __init__(self, ballots: ReadOnce[tuple[str, str], DelegationBallots]) -> None:
        self._ballots = ballots

    def __getitem__(self, key: tuple[str, str]) -> Sequence[PriorBallot]:
        return self._ballots[key].prior

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._ballots)

    def __len__(self) -> int:
        return len(self._ballots)


class ReadAhead(NamedTuple):
    """A batch's messages read before it is decided (bytes, and what `read_message` read of them), by ledger id, and
    the votes they were read against: a reading is used only while those stand (`Known.views` is still `views`).

    `read_message` reads a message against the votes alone: mail taken in or
    ballots recorded by another process meanwhile leave its reading as it is.
    """

    read: dict[int, tuple[bytes, Reading]]
    views: dict[str, VoteView]


@dataclass
class Known:
    """What judging a message rests on besides its bytes: the votes, and the ballots each delegation has cast.

    `version` is the ledger's data version when they were read: another
    process that records meanwhile changes it, and they are read again.
    """

    views: dict[str, VoteView]
    ballots: ReadOnce[tuple[str, str], DelegationBallots]
    silence: ReadOnce[str, bool]
    """Whether each vote runs under the silence procedure, for its receipts: its rule and membership never change."""
    version: int


def counted_ballot(message: StoredMessage, judgement: Judgement, view: VoteView) -> CountedBallot | None:
    """The message as a ballot that counts in the vote, as `Service._ballots` reads one back from the ledger; None
    when it does not count (not a ballot, or received past the deadline)."""
    if not judgement.counted or judgement.code is None or message.received_at >= (view.closed_at or view.closes_at):
        return None
    return CountedBallot(message.sha256, message.received_at,
                         {symbol: str(choice) for symbol, choice in judgement.choices.items()}, message.id)


READ_AHEAD_BYTES = 4 << 20
"""The most bytes of messages a pass reads ahead of deciding them (`Judging._read_ahead`): 25 ballots of a few
kilobytes each, never 25 messages at the size limit."""

ANSWER_BATCH = 25
ANSWER_SECONDS = 1.0
"""While many messages wait, they are decided in batches of this many decisions or seconds, whichever comes first,
each batch committed at once and its answers then sent, so that a delegation's receipt never waits for everyone
else's mail to be decided."""


class Judging(Resending):
    def decide_pending(self, answer: Callable[[], None] | None = None) -> list[Judgement]:
        """Decide every message not decided yet; one that another process decides first is left to it.

        The messages' bytes were committed when they were taken in; their
        decisions are committed a batch at a time, each decision with its
        answer, and `answer` (which sends what is queued) is called after each
        batch but the last. A message whose judging fails is undone alone and
        recorded as unreadable; a failing disk or ledger undoes the batch, whose
        messages stay undecided for the next pass, none of them answered.
        """
        judgements: list[Judgement] = []
        pending = self.ledger.undecided_messages()
        if not pending:
            return judgements
        import pickle

        from voting.electorate import trust_by_time

        electorate = self.electorate()
        trust_at = trust_by_time(electorate)
        known = self._known()
        electorate_sent = pickle.dumps(electorate) if self._reading_process(len(pending)) is not None else None
        sent: Sent | None = None
        at = 0
        while at < len(pending):
            read = self._read_elsewhere(sent, known)  # the batch, read while the one before it was recorded
            sent = None if electorate_sent is None else self._send_ahead(
                pending[at + ANSWER_BATCH : at + 2 * ANSWER_BATCH], electorate_sent, known)
            ahead = self._read_ahead(pending[at : at + ANSWER_BATCH], trust_at, known, read)
            decided: list[tuple[Judgement | None, str]] = []
            first, started = at, time.monotonic()
            with self.ledger.transaction():
                while at < len(pending) and at - first < ANSWER_BATCH and (
                        at == first or time.monotonic() - started < ANSWER_SECONDS):
                    message = pending[at]
                    at += 1
                    if (outcome := self._decide_one(message, electorate, trust_at, known, ahead)) is not None:
                        decided.append(outcome)
            for judgement, line in decided:  # told once committed
                self.log(line)
                if judgement is not None:
                    judgements.append(judgement)
            if answer is not None and at < len(pending):
                answer()
        return judgements

    def _read_ahead(self, messages: Sequence[StoredMessage], trust_at: TrustAt, known: Known,
                    read_elsewhere: Mapping[int, tuple[bytes, Reading]]) -> ReadAhead:
        """The batch's messages read on their own (`read_message`: the signatures verified) before any is recorded:
        by the reading process (`read_elsewhere`), or here.

        Verifying the batch's signatures one after another, rather than each
        between recording a decision and signing an answer, costs a tenth less
        a ballot (each step then finds what it uses in the processor's caches),
        and it holds no lock. A message whose reading fails (or whose bytes
        cannot be read) is read again in its turn, where the failure is
        recorded, or ends the pass if it is the ledger's. Messages are read
        ahead only up to `READ_AHEAD_BYTES`: the rest of a batch of large ones
        (a flood of 25 MB messages) is read in its turn, one at a time.
        """
        read = {message.id: read_elsewhere[message.id] for message in messages if message.id in read_elsewhere}
        anchors = (self.keys.ca.certificate,)
        unread = [message for message in messages if message.id not in read]
        for message, raw in self._bytes_ahead(unread, sum(len(raw) for raw, _ in read.values())):
            try:
                read[message.id] = (raw, read_message(raw, message.received_at, known.views,
                                                      trust_at(message.received_at, anchors), self.keys.signer))
            except Exception:  # noqa: BLE001 - read again in its turn, which records the failure
                continue
        return ReadAhead(read, known.views)

    def _bytes_ahead(self, messages: Sequence[StoredMessage], held: int = 0) -> Iterator[tuple[StoredMessage, bytes]]:
        """Each message with its bytes, until `READ_AHEAD_BYTES` are held (counting `held`); one whose bytes cannot
        be read is left to its turn, which records the failure or ends the pass if it is the ledger's."""
        for message in messages:
            try:
                raw = self.ledger.raw_message(message.id)
            except Exception:  # noqa: BLE001 - left to its turn
                continue
            held += len(raw)
            if held > READ_AHEAD_BYTES:
                return
            yield message, raw

    def _reading_process(self, waiting: int) -> ReadingProcess | None:
        """The process that reads ahead (`voting.read_ahead`): started by the first pass with more than a batch
        waiting, when there is another core, and kept for the passes after."""
        if self._reading is None and waiting > ANSWER_BATCH and (os.cpu_count() or 1) > 1:
            from voting.read_ahead import ReadingProcess

            try:
                self._reading = ReadingProcess(self.keys.signer, (self.keys.ca.certificate,))
            except (OSError, TimeoutError) as error:  # it could not start: the pass reads its mail itself
                self.log(f"reading ahead in another process could not start ({type(error).__name__}: {error});"
                         " the pass reads its mail itself")
        return self._reading

    def _send_ahead(self, messages: Sequence[StoredMessage], electorate: bytes, known: Known) -> Sent | None:
        """The next batch sent to the reading process, once it runs, up to `READ_AHEAD_BYTES`; None when it is not
        sent (the batch is then read here, in its turn)."""
        process = self._reading
        if process is None or not messages:
            return None
        try:
            if not process.ready():
                return None
        except Exception as error:  # noqa: BLE001 - it could not start: the pass reads its mail itself
            self._stop_reading(error)
            return None
        batch = [(message.id, raw, message.received_at) for message, raw in self._bytes_ahead(messages)]
        if not batch:
            return None
        try:
            return process.send(electorate, known.views, batch)
        except Exception as error:  # noqa: BLE001 - whatever stops the process, the pass reads its mail itself
            self._stop_reading(error)
            return None

    def _read_elsewhere(self, sent: Sent | None, known: Known) -> dict[int, tuple[bytes, Reading]]:
        """What the reading process read of the batch sent to it, each message with its bytes; nothing when the
        votes it was read against have changed since (another process opened or closed one)."""
        if sent is None or self._reading is None:
            return {}
        try:
            readings = self._reading.readings(sent)
        except Exception as error:  # noqa: BLE001 - whatever stops the process, the pass reads its mail itself
            self._stop_reading(error)
            return {}
        if sent.views is not known.views:
            return {}
        return {message_id: (raw, reading) for (message_id, raw), reading in zip(sent.messages, readings)
                if reading is not None}

    def _stop_reading(self, error: Exception) -> None:
        if self._reading is not None:
            self._reading.close()
            self._reading = None
            self.log(f"reading ahead in another process stopped ({type(error).__name__}: {error}); "
                     "the pass reads its mail itself, and a later one starts it again")

    def _decide_one(self, message: StoredMessage, electorate: Electorate, trust_at: TrustAt,
                    known: Known, ahead: ReadAhead) -> tuple[Judgement | None, str] | None:
        """Decide one message inside the batch's transaction: what was decided (None: left undecided), with its log
        line; None when another process decided it first."""
        try:
            judgement = self._decide(message, electorate, trust_at, known, ahead)
            line = "" if judgement is None else self._decided_line(message, judgement)
        except (StorageError, sqlite3.OperationalError):
            raise  # the disk or the ledger failed, not the message: the batch stays undecided for the next pass
        except Exception as error:  # noqa: BLE001 - one message must never stop or freeze the service
            self._require_transaction(error)
            try:
                judgement = self._record_unreadable(message, known.views, error)
            except Exception as failure:  # noqa: BLE001 - the ledger itself fails: retried next pass
                self._require_transaction(failure)
                return None, f"message {message.sha256[:16]} left undecided: {type(failure).__name__}: {failure}"
            if judgement is None:
                return None
            line = f"{message.sha256[:12]}: unreadable ({judgement.detail}), received {log_time(message.received_at)}"
        if judgement is None:
            return None
        key = (judgement.vote_id or "", judgement.code or "")
        if judgement.counted and key in known.ballots:  # ones not read yet are read with this ballot in them
            held = known.ballots[key]
            held.prior.append(PriorBallot(message.id, judgement.signed_sha256 or "", frozenset(judgement.choices)))
            if (ballot := counted_ballot(message, judgement, known.views[key[0]])) is not None:
                count_ballot(held.counted, key[1], ballot)
        return judgement, line

    def _require_transaction(self, error: Exception) -> None:
        """A failure that ended the batch's transaction (SQLite rolls back on some) ends the pass: nothing of the
        batch may be written outside it."""
        if not self.ledger.db.in_transaction:
            raise StorageError(f"the ledger's transaction ended: {type(error).__name__}: {error}") from error

    @staticmethod
    def _decided_line(message: StoredMessage, judgement: Judgement) -> str:
        who = judgement.code or "unknown sender"
        what = judgement.reason.value if judgement.reason else judgement.verdict
        return f"{message.sha256[:12]} {who}: {what}, received {log_time(message.received_at)}"

    def _known(self) -> Known:
        version = self.ledger.data_version()
        views = self._vote_views()
        return Known(views, ReadOnce(lambda key: self._delegation_ballots(views, key)), ReadOnce(self._silence),
                     version)

    def _decide(self, message: StoredMessage, electorate: Electorate, trust_at: TrustAt,
                known: Known, ahead: ReadAhead) -> Judgement | None:
        """Judge and record one message under the write lock; None when another process decided it first.

        Judged against the votes and ballots as they stand now: what another
        process recorded meanwhile (a ballot of the same delegation, a vote
        closed) is read again first, so that no decision rests on stale state;
        the message itself too, if it was read ahead against votes that have
        changed since.
        """
        with self.ledger.savepoint():
            if self.ledger.is_decided(message.id):
                return None
            if self.ledger.data_version() != known.version:
                fresh = self._known()
                # The same votes as before (another process took mail in, or recorded a ballot): the same views, so
                # that what was read ahead with them stands.
                views = known.views if fresh.views == known.views else fresh.views
                known.views, known.ballots, known.silence, known.version = (views, fresh.ballots, fresh.silence,
                                                                             fresh.version)
            if ahead.views is known.views and message.id in ahead.read:
                raw, reading = ahead.read[message.id]
            else:
                raw = self.ledger.raw_message(message.id)
                reading = read_message(raw, message.received_at, known.views,
                                       trust_at(message.received_at, (self.keys.ca.certificate,)), self.keys.signer)
            judgement = settle(reading, PriorBallots(known.ballots))
            return self._record(message, raw, judgement, electorate, known)

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

    def _delegation_ballots(self, views: Mapping[str, VoteView], key: tuple[str, str]) -> DelegationBallots:
        """The delegation's ballots counted in the vote, read in one query."""
        from voting.smime.verify import signed_sha256_of

        vote_id, code = key
        ballots = [d for d in self.ledger.decisions(vote_id, code) if d.verdict == BALLOT]
        prior = [PriorBallot(d.message, d.signed_sha256 or signed_sha256_of(
                     self.ledger.raw_message(d.message), self.keys.signer) or "", frozenset(d.choices))
                 for d in ballots]
        view = views.get(vote_id)
        counted = counted_ballots(counted_pairs(ballots, view.closed_at or view.closes_at), view.drafts) if view else {}
        return DelegationBallots(prior, counted)

    def _silence(self, vote_id: str) -> bool:
        """Whether the vote runs under the silence procedure, as its receipts say."""
        vote = self.ledger.vote(vote_id)
        return rules.resolve(vote.rule, vote_electorate(vote)).silence

    def _record(self, message: StoredMessage, raw: bytes, judgement: Judgement, electorate: Electorate,
                known: Known) -> Judgement:
        """Record the judgement and queue its answer, in one transaction; returns what was recorded."""
        now = self.clock()
        outer = OuterHeaders.of(raw)
        answer_to = self._answer_delegation(judgement, outer, electorate)
        meant_for = [] if judgement.vote_id else [
            view.id for view in known.views.values()
            if view.opened_at <= message.received_at < view.statements_until
        ]
        standing = (self._standing(known, judgement.vote_id, answer_to.code, message, judgement)
                    if answer_to is not None and judgement.vote_id else None)
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
                signed_sha256=judgement.kept_signed_sha256,
                also_in=meant_for,
                now=now,
            )
            if answer_to is not None:
                self._answer(message, outer, judgement, answer_to, now, standing)
        return judgement

    def _record_unreadable(self, message: StoredMessage, views: Mapping[str, VoteView],
                           error: Exception) -> Judgement | None:
        """A message that failed to be judged or recorded is decided all the same, as `unreadable`.

        Left undecided, it would hold every vote open at its receipt time open
        for ever. The raw bytes stay in the ledger; the failure is chained into
        those votes, so their status and audit show it.
        """
        judgement = rejected(Reason.UNREADABLE, None, None, f"{type(error).__name__}: {error}"[:500])
        meant_for = [view.id for view in views.values() if view.opened_at <= message.received_at < view.statements_until]
        with self.ledger.savepoint():
            if self.ledger.is_decided(message.id):
                return None
            self.ledger.record_decision(
                message, vote_id=None, code=None, verdict=REJECTED, reason=Reason.UNREADABLE.value,
                detail=judgement.detail.encode("utf-8", "replace").decode("utf-8"), choices={}, explanation="",
                supersedes=None, signed_sha256=None, also_in=meant_for, now=self.clock(),
            )
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
                now: datetime, standing: letters.Standing | None) -> None:
        if judgement.verdict == REQUEST:
            self._answer_request(judgement, delegation, outer.message_id, now)
            return
        superseded = self.ledger.message(judgement.supersedes) if judgement.supersedes is not None else None
        letter = letters.answer(
            judgement,
            delegation,
            Received(message.sha256, message.received_at),
            Received(superseded.sha256, superseded.received_at) if superseded else None,
            self._zones(delegation),
            standing,
            self._words(delegation),
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

    def _standing(self, known: Known, vote_id: str, code: str, message: StoredMessage,
                  judgement: Judgement) -> letters.Standing:
        """The delegation's vote as it stood before the message, and once it is recorded; asked before it is.

        The vote as judging read it (`known`): under the write lock, and read
        again when another process has written since. The delegation's
        ballots are read once a pass and each one recorded is counted in, so
        that a receipt costs the same however many ballots came before it.
        """
        view, silence = known.views[vote_id], known.silence[vote_id]
        before = known.ballots[(vote_id, code)].counted
        after = {symbol: dict(per_delegation) for symbol, per_delegation in before.items()}
        if judgement.code == code and (ballot := counted_ballot(message, judgement, view)) is not None:
            count_ballot(after, code, ballot)

        def standing(counted: dict[str, dict[str, CountedBallot]]) -> dict[str, tuple[str, Received]]:
            return {
                symbol: (str(ballot.choices[symbol]), Received(ballot.message, ballot.received_at))
                for symbol, per_delegation in counted.items() for ballot in per_delegation.values()
            }

        return letters.Standing(
            drafts=view.drafts,
            before=standing(before),
            after=standing(after),
            closes_at=view.closed_at or view.closes_at,
            first_ballot_final=view.first_ballot_final,
            counted=view.counted,
            silence=silence,
        )
