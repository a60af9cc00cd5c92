"""Voting rules: when a draft is adopted, and a sentence that says why.

Pure functions from an electorate and the choices on a draft to an `Outcome`.
The service, `voting tally` and `voting audit` all decide through `decide`, so
an auditor replays exactly the arithmetic that produced the announced result.
Every threshold (affirmative votes required, the permanent members, a quorum)
comes from the electorate or the vote, never from this module, so that bodies
other than the Security Council fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from voting.errors import UsageError
from voting.model import Choice, Electorate, Outcome


@dataclass(frozen=True)
class Count:
    """Who did what on one draft; each group in the electorate's order, so no result depends on input order."""

    yes: tuple[str, ...]
    no: tuple[str, ...]
    abstain: tuple[str, ...]
    absent: tuple[str, ...]
    recused: tuple[str, ...] = ()
    """Parties to the dispute whose yes or no was counted as an abstention."""


@dataclass(frozen=True)
class Thresholds:
    """The numbers a rule needs, resolved and checked once before counting."""

    permanent: frozenset[str]
    required_yes: int = 0
    """Affirmative votes required; 0 for rules that do not use it."""
    quorum: int = 0
    """Members present and voting required; 0 when there is no quorum."""


@dataclass(frozen=True)
class Verdict:
    adopted: bool
    why: str
    vetoed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    name: str
    summary: str
    judge: Callable[[Count, Thresholds], Verdict]
    needs_required_yes: bool = False
    uses_quorum: bool = False
    recuses_parties: bool = False
    """Parties to a dispute must abstain (UN Charter Article 27(3), decisions under Chapter VI)."""
    extendable: bool = True
    """Whether the deadline may be moved once the vote is open (the Council's 24 hours are not extendable)."""


def _plural(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _codes(codes: Sequence[str]) -> str:
    return ", ".join(codes)


def _unsc_procedural(count: Count, t: Thresholds) -> Verdict:
    if len(count.yes) >= t.required_yes:
        return Verdict(True, "")
    return Verdict(False, f"{t.required_yes} affirmative votes required")


def _unsc_substantive(count: Count, t: Thresholds) -> Verdict:
    """A permanent member's no defeats a draft; it is recorded as a veto only if the draft had the votes.

    A draft short of the required affirmative votes failed on the count, and,
    as in UN practice, no veto is recorded for it even if permanent members
    voted against. A permanent member's abstention or absence is not a veto.
    """
    on_count = _unsc_procedural(count, t)
    vetoes = tuple(code for code in count.no if code in t.permanent)
    if not on_count.adopted or not vetoes:
        return on_count
    members = "permanent member" if len(vetoes) == 1 else "permanent members"
    return Verdict(False, f"negative vote of {members} {_codes(vetoes)}", vetoes)


def _among_present(count: Count, t: Thresholds, passed: bool, requirement: str) -> Verdict:
    """A majority rule's verdict: the quorum (members present and voting) first, then the majority itself."""
    present = len(count.yes) + len(count.no)
    if present < t.quorum:
        return Verdict(False, f"quorum not met: {present} present and voting, {t.quorum} required")
    return Verdict(passed, "" if passed else requirement)


def _simple_majority(count: Count, t: Thresholds) -> Verdict:
    yes, no = len(count.yes), len(count.no)
    return _among_present(count, t, yes > no, "more votes in favour than against required")


def _two_thirds(count: Count, t: Thresholds) -> Verdict:
    yes, no = len(count.yes), len(count.no)
    return _among_present(
        count, t, yes > 0 and yes >= 2 * no, "two thirds of members present and voting required in favour"
    )


def _unanimity(count: Count, t: Thresholds) -> Verdict:
    missing = [
        f"{label} {_codes(codes)}"
        for label, codes in (("against:", count.no), ("abstaining:", count.abstain), ("absent:", count.absent))
        if codes
    ]
    if not missing:
        return Verdict(True, "")
    return Verdict(False, f"every member's vote in favour required ({'; '.join(missing)})")


def _silence(count: Count, t: Thresholds) -> Verdict:
    if count.no:
        return Verdict(False, f"silence broken by {_codes(count.no)}")
    return Verdict(True, "no member objected")


RULES: Mapping[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "unsc-substantive",
            "UN Charter Article 27(3): the required affirmative votes (nine in the Security Council),"
            " including the concurring votes of the permanent members; a party to a dispute abstains",
            _unsc_substantive,
            needs_required_yes=True,
            recuses_parties=True,
            extendable=False,
        ),
        Rule(
            "unsc-procedural",
            "UN Charter Article 27(2): the required affirmative votes (nine in the Security Council)",
            _unsc_procedural,
            needs_required_yes=True,
            extendable=False,
        ),
        Rule(
            "simple-majority", "more yes than no among members present and voting", _simple_majority, uses_quorum=True
        ),
        Rule("two-thirds", "yes at least twice no among members present and voting", _two_thirds, uses_quorum=True),
        Rule("unanimity", "every member votes yes", _unanimity),
        Rule("silence", "adopted unless a member votes no", _silence),
    )
}


def check(
    rule: str, electorate: Electorate, *, quorum: int | None = None, parties_to_dispute: Sequence[str] = ()
) -> tuple[Rule, Thresholds]:
    """Check a rule's parameters against the electorate; call it when a vote opens, not only when it closes."""
    found = RULES.get(rule)
    if found is None:
        raise UsageError(f"unknown rule {rule!r}: choose one of {', '.join(RULES)}")
    size = len(electorate.delegation)
    if size == 0:
        raise UsageError(f"electorate {electorate.name!r} has no members")
    required_yes = 0
    if found.needs_required_yes:
        if electorate.required_yes is None:
            raise UsageError(f"rule {rule} needs required_yes in electorate {electorate.name!r}")
        if electorate.required_yes > size:
            raise UsageError(
                f"electorate {electorate.name!r} requires {electorate.required_yes} affirmative votes "
                f"but has only {size} members"
            )
        required_yes = electorate.required_yes
    if quorum is not None and not found.uses_quorum:
        raise UsageError(f"rule {rule} has no quorum; only simple-majority and two-thirds take one")
    resolved_quorum = quorum if quorum is not None else electorate.quorum
    if not found.uses_quorum or resolved_quorum is None:
        resolved_quorum = 0
    elif not 1 <= resolved_quorum <= size:
        raise UsageError(f"quorum {resolved_quorum} is not between 1 and the {size} members of the electorate")
    if parties_to_dispute:
        if not found.recuses_parties:
            raise UsageError(f"rule {rule} does not take parties to a dispute; only unsc-substantive does")
        _known(electorate, parties_to_dispute, "party to the dispute")
    return found, Thresholds(electorate.permanent, required_yes, resolved_quorum)


def _known(electorate: Electorate, codes: Sequence[str], role: str) -> None:
    unknown = sorted(set(codes) - set(electorate.codes))
    if unknown:
        raise UsageError(f"{role} {_codes(unknown)} not in electorate {electorate.name!r}")


def _choice(code: str, value: Choice | str) -> Choice:
    try:
        return Choice(value)
    except ValueError:
        raise UsageError(f"delegation {code}: {value!r} is not a choice; use yes, no or abstain") from None


def _count(electorate: Electorate, choices: Mapping[str, Choice], parties: Sequence[str]) -> Count:
    groups: dict[Choice, list[str]] = {choice: [] for choice in Choice}
    absent: list[str] = []
    recused: list[str] = []
    for code in electorate.codes:
        if code not in choices:
            absent.append(code)
            continue
        choice = _choice(code, choices[code])
        if code in parties and choice is not Choice.ABSTAIN:
            recused.append(code)
            choice = Choice.ABSTAIN
        groups[choice].append(code)
    yes, no, abstain = (tuple(groups[choice]) for choice in (Choice.YES, Choice.NO, Choice.ABSTAIN))
    return Count(yes, no, abstain, tuple(absent), tuple(recused))


def _reason(count: Count, verdict: Verdict) -> str:
    tally = (
        f"{len(count.yes)} in favour, {len(count.no)} against, "
        f"{_plural(len(count.abstain), 'abstention', 'abstentions')}"
    )
    if count.absent:
        tally += f", {len(count.absent)} absent"
    clauses = [tally, verdict.why] if verdict.why else [tally]
    if count.recused:
        parties = "a party" if len(count.recused) == 1 else "parties"
        clauses.append(
            f"{_codes(count.recused)}, as {parties} to the dispute, counted as abstaining (Charter Article 27(3))"
        )
    return f"{'; '.join(clauses)}."


def decide(
    rule: str,
    electorate: Electorate,
    choices: Mapping[str, Choice],
    *,
    quorum: int | None = None,
    parties_to_dispute: Sequence[str] = (),
) -> Outcome:
    """Decide one draft. A member missing from `choices` is absent.

    Parties to a dispute (a Chapter VI draft under unsc-substantive) must
    abstain; if one votes yes or no anyway, the vote is counted as an
    abstention rather than rejected, so the draft is still decided on time,
    and the reason says so.
    """
    found, thresholds = check(rule, electorate, quorum=quorum, parties_to_dispute=parties_to_dispute)
    _known(electorate, list(choices), "delegation")
    count = _count(electorate, choices, parties_to_dispute)
    verdict = found.judge(count, thresholds)
    return Outcome(
        adopted=verdict.adopted,
        yes=len(count.yes),
        no=len(count.no),
        abstain=len(count.abstain),
        absent=len(count.absent),
        vetoed_by=verdict.vetoed_by,
        reason=_reason(count, verdict),
    )


def decide_all(
    rule: str,
    electorate: Electorate,
    votes: Mapping[str, Mapping[str, Choice]],
    *,
    quorum: int | None = None,
    parties_to_dispute: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Outcome]:
    """Decide every draft of one vote; `parties_to_dispute` is per draft symbol."""
    parties = parties_to_dispute or {}
    strays = sorted(set(parties) - set(votes))
    if strays:
        raise UsageError(f"parties to a dispute given for {_codes(strays)}, which is not among the drafts voted on")
    return {
        symbol: decide(rule, electorate, choices, quorum=quorum, parties_to_dispute=parties.get(symbol, ()))
        for symbol, choices in votes.items()
    }
