"""Maildir delivery and reading, on a real file system."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from voting.errors import MailError
from voting.mail import maildir

RAW = b"From: a@example.org\r\nSubject: test\r\n\r\nbody \xe9\r\n.line with dot\r\n"


def test_deliver_creates_the_maildir_and_keeps_the_bytes(tmp_path: Path) -> None:
    box = tmp_path / "votes@example.org"
    path = maildir.deliver(box, RAW)
    assert path.parent == box / "new"
    assert path.read_bytes() == RAW
    assert sorted(p.name for p in box.iterdir()) == ["cur", "new", "tmp"]
    assert list((box / "tmp").iterdir()) == []
    time_part, pid_counter, host = path.name.split(".", 2)
    assert time_part.isdigit() and pid_counter.startswith(f"{os.getpid()}_") and host


def test_unique_names_for_messages_delivered_together(tmp_path: Path) -> None:
    paths = [maildir.deliver(tmp_path, b"%d\r\n" % n) for n in range(50)]
    assert len({p.name for p in paths}) == 50


def test_pending_lists_new_messages_oldest_first_with_utc_delivery_time(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    first = maildir.deliver(tmp_path, b"first\r\n")
    second = maildir.deliver(tmp_path, b"second\r\n")
    after = datetime.now(UTC)
    found = maildir.pending(tmp_path)
    assert [m.path for m in found] == [first, second]
    assert [maildir.read(m) for m in found] == [b"first\r\n", b"second\r\n"]
    for message in found:
        assert message.received_at.tzinfo == UTC
        assert before - timedelta(seconds=1) <= message.received_at <= after + timedelta(seconds=1)
        assert message.key == message.path.name


def test_order_follows_delivery_time_not_name(tmp_path: Path) -> None:
    late = maildir.deliver(tmp_path, b"late\r\n")
    early = maildir.deliver(tmp_path, b"early\r\n")
    os.utime(late, (2_000_000_000, 2_000_000_000))
    os.utime(early, (1_000_000_000, 1_000_000_000))
    found = maildir.pending(tmp_path)
    assert [m.path for m in found] == [early, late]
    assert found[0].received_at == datetime(2001, 9, 9, 1, 46, 40, tzinfo=UTC)


def test_mark_processed_moves_to_cur_with_seen_flag_and_is_idempotent(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, b"one\r\n")
    maildir.deliver(tmp_path, b"two\r\n")
    first, second = maildir.pending(tmp_path)
    maildir.mark_processed(tmp_path, first)
    assert (tmp_path / "cur" / f"{first.key}:2,S").read_bytes() == b"one\r\n"
    assert maildir.pending(tmp_path) == [second]
    maildir.mark_processed(tmp_path, first)
    assert maildir.pending(tmp_path) == [second]
    everything = maildir.messages(tmp_path)
    assert [m.key for m in everything] == [first.key, second.key]
    assert [maildir.read(m) for m in everything] == [b"one\r\n", b"two\r\n"]
    assert everything[0].received_at == first.received_at


def test_mark_processed_accepts_a_message_another_client_already_flagged(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, b"one\r\n")
    (message,) = maildir.pending(tmp_path)
    os.rename(message.path, tmp_path / "cur" / f"{message.key}:2,RS")
    maildir.mark_processed(tmp_path, message)
    assert [m.key for m in maildir.messages(tmp_path)] == [message.key]


def test_mark_processed_of_a_vanished_message_is_an_error(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, b"one\r\n")
    (message,) = maildir.pending(tmp_path)
    message.path.unlink()
    with pytest.raises(MailError, match="neither new/ nor cur/"):
        maildir.mark_processed(tmp_path, message)


def test_a_crash_before_mark_processed_presents_the_message_again(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, RAW)
    (seen,) = maildir.pending(tmp_path)
    (again,) = maildir.pending(tmp_path)
    assert again == seen and maildir.read(again) == RAW


def test_missing_maildir_is_empty_and_a_plain_directory_is_refused(tmp_path: Path) -> None:
    assert maildir.pending(tmp_path / "not-yet") == []
    assert maildir.messages(tmp_path / "not-yet") == []
    (tmp_path / "plain").mkdir()
    with pytest.raises(MailError, match="not a Maildir"):
        maildir.pending(tmp_path / "plain")


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, b"one\r\n")
    (tmp_path / "new" / ".lock").write_bytes(b"")
    assert len(maildir.pending(tmp_path)) == 1


def test_read_of_a_vanished_message_is_a_mail_error(tmp_path: Path) -> None:
    maildir.deliver(tmp_path, b"one\r\n")
    (message,) = maildir.pending(tmp_path)
    message.path.unlink()
    with pytest.raises(MailError, match=message.key):
        maildir.read(message)


def test_delivery_into_an_unusable_place_is_a_mail_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocked"
    blocker.write_bytes(b"a file, not a directory")
    with pytest.raises(MailError, match="cannot deliver"):
        maildir.deliver(blocker, b"x\r\n")


def test_waiting_counts_what_pending_lists_without_looking_at_the_files(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    assert maildir.waiting(inbox) == 0
    for n in range(3):
        maildir.deliver(inbox, f"Subject: {n}\r\n\r\nbody\r\n".encode())
    maildir.mark_processed(inbox, maildir.pending(inbox)[0])
    assert maildir.waiting(inbox) == len(maildir.pending(inbox)) == 2
    (tmp_path / "plain").mkdir()
    with pytest.raises(MailError, match="is not a Maildir"):
        maildir.waiting(tmp_path / "plain")
