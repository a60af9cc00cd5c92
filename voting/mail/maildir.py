"""Maildir delivery and reading: the inbox of the embedded server, or of any local MTA.

Mail is never lost: a message stays in ``new/`` until the caller has committed
its raw bytes to the ledger and calls `mark_processed`; a crash in between
only presents the message again, and the ledger dedupes it by SHA-256.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from voting.errors import MailError
from voting.files import fsync_directory

_SUBDIRS = ("tmp", "new", "cur")
_PROCESSED_INFO = ":2,S"
_counter = itertools.count(1)


class IncomingMessage(NamedTuple):
    """One message of a Maildir.

    `received_at` is the file's modification time, in UTC: the delivering
    server sets it when it writes the message, so it is the server's receipt
    time (the one that decides whether a ballot was on time), not the sender's
    claim.
    """

    key: str
    path: Path
    received_at: datetime


def _host_part() -> str:
    """The host name as Maildir unique names spell it ('/' and ':' escaped)."""
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def _create(maildir: Path) -> None:
    """Made whole or not at all, so that a reader never finds the folder without its new/ and cur/."""
    if _is_maildir(maildir):
        return
    maildir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=maildir.parent, prefix=f".{maildir.name}."))
    for sub in _SUBDIRS:
        (staging / sub).mkdir(mode=0o700)
    try:
        staging.rename(maildir)
    except OSError:  # another process made it meanwhile, or an incomplete one is there already
        shutil.rmtree(staging, ignore_errors=True)
        for sub in _SUBDIRS:
            (maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)


def deliver(maildir: Path, raw: bytes) -> Path:
    """Store `raw` byte for byte as a new message; returns its path in ``new/``.

    The standard Maildir delivery: write under ``tmp/``, fsync, rename into
    ``new/``, so that a reader never sees a half-written message. The file's
    mtime is set to the delivery time at nanosecond precision, which orders
    messages delivered within one clock tick.
    """
    now_ns = time.time_ns()
    name = f"{now_ns // 1_000_000_000}.{os.getpid()}_{next(_counter)}.{_host_part()}"
    temporary = maildir / "tmp" / name
    final = maildir / "new" / name
    try:
        _create(maildir)
        _write(temporary, raw, now_ns)
        os.rename(temporary, final)
        fsync_directory(final.parent)
    except OSError as error:
        _discard(temporary)
        raise MailError(f"cannot deliver into Maildir {maildir}: {error.strerror or error}") from error
    return final


def with_unix_line_ends(raw: bytes) -> bytes:
    """The message as Maildirs hold it for mail clients: each CRLF a LF (a lone CR stays, as it is content)."""
    return raw.replace(b"\r\n", b"\n")


def _write(path: Path, raw: bytes, mtime_ns: int) -> None:
    """Write a new file and get it to the disk; it must not exist yet."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        os.utime(fd, ns=(mtime_ns, mtime_ns))
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Remove a half-delivered file, so that tmp/ does not fill up with failures."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _is_maildir(maildir: Path) -> bool:
    return all((maildir / sub).is_dir() for sub in ("new", "cur"))


def _scan(directory: Path) -> list[IncomingMessage]:
    """The messages of one subdirectory; a file moved away while scanning is skipped, not an error."""
    found = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            found.append(
                IncomingMessage(
                    key=entry.name.split(":", 1)[0],
                    path=Path(entry.path),
                    received_at=datetime.fromtimestamp(stat.st_mtime, UTC),
                )
            )
    return found


def _made(maildir: Path) -> bool:
    """Whether the Maildir is there yet: one not created yet has had no mail so far; a folder that is no Maildir is
    an error."""
    if not maildir.exists():
        return False
    if not _is_maildir(maildir):
        raise MailError(f"{maildir} is not a Maildir (it needs new/ and cur/ subdirectories)")
    return True


def _list(maildir: Path, subdirs: tuple[str, ...]) -> list[IncomingMessage]:
    """Messages of `subdirs`, oldest first."""
    if not _made(maildir):
        return []
    try:
        found = [message for sub in subdirs for message in _scan(maildir / sub)]
    except OSError as error:
        raise MailError(f"cannot read Maildir {maildir}: {error.strerror or error}") from error
    return sorted(found, key=lambda message: (message.received_at, message.key))


def pending(maildir: Path) -> list[IncomingMessage]:
    """Messages not processed yet (in ``new/``), oldest first."""
    return _list(maildir, ("new",))


def waiting(maildir: Path) -> int:
    """How many messages are not processed yet: their names counted, no file opened nor looked at."""
    if not _made(maildir):
        return 0
    try:
        with os.scandir(maildir / "new") as entries:
            return sum(not entry.name.startswith(".") for entry in entries)
    except OSError as error:
        raise MailError(f"cannot read Maildir {maildir}: {error.strerror or error}") from error


def messages(maildir: Path) -> list[IncomingMessage]:
    """Every message, processed or not (``new/`` and ``cur/``), oldest first."""
    return _list(maildir, ("new", "cur"))


class MessageGone(MailError):
    """The message left ``new/`` after it was listed: another process took it in first."""


def read(message: IncomingMessage) -> bytes:
    """The exact bytes of the message; raises `MessageGone` when another reader moved it away meanwhile."""
    try:
        return message.path.read_bytes()
    except FileNotFoundError:
        raise MessageGone(f"message {message.key} was taken in by another process") from None
    except OSError as error:
        raise MailError(f"cannot read message {message.key}: {error.strerror or error}") from error


def mark_processed(maildir: Path, message: IncomingMessage) -> None:
    """Move the message from ``new/`` to ``cur/`` with the Seen flag.

    Call it only after the raw bytes are committed to the ledger. Calling it
    again for a message already moved does nothing.
    """
    source = maildir / "new" / message.key
    target = maildir / "cur" / f"{message.key}{_PROCESSED_INFO}"
    try:
        os.rename(source, target)
        fsync_directory(target.parent)
    except FileNotFoundError:
        if not _already_processed(maildir, message.key):
            raise MailError(f"message {message.key} is in neither new/ nor cur/ of {maildir}") from None
    except OSError as error:
        raise MailError(f"cannot mark message {message.key} processed: {error.strerror or error}") from error


def _already_processed(maildir: Path, key: str) -> bool:
    if (maildir / "cur" / f"{key}{_PROCESSED_INFO}").exists():
        return True
    try:
        with os.scandir(maildir / "cur") as entries:
            return any(entry.name.split(":", 1)[0] == key for entry in entries)
    except FileNotFoundError:
        return False
