"""A full disk under the ledger: `voting serve` keeps running, says so, and resumes by itself once space returns.

The ledger and the records are put on a small filesystem of their own (a
tmpfs, which needs root, as the tests have in CI), which the test fills.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Deployment, free_port, open_vote, voting, wait_for, write_config

from voting.mail import maildir
from voting.mail.server import MailServer
from voting.service import MAILBOX_SETTLING, Service


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(mount)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail(f"a small tmpfs must be mounted to fill a disk for real (run the tests as root, as .ci/run"
                    f" does): {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write zeros until the filesystem refuses: it is full."""
    filler = folder / "filler"
    with filler.open("wb") as stream:
        try:
            while True:
                stream.write(b"\0" * 2**16)
                stream.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return filler


def truncate_the_wal(database: Path) -> None:
    """Start the write-ahead log afresh, so that the next commit needs new space on the disk."""
    with sqlite3.connect(database, timeout=30) as connection:
        busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0


def inbox_has(deployment: Deployment, code: str, subject: bytes) -> bool:
    return any(b"Subject: " + subject in raw for raw in deployment.inbox_of(code))


def test_serve_outlives_a_full_disk_and_resumes_when_space_returns(deployment: Deployment, small_disk: Path,
                                                                    tmp_path: Path) -> None:
    write_config(deployment, service={"database": str(small_disk / "voting.sqlite3"),
                                      "records_dir": str(small_disk / "records")})
    service = Service(deployment.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=15)
    closes_at = service.ledger.vote(vote_id).closes_at
    service.shut_down()
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(deployment.config.path), "serve"],
                             stdout=log, stderr=log)
    try:
        wait_for(lambda: all(inbox_has(deployment, code, b"Ballot:") for code in deployment.identities),
                 "the ballots sent")
        truncate_the_wal(deployment.config.database)
        filler = fill(small_disk)
        deployment.submit(deployment.reply("FRA", ["yes"]), "fra@delegations.example")
        wait_for(lambda: "cannot be written" in (tmp_path / "serve.log").read_text(), "the full disk logged")
        status = voting("--config", str(deployment.config.path), "status", vote_id)
        assert status.returncode == 0 and "storage: FULL" in status.stdout, status.stdout + status.stderr
        wait_for(lambda: service.clock() > closes_at + MAILBOX_SETTLING or serve.poll() is not None,
                 "the deadline passed", seconds=60)
        assert serve.poll() is None, "serve died of the full disk at the deadline"
        status = voting("--config", str(deployment.config.path), "status", vote_id)
        assert "OPEN" in status.stdout and "storage: FULL" in status.stdout, status.stdout + status.stderr
        deployment.submit(deployment.reply("GBR", ["yes"]), "gbr@delegations.example")  # still listening
        filler.unlink()
        wait_for(lambda: inbox_has(deployment, "FRA", b"Receipt"), "the receipt once space returned")
        wait_for(lambda: inbox_has(deployment, "FRA", b"Results:"), "the results once space returned")
        assert serve.poll() is None
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        log.close()
    said = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in said and "takes writes again" in said, said
    assert "storage: FULL" not in voting("--config", str(deployment.config.path), "status", vote_id).stdout
    ledger = Service(deployment.config, log=lambda line: None).ledger
    closed = ledger.vote(vote_id)
    assert not closed.is_open and closed.outcome is not None
    assert [d.verdict for d in ledger.decisions(vote_id) if d.code == "FRA"] == ["ballot"]  # on time: counted
    gbr = [d for d in ledger.decisions(vote_id) if d.code == "GBR"]
    assert len(gbr) == 1 and gbr[0].received_at >= closed.closes_at  # taken in while the disk was full: late
    assert os.listdir(small_disk / "records")


def test_the_mail_server_answers_451_on_a_full_disk_and_takes_the_mail_once_space_returns(
        small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = MailServer(small_disk / "mail", port=free_port())
    server.start()
    raw = b"Subject: a ballot\r\n\r\n" + b"x" * 2**18 + b"\r\n"  # larger than any room a filled disk has left
    try:
        filler = fill(small_disk)
        with smtplib.SMTP(server.host, server.port) as smtp:
            with pytest.raises(smtplib.SMTPDataError) as refused, caplog.at_level(logging.ERROR):
                smtp.sendmail("fra@delegations.example", ["votes@secretariat.example"], raw)
            assert refused.value.smtp_code == 451
            filler.unlink()
            assert smtp.sendmail("fra@delegations.example", ["votes@secretariat.example"], raw) == {}
    finally:
        server.stop()
    assert [maildir.read(m) for m in maildir.messages(small_disk / "mail" / "votes@secretariat.example")] == [raw]
    [said] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert said.exc_info is None and "No space left on device" in said.getMessage()
