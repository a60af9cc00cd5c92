"""What the service writes besides answers: ballots sent again on request, reminders, and observers' notices."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import MIMEPart
from email.policy import SMTP, default
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, voting, write_config

from voting.audit import audit_bundle
from voting.ballot import BallotRequest, ballot_request, text_of_entity
from voting.bundle import export_bundle, read_bundle
from voting.electorate import add_delegation, dump_electorate, load_electorate, parse_electorate, save_electorate
from voting.errors import ConfigError, UsageError
from voting.mail import maildir
from voting.pki import Identity, create_ca, issue_signing_certificate
from voting.service import Service
from voting.smime.sign import sign_detached_der, sign_entity

OBSERVER = "press@observers.example"


def signed(deployment: Deployment, code: str, text: str, *, identity: Identity | None = None,
           sender: str | None = None) -> bytes:
    """A message as a delegate's mail client signs it, with `text` as its whole body."""
    content = MIMEPart(policy=SMTP)
    content.set_content(text, charset="utf-8", cte="quoted-printable")
    identity = identity or deployment.identities[code]
    entity = sign_entity(content.as_bytes(policy=SMTP), identity.key, identity.certificate, identity.chain)
    head = (
        f"From: {sender or deployment.address(code)}\r\nTo: votes@secretariat.example\r\nSubject: ballot\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\nMessage-ID: {make_msgid(domain='delegations.example')}\r\n"
    )
    return head.encode() + entity


def quoting(raw: bytes, own_text: str) -> str:
    return own_text + "\n\n" + "\n".join(f"> {line}".rstrip() for line in text_of_entity(raw).splitlines()) + "\n"


def inbox(deployment: Deployment, address: str) -> list[bytes]:
    return [maildir.read(m) for m in maildir.messages(deployment.mail_root / address)]


def letters(deployment: Deployment, address: str, subject: str) -> list[str]:
    return [text_of_entity(raw) for raw in inbox(deployment, address) if f"Subject: {subject}".encode() in raw]


def tokens(deployment: Deployment, code: str, vote_id: str) -> list[str]:
    """The Ballot-Token of every ballot of the vote the delegation received, in order."""
    return [re.search(r"Ballot-Token: (\S+)", text).group(1)  # type: ignore[union-attr]
            for text in letters(deployment, deployment.address(code), "Ballot:") if f"Vote-ID: {vote_id}" in text]


class Clock:
    """The service's clock, moved forward by the test."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


# -- the request grammar ----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("BALLOT", BallotRequest(None)),
    ("ballot.", BallotRequest(None)),
    ("Bulletin de vote", BallotRequest(None)),
    ("Papeleta: unsc-2020-0007", BallotRequest("unsc-2020-0007")),
    ("Бюллетень unsc-2020-0007", BallotRequest("unsc-2020-0007")),
    ("选票", BallotRequest(None)),
    ("ورقة الاقتراع", BallotRequest(None)),
    ("Please send me the ballot", None),
    ("Ballots are due tomorrow", None),
    ("Ballot: YES", None),
    ("> BALLOT", None),
    ("Ballot-Token: 3q2+7w0F8xH1m9kz0bA1Rg", None),
])
def test_a_request_is_the_word_ballot_on_an_own_line(text: str, expected: BallotRequest | None) -> None:
    assert ballot_request(f"Dear colleagues,\n{text}\n-- \nBALLOT in the signature is no request\n") == expected


# -- BALLOT requests --------------------------------------------------------------------------


def test_a_signed_ballot_request_resends_the_same_ballot_and_counts_for_nothing(running: Deployment,
                                                                                 tmp_path: Path) -> None:
    service = Service(running.config)
    first = open_vote(service, tmp_path)
    second = open_vote(service, tmp_path)
    service.send()
    original = {vote_id: tokens(running, "FRA", vote_id) for vote_id in (first, second)}
    running.submit(signed(running, "FRA", quoting(running.ballot_of("FRA"), "BALLOT")), running.address("FRA"))
    running.submit(signed(running, "NER", f"Bulletin {first}\n"), running.address("NER"))
    running.submit(signed(running, "USA", "Ballot\n"), running.address("USA"))
    service.poll_once()

    assert [(d.code, d.verdict, d.choices) for d in service.ledger.decisions(second)] == [("FRA", "request", {})]
    assert [(d.code, d.verdict) for d in service.ledger.decisions(first)] == [("NER", "request")]
    assert [(d.code, d.verdict) for d in service.ledger.decisions(None)] == [("USA", "request")]
    assert tokens(running, "FRA", second) == original[second] * 2, "the same token, sent again"
    assert tokens(running, "FRA", first) == original[first]
    assert len(tokens(running, "NER", first)) == 2 and len(tokens(running, "NER", second)) == 1
    assert len(tokens(running, "USA", first)) == 2 and len(tokens(running, "USA", second)) == 2, "every open ballot"
    assert not letters(running, running.address("FRA"), "Rejected") + letters(running, running.address("FRA"),
                                                                               "Receipt")
    assert "FRA" in service.status(second)["not_voted"] and service.status(second)["rejected"] == []

    resent = [raw for raw in running.inbox_of("FRA") if b"Subject: Ballot:" in raw and second.encode() in raw][-1]
    running.submit(running.reply("FRA", ["yes"], ballot=resent), running.address("FRA"))
    service.poll_once()
    assert [d.verdict for d in service.ledger.decisions(second)] == ["request", "ballot"]
    service.close_now(second)
    assert service.ledger.vote(second).outcome["S/2020/654"]["yes"] == 1  # type: ignore[index]


def test_a_reply_with_choices_is_a_ballot_even_when_it_says_ballot(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(signed(running, "FRA", quoting(running.ballot_of("FRA"), "BALLOT\nS/2020/654: NO")),
                   running.address("FRA"))
    service.poll_once()
    assert [(d.verdict, d.choices) for d in service.ledger.decisions(vote_id)] == [("ballot", {"S/2020/654": "no"})]
    assert len(tokens(running, "FRA", vote_id)) == 1


def test_requests_are_answered_at_most_three_times_an_hour(running: Deployment, tmp_path: Path) -> None:
    clock = Clock()
    service = Service(running.config, clock=clock)
    vote_id = open_vote(service, tmp_path, seconds=3 * 3600)
    service.send()
    request = signed(running, "FRA", f"BALLOT {vote_id}\n")
    for copy in range(5):
        running.submit(request.replace(b"Subject: ballot", f"Subject: ballot {copy}".encode()), running.address("FRA"))
    service.poll_once()
    assert [d.verdict for d in service.ledger.decisions(vote_id)] == ["request"] * 5
    assert len(tokens(running, "FRA", vote_id)) == 1 + 3
    clock.ahead = timedelta(minutes=61)
    running.submit(request, running.address("FRA"))
    service.poll_once()
    assert len(tokens(running, "FRA", vote_id)) == 1 + 4


def test_a_request_when_no_ballot_is_open_is_told_so(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    running.submit(signed(running, "FRA", "BALLOT\n"), running.address("FRA"))
    service.poll_once()
    assert [d.verdict for d in service.ledger.decisions(None)] == ["request"]
    assert "no vote is open" in letters(running, running.address("FRA"), "No open ballot")[0]


def test_requests_are_replayed_by_the_audit(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(signed(running, "FRA", quoting(running.ballot_of("FRA"), "Papeleta")), running.address("FRA"))
    running.submit(signed(running, "NER", "BALLOT\n"), running.address("NER"))
    running.submit(running.reply("USA", ["no"]), running.address("USA"))
    service.poll_once()
    service.close_now(vote_id)
    summary = export_bundle(service, vote_id, tmp_path / "bundle.zip")
    bundle = read_bundle(summary.path)
    checks = audit_bundle(bundle)
    assert [c for c in checks if not c.ok] == []
    assert sum(c.name.endswith("verdict") for c in checks) == 3
    manifest = json.loads(zipfile.ZipFile(summary.path).read("manifest.json"))
    assert sorted((m["code"], m["verdict"], m["vote_id"]) for m in manifest["messages"]) == [
        ("FRA", "request", vote_id), ("NER", "request", None), ("USA", "ballot", vote_id)]

    # A dishonest secretariat passes USA's ballot off as a request, to leave it out of the count.
    usa = next(m for m in manifest["messages"] if m["code"] == "USA")
    usa.update(verdict="request", choices={})
    manifest["counted"] = {}
    with zipfile.ZipFile(summary.path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["manifest.json"] = json.dumps(manifest, indent=2).encode()
    signer = service.keys.signer
    members["manifest.json.p7s"] = sign_detached_der(members["manifest.json"], signer.key, signer.certificate)
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    failed = {c.name: c.detail for c in audit_bundle(tampered.read_bytes()) if not c.ok}
    assert "replay gives USA: ballot" in failed[f"message {usa['sha256'][:16]}… verdict"]
    assert set(failed) >= {"decisions", "closing"}, failed


def test_voting_resend_sends_the_same_ballot_again(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    config = str(running.config.path)
    resent = voting("--config", config, "resend", vote_id, "DEU")
    assert resent.returncode == 0 and "sent again" in resent.stdout, resent.stderr
    first, again = tokens(running, "DEU", vote_id)
    assert first == again
    unknown = voting("--config", config, "resend", vote_id, "XYZ")
    assert unknown.returncode == 2 and "XYZ has no ballot" in unknown.stderr
    service.close_now(vote_id)
    closed = voting("--config", config, "resend", vote_id, "DEU")
    assert closed.returncode == 2 and "is closed" in closed.stderr


# -- reminders --------------------------------------------------------------------------------


def test_reminders_go_once_to_those_who_have_not_voted_and_never_after_the_deadline(running: Deployment,
                                                                                   tmp_path: Path) -> None:
    write_config(running, secretariat={"timezone": "America/New_York"})
    clock = Clock()
    service = Service(running.config, clock=clock)
    vote_id = open_vote(service, tmp_path, seconds=7 * 3600)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), running.address("FRA"))
    assert service.poll_once().reminded == 0

    clock.ahead = timedelta(hours=1, minutes=5)
    assert service.poll_once().reminded == 14
    reminder, = letters(running, running.address("NER"), "Reminder:")
    assert f"Vote {vote_id} (Test vote) closes" in reminder and "in New York" in reminder
    assert "No ballot of NER (Niger) is recorded yet on:\r\n  S/2020/654: Draft resolution S/2020/654\r\n" in reminder
    assert "BALLOT on a line of its own" in reminder
    assert letters(running, running.address("FRA"), "Reminder:") == []
    assert Service(running.config, clock=clock).poll_once().reminded == 0, "a restart sends nothing again"

    running.submit(running.reply("NER", ["abstain"]), running.address("NER"))
    clock.ahead = timedelta(hours=6, minutes=5)
    assert service.poll_once().reminded == 13
    assert len(letters(running, running.address("NER"), "Reminder:")) == 1
    assert len(letters(running, running.address("USA"), "Reminder:")) == 2

    clock.ahead = timedelta(hours=7, minutes=5)
    write_config(running, service={"reminders": ["30m"]})
    assert Service(running.config, clock=clock).poll_once().reminded == 0
    assert not service.ledger.vote(vote_id).is_open


def test_reminders_due_together_go_as_one(running: Deployment, tmp_path: Path) -> None:
    clock = Clock()
    service = Service(running.config, clock=clock)
    open_vote(service, tmp_path, seconds=7 * 3600)
    service.send()
    clock.ahead = timedelta(hours=6, minutes=30)
    assert service.poll_once().reminded == 15
    assert service.poll_once().reminded == 0
    assert len(letters(running, running.address("USA"), "Reminder:")) == 1


def test_concurrent_passes_remind_once(running: Deployment, tmp_path: Path) -> None:
    clock = Clock()
    open_vote(Service(running.config, clock=clock), tmp_path, seconds=7 * 3600)
    clock.ahead = timedelta(hours=1, minutes=5)
    counts: list[int] = []

    def remind() -> None:
        service = Service(running.config, clock=clock)
        counts.append(service.remind_due())
        service.shut_down()

    passes = [threading.Thread(target=remind) for _ in range(3)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join()
    assert sum(counts) == 15
    assert len([m for m in Service(running.config).ledger.outbox() if m.kind == "reminder"]) == 15


def test_a_moved_deadline_has_reminders_of_its_own(running: Deployment, tmp_path: Path) -> None:
    clock = Clock()
    service = Service(running.config, clock=clock)
    vote_id = open_vote(service, tmp_path, rule="simple-majority", seconds=7 * 3600)
    clock.ahead = timedelta(hours=1, minutes=5)
    assert service.poll_once().reminded == 15
    service.extend(vote_id, service.ledger.vote(vote_id).closes_at + timedelta(days=1))
    assert service.poll_once().reminded == 0
    clock.ahead += timedelta(days=1)
    assert service.poll_once().reminded == 15


def test_no_reminder_for_a_moment_before_the_vote_opened(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path, seconds=3 * 3600)
    assert service.poll_once().reminded == 0, "the 6 h reminder of a 3 h vote never goes"


def test_a_bad_reminder_setting_names_the_key(running: Deployment) -> None:
    with pytest.raises(ConfigError, match=r"service.reminders: .*'6 hours' is not a length of time"):
        write_config(running, service={"reminders": ["6 hours"]})


# -- observers --------------------------------------------------------------------------------


def test_observers_are_told_of_the_vote_and_its_results_and_cannot_vote(running: Deployment, tmp_path: Path) -> None:
    electorate = load_electorate(running.config.electorate_file)
    save_electorate(running.config.electorate_file, electorate.model_copy(update={"observers": [OBSERVER]}))
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, observers=["UN-Watch@Observers.example"])
    service.send()
    for address in (OBSERVER, "un-watch@observers.example"):
        notice, = letters(running, address, "Observer notice:")
        assert "you cannot vote" in notice and "Ballot-Token" not in notice
        draft = (tmp_path / "S-2020-654.txt").read_bytes()
        assert f"SHA-256: {hashlib.sha256(draft).hexdigest()}" in notice
        assert "    | Text of the draft." in notice and "Rule: unsc-substantive" in notice
        assert len(inbox(running, address)) == 1, "one notice to each, naming no other observer"

    rogue = issue_signing_certificate(create_ca("Press", "Press"), common_name="Press", emails=[OBSERVER])
    notice_raw = inbox(running, OBSERVER)[0]
    running.submit(signed(running, "USA", quoting(notice_raw, "S/2020/654: YES"), identity=rogue, sender=OBSERVER),
                   OBSERVER)
    running.submit(signed(running, "USA", quoting(notice_raw, "BALLOT"), identity=rogue, sender=OBSERVER), OBSERVER)
    service.poll_once()
    assert [(d.code, d.reason) for d in service.ledger.decisions(None)] == [(None, "unknown-signer")] * 2
    assert len(inbox(running, OBSERVER)) == 1, "an observer's mail gets no answer"
    service.close_now(vote_id)
    service.send()
    assert service.ledger.vote(vote_id).outcome["S/2020/654"]["yes"] == 0  # type: ignore[index]
    for address in (OBSERVER, "un-watch@observers.example"):
        results, = letters(running, address, "Results:")
        assert vote_id in results


def test_an_observer_is_never_a_delegation_nor_the_secretariat(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    with pytest.raises(UsageError, match="fra@delegations.example is an address of FRA"):
        open_vote(service, tmp_path, observers=["FRA@delegations.example"])
    with pytest.raises(UsageError, match="secretariat's own address"):
        open_vote(service, tmp_path, observers=["votes@secretariat.example"])
    with pytest.raises(UsageError, match="not a mailbox address"):
        open_vote(service, tmp_path, observers=["press"])
    electorate = load_electorate(running.config.electorate_file).model_copy(update={"observers": [OBSERVER]})
    with pytest.raises(UsageError, match="observer's address"):
        add_delegation(electorate, "PRS", "Press", email=OBSERVER, permanent=False)
    assert parse_electorate(dump_electorate(electorate)) == electorate
    assert service.ledger.votes() == []


# -- the delegation's language ----------------------------------------------------------------


def subjects_and_texts(deployment: Deployment, address: str) -> dict[str, str]:
    """Each letter in the mailbox by its subject (decoded, as a mail client shows it)."""
    return {str(message_from_bytes(raw, policy=default)["Subject"]): text_of_entity(raw).replace("\r\n", "\n")
            for raw in inbox(deployment, address)}


def one(letters_by_subject: dict[str, str], start: str) -> str:
    found = [text for subject, text in letters_by_subject.items() if subject.startswith(start)]
    assert len(found) == 1, f"{start!r} in {list(letters_by_subject)}"
    return found[0]


def test_a_french_delegation_receives_every_letter_in_french_and_observers_the_secretariats(
        running: Deployment, tmp_path: Path) -> None:
    """France reads French in the answer to a request, the reminder, the moved deadline and the results; the UK and
    an observer read English; the lines the audit and the parser read are the same in both."""
    electorate = load_electorate(running.config.electorate_file)
    fra = electorate.get("FRA")
    assert fra is not None
    fra.language, fra.timezone = "fr", "Europe/Paris"
    save_electorate(running.config.electorate_file, electorate.model_copy(update={"observers": [OBSERVER]}))
    clock = Clock()
    service = Service(running.config, clock=clock)
    running.submit(signed(running, "FRA", "BULLETIN\n"), running.address("FRA"))
    service.poll_once()
    vote_id = open_vote(service, tmp_path, rule="unanimity", seconds=7 * 3600)
    service.send()
    clock.ahead = timedelta(hours=6, minutes=30)
    assert service.poll_once().reminded == 15
    service.extend(vote_id, clock() + timedelta(hours=2))
    service.send()
    clock.ahead = timedelta(0)
    running.submit(running.reply("FRA", ["no"]), running.address("FRA"))
    service.poll_once()
    service.close_now(vote_id)
    service.send()

    french = subjects_and_texts(running, running.address("FRA"))
    assert "Une demande signée de FRA (France) visant à recevoir ses bulletins" in one(french, "Aucun bulletin ouvert"
                                                                                            " pour FRA")
    reminder = one(french, "Rappel : Test vote")
    assert f"Le vote {vote_id} (Test vote) sera clos le " in reminder and "à Paris" in reminder
    assert "le mot BULLETIN sur une ligne à part" in reminder and f"Vote-ID: {vote_id}\n" in reminder
    moved = one(french, "Modification de l'heure de clôture : Test vote")
    assert "Nouvelle heure de clôture : " in moved and "Heure de clôture précédente : " in moved
    results = one(french, f"Résultats : Test vote [{vote_id}]")
    assert "S/2020/654: NON ADOPTÉ — " in results and "Délégation" in results and "CONTRE" in results
    assert "FRA France" in results and "Pour vérifier vous-même ce résultat" in results
    assert re.search(r"^Audit bundle SHA-256: [0-9a-f]{64}$", results, re.MULTILINE), "the audit reads this line"

    english = subjects_and_texts(running, running.address("GBR"))
    assert "Reminder: Test vote" in "".join(english) and "Deadline moved: Test vote" in "".join(english)
    assert "S/2020/654: NOT ADOPTED — " in one(english, "Results: Test vote")
    observed = subjects_and_texts(running, OBSERVER)
    assert "Rule: unanimity" in one(observed, "Observer notice: Test vote")
    assert "S/2020/654: NOT ADOPTED — " in one(observed, "Results: Test vote")
