"""The ledger checks itself: one flipped bit in any row a count or a bundle rests on stops the close, is named, and
nothing is published from the damaged ledger.

Each kind of row is one entry of `ROWS`: the table, the column, which row, and the words that name the damage in
`voting check`, `voting status`, `voting record` and `voting close` (or `voting export`, for a closed vote). A
decision's explanation is read again from its signed message; a draft's title, file name and media type and the
vote's statement window are checked against the vote-opened event, which states them for votes opened since. Values
that no chain records and the ledger cannot check by itself, and that neither the results nor the record show (a
decision's detail, which the bundle calls informative; a ballot's Message-ID, reminders, the outbox, the mailbox's
checkpoints), are not listed.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import Deployment, copy_deployment, open_vote, voting, wait_for

from voting.bundle import export_bundle
from voting.integrity import explanation_damage
from voting.ledger import (
    CHAINED_LATER,
    GENESIS,
    Ledger,
    canonical_json,
    decision_event_data,
    decision_event_json,
    event_hash,
    utc_text,
)
from voting.mail import maildir
from voting.service import MAILBOX_SETTLING, Service, embedded_server
from voting.reasons import Reason
from voting.verdict import REJECTED, STATEMENT


def flipped(value: bytes, index: int) -> bytes:
    """The value with the lowest bit of one byte flipped, as a failing disk or memory does it."""
    damaged = bytearray(value)
    damaged[index] ^= 0x01
    return bytes(damaged)


def damage(deployment: Deployment, change: Callable[[sqlite3.Connection], None]) -> None:
    """Change the ledger behind the service's back; its protective triggers come back when it is next opened."""
    with sqlite3.connect(deployment.config.database) as connection:
        connection.execute("DROP TRIGGER messages_keep_raw")
        connection.execute("DROP TRIGGER events_append_only_update")
        connection.execute("PRAGMA ignore_check_constraints = ON")
        change(connection)


@dataclass(frozen=True)
class Row:
    """One kind of row: a stored value of `column` in `table`, in the row `where` picks, with a bit flipped."""

    table: str
    column: str
    where: str
    named: str
    """What `voting check` and a refused close say of it; {vote} stands for the vote's id."""
    at: float = 0.5
    """Where in the value the bit is flipped, as a fraction of its length."""
    closed: bool = False
    """A row of a closed vote: its bundle is what must not be published."""
    earlier: bool = False
    """In a ledger whose decision events were recorded by an earlier version (`recorded_earlier`)."""

    def __str__(self) -> str:
        return f"{self.table}.{self.column}" + (" (earlier events)" if self.earlier else "")

    def flip(self, connection: sqlite3.Connection) -> None:
        rowid, value = connection.execute(
            f"SELECT rowid, {self.column} FROM {self.table} WHERE {self.where} LIMIT 1").fetchone()
        if isinstance(value, int):
            connection.execute(f"UPDATE {self.table} SET {self.column} = ? WHERE rowid = ?", (value ^ 1, rowid))
            return
        if isinstance(value, float):  # the lowest bit of its mantissa
            bits = struct.unpack("<q", struct.pack("<d", value))[0] ^ 1
            connection.execute(f"UPDATE {self.table} SET {self.column} = ? WHERE rowid = ?",
                               (struct.unpack("<d", struct.pack("<q", bits))[0], rowid))
            return
        data = value.encode() if isinstance(value, str) else bytes(value)
        data = flipped(data, int(len(data) * self.at))
        connection.execute(f"UPDATE {self.table} SET {self.column} = ? WHERE rowid = ?",
                           (data.decode() if isinstance(value, str) else data, rowid))


def recorded_earlier(connection: sqlite3.Connection) -> None:
    """The chains as a version that did not chain explanations and signed attributes recorded them: each decision
    event without them, and every link computed again."""
    for chain in [row[0] for row in connection.execute("SELECT DISTINCT chain FROM events")]:
        previous = GENESIS
        events = connection.execute("SELECT rowid, seq, at, kind, data_json FROM events WHERE chain = ? ORDER BY seq",
                                    (chain,)).fetchall()
        for rowid, seq, at, kind, data_json in events:
            data = {key: value for key, value in json.loads(data_json).items()
                    if kind != "decision" or key not in CHAINED_LATER}
            digest = event_hash(previous, seq, at, kind, canonical_json(data))
            connection.execute("UPDATE events SET data_json = ?, prev_hash = ?, hash = ? WHERE rowid = ?",
                               (canonical_json(data), previous, digest, rowid))
            previous = digest


TIME_DIGIT = 0.93
"""The last digit of the microseconds of a time as the ledger writes it (2026-07-08T11:59:59.123456Z): still a time."""
FRA_BALLOT = "message = (SELECT message FROM decisions WHERE code = 'FRA')"
CHANGE_OF_VOTE = "supersedes IS NOT NULL"
ROWS = [
    Row("messages", "raw", "id = (SELECT message FROM decisions WHERE code = 'FRA')",
        "its stored bytes no longer hash to its SHA-256"),
    Row("messages", "sha256", "id = (SELECT message FROM decisions WHERE code = 'FRA')",
        "its stored bytes no longer hash to its SHA-256"),
    Row("messages", "received_at", "id = (SELECT message FROM decisions WHERE code = 'FRA')",
        "(FRA) differs from its chain event in received_at", at=TIME_DIGIT),
    Row("decisions", "choices_json", "code = 'CHN'", "(CHN) differs from its chain event in choices", at=0.8),
    Row("decisions", "code", FRA_BALLOT, "differs from its chain event in code"),
    Row("decisions", "verdict", FRA_BALLOT, "differs from its chain event in verdict", at=0.9),
    Row("decisions", "reason", "verdict = 'rejected'", "differs from its chain event in reason"),
    Row("decisions", "supersedes", CHANGE_OF_VOTE, "(NER) differs from its chain event in supersedes"),
    Row("decisions", "signed_sha256", FRA_BALLOT, "(FRA) differs from its chain event in signed_sha256"),
    Row("decisions", "signed_sha256", FRA_BALLOT, "(FRA): its signed attributes no longer hash to", earlier=True),
    Row("decisions", "vote_id", FRA_BALLOT, "that no decision row holds", at=0.9),
    Row("decisions", "explanation", FRA_BALLOT, "(FRA) differs from its chain event in explanation_sha256"),
    Row("decisions", "explanation", FRA_BALLOT, "the explanation of FRA's ballot differs from its signed message",
        earlier=True),
    Row("events", "data_json", "kind = 'decision' AND chain != ''", "was changed: its hash does not match its content",
        at=0.3),
    Row("events", "at", "kind = 'decision' AND chain != ''", "was changed: its hash does not match its content"),
    Row("events", "kind", "kind = 'vote-opened'", "was changed: its hash does not match its content"),
    Row("events", "hash", "kind = 'vote-opened'", "event 1 (vote-opened) was changed"),
    Row("events", "prev_hash", "kind = 'decision' AND chain != ''", "does not link to the event before it"),
    Row("votes", "title", "1", "the vote's title differs from its chain"),
    Row("votes", "rule", "1", "the vote's rule differs from its chain"),
    Row("votes", "opened_at", "1", "the vote's opened_at differs from its chain", at=TIME_DIGIT),
    Row("votes", "closes_at", "1", "the vote's closes_at differs from its chain", at=TIME_DIGIT),
    Row("votes", "first_ballot_final", "1", "the vote's first_ballot_final differs from its chain"),
    Row("votes", "statement_hours", "1", "the vote's statement_hours differs from its chain"),
    Row("votes", "electorate_json", "1", "the vote's electorate_sha256 differs from its chain"),
    Row("drafts", "content", "1", "the vote's draft files differs from its chain"),
    Row("drafts", "text", "1", "the vote's draft files differs from its chain"),
    Row("drafts", "sha256", "1", "the vote's drafts differs from its chain"),
    Row("drafts", "parties_json", "1", "the drafts of vote {vote}: a value stored in the ledger no longer reads"),
    Row("drafts", "sponsors_json", "1", "the drafts of vote {vote}: a value stored in the ledger no longer reads"),
    Row("drafts", "symbol", "1", "the vote's drafts differs from its chain"),
    Row("drafts", "title", "1", "the vote's drafts differs from its chain"),
    Row("drafts", "file_name", "1", "the vote's drafts differs from its chain"),
    Row("drafts", "media_type", "1", "the vote's drafts differs from its chain"),
    Row("ballots", "token", "code = 'FRA'", "the ballot token of FRA differs from its chain"),
    Row("votes", "outcome_json", "1", "the row of vote {vote}: a value stored in the ledger no longer reads",
        at=0.3, closed=True),
    Row("votes", "closed_at", "1", "the vote's closed_at differs from its chain", at=TIME_DIGIT, closed=True),
]


@pytest.fixture(scope="module")
def voted_template(unsc_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One vote, copied for each test: FRA yes with an explanation, CHN no (a veto), NER abstain then yes, USA unsigned
    (rejected)."""
    root = tmp_path_factory.mktemp("voted") / "deployment"
    deployment = copy_deployment(unsc_template, root)
    service = Service(deployment.config, log=lambda line: None)
    with embedded_server(deployment.config, required=True):
        vote_id = open_vote(service, root.parent)
        service.send()
        deployment.submit(deployment.reply("FRA", ["yes"], explanation="France votes for the resolution."),
                          deployment.address("FRA"))
        for code, choice in (("CHN", "no"), ("NER", "abstain")):
            deployment.submit(deployment.reply(code, [choice]), deployment.address(code))
        service.poll_once()
        deployment.submit(deployment.reply("NER", ["yes"]), deployment.address("NER"))
        deployment.submit(b"From: usa@delegations.example\r\nSubject: vote\r\n\r\nYES\r\n", deployment.address("USA"))
        service.poll_once()
    service.shut_down()
    return root, vote_id


def copied(voted_template: tuple[Path, str], tmp_path: Path) -> tuple[Deployment, str]:
    root, vote_id = voted_template
    return copy_deployment(root, tmp_path / "deployment"), vote_id


def said(result: object) -> str:
    return f"{result.stdout}{result.stderr}"  # type: ignore[attr-defined]


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_a_bit_flipped_in_any_row_a_count_rests_on_is_named_and_nothing_is_published(
        voted_template: tuple[Path, str], tmp_path: Path, row: Row) -> None:
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    if row.closed:
        assert voting("--config", config, "close", vote_id, "--yes").returncode == 0
        for bundle in deployment.config.records_dir.iterdir():
            bundle.unlink()
    if row.earlier:
        damage(deployment, recorded_earlier)
    assert voting("--config", config, "check").returncode == 0
    damage(deployment, row.flip)
    named = row.named.format(vote=vote_id)
    checked = voting("--config", config, "check", vote_id)
    assert checked.returncode == 1 and named in checked.stdout, said(checked)
    status = voting("--config", config, "status", vote_id)
    assert status.returncode == 1 and "LEDGER DAMAGED" in status.stdout, said(status)
    published = voting("--config", config, *(("export", vote_id, "--out", str(tmp_path / "bundle.zip")) if row.closed
                                              else ("close", vote_id, "--yes")))
    assert published.returncode == 1 and named in published.stderr, said(published)
    assert len(published.stderr.strip().splitlines()) == 1, said(published)
    recorded = voting("--config", config, "record", vote_id, "--out", str(tmp_path / "record"))
    assert recorded.returncode == 1 and named in recorded.stderr, said(recorded)
    for result in (checked, status, published, recorded):
        assert "Traceback" not in said(result), said(result)
    assert not (tmp_path / "bundle.zip").exists() and not (tmp_path / "record").exists()
    assert not deployment.config.records_dir.exists() or not list(deployment.config.records_dir.iterdir())
    if not row.closed:
        assert still_open(deployment, vote_id)
        assert not any(b"Subject: Results" in raw for raw in deployment.inbox_of("FRA"))


def still_open(deployment: Deployment, vote_id: str) -> bool:
    """Whether the vote has no close recorded nor its deadline moved, whatever else of its row is damaged."""
    with sqlite3.connect(deployment.config.database) as connection:
        closed = connection.execute("SELECT closed_at FROM votes WHERE id = ?", (vote_id,)).fetchone()[0]
        events = connection.execute(
            "SELECT count(*) FROM events WHERE kind IN ('vote-closed', 'deadline-moved')").fetchone()[0]
    return closed is None and events == 0


def test_a_pass_past_the_deadline_names_the_damage_and_leaves_the_vote_open(running: Deployment,
                                                                          tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, seconds=3)
    service.send()
    running.submit(running.reply("FRA", ["yes"]), running.address("FRA"))
    service.poll_once()
    closes_at = service.ledger.vote(vote_id).closes_at
    service.shut_down()
    damage(running, ROWS[0].flip)
    wait_for(lambda: datetime.now(UTC) > closes_at + MAILBOX_SETTLING, "the vote due to close", seconds=10)
    polled = voting("--config", str(running.config.path), "poll", "--once")
    assert ROWS[0].named in polled.stderr and "Traceback" not in polled.stderr, said(polled)
    assert still_open(running, vote_id)
    assert not running.config.records_dir.exists() or not list(running.config.records_dir.iterdir())


def test_serve_stays_up_on_a_damaged_row_takes_mail_in_and_says_why(deployment: Deployment, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(deployment.config.path), "serve"],
                                 stdout=output, stderr=output)
    try:
        service = Service(deployment.config, log=lambda line: None)
        vote_id = open_vote(service, tmp_path)
        wait_for(lambda: "sent 15," in log.read_text(), "the ballots sent by serve")
        damage(deployment, Row("votes", "closes_at", "1", "", at=0.6).flip)  # 12:00:00 becomes 12:00;00: no time
        deployment.submit(deployment.reply("FRA", ["yes"]), deployment.address("FRA"))
        wait_for(lambda: f"the row of vote {vote_id}" in log.read_text(), "the damage logged")
        wait_for(lambda: service.ledger.undecided_messages(), "the reply taken in, to be decided once repaired")
        assert serve.poll() is None, log.read_text()
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
    said_by_serve = log.read_text()
    assert "the pass stopped, and is tried again" in said_by_serve and "Traceback" not in said_by_serve, said_by_serve
    checked = voting("--config", str(deployment.config.path), "check")
    assert checked.returncode == 1 and f"the row of vote {vote_id}" in checked.stdout, said(checked)


def overwrite_a_page(database: Path, page: Callable[[sqlite3.Connection], int]) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        number = page(connection)
    with database.open("r+b") as file:
        file.seek((number - 1) * page_size)
        file.write(b"\xff" * page_size)


def root_of_decisions(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'decisions'").fetchone()[0])


def middle_of_the_file(connection: sqlite3.Connection) -> int:
    return int(connection.execute("PRAGMA page_count").fetchone()[0]) // 2 + 1


def test_a_damaged_decision_on_mail_bound_to_no_vote_is_named_by_check_and_the_status_of_other_votes_stands(
        voted_template: tuple[Path, str], tmp_path: Path) -> None:
    """Mail that reached the secretariat a day before the vote opened, decided and bound to no vote: `voting
    check` compares it with the ledger's own chain, as each vote's decisions are with theirs, and the vote it is
    no part of still shows."""
    deployment, vote_id = copied(voted_template, tmp_path)
    with Ledger.open(deployment.config.database) as ledger:
        earlier = ledger.vote(vote_id).opened_at - timedelta(days=1)
        with ledger.transaction():
            message = ledger.store_message(b"From: someone@elsewhere.example\r\n\r\nhello\r\n", earlier, "test",
                                           earlier)
            ledger.record_decision(message, vote_id=None, code=None, verdict=REJECTED, reason=Reason.NOT_SIGNED.value,
                                   detail="", choices={}, explanation="", supersedes=None, signed_sha256=None,
                                   now=earlier)
    config = str(deployment.config.path)
    assert voting("--config", config, "check").returncode == 0
    for column, named in (("reason", "differs from its chain event in reason"),
                          ("choices_json", "a value stored in the ledger no longer reads")):
        damage(deployment, Row("decisions", column, f"message = {message.id}", named).flip)
        checked = voting("--config", config, "check")
        assert checked.returncode == 1 and "the chain of messages received" in checked.stdout, said(checked)
        assert named in checked.stdout, said(checked)
        status = voting("--config", config, "status", vote_id)
        assert status.returncode == 0 and "DAMAGED" not in status.stdout, said(status)


def chained_again(event_where: str, *, as_kind: str | None = None,
                  as_data_json: str | None = None) -> Callable[[sqlite3.Connection], None]:
    """A copy of one event appended to the end of its chain (of another kind or data, if given), every link
    computed again: what one who rewrites the ledger with its hashing code could add."""

    def append(connection: sqlite3.Connection) -> None:
        chain, at, kind, data_json = connection.execute(
            f"SELECT chain, at, kind, data_json FROM events WHERE {event_where}").fetchone()
        kind, data_json = as_kind or kind, as_data_json or data_json
        seq, previous = connection.execute(
            "SELECT seq, hash FROM events WHERE chain = ? ORDER BY seq DESC LIMIT 1", (chain,)).fetchone()
        connection.execute(
            "INSERT INTO events (chain, seq, at, kind, data_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chain, seq + 1, at, kind, data_json, previous, event_hash(previous, seq + 1, at, kind, data_json)))

    return append


def test_an_event_of_no_kind_in_the_ledger_s_own_chain_is_named(voted_template: tuple[Path, str],
                                                                 tmp_path: Path) -> None:
    """The ledger's own chain records messages as received and decisions on those bound to no vote; an event of
    another kind is read by no check."""
    deployment, _ = copied(voted_template, tmp_path)
    damage(deployment, chained_again("chain = '' AND seq = 1", as_kind="vote-closed"))
    checked = voting("--config", str(deployment.config.path), "check")
    assert checked.returncode == 1, said(checked)
    assert "the chain of messages received: event" in checked.stdout, said(checked)
    assert "(vote-closed) is of no kind this chain records" in checked.stdout, said(checked)


def test_a_decision_chained_twice_is_named(voted_template: tuple[Path, str], tmp_path: Path) -> None:
    """Each event is matched with its decision by its text: a second event of the same text, the chain linking
    through it, is no decision of its own but a chain that does not say what the ledger holds."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    damage(deployment, chained_again("kind = 'decision' AND chain != '' AND data_json LIKE '%\"code\":\"FRA\"%'"))
    checked = voting("--config", config, "check", vote_id)
    assert checked.returncode == 1 and "twice" in checked.stdout, said(checked)
    closed = voting("--config", config, "close", vote_id, "--yes")
    assert closed.returncode == 1 and "twice" in closed.stderr, said(closed)


def rewritten(event_where: str, data_json: str) -> Callable[[sqlite3.Connection], None]:
    """One event's data replaced and its chain hashed again from it on: what one who rewrites the ledger with its
    hashing code could leave."""

    def rewrite(connection: sqlite3.Connection) -> None:
        chain, seq = connection.execute(f"SELECT chain, seq FROM events WHERE {event_where}").fetchone()
        connection.execute("UPDATE events SET data_json = ? WHERE chain = ? AND seq = ?", (data_json, chain, seq))
        previous = connection.execute("SELECT prev_hash FROM events WHERE chain = ? AND seq = ?",
                                      (chain, seq)).fetchone()[0]
        for number, at, kind, text in connection.execute(
                "SELECT seq, at, kind, data_json FROM events WHERE chain = ? AND seq >= ? ORDER BY seq",
                (chain, seq)).fetchall():
            linked = event_hash(previous, number, at, kind, text)
            connection.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE chain = ? AND seq = ?",
                               (previous, linked, chain, number))
            previous = linked

    return rewrite


@pytest.mark.parametrize("kind", ["vote-opened", "decision"])
@pytest.mark.parametrize("data_json", ['["not","an","object"]', '"a text"', "null"], ids=["list", "text", "null"])
def test_an_event_whose_data_is_no_object_is_named_not_a_traceback(
        voted_template: tuple[Path, str], tmp_path: Path, kind: str, data_json: str) -> None:
    """Every event's data is a JSON object; one who rewrites the ledger could chain any JSON in its place."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    damage(deployment, rewritten(f"chain = '{vote_id}' AND kind = '{kind}' ORDER BY seq DESC LIMIT 1", data_json))
    for command in (("check", vote_id), ("status", vote_id), ("close", vote_id, "--yes")):
        shown = voting("--config", config, *command)
        assert shown.returncode == 1 and "Traceback" not in said(shown), said(shown)
        assert f"({kind}) is not a JSON object" in said(shown), said(shown)


@pytest.mark.parametrize(("kind", "named"), [
    ("vote-opened", "(vote-opened) opens the vote again"),
    ("memo", "(memo) is of no kind this chain records"),
])
def test_an_event_out_of_the_chain_s_order_is_named(voted_template: tuple[Path, str], tmp_path: Path, kind: str,
                                                    named: str) -> None:
    """Every check reads the first vote-opened event; a second one, linked and hashed like the rest, states
    another vote to whoever reads the last, and an event of a kind no check reads is read by none."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    damage(deployment, chained_again(f"chain = '{vote_id}' AND seq = 1", as_kind=kind))
    for command in (("check", vote_id), ("status", vote_id), ("close", vote_id, "--yes")):
        shown = voting("--config", config, *command)
        assert shown.returncode == 1 and named in said(shown), said(shown)


COMPARED = "differs from its chain event in"
UNREADABLE = "no longer reads, damaged"


@pytest.mark.parametrize(("change", "named"), [
    ("UPDATE decisions SET choices_json = '[\"yes\"]' WHERE code = 'CHN'", COMPARED),
    ("UPDATE decisions SET code = CAST('FRA' AS BLOB) WHERE code = 'FRA'", COMPARED),
    ("UPDATE decisions SET reason = CAST(reason AS BLOB) WHERE verdict = 'rejected'", COMPARED),
    ("UPDATE decisions SET explanation = CAST(explanation AS BLOB) WHERE code = 'FRA'", COMPARED),
    ("UPDATE decisions SET choices_json = CAST(choices_json AS BLOB) WHERE code = 'CHN'", UNREADABLE),
    ("UPDATE messages SET received_at = CAST(received_at AS BLOB) WHERE id = (SELECT max(message) FROM decisions)",
     UNREADABLE),
], ids=["choices a list", "code bytes", "reason bytes", "explanation bytes", "choices bytes", "receipt time bytes"])
def test_a_decision_value_no_longer_of_its_type_is_named_not_a_traceback(
        voted_template: tuple[Path, str], tmp_path: Path, change: str, named: str) -> None:
    """What one who rewrites the ledger could store where a text or a mapping belongs: the decision's event text
    cannot be written from it, and it is compared field by field instead; what can no longer be read as a time or
    as JSON at all is named as such."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    damage(deployment, lambda connection: connection.execute(change))
    checked = voting("--config", config, "check", vote_id)
    assert checked.returncode == 1 and named in checked.stdout, said(checked)
    closed = voting("--config", config, "close", vote_id, "--yes")
    assert closed.returncode == 1 and named in closed.stderr, said(closed)
    status = voting("--config", config, "status", vote_id)
    assert status.returncode == 1 and named in said(status), said(status)
    assert "Traceback" not in said(checked) + said(closed) + said(status)


TEXT_COLUMNS = [
    ("votes", "title"), ("votes", "rule"), ("votes", "opened_at"), ("votes", "closes_at"),
    ("votes", "electorate_json"), ("drafts", "symbol"), ("drafts", "title"), ("drafts", "text"),
    ("drafts", "parties_json"), ("drafts", "sponsors_json"), ("ballots", "code"), ("ballots", "token"),
    ("messages", "sha256"), ("messages", "received_at"), ("decisions", "code"), ("decisions", "verdict"),
    ("decisions", "signed_sha256"), ("decisions", "detail"), ("events", "at"), ("events", "kind"),
    ("events", "data_json"), ("events", "prev_hash"), ("events", "hash"),
]


SAME_WHEN_READ = {("drafts", "parties_json"), ("drafts", "sponsors_json"), ("decisions", "detail")}
"""Columns that no check compares by type: their bytes read as the same JSON, or the same text shown."""


@pytest.mark.parametrize(("table", "column"), TEXT_COLUMNS, ids=lambda value: str(value))
def test_a_text_stored_as_bytes_anywhere_is_named_not_a_traceback(voted_template: tuple[Path, str], tmp_path: Path,
                                                                  table: str, column: str) -> None:
    """The same text stored as bytes, in any text column a check reads: what one who rewrites the ledger could
    leave, which no value of the service's has. What names it shows no ballot token, secret while the vote is
    open, on a board the room may see."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    with sqlite3.connect(deployment.config.database) as connection:
        tokens = [token for (token,) in connection.execute("SELECT token FROM ballots")]
    damage(deployment, lambda connection: connection.execute(
        f"UPDATE {table} SET {column} = CAST({column} AS BLOB) WHERE rowid = (SELECT max(rowid) FROM {table}"
        f" WHERE {column} IS NOT NULL)"))
    for command in (("check", vote_id), ("status", vote_id), ("close", vote_id, "--yes")):
        shown = voting("--config", config, *command)
        assert "Traceback" not in said(shown), said(shown)
        assert not any(token in said(shown) for token in tokens), "a ballot token, secret while the vote is open"
        assert shown.returncode == (0 if (table, column) in SAME_WHEN_READ else 1), said(shown)


@settings(max_examples=300, deadline=None)
@given(sha256=st.text(), received_at=st.datetimes(timezones=st.just(UTC)), code=st.none() | st.text(),
       verdict=st.text(), reason=st.none() | st.text(),
       choices=st.dictionaries(st.text(), st.text() | st.integers()) | st.lists(st.text()),
       supersedes=st.none() | st.text(), explanation=st.text(), signed_sha256=st.none() | st.text())
def test_the_text_a_decision_event_is_compared_by_is_the_one_the_ledger_stores(
        sha256: str, received_at: datetime, code: str | None, verdict: str, reason: str | None,
        choices: dict[str, str], supersedes: str | None, explanation: str, signed_sha256: str | None) -> None:
    """`decision_event_json`, from a row as the ledger stores it, writes out what `canonical_json` writes of
    `decision_event_data`, for any text in any field (quotes, control characters, any script) and for choices
    damaged into numbers or a list."""
    stored = (sha256, utc_text(received_at), code, verdict, reason, canonical_json(choices), supersedes, explanation,
              signed_sha256)
    values = (sha256, received_at, code, verdict, reason, choices, supersedes, explanation, signed_sha256)
    assert decision_event_json(*stored) == canonical_json(decision_event_data(*values))


@pytest.mark.parametrize("change", [
    "UPDATE messages SET received_at = replace(received_at, 'Z', '+00:00')",
    "UPDATE decisions SET choices_json = replace(replace(choices_json, ':', ': '), ',', ', ')"
    " WHERE choices_json != '{}'",
], ids=["receipt times with an offset", "choices spaced"])
def test_rows_stored_in_another_form_of_the_same_values_are_intact(
        voted_template: tuple[Path, str], tmp_path: Path, change: str) -> None:
    """A row is matched with its event by the text written from what it stores; a row stored in another form of
    the same values (as an earlier version or a hand could store it) matches no event's text, and is compared by
    its values instead: the same vote, nothing named."""
    deployment, vote_id = copied(voted_template, tmp_path)
    config = str(deployment.config.path)
    before = voting("--config", config, "status", vote_id, "--json")
    damage(deployment, lambda connection: connection.execute(change))
    checked = voting("--config", config, "check")
    assert checked.returncode == 0 and checked.stdout.startswith("intact"), said(checked)
    after = voting("--config", config, "status", vote_id, "--json")
    shown = ("damaged", "voted", "not_voted", "rejected", "outcome")
    assert {key: json.loads(after.stdout)[key] for key in shown} == {key: json.loads(before.stdout)[key] for key in shown}


@pytest.mark.parametrize("page", [root_of_decisions, middle_of_the_file], ids=lambda page: page.__name__)
def test_a_damaged_page_is_one_line_not_a_traceback(voted_template: tuple[Path, str], tmp_path: Path,
                                                    page: Callable[[sqlite3.Connection], int]) -> None:
    """`check` and `close` read every page; `status` reads only what it shows (an index page it does not use may be
    the damaged one), so it may still answer, but never with a traceback."""
    deployment, vote_id = copied(voted_template, tmp_path)
    overwrite_a_page(deployment.config.database, page)
    for command in (("status", vote_id), ("check",), ("close", vote_id, "--yes")):
        shown = voting("--config", str(deployment.config.path), *command)
        assert "Traceback" not in shown.stderr, shown.stderr
        if command[0] == "status" and shown.returncode == 0:
            continue
        assert shown.returncode != 0, shown
        lines = said(shown).strip().splitlines()
        assert len(lines) == 1 and ("malformed" in lines[0] or "damaged" in lines[0]), shown
    assert not deployment.config.records_dir.exists() or not list(deployment.config.records_dir.iterdir())
    assert not any(b"Subject: Results" in raw for raw in deployment.inbox_of("FRA"))


@pytest.mark.parametrize("earlier", [False, True], ids=["chained", "earlier events"])
def test_the_explanation_of_a_ballot_encrypted_to_the_secretariat_is_checked_with_its_key_and_the_gap_said_without(
        unsc_template: Path, tmp_path: Path, earlier: bool) -> None:
    """Its chain event holds its explanation's SHA-256, checked with or without the key; an event recorded by an
    earlier version holds none, and the explanation is read again from the message, which needs the key."""
    deployment = copy_deployment(unsc_template, tmp_path / "deployment")
    config = str(deployment.config.path)
    service = Service(deployment.config, log=lambda line: None)
    with embedded_server(deployment.config, required=True):
        vote_id = open_vote(service, tmp_path)
        service.send()
        deployment.submit(deployment.encrypted_reply("EST", service.keys.signer.certificate, tmp_path,
                                                     explanation="Estonia votes for the resolution."),
                          deployment.address("EST"))
        service.poll_once()
    assert [(d.code, d.verdict) for d in service.ledger.decisions(vote_id)] == [("EST", "ballot")]
    service.shut_down()
    if earlier:
        damage(deployment, recorded_earlier)
    assert voting("--config", config, "check").returncode == 0
    damage(deployment, Row("decisions", "explanation", "code = 'EST'", "").flip)
    named = ("the explanation of EST's ballot differs from its signed message" if earlier
             else "(EST) differs from its chain event in explanation_sha256")
    for command in (("check", vote_id), ("close", vote_id, "--yes")):
        refused = voting("--config", config, *command)
        assert refused.returncode == 1 and named in said(refused), said(refused)
    assert still_open(deployment, vote_id)

    password = deployment.config.resolve(deployment.config.settings.secretariat.key_password_file or "")
    password.rename(password.with_name("elsewhere"))
    checked = voting("--config", config, "check", vote_id)
    assert "NOT CHECKED: the explanations of ballots encrypted to the secretariat whose chain does not record them" \
        in checked.stdout, said(checked)
    status = voting("--config", config, "status", vote_id)
    if earlier:
        assert checked.returncode == 0 and named not in checked.stdout, said(checked)
        assert status.returncode == 0 and "LEDGER DAMAGED" not in status.stdout, said(status)
    else:
        assert checked.returncode == 1 and named in checked.stdout, said(checked)
        assert status.returncode == 1 and "LEDGER DAMAGED" in status.stdout, said(status)
    closed = voting("--config", config, "close", vote_id, "--yes")
    assert closed.returncode != 0 and "Traceback" not in closed.stderr and still_open(deployment, vote_id), said(closed)


def test_the_explanation_of_a_statement_is_read_again_from_its_signed_message_as_a_ballot_s_is(
        voted_template: tuple[Path, str], tmp_path: Path) -> None:
    """A statement after the close (an explanation of vote, or a delegation's statement under a silence procedure)
    is published as its ballot's explanation is, and checked alike."""
    deployment, vote_id = copied(voted_template, tmp_path)
    ledger = Ledger.open(deployment.config.database)
    fra = next(d for d in ledger.decisions(vote_id) if d.code == "FRA")
    raw = ledger.raw_message(fra.message)
    drafts = [d.symbol for d in ledger.drafts(vote_id)]
    statement = fra._replace(verdict=STATEMENT, choices={}, supersedes=None, signed_sha256=None)
    assert explanation_damage(statement, raw, drafts, None) is None
    assert explanation_damage(statement._replace(explanation="France votes against."), raw, drafts, None) == (
        "the explanation of FRA's statement differs from its signed message")
    ledger.close()


@pytest.mark.parametrize("reader", ["status", "export"])
def test_a_pass_committing_between_a_reader_s_queries_is_no_damage(voted_template: tuple[Path, str], tmp_path: Path,
                                                                  reader: str) -> None:
    """A reader beside a pass: the pass commits a decision and its chain event just as the reader turns from the
    chain to the decisions, and the reader still sees one state of the ledger, intact, and the next read the new."""
    deployment, vote_id = copied(voted_template, tmp_path)
    reading, passing = (Service(deployment.config, log=lambda line: None) for _ in range(2))
    if reader == "export":  # a closed vote, and a reply taken in after its close
        passing.close(vote_id)
    maildir.deliver(deployment.config.inbox, deployment.reply("GBR", ["yes"], explanation="The United Kingdom."))
    passing.fetch()
    committed = []

    def commit_between(statement: str) -> None:
        if not committed and "FROM decisions" in statement:
            committed.extend(passing.decide_pending())

    def seen() -> int:
        """Decisions the reader counts: in the status, or the bundle's messages."""
        if reader == "status":
            status = reading.status(vote_id)
            assert status["damaged"] == []
            return len(status["voted"]) + len(status["rejected"])
        return export_bundle(reading, vote_id, tmp_path / f"bundle-{len(committed)}.zip").messages

    before = seen()
    reading.ledger.db.set_trace_callback(commit_between)
    assert seen() == before
    reading.ledger.db.set_trace_callback(None)
    assert len(committed) == 1
    assert seen() == before + 1
