"""The outbox over a real SMTP relay (the project's own MailServer): outages, refusals and a crash mid-send."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

from conftest import (
    Deployment,
    open_vote,
    voting,
    wait_for,
    waits_on_a_lock,
    write_config,
)

from voting.mail import maildir
from voting.mail.outbox import CLAIM
from voting.mail.server import MailServer
from voting.service import Service

CODES = ("FRA", "GBR", "USA")


def use_relay(deployment: Deployment, relay: MailServer) -> None:  # noqa: F811 - the fixture's value
    write_config(deployment, smtp={"kind": "smtp", "host": "127.0.0.1", "port": relay.port, "tls": "none"})


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def delivered(deployment: Deployment, kind: bytes) -> dict[str, list[bytes]]:
    """Per delegation, the messages of this Subject prefix that reached its inbox."""
    return {code: [raw for raw in deployment.inbox_of(code) if b"Subject: " + kind in raw]
            for code in deployment.identities}


def test_receipts_queued_while_the_relay_is_down_go_out_once_it_is_back(deployment: Deployment,
                                                                        relay: MailServer,  # noqa: F811
                                                                        tmp_path: Path) -> None:
    use_relay(deployment, relay)
    service = Service(deployment.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    assert service.send() == (15, 0)
    relay.stop()
    for code in CODES:
        maildir.deliver(deployment.config.inbox, deployment.reply(code, ["yes"]))
    report = service.poll_once()
    assert (report.fetched, len(report.judgements), report.sent, report.failed) == (3, 3, 0, 3)
    status = service.status(vote_id)
    assert status["outbox"]["queued"] == 3
    assert [r["attempts"] for r in status["outbox_retrying"]] == [1, 1, 1]
    assert "cannot connect" in status["outbox_retrying"][0]["error"]
    text = voting("--config", str(deployment.config.path), "status", vote_id).stdout
    assert "3 queued" in text and "retrying:" in text
    restarted = MailServer(deployment.mail_root, port=relay.port)
    restarted.start()
    try:
        assert service.poll_once().sent == 0  # each message waits out its backoff
        assert Service(deployment.config, clock=lambda: later(1), log=lambda line: None).send() == (3, 0)
    finally:
        restarted.stop()
    receipts = delivered(deployment, b"Receipt")
    assert {code: len(found) for code, found in receipts.items() if found} == {code: 1 for code in CODES}
    assert service.status(vote_id)["outbox"] == {"queued": 0, "sent": 18, "failed": 0}


def test_a_permanent_refusal_is_recorded_and_shown_by_status(deployment: Deployment, relay: MailServer,  # noqa: F811
                                                             tmp_path: Path) -> None:
    use_relay(deployment, relay)
    service = Service(deployment.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.ledger.queue_mail(message_id="<refused@secretariat.example>", kind="receipt", vote_id=vote_id,
                              envelope_from="votes@secretariat.example", recipients=["a/b@delegations.example"],
                              raw=b"Subject: refused\r\n\r\nbody\r\n", now=datetime.now(UTC))
    assert service.send() == (15, 1)
    assert Service(deployment.config, clock=lambda: later(120), log=lambda line: None).send() == (0, 0)
    [failure] = service.status(vote_id)["outbox_failures"]
    assert failure["message_id"] == "<refused@secretariat.example>" and " 553 " in failure["error"]
    shown = voting("--config", str(deployment.config.path), "status", vote_id)
    assert "1 failed" in shown.stdout
    assert "failed: <refused@secretariat.example> to a/b@delegations.example:" in shown.stdout


def relay_that_locks_the_ledger(listener: socket.socket, database: Path, received: list[bytes],
                                 locked: threading.Event, release: threading.Event) -> None:
    """Speaks SMTP; takes the ledger's write lock before it answers 250 to the first message, until `release`."""
    connection, _ = listener.accept()
    with connection, connection.makefile("rb") as lines:
        connection.sendall(b"220 relay\r\n")
        for line in lines:
            if line.upper().startswith(b"DATA"):
                connection.sendall(b"354 go on\r\n")
                received.append(b"".join(iter(lines.readline, b".\r\n")))
                holder = sqlite3.connect(database, isolation_level=None)
                holder.execute("BEGIN IMMEDIATE")
                locked.set()
                connection.sendall(b"250 queued\r\n")
                release.wait(60)
                holder.execute("ROLLBACK")
                holder.close()
                return
            connection.sendall(b"250 ok\r\n")


def test_a_crash_between_sending_and_recording_resends_once_with_the_same_message_id(
        deployment: Deployment, relay: MailServer, tmp_path: Path) -> None:  # noqa: F811
    service = Service(deployment.config, log=lambda line: None)
    open_vote(service, tmp_path)
    service.shut_down()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    write_config(deployment, smtp={"kind": "smtp", "host": "127.0.0.1", "port": listener.getsockname()[1],
                                   "tls": "none"})
    received: list[bytes] = []
    locked, release = threading.Event(), threading.Event()
    threading.Thread(target=relay_that_locks_the_ledger, args=(listener, deployment.config.database, received,
                                                               locked, release), daemon=True).start()
    poll = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(deployment.config.path), "poll",
                             "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(locked.is_set, "the first ballot accepted by the relay")
        wait_for(lambda: waits_on_a_lock(poll.pid), "the service waiting to record the send")
    finally:
        poll.kill()
        poll.wait()
        release.set()
        listener.close()
    use_relay(deployment, relay)
    assert voting("--config", str(deployment.config.path), "poll", "--once").returncode == 0
    assert sum(map(len, delivered(deployment, b"Ballot").values())) == 14, "the one in flight stays claimed"
    assert '"sent": 0' in voting("--config", str(deployment.config.path), "--json", "poll", "--once").stdout
    assert Service(deployment.config, clock=lambda: later(CLAIM.total_seconds() / 60 + 1),
                   log=lambda line: None).send() == (1, 0)
    ballots = delivered(deployment, b"Ballot")
    assert all(len(found) == 1 for found in ballots.values())
    [in_flight] = received
    [again] = [raw for found in ballots.values() for raw in found
               if message_from_bytes(raw)["Message-ID"] == message_from_bytes(in_flight)["Message-ID"]]
    assert again.replace(b"\r\n", b"\n") == in_flight.replace(b"\r\n", b"\n")


def test_a_relay_that_drops_the_connection_holds_the_rest_for_a_later_pass(deployment: Deployment,
                                                                          tmp_path: Path) -> None:
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def relay_that_hangs_up() -> None:
        """Speaks SMTP up to the first message's data, then hangs up; later connections are never answered."""
        connection, _ = listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 relay\r\n")
            for line in lines:
                if line.upper().startswith((b"EHLO", b"HELO")):
                    connection.sendall(b"250 relay\r\n")
                elif line.upper().startswith(b"DATA"):
                    connection.sendall(b"354 go on\r\n")
                    return
                else:
                    connection.sendall(b"250 ok\r\n")

    threading.Thread(target=relay_that_hangs_up, daemon=True).start()
    write_config(deployment, smtp={"kind": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"})
    service = Service(deployment.config, log=lambda line: None)
    open_vote(service, tmp_path)
    started = time.monotonic()
    try:
        sent, failed = service.send()
    finally:
        listener.close()
    assert (sent, failed) == (0, 15)
    assert time.monotonic() - started < 5, "one lost connection must not cost a timeout per message"
    assert all(m.attempts == 1 and m.status == "queued" for m in service.ledger.outbox())


def test_receipts_go_out_while_the_pass_still_decides(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.send()
    for choice in ("yes", "no", "abstain", "yes"):
        for code in running.identities:
            maildir.deliver(running.config.inbox, running.reply(code, [choice]))
    report = service.poll_once()
    assert len(report.judgements) == 60 and report.sent == 60
    first_sent, last_decided = service.ledger.db.execute(
        "SELECT (SELECT min(sent_at) FROM outbox WHERE kind = 'receipt'), (SELECT max(decided_at) FROM decisions)"
    ).fetchone()
    assert first_sent < last_decided, "the first receipts waited for every message to be decided"
    assert len(service.ledger.decisions(vote_id)) == 60
