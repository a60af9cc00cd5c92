"""Outgoing mail: ballots, receipts, rejections and results, each S/MIME-signed by the secretariat.

Every message is a multipart/alternative (text and HTML) inside a
multipart/signed; the outer headers carry threading (Message-ID, In-Reply-To,
References) so that delegates' clients show a vote as one conversation.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime

from voting.pki import Identity
from voting.smime.sign import sign_entity


@dataclass(frozen=True)
class Attachment:
    """A file sent as it is, inside the signature: a draft resolution as the secretariat was given it."""

    file_name: str
    media_type: str
    content: bytes


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    raw: bytes


MESSAGE_ID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")


def message_id_in(value: str | None) -> str | None:
    """The first well-formed `<id@host>` in a header value, for threading; None when there is none.

    Outer headers come from anyone: a folded or odd value must never reach an
    outgoing header as it is.
    """
    found = MESSAGE_ID.search(value or "")
    return found.group(0) if found else None


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_hex(16)}@{domain}>"


def html_page(title: str, body_html: str, language: str = "en") -> str:
    """A self-contained HTML alternative in `language` (for screen readers and hyphenation): inline style only, no
    external resources."""
    return (
        f"<!DOCTYPE html><html lang=\"{html.escape(language)}\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title></head>"
        "<body style=\"font-family: sans-serif; max-width: 46em; margin: 1em auto; padding: 0 1em\">"
        f"{body_html}</body></html>"
    )


def text_as_html(text: str) -> str:
    # overflow-wrap breaks a SHA-256 on a phone's 390 px instead of scrolling the whole letter sideways.
    style = "white-space: pre-wrap; overflow-wrap: anywhere; font-family: monospace"
    return f"<pre style=\"{style}\">{html.escape(text)}</pre>"


def signed_mail(
    signer: Identity,
    *,
    sender: str,
    sender_name: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    html_body: str,
    sent_at: datetime,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    auto_submitted: str = "auto-generated",
    attachments: Sequence[Attachment] = (),
    language: str = "en",
) -> OutgoingMessage:
    """Build one signed message; the content is 7-bit, CRLF, so no relay can change a signed byte.

    `auto_submitted` (RFC 3834: "auto-generated", or "auto-replied" for an
    answer to a message) keeps vacation responders from answering.
    `attachments` follow the text and HTML, base64, under the same signature.
    """
    content = MIMEPart(policy=SMTP)
    content.set_content(text, charset="utf-8", cte="quoted-printable")
    content.add_alternative(html_page(subject, html_body, language), subtype="html", charset="utf-8",
                            cte="quoted-printable")
    for attachment in attachments:
        maintype, _, subtype = attachment.media_type.partition("/")
        content.add_attachment(attachment.content, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.file_name, cte="base64")
    signed = sign_entity(content.as_bytes(policy=SMTP), signer.key, signer.certificate, signer.chain)

    domain = sender.rpartition("@")[2]
    message_id = new_message_id(domain)
    headers = EmailMessage(policy=SMTP)
    headers["From"] = Address(display_name=sender_name, addr_spec=sender)
    headers["To"] = ", ".join(recipients)
    headers["Subject"] = subject
    headers["Date"] = format_datetime(sent_at)
    headers["Message-ID"] = message_id
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = " ".join(references)
    headers["Auto-Submitted"] = auto_submitted
    header_bytes = b"".join(
        headers.policy.fold_binary(name, value) for name, value in headers.items()
    )
    return OutgoingMessage(message_id, header_bytes + signed)
