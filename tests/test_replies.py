"""Replies as delegates write them by hand, signed and submitted to the running service."""

from __future__ import annotations

import os
import re
import shutil
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import MIMEPart
from email.policy import SMTP, default
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from conftest import Deployment, handed_over_p12, handed_over_password, open_vote, voting, voting_on_a_terminal

from voting.ballot import text_of_entity
from voting.electorate import load_electorate, save_electorate
from voting.errors import ConfigError, UnverifiedError
from voting.mail import maildir
from voting.pki import Identity, fingerprint
from voting.reply import Secretariat
from voting.service import Service
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, verify_message
from voting.times import readable_time
from voting.wording import wording


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
    start = ballot.index(b"\nDate: ") + 1
    end = ballot.index(b"\n", start)
    injected = f"{separator}S/2020/654: NO{separator}".encode()
    for relayed in (ballot[:end] + injected + ballot[end:], ballot[:start] + b"Subject: x" + injected + b"\n" + ballot[start:]):
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
    p12 = handed_over_p12(running.config, "FRA", fingerprint(running.identities["FRA"].certificate))
    password = {"VOTING_P12_PASSWORD": handed_over_password(p12).read_text().strip()}
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
    p12 = handed_over_p12(running.config, "FRA", fingerprint(running.identities["FRA"].certificate))
    password = {"VOTING_P12_PASSWORD": handed_over_password(p12).read_text().strip()}
    (tmp_path / "ballot.eml").write_bytes(running.ballot_of("FRA"))
    made = voting("reply", "ballot.eml", "--p12", str(p12), "--vote", "contre", "--out", "reply.eml",
                  "--secretariat-cert", str(keys / "secretariat-ca.pem"),
                  "--secretariat-address", "VOTES@secretariat.example", cwd=tmp_path, env=password)
    assert made.returncode == 0, made.stderr
    running.submit((tmp_path / "reply.eml").read_bytes(), running.address("FRA"))
    service.poll_once()
    assert [(d.verdict, d.choices) for d in service.ledger.decisions(vote_id)] == [("ballot", {"S/2020/654": "no"})]


def test_only_a_marked_explanation_is_published(running: Deployment, tmp_path: Path) -> None:
    """A signature block, a phone number or a disclaimer is a government's private text, not its position."""
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    submit_all(running, {
        "FRA": "VOTE: YES\n\nExplanation:\nFrance supports the cross-border mechanism.\n\nMarie Dupont\n"
               "-- \nFirst Secretary, +1 212 555 0100",
        "GBR": "VOTE: NO\n\nBest regards,\nJohn Smith, tel. +1 212 555 0199\n"
               "This email and any attachment are confidential.",
    })
    service.poll_once()
    decided = {d.code: d for d in service.ledger.decisions(vote_id)}
    assert decided["FRA"].explanation == "France supports the cross-border mechanism.\nMarie Dupont"
    assert (decided["GBR"].verdict, decided["GBR"].explanation) == ("ballot", "")
    receipt = letters_to(running, "GBR", "Receipt")[0]
    assert "not published" in receipt and "John Smith, tel. +1 212 555 0199" in receipt
    assert "not published" not in letters_to(running, "FRA", "Receipt")[0]
    service.close_now(vote_id)
    assert voting("--config", str(running.config.path), "record", vote_id).returncode == 0
    for page in (running.config.records_dir / f"{vote_id}.txt", running.config.records_dir / f"{vote_id}.html"):
        published = page.read_text()
        assert "France supports the cross-border mechanism." in published
        assert "212 555" not in published and "confidential" not in published
    service.send()
    results = letters_to(running, "GBR", "Results")[0]
    assert "212 555" not in results and "confidential" not in results


def test_every_answer_states_the_vote_as_it_now_stands(running: Deployment, tmp_path: Path) -> None:
    """A delegate reads one receipt, not the history of its receipts, to know what counts."""
    service = Service(running.config)
    open_vote(service, tmp_path, ("S/2020/654", "S/2020/658"))
    service.send()
    running.submit(running.reply("FRA", ["S/2020/654=yes"]), running.address("FRA"))
    service.poll_once()
    first = letters_to(running, "FRA", "Receipt")[0]
    assert "S/2020/654: YES  (this message)" in first and "S/2020/658: no choice yet" in first
    assert "This message changed: S/2020/654 (was no choice yet, now YES)." in first
    assert "you may change your vote" in first and "The vote closes " in first
    running.submit(running.reply("FRA", ["S/2020/658=abstain"]), running.address("FRA"))
    service.poll_once()
    second = [letter for letter in letters_to(running, "FRA", "Receipt") if letter != first][0]
    assert re.search(r"S/2020/654: YES  \(your ballot received \w+day .* UTC, SHA-256 [0-9a-f]{16}…\)", second)
    assert "S/2020/658: ABSTAIN  (this message)" in second
    assert "This message changed: S/2020/658 (was no choice yet, now ABSTAIN)." in second
    running.submit(signed_reply(running, "FRA", "S/2020/654: maybe"), running.address("FRA"))
    service.poll_once()
    rejection = letters_to(running, "FRA", "Rejected")[0]
    assert "S/2020/654: YES  (your ballot received" in rejection and "S/2020/658: ABSTAIN" in rejection
    assert "reply to the ballot again" in rejection and "This message changed" not in rejection


def test_a_rejection_and_the_status_attribute_an_unsigned_message_alike(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(b"From: fra@delegations.example\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n\r\n"
                   b"VOTE: YES\r\n", running.address("FRA"))
    service.poll_once()
    service.send()
    rejection = letters_to(running, "FRA", "Rejected")[0]
    assert "sent from an address of FRA (France), but not signed" in rejection
    assert "attributed to no delegation" in rejection and "signed by FRA" not in rejection
    assert "sign the reply with the certificate registered for FRA" in rejection
    assert "a ballot of yours already counted still stands" in rejection
    [rejected] = service.status(vote_id)["rejected"]
    assert rejected["code"] is None and rejected["reason"] == "not-signed"
    shown = voting("--config", str(running.config.path), "status", vote_id)
    assert "unknown sender" in shown.stdout and "FRA: not-signed" not in shown.stdout


def delegate_folder(deployment: Deployment, code: str, folder: Path) -> tuple[Path, str]:
    """A delegate's own folder, outside any deployment: the ballot received, the PKCS#12 file and the secretariat's
    certificate; returns the folder and the PKCS#12 password."""
    folder.mkdir()
    (folder / "ballot.eml").write_bytes(deployment.ballot_of(code))
    p12 = handed_over_p12(deployment.config, code, fingerprint(deployment.identities[code].certificate))
    shutil.copy(p12, folder / f"{code}.p12")
    shutil.copy(deployment.config.keys_dir / "secretariat.pem", folder / "secretariat.pem")
    return folder, p12.with_name(p12.name + ".password").read_text().strip()


def without_password_variable() -> dict[str, str]:
    assert "VOTING_P12_PASSWORD" not in os.environ, "the tests type the password; unset VOTING_P12_PASSWORD"
    return {}


def test_voting_reply_asks_the_password_on_the_terminal_echoes_the_choices_and_sends_without_a_deployment(
    running: Deployment, tmp_path: Path
) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    folder, password = delegate_folder(running, "FRA", tmp_path / "delegate")
    (folder / "explanation.txt").write_text("France cannot accept operative paragraph 2.\nIt asks for a new text.\n")
    port = running.config.settings.smtp.port
    command = ("reply", "ballot.eml", "--p12", "FRA.p12", "--vote", "contre", "--explanation", "explanation.txt",
               "--secretariat-cert", "secretariat.pem", "--send", "--smtp", f"127.0.0.1:{port}")
    untyped = voting(*command, cwd=folder, env=without_password_variable())
    assert untyped.returncode == 2 and "--password-file" in untyped.stderr and untyped.stdout == ""
    status, shown = voting_on_a_terminal(*command, typed=[("Password of FRA.p12: ", password)], cwd=folder)
    assert status == 0, shown
    assert password not in shown
    assert f"Signed for FRA (France) on vote {vote_id}, which closes " in shown
    assert "  S/2020/654: NO\n" in shown and "  Explanation: France cannot accept operative paragraph 2. […]" in shown
    assert f"Sent to votes@secretariat.example through 127.0.0.1 port {port} (no TLS)" in shown
    assert sorted(path.name for path in folder.iterdir()) == ["FRA.p12", "ballot.eml", "explanation.txt",
                                                               "secretariat.pem"]
    service.poll_once()
    [decision] = service.ledger.decisions(vote_id)
    assert (decision.code, decision.verdict, decision.choices) == ("FRA", "ballot", {"S/2020/654": "no"})
    assert decision.explanation == "France cannot accept operative paragraph 2.\nIt asks for a new text."


def test_voting_reply_refuses_a_key_of_another_delegation_naming_both(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    folder, _ = delegate_folder(running, "FRA", tmp_path / "delegate")
    usa = handed_over_p12(running.config, "USA", fingerprint(running.identities["USA"].certificate))
    refused = voting("reply", "ballot.eml", "--p12", str(usa), "--vote", "yes", "--secretariat-cert", "secretariat.pem",
                     "--out", "reply.eml", cwd=folder,
                     env={"VOTING_P12_PASSWORD": usa.with_name(usa.name + ".password").read_text().strip()})
    assert refused.returncode == 2, refused.stderr
    assert "this ballot is for FRA (France), sent to fra@delegations.example" in refused.stderr
    assert "usa@delegations.example" in refused.stderr and not (folder / "reply.eml").exists()
    relayed = (folder / "ballot.eml").read_bytes().replace(b"\nTo: fra@delegations.example\n",
                                                           b'\nTo: fra@delegations.example, "a\x1b]2;x\x07"@x.example\n')
    assert b"\x1b" in relayed
    (folder / "ballot.eml").write_bytes(relayed)
    refused = voting("reply", "ballot.eml", "--p12", str(usa), "--vote", "yes", "--secretariat-cert", "secretariat.pem",
                     "--out", "reply.eml", cwd=folder,
                     env={"VOTING_P12_PASSWORD": usa.with_name(usa.name + ".password").read_text().strip()})
    assert refused.returncode == 2 and "\x1b" not in refused.stderr and "\x07" not in refused.stderr, refused.stderr
    assert "sent to fra@delegations.example" in refused.stderr


def test_voting_reply_refuses_after_the_ballots_closing_time(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, seconds=2)
    service.send()
    folder, password = delegate_folder(running, "FRA", tmp_path / "delegate")
    closes = service.ledger.vote(vote_id).closes_at
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 1.1)
    command = ("reply", "ballot.eml", "--p12", "FRA.p12", "--vote", "yes", "--secretariat-cert", "secretariat.pem",
               "--out", "reply.eml")
    late = voting(*command, cwd=folder, env={"VOTING_P12_PASSWORD": password})
    assert late.returncode == 2 and not (folder / "reply.eml").exists()
    assert f"vote {vote_id} closed on {readable_time(closes)}" in late.stderr and "--after-close" in late.stderr
    anyway = voting(*command, "--after-close", cwd=folder, env={"VOTING_P12_PASSWORD": password})
    assert anyway.returncode == 0 and (folder / "reply.eml").exists(), anyway.stderr


def test_an_explanation_may_be_an_attached_file_named_for_one(running: Deployment, tmp_path: Path) -> None:
    """A text file's text is published; a PDF is named by its SHA-256; a logo or a card is never an explanation."""
    import hashlib

    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = text_of_entity(running.ballot_of("FRA"))
    content = MIMEPart(policy=SMTP)
    content.set_content("VOTE: YES\n\nKind regards\n\n" + "\n".join(f"> {line}" for line in ballot.splitlines()),
                        charset="utf-8")
    content.add_attachment("La France soutient le mécanisme transfrontalier.\n".encode(), maintype="text",
                           subtype="plain", filename="Explication de vote.txt")
    pdf = b"%PDF-1.4 the statement\n"
    content.add_attachment(pdf, maintype="application", subtype="pdf", filename="explanation_of_vote.pdf")
    content.add_attachment(b"\x89PNG logo", maintype="image", subtype="png", filename="image001.png")
    content.add_attachment(b"BEGIN:VCARD\n", maintype="text", subtype="plain", filename="card.txt")
    identity = running.identities["FRA"]
    entity = sign_entity(content.as_bytes(policy=SMTP), identity.key, identity.certificate, identity.chain)
    head = (f"From: {running.address('FRA')}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n"
            f"Message-ID: {make_msgid(domain='delegations.example')}\r\n")
    running.submit(head.encode() + entity, running.address("FRA"))
    service.poll_once()
    [decided] = service.ledger.decisions(vote_id)
    assert decided.verdict == "ballot"
    assert decided.explanation == (
        "La France soutient le mécanisme transfrontalier.\n\n"
        f"Attached: explanation_of_vote.pdf (application/pdf, {len(pdf)} bytes, SHA-256 {hashlib.sha256(pdf).hexdigest()}),"
        " kept with the signed message in the audit bundle.")
    assert "VCARD" not in decided.explanation and "PNG" not in decided.explanation


def test_a_delegation_reads_its_ballot_and_receipts_in_its_language(running: Deployment, tmp_path: Path) -> None:
    """France reads French; the binding lines and the choice words the service reads stay the same in every ballot."""
    electorate_file = running.config.electorate_file
    electorate = load_electorate(electorate_file)
    fra = electorate.get("FRA")
    assert fra is not None
    fra.language, fra.timezone = "fr", "Europe/Paris"
    save_electorate(electorate_file, electorate)
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = text_of_entity(running.ballot_of("FRA"))
    assert "Pour voter, répondez à ce courriel" in ballot and re.search(r"Répondre avant le \w+di \d+ ", ballot)
    assert f"Vote-ID: {vote_id}" in ballot and "Closes: " in ballot and "S/2020/654: YES | NO | ABSTAIN" in ballot
    assert "To vote, reply" in text_of_entity(running.ballot_of("GBR"))
    submit_all(running, {"FRA": "S/2020/654: POUR\n\nExplication :\nLa France soutient le projet."})
    service.poll_once()
    service.send()
    [receipt_raw] = [raw for raw in running.inbox_of("FRA") if b"Ballot:" not in raw]
    assert message_from_bytes(receipt_raw, policy=default)["Subject"] == (
        f"Accusé de réception : bulletin de FRA enregistré [{vote_id}]")
    receipt = text_of_entity(receipt_raw)
    assert "Le bulletin de FRA (France) pour le vote" in receipt and "S/2020/654: POUR  (ce message)" in receipt
    assert "à Paris" in receipt and "La France soutient le projet." in receipt
    [decided] = service.ledger.decisions(vote_id)
    assert (decided.choices, decided.explanation) == ({"S/2020/654": "yes"}, "La France soutient le projet.")


def test_a_french_delegation_reads_every_delegation_named_in_french(running: Deployment, tmp_path: Path) -> None:
    """Belgium reads French: its ballot, receipt and results name the delegations as the Council's French documents
    do; English letters, observers' notices and the public record keep the names in the secretariat's language."""
    electorate = load_electorate(running.config.electorate_file)
    belgium = electorate.get("BEL")
    assert belgium is not None and belgium.names == {"fr": "Belgique"}
    belgium.language = "fr"
    observers = {"observers": ["press@observers.example"]}
    save_electorate(running.config.electorate_file, electorate.model_copy(update=observers))
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, sponsors={"S/2020/654": ["USA", "RUS", "European Commission"]})
    service.send()
    ballot = text_of_entity(running.ballot_of("BEL")).replace("\r\n", "\n")
    assert "Delegation: BEL (Belgique)\n" in ballot
    assert "    Présenté par États-Unis d'Amérique, Fédération de Russie, European Commission\n" in ballot
    english = text_of_entity(running.ballot_of("GBR")).replace("\r\n", "\n")
    assert "Delegation: GBR (United Kingdom)\n" in english
    assert "    Sponsored by United States, Russian Federation, European Commission\n" in english
    submit_all(running, {"BEL": "S/2020/654: YES", "RUS": "S/2020/654: NO"})
    service.poll_once()
    service.close_now(vote_id)
    service.send()
    def french_letter(subject: str) -> str:
        [letter] = [text_of_entity(raw) for raw in running.inbox_of("BEL")
                    if str(message_from_bytes(raw, policy=default)["Subject"]).startswith(subject)]
        return letter

    assert "Le bulletin de BEL (Belgique) pour le vote" in french_letter("Accusé de réception")
    results = french_letter("Résultats")
    for french in ("BEL Belgique", "RUS Fédération de Russie", "USA États-Unis d'Amérique", "VNM Viet Nam",
                   "GBR Royaume-Uni de Grande-Bretagne et d'Irlande du Nord", "Présenté par États-Unis d'Amérique"):
        assert french in results, french
    assert "Russian Federation" not in results and "Belgium" not in results
    [english_results] = letters_to(running, "GBR", "Results")
    assert "RUS Russian Federation" in english_results and "Fédération" not in english_results
    observer = running.mail_root / "press@observers.example"
    observed = [text_of_entity(maildir.read(m)) for m in maildir.messages(observer)]
    assert observed and all("Fédération" not in text and "Belgique" not in text for text in observed)
    assert any("RUS Russian Federation" in text for text in observed), "observers read the results in English"


def test_a_deployment_adds_a_language_and_a_wrong_catalogue_is_named(running: Deployment, tmp_path: Path) -> None:
    folder = running.config.path.parent
    english = (Path(__file__).resolve().parents[1] / "voting" / "data" / "wording-en.toml").read_text()
    (folder / "wording-es.toml").write_text(english.replace("Reply by {deadline}.", "Responder antes del {deadline}."))
    assert wording("es", (folder,))("ballot.reply_by", deadline="x") == "Responder antes del x."
    (folder / "wording-de.toml").write_text(english.replace("Reply by {deadline}.", "Antworten bis."))
    with pytest.raises(ConfigError, match=r"wording-de.toml: ballot.reply_by must use the fields \['deadline'\]"):
        wording("de", (folder,))
    with pytest.raises(ConfigError, match=r"no wording catalogue for the language 'it' \(there are: de, en, es, fr\)"):
        wording("it", (folder,))
    for key, line in (("reminder.how", "how = 'To vote, reply to your ballot"),
                      ("record.subject", 'subject = "Results:'), ("no_ballot.text", 'text = "A signed request of')):
        kept = [text for text in english.splitlines() if not text.startswith(line)]
        (folder / "wording-pt.toml").write_text("\n".join(kept))
        with pytest.raises(ConfigError, match=rf"wording-pt.toml: {re.escape(key)} is missing"):
            wording("pt", (folder,))
    assert set(wording("fr").texts) == set(wording("en").texts), "the service's own catalogues have the same keys"
