"""Several processes on one deployment at once (`voting serve`, an operator's commands, overlapping cron passes),
on the embedded mail server and on a real Dovecot.

Each test holds the ledger's write lock while the processes start, so that
they all reach the point where they race before any of them goes on: the
interleaving is the worst one, every time. A `voting serve` is woken when the
test wants it by mail arriving while it waits in IDLE, which Dovecot shows.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

from conftest import Deployment, copy_deployment, open_vote, wait_for, waits_on_a_lock
from dovecot import Dovecot

from voting.ledger import Ledger
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


def started_together(deployment: Deployment, *commands: Sequence[str]) -> list[subprocess.Popen[str]]:
    """Start the commands while the write lock is held, let them all reach it, then let them go together."""
    with write_lock_held(deployment):
        started = [command(deployment, *args) for args in commands]
        for process in started:
            waiting_for_the_ledger(process)
    return started


def waiting_for_the_ledger(process: subprocess.Popen[str]) -> None:
    wait_for(lambda: waits_on_a_lock(process.pid) or process.poll() is not None, "each command waiting for the ledger")


def race(deployment: Deployment, *commands: Sequence[str]) -> list[tuple[int, str, str]]:
    """The commands started together, each run to its end: exit status, output and errors."""
    started = started_together(deployment, *commands)
    results = []
    for process in started:
        out, err = process.communicate(timeout=120)
        results.append((process.returncode, out, err))
    return results


def test_two_passes_at_once_send_each_ballot_once(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    open_vote(service, tmp_path)
    service.shut_down()
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


# -- over Dovecot ----------------------------------------------------------------------------------------------------

ROUNDS = {"CHN": ("yes", "abstain", "no")}
"""Each delegation's three replies, each a change of vote: abstain, no, yes, but CHN, which vetoes at the last."""


def replies_in_rounds(deployment: Deployment, first: datetime) -> list[tuple[str, bytes, datetime]]:
    """Three signed replies from each delegation: (code, bytes, when Dovecot received it), a second apart."""
    replies: list[tuple[str, bytes, datetime]] = []
    for round_ in range(3):
        for code in deployment.identities:
            choice = ROUNDS.get(code, ("abstain", "no", "yes"))[round_]
            replies.append((code, deployment.reply(code, [choice]), first + timedelta(seconds=len(replies))))
    return replies


def answers(deployment: Deployment, code: str) -> list[bytes]:
    """Everything the secretariat wrote to the delegation but its ballot."""
    return [raw for raw in deployment.inbox_of(code) if b"Subject: Ballot:" not in raw]


def header(raw: bytes, name: str) -> str:
    return str(message_from_bytes(raw)[name])


def stopped(serve: subprocess.Popen[str]) -> str:
    """Stop `voting serve` as an operator does; what it wrote on stderr."""
    serve.send_signal(signal.SIGTERM)
    _, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    return err


def assert_quiet(*errors: str) -> None:
    for err in errors:
        assert "Traceback" not in err and "IntegrityError" not in err, err


def decided(deployment: Deployment, vote_id: str) -> list[tuple[str, str | None, str, dict[str, str]]]:
    with Ledger.open(deployment.config.database) as ledger:
        return sorted((d.sha256, d.code, d.verdict, d.choices) for d in ledger.decisions(vote_id))


def test_two_passes_and_serve_over_dovecot_decide_and_answer_each_reply_once(imap: Deployment, dovecot: Dovecot,
                                                                           tmp_path: Path) -> None:
    service = Service(imap.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.send()
    service.shut_down()
    single = copy_deployment(imap.config.root, tmp_path / "single")
    replies = replies_in_rounds(imap, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1))
    for _, raw, when in replies:
        dovecot.append(raw, when=when)
    *passes, serve = started_together(imap, ("poll", "--once"), ("poll", "--once"), ("serve",))
    try:
        polled = [(process.communicate(timeout=120), process.returncode) for process in passes]
        wait_for(lambda: sum(len(answers(imap, code)) for code in imap.identities) >= len(replies),
                 "an answer to every reply", seconds=120)
    finally:
        served = stopped(serve)
    assert [returncode for _, returncode in polled] == [0, 0], polled
    assert_quiet(served, *(err for (_, err), _ in polled))
    decisions = decided(imap, vote_id)
    assert len(decisions) == len(replies) and {verdict for _, _, verdict, _ in decisions} == {"ballot"}
    with Ledger.open(imap.config.database) as ledger:
        assert [e.kind for e in ledger.events("")].count("message-received") == len(replies)
        assert [e.kind for e in ledger.events(vote_id)].count("decision") == len(replies)
        assert ledger.outbox_counts()["queued"] == 0
    for code in imap.identities:
        got = answers(imap, code)
        sent = Counter(header(raw, "Message-ID") for c, raw, _ in replies if c == code)
        assert Counter(header(raw, "In-Reply-To") for raw in got) == sent, code
        assert len({header(raw, "Message-ID") for raw in got}) == len(got) == 3, code
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == len(replies)
    # The same replies, received at the same times, taken in by one process alone.
    dovecot.empty()
    for _, raw, when in replies:
        dovecot.append(raw, when=when)
    alone = Service(single.config, log=lambda line: None)
    alone.fetch()
    alone.decide_pending()
    assert decided(single, vote_id) == decisions
    together = Service(imap.config, log=lambda line: None)
    vote = together.ledger.vote(vote_id)
    assert together.counted(vote, vote.closes_at) == alone.counted(vote, vote.closes_at)
    assert together.outcomes(vote, vote.closes_at) == alone.outcomes(vote, vote.closes_at)
    assert list(together.outcomes(vote, vote.closes_at)["S/2020/654"].vetoed_by) == ["CHN"]


def test_a_close_while_serve_runs_over_dovecot_closes_once(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    serve = command(imap, "serve")
    try:
        wait_for(lambda: dovecot.idling() == 1, "voting serve waiting in IDLE, before any vote")
        service = Service(imap.config, log=lambda line: None)
        vote_id = open_vote(service, tmp_path, seconds=2)
        service.send()
        closes_at = service.ledger.vote(vote_id).closes_at
        late = imap.reply("FRA", ["yes"])
        with write_lock_held(imap):
            wait_for(lambda: datetime.now(UTC) > closes_at + MAILBOX_SETTLING, "the vote due to close")
            close = command(imap, "close", vote_id, "--yes")
            waiting_for_the_ledger(close)
            dovecot.append(late)  # wakes serve: its pass begins past the deadline, and closes too
            waiting_for_the_ledger(serve)
        _, closing = close.communicate(timeout=120)
        wait_for(lambda: all(any(b"Subject: Results:" in raw for raw in imap.inbox_of(code)) for code in imap.identities)
                 and [d.code for d in service.ledger.decisions(vote_id)] == ["FRA"], "the results and the late reply")
    finally:
        served = stopped(serve)
    assert close.returncode == 0, closing
    assert_quiet(served, closing)
    for code in imap.identities:
        results = [raw for raw in imap.inbox_of(code) if b"Subject: Results:" in raw]
        assert len(results) == 1, code
    assert service.ledger.outbox_counts()["queued"] == 0
    [closed] = [e for e in service.ledger.events(vote_id) if e.kind == "vote-closed"]
    assert [path.name for path in imap.config.records_dir.iterdir()] == [f"{vote_id}-{closed.hash[:12]}.zip"]
    assert [d.reason for d in service.ledger.decisions(vote_id)] == ["late"]


def test_opening_the_ledger_again_keeps_the_locks_of_a_reader_already_on_it(tmp_path: Path) -> None:
    """A reader holds its snapshot while the same process opens the ledger again: another process still cannot
    take the database from under it (here, by changing its journal mode), as SQLite's locks promise."""
    path = tmp_path / "ledger.db"
    reader = Ledger.open(path)
    with reader.snapshot():
        reader.events("")
        Ledger.open(path).close()
        taken = subprocess.run([sys.executable, "-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1], timeout=0.2)"
                                ".execute('PRAGMA journal_mode=DELETE')", str(path)], capture_output=True, text=True)
    assert taken.returncode != 0 and "database is locked" in taken.stderr, taken
    reader.close()
