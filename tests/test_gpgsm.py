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
from voting.pki import pkcs12_bytes, read_certificate
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


def receipt_parts(raw: bytes) -> tuple[bytes, bytes]:
    """The signed entity and the DER signature of a multipart/signed message, as sent."""
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
        assert gpgsm_verifies(gnupg, *receipt_parts(message)), message[:400]
    content, signature = receipt_parts(receipt)
    altered = content[:-3] + bytes([content[-3] ^ 1]) + content[-2:]
    assert not gpgsm_verifies(gnupg, altered, signature)
