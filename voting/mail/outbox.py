"""The outbox: queued mail in the ledger, sent over one SMTP connection, retried with backoff.

Design, so that no message is lost and none is shown twice:

- Every message is queued in the ledger, bytes and Message-ID included, in
  the transaction of the decision it announces; the bytes are signed once,
  at queueing, and never rebuilt.
- A pass opens one connection (STARTTLS or implicit TLS, AUTH) for all the
  messages due, and sends them one at a time, each claimed first in a
  transaction of its own (BEGIN IMMEDIATE): a message another process
  claimed or sent is left to it, so any number of processes (`voting
  serve`, an operator's `poll --once`, overlapping cron passes) send each
  message once. Each message's outcome is committed on its own right after
  the server's answer: sent on 250; failed for good on a 5xx (kept with the
  server's reply, shown by `voting status`); on a 4xx or a dropped
  connection, queued again after a per-message backoff of 10 s, 20 s,
  40 s, … up to an hour.
- A crash between the server's 250 and that commit can therefore leave at
  most one message (the one in flight) unrecorded. Its claim runs out after
  ten minutes (`CLAIM`); a pass then sends it again, byte for byte with the
  same Message-ID, and mail clients, which thread and deduplicate by
  Message-ID, show it once. That is the only case in which a message goes
  out twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from voting.config import Config
from voting.errors import MailError
from voting.ledger import Ledger
from voting.mail.smtp import SendFailure, SmtpConnection, SmtpSettings

MAX_BACKOFF = timedelta(hours=1)
CLAIM = timedelta(minutes=10)
"""How long a message claimed by one pass is left to it: far longer than one send (each SMTP step times out
after 30 s). Only a pass that dies while sending leaves its message claimed; it is sent again after this."""


def backoff(attempts: int) -> timedelta:
    """Wait before the next try: 10 s, 20 s, 40 s, … up to an hour."""
    return min(timedelta(seconds=10 * 2 ** max(attempts, 0)), MAX_BACKOFF)


def smtp_settings(config: Config) -> SmtpSettings:
    smtp = config.settings.smtp
    return SmtpSettings(
        host=smtp.host,
        port=smtp.port,
        tls="none" if smtp.kind == "embedded" else smtp.tls,
        username=smtp.username,
        password=config.secret("smtp", "password"),
        ca_file=str(config.resolve(smtp.ca_file)) if smtp.ca_file else "",
    )


def drain(ledger: Ledger, config: Config, clock: Callable[[], datetime]) -> tuple[int, int]:
    """Send what is due, each message claimed first; returns (sent, failed this pass).

    Never raises for a mail server's trouble.
    """
    due = ledger.due_mail(clock())
    if not due:
        return 0, 0
    sent = failed = 0
    waiting = iter(due)
    try:
        with SmtpConnection(smtp_settings(config)) as connection:
            for mail in waiting:
                if not ledger.claim_mail(mail.id, clock(), clock() + CLAIM):
                    continue
                try:
                    connection.send(mail.envelope_from, mail.recipients, mail.raw)
                except SendFailure as failure:
                    ledger.mark_attempt_failed(
                        mail.id, str(failure), permanent=failure.permanent,
                        retry_at=clock() + backoff(mail.attempts),
                    )
                    failed += 1
                    if failure.code is None and not failure.permanent:
                        # The connection is gone: the rest wait for a later pass, not each for a timeout now.
                        raise
                    continue
                ledger.mark_sent(mail.id, clock())
                sent += 1
    except SendFailure as failure:
        for mail in waiting:
            if ledger.claim_mail(mail.id, clock(), clock()):
                ledger.mark_attempt_failed(mail.id, str(failure), permanent=False,
                                           retry_at=clock() + backoff(mail.attempts))
                failed += 1
    except MailError as error:
        raise MailError(f"{config.path}: [smtp]: {error}") from None
    return sent, failed
