"""The public record of a vote: who voted how, when, and the outcome of each draft.

Built from values (the vote, its drafts, its electorate and its decisions) and
rendered as text (for the terminal and the results email) and HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from voting.drafts import sponsors_shown
from voting.mail.compose import html_page
from voting.model import Choice, Delegation, Electorate, Outcome
from voting.publication import Publication
from voting.quoting import quoted_lines
from voting.rules import RULES
from voting.times import readable_time
from voting.wording import ENGLISH, Wording

ABSENT = "absent"
NOT_YET_VOTED = "not yet voted"
"""A delegation with no counted choice while the vote is open: it may still vote, so it is not absent yet."""

CHOICE_COLOURS = {"yes": "#1b7a3a", "no": "#b3261e", "abstain": "#b26a00", ABSENT: "#777777", NOT_YET_VOTED: "#4a6785"}


class BoardRow(NamedTuple):
    delegation: Delegation
    """Named in the language of the letter that shows the board (`Delegation.name_in`)."""
    choices: Mapping[str, str]
    """Draft symbol -> "yes" | "no" | "abstain" | "absent", or "not yet voted" while the vote is open."""
    received_at: datetime | None
    explanation: str

    @property
    def code(self) -> str:
        return self.delegation.code

    def name(self, words: Wording) -> str:
        return self.delegation.name_in(words.language)


class RejectedMessage(NamedTuple):
    sha256: str
    received_at: datetime
    code: str | None
    reason: str


@dataclass(frozen=True)
class VoteBoard:
    vote_id: str
    title: str
    rule: str
    closes_at: datetime
    drafts: tuple[str, ...]
    rows: tuple[BoardRow, ...]
    outcomes: Mapping[str, Outcome] | None
    rejected: tuple[RejectedMessage, ...] = ()
    timezone: str | None = None
    """The secretariat's time zone: its local time is shown beside UTC."""
    documents: tuple[tuple[str, str, str, tuple[str, ...]], ...] = ()
    """(symbol, title, SHA-256 of the file, sponsors as recorded) per draft: what was voted on, as the ballots
    carried it."""
    electorate: Electorate = field(default_factory=Electorate)
    """Who the sponsors recorded by code are, named in the language of the letter that shows the board."""

    def when(self, moment: datetime | None, words: Wording = ENGLISH) -> str:
        return readable_time(moment, [self.timezone], words) if moment else "-"

    def sponsors(self, recorded: Sequence[str], words: Wording) -> str:
        """A draft's sponsors as a letter in the language of `words` names them."""
        return sponsors_shown(recorded, self.electorate, words.language)


def build_board(
    *,
    vote_id: str,
    title: str,
    rule: str,
    closes_at: datetime,
    drafts: Sequence[str],
    electorate: Electorate,
    counted: Mapping[str, Mapping[str, Choice]],
    last_ballot_at: Mapping[str, datetime],
    explanations: Mapping[str, str],
    outcomes: Mapping[str, Outcome] | None,
    rejected: Sequence[RejectedMessage] = (),
    timezone: str | None = None,
    documents: Sequence[tuple[str, str, str, tuple[str, ...]]] = (),
    closed: bool,
) -> VoteBoard:
    missing = ABSENT if closed else NOT_YET_VOTED
    rows = tuple(
        BoardRow(
            delegation=d,
            choices={s: str(counted.get(s, {}).get(d.code, missing)) for s in drafts},
            received_at=last_ballot_at.get(d.code),
            explanation=explanations.get(d.code, ""),
        )
        for d in electorate.delegation
    )
    return VoteBoard(vote_id, title, rule, closes_at, tuple(drafts), rows, outcomes, tuple(rejected), timezone,
                     tuple(documents), electorate)


def _verdict(outcome: Outcome, words: Wording) -> str:
    return words("record.adopted" if outcome.adopted else "record.not_adopted")


def outcome_line(symbol: str, outcome: Outcome, words: Wording = ENGLISH) -> str:
    """The outcome stated once: the verdict, then the count and why it decides (as the rule recorded it)."""
    return f"{symbol}: {_verdict(outcome, words)} — {outcome.reason}"


_CHOICE_WORDS = {"yes": "choices.yes", "no": "choices.no", "abstain": "choices.abstain", ABSENT: "choices.absent",
                 NOT_YET_VOTED: "record.not_yet_voted"}
_UNDER_SILENCE = {"no": "record.objection", ABSENT: "record.silent"}
"""Under the silence procedure a no is an objection, and a member who did not reply kept silence."""


def _silence(board: VoteBoard) -> bool:
    rule = RULES.get(board.rule)
    return rule is not None and rule.silence


def _shown(board: VoteBoard, row: BoardRow, symbol: str, words: Wording) -> str:
    """A delegation's choice on a draft as the board shows it: a permanent member's decisive no is a veto."""
    choice = row.choices[symbol]
    if _silence(board):
        return words(_UNDER_SILENCE.get(choice, _CHOICE_WORDS[choice]))
    outcome = (board.outcomes or {}).get(symbol)
    shown = words(_CHOICE_WORDS[choice])
    return words("record.veto", choice=shown) if outcome is not None and row.code in outcome.vetoed_by else shown


def _rule_in_words(name: str) -> str:
    rule = RULES.get(name)
    return f"{rule.summary} ({name})" if rule else name


def _sponsored(board: VoteBoard, sponsors: Sequence[str], words: Wording, indent: str) -> list[str]:
    return [indent + words("draft.sponsored", sponsors=board.sponsors(sponsors, words))] if sponsors else []


def _heading(key: str, words: Wording) -> str:
    """A heading of the text record: its words, then a colon as the language writes it."""
    return words("record.heading", heading=words(key))


def board_text(board: VoteBoard, words: Wording = ENGLISH) -> str:
    width = max((len(f"{r.code} {r.name(words)}") for r in board.rows), default=10)
    symbol_width = max([len(words("choices.absent")), *(len(s) for s in board.drafts),
                        *(len(_shown(board, r, s, words)) for r in board.rows for s in board.drafts)])
    header = (f"{words('record.delegation'):<{width}}  " + "  ".join(f"{s:<{symbol_width}}" for s in board.drafts)
              + f"  {words('record.received')}")
    lines = [
        f"{board.title} [{board.vote_id}]",
        words("vote.rule", rule=_rule_in_words(board.rule)),
        words("vote.closes", deadline=board.when(board.closes_at, words)),
        *(["", _heading("record.drafts", words)] if board.documents else []),
        *(line for symbol, title, sha256, sponsors in board.documents
          for line in (f"  {symbol}: {title}", *_sponsored(board, sponsors, words, "    "), f"    SHA-256 {sha256}")),
        "",
        header,
        "-" * len(header),
    ]
    for row in board.rows:
        cells = "  ".join(f"{_shown(board, row, s, words):<{symbol_width}}" for s in board.drafts)
        lines.append(f"{row.code + ' ' + row.name(words):<{width}}  {cells}  {board.when(row.received_at, words)}")
    if board.outcomes:
        lines.append("")
        lines.extend(outcome_line(s, board.outcomes[s], words) for s in board.drafts)
    statements = [r for r in board.rows if r.explanation]
    if statements:
        lines.extend(["", _heading("record.explanations", words)])
        for r in statements:
            lines.extend([f"  {r.code}:", *quoted_lines(r.explanation)])
    if board.rejected:
        lines.extend(["", _heading("record.rejected", words)])
        lines.extend(
            f"  {board.when(m.received_at, words)}  {m.code or words('record.unknown_sender')}: {m.reason}"
            f"  (SHA-256 {m.sha256})"
            for m in board.rejected
        )
    return "\n".join(lines) + "\n"


def record_text(board: VoteBoard, publication: Publication | None, words: Wording = ENGLISH) -> str:
    """The plain-text public record: the board, then where to check it (`voting audit --results` reads these lines,
    whose labels are the same in every language)."""
    tail = ("\n" + "".join(f"{line}\n" for line in publication.lines()) + f"\n{words('record.how_to_check')}\n"
            if publication else f"\n{words('record.provisional')}\n")
    return board_text(board, words) + tail


def record_body(board: VoteBoard, publication: Publication | None, words: Wording = ENGLISH) -> str:
    """The public record as an HTML fragment: the board, explanations, rejections, the bundle's hash."""
    e = html.escape
    statements = "".join(
        f"<li><b>{e(r.code)} {e(r.name(words))}</b>: {e(r.explanation)}</li>" for r in board.rows if r.explanation
    )
    rejected = "".join(
        f"<li>{e(board.when(m.received_at, words))} — {e(m.code or words('record.unknown_sender'))}:"
        f" <code>{e(m.reason)}</code>"
        f" <small>(SHA-256 <code style=\"word-break:break-all\">{e(m.sha256)}</code>)</small></li>"
        for m in board.rejected
    )
    parts = [board_html(board, words)]
    if statements:
        parts.append(f"<h2 style=\"font-size:1.1em\">{e(words('record.explanations'))}</h2><ul>{statements}</ul>")
    if rejected:
        parts.append(f"<h2 style=\"font-size:1.1em\">{e(words('record.rejected'))}</h2><ul>{rejected}</ul>")
    parts.append(
        "".join(f"<p>{e(label)}: <code style=\"word-break:break-all\">{e(value)}</code></p>"
                for label, _, value in (line.partition(": ") for line in publication.lines()))
        + f"<p><small>{e(words('record.how_to_check'))}</small></p>"
        if publication else f"<p><b>{e(words('record.provisional'))}</b></p>"
    )
    return "".join(parts)


def record_html(board: VoteBoard, publication: Publication | None, words: Wording = ENGLISH) -> str:
    """The public record as one self-contained page, readable on a phone."""
    return html_page(f"{board.title} [{board.vote_id}]", record_body(board, publication, words), words.language)


def board_html(board: VoteBoard, words: Wording = ENGLISH) -> str:
    """The vote board as an HTML fragment: outcomes first, then green yes, red no, amber abstain, grey absent.

    While the vote is open, a delegation that has not voted is "not yet voted", in slate blue, never absent.
    """
    e = html.escape
    pad = "padding:.35em .5em;border:2px solid #fff"

    def cell(row: BoardRow, symbol: str) -> str:
        colour = CHOICE_COLOURS[row.choices[symbol]]
        return (f"<td style=\"background:{colour};color:#fff;text-align:center;{pad}\">"
                f"{e(_shown(board, row, symbol, words))}</td>")

    def received(moment: datetime | None) -> str:
        """Under the delegation's name, not in a column of its own: the board fits a phone's width."""
        if moment is None:
            return ""
        return f"<br><small style=\"color:#555;font-weight:normal\">{e(board.when(moment, words))}</small>"

    def verdict(symbol: str, outcome: Outcome) -> str:
        colour = CHOICE_COLOURS["yes" if outcome.adopted else "no"]
        return (f"<p style=\"border-left:.4em solid {colour};padding-left:.6em\"><b>{e(symbol)}:"
                f" {e(_verdict(outcome, words))}</b>"
                f"<br>{e(outcome.reason)}</p>")

    head = "".join(f"<th style=\"{pad};font-size:.85em\">{e(s)}</th>" for s in board.drafts)
    rows = "".join(
        f"<tr data-delegation=\"{e(r.code)}\"><th style=\"text-align:left;{pad}\">{e(r.name(words))}"
        f" <small style=\"color:#555\">{e(r.code)}</small>{received(r.received_at)}</th>"
        + "".join(cell(r, s) for s in board.drafts)
        + "</tr>"
        for r in board.rows
    )
    def sponsored(sponsors: Sequence[str]) -> str:
        return "".join(f"<br>{e(line)}" for line in _sponsored(board, sponsors, words, ""))

    outcomes = "".join(verdict(s, board.outcomes[s]) for s in board.drafts) if board.outcomes else ""
    documents = (f"<p>{e(_heading('record.drafts', words))}</p><ul>" + "".join(
        f"<li><b>{e(symbol)}</b>: {e(title)}{sponsored(sponsors)}"
        f"<br><small>SHA-256 <code style=\"word-break:break-all\">{e(sha256)}</code></small></li>"
        for symbol, title, sha256, sponsors in board.documents) + "</ul>") if board.documents else ""
    return (
        f"<h1 style=\"font-size:1.3em\">{e(board.title)} <small>[{e(board.vote_id)}]</small></h1>"
        f"<p>{e(words('vote.rule', rule=_rule_in_words(board.rule)))}"
        f"<br>{e(words('vote.closes', deadline=board.when(board.closes_at, words)))}</p>"
        f"{documents}{outcomes}"
        "<div style=\"overflow-x:auto\"><table style=\"border-collapse:collapse;width:100%\">"
        f"<tr><th style=\"text-align:left;{pad}\">{e(words('record.delegation'))}"
        f" <small style=\"font-weight:normal\">{e(words('record.last_ballot'))}</small>"
        f"</th>{head}</tr>"
        f"{rows}</table></div>"
    )
