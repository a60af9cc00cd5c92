"""The verifier against signed mail nobody on this project wrote: Thunderbird's S/MIME tests and the "Johnny" attacks."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from tests.interop import JOHNNY, THUNDERBIRD, corpus, row_file, rows
from tests.smime_fixtures import make_identity
from voting.pki import Identity
from voting.reasons import Reason
from voting.smime.entity import decrypt_message
from voting.smime.verify import Trust, TrustedCertificate, Verification, verify_message

JOHNNY_TIME = datetime(2020, 6, 1, tzinfo=UTC)

# Johnny's eContent-confusion messages have the structure of Thunderbird's
# `mismatch-econtent` ones: a detached signature that embeds, and is over, a
# text other than the MIME part shown. Thunderbird's table (binding for
# `reject:bad-signature` rows) calls that a bad signature; Johnny's calls it a
# structure error. One structure gets one answer, bad-signature, and Johnny's
# invariant holds: neither is ever counted for the manager (tests/vectors/README.md).
ECONTENT_CONFUSION = {
    "01-cms__c1_eContent-confusion__eContent_confusion.eml": "bad-signature",
    "01-cms__c1_eContent-confusion__eContent_confusion_refinement.eml": "bad-signature",
}


def nss_identity(name: str) -> Identity:
    with warnings.catch_warnings():
        # NSS writes its PKCS#12 in BER; cryptography reads it and warns that it may stop doing so.
        warnings.simplefilter("ignore", UserWarning)
        key, certificate, _ = pkcs12.load_key_and_certificates((corpus(THUNDERBIRD) / f"{name}.p12").read_bytes(), b"nss")
    assert certificate is not None and key is not None
    return Identity(key=key, certificate=certificate)  # type: ignore[arg-type]


def alice() -> x509.Certificate:
    return nss_identity("Alice").certificate


def johnny_certificate(name: str) -> x509.Certificate:
    data = (corpus(JOHNNY) / f"assets__certificates__{name}@bigcorporation.crt").read_bytes()
    return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)


@pytest.fixture(scope="module")
def alice_trust() -> Trust:
    return Trust(registered=(TrustedCertificate(alice(), owner="ALICE"),))


@pytest.fixture(scope="module")
def johnny_trust() -> Trust:
    return Trust(
        registered=(
            TrustedCertificate(johnny_certificate("manager"), owner="MANAGER"),
            TrustedCertificate(johnny_certificate("eve"), owner="EVE"),
        )
    )


def test_the_corpora_are_there() -> None:
    assert len(rows(THUNDERBIRD)) == 66, corpus(THUNDERBIRD)
    assert len(rows(JOHNNY)) == 29, corpus(JOHNNY)


@pytest.mark.parametrize("row", rows(THUNDERBIRD), ids=lambda row: row["file"])
def test_thunderbird(row: dict[str, str], alice_trust: Trust) -> None:
    result = verify_message(row_file(row, THUNDERBIRD).read_bytes(), alice_trust, datetime.now(UTC))
    expected = row["expected_for_a_ballot_verifier"]
    if expected == "accept":
        assert result.valid and result.owner == "ALICE", result
    elif expected.startswith("reject:"):
        reason = Reason(expected.removeprefix("reject:"))
        assert (result.valid, result.reason) == (False, reason), result
    elif expected == "skip:nested":
        # A signature inside a signature: the outer signer (Dave) is not registered; never counted for Alice.
        assert not (result.valid and result.owner == "ALICE"), result
    else:
        # policy:date-header-6h-after-signing-time. The Date header, like the
        # signing time, is the sender's claim and is never trusted for anything
        # (docs/design.md, "Time is the server's"): the message verifies normally, i.e. it is accepted.
        assert expected == "policy:date-header-6h-after-signing-time"
        assert result.valid and result.owner == "ALICE", result


ENCRYPTED_ROWS = [row for row in rows(THUNDERBIRD) if row.get("expected_for_a_ballot_verifier", "reject:encrypted") == "reject:encrypted"]


@pytest.mark.parametrize("row", ENCRYPTED_ROWS, ids=lambda row: row["file"])
def test_thunderbird_encrypted_to_bob_stays_unreadable_to_the_secretariat(row: dict[str, str], alice_trust: Trust) -> None:
    secretariat = make_identity("votes@secretariat.example", key_kind="rsa2048")
    decryption = Identity(key=secretariat.key, certificate=secretariat.certificate)
    result = verify_message(row_file(row, THUNDERBIRD).read_bytes(), alice_trust, datetime.now(UTC), decryption)
    assert (result.valid, result.reason) == (False, Reason.ENCRYPTED), result


# Thunderbird (NSS) encrypted these to Bob, RSA key transport, AES-CBC. Held by Bob's key, the
# decryptor opens an envelope that is the whole message, and judges the signed entity inside by the
# usual rules; an envelope under a signature is never opened. CBC proves nothing about the plaintext,
# so whatever fails before the signature is found intact (no signature, a SHA-1 one) is answered
# `encrypted`, like a ciphertext that does not open: one answer, no padding oracle.
OPENED_BY_BOB = {
    "alice.env.eml": Reason.ENCRYPTED,
    **{f"alice.{kind}.SHA1.{form}.env.eml": Reason.ENCRYPTED
       for kind, form in (("dsig", "multipart"), ("sig", "opaque"), ("html.sig", "opaque"))},
    **{f"alice.{kind}.{digest}.{form}.env.eml": None
       for kind, form in (("dsig", "multipart"), ("sig", "opaque"), ("html.sig", "opaque"))
       for digest in ("SHA256", "SHA384", "SHA512")},
}


@pytest.mark.parametrize("row", ENCRYPTED_ROWS, ids=lambda row: row["file"])
def test_thunderbird_encrypted_opened_with_the_recipients_key(row: dict[str, str], alice_trust: Trust) -> None:
    raw = row_file(row, THUNDERBIRD).read_bytes()
    bob = nss_identity("Bob")
    result = verify_message(raw, alice_trust, datetime.now(UTC), bob)
    if row["file"] not in OPENED_BY_BOB:
        assert (result.valid, result.reason, decrypt_message(raw, bob)) == (False, Reason.ENCRYPTED, None), result
    elif (reason := OPENED_BY_BOB[row["file"]]) is None:
        assert result.valid and result.owner == "ALICE" and result.decrypted is not None, result
    else:
        assert (result.valid, result.reason) == (False, reason), result


def expected_johnny(row: dict[str, str]) -> tuple[str, str | None]:
    """(kind, detail) from a Johnny row: ("accept", owner), ("reject", code) or ("never-manager", None)."""
    verdict = row["expected_for_a_ballot_verifier"].split(" ", 1)[0]
    if verdict.startswith("accept:signer="):
        return "accept", verdict.removeprefix("accept:signer=").upper()
    if verdict.startswith("reject:"):
        return "reject", ECONTENT_CONFUSION.get(row["file"], verdict.removeprefix("reject:"))
    assert verdict == "never-attribute-to-manager", row
    return "never-manager", None


def check_johnny(result: Verification, kind: str, detail: str | None) -> None:
    if kind == "accept":
        assert result.valid and result.owner == detail, result
    elif kind == "reject":
        assert (result.valid, result.reason) == (False, Reason(detail)), result
    else:
        assert result.owner != "MANAGER", result
        # Valid only if the From header is exactly one of eve's own addresses.
        assert not result.valid or (result.owner == "EVE" and result.from_address == "eve@bigcorporation.de"), result


@pytest.mark.parametrize("row", rows(JOHNNY), ids=lambda row: row["file"])
def test_johnny(row: dict[str, str], johnny_trust: Trust) -> None:
    result = verify_message(row_file(row, JOHNNY).read_bytes(), johnny_trust, JOHNNY_TIME)
    check_johnny(result, *expected_johnny(row))


def test_johnny_only_the_managers_own_messages_count_for_the_manager(johnny_trust: Trust) -> None:
    counted = {
        row["file"]
        for row in rows(JOHNNY)
        if (result := verify_message(row_file(row, JOHNNY).read_bytes(), johnny_trust, JOHNNY_TIME)).valid
        and result.owner == "MANAGER"
    }
    assert counted == {"01-cms__valid_email_from_manager.eml", "assets__valid-signed__manager-smime.eml"}


def test_johnny_identity_attacks_with_a_from_naming_the_manager_are_from_mismatch(johnny_trust: Trust) -> None:
    for row in rows(JOHNNY):
        if row["file"].startswith("04-id") and "eve@" not in _from_lines(row_file(row, JOHNNY)):
            result = verify_message(row_file(row, JOHNNY).read_bytes(), johnny_trust, JOHNNY_TIME)
            assert result.reason is Reason.FROM_MISMATCH, (row["file"], result)


def _from_lines(path: Path) -> str:
    head = path.read_bytes().split(b"\n\n", 1)[0].replace(b"\r", b"")
    return " ".join(line.decode() for line in head.split(b"\n") if line.lower().startswith(b"from:"))


def test_johnny_certificates_expired_since(johnny_trust: Trust) -> None:
    manager = corpus(JOHNNY) / "assets__valid-signed__manager-smime.eml"
    result = verify_message(manager.read_bytes(), johnny_trust, datetime.now(UTC))
    assert (result.valid, result.reason) == (False, Reason.CERTIFICATE_EXPIRED)
