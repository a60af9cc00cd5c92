"""The CMS reader on hostile and unusual encodings, through `verify_message` on whole messages: every malformed
signature gets its one reason and never a crash; BER as clients stream it still verifies; `signed_sha256` is the
SHA-256 of the signed attributes exactly as signed, checked against asn1crypto as an independent reader."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from bench.mime_bombs import chunked_signature_bomb
from tests.smime_fixtures import ENTITY, NOW, Identity, headers, make_identity, openssl_sign
from voting.reasons import Reason
from voting.smime.cms import MAX_CMS_ELEMENTS
from voting.smime.der import MAX_INDEFINITE_DEPTH, element
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, TrustedCertificate, signed_sha256_of, verify_message

SENDER = "fra@delegations.example"
SIGNATURE_PART = re.compile(
    rb"(Content-Transfer-Encoding: base64\r\n(?:[^\r\n]+\r\n)*\r\n)([A-Za-z0-9+/=\r\n]+?)(\r\n\r\n|\r\n--|\r\n$|$)")
"""The base64 body of the signature part (or of the whole pkcs7-mime message), CRLF line ends."""
OID_SIGNED_DATA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"


@pytest.fixture(scope="module")
def fra() -> Identity:
    return make_identity(SENDER)


@pytest.fixture(scope="module")
def ours(fra: Identity) -> bytes:
    """A reply signed by our own signer: multipart/signed, a DER signature."""
    return headers(SENDER) + sign_entity(ENTITY, fra.key, fra.certificate)


def pinned(identity: Identity) -> Trust:
    return Trust(registered=(TrustedCertificate(identity.certificate, owner="FRA"),))


def signature_der(raw: bytes) -> bytes:
    match = SIGNATURE_PART.search(raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
    assert match is not None
    return base64.b64decode(match.group(2))


def with_signature(raw: bytes, der: bytes) -> bytes:
    """The message with its signature's DER replaced by `der`, everything else as it was."""
    raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    match = SIGNATURE_PART.search(raw)
    assert match is not None
    encoded = base64.encodebytes(der).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    return raw[: match.start(2)] + encoded + raw[match.end(2) :]


def opaque(der: bytes) -> bytes:
    """An application/pkcs7-mime signed-data message carrying `der`."""
    return (headers(SENDER) + b"MIME-Version: 1.0\r\n"
            b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der).replace(b"\n", b"\r\n"))


def with_length(der: bytes, length: bytes) -> bytes:
    """The outer ContentInfo with its length octets replaced."""
    first = der[1]
    header = 2 + (first & 0x7F if first & 0x80 else 0)
    return der[:1] + length + der[header:]


def two_signer_infos(der: bytes) -> bytes:
    info = cms.ContentInfo.load(der)
    signer_infos = info["content"]["signer_infos"]
    info["content"]["signer_infos"] = cms.SignerInfos([signer_infos[0], signer_infos[0].copy()])
    return info.dump(force=True)


def nested_indefinite(depth: int) -> bytes:
    """A signed-data ContentInfo whose content nests `depth` indefinite-length SEQUENCEs."""
    inner = b"\x30\x80" * depth + b"\x00\x00" * depth
    return b"\x30\x80" + OID_SIGNED_DATA + b"\xa0\x80" + inner + b"\x00\x00\x00\x00"


MALFORMED: dict[str, tuple[Callable[[bytes], bytes], Reason]] = {
    "truncated after the first octet": (lambda der: der[:1], Reason.BAD_CMS_STRUCTURE),
    "truncated in the middle": (lambda der: der[: len(der) // 2], Reason.BAD_CMS_STRUCTURE),
    "truncated by its last octet": (lambda der: der[:-1], Reason.BAD_CMS_STRUCTURE),
    "a length larger than the data": (lambda der: with_length(der, b"\x83\x01\x00\x00"), Reason.BAD_CMS_STRUCTURE),
    "a length of 127 octets": (lambda der: with_length(der, b"\xff" + b"\xff" * 127), Reason.BAD_CMS_STRUCTURE),
    "a length shorter than the contents": (lambda der: with_length(der, b"\x81\x80"), Reason.BAD_CMS_STRUCTURE),
    "an indefinite length on a primitive": (lambda der: b"\x30\x80\x06\x80" + der[4:], Reason.BAD_CMS_STRUCTURE),
    "a SET where the ContentInfo SEQUENCE is": (lambda der: b"\x31" + der[1:], Reason.BAD_CMS_STRUCTURE),
    "two signerInfos": (two_signer_infos, Reason.BAD_CMS_STRUCTURE),
    "a zero octet after the ContentInfo": (lambda der: der + b"\x00", Reason.BAD_CMS_STRUCTURE),
    "a NULL after the ContentInfo": (lambda der: der + b"\x05\x00", Reason.BAD_CMS_STRUCTURE),
    "a second ContentInfo after the first": (lambda der: der + der, Reason.BAD_CMS_STRUCTURE),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_signature_gets_its_reason(fra: Identity, ours: bytes, name: str) -> None:
    change, reason = MALFORMED[name]
    result = verify_message(with_signature(ours, change(signature_der(ours))), pinned(fra), NOW)
    assert (result.valid, result.reason, result.signature_intact) == (False, reason, False), result


@pytest.mark.parametrize("depth", [MAX_INDEFINITE_DEPTH, 10_000])
def test_indefinite_lengths_nested_past_the_bound_are_a_structure_error(fra: Identity, depth: int) -> None:
    result = verify_message(opaque(nested_indefinite(depth)), pinned(fra), NOW)
    assert (result.valid, result.reason) == (False, Reason.BAD_CMS_STRUCTURE), result


def test_more_elements_than_the_bound_is_too_complex(fra: Identity) -> None:
    over = verify_message(chunked_signature_bomb(MAX_CMS_ELEMENTS), pinned(fra), NOW)
    assert (over.valid, over.reason) == (False, Reason.TOO_COMPLEX), over
    assert f"more than {MAX_CMS_ELEMENTS} ASN.1 elements" in over.detail
    # The same streamed structure within the bound is read to its end: its content, x after x, is no MIME entity.
    under = verify_message(chunked_signature_bomb(MAX_CMS_ELEMENTS - 100), pinned(fra), NOW)
    assert (under.valid, under.reason) == (False, Reason.MALFORMED_MIME), under


def test_high_tag_numbers_are_read_and_non_minimal_ones_refused() -> None:
    assert element(b"\x9f\x81\x00\x01\xaa", 0, 5) == (0x9F, 0, 4, 5, 5)
    assert element(b"\xbf\x1f\x80\x00\x00", 0, 5) == (0xBF, 0, 3, 3, 5)
    for refused in (b"\x9f\x80\x81\x00\x00", b"\x9f\x1e\x00", b"\x9f\x81"):
        result = verify_message(opaque(b"\x30\x80" + OID_SIGNED_DATA + refused + b"\x00\x00"), Trust(), NOW)
        assert result.reason == Reason.BAD_CMS_STRUCTURE, refused


def test_an_unsigned_attribute_with_a_high_tag_number_keeps_the_signature_valid(fra: Identity, ours: bytes) -> None:
    info = cms.ContentInfo.load(signature_der(ours))
    placeholder, high_tag = b"\x04\x04\x5a\x5a\x5a\x5a", b"\x9f\x81\x00\x02\xaa\xbb"  # [128] IMPLICIT, as long
    info["content"]["signer_infos"][0]["unsigned_attrs"] = cms.CMSAttributes([
        cms.CMSAttribute({"type": "1.2.3.4", "values": [core.OctetString(placeholder[2:])]})
    ])
    der = info.dump(force=True)
    assert der.count(placeholder) == 1
    result = verify_message(with_signature(ours, der.replace(placeholder, high_tag)), pinned(fra), NOW)
    assert result.valid, result


def signed_attributes_as_signed(der: bytes) -> bytes:
    """The signed attributes as a SET OF, read with asn1crypto: what the signer's signature covers."""
    attributes = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signed_attrs"]
    return b"\x31" + attributes.dump()[1:]


SIGNERS: dict[str, Callable[[Path, Identity], bytes]] = {
    "our signer": lambda directory, identity: headers(SENDER) + sign_entity(ENTITY, identity.key, identity.certificate),
    "openssl cms -sign": lambda directory, identity: openssl_sign(directory, identity),
    "openssl cms -sign -nodetach -stream (BER)": lambda directory, identity: openssl_sign(
        directory, identity, "-nodetach", "-stream"),
}


@pytest.mark.parametrize("signer", SIGNERS)
def test_signed_sha256_is_the_hash_of_the_attributes_as_signed(fra: Identity, tmp_path: Path, signer: str) -> None:
    message = SIGNERS[signer](tmp_path, fra)
    der = signature_der(message)
    as_signed = signed_attributes_as_signed(der)
    signature = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signature"].native
    public_key = fra.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, as_signed, padding.PKCS1v15(), hashes.SHA256())  # the oracle's bytes are the signed
    result = verify_message(message, pinned(fra), NOW)
    assert result.valid and result.signed_content is not None, result
    assert result.signed_sha256 == hashlib.sha256(as_signed).hexdigest() == signed_sha256_of(message)


def test_streamed_ber_content_in_chunks_is_read_whole(fra: Identity, tmp_path: Path) -> None:
    message = openssl_sign(tmp_path, fra, "-nodetach", "-stream", "-binary")
    der = signature_der(message)
    assert der[1] == 0x80, "openssl -stream writes indefinite lengths"
    result = verify_message(message, pinned(fra), NOW)
    assert result.valid and result.signed_content == ENTITY, result


ISSUERS: dict[str, tuple[Callable[[str], asn1_x509.Name], Reason | None]] = {
    "as in the certificate, PrintableString for UTF8String": (
        lambda name: asn1_x509.Name.build({"common_name": name}, use_printable=True), None),
    "in other case and spacing": (
        lambda name: asn1_x509.Name.build({"common_name": "  " + name.upper().replace(" ", "  ")}), None),
    "another name": (lambda name: asn1_x509.Name.build({"common_name": name + "."}), Reason.NO_SIGNER_CERTIFICATE),
}


@pytest.mark.parametrize("issuer", ISSUERS)
def test_an_issuer_encoded_otherwise_names_the_certificate_as_x500_compares_names(
    fra: Identity, ours: bytes, issuer: str
) -> None:
    build, reason = ISSUERS[issuer]
    info = cms.ContentInfo.load(signature_der(ours))
    signer = info["content"]["signer_infos"][0]
    name = fra.certificate.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(name, str)
    signer["sid"] = cms.SignerIdentifier({"issuer_and_serial_number": {
        "issuer": build(name), "serial_number": fra.certificate.serial_number}})
    result = verify_message(with_signature(ours, info.dump(force=True)), pinned(fra), NOW)
    assert (result.valid, result.reason) == (reason is None, reason), result


def tlv(identifier: int, contents: bytes) -> bytes:
    """One DER element."""
    length = len(contents)
    encoded = bytes([length]) if length < 0x80 else bytes([0x80 | (length.bit_length() + 7) // 8]) + length.to_bytes(
        (length.bit_length() + 7) // 8, "big")
    return bytes([identifier]) + encoded + contents


def with_signature_algorithm(der: bytes, algorithm: bytes) -> bytes:
    """The SignedData with its one signerInfo's signatureAlgorithm replaced by `algorithm`, encoded as it comes."""
    info = cms.ContentInfo.load(der)
    signed_data = info["content"]
    signer = signed_data["signer_infos"][0]
    fields = [signer[name].dump() for name in ("version", "sid", "digest_algorithm", "signed_attrs")]
    signer_info = tlv(0x30, b"".join([*fields, algorithm, signer["signature"].dump()]))
    body = b"".join(signed_data[name].dump() for name in ("version", "digest_algorithms", "encap_content_info",
                                                           "certificates"))
    return tlv(0x30, info["content_type"].dump() + tlv(0xA0, tlv(0x30, body + tlv(0x31, signer_info))))


SHA256 = tlv(0x30, tlv(0x06, bytes.fromhex("608648016503040201")))
PSS_OID = tlv(0x06, bytes.fromhex("2a864886f70d01010a"))
MGF1 = tlv(0x06, bytes.fromhex("2a864886f70d010108"))
MGF1_SHA256 = tlv(0x30, MGF1 + SHA256)
PSS_PARAMETERS: dict[str, tuple[bytes, Reason | None]] = {
    "as openssl sent them": (b"", None),
    "absent": (PSS_OID, Reason.BAD_CMS_STRUCTURE),
    "NULL": (PSS_OID + b"\x05\x00", Reason.BAD_CMS_STRUCTURE),
    "all defaults (SHA-1)": (PSS_OID + tlv(0x30, b""), Reason.WEAK_DIGEST),
    "trailer field 2": (PSS_OID + tlv(0x30, tlv(0xA0, SHA256) + tlv(0xA1, MGF1_SHA256) + tlv(0xA2, b"\x02\x01\x20")
                                      + tlv(0xA3, b"\x02\x01\x02")), Reason.UNSUPPORTED_ALGORITHM),
    "a mask other than MGF1": (PSS_OID + tlv(0x30, tlv(0xA0, SHA256) + tlv(0xA1, SHA256)),
                               Reason.UNSUPPORTED_ALGORITHM),
    "MGF1 without its digest": (PSS_OID + tlv(0x30, tlv(0xA0, SHA256) + tlv(0xA1, tlv(0x30, MGF1))),
                                Reason.BAD_CMS_STRUCTURE),
    "a negative salt length": (PSS_OID + tlv(0x30, tlv(0xA0, SHA256) + tlv(0xA1, MGF1_SHA256)
                                            + tlv(0xA2, b"\x02\x01\xff")), Reason.BAD_CMS_STRUCTURE),
    "the salt length as an OCTET STRING": (PSS_OID + tlv(0x30, tlv(0xA0, SHA256) + tlv(0xA1, MGF1_SHA256)
                                                        + tlv(0xA2, b"\x04\x01\x20")), Reason.BAD_CMS_STRUCTURE),
    # The [0] after the [1] is not the hash field, which keeps its default, SHA-1, not the digest's SHA-256.
    "fields out of order": (PSS_OID + tlv(0x30, tlv(0xA1, MGF1_SHA256) + tlv(0xA0, SHA256)),
                            Reason.UNSUPPORTED_ALGORITHM),
}


@pytest.mark.parametrize("parameters", PSS_PARAMETERS)
def test_pss_parameters_get_the_reasons_they_always_had(fra: Identity, tmp_path: Path, parameters: str) -> None:
    message = openssl_sign(tmp_path, fra, "-keyopt", "rsa_padding_mode:pss")
    der = signature_der(message)
    algorithm, reason = PSS_PARAMETERS[parameters]
    if algorithm:
        der = with_signature_algorithm(der, tlv(0x30, algorithm))
    result = verify_message(with_signature(message, der), pinned(fra), NOW)
    assert (result.valid, result.reason) == (reason is None, reason), result
