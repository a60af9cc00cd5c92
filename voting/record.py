"""The public record of a vote: who voted how, when, and the outcome of each draft.

Built from values (the vote, its drafts, its electorate and its decisions) and
rendered as text (for the terminal and the results email) and HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from voting.mail.compose import html_page
from voting.model import Choice, Electorate, Outcome
from voting.publication import Publication
from voting.quoting import quoted_lines
from voting.rules import RULES
from voting.times import readable_time

ABSENT = "absent"
NOT_YET_VOTED = "not yet voted"
"""A delegation with no counted choice while the vote is open: it may still vote, so it is not absent yet."""

CHOICE_COLOURS = {"yes": "#1b7a3a", "no": "#b3261e", "abstain": "#b26a00", ABSENT: "#777777", NOT_YET_VOTED: "#4a6785"}


@dataclass(frozen=True)
class BoardRow:
    code: str
    name: str
    choices: Mapping[str, str]
    """Draft symbol -> "yes" | "no" | "abstain" | "absent", or "not yet voted" while the vote is open."""
    received_at: datetime | None
    explanation: str


@dataclass(frozen=True)
class RejectedMessage:
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
    documents: tuple[tuple[str, str, str], ...] = ()
    """(symbol, title, SHA-256 of the file) per draft: what was voted on, as the ballots carried it."""

    def when(self, moment: datetime | None) -> str:
        return readable_time(moment, [self.timezone]) if moment else "-"


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
    documents: Sequence[tuple[str, str, str]] = (),
    closed: bool,
) -> VoteBoard:
    missing = ABSENT if closed else NOT_YET_VOTED
    rows = tuple(
        BoardRow(
            code=d.code,
            name=d.name,
            choices={s: str(counted.get(s, {}).get(d.code, missing)) for s in drafts},
            received_at=last_ballot_at.get(d.code),
            explanation=explanations.get(d.code, ""),
        )
        for d in electorate.delegation
    )
    return VoteBoard(vote_id, title, rule, closes_at, tuple(drafts), rows, outcomes, tuple(rejected), timezone,
                     tuple(documents))


def outcome_line(symbol: str, outcome: Outcome) -> str:
    """The outcome stated once: the verdict, then the count and why it decides."""
    return f"{symbol}: {'ADOPTED' if outcome.adopted else 'NOT ADOPTED'} — {outcome.reason}"


_UNDER_SILENCE = {"no": "OBJECTION", ABSENT: "SILENT"}
"""Under the silence procedure a no is an objection, and a member who did not reply kept silence."""


def _silence(board: VoteBoard) -> bool:
    rule = RULES.get(board.rule)
    return rule is not None and rule.silence


def _shown(board: VoteBoard, row: BoardRow, symbol: str) -> str:
    """A delegation's choice on a draft as the board shows it: a permanent member's decisive no is a veto."""
    choice = row.choices[symbol]
    if _silence(board):
        return _UNDER_SILENCE.get(choice, choice.upper())
    outcome = (board.outcomes or {}).get(symbol)
    vetoed = outcome is not None and row.code in outcome.vetoed_by
    return choice.upper() + (" (VETO)" if vetoed else "")


def _rule_in_words(name: str) -> str:
    rule = RULES.get(name)
    return f"{rule.summary} ({name})" if rule else name


def board_text(board: VoteBoard) -> str:
    width = max((len(f"{r.code} {r.name}") for r in board.rows), default=10)
    symbol_width = max([len(ABSENT.upper()), *(len(s) for s in board.drafts),
                        *(len(_shown(board, r, s)) for r in board.rows for s in board.drafts)])
    header = f"{'Delegation':<{width}}  " + "  ".join(f"{s:<{symbol_width}}" for s in board.drafts) + "  Received"
    lines = [
        f"{board.title} [{board.vote_id}]",
        f"Rule: {_rule_in_words(board.rule)}",
        f"Closes: {board.when(board.closes_at)}",
        *(["", "Drafts voted on:"] if board.documents else []),
        *(line for symbol, title, sha256 in board.documents for line in (f"  {symbol}: {title}", f"    SHA-256 {sha256}")),
        "",
        header,
        "-" * len(header),
    ]
    for row in board.rows:
        cells = "  ".join(f"{_shown(board, row, s):<{symbol_width}}" for s in board.drafts)
        lines.append(f"{row.code + ' ' + row.name:<{width}}  {cells}  {board.when(row.received_at)}")
    if board.outcomes:
        lines.append("")
        lines.extend(outcome_line(s, board.outcomes[s]) for s in board.drafts)
    statements = [r for r in board.rows if r.explanation]
    if statements:
        lines.extend(["", "Explanations of vote:"])
        for r in statements:
            lines.extend([f"  {r.code}:", *quoted_lines(r.explanation)])
    if board.rejected:
        lines.extend(["", "Rejected messages:"])
        lines.extend(
            f"  {board.when(m.received_at)}  {m.code or 'unknown sender'}: {m.reason}  (SHA-256 {m.sha256})"
            for m in board.rejected
        )
    return "\n".join(lines) + "\n"


HOW_TO_CHECK = (
    "To check this result yourself: voting audit BUNDLE.zip --secretariat-cert secretariat.pem --results"
    " RESULTS.eml, with the audit bundle named by the SHA-256 above, the secretariat's signing certificate"
    " obtained from it directly, and the results email as you received it, saved with its headers."
)


def record_text(board: VoteBoard, publication: Publication | None) -> str:
    """The plain-text public record: the board, then where to check it (`voting audit --results` reads these lines)."""
    tail = ("\n" + "".join(f"{line}\n" for line in publication.lines()) + f"\n{HOW_TO_CHECK}\n" if publication else
            "\nProvisional: the vote is still open; the audit bundle is published when it closes.\n")
    return board_text(board) + tail


def record_body(board: VoteBoard, publication: Publication | None) -> str:
    """The public record as an HTML fragment: the board, explanations, rejections, the bundle's hash."""
    e = html.escape
    statements = "".join(
        f"<li><b>{e(r.code)} {e(r.name)}</b>: {e(r.explanation)}</li>" for r in board.rows if r.explanation
    )
    rejected = "".join(
        f"<li>{e(board.when(m.received_at))} — {e(m.code or 'unknown sender')}: <code>{e(m.reason)}</code>"
        f" <small>(SHA-256 <code style=\"word-break:break-all\">{e(m.sha256)}</code>)</small></li>"
        for m in board.rejected
    )
    parts = [board_html(board)]
    if statements:
        parts.append(f"<h2 style=\"font-size:1.1em\">Explanations of vote</h2><ul>{statements}</ul>")
    if rejected:
        parts.append(f"<h2 style=\"font-size:1.1em\">Rejected messages</h2><ul>{rejected}</ul>")
    parts.append(
        "".join(f"<p>{e(label)}: <code style=\"word-break:break-all\">{e(value)}</code></p>"
                for label, _, value in (line.partition(": ") for line in publication.lines()))
        + f"<p><small>{e(HOW_TO_CHECK)}</small></p>"
        if publication else "<p><b>Provisional</b>: the vote is still open.</p>"
    )
    return "".join(parts)


def record_html(board: VoteBoard, publication: Publication | None) -> str:
    """The public record as one self-contained page, readable on a phone."""
    return html_page(f"{board.title} [{board.vote_id}]", record_body(board, publication))


def board_html(board: VoteBoard) -> str:
    """The vote board as an HTML fragment: outcomes first, then green yes, red no, amber abstain, grey absent.

    While the vote is open, a delegation that has not voted is "not yet voted", in slate blue, never absent.
    """
    e = html.escape
    pad = "padding:.35em .5em;border:2px solid #fff"

    def cell(row: BoardRow, symbol: str) -> str:
        colour = CHOICE_COLOURS[row.choices[symbol]]
        return f"<td style=\"background:{colour};color:#fff;text-align:center;{pad}\">{e(_shown(board, row, symbol))}</td>"

    def received(moment: datetime | None) -> str:
        """Under the delegation's name, not in a column of its own: the board fits a phone's width."""
        if moment is None:
            return ""
        return f"<br><small style=\"color:#555;font-weight:normal\">{e(board.when(moment))}</small>"

    def verdict(symbol: str, outcome: Outcome) -> str:
        colour = CHOICE_COLOURS["yes" if outcome.adopted else "no"]
        word = "ADOPTED" if outcome.adopted else "NOT ADOPTED"
        return (f"<p style=\"border-left:.4em solid {colour};padding-left:.6em\"><b>{e(symbol)}: {word}</b>"
                f"<br>{e(outcome.reason)}</p>")

    head = "".join(f"<th style=\"{pad};font-size:.85em\">{e(s)}</th>" for s in board.drafts)
    rows = "".join(
        f"<tr data-delegation=\"{e(r.code)}\"><th style=\"text-align:left;{pad}\">{e(r.name)}"
        f" <small style=\"color:#555\">{e(r.code)}</small>{received(r.received_at)}</th>"
        + "".join(cell(r, s) for s in board.drafts)
        + "</tr>"
        for r in board.rows
    )
    outcomes = "".join(verdict(s, board.outcomes[s]) for s in board.drafts) if board.outcomes else ""
    documents = ("<p>Drafts voted on:</p><ul>" + "".join(
        f"<li><b>{e(symbol)}</b>: {e(title)}<br><small>SHA-256 <code style=\"word-break:break-all\">{e(sha256)}"
        "</code></small></li>" for symbol, title, sha256 in board.documents) + "</ul>") if board.documents else ""
    return (
        f"<h1 style=\"font-size:1.3em\">{e(board.title)} <small>[{e(board.vote_id)}]</small></h1>"
        f"<p>Rule: {e(_rule_in_words(board.rule))}<br>Closes: {e(board.when(board.closes_at))}</p>"
        f"{documents}{outcomes}"
        "<div style=\"overflow-x:auto\"><table style=\"border-collapse:collapse;width:100%\">"
        f"<tr><th style=\"text-align:left;{pad}\">Delegation <small style=\"font-weight:normal\">(last ballot)</small>"
        f"</th>{head}</tr>"
        f"{rows}</table></div>"
    )
