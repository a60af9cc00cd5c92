"""The ledger: one SQLite file (WAL, synchronous=FULL) that is the service's memory.

Raw messages are committed before anything else happens to them; decisions,
the chain events that record them and the mail that answers them are written
in one transaction. Every event is appended to a hash chain (one chain per
vote, and one for messages not yet bound to a vote), so that removing or
changing a recorded event is detectable.

The `Ledger` is built in stages, each a class in the module named after
it that builds on the ones before: `store` (the file, transactions,
snapshots, the chain's appends), `messages`, `votes`, `decisions`,
`outgoing`. `schema` holds its tables and migrations, `chain` what the
chain is made of, `records` its rows as values.
"""

from __future__ import annotations

from voting.ledger.chain import (
    CHAINED_LATER,
    GENESIS,
    Event,
    canonical_json,
    decision_differences,
    decision_event_data,
    decision_event_json,
    event_hash,
    parse_utc,
    stored_json,
    utc_text,
)
from voting.ledger.outgoing import Outgoing
from voting.ledger.records import (
    DecisionRecord,
    DraftRecord,
    IncomingMessage,
    MailboxStatus,
    MailNote,
    OutgoingMail,
    StoredMessage,
    VoteRecord,
)
from voting.ledger.schema import SCHEMA, SCHEMA_VERSION

__all__ = ["CHAINED_LATER", "GENESIS", "SCHEMA", "SCHEMA_VERSION", "DecisionRecord", "DraftRecord", "Event",
           "IncomingMessage", "Ledger", "MailNote", "MailboxStatus", "OutgoingMail", "StoredMessage", "VoteRecord",
           "canonical_json", "decision_differences", "decision_event_data", "decision_event_json", "event_hash",
           "parse_utc", "stored_json", "utc_text"]


class Ledger(Outgoing):
    """The whole ledger: every stage of it, over one SQLite connection."""
