"""The vote's hash chain, and the manifest's parameters, tokens, decisions and close against its events."""

from __future__ import annotations

import hashlib

from voting.audit.checks import Check, short
from voting.drafts import opened_entry, states_shown
from voting.integrity import broken_link, misplaced_event
from voting.ledger import GENESIS, decision_differences, decision_event_data, utc_text
from voting.manifest import EventEntry, Manifest


def first_event(manifest: Manifest, kind: str) -> EventEntry | None:
    return next((e for e in manifest.chain.events if e.kind == kind), None)


def chain_check(manifest: Manifest) -> Check:
    events = manifest.chain.events
    broken = broken_link(events) or misplaced_event(events)
    if broken:
        return Check("hash chain", False, broken)
    last = events[-1].hash if events else GENESIS
    if last != manifest.chain.head:
        return Check("hash chain", False, f"the head {manifest.chain.head} is not the last event's hash {last}")
    return Check("hash chain", True, f"{len(events)} events link from genesis to head {last}")


def parameter_check(manifest: Manifest) -> Check:
    """The vote as the manifest states it is the vote as the chain recorded it."""
    opened = first_event(manifest, "vote-opened")
    if opened is None:
        return Check("vote parameters", False, "the chain has no vote-opened event")
    vote = manifest.vote
    data = opened.data
    closes_at = data.get("closes_at")
    shown = states_shown(data)
    for event in manifest.chain.events:
        if event.kind == "deadline-moved":
            closes_at = event.data.get("to")
    stated = {
        "opened_at": utc_text(vote.opened_at),
        "title": vote.title,
        "rule": vote.rule,
        "closes_at": utc_text(vote.closes_at),
        "first_ballot_final": vote.first_ballot_final,
        "quorum": vote.quorum,
        "drafts": [opened_entry(d.symbol, d.sha256, d.parties, d.sponsors,
                                (d.title, d.file_name, d.media_type) if shown else None) for d in manifest.drafts],
    }
    if "statement_hours" in data:  # an event recorded before the window was chained holds none
        stated["statement_hours"] = vote.statement_hours
    chained = {**{key: data.get(key) for key in stated}, "opened_at": opened.at, "closes_at": closes_at}
    differing = [key for key in stated if stated[key] != chained[key]]
    if differing:
        return Check("vote parameters", False, "the manifest differs from the chain in "
                     + ", ".join(f"{key} ({stated[key]!r}, chain {chained[key]!r})" for key in differing))
    return Check("vote parameters", True, f"{vote.rule}, closes {stated['closes_at']}, as the chain records")


def token_check(manifest: Manifest) -> Check:
    opened = first_event(manifest, "vote-opened")
    recorded = opened.data.get("ballot_tokens_sha256") if opened else None
    hashed = {code: hashlib.sha256(token.encode()).hexdigest() for code, token in manifest.ballot_tokens.items()}
    if not isinstance(recorded, dict) or hashed != recorded:
        recorded = recorded if isinstance(recorded, dict) else {}
        wrong = sorted(code for code in set(hashed) | set(recorded) if hashed.get(code) != recorded.get(code))
        return Check("ballot tokens", False, f"tokens not as hashed when the vote opened: {', '.join(wrong) or 'none'}")
    return Check("ballot tokens", True, f"{len(hashed)} tokens hash to the vote-opened event's values")


def decision_check(manifest: Manifest) -> Check:
    """Every message listed has its decision event in the vote's chain, and the chain records no other.

    Messages bound to no vote are in the chain too, so none can be left out of
    the bundle unnoticed.
    """
    events = {e.data.get("message"): e.data for e in manifest.chain.events if e.kind == "decision"}
    listed_messages = manifest.messages
    problems = []
    for entry in listed_messages:
        expected = decision_event_data(entry.sha256, entry.received_at, entry.code, entry.verdict,
                                       entry.reason.value if entry.reason else None,
                                       {symbol: str(choice) for symbol, choice in entry.choices.items()},
                                       entry.supersedes, entry.explanation, entry.signed_sha256)
        recorded = events.get(entry.sha256)
        if recorded is None:
            problems.append(f"message {short(entry.sha256)}… has no decision event in the chain")
        elif differing := decision_differences(expected, recorded) or sorted(recorded.keys() - expected.keys()):
            problems.append(f"message {short(entry.sha256)}… differs from its decision event in {', '.join(differing)}")
    listed = {m.sha256 for m in listed_messages}
    problems += [f"the chain records a decision on message {short(str(sha))}…, which the manifest does not list"
                 for sha in events if sha not in listed]
    if problems:
        return Check("decisions", False, "; ".join(problems))
    return Check("decisions", True, f"{len(listed_messages)} messages match the chain's decision events one to one")


def closing_check(manifest: Manifest) -> Check:
    closing = first_event(manifest, "vote-closed")
    if closing is None:
        return Check("closing", False, "the chain has no vote-closed event")
    stated = {
        "closed_at": utc_text(manifest.vote.closed_at),
        "outcomes": {symbol: o.model_dump() for symbol, o in manifest.outcomes.items()},
        "counted": {symbol: {code: e.message for code, e in codes.items()} for symbol, codes in manifest.counted.items()},
    }
    differing = [key for key in stated if stated[key] != closing.data.get(key)]
    if differing:
        return Check("closing", False, f"the manifest's {', '.join(differing)} differ from the vote-closed event")
    return Check("closing", True, f"closed at {stated['closed_at']}, outcomes and counted ballots as the chain records")
