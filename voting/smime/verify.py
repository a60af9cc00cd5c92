"""Verifying a signed message or a detached signature: the signature, the signer and its trust, the From header.

Every failure maps to exactly one `Reason`, the first failing check winning,
so that the same message always gets the same answer. The signature is
checked with cryptography over the bytes `voting.smime.entity` sliced out,
reading the CMS through `voting.smime.cms`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property, lru_cache
from email import policy as email_policy
from email.errors import ObsoleteHeaderDefect
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from voting.mime import Headers, Part
from voting.pki import MIN_RSA_BITS, SIGNING_CURVES, Identity, fingerprint, mailboxes, smime_verifier
from voting.reasons import Reason, Rejected
from voting.smime.cms import (
    ECDSA,
    MALFORMED_DER,
    OID_SIGNED_DATA,
    RSA_PKCS1,
    RSA_PSS,
    WEAK_DIGESTS,
    ContentInfo,
    SignerId,
    SignerInfo,
    load_certificates,
    matches,
    read_content_info,
    read_signer_info,
    subject_key_ids,
)
from voting.smime.decrypt import ContentKey, Decrypted
from voting.smime.entity import opened

MAX_FROM_CHARS = 2048


@dataclass(frozen=True)
class TrustedCertificate:
    """A certificate the verifier knows, pinned by its SHA-256 fingerprint."""

    certificate: x509.Certificate
    owner: str | None = None
    revoked: bool = False
    chain_to_anchor: bool = False


@dataclass(frozen=True)
class Trust:
    """Whom the verifier believes: pinned certificates and trust anchors."""

    registered: tuple[TrustedCertificate, ...] = ()
    anchors: tuple[x509.Certificate, ...] = ()
    anchors_admit_unregistered: bool = True
    """An unregistered signer that chains to an anchor is trusted, with no owner.

    `verify-mail --ca` wants that; the service does not: there, only a
    certificate registered to a delegation can vote, and the anchors only
    vouch for the secretariat-issued ones among them.
    """

    @cached_property
    def index(self) -> TrustIndex:
        """The registered certificates by each way a signature names them, built on first use."""
        return TrustIndex.of(self.registered)


@dataclass(frozen=True)
class TrustIndex:
    """Where to find a registered certificate without comparing every one: by serial, key identifier and pin.

    A lookup gives only candidates, in the order of registration; `matches`
    still decides, so the index changes how fast a signer is found, never which.
    A certificate whose key identifiers cannot be read is a candidate for every
    key identifier, so that `matches` meets it and refuses as it always did.
    """

    registered: tuple[TrustedCertificate, ...]
    by_serial: Mapping[int, tuple[int, ...]]
    by_key_id: Mapping[bytes, tuple[int, ...]]
    unreadable_key_ids: tuple[int, ...]
    by_pin: Mapping[str, TrustedCertificate]

    @classmethod
    def of(cls, registered: Sequence[TrustedCertificate]) -> TrustIndex:
        by_serial: dict[int, list[int]] = {}
        by_key_id: dict[bytes, list[int]] = {}
        unreadable: list[int] = []
        by_pin: dict[str, TrustedCertificate] = {}
        for place, entry in enumerate(registered):
            by_serial.setdefault(entry.certificate.serial_number, []).append(place)
            try:
                key_ids = subject_key_ids(entry.certificate)
            except MALFORMED_DER:
                unreadable.append(place)
                key_ids = set()
            for key_id in key_ids:
                by_key_id.setdefault(key_id, []).append(place)
            by_pin.setdefault(fingerprint(entry.certificate), entry)
        return cls(tuple(registered), {k: tuple(v) for k, v in by_serial.items()},
                   {k: tuple(v) for k, v in by_key_id.items()}, tuple(unreadable), by_pin)

    def candidates(self, signer_id: SignerId) -> list[TrustedCertificate]:
        """The registered certificates the identifier may name (a superset of those it does), in registration order."""
        if signer_id.key_id is not None:
            places = sorted({*self.by_key_id.get(signer_id.key_id, ()), *self.unreadable_key_ids})
        else:
            places = list(self.by_serial.get(signer_id.serial, ()))
        return [self.registered[place] for place in places]


@dataclass(frozen=True)
class Verification:
    """The verdict on one signed message or detached signature.

    `owner` is set only when the signature is intact and its certificate is
    registered; `valid` is the only field that says a ballot may be counted.
    """

    valid: bool
    reason: Reason | None
    detail: str = ""
    """The particulars of `reason`, when there are any to tell (which bound a message exceeds)."""
    signature_intact: bool = False
    signer: x509.Certificate | None = None
    owner: str | None = None
    digest_algorithm: str | None = None
    signature_algorithm: str | None = None
    signing_time: datetime | None = None
    signed_content: bytes | None = None
    from_address: str | None = None
    decrypted: Decrypted | None = None
    """Set when the message was encrypted to us and opened: the signature checked is the one inside."""
    checked_at: datetime | None = None
    """The time the certificates were checked at (for a ballot, its receipt time)."""
    signed_parts: tuple[Part, ...] = field(default=(), compare=False, repr=False)
    """The entities of `signed_content` as verifying walked them, so that its text is read without walking it again."""
    signed_sha256: str | None = None
    """SHA-256 of the signed attributes exactly as signed: the digest of the content, the signing time.

    Only the signer fixes them, so every copy of a signed message has the same value however its
    signature is encoded (an ECDSA (r, s) is as valid as (r, n - s)); a new signing with a signing
    time has another. The certificate is left out: the same signature under a certificate re-issued
    for the same key is still a copy."""

    def as_json(self) -> dict[str, Any]:
        """The `verify-mail --json` document (README, "Commands"), with the extra facts a reviewer wants.

        `signed_content` is the signed entity as text (undecodable bytes
        replaced); `signed_content_base64` is the same bytes exactly.
        """
        signer = None
        if self.signer is not None:
            not_before, not_after = self.signer.not_valid_before_utc, self.signer.not_valid_after_utc
            signer = {
                "subject": self.signer.subject.rfc4514_string(),
                "issuer": self.signer.issuer.rfc4514_string(),
                "serial_number": format(self.signer.serial_number, "x"),
                "emails": list(_mailboxes(self.signer)),
                "sha256": fingerprint(self.signer),
                "public_key": _key_description(self.signer),
                "not_before": not_before.isoformat(),
                "not_after": not_after.isoformat(),
                "valid_at_check": None if self.checked_at is None else not_before <= self.checked_at <= not_after,
            }
        content = self.signed_content
        return {
            "valid": self.valid,
            "reason": None if self.reason is None else str(self.reason),
            "detail": self.detail or (None if self.reason is None else self.reason.describe()),
            "signature_intact": self.signature_intact,
            "signer": signer,
            "owner": self.owner,
            "from": self.from_address,
            "decrypted": self.decrypted is not None,
            "checked_at": None if self.checked_at is None else self.checked_at.isoformat(),
            "digest_algorithm": self.digest_algorithm,
            "signature_algorithm": self.signature_algorithm,
            "signing_time": None if self.signing_time is None else self.signing_time.isoformat(),
            "signed_content": None if content is None else content.decode("utf-8", "replace"),
            "signed_content_base64": None if content is None else base64.b64encode(content).decode("ascii"),
            "signed_content_sha256": None if content is None else hashlib.sha256(content).hexdigest(),
        }


def _key_description(certificate: x509.Certificate) -> str | None:
    """`rsa-2048`, `ec-secp256r1`: what kind of key signed."""
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ec-{key.curve.name}"
    return type(key).__name__


def _find_signer(
    signer: SignerInfo, carried: Sequence[x509.Certificate], trust: Trust
) -> x509.Certificate:
    """The certificate whose key must verify the signature, matched whole where it can be.

    A key identifier may name several registered certificates (a renewal
    that kept its key): the one the message carries, byte for byte, is the
    signer's; failing that, a current one before a retired one; a carried
    certificate that is not registered comes last (trusted only by an anchor).
    """
    signer_id = signer.signer_id
    if signer_id is None:
        raise Rejected(Reason.BAD_CMS_STRUCTURE)
    named = [c for c in carried if matches(signer_id, c)]
    registered = sorted(
        (entry for entry in trust.index.candidates(signer_id) if matches(signer_id, entry.certificate)),
        key=lambda entry: (entry.certificate not in named, entry.revoked),
    )
    found = [entry.certificate for entry in registered] + named
    if not found:
        raise Rejected(Reason.NO_SIGNER_CERTIFICATE)
    return found[0]


def _check_signature(signer: SignerInfo, certificate: x509.Certificate, content: bytes) -> None:
    """Check 4, cryptographic half: the digest of the content, the key, the signature."""
    if hashlib.new(signer.digest_name, content).digest() != signer.message_digest:
        raise Rejected(Reason.BAD_SIGNATURE)
    if signer.digest_name in WEAK_DIGESTS:
        raise Rejected(Reason.WEAK_DIGEST)
    try:
        key = certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM) from None
    try:
        if isinstance(key, rsa.RSAPublicKey) and signer.family in (RSA_PKCS1, RSA_PSS):
            if key.key_size < MIN_RSA_BITS:
                raise Rejected(Reason.WEAK_KEY)
            scheme = signer.pss or padding.PKCS1v15()
            key.verify(signer.signature, signer.signed_attributes, scheme, signer.signature_hash())
        elif isinstance(key, ec.EllipticCurvePublicKey) and signer.family == ECDSA:
            if not isinstance(key.curve, SIGNING_CURVES):
                raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
            key.verify(signer.signature, signer.signed_attributes, ec.ECDSA(signer.signature_hash()))
        else:
            raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    except InvalidSignature:
        raise Rejected(Reason.BAD_SIGNATURE) from None


@lru_cache(maxsize=4096)
def _may_sign_mail(certificate: x509.Certificate) -> bool:
    """RFC 8550 §4.4: not a CA; an extendedKeyUsage, if any, allows emailProtection; a keyUsage, if any, signing."""
    extensions = certificate.extensions
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in extensions.get_extension_for_class(x509.ExtendedKeyUsage).value:
            return False
    except x509.ExtensionNotFound:
        pass
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return usage.digital_signature or usage.content_commitment


@lru_cache(maxsize=4096)
def _mailboxes(certificate: x509.Certificate) -> tuple[str, ...]:
    """`pki.mailboxes`, with an unparsable extension counting as no mailbox; both read once per certificate, as
    `_pin`: a delegation signs every ballot under the same one."""
    try:
        return mailboxes(certificate)
    except ValueError:
        return ()


def _chains_to_anchor(
    certificate: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    at: datetime,
) -> bool:
    """RFC 5280 path validation to one of the anchors, with the S/MIME end-entity profile of `voting.pki`.

    A path found once holds at any other time at which every certificate on
    it is valid (nothing else in the validation depends on the time), so the
    span in which it holds is kept and a later check inside it skips the
    search. A failure is never kept: it is searched for again each time.
    """
    if not anchors:
        return False
    others = tuple(c for c in intermediates if c != certificate)
    key = (certificate, others, tuple(anchors))
    span = _VALID_PATHS.get(key)
    if span is not None and span[0] <= at <= span[1]:
        return True
    try:
        path = smime_verifier(anchors, at).verify(certificate, list(others)).chain
    except (verification.VerificationError, ValueError):
        return False
    if len(_VALID_PATHS) >= MAX_VALID_PATHS:
        _VALID_PATHS.clear()
    _VALID_PATHS[key] = (max(c.not_valid_before_utc for c in path), min(c.not_valid_after_utc for c in path))
    return True


MAX_VALID_PATHS = 4096
"""Paths kept; each is a few certificates' references, and a body has a few hundred signers."""
_VALID_PATHS: dict[tuple[x509.Certificate, tuple[x509.Certificate, ...], tuple[x509.Certificate, ...]],
                   tuple[datetime, datetime]] = {}


@lru_cache(maxsize=4096)
def _pin(certificate: x509.Certificate) -> str:
    """`fingerprint`, worked out once per certificate: a delegation signs every ballot under the same one."""
    return fingerprint(certificate)


def _trusted_owner(
    certificate: x509.Certificate, carried: Sequence[x509.Certificate], trust: Trust, at: datetime
) -> str | None:
    """Check 5: returns the owner (None for an anchor-trusted, unregistered signer)."""
    entry = trust.index.by_pin.get(_pin(certificate))
    if entry is None and not (trust.anchors and trust.anchors_admit_unregistered):
        raise Rejected(Reason.UNKNOWN_SIGNER)
    if entry is not None and entry.revoked:
        raise Rejected(Reason.REVOKED_CERTIFICATE, owner=entry.owner)
    if at < certificate.not_valid_before_utc:
        raise Rejected(Reason.CERTIFICATE_NOT_YET_VALID)
    if at > certificate.not_valid_after_utc:
        raise Rejected(Reason.CERTIFICATE_EXPIRED)
    if (entry is None or entry.chain_to_anchor) and not _chains_to_anchor(certificate, carried, trust.anchors, at):
        raise Rejected(Reason.UNTRUSTED_CHAIN)
    try:
        may_sign = _may_sign_mail(certificate)
    except ValueError:
        may_sign = False
    if not may_sign:
        raise Rejected(Reason.NOT_FOR_EMAIL)
    if not _mailboxes(certificate):
        raise Rejected(Reason.NO_MAILBOX)
    return None if entry is None else entry.owner


def _verify_cms(info: ContentInfo, content: bytes, detached: bool, trust: Trust, at: datetime) -> Verification:
    """Checks 4 and 5 on a parsed SignedData and the bytes it signs."""
    known: dict[str, Any] = {"signed_content": content}
    try:
        try:
            signer = read_signer_info(info, detached, content)
            known.update(
                digest_algorithm=signer.digest_name,
                signature_algorithm=signer.family,
                signing_time=signer.signing_time,
                signed_sha256=hashlib.sha256(signer.signed_attributes).hexdigest(),
            )
            carried = load_certificates(signer.certificates)
            certificate = _find_signer(signer, carried, trust)
            known["signer"] = certificate
            _check_signature(signer, certificate, content)
            if signer.leftovers:  # refused only now, so that a signature that does not hold keeps its reason
                raise Rejected(Reason.BAD_CMS_STRUCTURE)
        except MALFORMED_DER:
            # A certificate, an issuer name or PSS parameters that the libraries cannot use.
            raise Rejected(Reason.BAD_CMS_STRUCTURE) from None
        known["signature_intact"] = True
        owner = _trusted_owner(certificate, carried, trust, at)
    except Rejected as rejected:
        if known.get("signature_intact"):
            known["owner"] = rejected.known.get("owner")
        return Verification(valid=False, reason=rejected.reason, **known)
    return Verification(valid=True, reason=None, owner=owner, **known)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError("the verification time must be timezone-aware")


def _from_address(headers: Headers) -> str | None:
    """The single address of the single From header, or None if it is not exactly that.

    A display name holding an '@', a group, or any non-obsolete parse defect
    (the parser otherwise picks an address out of `a@x <b@y>`) gives None.
    """
    values = [value for name, value in headers if name == "from"]
    if len(values) != 1 or len(values[0]) > MAX_FROM_CHARS:
        return None
    return _address_of(values[0])


@lru_cache(maxsize=1024)
def _address_of(value: str) -> str | None:
    """`_from_address` of one header value; a delegation writes the same From on every ballot, read once."""
    try:
        parsed = email_policy.default.header_factory("from", value)
    except Exception:  # noqa: BLE001 - any failure to read one plain address is "not exactly one address"
        return None
    if any(not isinstance(defect, ObsoleteHeaderDefect) for defect in parsed.defects):
        return None
    if len(parsed.groups) != 1 or parsed.groups[0].display_name is not None:
        return None
    addresses = parsed.addresses
    if len(addresses) != 1 or "@" in addresses[0].display_name or not addresses[0].domain:
        return None
    return str(addresses[0].addr_spec)


def _judged(raw: bytes, decryption: Identity | ContentKey | None) -> tuple[ContentInfo, bytes, bool]:
    """The SignedData, the bytes it signs and whether it is detached, of a message already judged."""
    signed, _ = opened(raw, decryption)
    return signed.info, signed.content, signed.detached


def signed_sha256_of(raw: bytes, decryption: Identity | ContentKey | None = None) -> str | None:
    """`Verification.signed_sha256` of a message already judged, read without checking it again; None if unreadable."""
    try:
        info, content, detached = _judged(raw, decryption)
        attributes = read_signer_info(info, detached, content).signed_attributes
    except (Rejected, RecursionError, *MALFORMED_DER):
        return None
    return hashlib.sha256(attributes).hexdigest()


def signed_content_of(raw: bytes, decryption: Identity | ContentKey | None = None) -> bytes | None:
    """`Verification.signed_content` of a message already judged, read without checking it again; None if
    unreadable, as a message encrypted to the secretariat is without its key."""
    try:
        return _judged(raw, decryption)[1]
    except (Rejected, RecursionError, *MALFORMED_DER):
        return None


def verify_message(
    raw: bytes, trust: Trust, at: datetime, decryption: Identity | ContentKey | None = None
) -> Verification:
    """Verify a whole received message, as received, for a ballot (checks 1 to 6).

    With `decryption` (the secretariat's identity, or in an audit the
    message's disclosed content key), a message encrypted to that identity is
    decrypted first; one encrypted to anyone else is `Reason.ENCRYPTED`.
    """
    _require_aware(at)
    try:
        result = _verify_message(raw, trust, at, decryption)
    except Exception:  # noqa: BLE001 - hostile input is rejected, never a crash; each known case has its reason
        result = Verification(valid=False, reason=Reason.MALFORMED_MIME)
    result = _one_answer_for_unauthenticated_plaintext(result)
    return result if result.checked_at == at else replace(result, checked_at=at)


def _one_answer_for_unauthenticated_plaintext(result: Verification) -> Verification:
    """Every failure to open an AES-CBC envelope into an intact signature gets the one answer `encrypted`.

    CBC has no integrity: an insider who captured another delegation's
    encrypted ballot could alter its ciphertext and, if the answers told bad
    padding from a garbled entity inside, recover the ballot byte by byte
    before the close. Once the signature is intact, the plaintext is exactly
    what its signer wrote, and the later reasons (who signed, From) reveal
    nothing about the ciphertext.
    """
    if result.valid or result.signature_intact or result.decrypted is None or result.decrypted.authenticated:
        return result
    return Verification(valid=False, reason=Reason.ENCRYPTED, decrypted=result.decrypted)


def _verify_message(raw: bytes, trust: Trust, at: datetime, decryption: Identity | ContentKey | None) -> Verification:
    try:
        signed, decrypted = opened(raw, decryption)
    except Rejected as rejected:
        return Verification(valid=False, reason=rejected.reason, detail=rejected.detail,
                            decrypted=rejected.known.get("decrypted"))
    except RecursionError:
        return Verification(valid=False, reason=Reason.TOO_COMPLEX)
    result = _verify_cms(signed.info, signed.content, signed.detached, trust, at)
    address = _from_address(signed.headers)
    result = replace(result, from_address=address, decrypted=decrypted, checked_at=at, signed_parts=signed.parts)
    if not result.valid:
        return result
    assert result.signer is not None
    if address is None or address.lower() not in _mailboxes(result.signer):
        return replace(result, valid=False, reason=Reason.FROM_MISMATCH)
    return result


def verify_detached_der(data: bytes, signature_der: bytes, trust: Trust, at: datetime) -> Verification:
    """Verify a bare detached signature over bytes (the audit manifest); no From to check."""
    _require_aware(at)
    try:
        info = read_content_info(signature_der)
        if info.content_type != OID_SIGNED_DATA:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
    except Rejected as rejected:
        return Verification(valid=False, reason=rejected.reason, checked_at=at)
    return replace(_verify_cms(info, data, True, trust, at), checked_at=at)
