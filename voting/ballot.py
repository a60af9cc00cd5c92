"""Ballots: the text a delegation receives, and what its signed reply says.

Pure: strings and bytes in, values out. A reply is read the way a person
reads it: the delegate's own lines carry the choices and the explanation of
vote; the quoted ballot (with ">" or below an Outlook "Original Message"
header) only binds the reply to the vote through its Vote-ID and Ballot-Token.
"""

from __future__ import annotations

import base64
import hashlib
import email.errors
import html
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import collapse_rfc2231_value
from functools import cached_property, lru_cache
from html.parser import HTMLParser
from types import MappingProxyType

from voting.errors import UsageError
from voting.mime import Part, crlf, decode_transfer, parts
from voting.model import CODE_PATTERN, Choice
from voting.reasons import Reason, Rejected
from voting.times import readable_time
from voting.wording import ENGLISH, Wording

TEXT_LIMIT = 1 << 20
"""Characters of text read from a reply; anything beyond is ignored."""
HTML_LIMIT = 256 << 10
"""Characters of HTML read from a reply that has no plain text; Python's HTML parser costs a step per tag."""
LINE_LIMIT = 20_000
"""Lines of text read from a reply (a statement of fifty pages has fewer); each costs the reply grammar a step."""

_WORDS: dict[Choice, tuple[str, ...]] = {
    Choice.YES: (
        "yes", "in favour", "in favor", "for", "aye", "approve",
        "pour", "oui", "en faveur",
        "a favor", "sí", "si",
        "за", "да",
        "赞成", "贊成", "同意",
        "نعم", "موافق",
    ),
    Choice.NO: (
        "no", "against", "nay", "object", "objection", "i object",
        "contre", "non", "je m'oppose", "opposition",
        "en contra", "objeción", "objecion", "me opongo",
        "против", "нет", "возражаю", "возражение",
        "反对", "反對", "异议", "異議",
        "لا", "ضد", "أعترض", "اعتراض",
    ),
    Choice.ABSTAIN: (
        "abstain", "abstention",
        "je m'abstiens",
        "abstención", "abstencion", "me abstengo",
        "воздержался", "воздержалась", "воздерживаюсь", "воздержание",
        "弃权", "棄權",
        "امتناع", "ممتنع", "امتناع عن التصويت",
    ),
}  # fmt: skip

CHOICE_WORDS: Mapping[str, Choice] = MappingProxyType(
    {unicodedata.normalize("NFC", word).casefold(): choice for choice, words in _WORDS.items() for word in words}
)
"""Words for each choice in the six UN languages; keys are NFC and casefolded, and so must lookups be."""

_VOTE_KEYS = frozenset({"vote", "voto", "голос", "投票", "تصويت"})
"""'VOTE: YES' in each language: a choice that names no draft, valid when the ballot has one."""

_EXPLANATION_KEYS = frozenset({
    "explanation", "explanation of vote",
    "explication", "explication de vote",
    "explicación", "explicacion", "explicación de voto", "explicacion de voto",
    "объяснение", "объяснение голосования", "объяснение мотивов голосования",
    "解释", "解释性发言", "解釋", "解釋性發言",
    "تعليل", "تعليل التصويت", "شرح", "شرح التصويت",
})  # fmt: skip
"""'Explanation:' in each language: the line that opens the explanation of vote, the only text published."""

_REQUEST_WORDS = (
    "bulletin de vote", "bulletin",
    "ballot",
    "papeleta de votación", "papeleta de votacion", "papeleta",
    "избирательный бюллетень", "бюллетень",
    "选票", "選票",
    "ورقة الاقتراع", "بطاقة الاقتراع",
)  # fmt: skip
"""'BALLOT' in each language, the longer phrases first: a line of its own asks for the ballot again."""
_REQUEST_STARTS = frozenset(word[0] for word in _REQUEST_WORDS)
"""How a request line starts, casefolded: casefolding goes character by character, so a line whose first
character folds to none of these starts with none of the words, and is passed over at once."""

_LINE_LIMIT = 1000
"""Longer lines are never choice or binding lines: they are only kept as explanation."""

_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_QUOTE_PREFIX = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_BINDING = re.compile(r"(vote-id|ballot-token)\s*[:：]\s*([A-Za-z0-9._+/=-]+)", re.IGNORECASE)
_VOTE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_TOKEN = re.compile(r"[A-Za-z0-9_+/=-]{16,128}")
_BOX = re.compile(r"\[\s*([xX✓✔×])?\s*\]\s*([^\[\]|]*)")
_EDGE_MARKS = " \t*_\"'“”«».,;!。！，、،؛"
_ATTRIBUTION = re.compile(
    r"(wrote|writes|reads|a écrit|escribió|schrieb|написал|написала|написал\(а\)|пишет|写道|寫道|كتب)\s*[:：]$", re.IGNORECASE
)
_ATTRIBUTION_OPENER = re.compile(r"^(on|le|el|am|в|在|في)\s", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"^-{2,}\s*(original message|forwarded message|message d'origine|message transféré|mensaje original|"
    r"mensaje reenviado|исходное сообщение|пересылаемое сообщение|原始邮件|原始郵件|الرسالة الأصلية|"
    r"ursprüngliche nachricht)\s*-{2,}$",
    re.IGNORECASE,
)
_RULE_LINE = re.compile(r"^_{10,}$")
_HEADER_FROM = frozenset({"from", "de", "von", "от", "发件人", "寄件者", "من"})
_HEADER_SENT = frozenset(
    {"sent", "date", "envoyé", "date d'envoi", "enviado", "enviado el", "fecha", "gesendet", "datum",
     "отправлено", "дата", "发送时间", "日期", "寄件日期", "تاريخ الإرسال", "التاريخ", "أرسل", "to"}
)  # fmt: skip


# --- rendering ------------------------------------------------------------------------------------


def new_ballot_token() -> str:
    """128 random bits, base64url without padding: unguessable, and safe in any mail client's line."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_drafts(drafts: Sequence[str]) -> dict[str, str]:
    """Map each draft's matching key to its symbol, refusing symbols a reply could not name unambiguously."""
    keys: dict[str, str] = {}
    for symbol in drafts:
        if not symbol or symbol != _one_line(symbol) or any(c in symbol for c in ":：|[]"):
            raise UsageError(f"draft symbol {symbol!r} must be one line without ':', '|' or brackets")
        key = _symbol_key(symbol)
        if key in keys:
            raise UsageError(f"draft symbols {keys[key]} and {symbol} cannot be told apart")
        keys[key] = symbol
    return keys


@dataclass(frozen=True)
class Ballot:
    """What one delegation's ballot email says (docs/design.md §3)."""

    vote_id: str
    token: str
    delegation_code: str
    delegation_name: str
    closes: datetime
    drafts: tuple[tuple[str, str], ...]
    """(symbol, title) per draft, in ballot order."""
    title: str
    instructions: bool = True
    first_ballot_final: bool = False
    zones: tuple[str | None, ...] = ()
    """Time zones where the delegation and the secretariat are: the deadline is also given in each."""
    appendix: tuple[str, ...] = ()
    """The drafts in full (`drafts.draft_lines`), after the instructions: what is voted on."""
    words: Wording = ENGLISH
    """The delegation's language, for all but the lines read back (Vote-ID, token, choices): those are the same in
    every ballot."""
    silence: bool = False
    """Under the silence procedure: a reply is needed only to object."""
    sponsors: Mapping[str, str] = field(default_factory=dict)
    """Draft symbol -> its sponsors as named ("France, United Kingdom"), for each draft that names any."""


def _ballot_parts(ballot: Ballot) -> tuple[list[str], list[str]]:
    """The binding block (header lines, then one choice line per draft) and the instructions."""
    if not _VOTE_ID.fullmatch(ballot.vote_id):
        raise UsageError(f"vote ID {ballot.vote_id!r} must be letters, digits, '.', '_' or '-'")
    if not _TOKEN.fullmatch(ballot.token):
        raise UsageError("ballot token must be 16 to 128 base64 characters")
    if not re.fullmatch(CODE_PATTERN, ballot.delegation_code):
        raise UsageError(f"delegation code {ballot.delegation_code!r} is not a delegation code")
    if ballot.closes.tzinfo is None:
        raise UsageError("the closing time of a ballot must carry a time zone")
    drafts = ballot.drafts
    if not drafts:
        raise UsageError("a ballot needs at least one draft")
    _check_drafts([symbol for symbol, _ in drafts])
    block = [
        f"Vote-ID: {ballot.vote_id}",
        f"Ballot-Token: {ballot.token}",
        f"Delegation: {ballot.delegation_code} ({_one_line(ballot.delegation_name)})",
        f"Closes: {readable_time(ballot.closes)}",
    ]
    offered = "[ ] OBJECT" if ballot.silence else "YES | NO | ABSTAIN"
    for symbol, title in drafts:
        block += ["", f"{symbol}: {offered}"] + ([f"    {_one_line(title)}"] if title.strip() else [])
        if symbol in ballot.sponsors:
            block.append(f"    {_one_line(ballot.words('draft.sponsored', sponsors=ballot.sponsors[symbol]))}")
    if not ballot.instructions:
        return block, []
    words = ballot.words
    if ballot.silence:
        return block, _silence_guide(ballot)
    guide = [
        words("ballot.reply_by", deadline=readable_time(ballot.closes, ballot.zones, words)),
        words("ballot.how"),
        words("ballot.keep_quoted"),
        words("ballot.choice_lines", example=drafts[0][0]),
        *([words("ballot.one_draft")] if len(drafts) == 1 else []),
        words("ballot.languages"),
        words("ballot.explain"),
        words("ballot.receipt"),
        words("ballot.final" if ballot.first_ballot_final else "ballot.changeable"),
    ]
    return block, guide


def _silence_guide(ballot: Ballot) -> list[str]:
    """What a delegate under the silence procedure needs to know: silence is consent, and how to break it."""
    words, example = ballot.words, ballot.drafts[0][0]
    deadline = readable_time(ballot.closes, ballot.zones, words)
    return [
        words("ballot.silence_one" if len(ballot.drafts) == 1 else "ballot.silence_many", deadline=deadline),
        words("ballot.silence_need_not"),
        words("ballot.silence_how"),
        words("ballot.silence_lines", example=example),
        words("ballot.silence_letter"),
        words("ballot.silence_receipt"),
        words("ballot.silence_final") if ballot.first_ballot_final else words("ballot.silence_withdraw", example=example),
    ]


def render_ballot_text(ballot: Ballot) -> str:
    """The text/plain part of a ballot email."""
    block, guide = _ballot_parts(ballot)
    lines = [_one_line(ballot.title), "", *block]
    if guide:
        lines += ["", *guide]
    if ballot.appendix:
        lines += ["", ballot.words("ballot.drafts"), *ballot.appendix]
    return "\n".join(lines) + "\n"


def render_ballot_html(ballot: Ballot) -> str:
    """The body of the text/html alternative: the same content, the binding block kept as preformatted lines.

    `<pre>` keeps one line per field when a mail client turns a quoted HTML
    ballot back into text; the mail composer wraps it in a page with no
    external resources.
    """
    block, guide = _ballot_parts(ballot)
    heading = html.escape(_one_line(ballot.title))
    body = "\n".join(html.escape(line) for line in block)
    deadline, *rest = guide or [""]
    paragraphs = (f"<p><strong>{html.escape(deadline)}</strong></p>\n" if deadline else "") + "".join(
        f"<p>{html.escape(line)}</p>\n" for line in rest)
    wrapped = "white-space:pre-wrap;overflow-wrap:anywhere"
    appendix = (f"<h2 style=\"font-size:1.1em\">{html.escape(ballot.words('ballot.drafts'))}</h2>\n"
                f"<pre style=\"{wrapped}\">{html.escape(chr(10).join(ballot.appendix).strip(chr(10)))}</pre>\n"
                if ballot.appendix else "")
    return (f"<h1 style=\"font-size:1.3em\">{heading}</h1>\n"
            f"<pre style=\"{wrapped}\">{body}</pre>\n{paragraphs}{appendix}")


# --- reading a reply ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    vote_id: str | None
    token: str | None
    choices: dict[str, Choice]
    explanation: str
    """The text below an "Explanation:" line: the explanation of vote, published."""
    problem: Reason | None
    problem_detail: str | None
    ignored: str = ""
    """The delegate's other own text, neither a choice nor marked as explanation: kept with the reply, not published."""


def _clean(line: str) -> str:
    """The line as matched: invisible format characters (bidi marks, zero-width spaces) gone, NFC, stripped.

    A line is read with the lines after it (a quoted original's header block),
    and the same lines recur from reply to reply: a short line is cleaned once.
    """
    return _clean_short(line) if len(line) <= _LINE_LIMIT else _cleaned(line)


def _cleaned(line: str) -> str:
    return unicodedata.normalize("NFC", _INVISIBLE.sub("", line)).strip()


_clean_short = lru_cache(maxsize=4096)(_cleaned)


def _symbol_key(symbol: str) -> str:
    return "".join(_clean(symbol).split()).casefold()


def choice_word(text: str) -> Choice | None:
    """The choice a word or phrase means in any of the six languages, or None."""
    return CHOICE_WORDS.get(" ".join(text.strip(_EDGE_MARKS).split()).casefold())


def _value_choices(value: str) -> frozenset[Choice] | None:
    """The choices a value states; empty for an unmarked template ("YES | NO | ABSTAIN", "[ ] YES"); None for text."""
    boxes = _BOX.findall(value)
    if boxes:
        if _BOX.sub("", value).strip(_EDGE_MARKS + "|"):
            return None
        words = [(mark, choice_word(text)) for mark, text in boxes]
        if any(choice is None for _, choice in words):
            return None
        return frozenset(choice for mark, choice in words if mark and choice is not None)
    pieces = value.split("|")
    if len(pieces) > 1:
        return frozenset() if all(choice_word(piece) for piece in pieces) else None
    choice = choice_word(value)
    return None if choice is None else frozenset({choice})


def _split_key(line: str) -> tuple[str | None, str]:
    """Split "KEY: value" at the first colon, ASCII or full-width; (None, line) when there is none."""
    cut, wide = line.find(":"), line.find("：")
    if wide >= 0 and (cut < 0 or wide < cut):
        cut = wide
    if cut < 0:
        return None, line
    return line[:cut].strip(_EDGE_MARKS), line[cut + 1 :]


@dataclass(frozen=True)
class _Mark:
    """A line that states a choice: the draft it names (None: it names none), as written."""

    line: str
    draft: str | None
    named: str
    choices: frozenset[Choice]
    on_ballot: bool = True


def _read_choice(line: str, drafts: Mapping[str, str]) -> _Mark | None:
    """The choice a choice line states, an empty mark for a copied template, or None when the line is no choice line.

    A choice line is "KEY: CHOICE", as the ballot offers it: KEY is a draft's
    symbol or VOTE (in any of the six languages), CHOICE a choice word or the
    template with one box marked. Any other key before a choice ("Our vote:
    against", "S/2020/999: NO") is a mark not on the ballot, which the reply
    refuses rather than guess at. A line without a key is never a choice.
    """
    key, value = _split_key(line.strip(_EDGE_MARKS))
    if key is None:
        return None
    choices = _value_choices(value)
    if choices is None:
        return None
    if _symbol_key(key) in drafts:
        return _Mark(line, drafts[_symbol_key(key)], key, choices)
    if key.casefold() in _VOTE_KEYS:
        return _Mark(line, None, key, choices)
    return _Mark(line, key, key, choices, on_ballot=False)


def _looks_like_choice(line: str, drafts: Mapping[str, str]) -> bool:
    """Whether a line that is no choice line was probably meant as one: a choice word alone, or a draft's key."""
    key, value = _split_key(line.strip(_EDGE_MARKS))
    if key is None:
        return bool(_value_choices(value))
    return _symbol_key(key) in drafts or key.casefold() in _VOTE_KEYS


def _opens_explanation(line: str) -> tuple[bool, str]:
    """Whether the line is "Explanation: …" (in any of the six languages), and the text after its colon."""
    key, value = _split_key(line)
    if key is None or " ".join(key.split()).casefold() not in _EXPLANATION_KEYS:
        return False, ""
    return True, value.strip()


def _quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


def _starts_quoted_tail(clean: str, lines: Sequence[str], i: int) -> bool:
    """Whether line i (`clean`, as cleaned) opens an Outlook-style quoted original: a separator, or a From:/Sent:
    header block."""
    line = clean.strip("*")
    if _ORIGINAL_MESSAGE.match(line) or _RULE_LINE.match(line):
        return True
    key, _ = _split_key(line)
    if key is None or key.casefold() not in _HEADER_FROM:
        return False
    following = next((_clean(n) for n in lines[i + 1 : i + 4] if _clean(n)), "")
    next_key, _ = _split_key(following.strip("*"))
    return next_key is not None and next_key.casefold() in _HEADER_SENT


OwnLine = tuple[int, str, str]
"""One of the delegate's own lines: its index among the reply's lines, the line, and the line cleaned (`_clean`)."""


def _own_lines(lines: Sequence[str]) -> tuple[OwnLine, ...]:
    """The delegate's own lines: unquoted, above the signature and above an Outlook-style quoted original."""
    own = []
    for i, line in enumerate(lines):
        if _quoted(line):  # cleaned, it still starts with ">" (or "≯", NFC's ">" with U+0338): no separator, no From:
            continue
        clean = _clean(line)
        if line.rstrip(" ") == "--" or _starts_quoted_tail(clean, lines, i):
            break
        own.append((i, line, clean))
    return tuple(own)


def _binding(lines: Sequence[str]) -> tuple[str | None, str | None, str | None]:
    """Vote-ID and Ballot-Token from any line, quoted or not; a name for the field if a reply holds two values."""
    found: dict[str, set[str]] = {"vote-id": set(), "ballot-token": set()}
    for line in lines:
        if len(line) <= _LINE_LIMIT and (":" in line or "：" in line):  # cleaning removes characters, adds no colon
            match = _BINDING.fullmatch(_clean(_QUOTE_PREFIX.sub("", line)).strip("*"))
            if match:
                found[match.group(1).lower()].add(match.group(2))
    ambiguous = next((field for field, values in found.items() if len(values) > 1), None)
    vote_ids, tokens = found["vote-id"], found["ballot-token"]
    return (
        next(iter(vote_ids)) if len(vote_ids) == 1 else None,
        next(iter(tokens)) if len(tokens) == 1 else None,
        ambiguous,
    )


@dataclass(frozen=True)
class ReplyText:
    """A reply's text, cut into lines once for every way it is read: judging reads its binding, then whether it
    asks for the ballot, then its choices, and each reading would otherwise cut and clean the same lines again."""

    text: str

    @cached_property
    def every_line(self) -> list[str]:
        """The lines of the text's first TEXT_LIMIT characters: a request for the ballot is read from all of them."""
        return self.text[:TEXT_LIMIT].splitlines()

    @cached_property
    def lines(self) -> list[str]:
        """The lines the reply grammar reads (binding and choices): the first LINE_LIMIT."""
        return self.every_line[:LINE_LIMIT]

    @cached_property
    def binding(self) -> tuple[str | None, str | None, str | None]:
        return _binding(self.lines)

    @cached_property
    def own(self) -> tuple[OwnLine, ...]:
        """The own lines among `lines`."""
        return _own_lines(self.lines)

    @cached_property
    def every_own(self) -> tuple[OwnLine, ...]:
        """The own lines among `every_line`: the same as `own` unless the text has more than LINE_LIMIT lines."""
        return self.own if len(self.every_line) <= LINE_LIMIT else _own_lines(self.every_line)


def reply_text(text: str | ReplyText) -> ReplyText:
    """The text read once: each reading below takes the text itself or what an earlier reading of it kept."""
    return text if isinstance(text, ReplyText) else ReplyText(text)


@dataclass(frozen=True)
class Binding:
    """The vote and ballot a reply quotes: its Vote-ID and Ballot-Token, each None unless it holds exactly one."""

    vote_id: str | None
    token: str | None


def reply_binding(text: str | ReplyText) -> Binding:
    """What `parse_reply` reads as the reply's binding, without reading its choices: it finds the vote first."""
    vote_id, token, _ = reply_text(text).binding
    return Binding(vote_id, token)


def parse_reply(text: str | ReplyText, drafts: Sequence[str]) -> Reply:
    """Read a reply: its binding to a vote, its choices, its explanation of vote, and the first problem found.

    The explanation is only what the delegate marks as one: the own lines
    below an "Explanation:" line. Other own text (a greeting, a signature
    block without "-- ", a disclaimer) is `ignored`: kept with the reply in
    the ledger, never published as a government's position.

    A choice is read only from a choice line (see `_read_choice`), never from
    a word alone on a line: a hard-wrapped sentence may leave "for." or "No"
    on a line of its own. "VOTE: YES" counts only when the ballot has one
    draft; with several it is UNKNOWN_DRAFT, since silently dropping it would
    lose a vote its sender believes was cast. A copied, unmarked template line
    ("S/2020/654: YES | NO | ABSTAIN") is neither a choice nor explanation. With no drafts, only the binding is
    read (the service uses that to find the vote first).
    """
    by_key = _check_drafts(drafts)
    read = reply_text(text)
    vote_id, token, ambiguous = read.binding
    problem: tuple[Reason, str] | None = None
    if ambiguous == "vote-id":
        problem = (Reason.UNKNOWN_VOTE, "the text names more than one Vote-ID")
    elif ambiguous == "ballot-token":
        problem = (Reason.WRONG_BALLOT_TOKEN, "the text holds more than one Ballot-Token")
    choices: dict[str, Choice] = {}
    explanation: list[str] = []
    ignored: list[str] = []
    explanation_opened = False
    unread_choice: str | None = None
    previous = -2
    for i, line, clean in read.own:
        if not clean:
            continue
        short = len(clean) <= _LINE_LIMIT
        kept = explanation if explanation_opened else ignored
        if short and _ATTRIBUTION.search(clean):
            if kept and previous == i - 1 and _ATTRIBUTION_OPENER.match(kept[-1]):
                kept.pop()
            continue
        if short and _BINDING.fullmatch(clean.strip("*")):
            continue
        mark = _read_choice(clean, by_key) if short and drafts else None
        if mark is None:
            opens, rest = _opens_explanation(clean.strip("*")) if short else (False, "")
            if opens:
                explanation_opened = True
                explanation.extend([rest] if rest else [])
                continue
            if unread_choice is None and short and _looks_like_choice(clean, by_key):
                unread_choice = clean
            kept.append(line.strip())
            previous = i
            continue
        found = _apply(mark, choices, drafts)
        problem = problem or found
    if problem is None and not choices:
        hint = f'write "{drafts[0]}: YES", NO or ABSTAIN on a line of its own above the quoted ballot' if drafts else ""
        if unread_choice is not None:
            hint = f'the line "{unread_choice}" was not understood as a choice: {hint}'
        problem = (Reason.NO_CHOICE, hint or "no draft to vote on")
    return Reply(
        vote_id=vote_id,
        token=token,
        choices=choices,
        explanation="\n".join(explanation).strip(),
        problem=problem[0] if problem else None,
        problem_detail=problem[1] if problem else None,
        ignored="\n".join(ignored).strip(),
    )


@dataclass(frozen=True)
class BallotRequest:
    """A delegate's request for the ballot again: the word BALLOT on an own line, perhaps with a vote ID."""

    vote_id: str | None
    """The vote named on the request line; None when it names none."""


def ballot_request(text: str | ReplyText) -> BallotRequest | None:
    """The request an own line makes ("BALLOT", "Bulletin unsc-2020-0007", "选票"), or None.

    Quoted text never makes a request: a reply quoting a reminder that
    mentions the word is no request.
    """
    for _, _, cleaned in reply_text(text).every_own:
        clean = cleaned.strip(_EDGE_MARKS)
        if len(clean) > _LINE_LIMIT or clean[:1].casefold()[:1] not in _REQUEST_STARTS:
            continue
        for word in _REQUEST_WORDS:
            if clean[: len(word)].casefold() != word:
                continue
            rest = clean[len(word) :].strip(_EDGE_MARKS + ":：")
            if not rest:
                return BallotRequest(None)
            if clean[len(word)] in " \t:：" and _VOTE_ID.fullmatch(rest) and choice_word(rest) is None:
                return BallotRequest(rest)
    return None


def _apply(mark: _Mark, choices: dict[str, Choice], drafts: Sequence[str]) -> tuple[Reason, str] | None:
    """Record a line's choice; the problem it raises, if any. A copied template records nothing."""
    if not mark.choices:
        return None
    if not mark.on_ballot:
        return (Reason.UNKNOWN_DRAFT, f'the line "{mark.line}" was not understood: '
                                      f"{mark.named} is not a draft on this ballot ({', '.join(drafts)})")
    if mark.draft is None and len(drafts) != 1:
        return (
            Reason.UNKNOWN_DRAFT,
            f"a choice ({mark.named}: {'/'.join(c.upper() for c in Choice if c in mark.choices)}) names no draft, "
            f'and this ballot has {len(drafts)}: write it as "{drafts[0]}: YES"',
        )
    draft = mark.draft or drafts[0]
    earlier = [choices[draft]] if draft in choices else []
    stated = earlier + [choice for choice in Choice if choice in mark.choices and choice not in earlier]
    if len(stated) > 1:
        return (Reason.CONFLICTING_CHOICES, f"{draft}: {' and '.join(c.upper() for c in stated)}")
    choices[draft] = stated[0]
    return None


# --- the text of a MIME entity ----------------------------------------------------------------------

_ENCODED_TEXT_LIMIT = 4 * TEXT_LIMIT
"""Enough transfer-encoded bytes for TEXT_LIMIT decoded ones (quoted-printable's worst case is about 3.1 to 1)."""
_MAX_TAG = 4096
_LONE_ANGLE = re.compile(rf"<(?![^<>]{{0,{_MAX_TAG}}}>)")


class _HtmlText(HTMLParser):
    """HTML to lines of text; blockquotes become ">" quoting so that quoted ballots stay quoted."""

    _BLOCK = frozenset(
        "address article aside br dd div dl dt footer h1 h2 h3 h4 h5 h6 header li ol p section table tr ul".split()
    )
    _HIDDEN = frozenset({"head", "script", "style", "template", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._pieces: list[str] = []
        self._depth = 0
        self._hidden = 0
        self._pre = 0

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        line = "".join(self._pieces).strip() if not self._pre else "".join(self._pieces).rstrip()
        self._pieces = []
        if line or (self.lines and self.lines[-1]):
            self.lines.append("> " * self._depth + line if line else "")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag == "hr":
            self._flush()
            self.lines.append("_" * 32)
        elif tag in ("blockquote", "pre") or tag in self._BLOCK:
            self._flush()
            self._depth += tag == "blockquote"
            self._pre += tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in ("blockquote", "pre") or tag in self._BLOCK:
            self._flush()
            if tag == "blockquote":
                self._depth = max(0, self._depth - 1)
            if tag == "pre":
                self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if not self._pre:
            self._pieces.append(re.sub(r"\s+", " ", data))
            return
        first, *rest = data.split("\n")
        self._pieces.append(first)
        for line in rest:
            self._flush()
            self._pieces.append(line)


def _html_to_text(markup: str) -> str:
    """Text of an HTML body, its first HTML_LIMIT characters.

    Stray '<' and overlong tags are escaped first: html.parser is quadratic on them.
    """
    parser = _HtmlText()
    parser.feed(_LONE_ANGLE.sub("&lt;", markup[:HTML_LIMIT]))
    parser.close()
    return "\n".join(parser.lines).strip("\n")


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed (RFC 3676), keeping the quote depth of each line."""
    out: list[str] = []
    pending: list[str] = []
    pending_depth = 0
    for line in text.splitlines():
        body = line.lstrip(">")
        depth = len(line) - len(body)
        body = body[1:] if body.startswith(" ") else body
        if pending and depth != pending_depth:
            out.append(">" * pending_depth + (" " if pending_depth else "") + "".join(pending))
            pending = []
        pending_depth = depth
        if body.endswith(" ") and body != "-- ":
            pending.append(body[:-1] if delsp else body)
            continue
        out.append(">" * depth + (" " if depth else "") + "".join(pending) + body)
        pending = []
    if pending:
        out.append(">" * pending_depth + (" " if pending_depth else "") + "".join(pending))
    return "\n".join(out)


def _param(part: Message, name: str) -> str:
    value = part.get_param(name, "")
    return collapse_rfc2231_value(value).lower() if isinstance(value, (str, tuple)) else ""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _decoded(part: Message) -> str:
    """The part's text: transfer encoding undone, charset decoded leniently (unknown charsets read as UTF-8).

    Some decoders (UTF-7's) yield lone surrogates, which no UTF-8 store or
    mail can hold: each becomes U+FFFD, so every text judged can be recorded.
    """
    payload = part.get_payload(decode=True)
    data = payload[:TEXT_LIMIT] if isinstance(payload, bytes) else b""
    try:
        text = data.decode(part.get_content_charset() or "utf-8", errors="replace")
    except (LookupError, ValueError):
        text = data.decode("utf-8", errors="replace")
    text = _SURROGATE.sub("\ufffd", text)
    if part.get_content_type() == "text/plain" and _param(part, "format") == "flowed":
        text = _unflow(text, _param(part, "delsp") == "yes")
    return text


def _file_name(part: Part) -> str:
    return part.payload(0).get_filename() or ""


def _names_an_explanation(file_name: str) -> bool:
    """ "explanation.txt", "Explication de vote.pdf", "объяснение_голосования.docx": in any of the six languages."""
    stem = " ".join(file_name.rpartition(".")[0].replace("_", " ").replace("-", " ").split()).casefold()
    return any(stem == key or stem.startswith(key + " ") for key in _EXPLANATION_KEYS)


@lru_cache(maxsize=1)
def _readable_parts(entity: bytes) -> list[Part]:
    """The entity's parts, attached messages unopened: read once for its text and again for its attachments."""
    return parts(crlf(entity), into_messages=False)


def _readable(entity: bytes | Sequence[Part]) -> Sequence[Part]:
    """`_readable_parts` of an entity, or of its parts as a walk that opened attached messages found them
    (the verifier's), without walking it again: what those messages hold is left out."""
    if isinstance(entity, bytes):
        return _readable_parts(entity)
    found: list[Part] = []
    inside: int | None = None
    for part in entity:
        if inside is not None and part.depth > inside:
            continue
        inside = part.depth if part.type == "message/rfc822" else None
        found.append(part)
    return found


def attached_explanations(entity: bytes | Sequence[Part]) -> list[str]:
    """The explanations of vote the delegate attached as files named for one, each as published.

    A text file's text is the explanation; any other file (a PDF, a Word
    document) is named with its size and SHA-256, as the audit bundle keeps
    it in the signed message. Other attachments (a logo, a business card)
    are never an explanation. Never raises: what cannot be read is no
    explanation.
    """
    found = []
    try:
        for part in _readable(entity):
            name = _file_name(part)
            if part.disposition != "attachment" or not _names_an_explanation(name):
                continue
            if part.type == "text/plain":
                found.append(_decoded(part.payload(_ENCODED_TEXT_LIMIT)).strip())
                continue
            data = decode_transfer(part.headers, part.body)
            found.append(f"Attached: {_one_line(name)} ({part.type}, {len(data):,} bytes, SHA-256"
                         f" {hashlib.sha256(data).hexdigest()}), kept with the signed message in the audit bundle.")
    except (Rejected, ValueError, IndexError, TypeError, AttributeError, email.errors.MessageError):
        return []
    return [text for text in found if text]


def explained_reply(text: str | ReplyText, entity: bytes | Sequence[Part], drafts: Sequence[str]) -> tuple[Reply, str]:
    """The reply read from `text` (the signed `entity`'s, `text_of_entity`), and its explanation of vote as published:
    the text marked as one, then each explanation attached as a file.

    `verdict.judge` records both; the ledger's own check (`integrity`) reads
    the explanation again from the stored message, to publish only what was signed.
    """
    reply = parse_reply(text, drafts)
    return reply, "\n\n".join(filter(None, [reply.explanation, *attached_explanations(entity)]))


def text_of_entity(entity: bytes | Sequence[Part]) -> str:
    """The readable text of a signed MIME entity (headers and body): its first text/plain, else its first HTML.

    Only inline text/plain and text/html parts reached through multiparts are
    read; attachments and attached messages are not. The structure is read by
    `voting.mime`, within its bounds (or is the verifier's walk of it, handed
    over), and only the chosen part's first bytes are decoded. Never raises:
    an entity that exceeds the bounds or cannot be read yields "", which the
    reply then reports as naming no vote.
    """
    try:
        leaves = [
            part for part in _readable(entity)
            if part.type in ("text/plain", "text/html") and part.disposition != "attachment"
        ]
        plain = next((part for part in leaves if part.type == "text/plain"), None)
        if plain is not None:
            return _decoded(plain.payload(_ENCODED_TEXT_LIMIT))
        markup = next(iter(leaves), None)
        return _html_to_text(_decoded(markup.payload(_ENCODED_TEXT_LIMIT))) if markup is not None else ""
    except (Rejected, ValueError, IndexError, TypeError, AttributeError, email.errors.MessageError):
        return ""
