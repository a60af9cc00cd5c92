"""Building the manifest of a closed vote from what the ledger holds (`voting export`)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from cryptography import x509

from voting.errors import LedgerError, UsageError
from voting.ledger import DecisionRecord, DraftRecord, Event, VoteRecord
from voting.manifest import (
    FORMAT,
    ChainInfo,
    CountedEntry,
    DecryptedEntry,
    DraftEntry,
    ElectorateInfo,
    EventEntry,
    Manifest,
    MessageEntry,
    OutcomeEntry,
    VoteInfo,
)
from voting.model import Choice, Electorate
from voting.pki import certificate_pem, fingerprint
from voting.smime.decrypt import Decrypted


def build_manifest(
    *,
    vote: VoteRecord,
    drafts: Sequence[DraftRecord],
    bound: Sequence[DecisionRecord],
    unbound: Sequence[DecisionRecord],
    tokens: Mapping[str, str],
    electorate: Electorate,
    secretariat_ca: x509.Certificate,
    signer: x509.Certificate,
    events: Sequence[Event],
    exported_at: datetime,
) -> Manifest:
    """The manifest of a closed vote.

    `bound` are the decisions on messages bound to the vote; of `unbound`
    (messages bound to no vote), those the service also recorded in this vote's
    chain are listed too: those received while it was open or taking
    statements, since any of them may have been a ballot for it that failed
    before it could be bound.
    """
    if vote.closed_at is None or vote.outcome is None:
        raise UsageError(f"vote {vote.id} is still open; it can be exported once it is closed")
    closing = next((e for e in events if e.kind == "vote-closed"), None)
    if closing is None:
        raise LedgerError(f"vote {vote.id} is closed but its chain has no vote-closed event")
    info = VoteInfo(
        id=vote.id,
        title=vote.title,
        rule=vote.rule,
        opened_at=vote.opened_at,
        closes_at=vote.closes_at,
        closed_at=vote.closed_at,
        first_ballot_final=vote.first_ballot_final,
        quorum=vote.quorum,
        statement_hours=vote.statement_hours,
    )
    data = [e.data for e in events]  # each event's decoded once
    chained = {d.get("message") for e, d in zip(events, data) if e.kind == "decision"}
    listed = sorted([*bound, *(d for d in unbound if d.sha256 in chained)], key=lambda d: (d.received_at, d.message))
    sha_of = {d.message: d.sha256 for d in bound}
    choices_of = {d.sha256: d.choices for d in bound}
    counted: dict[str, dict[str, str]] = closing.data["counted"]
    return Manifest(
        format=FORMAT,
        exported_at=exported_at,
        vote=info,
        drafts=[
            DraftEntry(symbol=d.symbol, title=d.title, text=d.text, sha256=d.sha256, parties=list(d.parties_to_dispute),
                       file_name=d.file_name, media_type=d.media_type, sponsors=list(d.sponsors))
            for d in drafts
        ],
        electorate=ElectorateInfo(snapshot_json=vote.electorate_json, current=electorate),
        secretariat_ca_pem=certificate_pem(secretariat_ca),
        signer_sha256=fingerprint(signer),
        ballot_tokens=dict(tokens),
        messages=[_message_entry(d, sha_of) for d in listed],
        counted={
            symbol: {
                code: CountedEntry(message=sha, choice=Choice(choices_of[sha][symbol])) for code, sha in codes.items()
            }
            for symbol, codes in counted.items()
        },
        outcomes={symbol: OutcomeEntry.model_validate(o) for symbol, o in vote.outcome.items()},
        chain=ChainInfo(
            events=[EventEntry(seq=e.seq, at=e.at, kind=e.kind, data=d, prev_hash=e.prev_hash, hash=e.hash)
                    for e, d in zip(events, data)],
            head=events[-1].hash,
        ),
    )


def with_decrypted(manifest: Manifest, opened: Mapping[str, Decrypted]) -> Manifest:
    """The manifest with each message encrypted to the secretariat naming its decrypted entity and content key.

    `opened` maps a message's SHA-256 to its opened envelope. The content key
    opens that one message only, so an auditor, who holds no private key,
    can decrypt it and check that the decrypted entity is what was sent.
    """
    def entry(message: MessageEntry) -> MessageEntry:
        found = opened.get(message.sha256)
        if found is None:
            return message
        decrypted = DecryptedEntry(sha256=hashlib.sha256(found.entity).hexdigest(), content_key=found.content_key.hex())
        return message.model_copy(update={"decrypted": decrypted})

    return manifest.model_copy(update={"messages": [entry(message) for message in manifest.messages]})


def _message_entry(decision: DecisionRecord, sha_of: Mapping[int, str]) -> MessageEntry:
    if decision.supersedes is not None and decision.supersedes not in sha_of:
        raise LedgerError(f"message {decision.sha256} supersedes message {decision.supersedes}, not of this vote")
    return MessageEntry(
        sha256=decision.sha256,
        received_at=decision.received_at,
        vote_id=decision.vote_id,
        code=decision.code,
        verdict=decision.verdict,  # type: ignore[arg-type]  # the ledger's CHECK constraint keeps it to the four
        reason=decision.reason,  # type: ignore[arg-type]  # a Reason value, validated by the model
        detail=decision.detail,
        choices=decision.choices,  # type: ignore[arg-type]
        explanation=decision.explanation,
        supersedes=sha_of[decision.supersedes] if decision.supersedes is not None else None,
        signed_sha256=decision.signed_sha256,
    )
