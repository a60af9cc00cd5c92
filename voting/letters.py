"""What the secretariat writes to a delegation about one of its messages, or about a vote: pure text.

Receipts quote what was recorded and the message's SHA-256, so that each
delegation can find its own ballot in the published audit bundle; rejections
say exactly why.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def answer(judgement: Judgement, delegation: Delegation, message: Received, superseded: Received | None,
           zones: Sequence[str | None] = ()) -> Letter:
    """The receipt of a ballot or a statement, or the rejection of a message, for the delegation it concerns;
    times also in each of `zones` (the delegation's, the secretariat's)."""
    vote_id = judgement.vote_id
    if judgement.verdict == BALLOT:
        subject = f"Receipt: ballot of {delegation.code} recorded [{vote_id}]"
        lines = [f"The ballot of {delegation.label} in vote {vote_id} was recorded:", ""]
        lines.extend(f"  {symbol}: {choice.upper()}" for symbol, choice in judgement.choices.items())
        if judgement.explanation:
            lines.extend(["", "Explanation of vote:", *quoted_lines(judgement.explanation)])
    elif judgement.verdict == STATEMENT:
        subject = f"Receipt: statement of {delegation.code} recorded [{vote_id}]"
        lines = [f"The statement of {delegation.label} in vote {vote_id} was recorded.", "", judgement.detail,
                 "", "Explanation of vote:", *quoted_lines(judgement.explanation)]
    else:
        subject = f"Rejected: message from {delegation.code} not recorded as a ballot" + (
            f" [{vote_id}]" if vote_id else "")
        reason = judgement.reason or Reason.MALFORMED_MIME
        lines = [f"A message attributed to {delegation.label} was received but NOT counted.", "",
                 f"Reason: {reason.value}", judgement.detail]
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
