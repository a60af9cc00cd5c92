"""What one incoming message means (docs/design.md §2.2 to §2.6), as a pure function.

`judge` takes the raw bytes, the server's receipt time, the open votes and the
trust in force at that time, and returns a `Judgement`; nothing here reads a
file or a socket. The service records the judgement, and `voting audit`
replays the same function over the bundle to check every recorded verdict,
running its two halves apart: `read_message` for each message on its own,
then `settle` in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from voting.model import Choice
from voting.reasons import Reason

if TYPE_CHECKING:  # read where a message is read (`read_message`), so that counting alone starts without them
    from voting.ballot import BallotRequest, Binding, Reply, ReplyText
    from voting.pki import Identity
    from voting.smime.decrypt import ContentKey
    from voting.smime.verify import Trust, Verification

BALLOT = "ballot"
STATEMENT = "statement"
REJECTED = "rejected"
REQUEST = "request"
"""A signed request for the ballot again: recorded and answered with the same ballot, never counted."""


class VoteView(NamedTuple):
    """What judging a message needs to know about one vote."""

    id: str
    opened_at: datetime
    drafts: tuple[str, ...]
    closes_at: datetime
    closed_at: datetime | None
    statement_hours: float
    first_ballot_final: bool
    tokens: Mapping[str, str]
    """Delegation code -> its ballot token for this vote."""
    counted: bool
    """The count was made before this message is judged, so nothing judged now can count, whatever its date:
    the service knows it from the ledger, the audit from the order of the vote's hash chain."""

    @property
    def deadline(self) -> datetime:
        """When choices stop counting: the deadline, or the moment the vote was closed early."""
        return min(self.closes_at, self.closed_at) if self.closed_at else self.closes_at

    @property
    def statements_until(self) -> datetime:
        return self.deadline + timedelta(hours=self.statement_hours)


class PriorBallot(NamedTuple):
    """A ballot already counted for a delegation in a vote, as judging its later ballots needs it."""

    message: int
    """Its id: the ledger's in the service, its place in the bundle in an audit."""
    signed_sha256: str
    """SHA-256 of its signed attributes (`Verification.signed_sha256`): a message signed with the same is a copy."""
    drafts: frozenset[str]
    """The drafts it answered."""


@dataclass(frozen=True)
class Judgement:
    verdict: str
    reason: Reason | None
    detail: str
    vote_id: str | None
    code: str | None
    """The delegation the message is attributed to, or may be answered as; None when nobody is known."""
    choices: dict[str, Choice] = field(default_factory=dict)
    explanation: str = ""
    ignored: str = ""
    """The reply's own text that is neither a choice nor marked as explanation: not published, and the receipt says so."""
    supersedes: int | None = None
    verification: Verification | None = None

    @property
    def counted(self) -> bool:
        return self.verdict == BALLOT

    @property
    def signed_sha256(self) -> str | None:
        """SHA-256 of the signed attributes, by which a later copy of this ballot is recognised."""
        return self.verification.signed_sha256 if self.verification else None

    @property
    def kept_signed_sha256(self) -> str | None:
        """What the ledger keeps and the chain records of `signed_sha256`: a counted ballot's only."""
        return self.signed_sha256 if self.counted else None


def rejected(reason: Reason, code: str | None, verification: Verification | None, detail: str = "",
             vote_id: str | None = None) -> Judgement:
    return Judgement(REJECTED, reason, detail or reason.describe(), vote_id, code, verification=verification)


def judge(
    raw: bytes,
    received_at: datetime,
    votes: Mapping[str, VoteView],
    trust: Trust,
    previous_ballots: Mapping[tuple[str, str], Sequence[PriorBallot]],
    decryption: Identity | ContentKey | None = None,
) -> Judgement:
    """Decide one message: read it on its own (`read_message`), then against the ballots before it (`settle`).

    `previous_ballots` maps (vote, delegation) to the ballots already counted
    for it, oldest first. `decryption` opens a ballot encrypted to the
    secretariat: its identity in the service, the message's disclosed content
    key in an audit.
    """
    return settle(read_message(raw, received_at, votes, trust, decryption), previous_ballots)


@dataclass(frozen=True)
class Answer:
    """A message that names a vote with the delegation's ballot token, read: what `settle` decides it from."""

    vote: VoteView
    code: str
    received_at: datetime
    reply: Reply
    explanation: str
    verification: Verification


Reading: TypeAlias = "Judgement | Answer"
"""A message read on its own: its verdict already, or, when the delegation's earlier ballots decide it, its answer."""


def read_message(
    raw: bytes,
    received_at: datetime,
    votes: Mapping[str, VoteView],
    trust: Trust,
    decryption: Identity | ContentKey | None = None,
) -> Reading:
    """All of `judge` that needs no other message: the signature, the signer's trust, the vote and the text.

    It is nearly all the work, and independent, so an audit reads every
    message of a bundle at once, on every core, then settles them in order.
    """
    from voting.ballot import ReplyText, ballot_request, explained_reply, reply_binding, text_of_entity
    from voting.smime.verify import verify_message

    verification = verify_message(raw, trust, received_at, decryption)
    if not verification.valid:
        return rejected(verification.reason or Reason.BAD_SIGNATURE, verification.owner, verification,
                        verification.detail)
    code = verification.owner
    if code is None or verification.signed_content is None:
        return rejected(Reason.UNKNOWN_SIGNER, None, verification)

    signed = verification.signed_parts or verification.signed_content
    text = ReplyText(text_of_entity(signed))
    binding = reply_binding(text)
    request = ballot_request(text)
    if request is not None:
        asked = _request(request, binding, text, received_at, votes, code, verification)
        if asked is not None:
            return asked
    vote = votes.get(binding.vote_id or "")
    if vote is None:
        return rejected(Reason.UNKNOWN_VOTE, code, verification)
    if vote.tokens.get(code) is None or binding.token != vote.tokens[code]:
        return rejected(Reason.WRONG_BALLOT_TOKEN, code, verification, vote_id=vote.id)
    reply, explanation = explained_reply(text, signed, vote.drafts)
    return Answer(vote, code, received_at, reply, explanation, verification)


def portable(reading: Reading) -> Reading:
    """The reading as it crosses from a process that read it to one that settles it: less the signer's certificate,
    which cannot be sent, and the parts its text was read from, which nothing after reading looks at."""
    if reading.verification is None:
        return reading
    return replace(reading, verification=replace(reading.verification, signer=None, signed_parts=()))


def settle(reading: Reading, previous_ballots: Mapping[tuple[str, str], Sequence[PriorBallot]]) -> Judgement:
    """The verdict of a message read, given the delegation's ballots already counted in its vote.

    A new ballot supersedes the latest; a copy of any of them (the same
    signed attributes, under other outer headers or another encoding of the
    signature, as a replay or a repeated delivery brings) is refused, so that
    an old ballot can never undo a change of vote, while a new signing of the
    same text (a change back) counts; when the vote was opened with the first
    ballot final, a draft already answered cannot be answered again.
    """
    if isinstance(reading, Judgement):
        return reading
    vote, code, received_at, reply, explanation, verification = (
        reading.vote, reading.code, reading.received_at, reading.reply, reading.explanation, reading.verification)
    prior = previous_ballots.get((vote.id, code), ())
    if any(ballot.signed_sha256 == verification.signed_sha256 for ballot in prior):
        return rejected(Reason.REPLAYED, code, verification, vote_id=vote.id)

    if received_at >= vote.deadline or vote.counted:
        after = "received after the deadline" if received_at >= vote.deadline else "taken in after the vote was counted"
        if received_at < vote.statements_until and explanation:
            detail = "Explanation of vote recorded after the vote closed"
            if reply.choices:
                detail += f"; choices {after} are not counted"
            return Judgement(STATEMENT, None, detail + ".", vote.id, code, explanation=explanation,
                             ignored=reply.ignored, verification=verification)
        detail = "" if received_at >= vote.deadline else "The message was taken in after the vote was counted."
        return rejected(Reason.LATE, code, verification, detail, vote_id=vote.id)
    if reply.problem is not None:
        detail = reply.problem.describe() + (f" ({reply.problem_detail})" if reply.problem_detail else "")
        return rejected(reply.problem, code, verification, detail, vote_id=vote.id)
    previous = prior[-1].message if prior else None
    answered = frozenset().union(*(ballot.drafts for ballot in prior))
    if vote.first_ballot_final and answered & set(reply.choices):
        detail = f"{Reason.BALLOT_FINAL.describe()} ({', '.join(sorted(answered & set(reply.choices)))})"
        return rejected(Reason.BALLOT_FINAL, code, verification, detail, vote_id=vote.id)
    return Judgement(
        BALLOT,
        None,
        "Ballot recorded" + (" and supersedes the earlier one." if previous is not None else "."),
        vote.id,
        code,
        choices=dict(reply.choices),
        explanation=explanation,
        ignored=reply.ignored,
        supersedes=previous,
        verification=verification,
    )


def _request(request: BallotRequest, binding: Binding, text: ReplyText, received_at: datetime, votes: Mapping[str, VoteView],
             code: str, verification: Verification) -> Judgement | None:
    """A request for the ballot of the vote it names (by its line, or the Vote-ID it quotes), or of every open vote.

    None when the message states choices for the vote it names: it is judged
    as a ballot then, never set aside as a request.
    """
    from voting.ballot import parse_reply

    named = {vote_id for vote_id in (request.vote_id, binding.vote_id) if vote_id}
    if not named:
        return Judgement(REQUEST, None, "Ballots requested again: each open ballot of the delegation.", None, code,
                         verification=verification)
    if len(named) > 1:
        return rejected(Reason.UNKNOWN_VOTE, code, verification,
                        f"The request names two votes: {' and '.join(sorted(named))}.")
    vote = votes.get(named.pop())
    if vote is None:
        return rejected(Reason.UNKNOWN_VOTE, code, verification)
    if parse_reply(text, vote.drafts).choices:
        return None
    if code not in vote.tokens:
        return rejected(Reason.WRONG_BALLOT_TOKEN, code, verification,
                        "The delegation has no ballot in this vote.", vote_id=vote.id)
    if received_at >= vote.deadline or vote.counted:
        return rejected(Reason.LATE, code, verification, vote_id=vote.id)
    return Judgement(REQUEST, None, "Ballot requested again.", vote.id, code, verification=verification)


class CountedBallot(NamedTuple):
    """A ballot as the count takes it. A named tuple rather than a frozen dataclass: the board and the audit
    build one per ballot of a vote, at a quarter of the cost."""

    message: str
    received_at: datetime
    choices: Mapping[str, str]
    order: int
    """Where it stands among the messages taken in (ledger id, or place in the bundle): breaks ties of time.

    Mailbox times may be whole seconds; two ballots of one second count in
    the order they were judged, which is the order their receipts state.
    """


def counted_ballots(
    ballots: Iterable[tuple[str, CountedBallot]], drafts: Iterable[str]
) -> dict[str, dict[str, CountedBallot]]:
    """The ballot that counts per draft and delegation: the latest one that answers that draft.

    `ballots` are (delegation, ballot) pairs of valid ballots received before
    the deadline, in any order. A later ballot that answers only some drafts
    changes only those. A choice for a draft not on the vote counts for
    nothing (only a tampered bundle holds one, and its verdict check fails).
    """
    counted: dict[str, dict[str, CountedBallot]] = {symbol: {} for symbol in drafts}
    for code, ballot in ballots:
        count_ballot(counted, code, ballot)
    return counted


def count_ballot(counted: dict[str, dict[str, CountedBallot]], code: str, ballot: CountedBallot) -> None:
    """Count one more ballot of the delegation into `counted` (as `counted_ballots` gives it): for each draft it
    answers, it counts if no later one of the delegation's does, whatever order the ballots come in.

    The service counts each ballot it records into what it holds of the
    delegation's, so that a receipt costs the same however many ballots the
    delegation has sent before it.
    """
    for symbol in ballot.choices:
        per_delegation = counted.get(symbol)
        if per_delegation is None:
            continue
        held = per_delegation.get(code)
        if held is None or (held.received_at, held.order) < (ballot.received_at, ballot.order):
            per_delegation[code] = ballot


def received_times(counted: Mapping[str, Mapping[str, CountedBallot]]) -> dict[str, dict[str, datetime]]:
    """When each counted ballot was received, per draft and delegation: the time of each objection to a silence."""
    return {symbol: {code: ballot.received_at for code, ballot in per.items()} for symbol, per in counted.items()}


def counted_choices(
    ballots: Iterable[tuple[str, CountedBallot]], drafts: Iterable[str]
) -> dict[str, dict[str, Choice]]:
    """The choice that counts per draft and delegation (see `counted_ballots`)."""
    return {
        symbol: {code: Choice(ballot.choices[symbol]) for code, ballot in per_delegation.items()}
        for symbol, per_delegation in counted_ballots(ballots, drafts).items()
    }
