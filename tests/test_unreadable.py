"""No message ever stays undecided: what cannot be judged or recorded is a recorded rejection."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from conftest import Deployment, open_vote, voting

from voting.ballot import text_of_entity
from voting.service import MAILBOX_SETTLING, Service
from voting.smime.sign import sign_entity


def utf7_reply(deployment: Deployment, code: str, explanation_utf7: bytes) -> bytes:
    """A signed reply whose text/plain part is in UTF-7, as some mail clients still send."""
    ballot = text_of_entity(deployment.ballot_of(code))
    quoted = "\r\n".join(f"> {line}" for line in ballot.splitlines() if re.match(r"(Vote-ID|Ballot-Token):", line))
    entity = (
        b"Content-Type: text/plain; charset=utf-7\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        b"VOTE: YES\r\n\r\nExplanation: " + explanation_utf7 + b"\r\n\r\n" + quoted.encode() + b"\r\n"
    )
    identity = deployment.identities[code]
    signed = sign_entity(entity, identity.key, identity.certificate, identity.chain)
    head = (f"From: {deployment.address(code)}\r\nTo: {deployment.config.settings.secretariat.address}\r\n"
            f"Subject: Re: Ballot\r\nMessage-ID: <utf7@delegations.example>\r\n").encode()
    return head + signed


def test_a_reply_that_decodes_to_a_lone_surrogate_never_freezes_a_vote(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=2.0)
    later = open_vote(service, tmp_path, seconds=2.5)
    service.send()
    running.submit(utf7_reply(running, "FRA", b"+2D0-"), "fra@delegations.example")
    service.poll_once()
    assert service.ledger.undecided_messages() == []
    time.sleep(2.5 + MAILBOX_SETTLING.total_seconds())
    assert sorted(service.poll_once().closed) == sorted([vote_id, later])
    fra = [d for d in service.ledger.decisions(later) if d.code == "FRA"]
    assert [d.verdict for d in fra] == ["ballot"], fra
    assert "\ufffd" in fra[0].explanation
    audited = voting("--json", "--config", str(running.config.path), "export", later, "--out", str(tmp_path / "b.zip"))
    assert audited.returncode == 0, audited.stderr
    checks = voting("--json", "audit", str(tmp_path / "b.zip"))
    assert checks.returncode == 0, checks.stdout[-2000:]


def test_whatever_fails_while_recording_becomes_a_recorded_rejection(running: Deployment, tmp_path: Path) -> None:
    lines: list[str] = []
    service = Service(running.config, log=lines.append)
    vote_id = open_vote(service, tmp_path, seconds=1.0)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    time.sleep(1.0 + MAILBOX_SETTLING.total_seconds())
    failing = service._record
    service._record = lambda *args: (_ for _ in ()).throw(RuntimeError("cannot encode"))  # type: ignore[method-assign]
    closed = service.poll_once().closed
    service._record = failing  # type: ignore[method-assign]
    assert service.ledger.undecided_messages() == []
    assert closed == [vote_id], lines
    status = json.loads(voting("--json", "--config", str(running.config.path), "status", vote_id).stdout)
    assert [r["reason"] for r in status["rejected"]] == ["unreadable"], status["rejected"]
    assert any("unreadable" in line for line in lines)


def test_a_decision_that_fails_halfway_is_undone_alone_and_the_rest_of_its_batch_answered(
        running: Deployment, tmp_path: Path) -> None:
    """Decisions are committed a batch at a time: the one whose answer fails after its decision was written is
    undone and recorded as unreadable, and the others of the batch are recorded and answered."""
    lines: list[str] = []
    service = Service(running.config, log=lines.append)
    vote_id = open_vote(service, tmp_path, seconds=60.0)
    service.send()
    for code in ("FRA", "NER", "CHN"):
        running.submit(running.reply(code, ["yes"]), running.address(code))
    answering = service._answer

    def answer(message, outer, judgement, delegation, now, known):  # type: ignore[no-untyped-def]
        if judgement.code == "NER":
            raise RuntimeError("cannot write the receipt")
        answering(message, outer, judgement, delegation, now, known)

    service._answer = answer  # type: ignore[method-assign]
    queued_before = {m.id for m in service.ledger.outbox()}
    judgements = service.poll_once().judgements
    service._answer = answering  # type: ignore[method-assign]
    assert sorted((j.code or "", j.verdict) for j in judgements) == [("", "rejected"), ("CHN", "ballot"),
                                                                     ("FRA", "ballot")], lines
    assert service.ledger.undecided_messages() == []
    decisions = {d.code: d.verdict for d in service.ledger.decisions(vote_id)}
    assert decisions == {"CHN": "ballot", "FRA": "ballot"}
    answered = [m for m in service.ledger.outbox() if m.id not in queued_before]
    assert sorted((m.kind, m.recipients) for m in answered) == [("receipt", (running.address("CHN"),)),
                                                                ("receipt", (running.address("FRA"),))]
    assert any("unreadable (RuntimeError: cannot write the receipt)" in line for line in lines), lines
