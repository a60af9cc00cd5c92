"""S/MIME signing and verification on raw message bytes.

The verifier never trusts a re-serialised copy: it slices the signed entity out
of the bytes as received (line endings canonicalised to CRLF), reads only the
CMS fields it needs with asn1crypto, and checks the signature with
cryptography. Every failure maps to exactly one `Reason`, the first failing
check winning, so that the same message always gets the same answer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email import policy as email_policy
from email.errors import ObsoleteHeaderDefect
from typing import Any

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from voting.mime import (
    MAX_MIME_DEPTH,
    Headers,
    Part,
    content_type,
    crlf,
    decode_transfer,
    multipart_parts,
    parts,
    split_entity,
    too_complex,
)
from voting.pki import Identity, fingerprint, mailboxes, smime_verifier
from voting.reasons import Reason, Rejected

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ContentKey",
    "Decrypted",
    "Trust",
    "TrustedCertificate",
    "Verification",
    "decrypt_message",
    "signed_sha256_of",
    "sign_detached_der",
    "sign_entity",
    "verify_detached_der",
    "verify_message",
]

MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_FROM_CHARS = 2048
MIN_RSA_BITS = 2048

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_OPAQUE_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_ENCRYPTED_SMIME_TYPES = frozenset({"enveloped-data", "authenveloped-data"})

_OID_DATA = "1.2.840.113549.1.7.1"
_OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
_OID_ENCRYPTED = frozenset({"1.2.840.113549.1.7.3", "1.2.840.113549.1.9.16.1.23"})
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"

# Weak digests are known so that an altered message is reported as altered
# (BAD_SIGNATURE) before the digest is refused (WEAK_DIGEST).
_DIGESTS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
    "1.3.14.3.2.26": ("sha1", hashes.SHA1),
    "1.2.840.113549.2.5": ("md5", hashes.MD5),
}
_WEAK_DIGESTS = frozenset({"sha1", "md5"})

# Signature algorithm OID -> (family, digest implied by the OID or None).
_RSA_PKCS1 = "rsa-pkcs1v15"
_RSA_PSS = "rsa-pss"
_ECDSA = "ecdsa"
_SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.1": (_RSA_PKCS1, None),
    "1.2.840.113549.1.1.4": (_RSA_PKCS1, "md5"),
    "1.2.840.113549.1.1.5": (_RSA_PKCS1, "sha1"),
    "1.2.840.113549.1.1.11": (_RSA_PKCS1, "sha256"),
    "1.2.840.113549.1.1.12": (_RSA_PKCS1, "sha384"),
    "1.2.840.113549.1.1.13": (_RSA_PKCS1, "sha512"),
    "1.2.840.113549.1.1.10": (_RSA_PSS, None),
    "1.2.840.10045.2.1": (_ECDSA, None),
    "1.2.840.10045.4.1": (_ECDSA, "sha1"),
    "1.2.840.10045.4.3.2": (_ECDSA, "sha256"),
    "1.2.840.10045.4.3.3": (_ECDSA, "sha384"),
    "1.2.840.10045.4.3.4": (_ECDSA, "sha512"),
}
_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}


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


@dataclass(frozen=True)
class ContentKey:
    """The content-encryption key of one message, as disclosed in an audit bundle.

    It opens that message's envelope and nothing else, so an auditor can check
    that the decrypted entity the bundle carries is what was encrypted, without
    the secretariat's private key.
    """

    key: bytes


@dataclass(frozen=True)
class Decrypted:
    """An envelope opened: the entity inside (as decrypted, not canonicalised) and the key that opened it."""

    entity: bytes
    content_key: bytes
    authenticated: bool
    """AES-GCM (authenveloped-data) proves the ciphertext intact; AES-CBC (enveloped-data) proves nothing."""


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


# ---------------------------------------------------------------- MIME, on raw bytes


def _load_content_info(der: bytes) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(der, strict=True)
        info["content_type"].dotted  # noqa: B018 - forces the lazy parse here
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
        raise Rejected(Reason.BAD_CMS_STRUCTURE) from None
    return info


def _content_info_type(info: cms.ContentInfo) -> str:
    try:
        return str(info["content_type"].dotted)
    except (ValueError, TypeError, KeyError):
        raise Rejected(Reason.BAD_CMS_STRUCTURE) from None


def _econtent(info: cms.ContentInfo) -> bytes | None:
    """The encapsulated content of a SignedData, or None when detached."""
    try:
        encapsulated = info["content"]["encap_content_info"]
        if str(encapsulated["content_type"].dotted) != _OID_DATA:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
        content = encapsulated["content"]
        if isinstance(content, core.Void):
            return None
        value = content.native
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
        raise Rejected(Reason.BAD_CMS_STRUCTURE) from None
    if not isinstance(value, bytes):
        raise Rejected(Reason.BAD_CMS_STRUCTURE)
    return value


def _is_encrypted(entity: bytes, depth: int) -> bool:
    """Whether signed content is, under any layers of signature, an encrypted entity.

    A verifier that holds no decryption key cannot read such a ballot, so it is
    rejected as encrypted before anything else is checked about the signature.
    """
    if depth > MAX_MIME_DEPTH:
        raise too_complex(f"more than {MAX_MIME_DEPTH} levels of nesting")
    try:
        headers, body = split_entity(crlf(entity))
        message = content_type(headers)
        ctype = message.get_content_type()
        if ctype == "multipart/signed" and message.get_boundary():
            signed_parts, _ = multipart_parts(body, message.get_boundary() or "")
            return bool(signed_parts) and _is_encrypted(signed_parts[0], depth + 1)
        if ctype not in _OPAQUE_TYPES:
            return False
        if str(message.get_param("smime-type", "")).lower() in _ENCRYPTED_SMIME_TYPES:
            return True
        info = _load_content_info(decode_transfer(headers, body))
        kind = _content_info_type(info)
        if kind in _OID_ENCRYPTED:
            return True
        inner = _econtent(info) if kind == _OID_SIGNED_DATA else None
    except Rejected as rejected:
        if rejected.reason in (Reason.TOO_LARGE, Reason.TOO_COMPLEX):
            raise
        return False
    return inner is not None and _is_encrypted(inner, depth + 1)


def _is_signature(part: Part) -> bool:
    return part.type == "multipart/signed" or part.type in _SIGNATURE_TYPES or part.type in _OPAQUE_TYPES


@dataclass(frozen=True)
class _Signed:
    """What the MIME layer hands to the CMS layer."""

    headers: Headers
    content: bytes
    info: cms.ContentInfo
    detached: bool


def _signed_entity(raw: bytes) -> _Signed:
    """Checks 1-3: bounds, the top-level entity is the signed one, and its content sliced out.

    The whole message is walked within the bounds of `voting.mime` first, and
    the content embedded in an opaque signature before it is looked into, so
    that nothing costly is done with a message that exceeds them.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Rejected(Reason.TOO_LARGE)
    entities = parts(crlf(raw))
    headers, body, message = entities[0].headers, entities[0].body, entities[0].content_type
    ctype = message.get_content_type()
    if ctype == "multipart/signed":
        protocol = str(message.get_param("protocol", "")).lower()
        boundary = message.get_boundary()
        if protocol not in _SIGNATURE_TYPES:
            raise Rejected(Reason.NOT_SIGNED)
        if not boundary:
            raise Rejected(Reason.MALFORMED_MIME)
        signed_parts, closed = multipart_parts(body, boundary)
        if len(signed_parts) > 2:
            raise Rejected(Reason.NOT_ENTIRELY_SIGNED)
        if len(signed_parts) < 2 or not closed:
            raise Rejected(Reason.MALFORMED_MIME)
        content, signature = signed_parts
        signature_headers, signature_body = split_entity(signature)
        if content_type(signature_headers).get_content_type() not in _SIGNATURE_TYPES:
            raise Rejected(Reason.MALFORMED_MIME)
        if _is_encrypted(content, 1):
            raise Rejected(Reason.ENCRYPTED)
        info = _load_content_info(decode_transfer(signature_headers, signature_body))
        if _content_info_type(info) != _OID_SIGNED_DATA:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
        return _Signed(headers, content, info, detached=True)
    if ctype in _OPAQUE_TYPES:
        said_encrypted = str(message.get_param("smime-type", "")).lower() in _ENCRYPTED_SMIME_TYPES
        try:
            info = _load_content_info(decode_transfer(headers, body))
            kind = _content_info_type(info)
        except Rejected:
            if said_encrypted:
                raise Rejected(Reason.ENCRYPTED) from None
            raise
        if kind in _OID_ENCRYPTED:
            # The envelope travels with the reason, for a verifier that holds a key to open it.
            raise Rejected(Reason.ENCRYPTED, envelope=info, headers=headers)
        if said_encrypted:
            raise Rejected(Reason.ENCRYPTED)
        if kind != _OID_SIGNED_DATA:
            raise Rejected(Reason.NOT_SIGNED)
        embedded = _econtent(info)
        if embedded is None:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
        parts(crlf(embedded), depth=1)
        if _is_encrypted(embedded, 1):
            raise Rejected(Reason.ENCRYPTED)
        return _Signed(headers, embedded, info, detached=False)
    if ctype in _SIGNATURE_TYPES:
        raise Rejected(Reason.NOT_SIGNED)
    if any(_is_signature(part) for part in entities):
        raise Rejected(Reason.NOT_ENTIRELY_SIGNED)
    raise Rejected(Reason.NOT_SIGNED)


# ---------------------------------------------------------------- CMS


@dataclass(frozen=True)
class _SignerInfo:
    """The few signerInfo fields the check needs, read once."""

    signer_id: cms.SignerIdentifier
    digest_name: str
    family: str
    pss: padding.PSS | None
    signature_hash: type[hashes.HashAlgorithm]
    signed_attributes: bytes
    message_digest: bytes
    signing_time: datetime | None
    signature: bytes
    certificates: tuple[bytes, ...]


def _single_value(values: cms.SetOfAny) -> Any:
    if len(values) != 1:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    return values[0]


def _digest_of(oid: str) -> tuple[str, type[hashes.HashAlgorithm]]:
    if oid not in _DIGESTS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    return _DIGESTS[oid]


def _pss_padding(parameters: algos.RSASSAPSSParams, digest_name: str) -> tuple[padding.PSS, type[hashes.HashAlgorithm]]:
    """PSS parameters as read from the message (their defaults are SHA-1, hence weak)."""
    name, hash_type = _digest_of(str(parameters["hash_algorithm"]["algorithm"].dotted))
    mask = parameters["mask_gen_algorithm"]
    if str(mask["algorithm"].dotted) != "1.2.840.113549.1.1.8":
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    mask_name, mask_hash = _digest_of(str(mask["parameters"]["algorithm"].dotted))
    if mask_name in _WEAK_DIGESTS:
        raise Rejected(Reason.WEAK_DIGEST)
    if name != digest_name or parameters["trailer_field"].native not in (1, "trailer_field_bc"):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    return padding.PSS(mgf=padding.MGF1(mask_hash()), salt_length=parameters["salt_length"].native), hash_type


def _read_signer_info(info: cms.ContentInfo, detached: bool, content: bytes) -> _SignerInfo:
    """Check 4, structure half: one signerInfo, its attributes and algorithms.

    A detached signature must not embed content. When it embeds a text other
    than the part the reader sees (eContent confusion: the signature is over
    the hidden text), the message is rejected as a bad signature, which is what
    it is to the reader and what Thunderbird reports; an embedded copy of the
    same text is a structure error.
    """
    signed_data = info["content"]
    signer_infos = signed_data["signer_infos"]
    if len(signer_infos) != 1:
        raise Rejected(Reason.BAD_CMS_STRUCTURE)
    if detached and (embedded := _econtent(info)) is not None:
        raise Rejected(Reason.BAD_CMS_STRUCTURE if crlf(embedded) == content else Reason.BAD_SIGNATURE)
    signer_info = signer_infos[0]
    attributes = signer_info["signed_attrs"]
    if isinstance(attributes, core.Void) or not len(attributes):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    found: dict[str, list[Any]] = {}
    for attribute in attributes:
        found.setdefault(str(attribute["type"].dotted), []).append(attribute["values"])
    content_types = found.get(_OID_CONTENT_TYPE, [])
    digests = found.get(_OID_MESSAGE_DIGEST, [])
    if len(content_types) != 1 or len(digests) != 1 or len(found.get(_OID_SIGNING_TIME, [])) > 1:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    encapsulated_type = str(signed_data["encap_content_info"]["content_type"].dotted)
    if str(_single_value(content_types[0]).dotted) != encapsulated_type:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    message_digest = _single_value(digests[0]).native
    signing_times = found.get(_OID_SIGNING_TIME)
    signing_time = _single_value(signing_times[0]).native if signing_times else None
    if not isinstance(message_digest, bytes) or not (signing_time is None or isinstance(signing_time, datetime)):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)

    digest_name, digest = _digest_of(str(signer_info["digest_algorithm"]["algorithm"].dotted))
    algorithm = signer_info["signature_algorithm"]
    oid = str(algorithm["algorithm"].dotted)
    if oid not in _SIGNATURE_ALGORITHMS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    family, implied = _SIGNATURE_ALGORITHMS[oid]
    if implied not in (None, digest_name):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    pss, signature_hash = (None, digest)
    if family == _RSA_PSS:
        pss, signature_hash = _pss_padding(algorithm["parameters"], digest_name)

    encoded = attributes.dump()
    certificates = tuple(
        choice.chosen.dump() for choice in signed_data["certificates"] if choice.name == "certificate"
    ) if not isinstance(signed_data["certificates"], core.Void) else ()
    return _SignerInfo(
        signer_id=signer_info["sid"],
        digest_name=digest_name,
        family=family,
        pss=pss,
        signature_hash=signature_hash,
        # The signature covers the attributes' DER as a SET OF, not as the [0] IMPLICIT field.
        signed_attributes=b"\x31" + encoded[1:],
        message_digest=message_digest,
        signing_time=signing_time,
        signature=signer_info["signature"].native,
        certificates=certificates,
    )


def _subject_key_ids(certificate: x509.Certificate) -> set[bytes]:
    """The certificate's SKI extension, and the RFC 5280 method-1 value, as a signer may use either."""
    identifiers = set()
    try:
        identifiers.add(x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest)
        identifiers.add(certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    except (x509.ExtensionNotFound, ValueError, UnsupportedAlgorithm):
        pass
    return identifiers


def _matches(identifier: core.Choice, certificate: x509.Certificate) -> bool:
    """Whether a signer or recipient identifier (issuerAndSerialNumber or a key identifier) names the certificate."""
    if identifier.name == "subject_key_identifier":
        return bytes(identifier.chosen.native) in _subject_key_ids(certificate)
    if identifier.name == "r_key_id":
        # RecipientKeyIdentifier: its first field is the subjectKeyIdentifier.
        return bytes(identifier.chosen[0].native) in _subject_key_ids(certificate)
    issuer_and_serial = identifier.chosen
    if issuer_and_serial["serial_number"].native != certificate.serial_number:
        return False
    issuer = issuer_and_serial["issuer"]
    encoded = certificate.issuer.public_bytes()
    return issuer.dump() == encoded or issuer == type(issuer).load(encoded)


def _load_certificates(encoded: Sequence[bytes]) -> list[x509.Certificate]:
    loaded = []
    for der in encoded:
        try:
            loaded.append(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion):
            continue  # a certificate we cannot read cannot be the signer's
    return loaded


def _find_signer(
    signer: _SignerInfo, carried: Sequence[x509.Certificate], trust: Trust
) -> x509.Certificate:
    candidates = [*(entry.certificate for entry in trust.registered), *carried]
    for certificate in candidates:
        if _matches(signer.signer_id, certificate):
            return certificate
    raise Rejected(Reason.NO_SIGNER_CERTIFICATE)


def _check_signature(signer: _SignerInfo, certificate: x509.Certificate, content: bytes) -> None:
    """Check 4, cryptographic half: the digest of the content, the key, the signature."""
    if hashlib.new(signer.digest_name, content).digest() != signer.message_digest:
        raise Rejected(Reason.BAD_SIGNATURE)
    if signer.digest_name in _WEAK_DIGESTS:
        raise Rejected(Reason.WEAK_DIGEST)
    try:
        key = certificate.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM) from None
    try:
        if isinstance(key, rsa.RSAPublicKey) and signer.family in (_RSA_PKCS1, _RSA_PSS):
            if key.key_size < MIN_RSA_BITS:
                raise Rejected(Reason.WEAK_KEY)
            scheme = signer.pss or padding.PKCS1v15()
            key.verify(signer.signature, signer.signed_attributes, scheme, signer.signature_hash())
        elif isinstance(key, ec.EllipticCurvePublicKey) and signer.family == _ECDSA:
            if not isinstance(key.curve, _CURVES):
                raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
            key.verify(signer.signature, signer.signed_attributes, ec.ECDSA(signer.signature_hash()))
        else:
            raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    except InvalidSignature:
        raise Rejected(Reason.BAD_SIGNATURE) from None


# ---------------------------------------------------------------- trust


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


def _mailboxes(certificate: x509.Certificate) -> tuple[str, ...]:
    """`pki.mailboxes`, with an unparsable extension counting as no mailbox."""
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
    """RFC 5280 path validation to one of the anchors, with the S/MIME end-entity profile of `voting.pki`."""
    if not anchors:
        return False
    try:
        smime_verifier(anchors, at).verify(certificate, [c for c in intermediates if c != certificate])
    except (verification.VerificationError, ValueError):
        return False
    return True


def _trusted_owner(
    certificate: x509.Certificate, carried: Sequence[x509.Certificate], trust: Trust, at: datetime
) -> str | None:
    """Check 5: returns the owner (None for an anchor-trusted, unregistered signer)."""
    pin = fingerprint(certificate)
    entry = next((e for e in trust.registered if fingerprint(e.certificate) == pin), None)
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


_MALFORMED_DER = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
    x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
)


def _verify_cms(info: cms.ContentInfo, content: bytes, detached: bool, trust: Trust, at: datetime) -> Verification:
    """Checks 4 and 5 on a parsed SignedData and the bytes it signs."""
    known: dict[str, Any] = {"signed_content": content}
    try:
        try:
            signer = _read_signer_info(info, detached, content)
            known.update(
                digest_algorithm=signer.digest_name,
                signature_algorithm=signer.family,
                signing_time=signer.signing_time,
                signed_sha256=hashlib.sha256(signer.signed_attributes).hexdigest(),
            )
            carried = _load_certificates(signer.certificates)
            certificate = _find_signer(signer, carried, trust)
            known["signer"] = certificate
            _check_signature(signer, certificate, content)
        except _MALFORMED_DER:
            # asn1crypto parses lazily: broken DER can surface at any field read.
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


# ---------------------------------------------------------------- decryption

_OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_OID_RSA_PKCS1 = "1.2.840.113549.1.1.1"
_OID_RSA_OAEP = "1.2.840.113549.1.1.7"
_OID_MGF1 = "1.2.840.113549.1.1.8"
_OID_P_SPECIFIED = "1.2.840.113549.1.1.9"
# RFC 5753 ephemeral-static ECDH: the X9.63 KDF digest of each key agreement
# scheme (for the prime curves accepted here the cofactor is 1, so the
# cofactor schemes compute the same shared secret).
_ECDH_KDF: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.133.16.840.63.0.2": hashes.SHA1,
    "1.3.132.1.11.0": hashes.SHA224,
    "1.3.132.1.11.1": hashes.SHA256,
    "1.3.132.1.11.2": hashes.SHA384,
    "1.3.132.1.11.3": hashes.SHA512,
    "1.3.133.16.840.63.0.3": hashes.SHA1,
    "1.3.132.1.14.0": hashes.SHA224,
    "1.3.132.1.14.1": hashes.SHA256,
    "1.3.132.1.14.2": hashes.SHA384,
    "1.3.132.1.14.3": hashes.SHA512,
}
_AES_WRAP = {"2.16.840.1.101.3.4.1.5": 16, "2.16.840.1.101.3.4.1.25": 24, "2.16.840.1.101.3.4.1.45": 32}
_AES_CBC = {"2.16.840.1.101.3.4.1.2": 16, "2.16.840.1.101.3.4.1.22": 24, "2.16.840.1.101.3.4.1.42": 32}
_AES_GCM = {"2.16.840.1.101.3.4.1.6": 16, "2.16.840.1.101.3.4.1.26": 24, "2.16.840.1.101.3.4.1.46": 32}


class _GcmParameters(core.Sequence):
    """RFC 5084 GCMParameters."""

    _fields = [("aes_nonce", core.OctetString), ("aes_icvlen", core.Integer, {"default": 12})]


class _EccCmsSharedInfo(core.Sequence):
    """RFC 5753 ECC-CMS-SharedInfo, the X9.63 KDF's shared info."""

    _fields = [
        ("key_info", cms.KeyEncryptionAlgorithm),
        ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
        ("supp_pub_info", core.OctetString, {"explicit": 2}),
    ]


class _Undecryptable(Exception):
    """Internal: the envelope is not for us, or does not open; always ends as `Reason.ENCRYPTED`."""


def _oaep(parameters: algos.RSAESOAEPParams | core.Void) -> padding.OAEP:
    """RSAES-OAEP parameters as sent (their defaults are SHA-1, harmless in OAEP)."""
    params = algos.RSAESOAEPParams() if isinstance(parameters, core.Void) else parameters
    hash_oid = str(params["hash_algorithm"]["algorithm"].dotted)
    mask = params["mask_gen_algorithm"]
    mask_oid = str(mask["parameters"]["algorithm"].dotted)
    source = params["p_source_algorithm"]
    if str(mask["algorithm"].dotted) != _OID_MGF1 or str(source["algorithm"].dotted) != _OID_P_SPECIFIED:
        raise _Undecryptable
    if hash_oid not in _DIGESTS or mask_oid not in _DIGESTS:
        raise _Undecryptable
    label = source["parameters"].native or None
    return padding.OAEP(mgf=padding.MGF1(_DIGESTS[mask_oid][1]()), algorithm=_DIGESTS[hash_oid][1](), label=label)


def _key_transport(recipient: cms.KeyTransRecipientInfo, key: rsa.RSAPrivateKey) -> bytes:
    algorithm = recipient["key_encryption_algorithm"]
    oid = str(algorithm["algorithm"].dotted)
    if oid == _OID_RSA_PKCS1:
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
    elif oid == _OID_RSA_OAEP:
        scheme = _oaep(algorithm["parameters"])
    else:
        raise _Undecryptable
    return key.decrypt(recipient["encrypted_key"].native, scheme)


def _key_agreement(
    recipient: cms.KeyAgreeRecipientInfo, encrypted_key: bytes, key: ec.EllipticCurvePrivateKey
) -> bytes:
    """RFC 5753 ephemeral-static ECDH: X9.63 KDF over the shared secret, then AES key unwrap."""
    originator = recipient["originator"]
    algorithm = recipient["key_encryption_algorithm"]
    kdf_hash = _ECDH_KDF.get(str(algorithm["algorithm"].dotted))
    if originator.name != "originator_key" or kdf_hash is None or isinstance(algorithm["parameters"], core.Void):
        raise _Undecryptable
    wrap = algorithm["parameters"].parse(cms.KeyEncryptionAlgorithm)
    wrap_length = _AES_WRAP.get(str(wrap["algorithm"].dotted))
    if wrap_length is None:
        raise _Undecryptable
    point = originator.chosen["public_key"].native
    ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(key.curve, point if isinstance(point, bytes) else b"")
    ukm = recipient["ukm"]
    shared_info = _EccCmsSharedInfo(
        {
            "key_info": wrap,
            "entity_u_info": None if isinstance(ukm, core.Void) else ukm.native,
            "supp_pub_info": (wrap_length * 8).to_bytes(4, "big"),
        }
    ).dump()
    kek = X963KDF(kdf_hash(), wrap_length, shared_info).derive(key.exchange(ec.ECDH(), ephemeral))
    return aes_key_unwrap(kek, encrypted_key)


def _content_encryption_key(recipients: cms.RecipientInfos, identity: Identity) -> bytes:
    """The key wrapped for our certificate; anything addressed to someone else is not for us."""
    key = identity.key
    for recipient in recipients:
        info = recipient.chosen
        if recipient.name == "ktri" and isinstance(key, rsa.RSAPrivateKey):
            if _matches(info["rid"], identity.certificate):
                return _key_transport(info, key)
        elif recipient.name == "kari" and isinstance(key, ec.EllipticCurvePrivateKey):
            for encrypted in info["recipient_encrypted_keys"]:
                if _matches(encrypted["rid"], identity.certificate):
                    return _key_agreement(info, encrypted["encrypted_key"].native, key)
    raise _Undecryptable


def _decrypt_content(algorithm: algos.EncryptionAlgorithm, key: bytes, ciphertext: bytes,
                     mac: bytes | None, authenticated: bytes) -> bytes:
    """AES-CBC for enveloped-data, AES-GCM for authenveloped-data (RFC 5083/5084)."""
    oid = str(algorithm["algorithm"].dotted)
    if mac is None and _AES_CBC.get(oid) == len(key):
        iv = algorithm["parameters"].native
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        unpadder = symmetric_padding.PKCS7(128).unpadder()
        return unpadder.update(decryptor.update(ciphertext) + decryptor.finalize()) + unpadder.finalize()
    if mac is not None and _AES_GCM.get(oid) == len(key):
        parameters = algorithm["parameters"].parse(_GcmParameters)
        if parameters["aes_icvlen"].native != len(mac):
            raise _Undecryptable
        mode = modes.GCM(parameters["aes_nonce"].native, mac, min_tag_length=12)
        decryptor = Cipher(algorithms.AES(key), mode).decryptor()
        decryptor.authenticate_additional_data(authenticated)
        return decryptor.update(ciphertext) + decryptor.finalize()
    raise _Undecryptable


def _open_envelope(info: cms.ContentInfo, decryption: Identity | ContentKey) -> Decrypted:
    """The entity inside an enveloped-data or authenveloped-data, or `Reason.ENCRYPTED`."""
    try:
        envelope = info["content"]
        if str(info["content_type"].dotted) == _OID_ENVELOPED_DATA:
            content_info, mac, attributes = envelope["encrypted_content_info"], None, core.Void()
        else:
            content_info, mac, attributes = (
                envelope["auth_encrypted_content_info"], envelope["mac"].native, envelope["auth_attrs"]
            )
        ciphertext = content_info["encrypted_content"]
        if str(content_info["content_type"].dotted) != _OID_DATA or isinstance(ciphertext, core.Void):
            raise _Undecryptable
        key = (
            decryption.key if isinstance(decryption, ContentKey)
            else _content_encryption_key(envelope["recipient_infos"], decryption)
        )
        # The authenticated attributes are authenticated as a SET OF, not as the [1] IMPLICIT field.
        authenticated = b"" if isinstance(attributes, core.Void) else b"\x31" + attributes.dump()[1:]
        entity = _decrypt_content(
            content_info["content_encryption_algorithm"], key, ciphertext.native, mac, authenticated
        )
    except (_Undecryptable, InvalidTag, InvalidUnwrap, UnsupportedAlgorithm, *_MALFORMED_DER):
        raise Rejected(Reason.ENCRYPTED) from None
    return Decrypted(entity=entity, content_key=key, authenticated=mac is not None)


def decrypt_message(raw: bytes, decryption: Identity | ContentKey) -> Decrypted | None:
    """The entity inside a message encrypted to us (what the audit bundle carries beside it), else None."""
    try:
        return _opened(raw, decryption)[1]
    except Rejected as rejected:
        return rejected.known.get("decrypted")
    except RecursionError:
        return None


# ---------------------------------------------------------------- From


def _from_address(headers: Headers) -> str | None:
    """The single address of the single From header, or None if it is not exactly that.

    A display name holding an '@', a group, or any non-obsolete parse defect
    (the parser otherwise picks an address out of `a@x <b@y>`) gives None.
    """
    values = [value for name, value in headers if name == "from"]
    if len(values) != 1 or len(values[0]) > MAX_FROM_CHARS:
        return None
    try:
        parsed = email_policy.default.header_factory("from", values[0])
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


# ---------------------------------------------------------------- public


def _opened(raw: bytes, decryption: Identity | ContentKey | None) -> tuple[_Signed, Decrypted | None]:
    """The signed entity: the message itself, or, for a message encrypted to us, the entity inside.

    Inside an envelope, the signed entity is checked by the same rules as a
    whole message (a second envelope is not opened), and the From checked is
    the outer message's: the encrypted entity carries no headers of its own.
    """
    try:
        return _signed_entity(raw), None
    except Rejected as rejected:
        envelope = rejected.known.get("envelope")
        if envelope is None or decryption is None:
            raise
        decrypted = _open_envelope(envelope, decryption)
        try:
            inner = _signed_entity(decrypted.entity)
        except Rejected as inner_rejected:
            raise Rejected(inner_rejected.reason, inner_rejected.detail, decrypted=decrypted) from None
        return replace(inner, headers=rejected.known["headers"]), decrypted


def signed_sha256_of(raw: bytes, decryption: Identity | ContentKey | None = None) -> str | None:
    """`Verification.signed_sha256` of a message already judged, read without checking it again; None if unreadable."""
    try:
        signed, _ = _opened(raw, decryption)
        content = crlf(signed.content) if signed.detached else signed.content
        attributes = _read_signer_info(signed.info, signed.detached, content).signed_attributes
    except (Rejected, *_MALFORMED_DER):
        return None
    return hashlib.sha256(attributes).hexdigest()


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
    return replace(_one_answer_for_unauthenticated_plaintext(result), checked_at=at)


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
        signed, decrypted = _opened(raw, decryption)
    except Rejected as rejected:
        return Verification(valid=False, reason=rejected.reason, detail=rejected.detail,
                            decrypted=rejected.known.get("decrypted"))
    except RecursionError:
        return Verification(valid=False, reason=Reason.TOO_COMPLEX)
    content = crlf(signed.content) if signed.detached else signed.content
    result = _verify_cms(signed.info, content, signed.detached, trust, at)
    address = _from_address(signed.headers)
    result = replace(result, from_address=address, decrypted=decrypted)
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
        info = _load_content_info(signature_der)
        if _content_info_type(info) != _OID_SIGNED_DATA:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
    except Rejected as rejected:
        return Verification(valid=False, reason=rejected.reason, checked_at=at)
    return replace(_verify_cms(info, data, True, trust, at), checked_at=at)


def sign_detached_der(
    data: bytes, key: pkcs7.PKCS7PrivateKeyTypes, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> bytes:
    """A detached CMS signature (DER) over the bytes exactly as given, SHA-256, with signingTime."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(certificate, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    return builder.sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    )


def _boundary(entity: bytes) -> str:
    while True:
        boundary = f"----=_vote_{secrets.token_hex(16)}"
        if boundary.encode("ascii") not in entity:
            return boundary


def sign_entity(
    entity: bytes, key: pkcs7.PKCS7PrivateKeyTypes, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> bytes:
    """Wrap a 7-bit MIME entity in a multipart/signed entity (MIME-Version and Content-Type + body, CRLF).

    The caller prepends From/To/Subject/Date/Message-ID. The signature is over
    the CRLF form of `entity`, which is also what is embedded, so the bytes
    signed are the bytes sent.
    """
    canonical = crlf(entity)
    if not canonical.isascii():
        raise ValueError("the entity to sign must be 7-bit: encode its body as quoted-printable or base64")
    if any(len(line) > 998 for line in canonical.split(b"\r\n")):
        raise ValueError("the entity to sign has a line longer than 998 octets")
    signature = base64.encodebytes(sign_detached_der(canonical, key, certificate, chain))
    boundary = _boundary(canonical)
    micalg = _MICALG["sha256"]
    return b"".join(
        [
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
            f' micalg={micalg}; boundary="{boundary}"\r\n'.encode("ascii"),
            b"\r\nThis is an S/MIME signed message.\r\n",
            f"\r\n--{boundary}\r\n".encode("ascii"),
            canonical,
            f"\r\n--{boundary}\r\n".encode("ascii"),
            b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n",
            crlf(signature).rstrip(b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
