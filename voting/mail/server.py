"""The embedded mail server: SMTP on the loopback interface, delivering into one Maildir per recipient.

It is the whole mail system of a one-machine deployment (the secretariat's
inbox and every delegation's inbox), so it accepts mail for any well-formed
address. It stores the raw bytes and answers at once; verifying and counting
happen later, in the pipeline that reads the Maildirs.

The secretariat's inbox keeps each message byte for byte, line ends included,
as the ledger records it. Every other Maildir is a delegation's, read by a mail
client: there, as any local delivery agent does, line ends are Unix ones (mutt
shows a carriage return as ^M). Signatures are unaffected: they are over the
canonical CRLF form, which every verifier restores first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax

from voting.errors import MailError
from voting.mail.maildir import deliver, with_unix_line_ends

log = logging.getLogger(__name__)

_ATOM = r"[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
# Deliberately narrower than RFC 5321: no quoted local parts, no '/', no
# address literals, ASCII only, because the address becomes a directory name.
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
_MAX_LOCAL_PART = 64
_MAX_ADDRESS = 254
_END_OF_DATA = b"\r\n.\r\n"
_DATA_BLOCK = 1 << 16


def is_plain_address(address: str) -> bool:
    """True for a ``local@domain`` address that is safe to use as a Maildir directory name."""
    local = address.rpartition("@")[0]
    return (
        len(address) <= _MAX_ADDRESS
        and len(local) <= _MAX_LOCAL_PART
        and _PLAIN_ADDRESS.fullmatch(address) is not None
    )


class _MailSMTP(SMTP):
    """aiosmtpd's SMTP, reading DATA in blocks, with lines of any length within the message size.

    aiosmtpd reads DATA a line at a time, a Python step per line: a message of
    millions of empty lines kept the server busy for half a minute, in the
    process that judges ballots. Here the lone dot that ends the data is
    searched for in blocks, and the dots that start lines are removed in one
    pass (RFC 5321 4.5.2). Real mail clients send lines longer than 1,000
    octets; refusing them would lose ballots and rewrapping them would break
    signatures. Command lines stay bounded by `line_length_limit`.
    """

    line_length_limit = 2**20

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Each reply leaves at once: Nagle's algorithm would hold a reply back until the client acknowledged the
        previous one (asyncio sets TCP_NODELAY only on sockets made with an explicit IPPROTO_TCP, which an accepted
        socket is not)."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._data()
        if content is None:
            await self.push("552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _data(self) -> bytes | None:
        """The data up to the lone dot, dots unstuffed; None when over the size limit (read to its end all the same)."""
        limit = self.data_size_limit or 0
        pending = bytearray(b"\r\n")  # the DATA line's own end: a lone dot at once ends an empty message
        searched = 0
        too_much = False
        while (end := pending.find(_END_OF_DATA, searched)) < 0:
            if limit and len(pending) > limit + len(_END_OF_DATA):
                too_much = True
                del pending[: -len(_END_OF_DATA)]  # the end may begin in what was kept
            searched = max(0, len(pending) - len(_END_OF_DATA) + 1)
            block = await self._reader.read(_DATA_BLOCK)
            if not block:
                raise asyncio.CancelledError("the client left in the middle of DATA")
            pending += block
        after = pending[end + len(_END_OF_DATA) :]
        if after:
            # Commands sent before the answer, which a client may not do as PIPELINING is not offered: they
            # go back to the reader, as aiosmtpd itself handles its buffer, to be read as commands.
            self._reader._buffer[:0] = after  # type: ignore[attr-defined]
        if too_much or end > limit > 0:
            return None
        return bytes(pending[: end + 2]).replace(b"\r\n.", b"\r\n")[2:]


class SocketController(Controller):
    """An aiosmtpd Controller that binds its listening socket itself, before starting.

    A taken port then fails at once with `MailError` (the stock Controller
    waits for its ready timeout), and port 0 picks a free port whose number
    is in `port` once `start` returns.
    """

    def __init__(self, handler: Any, *, hostname: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        kwargs.setdefault("server_hostname", socket.gethostname())
        super().__init__(handler, hostname=hostname, port=port, **kwargs)
        self._listener: socket.socket | None = None

    def factory(self) -> SMTP:
        return _MailSMTP(self.handler, **self.SMTP_kwargs)

    def _create_server(self) -> Any:
        assert self._listener is not None, "start() binds the listener first"
        return self.loop.create_server(self._factory_invoker, sock=self._listener, ssl=self.ssl_context)

    def start(self) -> None:
        try:
            family, _, _, _, address = socket.getaddrinfo(self.hostname, self.port, type=socket.SOCK_STREAM)[0]
            self._listener = socket.create_server(address[:2], family=family)
        except OSError as error:
            self.loop.close()
            raise MailError(f"cannot listen on {self.hostname} port {self.port}: {error.strerror or error}") from error
        self.port = self._listener.getsockname()[1]
        try:
            super().start()
        except Exception as error:
            self.stop(no_assert=True)
            self._listener.close()
            raise MailError(f"SMTP server on {self.hostname} port {self.port} did not start: {error}") from error


class _MaildirHandler:
    """aiosmtpd hooks: check recipients, then deliver the exact bytes received."""

    def __init__(self, server: MailServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not is_plain_address(address):
            return "553 5.1.3 Recipient address must be a plain local@domain address"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        try:
            if not isinstance(raw, bytes):
                raise TypeError("the SMTP server did not keep the original bytes")
            addresses = list(dict.fromkeys(recipient.lower() for recipient in envelope.rcpt_tos))
            for address in addresses:
                deliver(self._server.mailbox(address), self._server.stored_form(address, raw))
        except MailError as error:  # a full or failing disk: one line, and the sender tries again
            log.error("delivery from %r to %r failed: %s", envelope.mail_from, envelope.rcpt_tos, error)
            return "451 4.3.0 Local error in delivery, try again later"
        except Exception:
            log.exception("delivery from %r to %r failed", envelope.mail_from, envelope.rcpt_tos)
            return "451 4.3.0 Local error in delivery, try again later"
        if self._server.delivered is not None and self._server.inbox in addresses:
            self._server.delivered()
        return "250 Message accepted for delivery"

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return "451 4.3.0 Local error, try again later"


class MailServer:
    """SMTP server on 127.0.0.1 that delivers every accepted message into one Maildir per recipient address.

    With an `inbox` address, that Maildir receives the bytes exactly and the others with Unix line ends; without
    one, every Maildir receives the bytes exactly.

    A message for several recipients that fails for one of them is answered
    451 after the others were delivered; the sender's retry then delivers
    those again, which the ledger's SHA-256 dedupe absorbs.

    `delivered` is called, from the server's thread, once a message is in the
    `inbox` Maildir: `voting serve` then takes it in at once.
    """

    def __init__(
        self, root: Path, *, host: str = "127.0.0.1", port: int = 8025, max_message_bytes: int = 25 * 2**20,
        inbox: str | None = None, delivered: Callable[[], None] | None = None,
    ) -> None:
        self.root = root
        self.inbox = inbox.lower() if inbox else None
        self.delivered = delivered
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self._controller: SocketController | None = None

    def mailbox(self, address: str) -> Path:
        """The Maildir of `address` (lowercased), which the first delivery creates."""
        if not is_plain_address(address):
            raise MailError(f"not a plain local@domain address: {address!r}")
        return self.root / address.lower()

    def stored_form(self, address: str, raw: bytes) -> bytes:
        """The bytes delivered to `address`: exactly as received for the `inbox` (or everywhere, without one); with
        Unix line ends in the Maildir of every other address, the ones mail clients read."""
        return raw if self.inbox is None or address.lower() == self.inbox else with_unix_line_ends(raw)

    def start(self) -> None:
        """Listen; returns only once the server accepts connections."""
        if self._controller is not None:
            raise MailError(f"the mail server on {self.host} port {self.port} is already running")
        controller = SocketController(
            _MaildirHandler(self),
            hostname=self.host,
            port=self.port,
            data_size_limit=self.max_message_bytes,
            decode_data=False,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
