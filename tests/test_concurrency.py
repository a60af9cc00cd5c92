"""Several processes on one deployment at once (`voting serve`, an operator's commands, overlapping cron passes).

Each test holds the ledger's write lock while the processes start, so that
they all reach the point where they race before any of them goes on: the
interleaving is the worst one, every time.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from conftest import Deployment, open_vote, wait_for, waits_on_a_lock

from voting.mail import maildir
from voting.service import MAILBOX_SETTLING, Service


def command(deployment: Deployment, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "voting", "--config", str(deployment.config.path), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@contextmanager
def write_lock_held(deployment: Deployment) -> Iterator[None]:
    """The ledger's write lock, held by another connection until the block ends."""
    holder = sqlite3.connect(deployment.config.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def race(deployment: Deployment, *commands: Sequence[str]) -> list[tuple[int, str, str]]:
    """Start the commands while the write lock is held, let them all reach it, then let them go together."""
    with write_lock_held(deployment):
        started = [command(deployment, *args) for args in commands]
        for process in started:
            wait_for(lambda process=process: waits_on_a_lock(process.pid) or process.poll() is not None,
                     "each command waiting for the ledger")
    results = []
    for process in started:
        out, err = process.communicate(timeout=120)
        results.append((process.returncode, out, err))
    return results


def test_two_passes_at_once_send_each_ballot_once(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    open_vote(service, tmp_path)
    service.close_ledger()
    results = race(running, ("poll", "--once"), ("poll", "--once"))
    assert [code for code, _, _ in results] == [0, 0], results
    ballots = {code: [raw for raw in running.inbox_of(code) if b"Subject: Ballot:" in raw] for code in running.identities}
    assert {code: len(found) for code, found in ballots.items()} == {code: 1 for code in running.identities}


def test_a_vote_closed_by_two_processes_at_once_closes_once(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=0.5)
    service.send()
    time.sleep(0.5 + MAILBOX_SETTLING.total_seconds())
    results = race(running, ("close", vote_id, "--yes"), ("poll", "--once"), ("poll", "--once"))
    assert [code for code, _, _ in results] == [0, 0, 0], results
    closed = [e for e in service.ledger.events(vote_id) if e.kind == "vote-closed"]
    assert len(closed) == 1
    assert [m.kind for m in service.ledger.outbox()].count("results") == 15
    results_mail = {code: [raw for raw in running.inbox_of(code) if b"Subject: Results:" in raw]
                    for code in running.identities}
    assert all(len(found) == 1 for found in results_mail.values())
    assert [p.name for p in running.config.records_dir.glob("*.zip")] == [f"{vote_id}-{closed[0].hash[:12]}.zip"]


def test_two_passes_over_one_maildir_take_each_message_in_once_and_quietly(running: Deployment,
                                                                            tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.send()
    for code in running.identities:
        maildir.deliver(running.config.inbox, running.reply(code, ["yes"]))
    results = race(running, ("poll", "--once"), ("poll", "--once"))
    for returncode, _, err in results:
        assert returncode == 0, err
        assert "cannot read message" not in err and "IntegrityError" not in err and "undecided" not in err, err
    assert len(service.ledger.decisions(vote_id)) == 15
    assert [e.kind for e in service.ledger.events("")].count("message-received") == 15
    receipts = {code: [raw for raw in running.inbox_of(code) if b"Subject: Receipt" in raw] for code in running.identities}
    assert {code: len(found) for code, found in receipts.items()} == {code: 1 for code in running.identities}
    assert not maildir.pending(running.config.inbox)
