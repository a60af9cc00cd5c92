"""MIME bombs (docs/design.md §2.2): part, nesting and header bombs are refused as `too-complex`, by `judge` alone and
through the real service and audit, while the same replies within the bounds still count. What each costs is
measured by `bench/mime_bombs.py`, which prints it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Deployment, open_vote

from bench.mime_bombs import chunked_signature_bomb, header_bomb, nested_bomb, part_bomb, reply_text, signed, unsigned
from voting.audit import audit_bundle
from voting.ballot import text_of_entity
from voting.bundle import export_bundle, read_bundle
from voting.mime import MAX_HEADER_FIELDS, MAX_MIME_DEPTH, MAX_MIME_PARTS
from voting.pki import Identity, create_ca, issue_signing_certificate
from voting.reasons import Reason
from voting.service import Service
from voting.smime.cms import MAX_CMS_ELEMENTS
from voting.smime.verify import Trust, TrustedCertificate
from voting.verdict import BALLOT, REJECTED, Judgement, VoteView, judge

SENDER = "fra@delegations.example"
TOKEN = "3q2+7w0F8xH1m9kz0bA1Rg"
NOW = datetime.now(UTC)
VOTE = VoteView(id="unsc-2020-0007", opened_at=NOW - timedelta(hours=1), drafts=("S/2020/654",),
                closes_at=NOW + timedelta(hours=1), closed_at=None, statement_hours=3, first_ballot_final=False,
                tokens={"FRA": TOKEN}, counted=False)


@pytest.fixture(scope="module")
def fra() -> Identity:
    ca = create_ca("Bounds CA", "Bounds")
    return issue_signing_certificate(ca, common_name="FRA", emails=[SENDER])


def judged(raw: bytes, fra: Identity) -> Judgement:
    trust = Trust(registered=(TrustedCertificate(fra.certificate, owner="FRA"),))
    return judge(raw, NOW, {VOTE.id: VOTE}, trust, {})


TEXT = reply_text(VOTE.id, TOKEN)
BOMBS: dict[str, tuple[Callable[[Identity], bytes], str]] = {
    "a signed reply of a million parts": (lambda fra: signed(part_bomb(TEXT, 1_000_000), fra),
                                          f"more than {MAX_MIME_PARTS} MIME parts"),
    "an unsigned 22 MB part bomb": (lambda fra: unsigned(part_bomb(TEXT, 2_200_000)),
                                    f"more than {MAX_MIME_PARTS} MIME parts"),
    "a signed reply nested 10,000 deep": (lambda fra: signed(nested_bomb(TEXT, 10_000), fra),
                                          f"more than {MAX_MIME_DEPTH} levels of nesting"),
    "a signed reply of 100,000 header fields": (lambda fra: signed(header_bomb(TEXT, 100_000), fra),
                                                f"more than {MAX_HEADER_FIELDS} header fields"),
    "an opaque signature of 2,000,000 BER chunks": (lambda fra: chunked_signature_bomb(2_000_000),
                                                   f"more than {MAX_CMS_ELEMENTS} ASN.1 elements"),
    "a 20 MB signed reply nested 19 deep": (
        lambda fra: signed(nested_bomb(TEXT + b"\r\n" * 10_000_000, 19), fra), "more than 100 MiB"),
}


@pytest.mark.parametrize("name", BOMBS)
def test_a_bomb_is_refused_as_too_complex(fra: Identity, name: str) -> None:
    build, says = BOMBS[name]
    judgement = judged(build(fra), fra)
    assert (judgement.verdict, judgement.reason) == (REJECTED, Reason.TOO_COMPLEX), judgement
    assert says in judgement.detail and "plain signed reply" in judgement.detail


@pytest.mark.parametrize("entity", [
    part_bomb(TEXT, MAX_MIME_PARTS - 10),
    nested_bomb(TEXT, MAX_MIME_DEPTH - 1),
    header_bomb(TEXT, MAX_HEADER_FIELDS - 1000),
], ids=["parts", "nesting", "header fields"])
def test_the_same_reply_within_the_bounds_counts(fra: Identity, entity: bytes) -> None:
    judgement = judged(signed(entity, fra), fra)
    assert judgement.verdict == BALLOT, judgement


LARGE: dict[str, Callable[[], bytes]] = {
    "20 MB of empty lines": lambda: TEXT + b"\r\n" * 10_000_000,
    "20 MB of HTML": lambda: b"Content-Type: text/html\r\n\r\n<p>VOTE: YES</p>" + b"<p>a</p>\r\n" * 2_000_000,
    "20 MB of flowed text": lambda: (b"Content-Type: text/plain; format=flowed\r\n\r\nVOTE: YES\r\n"
                                     + b"a \r\n" * 5_000_000),
}
"""Built when the test runs, not when it is collected: the process keeps no large message between tests."""


@pytest.mark.parametrize("name", LARGE)
def test_a_large_reply_within_the_bounds_is_not_refused_as_too_complex(fra: Identity, name: str) -> None:
    judgement = judged(signed(LARGE[name](), fra), fra)
    assert judgement.reason != Reason.TOO_COMPLEX, judgement


def test_the_text_of_a_bomb_is_read_within_the_bounds() -> None:
    assert text_of_entity(part_bomb(TEXT, 1_000_000)) == ""
    assert text_of_entity(part_bomb(TEXT, 10)).startswith("VOTE: YES")


def test_the_service_refuses_answers_keeps_and_audits_bombs(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    fra = running.identities["FRA"]
    text = reply_text(vote_id, service.ledger.ballot_tokens(vote_id)["FRA"])
    bombs = [signed(part_bomb(text, 1_000_000), fra), unsigned(part_bomb(text, 2_200_000))]
    for bomb in bombs:
        running.submit(bomb, SENDER)
    report = service.poll_once()
    assert report.fetched == 2
    assert [(d.code, d.verdict, d.reason) for d in service.ledger.decisions(None)] == [
        (None, REJECTED, Reason.TOO_COMPLEX.value)] * 2
    rejections = [text_of_entity(raw) for raw in running.inbox_of("FRA") if b"Subject: Rejected" in raw]
    assert len(rejections) == 2
    assert all("Reason: too-complex" in text and "plain signed reply" in " ".join(text.split()) for text in rejections)

    running.submit(signed(part_bomb(text, 10), fra), SENDER)
    service.poll_once()
    assert [(d.code, d.verdict) for d in service.ledger.decisions(vote_id)] == [("FRA", BALLOT)]
    service.close_now(vote_id)
    bundle = read_bundle(export_bundle(service, vote_id, tmp_path / "bundle.zip").path)
    checks = audit_bundle(bundle)
    assert all(check.ok for check in checks), [check for check in checks if not check.ok]


def test_a_flood_of_large_messages_is_decided_in_little_more_memory_than_one(running: Deployment,
                                                                             tmp_path: Path) -> None:
    """A pass reads a batch's messages ahead of deciding them only up to `READ_AHEAD_BYTES`: twelve messages of
    12 MB each, waiting together, are decided one at a time, never held all at once."""
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    service.shut_down()
    body = b"VOTE: YES\r\n" + (b"x" * 998 + b"\r\n") * 12_000
    for index in range(12):
        running.submit(b"From: fra@delegations.example\r\nSubject: flood %d\r\n\r\n" % index + body, SENDER)
    # Measured from a small parent: a child forked from this test process would count its memory too.
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
               " print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.stderr)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "voting", "--config",
                             str(running.config.path), "poll", "--once"], capture_output=True, text=True, timeout=300)
    status, peak_kib = (int(word) for word in result.stdout.split("\n", 1)[0].split())
    assert status == 0, result.stdout
    service = Service(running.config)
    assert [d.reason for d in service.ledger.decisions(None)] == [Reason.NOT_SIGNED.value] * 12
    assert peak_kib < 200_000, f"{peak_kib} KiB used"
