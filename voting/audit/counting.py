"""The count and the outcome, recomputed from the verified ballots under the vote's rule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from voting import rules
from voting.audit.checks import Check, short
from voting.audit.replay import vote_view
from voting.errors import VotingError
from voting.manifest import Manifest
from voting.model import Choice, Electorate
from voting.verdict import BALLOT, CountedBallot, counted_ballots, counted_choices, received_times


def recount(manifest: Manifest) -> tuple[dict[str, dict[str, Choice]], dict[str, dict[str, datetime]], list[Check]]:
    """The counted choice per delegation and draft, and when its ballot came, recomputed from the verified ballots."""
    view = vote_view(manifest.vote, [d.symbol for d in manifest.drafts], manifest.ballot_tokens)
    ballots = [
        (m.code, CountedBallot(m.sha256, m.received_at, m.choices, index))
        for index, m in enumerate(manifest.messages)
        if m.verdict == BALLOT and m.vote_id == view.id and m.code and m.received_at < view.deadline
    ]
    latest_of = counted_ballots(ballots, view.drafts)
    expected = counted_choices(ballots, view.drafts)
    checks = []
    for symbol in sorted(set(view.drafts) | set(manifest.counted)):
        recorded = manifest.counted.get(symbol, {})
        should = expected.get(symbol)
        if should is None:
            checks.append(Check(f"counted {symbol}", False, f"{symbol} is not a draft of this vote"))
            continue
        problems = []
        for code in sorted(set(should) | set(recorded)):
            entry = recorded.get(code)
            if entry is None:
                problems.append(f"{code}'s ballot ({should[code]}) is not counted")
                continue
            latest = latest_of[symbol].get(code)
            if latest is None:
                problems.append(f"{code} is counted ({entry.choice}) but sent no valid ballot on time for it")
                continue
            if entry.message != latest.message or entry.choice != should[code]:
                problems.append(f"{code} is counted {entry.choice} from message {short(entry.message)}…, but its "
                                f"last valid ballot on time is {short(latest.message)}… ({should[code]})")
        if problems:
            checks.append(Check(f"counted {symbol}", False, "; ".join(problems)))
        else:
            tally = Counter(str(choice) for choice in should.values())
            checks.append(Check(f"counted {symbol}", True, f"{len(should)} ballots counted: "
                                + ", ".join(f"{n} {c}" for c, n in sorted(tally.items()))))
    return expected, received_times(latest_of), checks


def outcome_checks(manifest: Manifest, snapshot: Electorate | None, counted: Mapping[str, Mapping[str, Choice]],
                   cast_at: Mapping[str, Mapping[str, datetime]]) -> list[Check]:
    checks = []
    for draft in manifest.drafts:
        name = f"outcome {draft.symbol}"
        recorded = manifest.outcomes.get(draft.symbol)
        if recorded is None:
            checks.append(Check(name, False, "the manifest records no outcome for this draft"))
            continue
        if snapshot is None:
            checks.append(Check(name, False, "cannot be decided: the electorate snapshot is unreadable"))
            continue
        try:
            outcome = rules.decide(manifest.vote.rule, snapshot, counted.get(draft.symbol, {}),
                                   quorum=manifest.vote.quorum, parties_to_dispute=draft.parties,
                                   cast_at=cast_at.get(draft.symbol))
        except VotingError as error:
            checks.append(Check(name, False, f"cannot be decided under {manifest.vote.rule}: {error}"))
            continue
        if outcome.as_dict() == recorded.model_dump():
            checks.append(Check(name, True, outcome.stated))
        else:
            checks.append(Check(name, False, f"recorded {'adopted' if recorded.adopted else 'not adopted'} "
                                             f"{recorded.yes}-{recorded.no}-{recorded.abstain}; the rule "
                                             f"{manifest.vote.rule} gives: {outcome.stated}"))
    extra = sorted(set(manifest.outcomes) - {d.symbol for d in manifest.drafts})
    if extra:
        checks.append(Check("outcomes", False, f"outcomes recorded for drafts not voted on: {', '.join(extra)}"))
    return checks
