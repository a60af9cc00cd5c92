"""The audit bundle's manifest.json, defined once (docs/audit.md).

These pydantic models are the format: `voting export` writes them, `voting
audit` reads them, and `docs/audit-manifest.schema.json` is generated from
them (`python -m voting.manifest > docs/audit-manifest.schema.json`), so that
anyone can write an independent verifier. docs/audit.md explains each field.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from voting.ledger import canonical_json
from voting.model import Choice, Electorate
from voting.pki import SECRETARIAT_SIGNING
from voting.reasons import Reason

FORMAT: Final = "voting-audit-bundle/1"
MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.json.p7s"
MESSAGES_DIRECTORY = "messages/"
DRAFTS_DIRECTORY = "drafts/"

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest in lowercase hex."""


def message_member(sha256: str) -> str:
    """Zip member holding a message's raw bytes: named by their SHA-256."""
    return f"{MESSAGES_DIRECTORY}{sha256}.eml"


def draft_member(sha256: str) -> str:
    """Zip member holding a draft's file exactly as circulated: named by its SHA-256."""
    return f"{DRAFTS_DIRECTORY}{sha256}"


def decrypted_member(sha256: str) -> str:
    """Zip member holding the decrypted entity of the encrypted message whose raw bytes hash to `sha256`."""
    return f"{MESSAGES_DIRECTORY}{sha256}.decrypted.eml"


class _Strict(BaseModel):
    """Unknown keys are refused: a verifier must not silently skip what it does not understand."""

    model_config = ConfigDict(extra="forbid")


class VoteInfo(_Strict):
    id: str
    title: str
    rule: str = Field(description="Rule name of docs/design.md §4, e.g. unsc-substantive")
    opened_at: AwareDatetime
    closes_at: AwareDatetime = Field(description="The deadline in force when the vote closed")
    closed_at: AwareDatetime = Field(description="When the vote was closed; choices count if received before it")
    first_ballot_final: bool
    quorum: int | None
    statement_hours: float = Field(ge=0, description="Explanations of vote are accepted this long after closing")


class DraftEntry(_Strict):
    symbol: str
    title: str
    text: str = Field(description="The draft's text when its file is UTF-8 text (then exactly the file decoded), "
                      "else empty")
    sha256: Sha256 = Field(description="SHA-256 of the draft's file, held in the member drafts/<sha256>")
    parties: list[str] = Field(description="Parties to a dispute, who must abstain on this draft")
    file_name: str = Field(description="The file's name as circulated, attached to every ballot")
    media_type: str = Field(description="The file's media type: text/plain, application/pdf, ...")
    sponsors: list[str] = Field(
        default_factory=list,
        description="Who put the draft forward, as the vote-opened event records it: delegation codes of the "
        "electorate snapshot, or names of sponsors from outside it; absent when none were named",
    )

    @model_serializer(mode="wrap")
    def _without_no_sponsors(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A draft without sponsors is written as before sponsors were kept, byte for byte."""
        written: dict[str, Any] = handler(self)
        if not self.sponsors:
            written.pop("sponsors", None)
        return written


class ElectorateInfo(_Strict):
    snapshot_json: str = Field(
        description="The electorate as recorded when the vote opened, as the exact JSON text whose SHA-256 "
        "is the vote-opened event's electorate_sha256; it decides membership and the rule's thresholds",
        json_schema_extra={"contentMediaType": "application/json"},
    )
    current: Electorate = Field(
        description="The electorate when the bundle was made: every registered certificate with its revocation "
        "time; signatures are re-checked against it at each message's receipt time"
    )


class DecryptedEntry(_Strict):
    sha256: Sha256 = Field(
        description="SHA-256 of the decrypted entity, held in the member messages/<message sha256>.decrypted.eml"
    )
    content_key: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{2}){16,32}$")] = Field(
        description="The message's content-encryption key, lowercase hex: it opens this message's envelope and "
        "no other, so a verifier can decrypt the message itself and compare"
    )


class MessageEntry(_Strict):
    sha256: Sha256
    received_at: AwareDatetime = Field(description="Delivery time at the secretariat's mail server")
    vote_id: str | None = Field(description="The vote the message was bound to, or null if it was bound to none")
    code: str | None = Field(description="The delegation the message was attributed to, if any")
    verdict: Literal["ballot", "statement", "rejected", "request"] = Field(
        description="request: a signed request for the ballot again, answered with the same ballot, never counted"
    )
    reason: Reason | None = Field(description="Why a rejected message was rejected")
    detail: str = Field(description="The words sent to the delegation; informative, not re-checked")
    choices: dict[str, Choice] = Field(description="Draft symbol -> choice, for a ballot")
    explanation: str
    supersedes: Sha256 | None = Field(description="SHA-256 of the ballot this one replaced")
    signed_sha256: Sha256 | None = Field(
        default=None,
        description="For a counted ballot, SHA-256 of its signed attributes, by which a copy of it is recognised;"
                    " absent from bundles whose chain does not record it",
    )
    decrypted: DecryptedEntry | None = Field(
        default=None,
        description="For a message encrypted to the secretariat: its decrypted entity, whose signature was checked",
    )


class CountedEntry(_Strict):
    message: Sha256
    choice: Choice


class OutcomeEntry(_Strict):
    adopted: bool
    yes: int
    no: int
    abstain: int
    absent: int
    vetoed_by: list[str]
    reason: str


class EventEntry(_Strict):
    seq: int = Field(ge=1)
    at: str = Field(description="The event's time exactly as hashed")
    kind: str
    data: dict[str, Any]
    prev_hash: Sha256
    hash: Sha256

    @property
    def data_json(self) -> str:
        """`data` as the chain hashed it."""
        return canonical_json(self.data)


class ChainInfo(_Strict):
    events: list[EventEntry] = Field(description="Every event of the vote's hash chain, in order")
    head: Sha256


class Manifest(_Strict):
    format: Literal["voting-audit-bundle/1"]
    exported_at: AwareDatetime
    vote: VoteInfo
    drafts: list[DraftEntry]
    electorate: ElectorateInfo
    secretariat_ca_pem: str = Field(description="The secretariat CA certificate, PEM")
    signer_sha256: Sha256 = Field(
        description="SHA-256 of the DER certificate of the secretariat's signing identity, the one certificate "
        "that signs manifest.json.p7s and the results email; it carries the secretariat's signing role "
        f"(extended key usage {SECRETARIAT_SIGNING.dotted_string})"
    )
    ballot_tokens: dict[str, str] = Field(
        description="Delegation code -> its ballot token; each hashes to the vote-opened event's "
        "ballot_tokens_sha256 entry"
    )
    messages: list[MessageEntry] = Field(description="In order of receipt (received_at, then ledger order)")
    counted: dict[str, dict[str, CountedEntry]] = Field(
        description="Draft symbol -> delegation code -> the ballot whose choice counts"
    )
    outcomes: dict[str, OutcomeEntry]
    chain: ChainInfo


def manifest_bytes(manifest: Manifest) -> bytes:
    """The exact bytes written as manifest.json and signed."""
    return manifest.model_dump_json(indent=2).encode("utf-8") + b"\n"


def schema_text() -> str:
    """The published JSON Schema of manifest.json, as committed in docs/audit-manifest.schema.json."""
    schema = Manifest.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = FORMAT
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
