"""Taking mail in (docs/design.md §2.1): raw bytes committed to the ledger before a message leaves the inbox."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from voting.errors import ConfigError, MailError
from voting.ledger import IncomingMessage, utc_text
from voting.mail import maildir
from voting.service.opening import Opening

if TYPE_CHECKING:
    from voting.mail.imap import ImapMailbox


STOP_CHECK_SECONDS = 0.5
"""How often a wait for mail looks at the stop flag, so that `voting serve` stops promptly."""


class Intake(Opening):
    fetched_through: datetime | None = None
    """When the latest complete fetch began: everything delivered before then is in the ledger."""

    def fetch(self) -> int:
        """Keep it raw first: commit the exact bytes, and only then take the message out of the inbox."""
        started = self.clock()
        if self.config.settings.mailbox.kind == "imap":
            stored, complete = self._fetch_imap()
        else:
            stored, complete = self._fetch_maildir(), True
        if complete:
            self.fetched_through = started
        return stored

    def _fetch_maildir(self) -> int:
        inbox = self.config.inbox
        stored = 0
        try:
            for message in maildir.pending(inbox):
                try:
                    raw = maildir.read(message)
                except maildir.MessageGone:
                    continue  # another process committed it before it moved it: nothing is lost
                result = self.ledger.store_message(raw, message.received_at, f"maildir:{message.key}", self.clock())
                maildir.mark_processed(inbox, message)
                stored += result.new
        except MailError as error:
            raise ConfigError(f"{self.config.path}: [mailbox]: {error}") from None
        return stored

    @cached_property
    def _imap(self) -> ImapMailbox:
        """The IMAP session, kept open across passes and reopened with backoff."""
        from voting.mail.imap import ImapMailbox, imap_settings

        return ImapMailbox(lambda: imap_settings(self.config))

    def _fetch_imap(self) -> tuple[int, bool]:
        """Fetch by UID past the checkpoint of (folder, UIDVALIDITY), a batch at a time; commit the batch's bytes
        and the checkpoint's advance in one transaction, then move the batch.

        One synchronous commit per batch, not per message, is what keeps
        taking mail in close to the cost of fetching it. A crash before the
        commit, or a batch that fails to commit, leaves the whole batch in
        the folder past the checkpoint, and the next pass fetches it again;
        the ledger's SHA-256 dedupe keeps once what an earlier pass had
        stored. A crash after the commit leaves the batch in the folder at or
        below the checkpoint, and the next pass moves it without fetching it
        again. A new UIDVALIDITY has no checkpoint, so the folder is read
        again in full under the same dedupe. Of several processes that
        fetched the same messages, only the one that advanced the checkpoint
        past them moves them, so each lands in the processed folder once. A
        server problem never stops the pass: it is logged, recorded for
        `voting status`, and the session is reopened with backoff.
        """
        from voting.mail.imap import ImapError, batches

        mailbox = self._imap
        name = mailbox.settings.folder
        stored = 0
        try:
            session = mailbox.session()
            if session is None:
                return 0, False
            folder = session.scan()
            done = self.ledger.checkpoint(name, folder.uidvalidity)
            session.mark_processed([uid for uid in folder.uids if uid <= done])
            for batch in batches([uid for uid in folder.uids if uid > done]):
                source = f"imap:{name}:{folder.uidvalidity}"
                incoming = [IncomingMessage(message.raw, message.received_at, f"{source}:{message.uid}")
                            for message in session.fetch(batch)]
                now = self.clock()
                with self.ledger.transaction():
                    new = sum(message.new for message in self.ledger.store_messages(incoming, now))
                    before = self.ledger.set_checkpoint(name, folder.uidvalidity, batch[-1], now)
                stored += new
                session.mark_processed([uid for uid in batch if uid > before])
        except ImapError as error:
            mailbox.failed()
            self.ledger.note_mailbox_error(mailbox.settings.label, str(error), self.clock())
            self.log(f"mailbox: {error}")
            return stored, False
        self.ledger.note_fetch(mailbox.settings.label, "connected", stored, self.clock())
        return stored, True

    def wait_for_mail(self, seconds: float, stop: threading.Event, delivered: threading.Event | None = None) -> None:
        """Between passes: IDLE on an IMAP mailbox (or wait for the next reconnect), else until `seconds` pass or
        `delivered` is set (by the embedded mail server, once a message is in the inbox), whichever comes first.

        `delivered` is cleared before the pass that follows, never after it: a
        message delivered during that pass ends the next wait at once.
        """
        if self.config.settings.mailbox.kind == "imap":
            self._imap.wait(seconds, stop)
            return
        if delivered is None:
            stop.wait(seconds)
            return
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if delivered.wait(min(left, STOP_CHECK_SECONDS)):
                break
        delivered.clear()

    def close_mailbox(self) -> None:
        if "_imap" in self.__dict__:
            self._imap.close()

    def _mailbox_status(self) -> dict[str, Any]:
        """The mailbox as the service last saw it: connection, last fetch and last error."""
        mailbox = self.config.settings.mailbox
        if mailbox.kind != "imap":
            waiting = maildir.waiting(self.config.inbox)
            return {"kind": mailbox.kind, "mailbox": str(self.config.inbox), "connection": "local",
                    "waiting": waiting}
        state = self.ledger.mailbox_status()
        if state is None:
            from voting.mail.imap import mailbox_label

            label = mailbox_label(mailbox.username, mailbox.host, mailbox.port, mailbox.folder)
            return {"kind": mailbox.kind, "mailbox": label, "connection": "not yet read", "since": None,
                    "last_fetch_at": None, "last_fetch_new": 0, "last_error": "", "last_error_at": None}
        return {
            "kind": mailbox.kind,
            "mailbox": state.mailbox,
            "connection": state.connection,
            "since": utc_text(state.since),
            "last_fetch_at": utc_text(state.last_fetch_at) if state.last_fetch_at else None,
            "last_fetch_new": state.last_fetch_new,
            "last_error": state.last_error,
            "last_error_at": utc_text(state.last_error_at) if state.last_error_at else None,
        }
