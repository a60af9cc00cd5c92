"""The ledger's tables, their indexes, and bringing a ledger written by an earlier version up to them."""

from __future__ import annotations

import re
import sqlite3

SCHEMA_VERSION = 6
"""1: the first schema; 2: decisions keep the SHA-256 of a ballot's signature value; 3: of its signed
attributes instead, which recognise a copy whatever the encoding of its signature; 4: a decision may be a
`request` for the ballot again, and reminders sent are kept; 6: a draft keeps its sponsors."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    rule TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    closes_at TEXT NOT NULL,
    closed_at TEXT,
    first_ballot_final INTEGER NOT NULL DEFAULT 0,
    quorum INTEGER,
    statement_hours REAL NOT NULL,
    electorate_json TEXT NOT NULL,
    outcome_json TEXT
);
CREATE TABLE IF NOT EXISTS drafts (
    vote_id TEXT NOT NULL REFERENCES votes(id),
    position INTEGER NOT NULL,
    symbol TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    parties_json TEXT NOT NULL DEFAULT '[]',
    file_name TEXT NOT NULL DEFAULT '',
    media_type TEXT NOT NULL DEFAULT 'text/plain',
    content BLOB,
    sponsors_json TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (vote_id, symbol)
);
CREATE TABLE IF NOT EXISTS ballots (
    vote_id TEXT NOT NULL REFERENCES votes(id),
    code TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    PRIMARY KEY (vote_id, code)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    raw BLOB NOT NULL,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    message INTEGER PRIMARY KEY REFERENCES messages(id),
    vote_id TEXT REFERENCES votes(id),
    code TEXT,
    verdict TEXT NOT NULL CHECK (verdict IN ('ballot', 'statement', 'rejected', 'request')),
    reason TEXT,
    detail TEXT NOT NULL DEFAULT '',
    choices_json TEXT NOT NULL DEFAULT '{}',
    explanation TEXT NOT NULL DEFAULT '',
    supersedes INTEGER REFERENCES messages(id),
    signed_sha256 TEXT,
    decided_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reminders (
    vote_id TEXT NOT NULL REFERENCES votes(id),
    code TEXT NOT NULL,
    closes_at TEXT NOT NULL,
    reminder TEXT NOT NULL,
    message_id TEXT,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (vote_id, code, closes_at, reminder)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    vote_id TEXT,
    envelope_from TEXT NOT NULL,
    recipients_json TEXT NOT NULL,
    raw BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS events (
    chain TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    data_json TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS mailbox_checkpoints (
    folder TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    last_uid INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (folder, uidvalidity)
);
CREATE TABLE IF NOT EXISTS mailbox_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    mailbox TEXT NOT NULL,
    connection TEXT NOT NULL,
    since TEXT NOT NULL,
    last_fetch_at TEXT,
    last_fetch_new INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_error_at TEXT
);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS messages_keep_raw BEFORE UPDATE OF raw, sha256, received_at ON messages
BEGIN SELECT RAISE(ABORT, 'raw messages are never changed'); END;
"""

INDEXES = """
CREATE INDEX IF NOT EXISTS decisions_by_vote ON decisions(vote_id, code);
CREATE INDEX IF NOT EXISTS messages_by_receipt ON messages(received_at, id, sha256, source);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages(id, received_at, sha256);
CREATE INDEX IF NOT EXISTS outbox_by_status ON outbox(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_attempted ON outbox(status, id) WHERE attempts > 0;
"""
"""What each pass looks up, so that it costs the same however long the ledger grows: a delegation's decisions in
a vote, the messages not decided yet (read from the index alone, never their bytes), a decision's message's
receipt time and SHA-256 (which the table holds after its bytes), the mail due, the mail tried and not sent (which
`voting status` shows, however many receipts a pass has queued). Made after any migration, which may rebuild a
table and its indexes with it."""


def migrate(connection: sqlite3.Connection) -> None:
    """Bring a ledger written by an earlier version up to this schema, keeping everything it holds.

    The SHA-256 of each ballot's signed attributes is recomputed from its raw
    message; for a ballot encrypted to the secretariat it stays NULL, and the
    service reads it with the secretariat's key when it needs it. The hash of
    the signature value that schema 2 kept recognises no copy re-encoded, so
    it goes. A draft recorded before draft files were kept has its text as
    its file, which is what its SHA-256 was taken of.
    """
    from voting.smime.verify import signed_sha256_of  # only here: a command that reads the ledger starts without it

    connection.execute("BEGIN IMMEDIATE")
    try:
        columns = {row["name"] for row in connection.execute("PRAGMA table_info(decisions)")}
        if "signed_sha256" not in columns:
            connection.execute("ALTER TABLE decisions ADD COLUMN signed_sha256 TEXT")
        if "signature_sha256" in columns:
            connection.execute("ALTER TABLE decisions DROP COLUMN signature_sha256")
        draft_columns = {row["name"] for row in connection.execute("PRAGMA table_info(drafts)")}
        for column, definition in (("file_name", "TEXT NOT NULL DEFAULT ''"),
                                   ("media_type", "TEXT NOT NULL DEFAULT 'text/plain'"), ("content", "BLOB"),
                                   ("sponsors_json", "TEXT NOT NULL DEFAULT '[]'")):
            if column not in draft_columns:
                connection.execute(f"ALTER TABLE drafts ADD COLUMN {column} {definition}")
        ballots = connection.execute(
            "SELECT d.message, m.raw FROM decisions d JOIN messages m ON m.id = d.message"
            " WHERE d.verdict = 'ballot' AND d.signed_sha256 IS NULL"
        ).fetchall()
        for row in ballots:
            connection.execute("UPDATE decisions SET signed_sha256 = ? WHERE message = ?",
                               (signed_sha256_of(bytes(row["raw"])), row["message"]))
        table = connection.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'decisions'").fetchone()
        if "'request'" not in table["sql"]:
            _rebuild_decisions(connection)
        connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _rebuild_decisions(connection: sqlite3.Connection) -> None:
    """SQLite cannot change a CHECK constraint in place: the decisions are copied into the table this schema makes."""
    found = re.search(r"CREATE TABLE IF NOT EXISTS decisions \(.*?\n\);", SCHEMA, re.DOTALL)
    assert found is not None
    connection.execute(found.group(0).replace("IF NOT EXISTS decisions", "decisions_new", 1))
    columns = ("message, vote_id, code, verdict, reason, detail, choices_json, explanation, supersedes, signed_sha256,"
               " decided_at")
    connection.execute(f"INSERT INTO decisions_new ({columns}) SELECT {columns} FROM decisions")
    connection.execute("DROP TABLE decisions")
    connection.execute("ALTER TABLE decisions_new RENAME TO decisions")
