"""What a MIME bomb costs to judge: a million parts, an unsigned 22 MB reply, deep nesting, endless headers, BER chunks.

Each is built around a reply that would count, signed by a registered
delegation where it says so, and judged by `verdict.judge` as the service and
the audit judge it. Prints the size, the verdict and the time of each.
Run: python bench/mime_bombs.py
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from voting.pki import Identity, create_ca, issue_signing_certificate
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, TrustedCertificate
from voting.verdict import VoteView, judge

SENDER = "fra@delegations.example"
VOTE_ID = "bench-1"
TOKEN = "3q2+7w0F8xH1m9kz0bA1Rg"


def reply_text(vote_id: str = VOTE_ID, token: str = TOKEN) -> bytes:
    """The text part of a reply that counts: a choice and the quoted ballot's binding lines."""
    return (b"Content-Type: text/plain; charset=utf-8\r\n\r\nVOTE: YES\r\n\r\n"
            + f"> Vote-ID: {vote_id}\r\n> Ballot-Token: {token}\r\n".encode())


def part_bomb(text: bytes, parts: int) -> bytes:
    """A multipart/mixed entity: `text`, then `parts` tiny parts in groups of 999, each group a multipart of its own.

    The groups keep every single multipart under a per-multipart limit, so
    only a bound on the whole message refuses it.
    """
    groups, rest = divmod(parts, 999)
    group = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * 999 + b"--b--\r\n"
    tail = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + b"--b\r\n\r\nx\r\n" * rest + b"--b--\r\n"
    children = [text] + [group] * groups + ([tail] if rest else [])
    return (b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n'
            + b"".join(b"--a\r\n" + child + b"\r\n" for child in children) + b"--a--\r\n")


def nested_bomb(text: bytes, depth: int) -> bytes:
    """`text` inside `depth` levels of multipart/mixed."""
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n' % (level, level)
                       for level in range(depth))
    closing = b"".join(b"\r\n--n%d--\r\n" % level for level in reversed(range(depth)))
    return opening + text + closing


def header_bomb(text: bytes, fields: int) -> bytes:
    """`text` under `fields` tiny header fields, spread over parts of 4,000 fields each (each under 64 KiB)."""
    filler = b"X: y\r\n" * 4000
    parts = [filler + b"Content-Type: text/plain\r\n\r\nx" for _ in range(fields // 4000)]
    return (b'Content-Type: multipart/mixed; boundary="h"\r\n\r\n'
            + b"".join(b"--h\r\n" + part + b"\r\n" for part in [text, *parts]) + b"--h--\r\n")


def chunked_signature_bomb(chunks: int, sender: str = SENDER) -> bytes:
    """An opaque signed-data whose content is a BER constructed OCTET STRING of `chunks` one-byte chunks."""
    data = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x01"  # the OIDs of id-data and id-signedData
    signed_data = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02"
    content = b"\x24\x80" + b"\x04\x01x" * chunks + b"\x00\x00"
    encapsulated = b"\x30\x80" + data + b"\xa0\x80" + content + b"\x00\x00\x00\x00"
    body = b"\x30\x80\x02\x01\x01\x31\x00" + encapsulated + b"\x31\x00\x00\x00"
    der = b"\x30\x80" + signed_data + b"\xa0\x80" + body + b"\x00\x00\x00\x00"
    return (f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n".encode()
            + b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
            + b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(der).replace(b"\n", b"\r\n"))


def signed(entity: bytes, identity: Identity, sender: str = SENDER) -> bytes:
    """The entity signed by `identity`, under the outer headers of a reply from `sender`."""
    return (f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n".encode()
            + sign_entity(entity, identity.key, identity.certificate, identity.chain))


def unsigned(entity: bytes, sender: str = SENDER) -> bytes:
    head = f"From: {sender}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\nMIME-Version: 1.0\r\n"
    return head.encode() + entity


def main() -> int:
    ca = create_ca("Bench CA", "Bench")
    fra = issue_signing_certificate(ca, common_name="FRA", emails=[SENDER])
    trust = Trust(registered=(TrustedCertificate(fra.certificate, owner="FRA"),))
    now = datetime.now(UTC)
    vote = VoteView(id=VOTE_ID, opened_at=now - timedelta(hours=1), drafts=("S/1",), closes_at=now + timedelta(hours=1),
                    closed_at=None, statement_hours=3, first_ballot_final=False, tokens={"FRA": TOKEN}, counted=False)
    text = reply_text()
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("signed reply, 10 parts (counts)", lambda: signed(part_bomb(text, 10), fra)),
        ("signed reply, 1,000,000 parts", lambda: signed(part_bomb(text, 1_000_000), fra)),
        ("unsigned, 2,000,000 parts", lambda: unsigned(part_bomb(text, 2_000_000))),
        ("signed reply, 10,000 levels of nesting", lambda: signed(nested_bomb(text, 10_000), fra)),
        ("signed reply, 100,000 header fields", lambda: signed(header_bomb(text, 100_000), fra)),
        ("opaque signature, 2,000,000 BER chunks", lambda: chunked_signature_bomb(2_000_000)),
        ("signed reply, 20 MB of empty lines (within the bounds)", lambda: signed(text + b"\r\n" * 10_000_000, fra)),
        ("signed reply, 20 MB of HTML (within the bounds)", lambda: signed(
            b"Content-Type: text/html\r\n\r\n<p>VOTE: YES</p>" + b"<p>a</p>\r\n" * 2_000_000, fra)),
        ("signed reply, 20 MB of flowed text (within the bounds)", lambda: signed(
            b"Content-Type: text/plain; format=flowed\r\n\r\nVOTE: YES\r\n" + b"a \r\n" * 5_000_000, fra)),
    ]
    for name, build in cases:
        raw = build()
        started = time.perf_counter()
        judgement = judge(raw, now, {VOTE_ID: vote}, trust, {})
        elapsed = time.perf_counter() - started
        outcome = judgement.reason.value if judgement.reason else judgement.verdict
        print(f"{name}: {len(raw) / 2**20:.1f} MiB, {outcome}, judged in {elapsed * 1e3:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
