"""The closed set of reasons a message is rejected, and their words.

The same codes appear in the ledger, in rejection emails, in `verify-mail`
output and in the audit bundle, so they are stable strings.
"""

from enum import StrEnum
from typing import Any


class Reason(StrEnum):
    # The message as a whole
    MALFORMED_MIME = "malformed-mime"
    TOO_LARGE = "too-large"
    TOO_COMPLEX = "too-complex"
    NOT_SIGNED = "not-signed"
    NOT_ENTIRELY_SIGNED = "not-entirely-signed"
    ENCRYPTED = "encrypted"
    # The CMS signature
    BAD_CMS_STRUCTURE = "bad-cms-structure"
    BAD_SIGNED_ATTRIBUTES = "bad-signed-attributes"
    BAD_SIGNATURE = "bad-signature"
    WEAK_DIGEST = "weak-digest"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    WEAK_KEY = "weak-key"
    NO_SIGNER_CERTIFICATE = "no-signer-certificate"
    # The signer
    UNKNOWN_SIGNER = "unknown-signer"
    UNTRUSTED_CHAIN = "untrusted-chain"
    REVOKED_CERTIFICATE = "revoked-certificate"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_YET_VALID = "certificate-not-yet-valid"
    NOT_FOR_EMAIL = "not-for-email-protection"
    NO_MAILBOX = "no-mailbox"
    FROM_MISMATCH = "from-mismatch"
    # The ballot
    UNKNOWN_VOTE = "unknown-vote"
    WRONG_BALLOT_TOKEN = "wrong-ballot-token"
    NO_CHOICE = "no-choice"
    CONFLICTING_CHOICES = "conflicting-choices"
    UNKNOWN_DRAFT = "unknown-draft"
    REPLAYED = "replayed"
    LATE = "late"
    BALLOT_FINAL = "ballot-final"
    UNREADABLE = "unreadable"

    def describe(self) -> str:
        """The sentence a delegation reads in its rejection email."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[Reason, str] = {
    Reason.MALFORMED_MIME: "The message could not be read as MIME.",
    Reason.TOO_LARGE: "The message, or its header block, is larger than a ballot may be.",
    Reason.TOO_COMPLEX: (
        "The message has more MIME parts, header fields, levels of nesting or signature elements than are read: "
        "send the ballot as a plain signed reply, without attachments."
    ),
    Reason.NOT_SIGNED: "The message carries no S/MIME signature.",
    Reason.NOT_ENTIRELY_SIGNED: (
        "The signature does not cover the whole message: the signed part is wrapped in, "
        "or sits beside, unsigned content."
    ),
    Reason.ENCRYPTED: (
        "The message is encrypted and could not be opened into a signed ballot: encrypt it to the secretariat's"
        " certificate with AES (GCM preferred), after signing it."
    ),
    Reason.BAD_CMS_STRUCTURE: (
        "The signature is not a well-formed CMS SignedData with exactly one signer "
        "(or carries embedded content in a detached signature)."
    ),
    Reason.BAD_SIGNED_ATTRIBUTES: (
        "The signature's signed attributes are missing, duplicated or do not match the content."
    ),
    Reason.BAD_SIGNATURE: "The signature does not match the signed content: it was altered in transit or forged.",
    Reason.WEAK_DIGEST: "The signature uses a digest that is no longer accepted (SHA-1 or MD5).",
    Reason.UNSUPPORTED_ALGORITHM: "The signature uses an algorithm that is not accepted.",
    Reason.WEAK_KEY: "The signing key is too small (RSA keys need at least 2048 bits).",
    Reason.NO_SIGNER_CERTIFICATE: "The signer's certificate is not in the message and is not registered.",
    Reason.UNKNOWN_SIGNER: "The signing certificate is not registered to any delegation.",
    Reason.UNTRUSTED_CHAIN: "The signing certificate does not chain to the trusted certification authority.",
    Reason.REVOKED_CERTIFICATE: "The signing certificate has been revoked.",
    Reason.CERTIFICATE_EXPIRED: "The signing certificate had expired when the message was received.",
    Reason.CERTIFICATE_NOT_YET_VALID: "The signing certificate was not yet valid when the message was received.",
    Reason.NOT_FOR_EMAIL: "The signing certificate is not allowed for email protection.",
    Reason.NO_MAILBOX: "The signing certificate names no email address.",
    Reason.FROM_MISMATCH: (
        "The From header must hold exactly one address, and it must be an address of the signing certificate."
    ),
    Reason.UNKNOWN_VOTE: "The signed text names no vote that is open (the Vote-ID line of the ballot is missing).",
    Reason.WRONG_BALLOT_TOKEN: (
        "The signed text does not carry this delegation's ballot token for this vote."
    ),
    Reason.NO_CHOICE: 'No choice was found: write each choice on a line of its own as "SYMBOL: YES", NO or ABSTAIN.',
    Reason.CONFLICTING_CHOICES: "Two different choices were given for the same draft.",
    Reason.UNKNOWN_DRAFT: "A choice names a draft that is not on the ballot.",
    Reason.REPLAYED: (
        "This signed ballot was recorded before; a copy of it, however delivered, does not count again."
    ),
    Reason.LATE: "The message was received after the vote closed.",
    Reason.BALLOT_FINAL: (
        "This vote was opened with the first ballot final, and a ballot was already recorded for this draft."
    ),
    Reason.UNREADABLE: (
        "The secretariat could not process this message. It is kept as received; if it was a ballot, send it "
        "again before the deadline as plain text, signed."
    ),
}


class Rejected(Exception):
    """A check failed: its reason, the particulars to tell (or ""), and what was learnt so far."""

    def __init__(self, reason: Reason, detail: str = "", **known: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail
        self.known = known
