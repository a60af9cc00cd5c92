"""The secretariat's mailbox on an IMAP server (Exchange, Dovecot, Gmail), through imapclient.

This module only talks IMAP: it lists, fetches, moves and waits. What to
fetch and when a message may leave the folder is decided by the service,
which commits the raw bytes to the ledger first (docs/design.md §2.1, "Raw first").

- `ImapSession` is one authenticated connection: TLS per the configuration
  (implicit or STARTTLS, certificate verification always on, `ca_file` for a
  private CA), the folders created when missing, `BODY.PEEK[]` and
  `INTERNALDATE` fetched by UID in batches, MOVE where the server offers it,
  else COPY, flag `\\Deleted` and UID EXPUNGE of exactly those UIDs.
- `ImapMailbox` keeps a session open across passes and reconnects after a
  dropped connection or a server restart, with backoff.
- Waiting for mail uses IDLE when the server offers it (renewed well before
  the 29 minutes after which RFC 2177 lets a server drop an idle client), and
  plain waiting, so polling, otherwise.

The password is held only in `ImapSettings.password`, which is left out of
its repr, and is never part of an error message.
"""

from __future__ import annotations

import imaplib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, LoginError

from voting.config import Config
from voting.errors import MailError, VotingError
from voting.mail.tls import client_context

IDLE_RENEW_SECONDS = 25 * 60
"""Leave IDLE and enter it again after this long: under the 29-minute limit of RFC 2177."""
IDLE_CHECK_SECONDS = 0.5
"""How often an IDLE wait looks at the stop flag, so that `voting serve` stops promptly."""
BATCH_SIZE = 500
MAX_RECONNECT_SECONDS = 60.0


class ImapError(MailError):
    """The IMAP server could not be reached, refused us, or dropped the connection."""


@dataclass(frozen=True)
class ImapSettings:
    """Where the mailbox is and how to reach it. The password never appears in the repr."""

    host: str
    port: int
    tls: Literal["implicit", "starttls", "none"]
    username: str
    password: str = field(default="", repr=False)
    ca_file: str = ""
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True
    timeout: float = 30.0

    @property
    def where(self) -> str:
        return f"IMAP server {self.host} port {self.port}"

    @property
    def label(self) -> str:
        return mailbox_label(self.username, self.host, self.port, self.folder)


def mailbox_label(username: str, host: str, port: int, folder: str) -> str:
    """How status and logs name the mailbox: user, server and folder, never the password."""
    return f"imap://{username}@{host}:{port}/{folder}"


def imap_settings(config: Config) -> ImapSettings:
    mailbox = config.settings.mailbox
    return ImapSettings(
        host=mailbox.host,
        port=mailbox.port,
        tls=mailbox.tls,
        username=mailbox.username,
        password=config.secret("mailbox", "password"),
        ca_file=str(config.resolve(mailbox.ca_file)) if mailbox.ca_file else "",
        folder=mailbox.folder,
        processed_folder=mailbox.processed_folder,
        idle=mailbox.idle,
    )


@dataclass(frozen=True)
class FetchedMessage:
    """One message as the server holds it: its UID, exact bytes and the server's receipt time (UTC)."""

    uid: int
    raw: bytes
    received_at: datetime


@dataclass(frozen=True)
class FolderState:
    """The folder's UIDVALIDITY and the UIDs of every message in it, ascending."""

    uidvalidity: int
    uids: tuple[int, ...]


def batches(uids: Sequence[int], size: int = BATCH_SIZE) -> Iterator[Sequence[int]]:
    for start in range(0, len(uids), size):
        yield uids[start : start + size]


@contextmanager
def _translated(settings: ImapSettings, doing: str) -> Iterator[None]:
    """Every failure of the server or the network as one `ImapError` line that names what was being done."""
    try:
        yield
    except ImapError:
        raise
    except ssl.SSLCertVerificationError as error:
        raise ImapError(
            f"TLS certificate of {settings.where} not trusted: {error.verify_message}"
            " (set mailbox.ca_file to the CA that issued it)"
        ) from None
    except LoginError:
        raise ImapError(f"{settings.where} refused the login of user {settings.username!r}") from None
    except CapabilityError as error:
        raise ImapError(f"{settings.where} cannot {doing}: {error}") from None
    except (imaplib.IMAP4.error, OSError) as error:
        detail = str(error) or type(error).__name__
        raise ImapError(f"{settings.where}: {doing} failed: {detail}") from None


class ImapSession:
    """One logged-in connection with the folder selected."""

    def __init__(self, settings: ImapSettings) -> None:
        if settings.password and not settings.username:
            raise ImapError("mailbox.password is set but mailbox.username is empty")
        self.settings = settings
        self._client: IMAPClient | None = None

    def _context(self) -> ssl.SSLContext:
        return client_context(self.settings.ca_file, "mailbox.ca_file", ImapError)

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise ImapError(f"not connected to {self.settings.where}")
        return self._client

    def open(self) -> None:
        """Connect, secure, log in, create the folders when missing and select the inbox folder."""
        s = self.settings
        context = None if s.tls == "none" else self._context()
        with _translated(s, "connect"):
            client = IMAPClient(s.host, port=s.port, ssl=s.tls == "implicit", ssl_context=context, timeout=s.timeout)
        self._client = client
        try:
            client.normalise_times = False
            if s.tls == "starttls":
                with _translated(s, "STARTTLS"):
                    client.starttls(context)
            with _translated(s, "log in"):
                client.login(s.username, s.password)
            with _translated(s, "create the folders"):
                for folder in dict.fromkeys((s.folder, s.processed_folder)):
                    if not client.folder_exists(folder):
                        client.create_folder(folder)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            try:
                client.shutdown()
            except OSError:
                pass

    def scan(self) -> FolderState:
        """Select the folder afresh: its UIDVALIDITY and the UIDs of what it holds now."""
        with _translated(self.settings, f"select {self.settings.folder}"):
            selected = self.client.select_folder(self.settings.folder)
            uids = self.client.search("ALL")
        return FolderState(int(selected[b"UIDVALIDITY"]), tuple(sorted(int(uid) for uid in uids)))

    def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """The exact bytes and INTERNALDATE of these UIDs, without setting \\Seen; UIDs gone meanwhile are left out."""
        if not uids:
            return []
        with _translated(self.settings, "fetch messages"):
            response = self.client.fetch(list(uids), ["BODY.PEEK[]", "INTERNALDATE"])
        fetched = []
        for uid in sorted(response):
            data = response[uid]
            raw, received = data.get(b"BODY[]"), data.get(b"INTERNALDATE")
            if not isinstance(raw, bytes) or not isinstance(received, datetime):
                raise ImapError(f"{self.settings.where} answered a FETCH of UID {uid} without its body or date")
            moment = received if received.tzinfo else received.replace(tzinfo=UTC)
            fetched.append(FetchedMessage(int(uid), raw, moment.astimezone(UTC)))
        return fetched

    def mark_processed(self, uids: Sequence[int]) -> None:
        """Move these UIDs to the processed folder; call only once their bytes are committed.

        Another process on the same mailbox (a `voting serve` beside an
        operator's `poll --once`) may have moved some of them first, once it
        had committed them too: the server then refuses the whole move
        ([EXPUNGEISSUED]), and those still in the folder are moved again.
        """
        remaining = list(uids)
        with _translated(self.settings, f"move messages to {self.settings.processed_folder}"):
            while remaining:
                try:
                    self._move(remaining)
                    return
                except imaplib.IMAP4.error as error:
                    if "EXPUNGEISSUED" not in str(error):
                        raise
                    still = sorted(set(self.client.search(["UID", ",".join(map(str, remaining))])) & set(remaining))
                    if len(still) == len(remaining):
                        raise
                    remaining = still

    def _move(self, uids: list[int]) -> None:
        client, target = self.client, self.settings.processed_folder
        if client.has_capability("MOVE"):
            client.move(uids, target)
        else:
            client.copy(uids, target)
            client.add_flags(uids, [b"\\Deleted"], silent=True)
            if client.has_capability("UIDPLUS"):
                client.uid_expunge(uids)
            else:
                client.expunge()

    def can_idle(self) -> bool:
        return self.settings.idle and self.client.has_capability("IDLE")

    def idle(self, seconds: float, stop: threading.Event) -> bool:
        """Wait in IDLE up to `seconds` (at most `IDLE_RENEW_SECONDS`); True when the folder changed."""
        client = self.client
        deadline = time.monotonic() + min(seconds, IDLE_RENEW_SECONDS)
        with _translated(self.settings, "IDLE"):
            client.idle()
            changed = False
            try:
                while not changed and not stop.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    step = min(remaining, IDLE_CHECK_SECONDS)
                    started = time.monotonic()
                    responses = client.idle_check(timeout=step)
                    changed = any(not _is_keepalive(r) for r in responses)
                    if not responses and time.monotonic() - started < step / 2:
                        # imapclient returns nothing at once when the server closed the connection.
                        raise ImapError(f"{self.settings.where} closed the connection")
            finally:
                client.idle_done()
        return changed


def _is_keepalive(response: tuple[object, ...]) -> bool:
    return len(response) > 0 and response[0] == b"OK"


class ImapMailbox:
    """A session kept open across passes, reopened after failures with backoff (1 s, 2 s, 4 s, … 60 s).

    The settings are read again for each new session, so that a password
    file corrected meanwhile is used at the next reconnect, without a restart.
    """

    def __init__(self, settings: Callable[[], ImapSettings], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._read_settings = settings
        self.settings = settings()
        self._clock = clock
        self._session: ImapSession | None = None
        self._failures = 0
        self._retry_at = 0.0

    @property
    def connected(self) -> bool:
        return self._session is not None

    def session(self) -> ImapSession | None:
        """The open session, opening one when the backoff allows (None until then); raises `ImapError`.

        After an error, call `failed`: it drops the session and sets the time of the next attempt.
        """
        if self._session is not None:
            return self._session
        if self._retry_at > self._clock():
            return None
        try:
            self.settings = self._read_settings()
        except VotingError as error:  # a password file unreadable meanwhile: reported, and tried again later
            raise ImapError(str(error)) from None
        session = ImapSession(self.settings)
        session.open()
        self._session, self._failures = session, 0
        return session

    def failed(self) -> None:
        """Drop the session after an error; the next `session()` reconnects once the backoff has passed."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self._backoff()

    def _backoff(self) -> None:
        self._retry_at = self._clock() + min(2.0**self._failures, MAX_RECONNECT_SECONDS)
        self._failures += 1

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def wait(self, seconds: float, stop: threading.Event) -> None:
        """Until mail may have arrived, `seconds` passed or `stop` is set: IDLE if possible, else a plain wait."""
        session = self._session
        if session is None:
            stop.wait(max(0.0, min(seconds, self._retry_at - self._clock())))
            return
        try:
            if session.can_idle():
                session.idle(seconds, stop)
                return
        except ImapError:
            self.failed()
            return
        stop.wait(seconds)
