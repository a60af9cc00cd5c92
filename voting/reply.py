"""`voting reply`: a delegate's signed answer to a ballot, for when the mail client cannot sign.

The reply quotes the ballot (its Vote-ID and Ballot-Token bind the reply to
this vote and this delegation), states one choice per draft, and is signed
with the delegation's PKCS#12 identity, exactly as a mail client would.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.policy import SMTP, default
from email.utils import format_datetime, getaddresses, make_msgid

from voting.ballot import choice_word, text_of_entity
from voting.errors import UsageError
from voting.mail.compose import OutgoingMessage, message_id_in
from voting.model import Choice
from voting.pki import Identity, mailboxes
from voting.smime import sign_entity

DRAFT_LINE = re.compile(r"^(?P<symbol>\S+):\s*YES \| NO \| ABSTAIN\s*$", re.MULTILINE)


def parse_choice(word: str) -> Choice:
    choice = choice_word(word)
    if choice is None:
        raise UsageError(f"--vote {word!r}: say yes, no or abstain")
    return choice


def ballot_drafts(ballot_text: str) -> list[str]:
    """The draft symbols a ballot asks about, from its 'SYMBOL: YES | NO | ABSTAIN' lines."""
    return DRAFT_LINE.findall(ballot_text)


def reply_choices(drafts: list[str], votes: list[str]) -> dict[str, Choice]:
    """`--vote yes` answers every draft; `--vote SYMBOL=yes` answers one."""
    choices: dict[str, Choice] = {}
    for vote in votes:
        symbol, separator, word = vote.rpartition("=")
        if separator:
            if symbol not in drafts:
                raise UsageError(f"--vote {vote!r}: {symbol} is not on this ballot ({', '.join(drafts)})")
            choices[symbol] = parse_choice(word)
        else:
            choices.update({d: parse_choice(word) for d in drafts})
    if not choices:
        raise UsageError("give at least one --vote")
    return choices


def build_reply(
    ballot_raw: bytes,
    identity: Identity,
    votes: list[str],
    *,
    explanation: str = "",
    now: datetime,
) -> tuple[OutgoingMessage, str]:
    """The signed reply and the address it goes to (the ballot's sender)."""
    try:
        ballot = BytesParser(policy=default).parsebytes(ballot_raw)
    except Exception as error:  # noqa: BLE001 - any parse failure is the same user mistake
        raise UsageError(f"the ballot could not be read as an email: {error}") from None
    ballot_text = text_of_entity(ballot_raw)
    drafts = ballot_drafts(ballot_text)
    if "Ballot-Token:" not in ballot_text or not drafts:
        raise UsageError("this email is not a ballot: it has no Ballot-Token line or no draft to vote on")
    choices = reply_choices(drafts, votes)
    own = mailboxes(identity.certificate)
    if not own:
        raise UsageError("the certificate in the PKCS#12 file names no email address")
    senders = [a for _, a in getaddresses([str(ballot.get("From", ""))]) if a]
    if len(senders) != 1:
        raise UsageError("the ballot's From header does not name one address to reply to")

    lines = [f"VOTE: {choices[drafts[0]].upper()}"] if len(drafts) == 1 else [
        f"{symbol}: {choice.upper()}" for symbol, choice in choices.items()
    ]
    if explanation.strip():
        lines.extend(["", explanation.strip()])
    lines.extend(["", f"On {ballot.get('Date', 'the ballot')}, {senders[0]} wrote:"])
    lines.extend(f"> {line}" if line else ">" for line in ballot_text.splitlines())
    content = MIMEPart(policy=SMTP)
    content.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    signed = sign_entity(content.as_bytes(policy=SMTP), identity.key, identity.certificate, identity.chain)

    message_id = make_msgid(domain=own[0].rpartition("@")[2])
    headers = EmailMessage(policy=SMTP)
    headers["From"] = Address(addr_spec=own[0])
    headers["To"] = senders[0]
    subject = str(ballot.get("Subject", "Ballot"))
    headers["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    headers["Date"] = format_datetime(now)
    headers["Message-ID"] = message_id
    ballot_id = message_id_in(str(ballot.get("Message-ID", "")))
    if ballot_id:
        headers["In-Reply-To"] = ballot_id
        headers["References"] = ballot_id
    head = b"".join(headers.policy.fold_binary(k, v) for k, v in headers.items())
    return OutgoingMessage(message_id, head + signed), senders[0]
