"""Outgoing mail: ballots, receipts, rejections and results, each S/MIME-signed by the secretariat.

Every message is a multipart/alternative (text and HTML) inside a
multipart/signed; the outer headers carry threading (Message-ID, In-Reply-To,
References) so that delegates' clients show a vote as one conversation.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime
from typing import NamedTuple, TYPE_CHECKING

if TYPE_CHECKING:
    from voting.pki import Identity


class Attachment(NamedTuple):
    """A file sent as it is, inside the signature: a draft resolution as the secretariat was given it."""

    file_name: str
    media_type: str
    content: bytes


class OutgoingMessage(NamedTuple):
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


def _quoted_printable(text: str) -> bytes:
    """The text as UTF-8 quoted-printable, CRLF, ending with a line break: 7-bit, no line over 76 octets.

    Lines are split where `email`'s `set_content` splits them (CR, LF, CRLF).
    """
    lines = text.encode("utf-8").splitlines()
    return binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True).replace(b"\n", b"\r\n")


def _text_part(subtype: str, text: str) -> bytes:
    return (f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
            .encode("ascii") + _quoted_printable(text))


def _attachment_part(attachment: Attachment) -> bytes:
    """One attached file, base64; `email` writes its headers, where a file name may need RFC 2231."""
    part = MIMEPart(policy=SMTP)
    maintype, _, subtype = attachment.media_type.partition("/")
    part.set_content(attachment.content, maintype=maintype, subtype=subtype or "octet-stream",
                     filename=attachment.file_name, cte="base64", disposition="attachment")
    return part.as_bytes(policy=SMTP)


def _multipart(subtype: str, parts: Sequence[bytes]) -> bytes:
    """A multipart entity of complete CRLF parts, under a boundary none of them holds."""
    while True:
        boundary = f"=_{subtype}_{secrets.token_hex(12)}"
        delimiter = f"--{boundary}".encode("ascii")
        if not any(delimiter in part for part in parts):
            break
    head = f'Content-Type: multipart/{subtype};\r\n boundary="{boundary}"\r\n\r\n'.encode("ascii")
    return head + b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts) + delimiter + b"--\r\n"


_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
"""A display name that needs neither quoting nor encoding (RFC 5322 atoms and single spaces)."""
MAX_HEADER_LINE = 78


def _header(name: str, value: str) -> bytes:
    """One header field, CRLF: printable ASCII words folded at their spaces, anything else as `email` writes it.

    `email`'s policy is what encodes (RFC 2047) and quotes; most of what the
    secretariat writes is plain ASCII, which it would only fold.
    """
    words = value.split(" ")
    if value.isascii() and value.isprintable() and "=?" not in value and all(words):
        lines, line = [], f"{name}:"
        for word in words:
            if len(line) + 1 + len(word) > MAX_HEADER_LINE and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        if all(len(line) <= MAX_HEADER_LINE for line in lines):
            return ("\r\n".join(lines) + "\r\n").encode("ascii")
    return SMTP.fold_binary(name, SMTP.header_factory(name, value))


def _from(display_name: str, address: str) -> str:
    if _ATEXT_PHRASE.fullmatch(display_name):
        return f"{display_name} <{address}>"
    return str(Address(display_name=display_name, addr_spec=address))


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
    The entities are written from fixed templates: the structure is always the
    same, and `email`'s generator cost ten times the signature.
    """
    content = _multipart("alternative", [_text_part("plain", text),
                                         _text_part("html", html_page(subject, html_body, language))])
    if attachments:
        content = _multipart("mixed", [content, *(_attachment_part(a) for a in attachments)])
    from voting.smime.sign import sign_entity  # here, so that a command that only reads the ledger starts without it

    signed = sign_entity(content, signer.key, signer.certificate, signer.chain)

    domain = sender.rpartition("@")[2]
    message_id = new_message_id(domain)
    fields = [
        ("From", _from(sender_name, sender)),
        ("To", ", ".join(recipients)),
        ("Subject", subject),
        ("Date", format_datetime(sent_at)),
        ("Message-ID", message_id),
        *([("In-Reply-To", in_reply_to)] if in_reply_to else []),
        *([("References", " ".join(references))] if references else []),
        ("Auto-Submitted", auto_submitted),
    ]
    return OutgoingMessage(message_id, b"".join(_header(name, value) for name, value in fields) + signed)
