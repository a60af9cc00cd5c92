"""What the secretariat writes to a delegation about one of its messages, or about a vote: pure text.

Receipts quote what was recorded and the message's SHA-256, so that each
delegation can find its own ballot in the published audit bundle; rejections
say exactly why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from voting.model import Delegation
from voting.quoting import quoted_lines
from voting.reasons import Reason
from voting.times import readable_time
from voting.verdict import BALLOT, STATEMENT, Judgement


@dataclass(frozen=True)
class Letter:
    subject: str
    text: str


@dataclass(frozen=True)
class Received:
    """A message as the ledger holds it: its SHA-256 and the mail server's receipt time."""

    sha256: str
    received_at: datetime


@dataclass(frozen=True)
class Standing:
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


def _said(choice: str, silence: bool) -> str:
    """A choice as the delegate should read it: under the silence procedure, an objection or none."""
    if not silence:
        return choice.upper()
    return "OBJECTION (breaks silence)" if choice == "no" else f"{choice.upper()} (no objection: silence unbroken)"


def _standing_lines(standing: Standing, message: Received, zones: Sequence[str | None]) -> list[str]:
    if not standing.after:
        lines = ["No ballot of yours counts in this vote yet."]
    else:
        lines = ["Your vote as it now stands (what counts at the close):"]
        for symbol in standing.drafts:
            if symbol not in standing.after:
                lines.append(f"  {symbol}: no choice yet")
                continue
            choice, ballot = standing.after[symbol]
            source = "this message" if ballot.sha256 == message.sha256 else (
                f"your ballot received {readable_time(ballot.received_at, zones)}, SHA-256 {ballot.sha256[:16]}…")
            lines.append(f"  {symbol}: {_said(choice, standing.silence)}  ({source})")
    changed = [
        f"{symbol} (was {_said(standing.before[symbol][0], standing.silence) if symbol in standing.before else 'no choice'},"
        f" now {_said(standing.after[symbol][0], standing.silence)})"
        for symbol in standing.drafts
        if symbol in standing.after and standing.after[symbol][1].sha256 == message.sha256
        and standing.before.get(symbol, ("", None))[0] != standing.after[symbol][0]
    ]
    if changed:
        lines.extend(["", "This message changed: " + "; ".join(changed) + "."])
    if standing.counted:
        return lines + ["", "The vote has been counted; nothing can change it now."]
    deadline = readable_time(standing.closes_at, zones)
    lines.extend(["", f"The vote closes {deadline}."])
    if standing.silence:
        lines.append("Silence procedure: a draft no member objects to by then is adopted.")
    if standing.first_ballot_final:
        lines.append("The first ballot on each draft is final: a draft already answered cannot be answered again.")
    else:
        lines.append("Until then you may change your vote by replying to the ballot again: your last ballot counts.")
    return lines


def answer(judgement: Judgement, delegation: Delegation, message: Received, superseded: Received | None,
           zones: Sequence[str | None] = (), standing: Standing | None = None) -> Letter:
    """The receipt of a ballot or a statement, or the rejection of a message, for the delegation it concerns;
    times also in each of `zones` (the delegation's, the secretariat's); for a message bound to a vote, the
    delegation's vote as it then stands."""
    vote_id = judgement.vote_id
    if judgement.verdict == BALLOT:
        subject = f"Receipt: ballot of {delegation.code} recorded [{vote_id}]"
        lines = [f"The ballot of {delegation.label} in vote {vote_id} was recorded:", ""]
        silence = standing is not None and standing.silence
        lines.extend(f"  {symbol}: {_said(choice, silence)}" for symbol, choice in judgement.choices.items())
        if judgement.explanation:
            breaking = silence and "no" in judgement.choices.values()
            heading = "Letter breaking silence, published with the result:" if breaking else "Explanation of vote:"
            lines.extend(["", heading, *quoted_lines(judgement.explanation)])
    elif judgement.verdict == STATEMENT:
        subject = f"Receipt: statement of {delegation.code} recorded [{vote_id}]"
        lines = [f"The statement of {delegation.label} in vote {vote_id} was recorded.", "", judgement.detail,
                 "", "Explanation of vote:", *quoted_lines(judgement.explanation)]
    else:
        subject = f"Rejected: message from {delegation.code} not recorded as a ballot" + (
            f" [{vote_id}]" if vote_id else "")
        reason = judgement.reason or Reason.MALFORMED_MIME
        who = (f"A message signed by {delegation.label}" if judgement.code == delegation.code else
               f"A message sent from an address of {delegation.label}, but not signed with a certificate registered"
               " to it, so attributed to no delegation,")
        lines = [f"{who} was received but NOT counted.", "",
                 f"Reason: {reason.value}", judgement.detail]
        if standing is not None and not standing.counted:
            lines.extend(["", "To vote, reply to the ballot again with a signed reply that corrects this,"
                              f" before {readable_time(standing.closes_at, zones)}."])
        elif standing is None:
            lines.extend(["", "If this was meant as a ballot: reply to the ballot email from your mail client, keep"
                              f" the ballot quoted, and sign the reply with the certificate registered for"
                              f" {delegation.code}. This message changes nothing already recorded: a ballot of"
                              " yours already counted still stands."])
    if standing is not None and judgement.verdict != STATEMENT:
        lines.extend(["", *_standing_lines(standing, message, zones)])
    if judgement.ignored:
        lines.extend(["", 'Other text of your reply, not under an "Explanation:" line, is kept with it but was not'
                          " published:", *quoted_lines(_first_lines(judgement.ignored))])
    lines.extend([
        "",
        f"SHA-256 of the message as received: {message.sha256}",
        f"Received by the secretariat's mail server: {readable_time(message.received_at, zones)}",
    ])
    if superseded is not None:
        lines.append(f"This ballot supersedes the ballot received {readable_time(superseded.received_at, zones)}"
                     f" (SHA-256 {superseded.sha256}).")
    return Letter(subject, "\n".join(lines) + "\n")


def _first_lines(text: str, count: int = 3, width: int = 200) -> str:
    """Enough of a text for its writer to recognise it."""
    lines = text.splitlines()
    shown = [line if len(line) <= width else line[:width] + "…" for line in lines[:count]]
    return "\n".join(shown + (["…"] if len(lines) > count else []))


def deadline_moved(vote_id: str, title: str, old: datetime, new: datetime, zones: Sequence[str | None] = ()) -> Letter:
    return Letter(
        f"Deadline moved: {title} [{vote_id}]",
        f"The deadline of vote {vote_id} ({title}) has been moved.\n\n"
        f"New deadline: {readable_time(new, zones)}\n"
        f"It was: {readable_time(old, zones)}\n\n"
        "Your ballot and its token are unchanged; a ballot already recorded stands.\n",
    )
