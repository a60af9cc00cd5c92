"""The IMAP mailbox against a real Dovecot: TLS, checkpoints, UIDVALIDITY, IDLE, reconnects and crashes.

Crash points are reached without any hook in the product: a `voting poll
--once` subprocess is held where the test wants it by real locks, then
killed with SIGKILL.

- Between fetch and commit: the test holds the ledger's SQLite write lock,
  so the service, having fetched, waits in SQLite's busy handler (seen as a
  nanosleep in /proc/PID/wchan) and cannot commit.
- Between commit and move: the test holds Dovecot's own lock on the
  processed folder (its `dovecot-uidlist.lock` dotlock), so the server can
  fetch but cannot complete the MOVE; the ledger shows the commit. The
  server's session is killed too, so that the MOVE never happens.
- In the middle of a batch's transaction: a trigger makes the insert of one
  message take minutes, once the large messages before it have overflowed
  SQLite's page cache into the write-ahead log, uncommitted, where the test
  sees them.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from conftest import (
    Deployment,
    fault,
    open_vote,
    stall,
    unstall,
    voting,
    wait_for,
    waits_on_a_lock,
)
from dovecot import Dovecot

from voting.config import load_config
from voting.errors import ConfigError
from voting.ledger import Ledger
from voting.ledger.store import PAGE_CACHE_BYTES
from voting.mail.imap import BATCH_SIZE, ImapError, ImapMailbox, ImapSession, ImapSettings
from voting.service import Service

NOTE_CHECKPOINTS = """CREATE TABLE checkpoint_writes (last_uid INTEGER, messages INTEGER, received INTEGER);
""" + "".join(f"""CREATE TRIGGER note_checkpoint_{event} AFTER {event.upper()} ON mailbox_checkpoints
BEGIN INSERT INTO checkpoint_writes SELECT NEW.last_uid, (SELECT count(*) FROM messages),
(SELECT count(*) FROM events WHERE kind = 'message-received'); END;
""" for event in ("insert", "update"))
"""Each write of the checkpoint notes the messages, and their events, that its transaction sees in the ledger."""

REFUSE = """CREATE TRIGGER refuse_message BEFORE INSERT ON messages WHEN instr(NEW.raw, CAST('refused' AS BLOB))
BEGIN SELECT RAISE(ABORT, 'this message cannot be stored'); END;"""

CODES = ("CHN", "FRA", "RUS", "GBR", "USA", "BEL", "DOM", "EST", "DEU", "IDN", "NER", "VCT", "ZAF", "TUN", "VNM")
YES = ("FRA", "GBR", "USA", "BEL", "DOM", "EST", "DEU", "IDN", "NER", "VCT", "ZAF", "TUN")


def settings(dovecot: Dovecot, **changes: object) -> ImapSettings:
    values: dict[str, object] = {"host": "localhost", "port": dovecot.tls_port, "tls": "implicit",
                                 "username": dovecot.user, "password": dovecot.password,
                                 "ca_file": str(dovecot.ca_file), "timeout": 10}
    values.update(changes)
    return ImapSettings(**values)  # type: ignore[arg-type]


def receipts(deployment: Deployment, code: str) -> list[bytes]:
    return [raw for raw in deployment.inbox_of(code) if b"Subject: Receipt" in raw]


def counted(service: Service, vote_id: str) -> dict[str, str]:
    vote = service.ledger.vote(vote_id)
    return dict(service.counted(vote, vote.closes_at)["S/2020/654"])


def opened(deployment: Deployment, tmp_path: Path) -> tuple[Service, str]:
    service = Service(deployment.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    assert service.send() == (15, 0)
    return service, vote_id


def assert_each_counted_once_and_acknowledged(deployment: Deployment, vote_id: str, codes: tuple[str, ...]) -> None:
    with Ledger.open(deployment.config.database) as ledger:
        decided = [(d.code, d.verdict) for d in ledger.decisions(vote_id)]
    assert sorted(decided) == sorted((code, "ballot") for code in codes)
    for code in codes:
        got = receipts(deployment, code)
        assert len({message_from_bytes(raw)["Message-ID"] for raw in got}) == 1, code


# -- the whole procedure ---------------------------------------------------------------------------------------------


def test_fifteen_ballots_through_dovecot_are_counted_acknowledged_and_tallied(imap: Deployment, dovecot: Dovecot,
                                                                             tmp_path: Path) -> None:
    service, vote_id = opened(imap, tmp_path)
    for code in CODES:
        dovecot.append(imap.reply(code, ["yes" if code in YES else "no" if code == "CHN" else "abstain"]))
    report = service.poll_once()
    assert report.fetched == 15 and report.sent == 15
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 15
    assert_each_counted_once_and_acknowledged(imap, vote_id, CODES)
    assert service.poll_once().fetched == 0
    service.close_now(vote_id)
    service.send()
    outcome = service.ledger.vote(vote_id).outcome
    assert outcome is not None
    assert (outcome["S/2020/654"]["yes"], outcome["S/2020/654"]["no"], outcome["S/2020/654"]["adopted"]) == (12, 1, False)
    assert outcome["S/2020/654"]["vetoed_by"] == ["CHN"]
    assert all(any(b"Subject: Results" in raw for raw in imap.inbox_of(code)) for code in CODES)
    status = voting("--config", str(imap.config.path), "status", vote_id)
    assert f"mailbox: imap://votes@localhost:{dovecot.port}/INBOX connected" in status.stdout
    assert "(0 new)" in status.stdout and "0 queued" in status.stdout


def test_the_server_receipt_time_is_internaldate(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    service, vote_id = opened(imap, tmp_path)
    late = datetime.now(UTC) + timedelta(hours=2)
    dovecot.append(imap.reply("FRA", ["yes"]), when=late.replace(microsecond=0))
    service.poll_once()
    [decision] = service.ledger.decisions(vote_id)
    assert decision.received_at == late.replace(microsecond=0)
    assert decision.verdict == "rejected"


# -- TLS, passwords --------------------------------------------------------------------------------------------------


def test_implicit_tls_verified_with_the_ca_file(dovecot: Dovecot) -> None:
    session = ImapSession(settings(dovecot, folder="INBOX", processed_folder="Processed"))
    session.open()
    try:
        assert session.scan().uidvalidity > 0
    finally:
        session.close()


@pytest.mark.parametrize("tls", ["implicit", "starttls"])
def test_an_untrusted_certificate_is_refused(dovecot: Dovecot, tls: str) -> None:
    port = dovecot.tls_port if tls == "implicit" else dovecot.port
    with pytest.raises(ImapError, match="not trusted.*ca_file"):
        ImapSession(settings(dovecot, port=port, tls=tls, ca_file="")).open()


def test_a_certificate_for_another_host_name_is_refused(dovecot: Dovecot) -> None:
    with pytest.raises(ImapError, match="not trusted"):
        ImapSession(settings(dovecot, host="127.0.0.1")).open()


def test_plain_text_imap_is_refused_for_a_remote_host(tmp_path: Path) -> None:
    path = tmp_path / "voting.toml"
    path.write_text('[mailbox]\nkind = "imap"\nhost = "imap.example"\ntls = "none"\n')
    with pytest.raises(ConfigError, match='mailbox.tls = "none" is allowed only for a loopback host'):
        load_config(path)


def test_a_refused_login_is_reported_and_the_password_never_shown(imap: Deployment, dovecot: Dovecot,
                                                                 tmp_path: Path) -> None:
    wrong = "wrong-password-Xk29"
    secret = imap.config.root / "secrets" / "imap-password"
    secret.write_text(wrong)
    polled = voting("--config", str(imap.config.path), "poll", "--once")
    assert polled.returncode == 1, "cron must see that the mailbox could not be read"
    assert "refused the login of user 'votes'" in polled.stderr
    assert repr(settings(dovecot, password=wrong)).count(wrong) == 0
    opened(imap, tmp_path)
    status = voting("--config", str(imap.config.path), "--json", "status")
    assert "refused the login" in status.stdout and '"connection": "disconnected"' in status.stdout
    for text in (polled.stdout, polled.stderr, status.stdout, status.stderr, dovecot.log()):
        assert wrong not in text and dovecot.password not in text


def test_a_corrected_password_file_is_read_at_the_next_reconnect(imap: Deployment, dovecot: Dovecot,
                                                                  tmp_path: Path) -> None:
    secret = imap.config.root / "secrets" / "imap-password"
    secret.write_text("wrong-password-Xk29")
    service, vote_id = opened(imap, tmp_path)
    dovecot.append(imap.reply("FRA", ["yes"]))
    assert not service.poll_once().mailbox_read
    secret.write_text(dovecot.password + "\n")
    wait_for(lambda: service.poll_once().fetched == 1, "the message fetched at the first reconnect, a second later")
    assert [d.code for d in service.ledger.decisions(vote_id)] == ["FRA"]


# -- checkpoints and UIDVALIDITY -------------------------------------------------------------------------------------


def test_a_new_uidvalidity_rescans_and_counts_nothing_twice(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    service, vote_id = opened(imap, tmp_path)
    first, second = imap.reply("FRA", ["yes"]), imap.reply("GBR", ["yes"])
    dovecot.append(first)
    dovecot.append(second)
    assert service.poll_once().fetched == 2
    before = int(dovecot.doveadm("mailbox", "status", "-u", dovecot.user, "uidvalidity", "INBOX").split("=")[1])
    # The server's index is rebuilt: new UIDVALIDITY, and an old message back in the folder beside a new one.
    dovecot.doveadm("mailbox", "update", "-u", dovecot.user, "--uid-validity", str(before + 1000), "INBOX")
    dovecot.append(first)
    dovecot.append(imap.reply("USA", ["yes"]))
    assert service.poll_once().fetched == 1
    assert dovecot.uids("INBOX") == []
    assert_each_counted_once_and_acknowledged(imap, vote_id, ("FRA", "GBR", "USA"))
    assert service.ledger.checkpoint("INBOX", before + 1000) > 0


def test_each_batch_lands_whole_with_one_checkpoint_or_not_at_all(imap: Deployment, dovecot: Dovecot) -> None:
    append_many(dovecot, BATCH_SIZE + 3, refused=BATCH_SIZE + 1)
    uids = dovecot.uids("INBOX")
    service = Service(imap.config, log=lambda _: None)
    fault(imap, NOTE_CHECKPOINTS + REFUSE)
    with pytest.raises(sqlite3.IntegrityError, match="cannot be stored"):
        service.fetch()
    # The first batch committed with its checkpoint, and moved. Of the second, neither the message before the
    # refused one nor the checkpoint: the whole batch waits in the folder.
    first = (uids[BATCH_SIZE - 1], BATCH_SIZE, BATCH_SIZE)
    assert rows(imap, "SELECT * FROM checkpoint_writes") == [first] and stored(imap) == BATCH_SIZE
    assert dovecot.uids("INBOX") == uids[BATCH_SIZE:] and len(dovecot.uids("Processed")) == BATCH_SIZE
    fault(imap, "DROP TRIGGER refuse_message;")
    assert service.fetch() == 3
    assert rows(imap, "SELECT * FROM checkpoint_writes") == [first, (uids[-1], BATCH_SIZE + 3, BATCH_SIZE + 3)]
    assert stored(imap) == BATCH_SIZE + 3 and checkpoint(imap) == uids[-1]
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == BATCH_SIZE + 3


# -- without MOVE and IDLE -------------------------------------------------------------------------------------------


def test_copy_expunge_and_polling_where_the_server_offers_neither_move_nor_idle(dovecot_without_move: Dovecot) -> None:
    server = dovecot_without_move
    for number in range(3):
        server.append(f"Subject: {number}\r\n\r\nbody {number}\r\n".encode())
    server.append(b"Subject: stays\r\n\r\nnot fetched\r\n")
    mailbox = ImapMailbox(lambda: settings(server, processed_folder="Done"))
    session = mailbox.session()
    assert session is not None and not session.client.has_capability("MOVE")
    state = session.scan()
    fetched = session.fetch(state.uids[:3])
    assert [m.raw for m in fetched] == [f"Subject: {n}\r\n\r\nbody {n}\r\n".encode() for n in range(3)]
    session.mark_processed([m.uid for m in fetched])
    assert len(server.uids("Done")) == 3 and len(server.uids("INBOX")) == 1
    assert not session.can_idle()
    started = time.monotonic()
    mailbox.wait(0.3, threading.Event())
    assert 0.25 < time.monotonic() - started < 2
    mailbox.close()


# -- faults ----------------------------------------------------------------------------------------------------------


def test_a_dovecot_restart_in_the_middle_of_a_fetch(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    _, vote_id = opened(imap, tmp_path)
    for code in ("FRA", "GBR", "USA"):
        dovecot.append(imap.reply(code, ["yes"]))
    lock = hold_processed_folder(dovecot)
    passes: list[int] = []
    worker = threading.Thread(target=lambda: passes.append(Service(imap.config, log=lambda _: None).fetch()))
    worker.start()
    wait_for(lambda: stored(imap) == 3 and checkpointed(imap), "the three messages committed while the MOVE waits")
    assert dovecot.kill_sessions() >= 1
    worker.join(timeout=30)
    dovecot.restart()
    lock.unlink()
    assert passes == [3] and len(dovecot.uids("INBOX")) == 3
    with Ledger.open(imap.config.database) as ledger:
        state = ledger.mailbox_status()
    assert state is not None and state.connection == "disconnected" and state.last_error
    service = Service(imap.config, log=lambda _: None)
    assert service.poll_once().fetched == 0
    assert dovecot.uids("INBOX") == []
    assert_each_counted_once_and_acknowledged(imap, vote_id, ("FRA", "GBR", "USA"))
    state = service.ledger.mailbox_status()
    assert state is not None and state.connection == "connected"


def test_serve_acknowledges_within_two_seconds_and_survives_a_dovecot_restart(imap: Deployment, dovecot: Dovecot,
                                                                              tmp_path: Path) -> None:
    _, vote_id = opened(imap, tmp_path)
    serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(imap.config.path), "serve"],
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: dovecot.idling() == 1, "voting serve waiting in IDLE")
        dovecot.append(imap.reply("FRA", ["yes"]))
        started = time.monotonic()
        wait_for(lambda: bool(receipts(imap, "FRA")), "the receipt of FRA", seconds=10)
        assert time.monotonic() - started < 2.0
        dovecot.restart()
        dovecot.append(imap.reply("GBR", ["no"]))
        wait_for(lambda: bool(receipts(imap, "GBR")), "the receipt of GBR after the restart", seconds=60)
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        errors = serve.stderr.read() if serve.stderr else ""
    assert dovecot.password not in errors
    assert_each_counted_once_and_acknowledged(imap, vote_id, ("FRA", "GBR"))


def test_killed_between_fetch_and_commit(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    _, vote_id = opened(imap, tmp_path)
    for code in ("FRA", "GBR", "USA"):
        dovecot.append(imap.reply(code, ["yes"]))
    holder = sqlite3.connect(imap.config.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    poll = start_poll(imap)
    try:
        wait_for(lambda: waits_on_a_lock(poll.pid), "the service waiting to commit what it fetched")
    finally:
        poll.kill()
        poll.wait()
        holder.execute("ROLLBACK")
        holder.close()
    assert stored(imap) == 0 and len(dovecot.uids("INBOX")) == 3
    assert voting("--config", str(imap.config.path), "poll", "--once").returncode == 0
    assert dovecot.uids("INBOX") == []
    assert_each_counted_once_and_acknowledged(imap, vote_id, ("FRA", "GBR", "USA"))


def test_killed_between_commit_and_move(imap: Deployment, dovecot: Dovecot, tmp_path: Path) -> None:
    _, vote_id = opened(imap, tmp_path)
    for code in ("FRA", "GBR", "USA"):
        dovecot.append(imap.reply(code, ["yes"]))
    lock = hold_processed_folder(dovecot)
    poll = start_poll(imap)
    try:
        wait_for(lambda: stored(imap) == 3 and checkpointed(imap), "the messages committed, the MOVE waiting")
    finally:
        poll.kill()
        poll.wait()
        dovecot.kill_sessions()  # else the server would still carry out the MOVE the client sent before dying
        lock.unlink()
    assert len(dovecot.uids("INBOX")) == 3 and dovecot.uids("Processed") == []
    polled = voting("--config", str(imap.config.path), "--json", "poll", "--once")
    assert polled.returncode == 0 and '"fetched": 0' in polled.stdout
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 3
    assert_each_counted_once_and_acknowledged(imap, vote_id, ("FRA", "GBR", "USA"))


def test_killed_in_the_middle_of_a_batch_transaction(imap: Deployment, dovecot: Dovecot) -> None:
    large = (b"x" * 1022 + b"\r\n") * (PAGE_CACHE_BYTES // 2048)  # three of them overflow the ledger's page cache
    for number in range(3):
        dovecot.append(f"Subject: large {number}\r\n\r\n".encode() + large)
    dovecot.append(b"Subject: stalls\r\n\r\nThe ledger takes minutes to store this one.\r\n")
    dovecot.append(b"Subject: last\r\n\r\nAfter it.\r\n")
    service = Service(imap.config, log=lambda _: None)
    fault(imap, stall("messages", "instr(NEW.raw, CAST('minutes to store' AS BLOB))"))
    poll = start_poll(imap)
    try:
        wait_for(lambda: wal_bytes(imap) > len(large), "the first messages of the batch in the WAL, not committed")
        assert stored(imap) == 0
    finally:
        poll.kill()
        poll.wait()
    fault(imap, unstall("messages"))
    assert stored(imap) == 0 and not checkpointed(imap)
    assert len(dovecot.uids("INBOX")) == 5 and dovecot.uids("Processed") == []
    assert service.fetch() == 5
    assert stored(imap) == 5 and dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 5


# -- helpers ---------------------------------------------------------------------------------------------------------


def start_poll(deployment: Deployment) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "voting", "--config", str(deployment.config.path), "poll",
                             "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)


def hold_processed_folder(dovecot: Dovecot) -> Path:
    """Take Dovecot's lock of the processed folder: a MOVE into it waits until the lock file goes."""
    with dovecot.client() as client:
        if not client.folder_exists("Processed"):
            client.create_folder("Processed")
        client.select_folder("Processed")
    lock = dovecot.maildir("Processed") / "dovecot-uidlist.lock"
    lock.write_text(f"{os.getpid()}\n")
    return lock


def append_many(dovecot: Dovecot, count: int, *, refused: int | None = None) -> None:
    """`count` small messages in one MULTIAPPEND; the one numbered `refused` says so in its text."""
    with dovecot.client() as client:
        client.multiappend("INBOX", [f"Subject: {n}\r\n\r\n{'refused' if n == refused else 'stored'}\r\n".encode()
                                     for n in range(count)])


def rows(deployment: Deployment, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(deployment.config.database) as db:
        return db.execute(sql).fetchall()


def query(deployment: Deployment, sql: str) -> int:
    [row] = rows(deployment, sql)
    return int(row[0]) if row[0] is not None else 0


def wal_bytes(deployment: Deployment) -> int:
    """The size of the ledger's write-ahead log: it grows with what a transaction writes before its commit too."""
    wal = Path(f"{deployment.config.database}-wal")
    return wal.stat().st_size if wal.exists() else 0


def stored(deployment: Deployment) -> int:
    return query(deployment, "SELECT count(*) FROM messages")


def checkpoint(deployment: Deployment) -> int:
    return query(deployment, "SELECT max(last_uid) FROM mailbox_checkpoints")


def checkpointed(deployment: Deployment) -> bool:
    return checkpoint(deployment) > 0

