"""What the secretariat writes to a delegation about one of its messages, or about a vote: pure text.

Receipts quote what was recorded and the message's SHA-256, so that each
delegation can find its own ballot in the published audit bundle; rejections
say exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from voting.model import Delegation
from voting.quoting import quoted_lines
from voting.reasons import Reason
from voting.times import readable_time
from voting.wording import ENGLISH, Wording
from voting.verdict import BALLOT, STATEMENT, Judgement


class Letter(NamedTuple):
    subject: str
    text: str


class Received(NamedTuple):
    """A message as the ledger holds it: its SHA-256 and the mail server's receipt time."""

    sha256: str
    received_at: datetime


class Standing(NamedTuple):
    """A delegation's vote as it stands once a message is decided: what its answer states, so that a
    delegate never has to work out from several receipts which choice counts."""

    drafts: tuple[str, ...]
    before: Mapping[str, tuple[str, Received]]
    """Draft -> (choice, ballot) that counted before this message."""
    after: Mapping[str, tuple[str, Received]]
    """Draft -> (choice, ballot) that counts now."""
    closes_at: datetime
    first_ballot_final: bool
    counted: bool
    """The vote was already counted: nothing can change."""
    silence: bool = False
    """Under the silence procedure: a no is an objection, anything else leaves silence unbroken."""


def _said(choice: str, silence: bool, words: Wording) -> str:
    """A choice as the delegate should read it, in its language: under the silence procedure, an objection or none."""
    said = words(f"choices.{choice}")
    if not silence:
        return said
    return words("choices.objection") if choice == "no" else words("choices.unbroken", choice=said)


def _standing_lines(standing: Standing, message: Received, zones: Sequence[str | None], words: Wording) -> list[str]:
    if not standing.after:
        lines = [words("standing.none_yet")]
    else:
        lines = [words("standing.heading")]
        for symbol in standing.drafts:
            if symbol not in standing.after:
                lines.append(f"  {symbol}: {words('standing.no_choice')}")
                continue
            chosen, ballot = standing.after[symbol]
            source = words("standing.this_message") if ballot.sha256 == message.sha256 else words(
                "standing.earlier", when=readable_time(ballot.received_at, zones, words), sha256=ballot.sha256[:16])
            lines.append(f"  {symbol}: {_said(chosen, standing.silence, words)}  ({source})")
    changed = [
        words("standing.change", symbol=symbol, after=_said(standing.after[symbol][0], standing.silence, words),
              before=_said(standing.before[symbol][0], standing.silence, words) if symbol in standing.before
              else words("standing.no_choice"))
        for symbol in standing.drafts
        if symbol in standing.after and standing.after[symbol][1].sha256 == message.sha256
        and standing.before.get(symbol, ("", None))[0] != standing.after[symbol][0]
    ]
    if changed:
        lines.extend(["", words("standing.changed", changes="; ".join(changed))])
    if standing.counted:
        return lines + ["", words("standing.counted")]
    lines.extend(["", words("standing.closes", deadline=readable_time(standing.closes_at, zones, words)),
                  *([words("standing.silence")] if standing.silence else []),
                  words("standing.final" if standing.first_ballot_final else "standing.changeable")])
    return lines


def answer(judgement: Judgement, delegation: Delegation, message: Received, superseded: Received | None,
           zones: Sequence[str | None] = (), standing: Standing | None = None, words: Wording = ENGLISH) -> Letter:
    """The receipt of a ballot or a statement, or the rejection of a message, for the delegation it concerns, in
    its language; times also in each of `zones` (the delegation's, the secretariat's); for a message bound to a
    vote, the delegation's vote as it then stands."""
    vote_id = judgement.vote_id
    who = {"code": delegation.code, "delegation": delegation.label_in(words.language), "vote_id": vote_id}
    if judgement.verdict == BALLOT:
        subject = words("answer.ballot_subject", **who)
        lines = [words("answer.ballot_recorded", **who), ""]
        silence = standing is not None and standing.silence
        lines.extend(f"  {symbol}: {_said(choice, silence, words)}" for symbol, choice in judgement.choices.items())
        if judgement.explanation:
            breaking = silence and "no" in judgement.choices.values()
            heading = words("answer.breaking" if breaking else "answer.explanation")
            lines.extend(["", heading, *quoted_lines(judgement.explanation)])
    elif judgement.verdict == STATEMENT:
        subject = words("answer.statement_subject", **who)
        lines = [words("answer.statement_recorded", **who), "", judgement.detail,
                 "", words("answer.explanation"), *quoted_lines(judgement.explanation)]
    else:
        subject = words("answer.rejected_subject", **who) + (f" [{vote_id}]" if vote_id else "")
        reason = judgement.reason or Reason.MALFORMED_MIME
        lines = [words("answer.signed_by" if judgement.code == delegation.code else "answer.sent_from", **who), "",
                 words("answer.reason", reason=reason.value), judgement.detail]
        if standing is not None and not standing.counted:
            lines.extend(["", words("answer.correct_it", deadline=readable_time(standing.closes_at, zones, words))])
        elif standing is None:
            lines.extend(["", words("answer.if_meant", **who)])
    if standing is not None and judgement.verdict != STATEMENT:
        lines.extend(["", *_standing_lines(standing, message, zones, words)])
    if judgement.ignored:
        lines.extend(["", words("answer.ignored"), *quoted_lines(_first_lines(judgement.ignored))])
    lines.extend([
        "",
        words("answer.sha256", sha256=message.sha256),
        words("answer.received", when=readable_time(message.received_at, zones, words)),
    ])
    if superseded is not None:
        lines.append(words("answer.supersedes", when=readable_time(superseded.received_at, zones, words),
                           sha256=superseded.sha256))
    return Letter(subject, "\n".join(lines) + "\n")


def _first_lines(text: str, count: int = 3, width: int = 200) -> str:
    """Enough of a text for its writer to recognise it."""
    lines = text.splitlines()
    shown = [line if len(line) <= width else line[:width] + "…" for line in lines[:count]]
    return "\n".join(shown + (["…"] if len(lines) > count else []))


def deadline_moved(vote_id: str, title: str, old: datetime, new: datetime, zones: Sequence[str | None] = (),
                   words: Wording = ENGLISH) -> Letter:
    about = {"vote_id": vote_id, "title": title}
    lines = [words("moved.text", **about), "",
             words("moved.new", deadline=readable_time(new, zones, words)),
             words("moved.old", deadline=readable_time(old, zones, words)), "",
             words("moved.unchanged")]
    return Letter(words("moved.subject", **about), "\n".join(lines) + "\n")


def observer_notice(vote_id: str, title: str, rule: str, closes_at: datetime, drafts: Sequence[str],
                    zones: Sequence[str | None] = (), words: Wording = ENGLISH) -> Letter:
    """What an observer is told when a vote opens: the drafts as the ballots show them (`drafts.draft_lines`),
    the rule and the deadline; never a ballot token."""
    about = {"vote_id": vote_id, "title": title}
    lines = [
        words("observer.text", **about),
        "",
        words("observer.role"),
        "",
        f"Vote-ID: {vote_id}",
        words("vote.rule", rule=rule),
        words("vote.closes", deadline=readable_time(closes_at, zones, words)),
        "",
        words("ballot.drafts"),
        *drafts,
    ]
    return Letter(words("observer.subject", **about), "\n".join(lines) + "\n")


def reminder(vote_id: str, title: str, delegation: Delegation, missing: Sequence[tuple[str, str]],
             closes_at: datetime, zones: Sequence[str | None] = (), words: Wording = ENGLISH) -> Letter:
    """A reminder to a delegation that has not voted yet on the `missing` drafts (symbol, title), with what to do."""
    about = {"vote_id": vote_id, "title": title}
    lines = [
        words("reminder.text", deadline=readable_time(closes_at, zones, words), **about),
        "",
        words("reminder.not_yet", delegation=delegation.label_in(words.language)),
        *(f"  {symbol}: {draft_title}" for symbol, draft_title in missing),
        "",
        words("reminder.how", example=missing[0][0], **about),
        words("reminder.again"),
        words("reminder.absent"),
        "",
        f"Vote-ID: {vote_id}",
    ]
    return Letter(words("reminder.subject", deadline=readable_time(closes_at, (), words), **about),
                  "\n".join(lines) + "\n")


def no_open_ballot(delegation: Delegation, words: Wording = ENGLISH) -> Letter:
    """The answer to a request for ballots when no vote is open to the delegation."""
    who = {"code": delegation.code, "delegation": delegation.label_in(words.language)}
    return Letter(words("no_ballot.subject", **who), words("no_ballot.text", **who) + "\n")
