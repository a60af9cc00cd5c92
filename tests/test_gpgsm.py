"""GnuPG's gpgsm against the service: it imports a secretariat-issued legacy PKCS#12 and signs replies that are
counted, and it verifies the receipts and results the service signs."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Deployment, open_vote

from tests.smime_fixtures import GnuPG, gnupg_home
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from voting.pki import (
    LEGACY_PKCS12_ROUNDS,
    Identity,
    create_ca,
    gnupg_misderives_a_key,
    issue_signing_certificate,
    pkcs12_bytes,
    read_certificate,
)
from voting.service import Service
from voting.smime.verify import Trust, TrustedCertificate, verify_message

PASSWORD = b"correct horse battery staple"
# gpgsm's status line SIG_CREATED names the digest by its OpenPGP number.
MICALG = {"8": "sha-256", "9": "sha-384", "10": "sha-512"}


@pytest.fixture
def gnupg() -> Iterator[GnuPG]:
    with gnupg_home() as home:
        yield home


def reply_entity(deployment: Deployment, code: str, vote: str) -> bytes:
    """The MIME entity a delegate signs: the reply `voting reply` would sign, quoting the ballot."""
    identity = deployment.identities[code]
    trust = Trust(registered=(TrustedCertificate(identity.certificate, code),))
    entity = verify_message(deployment.reply(code, [vote]), trust, datetime.now(UTC)).signed_content
    assert entity is not None
    return entity


def gpgsm_sign(gnupg: GnuPG, key: str, entity: bytes, *mode: str) -> tuple[bytes, str]:
    """gpgsm's base64 CMS signature over the entity, and the micalg of the digest it chose."""
    path = gnupg.home / "entity.txt"
    path.write_bytes(entity)
    out = gnupg.home / "signature.b64"
    out.unlink(missing_ok=True)
    status = gnupg.gpgsm("--pinentry-mode", "loopback", "--passphrase-fd", "0", "--local-user", key,
                         "--include-certs", "-1", "--base64", *mode, "-o", out, path, stdin=PASSWORD + b"\n")
    created = re.search(rb"\[GNUPG:\] SIG_CREATED \S+ \d+ (\d+) ", status.stdout)
    assert created is not None, status.stdout
    return out.read_bytes(), MICALG[created.group(1).decode()]


def multipart_signed(sender: str, entity: bytes, signature: bytes, micalg: str) -> bytes:
    boundary = b"gpgsm-reply-boundary"
    return (
        f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg={micalg};'
        f' boundary="{boundary.decode()}"\r\n\r\n'.encode()
        + b"--" + boundary + b"\r\n" + entity + b"\r\n--" + boundary + b"\r\n"
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + signature.replace(b"\n", b"\r\n").rstrip() + b"\r\n--" + boundary + b"--\r\n"
    )


def opaque_signed(sender: str, signature: bytes) -> bytes:
    return (
        f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode() + signature.replace(b"\n", b"\r\n")
    )


def prepare(deployment: Deployment, gnupg: GnuPG, code: str) -> str:
    """The delegation's legacy PKCS#12 imported into gpgsm, the secretariat CA trusted; returns the key ID."""
    gnupg.trust(read_certificate(deployment.config.keys_dir / "secretariat-ca.pem"))
    legacy = pkcs12_bytes(deployment.identities[code], PASSWORD, friendly_name=code, legacy=True)
    return gnupg.import_pkcs12(legacy, PASSWORD)


@pytest.mark.parametrize("opaque", [False, True], ids=["detached", "opaque"])
def test_a_gpgsm_signed_reply_is_counted(running: Deployment, gnupg: GnuPG, tmp_path: Path, opaque: bool) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    key = prepare(running, gnupg, "FRA")
    entity = reply_entity(running, "FRA", "no")
    sender = running.address("FRA")
    if opaque:
        signature, _ = gpgsm_sign(gnupg, key, entity, "--sign")
        message = opaque_signed(sender, signature)
    else:
        signature, micalg = gpgsm_sign(gnupg, key, entity, "--detach-sign")
        message = multipart_signed(sender, entity, signature, micalg)
    running.submit(message, sender)
    service.poll_once()
    [decision] = service.ledger.decisions(vote_id)
    assert (decision.code, decision.verdict, decision.reason, decision.choices) == (
        "FRA", "ballot", None, {"S/2020/654": "no"}
    )


def receipt_parts(stored: bytes) -> tuple[bytes, bytes]:
    """The signed entity and the DER signature of a multipart/signed message, as a mail client hands them to gpgsm:
    from the delegation's Maildir (Unix line ends), back in the canonical CRLF form the signature is over."""
    raw = stored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    delimiter = b"\r\n--" + boundary.group(1)
    parts = raw.split(delimiter)
    content = parts[1].removeprefix(b"\r\n")
    signature = base64.b64decode(b"".join(parts[2].split(b"\r\n\r\n", 1)[1].split()))
    return content, signature


def gpgsm_verifies(gnupg: GnuPG, content: bytes, signature: bytes) -> bool:
    (gnupg.home / "content").write_bytes(content)
    (gnupg.home / "signature.p7s").write_bytes(signature)
    result = gnupg.gpgsm("--verify", gnupg.home / "signature.p7s", gnupg.home / "content", check=False)
    return result.returncode == 0 and b"[GNUPG:] GOODSIG" in result.stdout and b"TRUST_FULLY" in result.stdout


def test_receipts_and_results_verify_with_gpgsm(running: Deployment, gnupg: GnuPG, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    gnupg.trust(read_certificate(running.config.keys_dir / "secretariat-ca.pem"))
    running.submit(running.reply("FRA", ["yes"]), running.address("FRA"))
    service.poll_once()
    service.close_now(vote_id)
    service.send()
    [receipt] = [raw for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw]
    [results] = [raw for raw in running.inbox_of("CHN") if b"Subject: Results" in raw]
    ballot = running.ballot_of("USA")
    for message in (receipt, results, ballot):
        assert b"\r" not in message
        assert gpgsm_verifies(gnupg, *receipt_parts(message)), message[:400]
    content, signature = receipt_parts(receipt)
    altered = content[:-3] + bytes([content[-3] ^ 1]) + content[-2:]
    assert not gpgsm_verifies(gnupg, altered, signature)


def gpgsm_imports(gnupg: GnuPG, data: bytes, password: bytes) -> bool:
    path = gnupg.home / "identity.p12"
    path.write_bytes(data)
    result = gnupg.gpgsm("--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", path,
                         stdin=password + b"\n", check=False)
    return b"IMPORT_RES" in result.stdout and b"error" not in result.stderr


def any_legacy_pkcs12(identity: Identity, password: bytes) -> bytes:
    """3DES/SHA-1 PKCS#12 with whatever salts are drawn, as any library writes it."""
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(LEGACY_PKCS12_ROUNDS)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
                  .build(password))
    return pkcs12.serialize_key_and_certificates(b"FRA", identity.key, identity.certificate, list(identity.chain),
                                                 encryption)


def test_every_legacy_pkcs12_imports_into_gpgsm(gnupg: GnuPG) -> None:
    """gpgsm 2.2 refuses the right password for about one 3DES PKCS#12 file in forty, by their salts alone."""
    ca = create_ca("Secretariat CA", "Secretariat")
    identity = issue_signing_certificate(ca, common_name="France (FRA)", emails=["fra@delegations.example"])
    password = b"HvbbqoB2vxDnir5R"
    drawn = [any_legacy_pkcs12(identity, password) for _ in range(400)]
    misread = [data for data in drawn if gnupg_misderives_a_key(data, password)]
    assert misread, "no file of 400 drew a salt that gpgsm misreads"
    assert not gpgsm_imports(gnupg, misread[0], password)
    assert gpgsm_imports(gnupg, next(data for data in drawn if data not in misread), password)
    issued = [pkcs12_bytes(identity, password, friendly_name="FRA", legacy=True) for _ in range(300)]
    assert not [data for data in issued if gnupg_misderives_a_key(data, password)]
    assert all(gpgsm_imports(gnupg, data, password) for data in issued[:40])
