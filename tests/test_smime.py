"""S/MIME sign and verify: our signatures against openssl, openssl's against ours, one negative test per check."""

from __future__ import annotations

import base64
import email
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.smime_fixtures import (
    ENTITY,
    NOW,
    Identity,
    headers,
    make_ca,
    make_identity,
    openssl_encrypt,
    openssl_sign,
    openssl_verifies,
    run_openssl,
    write_pem,
)
from voting import pki
from voting.pki import fingerprint
from voting.reasons import Reason
from voting.smime.decrypt import ContentKey
from voting.smime.entity import MAX_MESSAGE_BYTES, decrypt_message
from voting.smime.sign import sign_detached_der, sign_entity
from voting.smime.verify import Trust, TrustedCertificate, Verification, verify_detached_der, verify_message

SENDER = "fra@delegations.example"


def pinned(identity: Identity, **options: object) -> Trust:
    return Trust(registered=(TrustedCertificate(identity.certificate, owner="FRA", **options),))  # type: ignore[arg-type]


def signed_by_us(identity: Identity, sender: str = SENDER, entity: bytes = ENTITY) -> bytes:
    return headers(sender) + sign_entity(entity, identity.key, identity.certificate)


def assert_rejected(result: Verification, reason: Reason) -> None:
    assert (result.valid, result.reason) == (False, reason), result


@pytest.fixture(scope="module")
def fra() -> Identity:
    return make_identity(SENDER)


# ---------------------------------------------------------------- our signatures


def test_sign_entity_passes_openssl_and_our_verifier(fra: Identity, tmp_path: Path) -> None:
    message = signed_by_us(fra)
    assert openssl_verifies(tmp_path, message, fra.issuer)
    result = verify_message(message, pinned(fra), NOW)
    assert result.valid and result.reason is None and result.owner == "FRA"
    assert result.signed_content == ENTITY
    assert (result.digest_algorithm, result.signature_algorithm) == ("sha256", "rsa-pkcs1v15")
    assert result.from_address == SENDER
    assert result.signing_time is not None and abs(result.signing_time - datetime.now(UTC)) < timedelta(minutes=5)


def test_sign_entity_canonicalises_and_stays_seven_bit(fra: Identity) -> None:
    wrapped = sign_entity(ENTITY.replace(b"\r\n", b"\n"), fra.key, fra.certificate)
    assert wrapped.isascii() and b"\n" not in wrapped.replace(b"\r\n", b"")
    assert all(len(line) <= 76 for line in wrapped.split(b"\r\n") if not line.startswith(b"Content-Type:"))
    assert b"micalg=sha-256" in wrapped and b"name=smime.p7s" in wrapped
    assert verify_message(headers() + wrapped, pinned(fra), NOW).signed_content == ENTITY


def test_sign_entity_refuses_eight_bit_content(fra: Identity) -> None:
    with pytest.raises(ValueError, match="7-bit"):
        sign_entity("Content-Type: text/plain\r\n\r\nсогласен\r\n".encode(), fra.key, fra.certificate)


def test_ecdsa_signer_key_signs_too(tmp_path: Path) -> None:
    identity = make_identity(SENDER, key_kind="p256")
    message = signed_by_us(identity)
    assert openssl_verifies(tmp_path, message, identity.issuer)
    assert verify_message(message, pinned(identity), NOW).signature_algorithm == "ecdsa"


def test_detached_der_round_trip_and_tamper(fra: Identity) -> None:
    manifest = b'{"vote": "unsc-2020-0007"}\n'
    signature = sign_detached_der(manifest, fra.key, fra.certificate, [fra.issuer])
    assert verify_detached_der(manifest, signature, pinned(fra), NOW).valid
    assert_rejected(verify_detached_der(manifest + b" ", signature, pinned(fra), NOW), Reason.BAD_SIGNATURE)
    assert_rejected(verify_detached_der(manifest, signature[:-9], pinned(fra), NOW), Reason.BAD_CMS_STRUCTURE)


def test_as_json_has_the_verify_mail_fields(fra: Identity) -> None:
    document = verify_message(signed_by_us(fra), pinned(fra), NOW).as_json()
    assert document["valid"] is True and document["reason"] is None and document["signature_intact"] is True
    assert document["signer"]["sha256"] == fingerprint(fra.certificate)
    assert document["signer"]["emails"] == [SENDER]
    assert set(document["signer"]) >= {"subject", "not_before", "not_after"}
    assert document["digest_algorithm"] == "sha256" and document["signed_content"] == ENTITY.decode()
    rejected = verify_message(b"Subject: hi\r\n\r\nno signature\r\n", pinned(fra), NOW).as_json()
    assert rejected["reason"] == "not-signed" and rejected["signer"] is None


def test_naive_verification_time_is_a_programming_error(fra: Identity) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_message(signed_by_us(fra), pinned(fra), datetime(2030, 1, 1))


# ---------------------------------------------------------------- openssl's signatures


@pytest.mark.parametrize("key_kind", ["rsa2048", "p256"])
@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_openssl_replies_verify(tmp_path: Path, key_kind: str, digest: str, opaque: bool) -> None:
    identity = make_identity(SENDER, key_kind=key_kind)
    message = openssl_sign(tmp_path, identity, *(["-nodetach"] if opaque else []), digest=digest)
    result = verify_message(message, pinned(identity), NOW)
    assert result.valid, result
    assert result.digest_algorithm == digest and result.owner == "FRA"
    assert result.signed_content == ENTITY


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("smime", ()),
        ("smime", ("-nodetach",)),
        ("cms", ("-binary",)),
        ("cms", ("-nodetach", "-binary")),
        ("cms", ("-text",)),
        ("cms", ("-certfile", "{issuer}")),
        ("cms", ("-nocerts", "-certfile", "{chain}")),
    ],
    ids=["smime-detached", "smime-opaque", "cms-binary", "cms-opaque-binary", "cms-text-mode", "with-chain",
         "signer-not-first"],
)
@pytest.mark.parametrize("key_kind", ["rsa2048", "p384"])
def test_openssl_modes_and_certificate_sets_verify(tmp_path: Path, command: str, options: tuple[str, ...],
                                                   key_kind: str) -> None:
    identity = make_identity(SENDER, key_kind=key_kind)
    message = openssl_sign(tmp_path, identity, *options, command=command)
    result = verify_message(message, pinned(identity), NOW)
    assert result.valid and result.owner == "FRA", result
    if "{chain}" in options:
        signature = email.message_from_bytes(message).get_payload()[1].get_payload(decode=True)
        carried = [c.chosen.dump() for c in cms.ContentInfo.load(signature)["content"]["certificates"]]
        assert carried.index(identity.certificate.public_bytes(Encoding.DER)) == 1, "the signer is not first"


def test_openssl_rsa_pss_reply_verifies(tmp_path: Path, fra: Identity) -> None:
    message = openssl_sign(tmp_path, fra, "-keyopt", "rsa_padding_mode:pss")
    result = verify_message(message, pinned(fra), NOW)
    assert result.valid and result.signature_algorithm == "rsa-pss"


def test_openssl_keyid_reply_verifies(tmp_path: Path, fra: Identity) -> None:
    assert verify_message(openssl_sign(tmp_path, fra, "-keyid"), pinned(fra), NOW).valid


def test_openssl_nocerts_reply_verifies_against_the_registered_certificate(tmp_path: Path, fra: Identity) -> None:
    message = openssl_sign(tmp_path, fra, "-nocerts")
    assert verify_message(message, pinned(fra), NOW).valid
    assert_rejected(verify_message(message, Trust(), NOW), Reason.NO_SIGNER_CERTIFICATE)


def test_reply_with_bare_lf_line_endings_verifies(fra: Identity) -> None:
    message = signed_by_us(fra).replace(b"\r\n", b"\n")
    assert verify_message(message, pinned(fra), NOW).valid


def test_anchor_trusted_signer_is_valid_without_owner(fra: Identity) -> None:
    result = verify_message(signed_by_us(fra), Trust(anchors=(fra.issuer,)), NOW)
    assert result.valid and result.owner is None


def test_registered_signer_that_must_chain_does(fra: Identity) -> None:
    trust = Trust(registered=(TrustedCertificate(fra.certificate, "FRA", chain_to_anchor=True),), anchors=(fra.issuer,))
    assert verify_message(signed_by_us(fra), trust, NOW).owner == "FRA"


# ---------------------------------------------------------------- one negative test per check


def test_too_large(fra: Identity) -> None:
    huge = signed_by_us(fra) + b" " * MAX_MESSAGE_BYTES
    assert_rejected(verify_message(huge, pinned(fra), NOW), Reason.TOO_LARGE)


def _nested(depth: int) -> bytes:
    entity = b"Content-Type: text/plain\r\n\r\nS/2020/654: YES\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        entity = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--'
            + boundary + b"\r\n" + entity + b"\r\n--" + boundary + b"--\r\n"
        )
    return entity


def test_deeply_nested_multipart_is_too_complex(fra: Identity) -> None:
    assert_rejected(verify_message(headers() + _nested(500), pinned(fra), NOW), Reason.TOO_COMPLEX)


def test_deeply_nested_signed_content_is_too_complex(fra: Identity) -> None:
    assert_rejected(verify_message(signed_by_us(fra, entity=_nested(30)), pinned(fra), NOW), Reason.TOO_COMPLEX)


def test_malformed_mime(fra: Identity) -> None:
    assert_rejected(verify_message(b"no header here\r\n\r\nbody", pinned(fra), NOW), Reason.MALFORMED_MIME)
    unclosed = signed_by_us(fra).rsplit(b"--", 2)[0]
    assert_rejected(verify_message(unclosed, pinned(fra), NOW), Reason.MALFORMED_MIME)


def test_garbage_base64_signature(fra: Identity) -> None:
    message = signed_by_us(fra)
    head, _, rest = message.partition(b"filename=smime.p7s\r\n\r\n")
    garbage = head + b"filename=smime.p7s\r\n\r\n%%%not*base64!!!\r\n" + rest[rest.index(b"\r\n--") :]
    assert_rejected(verify_message(garbage, pinned(fra), NOW), Reason.MALFORMED_MIME)


def test_truncated_der_signature(fra: Identity) -> None:
    message = signed_by_us(fra)
    head, _, rest = message.partition(b"filename=smime.p7s\r\n\r\n")
    encoded, _, tail = rest.partition(b"\r\n--")
    truncated = base64.encodebytes(base64.b64decode(b"".join(encoded.split()))[:300])
    message = head + b"filename=smime.p7s\r\n\r\n" + truncated + b"\r\n--" + tail
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.BAD_CMS_STRUCTURE)


def test_not_signed(fra: Identity) -> None:
    assert_rejected(verify_message(headers() + ENTITY, pinned(fra), NOW), Reason.NOT_SIGNED)


def test_signed_part_wrapped_in_mixed_is_not_entirely_signed(fra: Identity) -> None:
    signed = sign_entity(ENTITY, fra.key, fra.certificate)
    wrapper = (
        headers() + b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
        b"Content-Type: text/plain\r\n\r\nS/2020/654: NO\r\n--outer\r\n" + signed + b"\r\n--outer--\r\n"
    )
    assert_rejected(verify_message(wrapper, pinned(fra), NOW), Reason.NOT_ENTIRELY_SIGNED)


def test_third_part_beside_the_signature_is_not_entirely_signed(fra: Identity) -> None:
    message = signed_by_us(fra)
    boundary = message.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    extra = b"\r\n--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nS/2020/654: NO\r\n--" + boundary + b"--\r\n"
    message = message[: message.rindex(b"\r\n--" + boundary + b"--")] + extra
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.NOT_ENTIRELY_SIGNED)


def test_encrypted(tmp_path: Path, fra: Identity) -> None:
    _, cert_path = write_pem(tmp_path, "recipient", fra)
    encrypted = run_openssl("cms", "-encrypt", "-aes256", cert_path, stdin=ENTITY)
    assert_rejected(verify_message(headers() + encrypted, pinned(fra), NOW), Reason.ENCRYPTED)


def test_detached_signature_with_econtent_is_bad_structure(tmp_path: Path, fra: Identity) -> None:
    opaque = openssl_sign(tmp_path, fra, "-nodetach")
    p7m = opaque.split(b"\n\n", 1)[1]
    detached = signed_by_us(fra)
    head, _, rest = detached.partition(b"filename=smime.p7s\r\n\r\n")
    confused = head + b"filename=smime.p7s\r\n\r\n" + p7m.strip() + b"\r\n--" + rest.partition(b"\r\n--")[2]
    assert_rejected(verify_message(confused, pinned(fra), NOW), Reason.BAD_CMS_STRUCTURE)


def test_missing_signed_attributes(tmp_path: Path, fra: Identity) -> None:
    message = openssl_sign(tmp_path, fra, "-noattr")
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.BAD_SIGNED_ATTRIBUTES)


def test_sha1_is_a_weak_digest(tmp_path: Path, fra: Identity) -> None:
    message = openssl_sign(tmp_path, fra, digest="sha1")
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.WEAK_DIGEST)


def test_unsupported_curve(tmp_path: Path) -> None:
    identity = make_identity(SENDER, key_kind="p224")
    message = openssl_sign(tmp_path, identity)
    assert_rejected(verify_message(message, pinned(identity), NOW), Reason.UNSUPPORTED_ALGORITHM)


def test_rsa_1024_is_a_weak_key(tmp_path: Path) -> None:
    identity = make_identity(SENDER, key_kind="rsa1024")
    message = openssl_sign(tmp_path, identity)
    assert_rejected(verify_message(message, pinned(identity), NOW), Reason.WEAK_KEY)


def test_one_byte_changed_in_the_signed_body(fra: Identity) -> None:
    message = signed_by_us(fra).replace(b"S/2020/654: YES", b"S/2020/654: NO ")
    result = verify_message(message, pinned(fra), NOW)
    assert_rejected(result, Reason.BAD_SIGNATURE)
    assert not result.signature_intact and result.owner is None


def test_one_byte_changed_in_a_signed_header(fra: Identity) -> None:
    message = signed_by_us(fra).replace(b"charset=utf-8", b"charset=utf-7")
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_altered_signature_value(fra: Identity) -> None:
    message = signed_by_us(fra)
    head, _, rest = message.partition(b"filename=smime.p7s\r\n\r\n")
    encoded, _, tail = rest.partition(b"\r\n--")
    der = bytearray(base64.b64decode(b"".join(encoded.split())))
    der[-1] ^= 1  # cryptography puts no unsigned attributes: the DER ends with the signature value
    message = head + b"filename=smime.p7s\r\n\r\n" + base64.encodebytes(bytes(der)) + b"\r\n--" + tail
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_unknown_signer(fra: Identity) -> None:
    result = verify_message(signed_by_us(fra), Trust(), NOW)
    assert_rejected(result, Reason.UNKNOWN_SIGNER)
    assert result.signature_intact and result.signer == fra.certificate and result.owner is None


def test_untrusted_chain(fra: Identity) -> None:
    stranger = make_ca("Another CA")
    assert_rejected(verify_message(signed_by_us(fra), Trust(anchors=(stranger.certificate,)), NOW), Reason.UNTRUSTED_CHAIN)
    trust = Trust(
        registered=(TrustedCertificate(fra.certificate, "FRA", chain_to_anchor=True),), anchors=(stranger.certificate,)
    )
    assert_rejected(verify_message(signed_by_us(fra), trust, NOW), Reason.UNTRUSTED_CHAIN)


def test_revoked(fra: Identity) -> None:
    assert_rejected(verify_message(signed_by_us(fra), pinned(fra, revoked=True), NOW), Reason.REVOKED_CERTIFICATE)


def test_expired_and_not_yet_valid_at_the_receipt_time(fra: Identity) -> None:
    message = signed_by_us(fra)
    after = fra.certificate.not_valid_after_utc + timedelta(seconds=1)
    before = fra.certificate.not_valid_before_utc - timedelta(seconds=1)
    assert_rejected(verify_message(message, pinned(fra), after), Reason.CERTIFICATE_EXPIRED)
    assert_rejected(verify_message(message, pinned(fra), before), Reason.CERTIFICATE_NOT_YET_VALID)


def test_certificate_without_email_protection(tmp_path: Path) -> None:
    identity = make_identity(SENDER, usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    message = openssl_sign(tmp_path, identity)
    assert_rejected(verify_message(message, pinned(identity), NOW), Reason.NOT_FOR_EMAIL)


def test_certificate_without_mailbox(fra: Identity) -> None:
    identity = make_identity(SENDER, san=False)
    assert_rejected(verify_message(signed_by_us(identity), pinned(identity), NOW), Reason.NO_MAILBOX)


def test_subject_email_is_the_mailbox_of_a_certificate_without_san() -> None:
    identity = make_identity(SENDER, san=False, subject_email=True)
    assert verify_message(signed_by_us(identity), pinned(identity), NOW).valid


@pytest.mark.parametrize(
    "sender",
    [
        "usa@delegations.example",
        "France <usa@delegations.example>",
        "fra@delegations.example <usa@delegations.example>",
        "usa@delegations.example <fra@delegations.example>",
        "fra@delegations.example, usa@delegations.example",
        "=?utf-8?q?usa@delegations.example?= <fra@delegations.example>",
        "Delegations: fra@delegations.example;",
        "France",
        "",
    ],
)
def test_from_mismatch(fra: Identity, sender: str) -> None:
    assert_rejected(verify_message(signed_by_us(fra, sender=sender), pinned(fra), NOW), Reason.FROM_MISMATCH)


def test_two_from_headers(fra: Identity) -> None:
    message = b"From: usa@delegations.example\r\n" + signed_by_us(fra)
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.FROM_MISMATCH)


@pytest.mark.parametrize("sender", ["FRA@Delegations.Example", "=?utf-8?q?La_France?= <fra@delegations.example>"])
def test_from_matches_case_insensitively_and_with_encoded_names(fra: Identity, sender: str) -> None:
    assert verify_message(signed_by_us(fra, sender=sender), pinned(fra), NOW).valid


# ---------------------------------------------------------------- encrypted ballots

SECRETARIAT = "votes@secretariat.example"


def as_recipient(identity: Identity) -> pki.Identity:
    return pki.Identity(key=identity.key, certificate=identity.certificate)


@pytest.fixture(scope="module")
def secretariat_ec() -> pki.Identity:
    """Like `pki.SecretariatKeys`' signer: ECDSA P-256, so openssl encrypts to it with ECDH."""
    return as_recipient(make_identity(SECRETARIAT, key_kind="p256"))


@pytest.fixture(scope="module")
def secretariat_rsa() -> pki.Identity:
    return as_recipient(make_identity(SECRETARIAT, key_kind="rsa3072"))


def signed_then_encrypted(directory: Path, signer: Identity, recipient: x509.Certificate, *options: str,
                          sender: str = SENDER) -> bytes:
    """An openssl-signed reply, encrypted by openssl to the recipient, outer headers prepended."""
    signed = openssl_sign(directory, signer)[len(headers()) :]
    return headers(sender) + openssl_encrypt(directory, signed, recipient, *options)


@pytest.mark.parametrize(
    ("recipient", "options"),
    [
        ("secretariat_ec", ("-aes256",)),
        ("secretariat_ec", ("-aes-128-cbc", "-keyid")),
        ("secretariat_ec", ("-aes-256-gcm",)),
        ("secretariat_ec", ("-aes256", "-keyopt", "ecdh_kdf_md:sha256")),
        ("secretariat_ec", ("-aes-192-cbc", "-keyopt", "ecdh_kdf_md:sha512")),
        ("secretariat_rsa", ("-aes256",)),
        ("secretariat_rsa", ("-aes256", "-keyopt", "rsa_padding_mode:oaep")),
        ("secretariat_rsa", ("-aes-128-gcm", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256")),
        ("secretariat_rsa", ("-aes256", "-keyid")),
    ],
    ids=["ec-aes256-cbc", "ec-aes128-cbc-keyid", "ec-aes256-gcm", "ec-kdf-sha256", "ec-aes192-kdf-sha512",
         "rsa-pkcs1v15", "rsa-oaep-sha1", "rsa-oaep-sha256-gcm", "rsa-keyid"],
)
def test_a_reply_encrypted_to_the_secretariat_is_decrypted_then_verified(
    tmp_path: Path, fra: Identity, recipient: str, options: tuple[str, ...], request: pytest.FixtureRequest
) -> None:
    secretariat: pki.Identity = request.getfixturevalue(recipient)
    message = signed_then_encrypted(tmp_path, fra, secretariat.certificate, *options)
    result = verify_message(message, pinned(fra), NOW, secretariat)
    assert result.valid and result.owner == "FRA" and result.signed_content == ENTITY, result
    assert result.decrypted is not None and result.from_address == SENDER
    assert result.as_json()["decrypted"] is True


def test_encrypted_to_someone_else_is_unreadable(
    tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity, secretariat_rsa: pki.Identity
) -> None:
    stranger = make_identity("usa@delegations.example", key_kind="p384").certificate
    message = signed_then_encrypted(tmp_path, fra, stranger, "-aes256")
    assert_rejected(verify_message(message, pinned(fra), NOW, secretariat_ec), Reason.ENCRYPTED)
    to_rsa = signed_then_encrypted(tmp_path, fra, secretariat_rsa.certificate, "-aes256")
    assert_rejected(verify_message(to_rsa, pinned(fra), NOW, secretariat_ec), Reason.ENCRYPTED)
    assert decrypt_message(message, secretariat_ec) is None


def test_encrypted_without_a_key_is_unreadable(tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity) -> None:
    message = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-aes256")
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.ENCRYPTED)


def test_triple_des_is_unreadable(tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity) -> None:
    """openssl's default cipher, 3DES with the RFC 3217 key wrap, is not decrypted: clients must choose AES."""
    message = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-des3")
    assert_rejected(verify_message(message, pinned(fra), NOW, secretariat_ec), Reason.ENCRYPTED)


def test_encrypted_but_unsigned_is_not_signed_only_under_gcm(
    tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity
) -> None:
    gcm = headers() + openssl_encrypt(tmp_path, ENTITY, secretariat_ec.certificate, "-aes-256-gcm")
    result = verify_message(gcm, pinned(fra), NOW, secretariat_ec)
    assert_rejected(result, Reason.NOT_SIGNED)
    assert result.decrypted is not None and result.decrypted.entity.endswith(b"S/2020/654: YES\r\n")
    cbc = headers() + openssl_encrypt(tmp_path, ENTITY, secretariat_ec.certificate, "-aes256")
    assert_rejected(verify_message(cbc, pinned(fra), NOW, secretariat_ec), Reason.ENCRYPTED)


def _with_ciphertext_block_flipped(message: bytes, block_from_end: int, byte: int) -> bytes:
    """The message with one byte of its CBC ciphertext changed, `block_from_end` 16-byte blocks from the end."""
    head, _, body = message.partition(b"\r\n\r\n") if b"\r\n\r\n" in message else message.partition(b"\n\n")
    info = cms.ContentInfo.load(base64.b64decode(body))
    encrypted = info["content"]["encrypted_content_info"]
    data = bytearray(encrypted["encrypted_content"].native)
    data[len(data) - 16 * block_from_end + 15] ^= byte
    encrypted["encrypted_content"] = bytes(data)
    separator = b"\r\n\r\n" if b"\r\n\r\n" in message else b"\n\n"
    return head + separator + base64.encodebytes(info.dump(force=True))


def test_cbc_ballots_give_one_answer_whatever_the_padding(
    tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity
) -> None:
    """A padding oracle needs two answers; every altered CBC ciphertext gets the same one."""
    message = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-aes256")
    assert verify_message(message, pinned(fra), NOW, secretariat_ec).valid
    # Flipping the last byte of the last-but-one block changes the padding byte: one value keeps it valid
    # (0x01 after xor), the others make it invalid. Inside the ciphertext, a flip garbles the entity instead.
    altered = [_with_ciphertext_block_flipped(message, 2, byte) for byte in range(1, 256)]
    altered += [_with_ciphertext_block_flipped(message, blocks, 0x20) for blocks in (3, 5, 8)]
    answers = {(r.valid, r.reason, r.as_json()["reason"]) for r in
               (verify_message(raw, pinned(fra), NOW, secretariat_ec) for raw in altered)}
    assert answers == {(False, Reason.ENCRYPTED, "encrypted")}


def test_the_outer_from_is_the_one_checked(tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity) -> None:
    message = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-aes256", sender="usa@delegations.example")
    assert_rejected(verify_message(message, pinned(fra), NOW, secretariat_ec), Reason.FROM_MISMATCH)


def test_a_content_key_opens_its_own_message_only(tmp_path: Path, fra: Identity, secretariat_ec: pki.Identity) -> None:
    first = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-aes-256-gcm")
    second = signed_then_encrypted(tmp_path, fra, secretariat_ec.certificate, "-aes-256-gcm")
    opened = decrypt_message(first, secretariat_ec)
    assert opened is not None and len(opened.content_key) == 32
    assert decrypt_message(first, ContentKey(opened.content_key)) == opened
    assert verify_message(first, pinned(fra), NOW, ContentKey(opened.content_key)).valid
    assert_rejected(verify_message(second, pinned(fra), NOW, ContentKey(opened.content_key)), Reason.ENCRYPTED)


def _damaged_envelope(message: bytes, data: st.DataObject) -> bytes:
    head, _, encoded = message.partition(b"\n\n")
    der = bytearray(base64.b64decode(b"".join(encoded.split())))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    return head + b"\n\n" + base64.encodebytes(bytes(der))


@pytest.fixture(scope="module")
def encrypted_gcm(tmp_path_factory: pytest.TempPathFactory, fra: Identity, secretariat_ec: pki.Identity) -> bytes:
    return signed_then_encrypted(tmp_path_factory.mktemp("gcm"), fra, secretariat_ec.certificate, "-aes-256-gcm")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_envelopes_never_crash_nor_mislead(
    fra: Identity, secretariat_ec: pki.Identity, encrypted_gcm: bytes, data: st.DataObject
) -> None:
    result = verify_message(_damaged_envelope(encrypted_gcm, data), pinned(fra), NOW, secretariat_ec)
    # AES-GCM authenticates the ciphertext: what opens at all is the genuine signed reply.
    assert not result.valid or (result.signer == fra.certificate and result.signed_content == ENTITY)


# ---------------------------------------------------------------- properties and bounds


@pytest.fixture(scope="module")
def valid_message(fra: Identity) -> tuple[bytes, int, int]:
    message = signed_by_us(fra)
    boundary = message.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    start = message.index(b"--" + boundary + b"\r\n") + len(boundary) + 4
    end = message.index(b"\r\n--" + boundary, start)
    return message, start, end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_single_byte_flip_in_the_signed_part_is_valid(
    fra: Identity, valid_message: tuple[bytes, int, int], data: st.DataObject
) -> None:
    message, start, end = valid_message
    position = data.draw(st.integers(start, end - 1))
    flip = data.draw(st.integers(1, 255))
    altered = bytearray(message)
    altered[position] ^= flip
    assert not verify_message(bytes(altered), pinned(fra), NOW).valid


# ---------------------------------------------------------------- stored vectors

VECTORS = Path(__file__).resolve().parent / "vectors"


@pytest.mark.parametrize(
    ("name", "digest"),
    [("openssl-detached-p384-sha384.eml", "sha384"), ("openssl-opaque-keyid-p384-sha512.eml", "sha512")],
)
def test_stored_openssl_vectors(name: str, digest: str) -> None:
    certificate = x509.load_pem_x509_certificate((VECTORS / "fra.cert.pem").read_bytes())
    trust = Trust(registered=(TrustedCertificate(certificate, owner="FRA"),))
    result = verify_message((VECTORS / name).read_bytes(), trust, datetime(2030, 1, 1, tzinfo=UTC))
    assert result.valid and result.owner == "FRA" and result.digest_algorithm == digest, result
    assert result.signed_content == (VECTORS / "reply.txt").read_bytes()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_signatures_and_arbitrary_bytes_never_crash_nor_mislead(fra: Identity, data: st.DataObject) -> None:
    message = signed_by_us(fra)
    head, _, rest = message.partition(b"filename=smime.p7s\r\n\r\n")
    encoded, _, tail = rest.partition(b"\r\n--")
    der = bytearray(base64.b64decode(b"".join(encoded.split())))
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    damaged = head + b"filename=smime.p7s\r\n\r\n" + base64.encodebytes(bytes(der)) + b"\r\n--" + tail
    result = verify_message(damaged, pinned(fra), NOW)
    # Bytes outside what is signed (the carried certificate, the unsigned digest list) may change
    # and leave the signature good; whatever is accepted is still the genuine signer and text.
    assert not result.valid or (result.signer == fra.certificate and result.signed_content == ENTITY)
    assert not verify_message(data.draw(st.binary(max_size=2000)), pinned(fra), NOW).valid


def self_signed(extension: x509.ExtensionType) -> Identity:
    """A self-signed certificate for the sender's mailbox with one more extension (critical if a keyUsage)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SENDER)])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(SENDER)]), critical=False)
        .add_extension(extension, critical=isinstance(extension, x509.KeyUsage))
        .sign(key, hashes.SHA256())
    )
    return Identity(key, certificate, certificate)


HOSTILE_HEADER_TEXT = st.text(alphabet="()<>@,;:\\\".[]= \t*'%abc-_0123456789=?", max_size=300)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_headers_and_mime_parameters_never_crash_nor_mislead(fra: Identity, data: st.DataObject) -> None:
    """Outer and inner headers changed at random: From, Content-Type parameters (RFC 2231 pieces), folding."""
    message = signed_by_us(fra)
    head, _, body = message.partition(b"\r\n\r\n")
    where = data.draw(st.sampled_from(["from", "outer content-type", "inner content-type", "new header"]))
    noise = data.draw(HOSTILE_HEADER_TEXT).encode()
    if where == "from":
        head = head.replace(f"From: {SENDER}".encode(), b"From: " + noise)
    elif where == "outer content-type":
        head = head.replace(b"Content-Type: multipart/signed;", b"Content-Type: multipart/signed; " + noise + b";")
    elif where == "inner content-type":
        body = body.replace(b"Content-Type: text/plain; charset=utf-8", b"Content-Type: text/plain; " + noise, 1)
    else:
        fold = data.draw(st.sampled_from([b"\r\n ", b"\r\n\t", b" "]))
        head += b"\r\nX-Noise: " + noise.replace(b",", b"," + fold)
    started = time.perf_counter()
    result = verify_message(head + b"\r\n\r\n" + body, pinned(fra), NOW)
    assert time.perf_counter() - started < 1.0, "verification must stay fast on hostile headers"
    assert not result.valid or (result.owner == "FRA" and result.from_address == SENDER
                                and result.signed_content == ENTITY), result


def test_endless_header_lines_are_refused_quickly(fra: Identity) -> None:
    message = signed_by_us(fra)
    flood = b"".join(b"X-Line-%d: x\r\n" % n for n in range(60_000))
    started = time.perf_counter()
    result = verify_message(flood + message, pinned(fra), NOW)
    assert (result.valid, result.reason) == (False, Reason.TOO_LARGE) and time.perf_counter() - started < 2.0


@pytest.mark.parametrize(
    "usage",
    [
        x509.KeyUsage(False, False, True, False, False, False, False, False, False),
        x509.KeyUsage(False, False, False, False, False, True, True, False, False),
    ],
    ids=["key-encipherment-only", "certificate-signing-only"],
)
def test_a_certificate_whose_key_usage_does_not_allow_signing(usage: x509.KeyUsage) -> None:
    identity = self_signed(usage)
    assert_rejected(verify_message(signed_by_us(identity), pinned(identity), NOW), Reason.NOT_FOR_EMAIL)


# ---------------------------------------------------------------- voting verify-mail


def verify_mail(*arguments: str | Path) -> tuple[int, dict[str, object]]:
    """`python -m voting verify-mail ... --json`, as a user runs it: exit status and the JSON document."""
    result = subprocess.run(
        [sys.executable, "-m", "voting", "verify-mail", *map(str, arguments), "--json"],
        capture_output=True, check=False, timeout=60, cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stderr == b"" or result.returncode != 0, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_verify_mail_json_reports_the_signature_in_full() -> None:
    status, document = verify_mail(VECTORS / "openssl-opaque-keyid-p384-sha512.eml", "--cert", VECTORS / "fra.cert.pem",
                                   "--at", "2030-01-01T00:00:00Z")
    assert status == 0 and document["valid"] is True and document["reason"] is None
    signer = document["signer"]
    assert isinstance(signer, dict)
    certificate = x509.load_pem_x509_certificate((VECTORS / "fra.cert.pem").read_bytes())
    assert signer == {
        "subject": "CN=fra@delegations.example",
        "issuer": "CN=Test Secretariat CA",
        "serial_number": format(certificate.serial_number, "x"),
        "emails": ["fra@delegations.example"],
        "sha256": fingerprint(certificate),
        "public_key": "ec-secp384r1",
        "not_before": "2020-01-01T00:00:00+00:00",
        "not_after": "2050-01-01T00:00:00+00:00",
        "valid_at_check": True,
    }
    assert (document["digest_algorithm"], document["signature_algorithm"]) == ("sha512", "ecdsa")
    assert document["checked_at"] == "2030-01-01T00:00:00+00:00"
    assert isinstance(document["signing_time"], str) and datetime.fromisoformat(document["signing_time"]).tzinfo
    exact = (VECTORS / "reply.txt").read_bytes()
    assert document["signed_content"] == exact.decode()
    assert base64.b64decode(str(document["signed_content_base64"])) == exact
    assert document["from"] == "fra@delegations.example" and document["decrypted"] is False


def test_verify_mail_json_reports_why_it_is_invalid(tmp_path: Path) -> None:
    status, document = verify_mail(VECTORS / "openssl-detached-p384-sha384.eml", "--cert", VECTORS / "fra.cert.pem",
                                   "--at", "2050-06-01T00:00:00Z")
    assert status == 1 and (document["valid"], document["reason"]) == (False, "certificate-expired")
    assert document["signature_intact"] is True
    assert isinstance(document["signer"], dict) and document["signer"]["valid_at_check"] is False
    unsigned = tmp_path / "unsigned.eml"
    unsigned.write_bytes(headers() + ENTITY)
    status, document = verify_mail(unsigned, "--ca", VECTORS / "ca.cert.pem")
    assert status == 1 and document["reason"] == "not-signed" and document["signer"] is None
    assert document["signed_content"] is None


def test_verify_mail_with_a_trust_anchor_names_no_owner() -> None:
    status, document = verify_mail(VECTORS / "openssl-detached-p384-sha384.eml", "--ca", VECTORS / "ca.cert.pem",
                                   "--at", "2030-01-01T00:00:00Z")
    assert status == 0 and document["owner"] is None and document["digest_algorithm"] == "sha384"


# ---------------------------------------------------------------- docs/smime.md

DOCS = Path(__file__).resolve().parents[1] / "docs" / "smime.md"


def reason_table() -> str:
    """The table of docs/smime.md, generated from the reasons' own words."""
    rows = "".join(f"| `{reason.value}` | {reason.describe()} |\n" for reason in Reason)
    return "| code | what the delegation is told |\n|---|---|\n" + rows


def test_docs_list_every_reason_in_its_own_words() -> None:
    text = DOCS.read_text()
    assert reason_table() in text, "regenerate the reason table of docs/smime.md from Reason.describe()"
    for reason in Reason:
        assert f"`{reason.value}`" in text


def test_docs_link_the_tests_that_prove_each_client() -> None:
    text = DOCS.read_text()
    for test in ("test_interop.py", "test_smime.py", "test_gpgsm.py", "test_mutt.py"):
        assert f"(../tests/{test})" in text and (DOCS.parents[1] / "tests" / test).exists()


# ---------------------------------------------------------------- re-signed damage


def resigned(identity: Identity, mutate: Callable[[cms.CMSAttributes], cms.CMSAttributes],
             *, tag_as_signed: bool = False) -> bytes:
    """Our valid reply, its signed attributes changed by `mutate`, then signed again with the real key.

    Only the property under test is wrong: the signature over the new
    attributes is good (over the SET OF encoding, or, with `tag_as_signed`,
    over the [0]-tagged bytes as they sit in the message, which RFC 5652 §5.4
    forbids).
    """
    message = signed_by_us(identity)
    head, _, rest = message.partition(b"filename=smime.p7s\r\n\r\n")
    encoded, _, tail = rest.partition(b"\r\n--")
    info = cms.ContentInfo.load(base64.b64decode(b"".join(encoded.split())))
    signer_info = info["content"]["signer_infos"][0]
    signer_info["signed_attrs"] = mutate(signer_info["signed_attrs"])
    in_message = signer_info["signed_attrs"].dump(force=True)
    to_sign = in_message if tag_as_signed else b"\x31" + in_message[1:]
    assert isinstance(identity.key, rsa.RSAPrivateKey)
    signer_info["signature"] = identity.key.sign(to_sign, padding.PKCS1v15(), hashes.SHA256())
    der = info.dump(force=True)
    return head + b"filename=smime.p7s\r\n\r\n" + base64.encodebytes(der) + b"\r\n--" + tail


def with_attribute(kind: str, values: list[object]) -> Callable[[cms.CMSAttributes], cms.CMSAttributes]:
    def mutate(attributes: cms.CMSAttributes) -> cms.CMSAttributes:
        return cms.CMSAttributes([*attributes, cms.CMSAttribute({"type": kind, "values": values})])
    return mutate


def replacing(kind: str, values: list[object]) -> Callable[[cms.CMSAttributes], cms.CMSAttributes]:
    def mutate(attributes: cms.CMSAttributes) -> cms.CMSAttributes:
        return cms.CMSAttributes([
            cms.CMSAttribute({"type": kind, "values": values}) if a["type"].native == kind else a for a in attributes
        ])
    return mutate


def test_resigning_unchanged_attributes_stays_valid(fra: Identity) -> None:
    assert verify_message(resigned(fra, lambda attributes: attributes), pinned(fra), NOW).valid


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (with_attribute("content_type", ["data"]), Reason.BAD_SIGNED_ATTRIBUTES),
        (with_attribute("message_digest", [b"\x00" * 32]), Reason.BAD_SIGNED_ATTRIBUTES),
        (replacing("content_type", ["signed_data"]), Reason.BAD_SIGNED_ATTRIBUTES),
        (replacing("message_digest", [b"\x01" * 32]), Reason.BAD_SIGNATURE),
    ],
    ids=["duplicated-content-type", "duplicated-message-digest", "mismatched-content-type",
         "mismatched-message-digest"],
)
def test_signed_attributes_duplicated_or_mismatched(
    fra: Identity, mutate: Callable[[cms.CMSAttributes], cms.CMSAttributes], reason: Reason
) -> None:
    assert_rejected(verify_message(resigned(fra, mutate), pinned(fra), NOW), reason)


def test_signed_attributes_signed_under_the_implicit_tag(fra: Identity) -> None:
    message = resigned(fra, lambda attributes: attributes, tag_as_signed=True)
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_md5_is_a_weak_digest(tmp_path: Path, fra: Identity) -> None:
    message = openssl_sign(tmp_path, fra, digest="md5")
    assert_rejected(verify_message(message, pinned(fra), NOW), Reason.WEAK_DIGEST)


def test_a_footer_added_by_a_list_server_breaks_the_signature(fra: Identity) -> None:
    message = signed_by_us(fra)
    footered = message.replace(b"S/2020/654: YES\r\n", b"S/2020/654: YES\r\n-- \r\nSent through the list\r\n")
    assert footered != message
    assert_rejected(verify_message(footered, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_eight_bit_re_encoding_breaks_the_signature(fra: Identity) -> None:
    entity = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
              b"S/2020/654: POUR =E2=80=94 la France\r\n")
    message = signed_by_us(fra, entity=entity)
    relayed = message.replace(b"Content-Transfer-Encoding: quoted-printable", b"Content-Transfer-Encoding: 8bit"
                              ).replace(b"=E2=80=94", "—".encode())
    assert verify_message(message, pinned(fra), NOW).valid
    assert_rejected(verify_message(relayed, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_a_quoted_printable_part_re_wrapped_breaks_the_signature(fra: Identity) -> None:
    long_line = b"Explanation: " + b"x" * 60 + b"=\r\n" + b"y" * 20 + b"\r\n"
    entity = (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
              b"S/2020/654: YES\r\n" + long_line)
    message = signed_by_us(fra, entity=entity)
    rewrapped = message.replace(b"x" * 60 + b"=\r\n" + b"y" * 20, b"x" * 40 + b"=\r\n" + b"x" * 20 + b"y" * 20)
    assert rewrapped != message and verify_message(message, pinned(fra), NOW).valid
    assert_rejected(verify_message(rewrapped, pinned(fra), NOW), Reason.BAD_SIGNATURE)


def test_a_certificate_registered_to_another_delegation_votes_for_that_one(fra: Identity) -> None:
    trust = Trust(registered=(TrustedCertificate(fra.certificate, owner="GBR"),))
    result = verify_message(signed_by_us(fra), trust, NOW)
    assert result.valid and result.owner == "GBR"


def test_self_signed_where_the_ca_is_required() -> None:
    identity = self_signed(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]))
    message = signed_by_us(identity)
    assert verify_message(message, pinned(identity), NOW).valid, "pinned, it may vote"
    required = Trust(registered=(TrustedCertificate(identity.certificate, "FRA", chain_to_anchor=True),),
                     anchors=(make_ca("Test Secretariat CA").certificate,))
    assert_rejected(verify_message(message, required, NOW), Reason.UNTRUSTED_CHAIN)


# ---------------------------------------------------------------- which registered certificate signed


def renewed(identity: Identity, ca: Identity) -> Identity:
    """The same key certified again by the same CA, as a renewal that keeps the key gives it."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(identity.certificate.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(identity.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(identity.certificate.not_valid_before_utc)
        .not_valid_after(identity.certificate.not_valid_after_utc)
    )
    for extension in identity.certificate.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return Identity(identity.key, builder.sign(ca.key, hashes.SHA256()), ca.certificate)


@pytest.mark.parametrize("identifier", [(), ("-keyid",)], ids=["issuer-and-serial", "subject-key-identifier"])
def test_the_signer_is_the_registered_certificate_the_message_carries(tmp_path: Path,
                                                                      identifier: tuple[str, ...]) -> None:
    """A delegation that renewed its certificate on the same key has two registered certificates that one
    key identifier names; the retired one listed first must not stand for the one the message carries."""
    ca = make_ca()
    retired = make_identity(SENDER, ca=ca)
    current = renewed(retired, ca)
    trust = Trust(registered=(TrustedCertificate(retired.certificate, owner="FRA", revoked=True),
                              TrustedCertificate(current.certificate, owner="FRA")))
    result = verify_message(openssl_sign(tmp_path, current, *identifier), trust, NOW)
    assert (result.valid, result.owner, result.signer) == (True, "FRA", current.certificate)
    assert_rejected(verify_message(openssl_sign(tmp_path, retired, *identifier), trust, NOW),
                    Reason.REVOKED_CERTIFICATE)


# ---------------------------------------------------------------- what is found once and reused


def test_a_path_found_once_is_refused_once_its_issuer_has_expired() -> None:
    """The span a validated path holds in is kept; a check after the CA's expiry searches again, and fails."""
    ca = pki.create_ca("Short-lived CA", "Test", days=10)
    signer = pki.issue_signing_certificate(ca, common_name="FRA", emails=[SENDER], days=825)
    trust = Trust(registered=(TrustedCertificate(signer.certificate, "FRA", chain_to_anchor=True),),
                  anchors=(ca.certificate,))
    message = signed_by_us(signer)
    now = datetime.now(UTC)
    assert verify_message(message, trust, now).valid
    assert verify_message(message, trust, now + timedelta(days=1)).valid
    assert_rejected(verify_message(message, trust, now + timedelta(days=20)), Reason.UNTRUSTED_CHAIN)
    assert verify_message(message, trust, now).valid
    assert_rejected(verify_message(message, trust, ca.certificate.not_valid_before_utc - timedelta(days=1)),
                    Reason.CERTIFICATE_NOT_YET_VALID)


def test_a_failed_path_is_searched_again_under_another_anchor(fra: Identity) -> None:
    """Nothing about one anchor's failure is carried over to another trust: the right anchor still admits it."""
    stranger = make_ca("Stranger CA")
    registered = (TrustedCertificate(fra.certificate, "FRA", chain_to_anchor=True),)
    assert_rejected(verify_message(signed_by_us(fra), Trust(registered, anchors=(stranger.certificate,)), NOW),
                    Reason.UNTRUSTED_CHAIN)
    assert verify_message(signed_by_us(fra), Trust(registered, anchors=(fra.issuer,)), NOW).valid
    assert_rejected(verify_message(signed_by_us(fra), Trust(registered, anchors=(stranger.certificate,)), NOW),
                    Reason.UNTRUSTED_CHAIN)


def test_the_index_finds_each_signer_among_many_registered(fra: Identity, tmp_path: Path) -> None:
    """Among other registered certificates, by issuer and serial and by key identifier, the signer is the one found."""
    others = tuple(TrustedCertificate(make_identity(f"d{i}@delegations.example").certificate, f"D{i}")
                   for i in range(5))
    trust = Trust(registered=(*others, TrustedCertificate(fra.certificate, "FRA")))
    by_serial = verify_message(signed_by_us(fra), trust, NOW)
    assert (by_serial.valid, by_serial.owner) == (True, "FRA")
    by_key_id = verify_message(openssl_sign(tmp_path, fra, "-keyid"), trust, NOW)
    assert (by_key_id.valid, by_key_id.owner) == (True, "FRA")
    revoked = Trust(registered=(*others, TrustedCertificate(fra.certificate, "FRA", revoked=True)))
    assert_rejected(verify_message(signed_by_us(fra), revoked, NOW), Reason.REVOKED_CERTIFICATE)
    assert_rejected(verify_message(signed_by_us(fra), Trust(registered=others), NOW), Reason.UNKNOWN_SIGNER)
