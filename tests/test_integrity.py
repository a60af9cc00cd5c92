"""The ledger checks itself: one flipped bit in what a count rests on stops the close and is named, never published."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, voting

from voting.service import Service


def flipped(value: bytes, index: int) -> bytes:
    """The value with one bit of one byte flipped, as a failing disk or memory does it."""
    damaged = bytearray(value)
    damaged[index] ^= 0x01
    return bytes(damaged)


def damage(deployment: Deployment, change: Callable[[sqlite3.Connection], None]) -> None:
    """Change the ledger behind the service's back; its protective triggers come back when it is next opened."""
    with sqlite3.connect(deployment.config.database) as connection:
        connection.execute("DROP TRIGGER messages_keep_raw")
        connection.execute("DROP TRIGGER events_append_only_update")
        change(connection)


def voted(running: Deployment, tmp_path: Path) -> tuple[Service, str]:
    """FRA votes yes and CHN, a permanent member, no: the draft is vetoed."""
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    running.submit(running.reply("CHN", ["no"]), "chn@delegations.example")
    service.poll_once()
    service.close_ledger()
    return service, vote_id


def ballot_of(connection: sqlite3.Connection, code: str) -> int:
    return int(connection.execute("SELECT message FROM decisions WHERE code = ?", (code,)).fetchone()[0])


def change_choice(connection: sqlite3.Connection) -> None:
    connection.execute("""UPDATE decisions SET choices_json = '{"S/2020/654":"yes"}' WHERE code = 'CHN'""")


def flip_raw(connection: sqlite3.Connection) -> None:
    message = ballot_of(connection, "FRA")
    raw = connection.execute("SELECT raw FROM messages WHERE id = ?", (message,)).fetchone()[0]
    connection.execute("UPDATE messages SET raw = ? WHERE id = ?", (flipped(raw, len(raw) // 2), message))


def flip_event(connection: sqlite3.Connection) -> None:
    chain, seq, at = connection.execute(
        "SELECT chain, seq, at FROM events WHERE kind = 'decision' AND chain != '' ORDER BY seq LIMIT 1").fetchone()
    connection.execute("UPDATE events SET at = ? WHERE chain = ? AND seq = ?",
                       (flipped(at.encode(), len(at) - 3).decode(), chain, seq))


@pytest.mark.parametrize(("change", "named"), [
    (change_choice, "(CHN) differs from its chain event in choices"),
    (flip_raw, "its stored bytes no longer hash to its SHA-256"),
    (flip_event, "(decision) was changed: its hash does not match its content"),
])
def test_a_damaged_ledger_is_never_counted_nor_published(running: Deployment, tmp_path: Path,
                                                         change: Callable[[sqlite3.Connection], None],
                                                         named: str) -> None:
    service, vote_id = voted(running, tmp_path)
    config = str(running.config.path)
    assert voting("--config", config, "check").returncode == 0
    damage(running, change)
    closed = voting("--config", config, "close", vote_id, "--yes")
    assert closed.returncode == 1, closed.stdout + closed.stderr
    assert named in closed.stderr and "Traceback" not in closed.stderr
    assert not running.config.records_dir.exists() or not list(running.config.records_dir.iterdir())
    status = voting("--config", config, "status", vote_id)
    assert status.returncode == 1 and "LEDGER DAMAGED" in status.stdout and named in status.stdout
    checked = voting("--config", config, "check", vote_id)
    assert checked.returncode == 1 and named in checked.stdout
    polled = voting("--config", config, "poll", "--once")
    assert named in polled.stderr and "Traceback" not in polled.stderr
    assert "OPEN" in voting("--config", config, "status", vote_id).stdout
    assert not any(b"Subject: Results" in raw for raw in running.inbox_of("FRA"))


def test_a_damaged_page_is_one_line_not_a_traceback(running: Deployment, tmp_path: Path) -> None:
    service, vote_id = voted(running, tmp_path)
    database = running.config.database
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()[0]
    with database.open("r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)
    for command in (("status", vote_id), ("check",), ("close", vote_id, "--yes")):
        shown = voting("--config", str(running.config.path), *command)
        assert shown.returncode != 0 and "Traceback" not in shown.stderr, shown.stderr
        said = (shown.stdout + shown.stderr).strip().splitlines()
        assert len(said) == 1 and "malformed" in said[0], shown


def test_a_ballot_moved_out_of_its_vote_is_named_by_status(running: Deployment, tmp_path: Path) -> None:
    service, vote_id = voted(running, tmp_path)
    damage(running, lambda connection: connection.execute("UPDATE decisions SET vote_id = NULL WHERE code = 'CHN'"))
    status = voting("--config", str(running.config.path), "status", vote_id)
    assert status.returncode == 1 and "that no decision row holds" in status.stdout, status.stdout + status.stderr
