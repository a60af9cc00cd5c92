"""Outgoing mail written from templates: whatever the text, the message is 7-bit MIME that reads back as written."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import MIMEPart
from email.policy import SMTP, default

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voting import pki
from voting.mail.compose import Attachment, html_page, signed_mail, text_as_html
from voting.smime.verify import Trust, TrustedCertificate, verify_message

SENDER = "votes@secretariat.example"


@pytest.fixture(scope="module")
def signer() -> pki.Identity:
    ca = pki.create_ca("Compose CA", "Test")
    return pki.issue_signing_certificate(ca, common_name="Secretariat", emails=[SENDER], key_type="ec")


def as_email_writes(text: str, subtype: str = "plain") -> str:
    """The text as a reader gets it back from a part `email` itself wrote, the way outgoing mail was written before."""
    part = MIMEPart(policy=SMTP)
    part.set_content(text, subtype=subtype, charset="utf-8", cte="quoted-printable")
    return email.message_from_bytes(part.as_bytes(), policy=default).get_content()


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400) | st.sampled_from(
    ["", "=", ".", "From here\n", "trailing  \n\t\n", "x" * 300, "é" * 100 + " \n", "a\rb\r\nc\x0cd\n", "--=_alternative"]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, subject=texts.map(lambda s: " ".join(s.split())[:200]),
       name=st.sampled_from(["Secretariat", "Secrétariat du Conseil", "UN, Secretariat", 'The "Board"', ""]))
def test_any_text_reads_back_and_the_signature_holds(signer: pki.Identity, text: str, subject: str, name: str) -> None:
    now = datetime.now(UTC)
    mail = signed_mail(signer, sender=SENDER, sender_name=name, recipients=["fra@delegations.example"],
                       subject=subject, text=text, html_body=text_as_html(text), sent_at=now,
                       in_reply_to="<a@b.example>", references=["<a@b.example>"], auto_submitted="auto-replied")
    assert mail.raw.isascii()
    assert all(len(line) <= 998 for line in mail.raw.split(b"\r\n"))
    assert mail.raw.count(b"\n") == mail.raw.count(b"\r\n")
    trust = Trust(registered=(TrustedCertificate(signer.certificate, "secretariat"),))
    assert verify_message(mail.raw, trust, now).valid
    message = email.message_from_bytes(mail.raw, policy=default)
    assert not message.defects
    assert str(message["Subject"]) == subject
    assert message["From"].addresses[0].display_name == name
    assert message["Message-ID"] == mail.message_id
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content() == as_email_writes(text)
    assert html.get_content() == as_email_writes(html_page(subject, text_as_html(text)), "html")


def test_attachments_follow_the_text_under_the_signature(signer: pki.Identity) -> None:
    now = datetime.now(UTC)
    files = [Attachment("S-2026-1 révisé.pdf", "application/pdf", bytes(range(256)) * 10),
             Attachment("draft.txt", "text/plain", b"Draft resolution\n")]
    mail = signed_mail(signer, sender=SENDER, sender_name="Secretariat", recipients=["fra@delegations.example"],
                       subject="Ballot", text="Vote.\n", html_body="<p>Vote.</p>", sent_at=now, attachments=files)
    assert verify_message(mail.raw, Trust(registered=(TrustedCertificate(signer.certificate, "s"),)), now).valid
    message = email.message_from_bytes(mail.raw, policy=default)
    signed = next(message.iter_parts())
    found = [(p.get_filename(), p.get_content_type(), p.get_payload(decode=True)) for p in signed.walk()
             if p.get_filename()]
    assert found == [(f.file_name, f.media_type, f.content) for f in files]
    assert signed.get_body(("plain",)).get_content() == as_email_writes("Vote.\n")
