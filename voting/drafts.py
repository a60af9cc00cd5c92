"""A draft as the secretariat is given it: any file (text, PDF, Word), kept byte for byte and named by its SHA-256.

Delegates vote on what the ballot carries, so the ballot carries the draft
itself: its text in the body when it is text, and the original file attached
as sent, with the SHA-256 that the results and the audit bundle state again.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from voting.errors import UsageError
from voting.ledger import DraftRecord
from voting.model import CODE_PATTERN, Electorate
from voting.quoting import quoted_lines

MAX_DRAFT_BYTES = 10 << 20
"""One draft file at most: every ballot carries it, and mail servers commonly refuse messages over 25 MB."""

TITLE_LIMIT = 200


def _text_of(data: bytes) -> str | None:
    """The file's text when it is UTF-8 text a person can read; None for any other file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    controls = [c for c in text if unicodedata.category(c) == "Cc" and c not in "\n\r\t\f"]
    return None if controls else text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def read_draft(symbol: str, file_name: str, data: bytes, *, title: str | None,
               parties: tuple[str, ...], sponsors: tuple[str, ...] = ()) -> DraftRecord:
    """The draft to record: its title is the one given, else the first line of a text file."""
    where = f"--draft {symbol}={file_name}"
    if len(data) > MAX_DRAFT_BYTES:
        raise UsageError(f"{where}: {len(data):,} bytes; a draft may have at most {MAX_DRAFT_BYTES:,}, since every"
                         " ballot carries it")
    if not data:
        raise UsageError(f"{where}: the file is empty")
    text = _text_of(data)
    media_type = "text/plain" if text is not None else (
        mimetypes.guess_type(file_name, strict=False)[0] or "application/octet-stream")
    first_line = next((line for line in (text or "").splitlines() if line.strip()), "")
    chosen = _one_line(title or first_line)
    if not chosen:
        raise UsageError(f"{where}: this file is not text, so its title must be given: --title {symbol}=TITLE")
    return DraftRecord(symbol, chosen[:TITLE_LIMIT], text or "", hashlib.sha256(data).hexdigest(), parties,
                       file_name, media_type, data, sponsors)


SHOWN = ("title", "file_name", "media_type")
"""What of a draft its vote-opened event states besides its file's SHA-256, since votes opened with this version:
a title or a file name changed in the ledger would otherwise be shown as what was voted on."""


def opened_entry(symbol: str, sha256: str, parties: Sequence[str], sponsors: Sequence[str] = (),
                 shown: tuple[str, str, str] | None = None) -> dict[str, Any]:
    """A draft as the vote-opened event records it, and as the ledger and the audit check it against that event.

    Sponsors are stated only when there are any, and `shown` (the title, file
    name and media type that ballots, results and records show) only by an
    event that states them (`states_shown`): an event recorded before either
    was kept reads as it always did.
    """
    entry: dict[str, Any] = {"symbol": symbol, "sha256": sha256, "parties": list(parties)}
    if sponsors:
        entry["sponsors"] = list(sponsors)
    if shown is not None:
        entry |= dict(zip(SHOWN, shown, strict=True))
    return entry


def states_shown(opened: Mapping[str, Any]) -> bool:
    """Whether a vote-opened event's data states its drafts' `SHOWN` values; one recorded before does not, and
    the title, file name and media type of its drafts are then checked by nothing."""
    drafts = opened.get("drafts")
    return isinstance(drafts, list) and any(isinstance(d, dict) and SHOWN[0] in d for d in drafts)


def checked_sponsors(symbol: str, given: Sequence[str], electorate: Electorate) -> tuple[str, ...]:
    """A draft's sponsors as recorded: each a delegation's code (in any case), or a sponsor from outside the
    electorate (the European Commission) named in words; a code of no delegation is a mistake, never taken for a
    name."""
    written = [" ".join(who.split()) for who in given]
    sponsors = tuple(dict.fromkeys(who.upper() if electorate.get(who.upper()) else who for who in written))
    for who in sponsors:
        if not who:
            raise UsageError(f"--sponsor {symbol}: a sponsor is empty; write SYMBOL=WHO[,WHO...]")
        if electorate.get(who) is None and re.fullmatch(CODE_PATTERN, who):
            raise UsageError(f"--sponsor {symbol}={who}: {who} is no delegation of the electorate; a sponsor from"
                             " outside it is named in words, e.g. European Commission")
    return sponsors


def sponsor_names(sponsors: Sequence[str], electorate: Electorate, language: str) -> list[tuple[str | None, str]]:
    """(code, name) of each sponsor: a delegation's name as the electorate gives it in `language`; a sponsor from
    outside has no code, and its name as recorded."""
    named = [(who, electorate.get(who)) for who in sponsors]
    return [(who, delegation.name_in(language)) if delegation else (None, who) for who, delegation in named]


def sponsors_shown(sponsors: Sequence[str], electorate: Electorate, language: str) -> str:
    """ "France, United Kingdom": the sponsors as a letter in `language` names them."""
    return ", ".join(name for _, name in sponsor_names(sponsors, electorate, language))


def draft_lines(draft: DraftRecord) -> list[str]:
    """The draft as a ballot's body shows it: its symbol, title, file and SHA-256, then its text behind a
    quote mark, so that no line of a draft (which a delegation may have written) can pass for a ballot's
    Vote-ID, token or choice line."""
    size = f"{len(draft.content):,} bytes"
    lines = [f"{draft.symbol}: {draft.title}",
             f"File: {draft.file_name} ({draft.media_type}, {size}), attached",
             f"SHA-256: {draft.sha256}"]
    if draft.text:
        lines += ["", *quoted_lines(draft.text)]
    return lines
