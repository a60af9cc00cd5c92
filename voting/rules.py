"""Voting rules: when a draft is adopted, and a sentence that says why.

Pure functions from an electorate and the choices on a draft to an `Outcome`.
The service, `voting tally` and `voting audit` all decide through `decide`, so
an auditor replays exactly the arithmetic that produced the announced result.
Every threshold (affirmative votes required, the permanent members, a quorum)
comes from the electorate or the vote, never from this module, so that bodies
other than the Security Council fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import NamedTuple

from voting.errors import UsageError
from voting.model import Choice, Condition, ConditionCheck, Electorate, Outcome, RuleSpec, share
from voting.times import readable_time


@dataclass(frozen=True)
class Count:
    """Who did what on one draft; each group in the electorate's order, so no result depends on input order."""

    yes: tuple[str, ...]
    no: tuple[str, ...]
    abstain: tuple[str, ...]
    absent: tuple[str, ...]
    recused: tuple[str, ...] = ()
    """Parties to the dispute whose yes or no was counted as an abstention."""
    cast_at: Mapping[str, datetime] = field(default_factory=dict)
    """When each counted ballot was received, where known: the time of each objection breaking silence."""


@dataclass(frozen=True)
class Thresholds:
    """The numbers a rule needs, resolved and checked once before counting."""

    permanent: frozenset[str]
    required_yes: int = 0
    """Affirmative votes required; 0 for rules that do not use it."""
    quorum: int = 0
    """Members present and voting required; 0 when there is no quorum."""
    measures: Mapping[str, Mapping[str, Fraction]] = field(default_factory=dict)
    """Each member's weight and population, for the conditions that count them."""


class Verdict(NamedTuple):
    adopted: bool
    why: str
    vetoed_by: tuple[str, ...] = ()
    checks: tuple[ConditionCheck, ...] = ()
    with_count: bool = True
    """Whether the reason opens with the count; a silence procedure's outcome is the silence, not a count."""


class Rule(NamedTuple):
    name: str
    summary: str
    judge: Callable[[Count, Thresholds], Verdict]
    needs_required_yes: bool = False
    uses_quorum: bool = False
    recuses_parties: bool = False
    """Parties to a dispute must abstain (UN Charter Article 27(3), decisions under Chapter VI)."""
    extendable: bool = True
    """Whether the deadline may be moved once the vote is open (the Council's 24 hours are not extendable)."""
    spec: RuleSpec | None = None
    """The rule as data, for rules that are conditions on the votes in favour (eu-qmv, a body's own rules)."""
    silence: bool = False
    """A silence procedure: members need not reply unless they object."""


def _plural(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def _codes(codes: Sequence[str]) -> str:
    return ", ".join(codes)


def _required_yes(count: Count, t: Thresholds) -> ConditionCheck:
    return ConditionCheck(f"at least {t.required_yes} affirmative votes", len(count.yes) >= t.required_yes,
                          _plural(len(count.yes), "affirmative vote", "affirmative votes"))


def _unsc_procedural(count: Count, t: Thresholds) -> Verdict:
    check = _required_yes(count, t)
    return Verdict(check.met, "" if check.met else f"{t.required_yes} affirmative votes required", checks=(check,))


def _no_veto(count: Count, permanent: frozenset[str]) -> tuple[tuple[str, ...], ConditionCheck]:
    vetoes = tuple(code for code in count.no if code in permanent)
    found = f"negative vote of {_codes(vetoes)}" if vetoes else "no negative vote of a permanent member"
    return vetoes, ConditionCheck("no negative vote of a permanent member", not vetoes, found)


def _vetoed(on_count: Verdict, count: Count, permanent: frozenset[str]) -> Verdict:
    """A permanent member's no defeats a draft; it is recorded as a veto only if the draft had the votes.

    A draft short of the required votes failed on the count, and, as in UN
    practice, no veto is recorded for it even if permanent members voted
    against. A permanent member's abstention or absence is not a veto.
    """
    vetoes, check = _no_veto(count, permanent)
    checked = on_count._replace(checks=(*on_count.checks, check))
    if not on_count.adopted or not vetoes:
        return checked
    members = "permanent member" if len(vetoes) == 1 else "permanent members"
    return checked._replace(adopted=False, why=f"negative vote of {members} {_codes(vetoes)}", vetoed_by=vetoes)


def _unsc_substantive(count: Count, t: Thresholds) -> Verdict:
    return _vetoed(_unsc_procedural(count, t), count, t.permanent)


def _quorum(count: Count, t: Thresholds) -> tuple[ConditionCheck, ...]:
    present = len(count.yes) + len(count.no)
    if not t.quorum:
        return ()
    return (ConditionCheck(f"at least {t.quorum} members present and voting", present >= t.quorum,
                           f"{present} present and voting"),)


def _among_present(count: Count, t: Thresholds, majority: ConditionCheck, requirement: str) -> Verdict:
    """A majority rule's verdict: the quorum (members present and voting) first, then the majority itself."""
    quorum = _quorum(count, t)
    checks = (*quorum, majority)
    if quorum and not quorum[0].met:
        return Verdict(False, f"quorum not met: {quorum[0].found}, {t.quorum} required", checks=checks)
    return Verdict(majority.met, "" if majority.met else requirement, checks=checks)


def _simple_majority(count: Count, t: Thresholds) -> Verdict:
    yes, no = len(count.yes), len(count.no)
    majority = ConditionCheck("more votes in favour than against", yes > no, f"{yes} in favour, {no} against")
    return _among_present(count, t, majority, "more votes in favour than against required")


def _two_thirds(count: Count, t: Thresholds) -> Verdict:
    yes, no = len(count.yes), len(count.no)
    majority = ConditionCheck("at least two thirds of members present and voting in favour",
                              yes > 0 and yes >= 2 * no, f"{yes} of {yes + no} present and voting in favour")
    return _among_present(count, t, majority, "two thirds of members present and voting required in favour")


def _unanimity(count: Count, t: Thresholds) -> Verdict:
    missing = [
        f"{label} {_codes(codes)}"
        for label, codes in (("against:", count.no), ("abstaining:", count.abstain), ("absent:", count.absent))
        if codes
    ]
    members = len(count.yes) + len(count.no) + len(count.abstain) + len(count.absent)
    check = ConditionCheck("every member votes in favour", not missing, f"{len(count.yes)} of {members} in favour")
    if not missing:
        return Verdict(True, "", checks=(check,))
    return Verdict(False, f"every member's vote in favour required ({'; '.join(missing)})", checks=(check,))


def _silence(count: Count, t: Thresholds) -> Verdict:
    """Adopted unless a member objects before the deadline; each objection is named with the time it came."""
    objections = [
        f"{code} (objection received {readable_time(count.cast_at[code])})" if code in count.cast_at else code
        for code in count.no
    ]
    check = ConditionCheck("no member objects before the deadline", not objections,
                           f"silence broken by {_codes(objections)}" if objections else "no objection")
    if objections:
        return Verdict(False, check.found, checks=(check,), with_count=False)
    return Verdict(True, "under the silence procedure, no member having broken silence before the deadline",
                   checks=(check,), with_count=False)


# --- rules as data -------------------------------------------------------------------------------

_MEMBERS_OF_BASE = {"members": "members", "present": "members present", "present-and-voting": "members present and voting"}
_OF_BASE = {"members": "", "present": " of members present", "present-and-voting": " of members present and voting"}


def _whose(condition: Condition) -> str:
    """What a share is taken of, in words: "members present and voting", "the population"."""
    if condition.counts == "members":
        return _MEMBERS_OF_BASE[condition.base]
    return f"the {condition.counts}{_OF_BASE[condition.base]}"


def _number(value: Fraction) -> str:
    """A weight or a population as written: 447,364,000 or 12.5."""
    if value.denominator == 1:
        return f"{value.numerator:,}"
    return f"{Decimal(value.numerator) / Decimal(value.denominator):,.6f}".rstrip("0").rstrip(".")


def _percent(part: Fraction, whole: Fraction, threshold: Fraction) -> str:
    """The share as a percentage rounded down, with as many decimals as it takes not to look equal to the threshold.

    Rounding down never shows a share that fails "at least 65%" as 65.00%.
    """
    value = part / whole * 100
    for decimals in range(2, 9):
        shown = Fraction(math.floor(value * 10**decimals), 10**decimals)
        if shown != threshold * 100 or value == shown:
            break
    return f"{Decimal(shown.numerator) / Decimal(shown.denominator):.{decimals}f}%"


def _condition(condition: Condition, count: Count, t: Thresholds) -> tuple[ConditionCheck, str]:
    """The condition checked on the count, and the clause the outcome states it in."""
    def measure(code: str) -> Fraction:
        return Fraction(1) if condition.counts == "members" else t.measures[condition.counts][code]

    in_base = {
        "members": (*count.yes, *count.no, *count.abstain, *count.absent),
        "present": (*count.yes, *count.no, *count.abstain),
        "present-and-voting": (*count.yes, *count.no),
    }[condition.base]
    in_favour = sum((measure(code) for code in count.yes), Fraction(0))
    base = sum((measure(code) for code in in_base), Fraction(0))
    if condition.at_least is not None:
        minimum = Fraction(condition.at_least)
        met = in_favour >= minimum
        if condition.counts == "members":
            required, found = f"at least {_number(minimum)} members", f"{_number(in_favour)} members in favour"
        else:
            required = f"a {condition.counts} of at least {_number(minimum)}"
            found = f"a {condition.counts} of {_number(in_favour)} in favour"
        clause = f"{found}, at least {_number(minimum)} required"
    else:
        written = condition.at_least_share or condition.more_than_share or ""
        threshold = share(written)
        strictly = condition.more_than_share is not None
        at = "more than" if strictly else "at least"
        required = f"{at} {written} of {_whose(condition)}"
        met = base > 0 and (in_favour > threshold * base if strictly else in_favour >= threshold * base)
        percent = _percent(in_favour, base, threshold) if base else "0%"
        clause = f"{percent} of {_whose(condition)} in favour, {at} {written} required"
        found = f"{percent} of {_whose(condition)} in favour ({_number(in_favour)} of {_number(base)})"
    required += " in favour"
    if condition.blocking_minority is not None:
        required += (f", unless fewer than {condition.blocking_minority} members are not in favour"
                     " (no blocking minority)")
        not_in_favour = len(count.no) + len(count.abstain) + len(count.absent)
        if not met and not_in_favour < condition.blocking_minority:
            met = True
            minority = (f"but only {_plural(not_in_favour, 'member', 'members')} not in favour, fewer than the"
                        f" {condition.blocking_minority} of a blocking minority")
            found, clause = f"{found}, {minority}", f"{clause}, {minority}"
    return ConditionCheck(required, met, found), clause


def _by_conditions(spec: RuleSpec, count: Count, t: Thresholds) -> Verdict:
    """Adopted when every condition holds (and the quorum, and no veto); the clauses say which decided it."""
    quorum = _quorum(count, t)
    if quorum and not quorum[0].met:
        return Verdict(False, f"quorum not met: {quorum[0].found}, {t.quorum} required", checks=quorum)
    judged = [_condition(condition, count, t) for condition in spec.conditions]
    checks = (*quorum, *(check for check, _ in judged))
    adopted = all(check.met for check, _ in judged)
    why = "; ".join(clause for check, clause in judged if check.met == adopted)
    verdict = Verdict(adopted, why, checks=checks)
    return _vetoed(verdict, count, t.permanent) if spec.veto else verdict


def _rule_of(name: str, spec: RuleSpec) -> Rule:
    return Rule(name, spec.summary, partial(_by_conditions, spec), uses_quorum=True, extendable=spec.extendable,
                spec=spec)


def _eu(summary: str, members: str, blocking_minority: int | None, at_least_members: int | None) -> RuleSpec:
    conditions = [Condition(at_least_share=members)]
    if at_least_members is not None:
        conditions.append(Condition(at_least=Decimal(at_least_members)))
    conditions.append(Condition(counts="population", at_least_share="65%", blocking_minority=blocking_minority))
    return RuleSpec(summary=summary, conditions=conditions)


PRESETS: Mapping[str, RuleSpec] = {
    "eu-qmv": _eu(
        "qualified majority of the Council of the EU (TEU Article 16(4)): at least 55% of members, at least 15,"
        " representing at least 65% of the population; a blocking minority needs at least 4 members",
        "55%", 4, 15,
    ),
    "eu-qmv-reinforced": _eu(
        "reinforced qualified majority of the Council of the EU (TFEU Article 238(2)), for a proposal not from the"
        " Commission or the High Representative: at least 72% of members representing at least 65% of the population",
        "72%", None, None,
    ),
    "weighted-majority": RuleSpec(
        summary="more than half of the weight of members present and voting in favour (a board's or shareholders'"
                " vote; for another threshold, write the rule in the electorate file)",
        conditions=[Condition(counts="weight", base="present-and-voting", more_than_share="50%")],
    ),
}
"""The named rules that are data: a body's own rule in its electorate file is written the same way."""

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
        Rule("silence", "silence procedure: adopted unless a member objects before the deadline", _silence,
             silence=True),
    )
} | {name: _rule_of(name, spec) for name, spec in PRESETS.items()}


def check(
    rule: str, electorate: Electorate, *, quorum: int | None = None, parties_to_dispute: Sequence[str] = ()
) -> tuple[Rule, Thresholds]:
    """Check a rule's parameters against the electorate; call it when a vote opens, not only when it closes."""
    found = resolve(rule, electorate)
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
        raise UsageError(f"rule {rule} has no quorum; only majority rules and rules of conditions take one")
    candidates = (quorum, found.spec.quorum if found.spec else None, electorate.quorum)
    resolved_quorum = next((q for q in candidates if q is not None), None)
    if not found.uses_quorum or resolved_quorum is None:
        resolved_quorum = 0
    elif not 1 <= resolved_quorum <= size:
        raise UsageError(f"quorum {resolved_quorum} is not between 1 and the {size} members of the electorate")
    if parties_to_dispute:
        if not found.recuses_parties:
            raise UsageError(f"rule {rule} does not take parties to a dispute; only unsc-substantive does")
        _known(electorate, parties_to_dispute, "party to the dispute")
    measures = _measures(found, electorate) if found.spec else {}
    return found, Thresholds(electorate.permanent, required_yes, resolved_quorum, measures)


def resolve(rule: str, electorate: Electorate) -> Rule:
    """A named rule built in, or one the electorate file defines; a file may not redefine a built-in name."""
    if rule in RULES and rule in electorate.rules:
        raise UsageError(f"electorate {electorate.name!r} defines a rule {rule!r}, the name of a rule built in;"
                         " give the body's rule a name of its own")
    if rule in electorate.rules:
        return _rule_of(rule, electorate.rules[rule])
    if rule not in RULES:
        raise UsageError(f"unknown rule {rule!r}: choose one of {', '.join([*RULES, *electorate.rules])}")
    return RULES[rule]


def _measures(rule: Rule, electorate: Electorate) -> dict[str, dict[str, Fraction]]:
    """Each member's weight or population, for the conditions that count them; every member must have one."""
    assert rule.spec is not None
    measures: dict[str, dict[str, Fraction]] = {}
    size = len(electorate.delegation)
    for condition in rule.spec.conditions:
        if condition.counts == "members":
            if condition.at_least is not None and condition.at_least > size:
                raise UsageError(f"rule {rule.name} requires at least {condition.at_least} members in favour but"
                                 f" electorate {electorate.name!r} has only {size} members")
            continue
        values = {d.code: getattr(d, condition.counts) for d in electorate.delegation}
        missing = [code for code, value in values.items() if value is None]
        if missing:
            raise UsageError(f"rule {rule.name} counts {condition.counts}, but electorate {electorate.name!r} gives"
                             f" none for {_codes(missing)}")
        if not any(values.values()):
            raise UsageError(f"rule {rule.name} counts {condition.counts}, but every member's is 0 in electorate"
                             f" {electorate.name!r}")
        measures[condition.counts] = {code: Fraction(value) for code, value in values.items()}
    return measures


def _known(electorate: Electorate, codes: Sequence[str], role: str) -> None:
    unknown = sorted(set(codes) - set(electorate.codes))
    if unknown:
        raise UsageError(f"{role} {_codes(unknown)} not in electorate {electorate.name!r}")


def _choice(code: str, value: Choice | str) -> Choice:
    try:
        return Choice(value)
    except ValueError:
        raise UsageError(f"delegation {code}: {value!r} is not a choice; use yes, no or abstain") from None


def _count(
    electorate: Electorate, choices: Mapping[str, Choice], parties: Sequence[str], cast_at: Mapping[str, datetime]
) -> Count:
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
    times = {code: cast_at[code] for code in electorate.codes if code in choices and code in cast_at}
    return Count(yes, no, abstain, tuple(absent), tuple(recused), times)


def _reason(count: Count, verdict: Verdict) -> str:
    if not verdict.with_count:
        return f"{verdict.why}."
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
    cast_at: Mapping[str, datetime] | None = None,
) -> Outcome:
    """Decide one draft. A member missing from `choices` is absent; `cast_at` is when each ballot counted came.

    Parties to a dispute (a Chapter VI draft under unsc-substantive) must
    abstain; if one votes yes or no anyway, the vote is counted as an
    abstention rather than rejected, so the draft is still decided on time,
    and the reason says so.
    """
    found, thresholds = check(rule, electorate, quorum=quorum, parties_to_dispute=parties_to_dispute)
    _known(electorate, list(choices), "delegation")
    count = _count(electorate, choices, parties_to_dispute, cast_at or {})
    verdict = found.judge(count, thresholds)
    return Outcome(
        adopted=verdict.adopted,
        yes=len(count.yes),
        no=len(count.no),
        abstain=len(count.abstain),
        absent=len(count.absent),
        vetoed_by=verdict.vetoed_by,
        reason=_reason(count, verdict),
        conditions=verdict.checks,
    )


def decide_all(
    rule: str,
    electorate: Electorate,
    votes: Mapping[str, Mapping[str, Choice]],
    *,
    quorum: int | None = None,
    parties_to_dispute: Mapping[str, Sequence[str]] | None = None,
    cast_at: Mapping[str, Mapping[str, datetime]] | None = None,
) -> dict[str, Outcome]:
    """Decide every draft of one vote; `parties_to_dispute` and `cast_at` are per draft symbol."""
    parties = parties_to_dispute or {}
    strays = sorted(set(parties) - set(votes))
    if strays:
        raise UsageError(f"parties to a dispute given for {_codes(strays)}, which is not among the drafts voted on")
    return {
        symbol: decide(rule, electorate, choices, quorum=quorum, parties_to_dispute=parties.get(symbol, ()),
                       cast_at=(cast_at or {}).get(symbol))
        for symbol, choices in votes.items()
    }
