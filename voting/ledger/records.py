"""The rows of the ledger as values: what it is given to keep, and what it hands back."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple


class IncomingMessage(NamedTuple):
    """A message as it arrived, before the ledger holds it: its exact bytes, receipt time and where it came from."""

    raw: bytes
    received_at: datetime
    source: str


class StoredMessage(NamedTuple):
    id: int
    sha256: str
    received_at: datetime
    source: str
    new: bool = False


class VoteRecord(NamedTuple):
    id: str
    title: str
    rule: str
    opened_at: datetime
    closes_at: datetime
    closed_at: datetime | None
    first_ballot_final: bool
    quorum: int | None
    statement_hours: float
    electorate_json: str
    outcome: dict[str, Any] | None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class DraftRecord(NamedTuple):
    symbol: str
    title: str
    text: str
    """The draft's text, when the file is UTF-8 text; "" for a PDF, a Word document or any other file."""
    sha256: str
    """SHA-256 of `content`: the file exactly as the secretariat was given it."""
    parties_to_dispute: tuple[str, ...]
    file_name: str
    media_type: str
    content: bytes
    sponsors: tuple[str, ...] = ()
    """Who put the draft forward: delegation codes, or names of sponsors from outside the electorate."""


class DecisionRecord(NamedTuple):
    """A decision as the ledger holds it.

    A named tuple rather than a frozen dataclass: a check of a large vote
    builds one per decision, at a fifth of the cost.
    """

    message: int
    sha256: str
    received_at: datetime
    vote_id: str | None
    code: str | None
    verdict: str
    reason: str | None
    detail: str
    choices: dict[str, str]
    explanation: str
    supersedes: int | None
    signed_sha256: str | None
    """For a ballot, `Verification.signed_sha256`; None for one taken in before schema 3 that no key could read."""
    received_text: str
    """`received_at` as stored (`utc_text`); with `choices_json`, what the check writes the chain's text of the
    decision from, without writing either again."""
    choices_json: str
    """`choices` as stored (`canonical_json`)."""


class MailboxStatus(NamedTuple):
    """What the service last knew of its mailbox, for `voting status`."""

    mailbox: str
    connection: str
    since: datetime
    last_fetch_at: datetime | None
    last_fetch_new: int
    last_error: str
    last_error_at: datetime | None


class OutgoingMail(NamedTuple):
    id: int
    message_id: str
    kind: str
    vote_id: str | None
    envelope_from: str
    recipients: tuple[str, ...]
    raw: bytes
    status: str
    attempts: int
    last_error: str


class MailNote(NamedTuple):
    """An outgoing message as `voting status` lists it: to whom, how often tried, the last error."""

    message_id: str
    recipients: tuple[str, ...]
    attempts: int
    last_error: str
