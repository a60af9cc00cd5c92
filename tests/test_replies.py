"""Replies as delegates write them by hand, signed and submitted to the running service."""

from __future__ import annotations

from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from datetime import UTC, datetime
from pathlib import Path

from conftest import Deployment, open_vote

from voting.ballot import text_of_entity
from voting.service import Service
from voting.smime import sign_entity


def signed_reply(deployment: Deployment, code: str, own_text: str) -> bytes:
    """A reply as a mail client signs it: the delegate's own text above the quoted ballot."""
    ballot = text_of_entity(deployment.ballot_of(code))
    body = own_text + "\n\n" + "\n".join(f"> {line}".rstrip() for line in ballot.splitlines()) + "\n"
    content = MIMEPart(policy=SMTP)
    content.set_content(body, charset="utf-8", cte="quoted-printable")
    identity = deployment.identities[code]
    entity = sign_entity(content.as_bytes(policy=SMTP), identity.key, identity.certificate, identity.chain)
    head = (
        f"From: {deployment.address(code)}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\nMessage-ID: {make_msgid(domain='delegations.example')}\r\n"
    )
    return head.encode() + entity


def letters_to(deployment: Deployment, code: str, subject: str) -> list[str]:
    return [text_of_entity(raw) for raw in deployment.inbox_of(code) if f"Subject: {subject}".encode() in raw]


def submit_all(deployment: Deployment, replies: dict[str, str]) -> None:
    for code, text in replies.items():
        deployment.submit(signed_reply(deployment, code, text), deployment.address(code))


def test_a_choice_is_read_only_from_a_choice_line(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    submit_all(running, {
        "FRA": "VOTE: NO\n\nFrance regrets that it could not vote in favour of a text it had argued\nfor.",
        "GBR": "We could not vote\nfor.",
        "USA": "Our vote: against",
    })
    service.poll_once()
    decided = {d.code: d for d in service.ledger.decisions(vote_id)}
    assert (decided["FRA"].verdict, decided["FRA"].choices) == ("ballot", {"S/2020/654": "no"})
    assert (decided["GBR"].verdict, decided["GBR"].reason) == ("rejected", "no-choice")
    assert 'the line "for." was not understood as a choice' in letters_to(running, "GBR", "Rejected")[0]
    assert (decided["USA"].verdict, decided["USA"].reason) == ("rejected", "unknown-draft")
    assert 'the line "Our vote: against" was not understood' in letters_to(running, "USA", "Rejected")[0]
    service.close_now(vote_id)
    outcome = service.ledger.vote(vote_id).outcome
    assert outcome is not None and (outcome["S/2020/654"]["yes"], outcome["S/2020/654"]["no"]) == (0, 1)
