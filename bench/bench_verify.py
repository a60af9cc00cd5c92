"""Verification throughput on one core: our verifier against `openssl cms -verify` per process.

Prints messages per second for each and their ratio. Run: python bench/bench_verify.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from voting.pki import certificate_pem, create_ca, issue_signing_certificate
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, TrustedCertificate, verify_message

ROUNDS = 2000
OPENSSL_ROUNDS = 100


def signed_reply() -> tuple[bytes, Trust, str]:
    ca = create_ca("Bench CA", "Bench")
    signer = issue_signing_certificate(ca, common_name="FRA", emails=["fra@delegations.example"])
    body = EmailMessage(policy=SMTP)
    body.set_content("VOTE: YES\n\n> Vote-ID: bench-1\n> Ballot-Token: abc\n", cte="quoted-printable")
    del body["MIME-Version"]
    entity = sign_entity(body.as_bytes(policy=SMTP), signer.key, signer.certificate, signer.chain)
    raw = b"From: fra@delegations.example\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n" + entity
    trust = Trust(registered=(TrustedCertificate(signer.certificate, owner="FRA"),))
    return raw, trust, certificate_pem(ca.certificate)


def main() -> int:
    raw, trust, ca_pem = signed_reply()
    now = datetime.now(UTC)
    assert verify_message(raw, trust, now).valid
    started = time.perf_counter()
    for _ in range(ROUNDS):
        verify_message(raw, trust, now)
    ours = ROUNDS / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as folder:
        message, ca = Path(folder) / "m.eml", Path(folder) / "ca.pem"
        message.write_bytes(raw)
        ca.write_text(ca_pem)
        started = time.perf_counter()
        for _ in range(OPENSSL_ROUNDS):
            subprocess.run(["openssl", "cms", "-verify", "-in", str(message), "-CAfile", str(ca), "-out", "/dev/null"],
                           check=True, capture_output=True)
        openssl = OPENSSL_ROUNDS / (time.perf_counter() - started)
    print(f"verify_message: {ours:,.0f} messages/s ({1e3 / ours:.3f} ms each)")
    print(f"openssl cms -verify, one process per message: {openssl:,.0f} messages/s")
    print(f"ratio: {ours / openssl:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
