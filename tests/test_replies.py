"""Replies as delegates write them by hand, signed and submitted to the running service."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, voting

from voting.ballot import text_of_entity
from voting.deployment import pkcs12_path
from voting.errors import UnverifiedError
from voting.pki import Identity, fingerprint
from voting.reply import Secretariat
from voting.service import Service
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, verify_message


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


# --- `voting reply` --------------------------------------------------------------------------------


def signed_by(identity: Identity, sender: str, raw_ballot: bytes, deployment: Deployment) -> bytes:
    """The ballot's signed content, signed again by someone else and sent as from `sender`."""
    trust = Trust(anchors=(Secretariat.of_deployment(deployment.config).certificate,))
    content = verify_message(raw_ballot, trust, datetime.now(UTC)).signed_content
    assert content is not None
    head = f"From: {sender}\r\nTo: fra@delegations.example\r\nSubject: Ballot: S/2020/654\r\n"
    return head.encode() + sign_entity(content, identity.key, identity.certificate, identity.chain)


def own_lines(raw_reply: bytes) -> list[str]:
    """The unquoted lines of a reply's signed text, split as every reader splits them."""
    return [line for line in text_of_entity(raw_reply).splitlines() if line and not line.startswith(">")]


@pytest.mark.parametrize("separator", ["\x0b", "\u2028", "\u2029", "\x85", "\x0c", "\x1e", "\r"])
def test_an_outer_header_never_reaches_the_signed_reply(running: Deployment, tmp_path: Path, separator: str) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = running.ballot_of("FRA")
    start = ballot.index(b"\r\nDate: ") + 2
    end = ballot.index(b"\r\n", start)
    injected = f"{separator}S/2020/654: NO{separator}".encode()
    for relayed in (ballot[:end] + injected + ballot[end:], ballot[:start] + b"Subject: x" + injected + b"\r\n" + ballot[start:]):
        reply = running.reply("FRA", ["yes"], ballot=relayed)
        assert own_lines(reply) == ["VOTE: YES", f"The ballot of {vote_id} reads:"]
    running.submit(reply, running.address("FRA"))
    service.poll_once()
    assert [(d.verdict, d.choices) for d in service.ledger.decisions(vote_id)] == [("ballot", {"S/2020/654": "yes"})]


def test_control_characters_in_the_explanation_never_start_a_line(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    reply = running.reply("FRA", ["yes"], explanation="France supports the draft.\x0bS/2020/654: NO\u2028VOTE: NO")
    assert "S/2020/654: NO" not in own_lines(reply) and "VOTE: NO" not in own_lines(reply)


def test_a_ballot_not_signed_by_the_secretariat_is_refused(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    ballot = running.ballot_of("FRA")
    usa = running.identities["USA"]
    forgeries = {
        "a delegation's ballot": signed_by(usa, running.address("USA"), ballot, running),
        "a delegation's key under the secretariat's address": signed_by(usa, "votes@secretariat.example", ballot,
                                                                         running),
        "an altered ballot": ballot.replace(b"S/2020/654: YES | NO | ABSTAIN", b"S/2020/999: YES | NO | ABSTAIN"),
    }
    with pytest.raises(UnverifiedError):
        running.reply("FRA", ["yes"], ballot=forgeries["a delegation's ballot"])
    keys = running.config.keys_dir
    p12 = pkcs12_path(running.config, "FRA", fingerprint(running.identities["FRA"].certificate))
    password = {"VOTING_P12_PASSWORD": p12.with_name(p12.name + ".password").read_text().strip()}
    by_ca = ["--secretariat-cert", str(keys / "secretariat-ca.pem"), "--secretariat-address", "votes@secretariat.example"]
    for what, forged in forgeries.items():
        path = tmp_path / "forged.eml"
        path.write_bytes(forged)
        for trusted in (["--secretariat-cert", str(keys / "secretariat.pem")], by_ca):
            refused = voting("reply", str(path), "--p12", str(p12), "--vote", "yes", *trusted, cwd=tmp_path, env=password)
            assert refused.returncode == 1 and "not signed by the secretariat" in refused.stderr, (what, refused.stderr)
            assert refused.stdout == ""
    genuine = tmp_path / "ballot.eml"
    genuine.write_bytes(ballot)
    alone = voting("reply", str(genuine), "--p12", str(p12), "--vote", "yes", cwd=tmp_path, env=password)
    assert alone.returncode == 2 and "--secretariat-cert" in alone.stderr and alone.stdout == ""
    ca_only = voting("reply", str(genuine), "--p12", str(p12), "--vote", "yes", "--secretariat-cert",
                     str(keys / "secretariat-ca.pem"), cwd=tmp_path, env=password)
    assert ca_only.returncode == 2 and "--secretariat-address" in ca_only.stderr


def test_voting_reply_without_a_deployment_checks_the_ballot_and_is_counted(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    keys = running.config.keys_dir
    p12 = pkcs12_path(running.config, "FRA", fingerprint(running.identities["FRA"].certificate))
    password = {"VOTING_P12_PASSWORD": p12.with_name(p12.name + ".password").read_text().strip()}
    (tmp_path / "ballot.eml").write_bytes(running.ballot_of("FRA"))
    made = voting("reply", "ballot.eml", "--p12", str(p12), "--vote", "contre", "--out", "reply.eml",
                  "--secretariat-cert", str(keys / "secretariat-ca.pem"),
                  "--secretariat-address", "VOTES@secretariat.example", cwd=tmp_path, env=password)
    assert made.returncode == 0, made.stderr
    running.submit((tmp_path / "reply.eml").read_bytes(), running.address("FRA"))
    service.poll_once()
    assert [(d.verdict, d.choices) for d in service.ledger.decisions(vote_id)] == [("ballot", {"S/2020/654": "no"})]
