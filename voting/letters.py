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
            lines.append(f"  {symbol}: {choice.upper()}  ({source})")
    changed = [
        f"{symbol} (was {standing.before[symbol][0].upper() if symbol in standing.before else 'no choice'},"
        f" now {standing.after[symbol][0].upper()})"
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


def observer_notice(vote_id: str, title: str, rule: str, closes_at: datetime, drafts: Sequence[str],
                    zones: Sequence[str | None] = ()) -> Letter:
    """What an observer is told when a vote opens: the drafts as the ballots show them (`drafts.draft_lines`),
    the rule and the deadline; never a ballot token."""
    lines = [
        f"Vote {vote_id} ({title}) is open.",
        "",
        "You are an observer of this vote: you receive this notice and the results, and you cannot vote."
        " Mail from your address is not counted.",
        "",
        f"Vote-ID: {vote_id}",
        f"Rule: {rule}",
        f"Closes: {readable_time(closes_at, zones)}",
        "",
        "The drafts voted on, in full (each file is also attached as it was circulated):",
        *drafts,
    ]
    return Letter(f"Observer notice: {title} [{vote_id}]", "\n".join(lines) + "\n")


def reminder(vote_id: str, title: str, delegation: Delegation, missing: Sequence[tuple[str, str]],
             closes_at: datetime, zones: Sequence[str | None] = ()) -> Letter:
    """A reminder to a delegation that has not voted yet on the `missing` drafts (symbol, title), with what to do."""
    deadline = readable_time(closes_at, zones)
    drafts = "".join(f"  {symbol}: {draft_title}\n" for symbol, draft_title in missing)
    return Letter(
        f"Reminder: {title} [{vote_id}] closes {readable_time(closes_at)}",
        f"Vote {vote_id} ({title}) closes {deadline}.\n\n"
        f"No ballot of {delegation.label} is recorded yet on:\n{drafts}\n"
        f'To vote, reply to your ballot (subject "Ballot: {title} [{vote_id}]") with a reply signed with your'
        ' S/MIME certificate, keeping the ballot quoted, with each choice on a line of its own, for example'
        f' "{missing[0][0]}: YES" (or NO, or ABSTAIN).\n'
        "If you cannot find the ballot, reply to this message, signed, with the word BALLOT on a line of its own:"
        " the same ballot is sent to you again.\n"
        "A delegation that has not voted by the deadline is counted as absent; replies received after it are not"
        " counted.\n\n"
        f"Vote-ID: {vote_id}\n",
    )


def no_open_ballot(delegation: Delegation) -> Letter:
    """The answer to a request for ballots when no vote is open to the delegation."""
    return Letter(
        f"No open ballot for {delegation.code}",
        f"A signed request of {delegation.label} for its ballots was received, but no vote is open to it now:"
        " there is no ballot to send again.\n",
    )
