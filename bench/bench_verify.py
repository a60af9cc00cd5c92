"""Verification throughput on one core: our verifier against `openssl cms -verify` per process.

Prints messages per second for each and their ratio. Run: python bench/bench_verify.py
Its functions are the verification rows of bench/run.py.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from voting.pki import certificate_pem, create_ca, issue_signing_certificate
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, TrustedCertificate, verify_message

ROUNDS = 2000
OPENSSL_ROUNDS = 100


@dataclass(frozen=True)
class SignedReply:
    raw: bytes
    trust: Trust
    ca_pem: str
    key: rsa.RSAPrivateKey
    """The signer's RSA-2048 key, for the bare verification the verifier is compared with."""


def signed_reply() -> SignedReply:
    ca = create_ca("Bench CA", "Bench")
    signer = issue_signing_certificate(ca, common_name="FRA", emails=["fra@delegations.example"])
    body = EmailMessage(policy=SMTP)
    body.set_content("VOTE: YES\n\n> Vote-ID: bench-1\n> Ballot-Token: abc\n", cte="quoted-printable")
    del body["MIME-Version"]
    entity = sign_entity(body.as_bytes(policy=SMTP), signer.key, signer.certificate, signer.chain)
    raw = b"From: fra@delegations.example\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n" + entity
    trust = Trust(registered=(TrustedCertificate(signer.certificate, owner="FRA"),))
    assert isinstance(signer.key, rsa.RSAPrivateKey)
    return SignedReply(raw, trust, certificate_pem(ca.certificate), signer.key)


def rate(step: Callable[[], object], rounds: int) -> float:
    """Calls of `step` per second over `rounds` calls."""
    started = time.perf_counter()
    for _ in range(rounds):
        step()
    return rounds / (time.perf_counter() - started)


def verify_rate(reply: SignedReply, rounds: int = ROUNDS) -> float:
    now = datetime.now(UTC)
    assert verify_message(reply.raw, reply.trust, now).valid
    return rate(lambda: verify_message(reply.raw, reply.trust, now), rounds)


def bare_rsa_rate(key: rsa.RSAPrivateKey, rounds: int = ROUNDS) -> float:
    """RSA-2048 PKCS#1 v1.5 SHA-256 verifications per second in `cryptography`: the ceiling of any verifier."""
    data = b"signed attributes of a ballot" * 10
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    public = key.public_key()
    return rate(lambda: public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256()), rounds)


def openssl_rate(reply: SignedReply, rounds: int = OPENSSL_ROUNDS) -> float:
    """`openssl cms -verify`, one process per message, as a shell script would check mail."""
    with tempfile.TemporaryDirectory() as folder:
        message, ca = Path(folder) / "m.eml", Path(folder) / "ca.pem"
        message.write_bytes(reply.raw)
        ca.write_text(reply.ca_pem)
        command = ["openssl", "cms", "-verify", "-in", str(message), "-CAfile", str(ca), "-out", "/dev/null"]
        return rate(lambda: subprocess.run(command, check=True, capture_output=True), rounds)


def main() -> int:
    reply = signed_reply()
    ours = verify_rate(reply)
    openssl = openssl_rate(reply)
    print(f"verify_message: {ours:,.0f} messages/s ({1e3 / ours:.3f} ms each)")
    print(f"openssl cms -verify, one process per message: {openssl:,.0f} messages/s")
    print(f"ratio: {ours / openssl:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
