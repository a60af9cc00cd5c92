"""`voting reply`: a delegate's signed answer to a ballot, for when the mail client cannot sign.

The reply quotes the ballot (its Vote-ID and Ballot-Token bind the reply to
this vote and this delegation), states one choice per draft, and is signed
with the delegation's PKCS#12 identity, exactly as a mail client would.

What it signs comes only from the delegate and from the ballot's signed
content, after the ballot's signature is checked against the secretariat's
certificate: outer headers are anyone's to edit on the way, and a line break
hidden in them would otherwise put words into a signed reply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage, Message, MIMEPart
from email.parser import BytesParser
from email.policy import SMTP, default
from email.utils import format_datetime, getaddresses, make_msgid

from cryptography import x509
from cryptography.x509.oid import NameOID

from voting.ballot import choice_word, reply_binding, text_of_entity
from voting.config import Config
from voting.errors import UnverifiedError, UsageError
from voting.mail.compose import OutgoingMessage, message_id_in
from voting.model import Choice
from voting.pki import SIGNER_CERTIFICATE, Identity, is_ca, mailboxes, read_certificate
from voting.smime.sign import sign_entity
from voting.smime.verify import Trust, TrustedCertificate, Verification, verify_message
from voting.times import parse_readable_time, readable_time

DRAFT_LINE = re.compile(r"^(?P<symbol>\S+):\s*(?:YES \| NO \| ABSTAIN|\[ \] OBJECT)\s*$", re.MULTILINE)
"""A ballot's line for a draft: the choices offered, or under the silence procedure the box to object."""
DELEGATION_LINE = re.compile(r"^Delegation: (?P<code>\S+) \((?P<name>.*)\)$", re.MULTILINE)
CLOSES_LINE = re.compile(r"^Closes: (?P<when>.+)$", re.MULTILINE)


def parse_choice(word: str) -> Choice:
    choice = choice_word(word)
    if choice is None:
        raise UsageError(f"--vote {word!r}: say yes, no or abstain")
    return choice


def ballot_drafts(ballot_text: str) -> list[str]:
    """The draft symbols a ballot asks about, from its 'SYMBOL: YES | NO | ABSTAIN' (or '[ ] OBJECT') lines."""
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


@dataclass(frozen=True)
class Secretariat:
    """Whom a ballot must come from: the secretariat's signing certificate, or its CA and the secretariat's address.

    Delegations hold certificates of the same CA, so the CA alone cannot tell
    the secretariat from a delegation: with it, the address is required.
    """

    certificate: x509.Certificate
    address: str | None = None

    @classmethod
    def of_deployment(cls, config: Config) -> Secretariat:
        """The configured deployment's signing certificate and address (no private key is read)."""
        return cls(read_certificate(config.keys_dir / SIGNER_CERTIFICATE), config.settings.secretariat.address)


def authentic_ballot(ballot_raw: bytes, secretariat: Secretariat, now: datetime) -> Verification:
    """The ballot's verification, if it is signed by the secretariat and sent from its address; else refused."""
    issuer = is_ca(secretariat.certificate)
    if issuer and secretariat.address is None:
        raise UsageError("with the secretariat's CA certificate, give the secretariat's address too "
                         "(--secretariat-address), or give its signing certificate secretariat.pem instead")
    trust = (
        Trust(anchors=(secretariat.certificate,))
        if issuer
        else Trust(registered=(TrustedCertificate(secretariat.certificate, owner="secretariat"),),
                   anchors_admit_unregistered=False)
    )
    verification = verify_message(ballot_raw, trust, now)
    who = secretariat.certificate.subject.rfc4514_string()
    if not verification.valid:
        reason = verification.detail or (verification.reason.describe() if verification.reason
                                         else "it is not validly signed")
        raise UnverifiedError(f"this ballot is not signed by the secretariat ({who}), so no reply is signed: {reason}")
    sender = (verification.from_address or "").lower()
    if issuer and sender != (secretariat.address or "").lower():
        raise UnverifiedError(f"this ballot is not signed by the secretariat ({secretariat.address}) but by "
                              f"{verification.from_address}, so no reply is signed")
    return verification


_UNSAFE = frozenset({"Cc", "Zl", "Zp"})
_REORDERING = re.compile("[\u202a-\u202e\u2066-\u2069]")


def printable_lines(text: str) -> list[str]:
    """The text's lines, split only at line feeds, without control, line- or paragraph-separator characters.

    A vertical tab, form feed, NEL, U+2028 or U+2029 is a line break to some
    readers (Python's own `splitlines` among them): left in a quoted line, it
    would start an unquoted one there. Tabs become spaces; bidirectional
    overrides, which make a line display other than it reads, go too.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    return [
        "".join(c for c in _REORDERING.sub("", line.replace("\t", " ")) if unicodedata.category(c) not in _UNSAFE)
        for line in lines
    ]


@dataclass(frozen=True)
class BallotFacts:
    """What the ballot's signed text says about whom it is for and until when."""

    vote_id: str
    delegation_code: str
    delegation_name: str
    closes: datetime
    drafts: list[str]


def ballot_facts(ballot_text: str) -> BallotFacts:
    """The binding block of a ballot's signed text; refused unless it has every line a ballot carries."""
    vote_id = reply_binding(ballot_text).vote_id
    delegation = DELEGATION_LINE.search(ballot_text)
    closes = CLOSES_LINE.search(ballot_text)
    drafts = ballot_drafts(ballot_text)
    if vote_id is None or "Ballot-Token:" not in ballot_text or not drafts or delegation is None or closes is None:
        raise UsageError("this email is not a ballot: it lacks a Vote-ID, Ballot-Token, Delegation or Closes line, "
                         "or a draft to vote on")
    try:
        closes_at = parse_readable_time(closes.group("when"))
    except ValueError as error:
        raise UsageError(f"this ballot's Closes line cannot be read: {error}") from None
    return BallotFacts(vote_id, delegation.group("code"), delegation.group("name"), closes_at, drafts)


def check_key_is_for(certificate: x509.Certificate, facts: BallotFacts, ballot_recipients: list[str]) -> None:
    """Refuse a key of another delegation: its addresses must include one the ballot went to, or its name must end
    with the ballot's "(CODE)", as the secretariat's certificates do.

    The service would reject such a reply anyway (its ballot token is not the signer's); refusing here tells the
    delegate before anything is signed or sent.
    """
    own = mailboxes(certificate)
    names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if set(own) & {address.lower() for address in ballot_recipients}:
        return
    if any(name.endswith(f"({facts.delegation_code})") for name in names):
        return
    key = ", ".join([*own, *names]) or "no address or name"
    sent_to = f", sent to {', '.join(ballot_recipients)}" if ballot_recipients else ""
    raise UsageError(f"this ballot is for {facts.delegation_code} ({facts.delegation_name}){sent_to}, but the "
                     f"certificate in the PKCS#12 file is for {key}: sign your own delegation's ballot with its key")


def check_still_open(facts: BallotFacts, now: datetime) -> None:
    """Refuse once the ballot's closing time has passed: a choice received after it is not counted.

    The Closes line leaves out fractions of a second, so the vote is surely closed only a second after it.
    """
    if now >= facts.closes + timedelta(seconds=1):
        raise UsageError(f"vote {facts.vote_id} closed on {readable_time(facts.closes)} (the ballot's Closes line), so "
                         "a reply now is not counted and nothing was signed; if the secretariat moved the deadline, or "
                         "to send an explanation of vote after the close, give --after-close")


def _outer_header(message: Message, name: str) -> str:
    """An outer header of the ballot, for the reply's own headers only (never its signed text); "" if unreadable."""
    try:
        return str(message.get(name, ""))
    except Exception:  # noqa: BLE001 - a malformed header is one that is not there
        return ""


@dataclass(frozen=True)
class ReceivedBallot:
    """A ballot whose signature by the secretariat was checked: its signed text and what it says, and the outer
    headers a reply takes up (never into its signed text)."""

    text: str
    facts: BallotFacts
    secretariat_address: str
    recipients: list[str]
    subject: str
    message_id: str | None


def read_ballot(ballot_raw: bytes, secretariat: Secretariat, now: datetime) -> ReceivedBallot:
    """The ballot, if the secretariat signed it; refused otherwise, or when it is not a ballot."""
    verification = authentic_ballot(ballot_raw, secretariat, now)  # first: it reads any mail within bounds
    try:
        ballot = BytesParser(policy=default).parsebytes(ballot_raw, headersonly=True)
    except Exception as error:  # noqa: BLE001 - any parse failure is the same user mistake
        raise UsageError(f"the ballot could not be read as an email: {error}") from None
    assert verification.signed_content is not None and verification.from_address is not None
    text = "\n".join(printable_lines(text_of_entity(verification.signed_content))).strip("\n")
    return ReceivedBallot(
        text, ballot_facts(text), verification.from_address,
        [address for _, address in getaddresses(printable_lines(_outer_header(ballot, "To"))) if "@" in address],
        " ".join("".join(printable_lines(_outer_header(ballot, "Subject"))).split())[:200] or "Ballot",
        message_id_in(_outer_header(ballot, "Message-ID")),
    )


def check_reply_is_due(ballot: ReceivedBallot, certificate: x509.Certificate, now: datetime, *,
                       after_close: bool = False) -> None:
    """What a delegate's tool checks before signing: the key is for the ballot's delegation, the ballot still open."""
    check_key_is_for(certificate, ballot.facts, ballot.recipients)
    if not after_close:
        check_still_open(ballot.facts, now)


@dataclass(frozen=True)
class SignedReply:
    """The signed reply, the address it goes to (the secretariat's, from which the ballot verifiably came), and what
    it says, for the delegate to read back."""

    message: OutgoingMessage
    to: str
    facts: BallotFacts
    choices: dict[str, Choice]
    explanation: str


def sign_reply(ballot: ReceivedBallot, identity: Identity, votes: list[str], *, explanation: str = "",
               now: datetime) -> SignedReply:
    """The reply quoting the ballot's signed text, signed with `identity`, to the secretariat's address."""
    facts = ballot.facts
    drafts, vote_id = facts.drafts, facts.vote_id
    own = mailboxes(identity.certificate)
    if not own:
        raise UsageError("the certificate in the PKCS#12 file names no email address")
    choices = reply_choices(drafts, votes)

    lines = [f"VOTE: {choices[drafts[0]].upper()}"] if len(drafts) == 1 else [
        f"{symbol}: {choice.upper()}" for symbol, choice in choices.items()
    ]
    written = "\n".join(printable_lines(explanation)).strip()
    if written:
        lines.extend(["", "Explanation:", written])
    lines.extend(["", f"The ballot of {vote_id} reads:"])
    lines.extend(f"> {line}" if line else ">" for line in ballot.text.split("\n"))
    content = MIMEPart(policy=SMTP)
    content.set_content("\n".join(lines) + "\n", charset="utf-8", cte="quoted-printable")
    signed = sign_entity(content.as_bytes(policy=SMTP), identity.key, identity.certificate, identity.chain)

    message_id = make_msgid(domain=own[0].rpartition("@")[2])
    headers = EmailMessage(policy=SMTP)
    headers["From"] = Address(addr_spec=own[0])
    headers["To"] = ballot.secretariat_address
    headers["Subject"] = ballot.subject if ballot.subject.lower().startswith("re:") else f"Re: {ballot.subject}"
    headers["Date"] = format_datetime(now)
    headers["Message-ID"] = message_id
    if ballot.message_id:
        headers["In-Reply-To"] = ballot.message_id
        headers["References"] = ballot.message_id
    head = b"".join(headers.policy.fold_binary(k, v) for k, v in headers.items())
    return SignedReply(OutgoingMessage(message_id, head + signed), ballot.secretariat_address, facts, choices, written)


def build_reply(
    ballot_raw: bytes,
    identity: Identity,
    votes: list[str],
    *,
    secretariat: Secretariat,
    explanation: str = "",
    now: datetime,
) -> SignedReply:
    """A reply to a ballot the secretariat signed, signed with `identity`, whoever's and whenever it is (the checks a
    delegate's tool makes first are `check_reply_is_due`)."""
    return sign_reply(read_ballot(ballot_raw, secretariat, now), identity, votes, explanation=explanation, now=now)
