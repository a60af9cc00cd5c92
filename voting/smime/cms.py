"""CMS (RFC 5652) read with `voting.smime.der`: the SignedData fields a signature check needs, and nothing more.

Pure parsing: DER in, the few values out, every malformation a `Rejected`
with `Reason.BAD_CMS_STRUCTURE` or the reason of the attribute at fault.
Fields are read in the order the checks need them, and a field's form when
it is first needed, so that of two faults the same one is always reported.
An envelope is read by `voting.smime.decrypt`; checking what a signature says
is `voting.smime.verify`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import Any

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from voting.mime import crlf, too_complex
from voting.reasons import Reason, Rejected
from voting.smime.der import (
    CONSTRUCTED,
    INTEGER,
    SEQUENCE,
    SET,
    Element,
    element,
    integer,
    malformed,
    octets,
    oid,
    only,
    tagged,
)
from voting.smime.der import children as der_children

MAX_CMS_ELEMENTS = 30_000
"""ASN.1 elements in one CMS structure. A signature and its certificates have hundreds, and 25 MB of content
in chunks of 1,000 bytes 25,000; the reader spends a Python step on each element it walks, every chunk of a
streamed content among them, and asn1crypto, which opens envelopes, more than that."""

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
    is an element of its own. Malformed input is left to the reader to refuse.
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


@dataclass(frozen=True)
class ContentInfo:
    """A ContentInfo read at its top level: the type of its content, and the content left unread until needed.

    An envelope's content is read by `voting.smime.decrypt`.
    """

    der: bytes
    content_type: str
    content: Element | None
    """The [0] EXPLICIT field, whatever its tag: its form is checked when it is read."""
    leftovers: tuple[Element, ...]

    @cached_property
    def signed_data(self) -> SignedData:
        """The SignedData, read on first use: a detached signature is not looked into before its check."""
        return _signed_data(self)


@dataclass(frozen=True)
class SignedData:
    """The SignedData fields a check reads, as elements of the ContentInfo's bytes."""

    encapsulated_type: str
    encapsulated: Element | None
    """The eContent OCTET STRING; its chunks are joined when it is read."""
    fields: tuple[Element | None, ...]
    leftovers: tuple[Element, ...]


REQUIRED = None
ANY = -1
"""An OPTIONAL field of any tag (ANY DEFINED BY): present whenever a child is left."""


def _fields(data: bytes, found: Element, layout: Sequence[int | None], leftovers: list[Element]) -> list[Element | None]:
    """The children of a SEQUENCE, given to its fields in order, as asn1crypto gave them.

    `layout` has, for each field, REQUIRED, ANY, or the context tag number of
    an OPTIONAL field, which is absent when the next child has another tag. A
    required field missing is malformed. Children beyond the last field, which
    asn1crypto ignored, go to `leftovers` (see `SignerInfo.leftovers`).
    """
    present = der_children(data, found)
    count, at = len(present), 0
    assigned: list[Element | None] = []
    for number in layout:
        if at < count and (number is REQUIRED or number == ANY or present[at][0] & _CLASS_AND_NUMBER == 0x80 + number):
            assigned.append(present[at])
            at += 1
        elif number is REQUIRED:
            raise malformed()
        else:
            assigned.append(None)
    if at < count:
        leftovers.extend(present[at:])
    return assigned


_CLASS_AND_NUMBER = 0xDF
"""An identifier octet without its constructed bit: how an OPTIONAL field is recognised."""
_CONTEXT_0 = 0x80


def _explicit(data: bytes, found: Element, number: int, leftovers: list[Element]) -> Element:
    """What an [number] EXPLICIT field holds; anything after it goes to `leftovers`."""
    _, _, start, end, _ = tagged(found, _CONTEXT_0 + number | CONSTRUCTED)
    inner = element(data, start, end)
    if inner[4] != end:
        leftovers.append(found)
    return inner


def read_content_info(der: bytes) -> ContentInfo:
    """The ContentInfo the bytes hold and nothing after it, its size in elements bounded first (MAX_CMS_ELEMENTS).

    Every element takes two bytes at least, so only a structure longer than
    twice the bound can exceed it, and only such a one is counted.
    """
    if (len(der) + 1) // 2 > MAX_CMS_ELEMENTS and _has_more_elements(der, MAX_CMS_ELEMENTS):
        raise too_complex(f"a signature or envelope of more than {MAX_CMS_ELEMENTS} ASN.1 elements")
    leftovers: list[Element] = []
    content_type, content = _fields(der, tagged(only(der, 0, len(der)), SEQUENCE), (REQUIRED, ANY), leftovers)
    assert content_type is not None
    return ContentInfo(der, oid(der, content_type), content, tuple(leftovers))


def _signed_data(info: ContentInfo) -> SignedData:
    """SignedData: version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls, signerInfos.

    Only what the encapsulated content needs is checked here; the rest is
    `read_signer_info`'s, so that the content of a signature whose other
    fields are broken is still read, and shown as what the signature was over.
    """
    data = info.der
    leftovers: list[Element] = []
    if info.content_type != OID_SIGNED_DATA or info.content is None:
        raise malformed()
    body = tagged(_explicit(data, info.content, 0, leftovers), SEQUENCE)
    fields = _fields(data, body, (REQUIRED, REQUIRED, REQUIRED, 0, 1, REQUIRED), leftovers)
    version, encapsulated = fields[0], fields[2]
    assert version is not None and encapsulated is not None
    # Version 1 is also PKCS #7's, whose content is of any tag; asn1crypto told them apart so.
    layout = (REQUIRED, ANY) if integer(data, version) == 1 else (REQUIRED, 0)
    content_type, content = _fields(data, tagged(encapsulated, SEQUENCE), layout, leftovers)
    assert content_type is not None
    return SignedData(
        oid(data, content_type),
        None if content is None else _explicit(data, content, 0, leftovers),
        tuple(fields),
        tuple(leftovers),
    )


def econtent(info: ContentInfo) -> bytes | None:
    """The encapsulated content of a SignedData, or None when detached."""
    signed_data = info.signed_data
    if signed_data.encapsulated_type != OID_DATA:
        raise malformed()
    if signed_data.encapsulated is None:
        return None
    return octets(info.der, signed_data.encapsulated)


def _unread(found: Element | None, identifier: int, leftovers: list[Element]) -> None:
    """A field no check reads goes to `leftovers` if it is not of its form."""
    if found is not None and found[0] != identifier:
        leftovers.append(found)


@dataclass(frozen=True, slots=True)
class SignerId:
    """How a signature or an envelope names a certificate: issuer (DER as sent) and serial number, or key identifier."""

    issuer: bytes = b""
    serial: int | None = None
    key_id: bytes | None = None


def signer_identifier(data: bytes, found: Element) -> SignerId:
    """A SignerIdentifier or RecipientIdentifier: IssuerAndSerialNumber, or [0] IMPLICIT SubjectKeyIdentifier.

    The issuer is kept as sent; `matches` reads it only when the serial number is the certificate's.
    """
    if found[0] & _CLASS_AND_NUMBER == _CONTEXT_0:
        return SignerId(key_id=octets(data, found, _CONTEXT_0))
    leftovers: list[Element] = []
    issuer, serial = _fields(data, tagged(found, SEQUENCE), (REQUIRED, REQUIRED), leftovers)
    assert issuer is not None and serial is not None
    if leftovers:
        raise malformed()
    return SignerId(issuer=data[issuer[1] : issuer[4]], serial=integer(data, serial))


@dataclass(frozen=True)
class SignerInfo:
    """The few signerInfo fields the check needs, read once."""

    signer_id: SignerId | None
    """None when malformed, which finding the signer reports (`Reason.BAD_CMS_STRUCTURE`)."""
    digest_name: str
    family: str
    pss: padding.PSS | None
    signature_hash: type[hashes.HashAlgorithm]
    signed_attributes: bytes
    message_digest: bytes
    signing_time: datetime | None
    signature: bytes
    certificates: tuple[bytes, ...]
    leftovers: bool
    """Whether the structure holds elements beyond its fields, or a field no check reads is not of its form.

    asn1crypto, which read these structures before, ignored them; they are
    refused once the signature is checked, so that a message whose signature
    does not hold keeps the reason it had."""


def _single_value(data: bytes, values: Element) -> Element:
    found = der_children(data, values)
    if len(found) != 1:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    return found[0]


def _digest_of(oid: str) -> tuple[str, type[hashes.HashAlgorithm]]:
    if oid not in DIGESTS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    return DIGESTS[oid]


def _algorithm(data: bytes, found: Element, leftovers: list[Element]) -> tuple[str, Element | None]:
    """An AlgorithmIdentifier: the algorithm, and its parameters if any."""
    algorithm, parameters = _fields(data, tagged(found, SEQUENCE), (REQUIRED, ANY), leftovers)
    assert algorithm is not None
    return oid(data, algorithm), parameters


_SHA1 = "1.3.14.3.2.26"
_MGF1 = "1.2.840.113549.1.1.8"


def _pss_padding(
    data: bytes, parameters: Element | None, digest_name: str, leftovers: list[Element]
) -> tuple[padding.PSS, type[hashes.HashAlgorithm]]:
    """RSASSA-PSS-params as read from the message (their defaults are SHA-1, hence weak)."""
    if parameters is None:
        raise malformed()
    hash_field, mask_field, salt_field, trailer_field = _fields(
        data, tagged(parameters, SEQUENCE), (0, 1, 2, 3), leftovers
    )
    hash_algorithm = _SHA1 if hash_field is None else _algorithm(
        data, _explicit(data, hash_field, 0, leftovers), leftovers)[0]
    name, hash_type = _digest_of(hash_algorithm)
    mask_oid, mask_parameters = (
        (_MGF1, None) if mask_field is None else _algorithm(data, _explicit(data, mask_field, 1, leftovers), leftovers)
    )
    if mask_oid != _MGF1:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    if mask_field is None:
        mask_name, mask_hash = _digest_of(_SHA1)
    elif mask_parameters is None:
        raise malformed()
    else:
        mask_name, mask_hash = _digest_of(_algorithm(data, mask_parameters, leftovers)[0])
    if mask_name in WEAK_DIGESTS:
        raise Rejected(Reason.WEAK_DIGEST)
    if name != digest_name or (
        trailer_field is not None and integer(data, _explicit(data, trailer_field, 3, leftovers)) != 1
    ):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    salt_length = 20 if salt_field is None else integer(data, _explicit(data, salt_field, 2, leftovers))
    return padding.PSS(mgf=padding.MGF1(mask_hash()), salt_length=salt_length), hash_type


_UTC_TIME = 0x17
_UTC_TIME_TEXT = re.compile(rb"[0-9]{12}Z")


def _signing_time(data: bytes, found: Element) -> Any:
    """A Time: UTCTime YYMMDDHHMMSSZ, as every client sends it, read here; any other form by asn1crypto's rules."""
    kind, start, contents_start, contents_end, end = found
    text = data[contents_start:contents_end]
    try:
        if kind == _UTC_TIME and _UTC_TIME_TEXT.fullmatch(text):
            year = int(text[0:2])
            return datetime(year + (2000 if year < 50 else 1900), int(text[2:4]), int(text[4:6]), int(text[6:8]),
                            int(text[8:10]), int(text[10:12]), tzinfo=UTC)
        return asn1_cms.Time.load(data[start:end]).native
    except MALFORMED_DER:
        raise malformed() from None


def _certificates(data: bytes, found: Element | None) -> tuple[bytes, ...]:
    """The certificates a SignedData carries, as sent; the other CertificateChoices are checked for form only."""
    if found is None:
        return ()
    certificates = []
    for choice in der_children(data, tagged(found, _CONTEXT_0 | CONSTRUCTED)):
        kind = choice[0]
        if kind == SEQUENCE:
            certificates.append(data[choice[1] : choice[4]])
        elif kind == _CONTEXT_0 + 1 | CONSTRUCTED:
            # An AttributeCertificateV1, told from a V2 one by the version its info starts with.
            integer(data, der_children(data, tagged(element(data, choice[2], choice[3]), SEQUENCE))[0])
        elif kind not in (_CONTEXT_0 | CONSTRUCTED, _CONTEXT_0 + 2 | CONSTRUCTED, _CONTEXT_0 + 3 | CONSTRUCTED):
            raise malformed()
    return tuple(certificates)


def _signer_id(data: bytes, sid: Element) -> SignerId | None:
    """The signer's identifier; its form is checked here, what it holds when the signer is looked for."""
    kind, _, _, contents_end, end = sid
    if kind not in (SEQUENCE, _CONTEXT_0) and not (kind == _CONTEXT_0 | CONSTRUCTED and contents_end != end):
        raise malformed()
    try:
        return signer_identifier(data, sid)
    except Rejected:
        return None


def read_signer_info(info: ContentInfo, detached: bool, content: bytes) -> SignerInfo:
    """Check 4, structure half: one signerInfo, its attributes and algorithms.

    A detached signature must not embed content. When it embeds a text other
    than the part the reader sees (eContent confusion: the signature is over
    the hidden text), the message is rejected as a bad signature, which is what
    it is to the reader and what Thunderbird reports; an embedded copy of the
    same text is a structure error.
    """
    data, signed_data = info.der, info.signed_data
    leftovers = [*info.leftovers, *signed_data.leftovers]
    _, algorithms, _, certificate_set, crls, signer_info_set = signed_data.fields
    assert signer_info_set is not None
    signer_infos = der_children(data, tagged(signer_info_set, SET))
    if len(signer_infos) != 1:
        raise malformed()
    if detached and (embedded := econtent(info)) is not None:
        raise Rejected(Reason.BAD_CMS_STRUCTURE if crlf(embedded) == content else Reason.BAD_SIGNATURE)
    signer_version, sid, digest_algorithm, attributes, signature_algorithm, signature, unsigned = _fields(
        data, tagged(signer_infos[0], SEQUENCE), (REQUIRED, REQUIRED, REQUIRED, 0, REQUIRED, REQUIRED, 1), leftovers
    )
    assert sid is not None and digest_algorithm is not None and signature_algorithm is not None
    assert signature is not None
    if attributes is None or not (attribute_list := der_children(data, tagged(attributes, _CONTEXT_0 | CONSTRUCTED))):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    found: dict[str, list[Element]] = {}
    for attribute in attribute_list:
        kind, values = _fields(data, tagged(attribute, SEQUENCE), (REQUIRED, REQUIRED), leftovers)
        assert kind is not None and values is not None
        found.setdefault(oid(data, kind), []).append(tagged(values, SET))
    content_types = found.get(_OID_CONTENT_TYPE, [])
    digests = found.get(_OID_MESSAGE_DIGEST, [])
    if len(content_types) != 1 or len(digests) != 1 or len(found.get(_OID_SIGNING_TIME, [])) > 1:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    if oid(data, _single_value(data, content_types[0])) != signed_data.encapsulated_type:
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)
    message_digest = octets(data, _single_value(data, digests[0]))
    signing_times = found.get(_OID_SIGNING_TIME)
    signing_time = _signing_time(data, _single_value(data, signing_times[0])) if signing_times else None
    if not (signing_time is None or isinstance(signing_time, datetime)):
        raise Rejected(Reason.BAD_SIGNED_ATTRIBUTES)

    digest_name, digest = _digest_of(_algorithm(data, digest_algorithm, leftovers)[0])
    algorithm, parameters = _algorithm(data, signature_algorithm, leftovers)
    if algorithm not in _SIGNATURE_ALGORITHMS:
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    family, implied = _SIGNATURE_ALGORITHMS[algorithm]
    if implied not in (None, digest_name):
        raise Rejected(Reason.UNSUPPORTED_ALGORITHM)
    pss, signature_hash = (None, digest)
    if family == RSA_PSS:
        pss, signature_hash = _pss_padding(data, parameters, digest_name, leftovers)

    certificates = _certificates(data, certificate_set)
    signer_id = _signer_id(data, sid)
    signature_value = octets(data, signature)
    for field, identifier in ((algorithms, SET), (crls, _CONTEXT_0 + 1 | CONSTRUCTED),
                              (signer_version, INTEGER), (unsigned, _CONTEXT_0 + 1 | CONSTRUCTED)):
        _unread(field, identifier, leftovers)
    return SignerInfo(
        signer_id=signer_id,
        digest_name=digest_name,
        family=family,
        pss=pss,
        signature_hash=signature_hash,
        # The signature covers the attributes' encoding as a SET OF, not as the [0] IMPLICIT field.
        signed_attributes=b"\x31" + data[attributes[1] + 1 : attributes[4]],
        message_digest=message_digest,
        signing_time=signing_time,
        signature=signature_value,
        certificates=certificates,
        leftovers=bool(leftovers),
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


def matches(identifier: SignerId, certificate: x509.Certificate) -> bool:
    """Whether a signer or recipient identifier (issuerAndSerialNumber or a key identifier) names the certificate.

    An issuer encoded otherwise than in the certificate still names it if the
    two are the same X.500 name, compared as asn1crypto compares names.
    """
    if identifier.key_id is not None:
        return identifier.key_id in subject_key_ids(certificate)
    if identifier.serial != certificate.serial_number:
        return False
    encoded = _issuer(certificate)
    return identifier.issuer == encoded or asn1_x509.Name.load(identifier.issuer) == asn1_x509.Name.load(encoded)


@lru_cache(maxsize=4096)
def _issuer(certificate: x509.Certificate) -> bytes:
    """The certificate's issuer as DER, encoded once: a delegation's every ballot carries the same certificate."""
    return certificate.issuer.public_bytes()


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
