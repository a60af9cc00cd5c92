"""A bundle is published only once the ledger backs it: a close that fails or dies before its commit leaves none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import Deployment, fault, open_vote, stall, unstall, voting, wait_for

from voting.service import MAILBOX_SETTLING, Service

STALL = stall("outbox", "NEW.kind = 'results'")
"""The first results email takes minutes to queue: the close has written its bundle and not yet committed."""

REFUSE = """CREATE TRIGGER refuse_results BEFORE INSERT ON outbox WHEN NEW.kind = 'results'
BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;"""


def vote_past_its_deadline(running: Deployment, tmp_path: Path) -> tuple[Service, str]:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=0.5)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    service.poll_once()
    time.sleep(0.5 + MAILBOX_SETTLING.total_seconds())
    return service, vote_id


def every_bundle_is_backed(service: Service, vote_id: str) -> None:
    """Each file in the records folder is a published bundle whose head is in the vote's chain, and audits."""
    records = running_records(service)
    heads = {event.hash[:12] for event in service.ledger.events(vote_id)}
    assert records and all(name.endswith(".zip") for name in records), records
    assert {name.removesuffix(".zip").rsplit("-", 1)[1] for name in records} <= heads, (records, heads)
    for name in records:
        audit = voting("--config", str(service.config.path), "audit", str(service.config.records_dir / name),
                       "--secretariat-cert", str(service.config.keys_dir / "secretariat.pem"))
        assert audit.returncode == 0, audit.stdout + audit.stderr


def running_records(service: Service) -> list[str]:
    folder = service.config.records_dir
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_close_killed_before_its_commit_leaves_no_bundle(running: Deployment, tmp_path: Path) -> None:
    service, vote_id = vote_past_its_deadline(running, tmp_path)
    fault(running, STALL)
    poll = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(running.config.path), "poll", "--once"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: any(not name.endswith(".tmp") for name in running_records(service)), "the bundle written")
    finally:
        os.kill(poll.pid, signal.SIGKILL)
        poll.wait()
    fault(running, unstall("outbox"))
    assert service.ledger.vote(vote_id).is_open
    assert voting("--config", str(running.config.path), "poll", "--once").returncode == 0
    assert not service.ledger.vote(vote_id).is_open
    every_bundle_is_backed(service, vote_id)
    assert len(running_records(service)) == 1


def test_a_close_that_fails_before_its_commit_leaves_no_bundle(running: Deployment, tmp_path: Path) -> None:
    service, vote_id = vote_past_its_deadline(running, tmp_path)
    fault(running, REFUSE)
    failed = voting("--config", str(running.config.path), "close", vote_id, "--yes")
    assert failed.returncode != 0
    assert service.ledger.vote(vote_id).is_open
    assert running_records(service) == []
    fault(running, "DROP TRIGGER refuse_results;")
    assert voting("--config", str(running.config.path), "close", vote_id, "--yes").returncode == 0
    every_bundle_is_backed(service, vote_id)
