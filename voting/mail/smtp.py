"""Sending mail over SMTP: one connection per batch, failures classed as permanent or transient.

The outbox retries transient failures and gives up on permanent ones, so the
classification is the point: 5xx is permanent, 4xx and anything on the way
(unreachable server, TLS trouble, a dropped connection) are transient.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from voting.config import is_loopback
from voting.errors import MailError, UsageError
from voting.mail.tls import client_context

_LINE_END = re.compile(rb"\r?\n")
_CLOSING = 421  # the server closes the connection after this reply
# Whitespace, controls and angle brackets would break or inject SMTP commands.
_UNSAFE_IN_ADDRESS = re.compile(r"[\s<>\x00-\x1f\x7f]")


class SendFailure(MailError):
    """A message could not be sent; `permanent` tells the outbox whether retrying can help."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


Tls = Literal["none", "starttls", "implicit"]


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send. The password never appears in the repr."""

    host: str
    port: int
    tls: Tls = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""
    timeout: float = 30.0


DEFAULT_PORTS: dict[Tls, int] = {"starttls": 587, "implicit": 465, "none": 25}


def relay_settings(relay: str, tls: Tls | None, username: str = "", password: str = "") -> SmtpSettings:
    """Settings for a relay given as HOST, HOST:PORT or [IPv6]:PORT.

    Without `tls`, STARTTLS, except to a loopback host (a local relay or
    tunnel), where none; without a port, the usual one for that TLS mode.
    """
    host, port_text = relay.strip(), None
    if host.startswith("["):
        host, closed, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":") if rest or not closed else None
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
    if not host:
        raise UsageError(f"--smtp {relay!r}: name the relay, as HOST or HOST:PORT")
    mode: Tls = tls or ("none" if is_loopback(host) else "starttls")
    if port_text is not None and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise UsageError(f"--smtp {relay!r}: the port must be a number from 1 to 65535")
    return SmtpSettings(host, int(port_text) if port_text else DEFAULT_PORTS[mode], mode, username, password)


def _check(settings: SmtpSettings) -> None:
    """Refuse settings that cannot work, or would send in clear over a network, before connecting."""
    if settings.tls not in ("none", "starttls", "implicit"):
        raise MailError(f"SMTP tls must be 'none', 'starttls' or 'implicit', not {settings.tls!r}")
    if settings.tls == "none" and not is_loopback(settings.host):
        raise MailError(
            f"SMTP without TLS is allowed only to a loopback host, not {settings.host!r}: set tls to 'starttls' or 'implicit'"
        )
    if settings.password and not settings.username:
        raise MailError("an SMTP password is set but no username")


def _failure(error: smtplib.SMTPResponseException, what: str) -> SendFailure:
    reply = error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else str(error.smtp_error)
    return SendFailure(f"{what}: {error.smtp_code} {reply}", permanent=500 <= error.smtp_code < 600, code=error.smtp_code)


def _refused(refused: dict[str, tuple[int, bytes]], what: str) -> SendFailure:
    """A failure naming each refused recipient with the server's answer."""
    details = "; ".join(f"{rcpt}: {code} {reply.decode('utf-8', 'replace')}" for rcpt, (code, reply) in refused.items())
    codes = [code for code, _ in refused.values()]
    return SendFailure(f"{what}: {details}", permanent=all(500 <= code < 600 for code in codes), code=codes[0])


class SmtpConnection:
    """One SMTP connection, opened on entering and reused for a batch of messages.

    If the server drops the connection, the send in progress fails as
    transient and the next send opens a new connection.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        _check(settings)
        self._settings = settings
        self._where = f"SMTP server {settings.host} port {settings.port}"
        self._smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return client_context(self._settings.ca_file, "smtp.ca_file")

    def _connect(self, context: ssl.SSLContext | None) -> smtplib.SMTP:
        settings = self._settings
        local = socket.gethostname()
        smtp: smtplib.SMTP
        if settings.tls == "implicit":
            smtp = smtplib.SMTP_SSL(
                settings.host, settings.port, local_hostname=local, timeout=settings.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, local_hostname=local, timeout=settings.timeout)
        try:
            if settings.tls == "starttls":
                smtp.ehlo()
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _open(self) -> smtplib.SMTP:
        context = None if self._settings.tls == "none" else self._context()
        try:
            return self._connect(context)
        except smtplib.SMTPNotSupportedError as error:
            raise SendFailure(f"{self._where} does not offer {error}", permanent=False) from None
        except smtplib.SMTPException as error:
            raise self._translate(error, "the connection (greeting, STARTTLS or login)") from None
        except ssl.SSLCertVerificationError as error:
            raise SendFailure(
                f"TLS certificate of {self._where} not trusted: {error.verify_message} (set ca_file to the CA that issued it)",
                permanent=False,
            ) from None
        except OSError as error:
            raise SendFailure(f"cannot connect to {self._where}: {error.strerror or error}", permanent=False) from None

    def _translate(self, error: smtplib.SMTPException, doing: str) -> SendFailure:
        if isinstance(error, smtplib.SMTPRecipientsRefused):
            return _refused(error.recipients, f"{self._where} refused every recipient")
        if isinstance(error, smtplib.SMTPResponseException):
            return _failure(error, f"{self._where} refused {doing}")
        if isinstance(error, smtplib.SMTPNotSupportedError):
            return SendFailure(f"{self._where} cannot take {doing}: {error}", permanent=True)
        return SendFailure(f"{self._where} failed while {doing}: {error}", permanent=False)

    def __enter__(self) -> SmtpConnection:
        self._smtp = self._open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except OSError:
                pass
        self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def send(self, envelope_from: str, recipients: Sequence[str], raw: bytes) -> None:
        """Send `raw` to `recipients`; raises `SendFailure` unless every recipient accepted it.

        Line ends are sent as CRLF (SMTP requires it); nothing else in the
        bytes changes. When some recipients were refused and others accepted,
        the failure is permanent: retrying would deliver twice to the others.
        A message that cannot be sent as given (no recipient, an address with
        spaces, controls or angle brackets) fails as permanent before any
        traffic, so that one bad message never holds up the rest of a batch.
        """
        if not recipients:
            raise SendFailure("a message needs at least one recipient", permanent=True)
        addresses = [envelope_from, *recipients]
        for address in addresses:
            if _UNSAFE_IN_ADDRESS.search(address):
                raise SendFailure(f"not a usable envelope address: {address!r}", permanent=True)
        options = [] if all(address.isascii() for address in addresses) else ["SMTPUTF8"]
        if self._smtp is None:
            self._smtp = self._open()
        try:
            refused = self._smtp.sendmail(
                envelope_from, list(recipients), _LINE_END.sub(b"\r\n", raw), mail_options=options
            )
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused, smtplib.SMTPNotSupportedError) as error:
            if getattr(error, "smtp_code", None) == _CLOSING:
                self._drop()
            raise self._translate(error, "the message") from None
        except OSError as error:  # smtplib.SMTPServerDisconnected among them
            self._drop()
            raise SendFailure(f"connection to {self._where} lost while sending: {error}", permanent=False) from None
        if refused:
            failure = _refused(refused, f"{self._where} refused some recipients (the others received the message)")
            raise SendFailure(str(failure), permanent=True, code=failure.code)

