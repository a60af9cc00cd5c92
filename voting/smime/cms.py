"""CMS structures read with asn1crypto (RFC 5652): the SignedData fields a signature check needs, and nothing more.

Pure parsing: DER in, the few values out, every malformation a `Rejected`
with `Reason.BAD_CMS_STRUCTURE` or the reason of the attribute at fault.
Checking what they say is `voting.smime.verify`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import algos, cms, core
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from voting.mime import crlf, too_complex
from voting.reasons import Reason, Rejected

MAX_CMS_ELEMENTS = 30_000
"""ASN.1 elements in one CMS structure. A signature and its certificates have hundreds, and 25 MB of content
in chunks of 1,000 bytes 25,000; asn1crypto spends a Python step on each, and more than that on the chunks of
a long constructed OCTET STRING."""

OID_DATA = "1.2.840.113549.1.7.1"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_ENCRYPTED = frozenset({"1.2.840.113549.1.7.3", "1.2.840.113549.1.9.16.1.23"})
_OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_OID_SIGNING_TIME = "1.2.840.113549.1.9.5"

# Weak digests are known so that an altered message is reported as altered
# (BAD_SIGNATURE) before the digest is refused (WEAK_DIGEST).
DIGESTS: dict[str, tuple[str, type[hashes.HashAlgorithm]]] = {
    "2.16.840.1.101.3.4.2.1": ("sha256", hashes.SHA256),
    "2.16.840.1.101.3.4.2.2": ("sha384", hashes.SHA384),
    "2.16.840.1.101.3.4.2.3": ("sha512", hashes.SHA512),
    "1.3.14.3.2.26": ("sha1", hashes.SHA1),
    "1.2.840.113549.2.5": ("md5", hashes.MD5),
}
WEAK_DIGESTS = frozenset({"sha1", "md5"})

# Signature algorithm OID -> (family, digest implied by the OID or None).
RSA_PKCS1 = "rsa-pkcs1v15"
RSA_PSS = "rsa-pss"
ECDSA = "ecdsa"
_SIGNATURE_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "1.2.840.113549.1.1.1": (RSA_PKCS1, None),
    "1.2.840.113549.1.1.4": (RSA_PKCS1, "md5"),
    "1.2.840.113549.1.1.5": (RSA_PKCS1, "sha1"),
    "1.2.840.113549.1.1.11": (RSA_PKCS1, "sha256"),
    "1.2.840.113549.1.1.12": (RSA_PKCS1, "sha384"),
    "1.2.840.113549.1.1.13": (RSA_PKCS1, "sha512"),
    "1.2.840.113549.1.1.10": (RSA_PSS, None),
    "1.2.840.10045.2.1": (ECDSA, None),
    "1.2.840.10045.4.1": (ECDSA, "sha1"),
    "1.2.840.10045.4.3.2": (ECDSA, "sha256"),
    "1.2.840.10045.4.3.3": (ECDSA, "sha384"),
    "1.2.840.10045.4.3.4": (ECDSA, "sha512"),
}


def _has_more_elements(der: bytes, limit: int) -> bool:
    """Whether BER holds more than `limit` elements, counted in one pass without parsing them.

    The walk is flat: a constructed element's contents are the elements that
    follow it, a primitive one's are skipped, and an indefinite length's end
    is an element of its own. Malformed input is left to asn1crypto to refuse.
    """
    position, end, count = 0, len(der), 0
    while position < end:
        count += 1
        if count > limit:
            return True
        constructed = der[position] & 0x20
        if der[position] & 0x1F == 0x1F:
            position += 1
            while position < end and der[position] & 0x80:
                position += 1
        position += 1
        if position >= end:
            return False
        first = der[position]
        position += 1
        if first == 0x80 or constructed:
            position += first & 0x7F if first & 0x80 else 0
            continue
        if first & 0x80:
            length = int.from_bytes(der[position : position + (first & 0x7F)], "big")
            position += first & 0x7F
        else:
            length = first
        position += length
    return False


_DOTTED: dict[bytes, str] = {}
MAX_DOTTED = 1024


def _dotted(oid: core.ObjectIdentifier) -> str:
    """`oid.dotted`, each encoding decoded once: every signature names the same dozen object identifiers."""
    known = isinstance(oid, core.ObjectIdentifier)
    if known and (found := _DOTTED.get(oid.contents)) is not None:
        return found
    dotted = str(oid.dotted)
    if known and len(_DOTTED) < MAX_DOTTED:
        _DOTTED[oid.contents] = dotted
    return dotted


def load_content_info(der: bytes) -> cms.ContentInfo:
    """The parsed ContentInfo, its size in elements bounded first (MAX_CMS_ELEMENTS)."""
    if _has_more_elements(der, MAX_CMS_ELEMENTS):
        raise too_complex(f"a signature or envelope of more than {MAX_CMS_ELEMENTS} ASN.1 elements")
    try:
        info = cms.ContentInfo.load(der, strict=True)
        info["content_type"].dotted  # noqa: B018 - forces the lazy parse here
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError):
        raise Rejected(Reason.BAD_CMS_STRUCTURE) from None
    return info


def content_info_type(info: cms.ContentInfo) -> str:
    try:
        return _dotted(info["content_type"])
    except (ValueError, TypeError, KeyError):
        raise Rejected(Reason.BAD_CMS_STRUCTURE) from None


def econtent(info: cms.ContentInfo) -> bytes | None:
    """The encapsulated content of a SignedData, or None when detached."""
    try:
        encapsulated = info["content"]["encap_content_info"]
        if _dotted(encapsulated["content_type"]) != OID_DATA:
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


@dataclass(frozen=True)
class SignerInfo:
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
    if oid not in DIGESTS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    return DIGESTS[oid]


def _pss_padding(parameters: algos.RSASSAPSSParams, digest_name: str) -> tuple[padding.PSS, type[hashes.HashAlgorithm]]:
    """PSS parameters as read from the message (their defaults are SHA-1, hence weak)."""
    name, hash_type = _digest_of(_dotted(parameters["hash_algorithm"]["algorithm"]))
    mask = parameters["mask_gen_algorithm"]
    if _dotted(mask["algorithm"]) != "1.2.840.113549.1.1.8":
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    mask_name, mask_hash = _digest_of(_dotted(mask["parameters"]["algorithm"]))
    if mask_name in WEAK_DIGESTS:
        raise Rejected(Reason.WEAK_DIGEST)
    if name != digest_name or parameters["trailer_field"].native not in (1, "trailer_field_bc"):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    return padding.PSS(mgf=padding.MGF1(mask_hash()), salt_length=parameters["salt_length"].native), hash_type


def read_signer_info(info: cms.ContentInfo, detached: bool, content: bytes) -> SignerInfo:
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
    if detached and (embedded := econtent(info)) is not None:
        raise Rejected(Reason.BAD_CMS_STRUCTURE if crlf(embedded) == content else Reason.BAD_SIGNATURE)
    signer_info = signer_infos[0]
    attributes = signer_info["signed_attrs"]
    if isinstance(attributes, core.Void) or not len(attributes):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    found: dict[str, list[Any]] = {}
    for attribute in attributes:
        found.setdefault(_dotted(attribute["type"]), []).append(attribute["values"])
    content_types = found.get(_OID_CONTENT_TYPE, [])
    digests = found.get(_OID_MESSAGE_DIGEST, [])
    if len(content_types) != 1 or len(digests) != 1 or len(found.get(_OID_SIGNING_TIME, [])) > 1:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    encapsulated_type = _dotted(signed_data["encap_content_info"]["content_type"])
    if _dotted(_single_value(content_types[0])) != encapsulated_type:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    message_digest = _single_value(digests[0]).native
    signing_times = found.get(_OID_SIGNING_TIME)
    signing_time = _single_value(signing_times[0]).native if signing_times else None
    if not isinstance(message_digest, bytes) or not (signing_time is None or isinstance(signing_time, datetime)):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)

    digest_name, digest = _digest_of(_dotted(signer_info["digest_algorithm"]["algorithm"]))
    algorithm = signer_info["signature_algorithm"]
    oid = _dotted(algorithm["algorithm"])
    if oid not in _SIGNATURE_ALGORITHMS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    family, implied = _SIGNATURE_ALGORITHMS[oid]
    if implied not in (None, digest_name):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    pss, signature_hash = (None, digest)
    if family == RSA_PSS:
        pss, signature_hash = _pss_padding(algorithm["parameters"], digest_name)

    encoded = attributes.dump()
    certificates = tuple(
        choice.chosen.dump() for choice in signed_data["certificates"] if choice.name == "certificate"
    ) if not isinstance(signed_data["certificates"], core.Void) else ()
    return SignerInfo(
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


def subject_key_ids(certificate: x509.Certificate) -> set[bytes]:
    """The certificate's SKI extension, and the RFC 5280 method-1 value, as a signer may use either."""
    identifiers = set()
    try:
        identifiers.add(x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest)
        identifiers.add(certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    except (x509.ExtensionNotFound, ValueError, UnsupportedAlgorithm):
        pass
    return identifiers


def matches(identifier: core.Choice, certificate: x509.Certificate) -> bool:
    """Whether a signer or recipient identifier (issuerAndSerialNumber or a key identifier) names the certificate."""
    if identifier.name == "subject_key_identifier":
        return bytes(identifier.chosen.native) in subject_key_ids(certificate)
    if identifier.name == "r_key_id":
        # RecipientKeyIdentifier: its first field is the subjectKeyIdentifier.
        return bytes(identifier.chosen[0].native) in subject_key_ids(certificate)
    issuer_and_serial = identifier.chosen
    if issuer_and_serial["serial_number"].native != certificate.serial_number:
        return False
    issuer = issuer_and_serial["issuer"]
    encoded = certificate.issuer.public_bytes()
    return issuer.dump() == encoded or issuer == type(issuer).load(encoded)


def load_certificates(encoded: Sequence[bytes]) -> list[x509.Certificate]:
    loaded = []
    for der in encoded:
        try:
            loaded.append(x509.load_der_x509_certificate(der))
        except (ValueError, x509.InvalidVersion):
            continue  # a certificate we cannot read cannot be the signer's
    return loaded


MALFORMED_DER = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError,
    x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
)
