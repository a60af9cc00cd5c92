"""The ledger checks itself: what a vote's count rests on is verified before it is counted, reported or published.

`voting audit` checks a bundle offline, after the fact; these checks keep the
service from counting, reporting or signing what the ledger no longer holds
intact: a chain event changed, a raw message whose bytes no longer hash to the
SHA-256 its decision names, a decision row that differs from the event that
chained it, a ballot whose kept SHA-256 of its signed attributes is not its
message's, a ballot token that does not hash to what the chain recorded of it,
a vote whose parameters, drafts (as ballots, results and records show them)
or result differ from its chain, and a published explanation of vote that is
not what its signed message says. The checks are pure functions of ledger
values; `vote_damage` and `ledger_damage` read those values and say, one line
each, what is damaged.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from voting.drafts import opened_entry, states_shown
from voting.errors import LedgerError
from voting.ledger import (
    CHAINED_LATER,
    GENESIS,
    DecisionRecord,
    DraftRecord,
    Event,
    Ledger,
    VoteRecord,
    decision_differences,
    decision_event_data,
    decision_event_json,
    event_hash,
    utc_text,
)
from voting.verdict import BALLOT, STATEMENT

if TYPE_CHECKING:
    from voting.pki import Identity


class Link(Protocol):
    """An event as the ledger holds it or a bundle states it."""

    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def data_json(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def broken_link(events: Sequence[Link]) -> str | None:
    """Where the chain breaks (an event missing, unlinked or changed), or None when it links from genesis:
    every event's link to the one before it, and its hash computed again from its content."""
    previous = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            return f"event {expected_seq} is missing: the chain goes on with {_event_named(event)}"
        if event.prev_hash != previous:
            return f"{_event_named(event)} does not link to the event before it"
        try:
            digest = event_hash(previous, event.seq, event.at, event.kind, event.data_json)
        except TypeError:  # bytes where its text was, left by one who rewrote the ledger
            return f"{_event_named(event)} was changed: a value of it is no longer text"
        if digest != event.hash:
            return f"{_event_named(event)} was changed: its hash does not match its content"
        previous = event.hash
    return None


VOTE_EVENTS = ("vote-opened", "decision", "deadline-moved", "vote-closed")
"""What a vote's chain records; any other kind is no event the service writes, and one that no check reads."""
RECEIVED_EVENTS = ("message-received", "decision")
"""What the ledger's own chain records: the messages as they were received, and the decisions on those bound to
no vote."""


def foreign_event(events: Sequence[Link], kinds: Sequence[str]) -> str | None:
    """The first event of a kind the chain does not record, or None."""
    foreign = next((event for event in events if event.kind not in kinds), None)
    return f"{_event_named(foreign)} is of no kind this chain records" if foreign else None


def misplaced_event(events: Sequence[Link]) -> str | None:
    """Where a vote's chain departs from the one order the service writes it in, or None: opened by its first
    event and only by it, its deadline moved only while it is open, closed at most once, decisions throughout.

    Every check reads the first event of a kind; a second one, linked and
    hashed like the rest, would state another vote or another result to any
    reader that took the last instead.
    """
    foreign = foreign_event(events, VOTE_EVENTS)
    if foreign:
        return foreign
    closed = False
    for position, event in enumerate(events):
        if (event.kind == "vote-opened") != (position == 0):
            return (f"{_event_named(event)} opens the vote again" if position
                    else f"{_event_named(event)} comes before the vote-opened event")
        if closed and event.kind in ("deadline-moved", "vote-closed"):
            return f"{_event_named(event)} follows the vote-closed event"
        closed = closed or event.kind == "vote-closed"
    return None


def _event_named(event: Link) -> str:
    return f"event {event.seq} ({event.kind})"


def message_damage(sha256: str, raw: bytes) -> str | None:
    if hashlib.sha256(raw).hexdigest() == sha256:
        return None
    return f"message {sha256[:16]}: its stored bytes no longer hash to its SHA-256"


def signed_attributes_damage(decision: DecisionRecord, raw: bytes, decryption: Identity | None) -> str | None:
    """A ballot's kept SHA-256 of its signed attributes, which recognises a copy of it, against its message.

    Only where the message can be read: one encrypted to the secretariat only
    with its key (`decryption`); its bytes are checked against their SHA-256 apart.
    """
    from voting.smime.verify import signed_sha256_of  # for events of earlier versions only: status starts without it

    if decision.verdict != BALLOT or decision.signed_sha256 is None:
        return None
    found = signed_sha256_of(raw, decryption)
    if found is None or found == decision.signed_sha256:
        return None
    return (f"decision on message {decision.sha256[:16]} ({decision.code}): its signed attributes no longer hash to"
            " the SHA-256 it keeps of them")


def explanation_damage(decision: DecisionRecord, raw: bytes, drafts: Sequence[str],
                       decryption: Identity | None) -> str | None:
    """The published explanation of a ballot or a statement, read again from its signed message as `judge` read it.

    No chain event records the explanation; the message's bytes, which the
    chain names by their SHA-256, are what the delegation signed. A message
    encrypted to the secretariat is read only with its key (`decryption`):
    without it, its explanation is left to the checks that hold the key.
    """
    from voting.ballot import explained_reply, text_of_entity  # for events of earlier versions only, as above
    from voting.smime.verify import signed_content_of

    if decision.verdict not in (BALLOT, STATEMENT):
        return None
    entity = signed_content_of(raw, decryption)
    if entity is None:
        return None
    _, explanation = explained_reply(text_of_entity(entity), entity, drafts)
    if explanation == decision.explanation:
        return None
    return f"the explanation of {decision.code}'s {decision.verdict} differs from its signed message"


def token_damage(tokens: Mapping[str, str], events: Sequence[Event]) -> list[str]:
    """Each delegation's ballot token against the SHA-256 of it that the vote-opened event recorded."""
    opened = next((e for e in events if e.kind == "vote-opened"), None)
    recorded = opened.data.get("ballot_tokens_sha256", {}) if opened else {}
    held = {code: hashlib.sha256(token.encode()).hexdigest() for code, token in tokens.items()}
    return [f"the ballot token of {code} differs from its chain" for code in sorted({*held, *recorded})
            if held.get(code) != recorded.get(code)]


def chained_decisions(events: Sequence[Event],
                      decisions: Sequence[DecisionRecord]) -> tuple[set[str], dict[Any, dict[str, Any]]]:
    """A chain's decision events against decision rows: the messages (by SHA-256) whose decision the chain records
    exactly as its row holds it, and the data of every other decision event, decoded, by the message it names.

    An event is matched with its row by its stored text, which
    `decision_event_json` writes again from the row, so that a check of a
    large vote decodes only the events that differ from every row: damaged,
    recorded by an earlier version, or on a message whose row is not among
    `decisions` (one bound to no vote, read after).
    """
    sha_of = {d.message: d.sha256 for d in decisions}
    written: dict[str, str] = {}
    for d in decisions:
        superseded = sha_of.get(d.supersedes) if d.supersedes is not None else None
        try:
            text = decision_event_json(d.sha256, d.received_text, d.code, d.verdict, d.reason, d.choices_json,
                                       superseded, d.explanation, d.signed_sha256)
        except (TypeError, AttributeError):  # a value no longer of its type (bytes in a text column): compared below
            continue
        written[text] = d.sha256
    exact: set[str] = set()
    others: dict[Any, dict[str, Any]] = {}
    for event in events:
        if event.kind != "decision":
            continue
        sha = written.get(event.data_json)
        if sha is not None and sha not in exact:
            exact.add(sha)
        else:
            data = event.data
            others[data.get("message")] = data
    return exact, others


def decision_damage(exact: set[str], chained: Mapping[Any, dict[str, Any]],
                    decisions: Sequence[DecisionRecord]) -> list[str]:
    """Each decision row as its chain event recorded it, and no decision event without its row or chained twice;
    `exact` and `chained` as `chained_decisions` gives them."""
    sha_of = {d.message: d.sha256 for d in decisions}
    problems = []
    for d in decisions:
        if d.sha256 in exact:
            continue
        recorded = chained.get(d.sha256)
        if recorded is None:
            problems.append(f"{_decision_named(d)} is not in the chain")
            continue
        superseded = sha_of.get(d.supersedes) if d.supersedes is not None else None
        expected = decision_event_data(d.sha256, d.received_at, d.code, d.verdict, d.reason, d.choices, superseded,
                                       d.explanation, d.signed_sha256)
        differing = decision_differences(expected, recorded)
        if differing:
            problems.append(f"{_decision_named(d)} differs from its chain event in {', '.join(differing)}")
    rows = {d.sha256 for d in decisions}
    problems += [f"the chain records a decision on message {str(sha)[:16]} that no decision row holds"
                 for sha in chained if sha not in rows]
    problems += [f"the chain records the decision on message {str(sha)[:16]} twice" for sha in chained if sha in exact]
    return problems


def _decision_named(decision: DecisionRecord) -> str:
    return f"decision on message {decision.sha256[:16]} ({decision.code or 'no delegation'})"


def vote_record_damage(vote: VoteRecord, drafts: Sequence[DraftRecord], events: Sequence[Event]) -> list[str]:
    """The vote row and its drafts as the chain recorded them: deadline, rule, statement window, electorate, drafts
    (what ballots, results and records show of them too), result."""
    opened = next((e for e in events if e.kind == "vote-opened"), None)
    if opened is None:
        return ["the chain has no vote-opened event"]
    closes_at = opened.data.get("closes_at")
    shown = states_shown(opened.data)
    for event in events:
        if event.kind == "deadline-moved":
            closes_at = event.data.get("to")
    held = {
        "opened_at": utc_text(vote.opened_at),
        "closes_at": utc_text(vote.closes_at),
        "title": vote.title,
        "rule": vote.rule,
        "first_ballot_final": vote.first_ballot_final,
        "quorum": vote.quorum,
        "electorate_sha256": hashlib.sha256(vote.electorate_json.encode()).hexdigest(),
        "drafts": [opened_entry(d.symbol, d.sha256, d.parties_to_dispute, d.sponsors,
                                (d.title, d.file_name, d.media_type) if shown else None) for d in drafts],
        "draft files": [hashlib.sha256(d.content).hexdigest() if not d.text or d.text.encode() == d.content
                        else "a text that is not its file's" for d in drafts],
    }
    if "statement_hours" in opened.data:  # an event recorded before the window was chained holds none
        held["statement_hours"] = vote.statement_hours
    recorded = {**opened.data, "opened_at": opened.at, "closes_at": closes_at,
                "draft files": [d.get("sha256") for d in opened.data.get("drafts", [])]}
    closing = next((e for e in events if e.kind == "vote-closed"), None)
    if vote.closed_at is not None or closing is not None:
        held |= {"closed_at": utc_text(vote.closed_at) if vote.closed_at else None, "outcomes": vote.outcome}
        recorded |= {"closed_at": closing.data.get("closed_at") if closing else None,
                     "outcomes": closing.data.get("outcomes") if closing else None}
    differing = [key for key in held if held[key] != recorded.get(key)]
    return [f"the vote's {key} differs from its chain" for key in differing]


def vote_damage(ledger: Ledger, vote_id: str, *, full: bool = True,
                decryption: Callable[[], Identity | None] = lambda: None) -> list[str]:
    """What is damaged of what the vote's count rests on, each line naming the vote.

    Every event of the vote's chain, every decision it records (its
    explanation and signed attributes included), the vote's row, drafts and
    ballot tokens; in full (before a close or an export) the bytes of every
    message its bundle holds, otherwise (for `voting status`, which must stay
    quick on a large vote) those of what is counted or published: each
    delegation's last ballot and the statements. A decision whose event
    predates the chaining of explanations (`CHAINED_LATER`) has its
    explanation and signed attributes read again from its signed message;
    `decryption` gives the secretariat's identity, which reads those encrypted
    to it; it is asked for only then, so that a check with none to read again
    loads no key.
    """
    try:
        with ledger.snapshot():
            vote = ledger.vote(vote_id)
            events = ledger.events(vote_id)
            decisions = ledger.decisions(vote_id)
            exact, chained = chained_decisions(events, decisions)
            decisions += ledger.decisions(None, among=chained)
            superseded = {d.supersedes for d in decisions}
            read = decisions if full else [d for d in decisions if d.verdict == STATEMENT
                                           or (d.verdict == BALLOT and d.message not in superseded)]
            raws = {d.sha256: ledger.raw_message(d.message) for d in read}
            drafts = ledger.drafts(vote_id)
            tokens = ledger.ballot_tokens(vote_id)
        recorded = vote_record_damage(vote, drafts, events) + token_damage(tokens, events)  # which decode their events
    except LedgerError as error:  # names the rows already
        return [str(error)]
    except sqlite3.DatabaseError as error:
        return [f"vote {vote_id}: its rows cannot be read: {error}"]
    broken = broken_link(events) or misplaced_event(events)
    problems = [f"the chain's {broken}"] if broken else []
    problems += recorded
    problems += decision_damage(exact, chained, decisions)
    damaged = {sha: found for sha, raw in raws.items() if (found := message_damage(sha, raw))}
    problems += damaged.values()
    unchained = [d for d in read if d.sha256 not in exact and not CHAINED_LATER <= chained.get(d.sha256, {}).keys()]
    key = decryption() if unchained else None
    problems += [found for d in unchained if (found := signed_attributes_damage(d, raws[d.sha256], key))]
    symbols = [d.symbol for d in drafts]
    problems += [found for d in unchained if d.sha256 not in damaged  # whose damaged bytes are named already
                 and (found := explanation_damage(d, raws[d.sha256], symbols, key))]
    return [f"vote {vote_id}: {problem}" for problem in problems]


def page_damage(ledger: Ledger) -> list[str]:
    """The database's own check of its pages (`PRAGMA quick_check`), in one line."""
    try:
        return _pages(ledger)
    except sqlite3.DatabaseError as error:
        return [_unreadable(error)]


def _unreadable(error: sqlite3.DatabaseError) -> str:
    return f"the database cannot be read: {error}"


def _pages(ledger: Ledger) -> list[str]:
    pages = [str(row[0]) for row in ledger.db.execute("PRAGMA quick_check")]
    return [] if pages == ["ok"] else [f"the database's pages are damaged: {' '.join(' '.join(pages).split())}"]


def publication_damage(ledger: Ledger, vote_id: str, decryption: Identity) -> list[str]:
    """What stops a vote's result or bundle from being published: a damaged page anywhere in the database (no
    part of it can then be trusted), or anything the vote's count or its record rests on."""
    return page_damage(ledger) + vote_damage(ledger, vote_id, decryption=lambda: decryption)


def ledger_damage(ledger: Ledger, vote_ids: Iterable[str], *, every_message: bool,
                  decryption: Identity | None) -> list[str]:
    """`voting check`: the database's pages, then each vote in full; with `every_message`, also the ledger's own
    chain (the messages as they were received, and the decisions on those bound to no vote) and every message in
    the ledger against its SHA-256."""
    try:
        problems = _pages(ledger)
    except sqlite3.DatabaseError as error:  # nothing else can be read either
        return [_unreadable(error)]
    for vote_id in vote_ids:
        problems += vote_damage(ledger, vote_id, decryption=lambda: decryption)
    if not every_message:
        return problems
    try:
        received = ledger.events("")
        broken = broken_link(received) or foreign_event(received, RECEIVED_EVENTS)
        problems += [f"the chain of messages received: {broken}"] if broken else []
        unbound = ledger.decisions(None)
        exact, chained = chained_decisions(received, unbound)
        problems += [f"the chain of messages received: {found}" for found in decision_damage(exact, chained, unbound)]
    except (LedgerError, sqlite3.DatabaseError) as error:
        problems.append(f"the chain of messages received cannot be checked: {error}")
    try:
        problems += [found for sha, raw in ledger.raw_messages() if (found := message_damage(sha, raw))]
    except (LedgerError, sqlite3.DatabaseError) as error:
        problems.append(f"the messages cannot be read: {error}")
    return problems


def damage_text(problems: Sequence[str]) -> str:
    return "the ledger is damaged: " + "; ".join(problems) + " (voting check names everything damaged)"
