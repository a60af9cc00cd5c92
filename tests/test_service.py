"""The pipeline of docs/design.md §2 end to end: real SMTP server, Maildirs, SQLite, certificates and signatures."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, write_config

from voting.ballot import text_of_entity
from voting.ledger import Ledger, utc_text
from voting.mail import maildir
from voting.pki import create_ca, issue_signing_certificate
from voting.reasons import Reason
from voting.service import MAILBOX_SETTLING, Service, embedded_server
from voting.verdict import REJECTED


def decisions(service: Service, vote_id: str | None) -> list[tuple[str | None, str, str | None]]:
    return [(d.code, d.verdict, d.reason) for d in service.ledger.decisions(vote_id)]


def assert_openssl_verifies(raw: bytes, deployment: Deployment, tmp_path: Path) -> None:
    """OpenSSL, an independent implementation, accepts the secretariat's signature for S/MIME."""
    path = tmp_path / "signed.eml"
    path.write_bytes(raw)
    ca = deployment.config.keys_dir / "secretariat-ca.pem"
    result = subprocess.run(["openssl", "cms", "-verify", "-in", str(path), "-CAfile", str(ca), "-purpose",
                             "smimesign", "-out", "/dev/null"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ballots_are_signed_and_carry_a_token(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = running.ballot_of("FRA")
    assert f"Vote-ID: {vote_id}".encode() in ballot
    assert b"Ballot-Token: " in ballot
    assert_openssl_verifies(ballot, running, tmp_path)


def test_a_signed_reply_is_counted_acknowledged_and_tallied(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"], explanation="France supports the draft."), "fra@delegations.example")
    report = service.poll_once()
    assert report.fetched == 1
    assert decisions(service, vote_id) == [("FRA", "ballot", None)]
    receipt = [raw for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw]
    assert len(receipt) == 1
    stored = service.ledger.decisions(vote_id)[0]
    assert stored.sha256 in text_of_entity(receipt[0])
    assert stored.explanation == "France supports the draft."
    service.close_now(vote_id)
    service.send()
    outcome = service.ledger.vote(vote_id).outcome
    assert outcome is not None and outcome["S/2020/654"]["yes"] == 1
    assert outcome["S/2020/654"]["adopted"] is False
    assert any(b"Subject: Results" in raw for raw in running.inbox_of("CHN"))


def test_a_ballot_the_embedded_server_accepts_ends_the_wait_between_passes(deployment: Deployment,
                                                                          tmp_path: Path) -> None:
    """`voting serve` takes a ballot in as it is delivered, not at its next timer tick (here a minute away)."""
    write_config(deployment, service={"poll_seconds": 60})
    service = Service(deployment.config, log=lambda line: None)
    stop, delivered = threading.Event(), threading.Event()
    with embedded_server(deployment.config, required=True, delivered=delivered.set):
        vote_id = open_vote(service, tmp_path)
        service.send()
        waiting = threading.Thread(target=service.wait_for_mail,
                                   args=(deployment.config.settings.service.poll_seconds, stop, delivered))
        waiting.start()
        try:
            deployment.submit(deployment.reply("FRA", ["yes"]), "fra@delegations.example")
            waiting.join(timeout=30)
            assert not waiting.is_alive(), "the wait for mail went on after the ballot was delivered"
        finally:
            stop.set()
            waiting.join()
        assert service.poll_once().fetched == 1
    assert decisions(service, vote_id) == [("FRA", "ballot", None)]
    assert [raw for raw in deployment.inbox_of("FRA") if b"Subject: Receipt" in raw]


def test_a_change_of_vote_supersedes_and_the_last_counts(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("NER", ["abstain"]), "ner@delegations.example")
    service.poll_once()
    time.sleep(0.01)
    running.submit(running.reply("NER", ["yes"]), "ner@delegations.example")
    service.poll_once()
    records = service.ledger.decisions(vote_id)
    assert [d.verdict for d in records] == ["ballot", "ballot"]
    assert records[1].supersedes == records[0].message
    vote = service.ledger.vote(vote_id)
    assert service.counted(vote, vote.closes_at)["S/2020/654"] == {"NER": "yes"}
    receipts = [raw for raw in running.inbox_of("NER") if b"Subject: Receipt" in raw]
    assert b"supersedes" in receipts[-1]


def test_each_receipt_of_one_pass_states_the_vote_as_its_ballot_left_it(running: Deployment, tmp_path: Path) -> None:
    """Three ballots of one delegation, and a copy of the first, taken in by one pass: each receipt states what
    counted before it and what counts after it, though the pass reads the delegation's ballots only once."""
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, ("S/2020/654", "S/2020/655"))
    service.send()
    first = running.reply("NER", ["abstain"])
    copy = first.replace(b"Subject: Re: ", b"Subject: RE: ")  # the same signed ballot, other outer bytes
    for raw in (first, running.reply("NER", ["S/2020/655=no"]), running.reply("NER", ["yes"]), copy):
        running.submit(raw, "ner@delegations.example")
    service.poll_once()
    assert [d[1:] for d in decisions(service, vote_id)] == [("ballot", None)] * 3 + [("rejected", "replayed")]
    answers = [text_of_entity(raw).replace("\r\n", "\n") for raw in running.inbox_of("NER")
               if b"Subject: Receipt" in raw or b"Subject: Rejected" in raw]
    changes = [next((line for line in text.split("\n") if line.startswith("This message changed")), None)
               for text in answers]
    assert changes == [
        "This message changed: S/2020/654 (was no choice yet, now ABSTAIN); S/2020/655 (was no choice yet, now"
        " ABSTAIN).",
        "This message changed: S/2020/655 (was ABSTAIN, now NO).",
        "This message changed: S/2020/654 (was ABSTAIN, now YES); S/2020/655 (was NO, now YES).",
        None,
    ]
    assert "S/2020/654: YES  (your ballot received" in answers[-1] and "S/2020/655: YES" in answers[-1]


def test_first_ballot_final_refuses_a_change(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, first_ballot_final=True)
    service.send()
    running.submit(running.reply("NER", ["abstain"]), "ner@delegations.example")
    running.submit(running.reply("NER", ["yes"]), "ner@delegations.example")
    service.poll_once()
    assert [d[1:] for d in decisions(service, vote_id)] == [("ballot", None), ("rejected", "ballot-final")]


def test_a_forged_reply_is_rejected_and_only_the_registered_address_is_told(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    rogue = issue_signing_certificate(create_ca("Rogue", "Nobody"), common_name="x", emails=["usa@delegations.example"])
    running.submit(running.reply("USA", ["no"], identity=rogue), "usa@delegations.example")
    service.poll_once()
    assert decisions(service, None) == [(None, "rejected", "unknown-signer")]
    assert decisions(service, vote_id) == []
    rejection = [raw for raw in running.inbox_of("USA") if b"Subject: Rejected" in raw]
    assert len(rejection) == 1 and b"unknown-signer" in rejection[0]


def test_status_shows_the_rejections_bound_to_no_vote_that_arrived_while_the_vote_took_mail(
        deployment: Deployment, tmp_path: Path) -> None:
    """From the moment the vote opened until its statement window ends, and nothing from before or after it."""
    service = Service(deployment.config)
    vote_id = open_vote(service, tmp_path)
    vote = service.ledger.vote(vote_id)
    window_end = vote.closes_at + timedelta(hours=vote.statement_hours)
    tick = timedelta(microseconds=1)
    arrivals = {"before": vote.opened_at - tick, "opening": vote.opened_at, "last": window_end - tick,
                "after": window_end}
    with service.ledger.transaction():
        for name, at in arrivals.items():
            message = service.ledger.store_message(f"Subject: {name}\r\n\r\nNot signed.\r\n".encode(), at,
                                                   f"test:{name}", at)
            service.ledger.record_decision(message, vote_id=None, code=None, verdict=REJECTED,
                                           reason=Reason.NOT_SIGNED.value, detail="", choices={}, explanation="",
                                           supersedes=None, signed_sha256=None, now=at)
    shown = [r["received_at"] for r in service.status(vote_id)["rejected"]]
    assert shown == [utc_text(arrivals["opening"]), utc_text(arrivals["last"])]


def test_a_reply_from_an_unregistered_address_gets_no_answer(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    rogue = issue_signing_certificate(create_ca("Rogue", "Nobody"), common_name="x", emails=["eve@attacker.example"])
    running.submit(running.reply("USA", ["no"], identity=rogue), "eve@attacker.example")
    service.poll_once()
    assert decisions(service, None) == [(None, "rejected", "unknown-signer")]
    assert not (running.mail_root / "eve@attacker.example").exists()
    assert service.ledger.outbox("queued") == [] and all(m.kind == "ballot" for m in service.ledger.outbox())


def test_another_delegations_ballot_and_a_replay_into_another_vote_are_rejected(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    first = open_vote(service, tmp_path)
    service.send()
    old_ballot = running.ballot_of("FRA")
    second = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("GBR", ["yes"], ballot=running.ballot_of("FRA")), "gbr@delegations.example")
    service.poll_once()
    assert decisions(service, second) == [("GBR", "rejected", "wrong-ballot-token")]
    replay = running.reply("FRA", ["yes"], ballot=old_ballot)
    running.submit(replay, "fra@delegations.example")
    service.close_now(first)
    running.submit(replay.replace(b"Message-ID: <", b"Message-ID: <replayed."), "fra@delegations.example")
    service.poll_once()
    assert decisions(service, first) == [("FRA", "ballot", None), ("FRA", "rejected", "replayed")]


def test_no_choice_and_conflicting_choices_are_rejected_with_the_reason(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, ("S/2020/654", "S/2020/658"))
    service.send()
    running.submit(running.reply("BEL", ["S/2020/654=yes"], explanation="S/2020/654: NO"), "bel@delegations.example")
    running.submit(running.reply("DEU", ["S/2020/654=yes"], explanation="S/2020/999: YES"), "deu@delegations.example")
    running.submit(running.reply("EST", ["yes"]).replace(b"S/2020/654: YES", b"S/2020/654: NO"), "est@delegations.example")
    service.poll_once()
    assert sorted(decisions(service, vote_id)) == [
        ("BEL", "rejected", "conflicting-choices"),
        ("DEU", "rejected", "unknown-draft"),
    ]
    # A broken signature proves nothing about who sent it: bound to no vote and no delegation,
    # but answered to the delegation whose registered address the From header names.
    assert decisions(service, None) == [(None, "rejected", "bad-signature")]
    assert any(b"Subject: Rejected" in raw for raw in running.inbox_of("EST"))
    rejection = [raw for raw in running.inbox_of("BEL") if b"Subject: Rejected" in raw][0]
    assert b"conflicting-choices" in rejection


def test_malformed_and_unsigned_mail_is_recorded_and_the_service_goes_on(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(b"From: fra@delegations.example\r\nSubject: hello\r\n\r\nI vote yes\r\n", "fra@delegations.example")
    running.submit(b"\x00\xff garbage with no headers at all", "fra@delegations.example")
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    service.poll_once()
    verdicts = sorted((d.verdict, d.reason or "") for d in service.ledger.decisions(None) + service.ledger.decisions(vote_id))
    assert ("ballot", "") in verdicts
    assert ("rejected", "not-signed") in verdicts
    assert len(verdicts) == 3


def test_a_crash_after_storing_loses_nothing_and_counts_nothing_twice(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    inbox = running.config.inbox
    [message] = maildir.pending(inbox)
    # The ledger commits the raw bytes, then the process dies before the message leaves new/.
    service.ledger.store_message(maildir.read(message), message.received_at, f"maildir:{message.key}", datetime.now(UTC))
    restarted = Service(running.config)
    restarted.poll_once()
    assert maildir.pending(inbox) == []
    assert decisions(restarted, vote_id) == [("FRA", "ballot", None)]


def test_the_deadline_is_the_servers_delivery_time(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, seconds=1.5)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    time.sleep(1.6)
    running.submit(running.reply("GBR", ["yes"]), "gbr@delegations.example")
    running.submit(running.reply("DEU", ["yes"], explanation="Germany explains its vote."), "deu@delegations.example")
    time.sleep(MAILBOX_SETTLING.total_seconds())
    report = service.poll_once()
    assert report.closed == [vote_id]
    assert sorted(decisions(service, vote_id)) == [
        ("DEU", "statement", None), ("FRA", "ballot", None), ("GBR", "rejected", "late")]
    outcome = service.ledger.vote(vote_id).outcome
    assert outcome is not None and outcome["S/2020/654"]["yes"] == 1


def test_receipts_verify_with_openssl(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    service.poll_once()
    receipt = [raw for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw][0]
    assert_openssl_verifies(receipt, running, tmp_path)


def test_the_hash_chain_links_every_event(running: Deployment, tmp_path: Path) -> None:
    from voting.ledger import GENESIS, canonical_json, event_hash

    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    service.poll_once()
    service.close_now(vote_id)
    events = service.ledger.events(vote_id)
    assert [e.kind for e in events] == ["vote-opened", "decision", "deadline-moved", "vote-closed"]
    previous = GENESIS
    for event in events:
        assert event.prev_hash == previous
        assert event.hash == event_hash(previous, event.seq, event.at, event.kind, canonical_json(event.data))
        previous = event.hash


def test_the_ledger_refuses_to_rewrite_history(deployment: Deployment) -> None:
    import sqlite3

    import pytest

    with Ledger.open(deployment.config.database) as ledger:
        stored = ledger.store_message(b"raw", datetime.now(UTC), "test", datetime.now(UTC))
        assert stored.sha256 == hashlib.sha256(b"raw").hexdigest()
        assert not ledger.store_message(b"raw", datetime.now(UTC), "again", datetime.now(UTC)).new
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            ledger.db.execute("DELETE FROM events")
        with pytest.raises(sqlite3.DatabaseError, match="never changed"):
            ledger.db.execute("UPDATE messages SET raw = x'00'")
        mode = ledger.db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_extend_is_refused_for_unsc_rules_and_allowed_for_silence(running: Deployment, tmp_path: Path) -> None:
    import pytest

    from voting.errors import UsageError

    service = Service(running.config)
    unsc = open_vote(service, tmp_path)
    with pytest.raises(UsageError, match="does not allow"):
        service.extend(unsc, datetime.now(UTC) + timedelta(days=2))
    silence = open_vote(service, tmp_path, rule="silence")
    later = datetime.now(UTC) + timedelta(days=3)
    service.extend(silence, later)
    assert service.ledger.vote(silence).closes_at == later


def test_mail_is_threaded_and_has_text_and_html(running: Deployment, tmp_path: Path) -> None:
    from email import message_from_bytes
    from email.policy import default

    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    ballot = message_from_bytes(running.ballot_of("FRA"), policy=default)
    reply_raw = running.reply("FRA", ["yes"])
    reply = message_from_bytes(reply_raw, policy=default)
    assert reply["In-Reply-To"] == ballot["Message-ID"]
    running.submit(reply_raw, "fra@delegations.example")
    service.poll_once()
    receipt = message_from_bytes([r for r in running.inbox_of("FRA") if b"Subject: Receipt" in r][0], policy=default)
    assert receipt["In-Reply-To"] == reply["Message-ID"]
    assert ballot["Message-ID"] in receipt["References"] and reply["Message-ID"] in receipt["References"]
    for raw in (running.ballot_of("FRA"), reply_raw):
        assert raw.count(b"\nMIME-Version:") + raw.startswith(b"MIME-Version:") == 1
    for message in (ballot, receipt):
        assert message.get_content_type() == "multipart/signed"
    receipt_parts = receipt.get_payload()[0]
    assert [part.get_content_type() for part in receipt_parts.iter_parts()] == ["text/plain", "text/html"]
    ballot_body, draft = ballot.get_payload()[0].iter_parts()
    assert [part.get_content_type() for part in ballot_body.iter_parts()] == ["text/plain", "text/html"]
    assert (draft.get_filename(), draft.get_content_type()) == ("S-2020-654.txt", "text/plain")
    assert draft.get_content_disposition() == "attachment"


def test_an_automatic_message_is_recorded_but_never_answered(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    out_of_office = (b"From: fra@delegations.example\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\n"
                     b"I am away until Monday.\r\n")
    running.submit(out_of_office, "fra@delegations.example")
    service.poll_once()
    assert decisions(service, None) == [(None, "rejected", "not-signed")]
    assert not [raw for raw in running.inbox_of("FRA") if b"Subject: Rejected" in raw]
    ballot = running.ballot_of("FRA")
    assert b"Auto-Submitted: auto-generated" in ballot
    assert vote_id.encode() in ballot


def test_a_copy_of_an_earlier_ballot_never_undoes_a_change_of_vote(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    first = running.reply("FRA", ["yes"])
    running.submit(first, "fra@delegations.example")
    service.poll_once()
    running.submit(running.reply("FRA", ["no"]), "fra@delegations.example")
    service.poll_once()
    # The same signed ballot again, as a relay's repeated delivery or a replay brings it: other outer bytes.
    running.submit(first.replace(b"Subject: Re: ", b"Subject: RE: "), "fra@delegations.example")
    service.poll_once()
    assert decisions(service, vote_id)[-1] == ("FRA", "rejected", "replayed")
    vote = service.ledger.vote(vote_id)
    assert service.counted(vote, vote.closes_at)["S/2020/654"] == {"FRA": "no"}


def test_first_ballot_final_is_per_draft(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, ("S/2020/654", "S/2020/658"), first_ballot_final=True)
    service.send()
    running.submit(running.reply("NER", ["S/2020/654=abstain"]), "ner@delegations.example")
    service.poll_once()
    running.submit(running.reply("NER", ["S/2020/658=yes"]), "ner@delegations.example")
    service.poll_once()
    running.submit(running.reply("NER", ["S/2020/654=yes"]), "ner@delegations.example")
    service.poll_once()
    assert [d[1:] for d in decisions(service, vote_id)] == [("ballot", None), ("ballot", None),
                                                           ("rejected", "ballot-final")]


def test_a_message_that_cannot_be_answered_never_stops_the_service(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, seconds=30)
    service.send()
    folded = (b"From: fra@delegations.example\r\nMessage-ID: <a@b>\r\n <c@d>\r\nIn-Reply-To: <x@y>\r\n\t<z@w>\r\n"
              b"Subject: unsigned\r\n\r\nyes\r\n")
    running.submit(folded, "fra@delegations.example")
    running.submit(running.reply("GBR", ["yes"]), "gbr@delegations.example")
    service.poll_once()
    assert decisions(service, vote_id) == [("GBR", "ballot", None)]
    assert decisions(service, None) == [(None, "rejected", "not-signed")]
    assert any(b"Subject: Rejected" in raw for raw in running.inbox_of("FRA"))


def test_a_vote_closes_only_after_a_fetch_that_began_past_its_deadline(running: Deployment, tmp_path: Path) -> None:
    from voting.mail import maildir

    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, seconds=1.0)
    service.send()
    service.fetch()
    time.sleep(1.1)
    # Delivered before the deadline passed in the service's view, but after its last fetch began.
    raw = running.reply("GBR", ["yes"])
    maildir.deliver(running.config.inbox, raw)
    assert service.close_due() == [], "the last fetch began before the deadline: it cannot have seen everything"
    time.sleep(MAILBOX_SETTLING.total_seconds())
    report = service.poll_once()
    assert report.closed == [vote_id]
    assert decisions(service, vote_id)[-1][0] == "GBR"


def test_the_deadline_cannot_be_moved_once_it_has_passed_and_delegations_are_told_of_a_move(
    running: Deployment, tmp_path: Path
) -> None:
    import pytest

    from voting.errors import UsageError

    service = Service(running.config)
    passed = open_vote(service, tmp_path, rule="silence", seconds=0.5)
    time.sleep(0.6)
    with pytest.raises(UsageError, match="has passed"):
        service.extend(passed, datetime.now(UTC) + timedelta(hours=1))
    moved = open_vote(service, tmp_path, rule="silence")
    service.extend(moved, datetime.now(UTC) + timedelta(days=2))
    service.send()
    assert any(b"Subject: Deadline moved" in raw for raw in running.inbox_of("VNM"))


def test_results_verify_with_openssl(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    service.close_now(vote_id)
    service.send()
    [results] = [raw for raw in running.inbox_of("USA") if b"Subject: Results" in raw]
    assert_openssl_verifies(results, running, tmp_path)


def test_ballots_of_the_same_second_count_in_the_order_they_were_judged() -> None:
    from voting.verdict import CountedBallot, counted_ballots

    second = datetime(2020, 7, 8, 11, 59, 59, tzinfo=UTC)
    first = CountedBallot("f" * 64, second, {"S/1": "yes"}, order=1)
    then = CountedBallot("0" * 64, second, {"S/1": "no"}, order=2)
    assert counted_ballots([("FRA", then), ("FRA", first)], ["S/1"]) == {"S/1": {"FRA": then}}


def test_a_change_back_to_the_same_words_counts(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    for choice in ("yes", "no", "yes"):
        running.submit(running.reply("FRA", [choice]), "fra@delegations.example")
        service.poll_once()
        time.sleep(1.1)  # a new signing time, as a person's second reply has
    assert [d[1] for d in decisions(service, vote_id)] == ["ballot", "ballot", "ballot"]
    vote = service.ledger.vote(vote_id)
    assert service.counted(vote, vote.closes_at)["S/2020/654"] == {"FRA": "yes"}


def test_closing_early_counts_what_came_before_and_nothing_after(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    service.close_now(vote_id)
    running.submit(running.reply("GBR", ["yes"]), "gbr@delegations.example")
    service.poll_once()
    vote = service.ledger.vote(vote_id)
    assert vote.closed_at == vote.closes_at and vote.outcome is not None
    assert vote.outcome["S/2020/654"]["yes"] == 1
    assert [(d.code, d.verdict, d.reason) for d in service.ledger.decisions(vote_id)] == [
        ("FRA", "ballot", None), ("GBR", "rejected", "late")]


def test_a_vote_waits_for_an_undecided_message_received_on_time(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=1.0)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    time.sleep(1.0 + MAILBOX_SETTLING.total_seconds())
    failing = service._record, service._record_unreadable
    # The ledger itself fails (a full disk): not even the failure can be recorded.
    service._record = service._record_unreadable = (  # type: ignore[method-assign]
        lambda *args: (_ for _ in ()).throw(RuntimeError("disk full")))
    assert service.poll_once().closed == [], "an on-time message is still undecided"
    service._record, service._record_unreadable = failing  # type: ignore[method-assign]
    assert service.poll_once().closed == [vote_id]
    assert service.ledger.vote(vote_id).outcome["S/2020/654"]["yes"] == 1  # type: ignore[index]


@pytest.mark.parametrize(("version", "then"), [
    (1, ("    signed_sha256 TEXT,\n", "")),
    (1, ("'rejected', 'request'", "'rejected'")),
    (3, ("'rejected', 'request'", "'rejected'")),
    (5, ("    sponsors_json TEXT NOT NULL DEFAULT '[]',\n", "")),
])
def test_a_ledger_of_an_earlier_schema_is_brought_up_to_date(tmp_path: Path, version: int,
                                                             then: tuple[str, str]) -> None:
    import sqlite3

    from voting.ledger import SCHEMA, SCHEMA_VERSION

    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace(*then))
    old.execute(f"PRAGMA user_version={version}")
    old.close()
    with Ledger.open(path) as ledger:
        columns = {row["name"] for row in ledger.db.execute("PRAGMA table_info(decisions)")}
        assert "signed_sha256" in columns
        table = ledger.db.execute("SELECT sql FROM sqlite_master WHERE name = 'decisions'").fetchone()["sql"]
        assert "'request'" in table, "a decision may be a request for the ballot"
        assert "sponsors_json" in {row["name"] for row in ledger.db.execute("PRAGMA table_info(drafts)")}
        assert ledger.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'decisions_by_vote'").fetchone(), \
            "a vote's decisions are found without reading every decision"
        assert ledger.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
