"""Voting rules, checked against the Security Council's real votes of 2020 and the rules' edges."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voting.electorate import dump_electorate, parse_electorate
from voting.errors import UsageError
from voting.model import Choice, Electorate
from voting.rules import RULES, check, decide, decide_all

EU = parse_electorate((Path(__file__).parents[1] / "voting" / "data" / "eu-2026.toml").read_text(encoding="utf-8"))
EU_TOTAL = 449_215_816

PERMANENT = ("CHN", "FRA", "RUS", "GBR", "USA")
ELECTED = ("BEL", "DOM", "EST", "DEU", "IDN", "NER", "VCT", "ZAF", "TUN", "VNM")
MEMBERS = PERMANENT + ELECTED

YES, NO, ABSTAIN = Choice.YES, Choice.NO, Choice.ABSTAIN


def unsc(**overrides: object) -> Electorate:
    """The Security Council of 2020: 15 members, 9 affirmative votes required, five permanent members."""
    return Electorate.model_validate(
        {
            "name": "UNSC 2020",
            "required_yes": 9,
            "delegation": [
                {"code": code, "name": code, "permanent": code in PERMANENT, "weight": i + 1,
                 "population": (i + 1) * 1_000_000}
                for i, code in enumerate(MEMBERS)
            ],
            **overrides,
        }
    )


def votes(yes: tuple[str, ...] = (), no: tuple[str, ...] = (), abstain: tuple[str, ...] = ()) -> dict[str, Choice]:
    return {code: YES for code in yes} | {code: NO for code in no} | {code: ABSTAIN for code in abstain}


def everyone_but(*codes: str) -> tuple[str, ...]:
    return tuple(code for code in MEMBERS if code not in codes)


# --- the real 2020 outcomes ---------------------------------------------------------------


def test_resolution_2532_adopted_unanimously() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=MEMBERS))
    assert (outcome.adopted, outcome.yes, outcome.no, outcome.abstain, outcome.absent) == (True, 15, 0, 0, 0)
    assert outcome.vetoed_by == ()
    assert outcome.reason == "15 in favour, 0 against, 0 abstentions."


def test_s_2020_654_fails_on_two_permanent_members_negative_votes() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=everyone_but("CHN", "RUS"), no=("CHN", "RUS")))
    assert (outcome.adopted, outcome.yes, outcome.no, outcome.abstain) == (False, 13, 2, 0)
    assert list(outcome.vetoed_by) == ["CHN", "RUS"]
    assert outcome.reason == (
        "13 in favour, 2 against, 0 abstentions; negative vote of permanent members CHN, RUS."
    )


def test_s_2020_658_fails_on_the_count_and_records_no_veto() -> None:
    outcome = decide(
        "unsc-substantive",
        unsc(),
        votes(
            yes=("CHN", "RUS", "VNM", "ZAF"),
            no=("FRA", "GBR", "USA", "BEL", "DOM", "EST", "DEU"),
            abstain=("IDN", "NER", "VCT", "TUN"),
        ),
    )
    assert (outcome.adopted, outcome.yes, outcome.no, outcome.abstain, outcome.absent) == (False, 4, 7, 4, 0)
    assert outcome.vetoed_by == ()
    assert outcome.reason == "4 in favour, 7 against, 4 abstentions; 9 affirmative votes required."


def test_resolution_2533_adopted_with_permanent_abstentions() -> None:
    outcome = decide(
        "unsc-substantive", unsc(), votes(yes=everyone_but("CHN", "RUS", "DOM"), abstain=("CHN", "RUS", "DOM"))
    )
    assert (outcome.adopted, outcome.yes, outcome.no, outcome.abstain) == (True, 12, 0, 3)
    assert outcome.reason == "12 in favour, 0 against, 3 abstentions."


def test_decide_all_decides_each_draft_of_the_july_round() -> None:
    outcomes = decide_all(
        "unsc-substantive",
        unsc(),
        {
            "S/2020/654": votes(yes=everyone_but("CHN", "RUS"), no=("CHN", "RUS")),
            "S/2020/667": votes(yes=everyone_but("CHN", "RUS", "DOM"), abstain=("CHN", "RUS", "DOM")),
        },
    )
    assert {symbol: outcome.adopted for symbol, outcome in outcomes.items()} == {
        "S/2020/654": False,
        "S/2020/667": True,
    }


# --- unsc rules' edges ----------------------------------------------------------------------


def test_exactly_the_required_yes_with_the_rest_absent_is_adopted() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=MEMBERS[:9]))
    assert (outcome.adopted, outcome.yes, outcome.absent) == (True, 9, 6)
    assert outcome.reason == "9 in favour, 0 against, 0 abstentions, 6 absent."


def test_one_short_of_the_required_yes_is_not_adopted() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=ELECTED[:8], abstain=PERMANENT))
    assert not outcome.adopted
    assert outcome.reason.endswith("9 affirmative votes required.")


def test_threshold_comes_from_the_electorate() -> None:
    assert decide("unsc-procedural", unsc(required_yes=7), votes(yes=ELECTED[:7])).adopted
    assert not decide("unsc-procedural", unsc(required_yes=10), votes(yes=ELECTED[:9])).adopted


def test_a_permanent_member_absent_is_not_a_veto() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=everyone_but("USA")))
    assert outcome.adopted and outcome.absent == 1 and outcome.vetoed_by == ()


def test_a_single_veto_is_named_in_the_singular() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=everyone_but("USA"), no=("USA",)))
    assert outcome.vetoed_by == ("USA",)
    assert outcome.reason.endswith("negative vote of permanent member USA.")


def test_an_elected_members_no_is_not_a_veto() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=everyone_but("BEL"), no=("BEL",)))
    assert outcome.adopted and outcome.vetoed_by == ()


def test_procedural_votes_have_no_veto() -> None:
    outcome = decide("unsc-procedural", unsc(), votes(yes=everyone_but("CHN", "RUS"), no=("CHN", "RUS")))
    assert outcome.adopted and outcome.vetoed_by == ()


def test_all_abstaining_is_not_adopted_under_any_voting_rule() -> None:
    for rule in ("unsc-substantive", "unsc-procedural", "simple-majority", "two-thirds", "unanimity"):
        outcome = decide(rule, unsc(), votes(abstain=MEMBERS))
        assert not outcome.adopted, rule
        assert (outcome.yes, outcome.no, outcome.abstain, outcome.absent) == (0, 0, 15, 0)
    assert decide("silence", unsc(), votes(abstain=MEMBERS)).adopted


def test_parties_to_a_dispute_are_counted_as_abstaining() -> None:
    outcome = decide(
        "unsc-substantive",
        unsc(),
        votes(yes=everyone_but("RUS", "EST"), no=("RUS", "EST")),
        parties_to_dispute=("RUS", "EST"),
    )
    assert (outcome.adopted, outcome.yes, outcome.no, outcome.abstain) == (True, 13, 0, 2)
    assert outcome.vetoed_by == ()
    assert outcome.reason == (
        "13 in favour, 0 against, 2 abstentions; "
        "RUS, EST, as parties to the dispute, counted as abstaining (Charter Article 27(3))."
    )


def test_a_party_that_abstains_or_is_absent_is_not_mentioned() -> None:
    outcome = decide(
        "unsc-substantive",
        unsc(),
        votes(yes=everyone_but("EST", "RUS"), abstain=("EST",)),
        parties_to_dispute=("EST", "RUS"),
    )
    assert (outcome.abstain, outcome.absent) == (1, 1)
    assert "dispute" not in outcome.reason


def test_a_party_voting_yes_loses_the_yes() -> None:
    outcome = decide("unsc-substantive", unsc(), votes(yes=MEMBERS[:9]), parties_to_dispute=("BEL",))
    assert (outcome.adopted, outcome.yes, outcome.abstain) == (False, 8, 1)
    assert "BEL, as a party to the dispute" in outcome.reason


# --- the other rules ------------------------------------------------------------------------


def test_silence_is_broken_by_one_objection() -> None:
    kept = decide("silence", unsc(), votes(yes=("FRA",), abstain=("BEL",)))
    assert kept.adopted
    assert kept.stated == "Adopted: under the silence procedure, no member having broken silence before the deadline."
    outcome = decide("silence", unsc(), votes(yes=ELECTED, no=("RUS",)))
    assert not outcome.adopted
    assert outcome.stated == "Not adopted: silence broken by RUS."


def test_silence_broken_names_each_objection_with_its_time() -> None:
    at = {"RUS": datetime(2020, 3, 27, 14, 2, tzinfo=UTC), "CHN": datetime(2020, 3, 28, 9, 30, 15, tzinfo=UTC)}
    outcome = decide("silence", unsc(), votes(no=("RUS", "CHN")), cast_at=at)
    assert outcome.stated == (
        "Not adopted: silence broken by CHN (objection received Saturday 28 March 2020, 09:30:15 UTC),"
        " RUS (objection received Friday 27 March 2020, 14:02 UTC)."
    )
    assert [c.as_dict() for c in outcome.conditions] == [{
        "condition": "no member objects before the deadline", "met": False,
        "found": outcome.reason.removesuffix("."),
    }]


def test_unanimity_fails_with_one_member_absent() -> None:
    outcome = decide("unanimity", unsc(), votes(yes=everyone_but("NER")))
    assert not outcome.adopted and outcome.absent == 1
    assert "absent: NER" in outcome.reason
    assert decide("unanimity", unsc(), votes(yes=MEMBERS)).adopted


def test_simple_majority_counts_only_members_present_and_voting() -> None:
    assert decide("simple-majority", unsc(), votes(yes=MEMBERS[:2], no=MEMBERS[2:3], abstain=MEMBERS[3:])).adopted
    assert not decide("simple-majority", unsc(), votes(yes=MEMBERS[:2], no=MEMBERS[2:4])).adopted


def test_simple_majority_quorum_from_the_vote_or_the_electorate() -> None:
    choices = votes(yes=MEMBERS[:5], no=MEMBERS[5:7], abstain=MEMBERS[7:])
    assert decide("simple-majority", unsc(), choices).adopted
    assert decide("simple-majority", unsc(), choices, quorum=7).adopted
    missed = decide("simple-majority", unsc(), choices, quorum=8)
    assert not missed.adopted
    assert missed.reason.endswith("quorum not met: 7 present and voting, 8 required.")
    assert not decide("simple-majority", unsc(quorum=8), choices).adopted
    assert decide("simple-majority", unsc(quorum=8), choices, quorum=7).adopted


def test_two_thirds() -> None:
    assert decide("two-thirds", unsc(), votes(yes=MEMBERS[:10], no=MEMBERS[10:])).adopted
    assert not decide("two-thirds", unsc(), votes(yes=MEMBERS[:9], no=MEMBERS[9:14])).adopted
    assert not decide("two-thirds", unsc(), votes(yes=MEMBERS[:4]), quorum=5).adopted


# --- the Council of the European Union: qualified majority, by hand ---------------------------


def eu_votes(no: tuple[str, ...] = (), abstain: tuple[str, ...] = (), absent: tuple[str, ...] = ()
             ) -> dict[str, Choice]:
    return {code: NO if code in no else ABSTAIN if code in abstain else YES
            for code in EU.codes if code not in absent}


def largest(n: int) -> tuple[str, ...]:
    return tuple(d.code for d in sorted(EU.delegation, key=lambda d: -(d.population or 0))[:n])


def test_the_eu_file_has_27_members_and_their_population() -> None:
    assert len(EU.codes) == 27
    assert sum(d.population or 0 for d in EU.delegation) == EU_TOTAL
    assert parse_electorate(dump_electorate(EU)) == EU


def test_eu_qmv_decided_by_the_population_alone() -> None:
    """23 of 27 in favour (85%), but DEU, FRA, ITA, ESP hold 259,456,441 people: 57.76% against, a blocking minority."""
    outcome = decide("eu-qmv", EU, eu_votes(no=("DEU", "FRA", "ITA", "ESP")))
    assert not outcome.adopted
    assert outcome.stated == (
        "Not adopted: 23 in favour, 4 against, 0 abstentions; 42.24% of the population in favour, at least 65% required."
    )
    assert [c.met for c in outcome.conditions] == [True, True, False]
    assert outcome.conditions[2].found == "42.24% of the population in favour (189,759,375 of 449,215,816)"


def test_eu_qmv_adopted_for_want_of_a_blocking_minority() -> None:
    """DEU, FRA, ITA: 46.93% of the population against, but three members are not a blocking minority."""
    outcome = decide("eu-qmv", EU, eu_votes(no=("DEU", "FRA"), abstain=("ITA",)))
    assert outcome.adopted
    assert outcome.stated == (
        "Adopted: 24 in favour, 2 against, 1 abstention; 88.88% of members in favour, at least 55% required;"
        " 24 members in favour, at least 15 required; 53.06% of the population in favour, at least 65% required,"
        " but only 3 members not in favour, fewer than the 4 of a blocking minority."
    )
    fourth = decide("eu-qmv", EU, eu_votes(no=("DEU", "FRA"), abstain=("ITA",), absent=("MLT",)))
    assert not fourth.adopted, "an absent member counts towards a blocking minority like one voting against"


def test_eu_qmv_decided_by_the_15_member_condition() -> None:
    """The 14 most populous hold 91% of the population, but 14 members are fewer than 15 (and than 55% of 27)."""
    fourteen = decide("eu-qmv", EU, {code: YES if code in largest(14) else NO for code in EU.codes})
    assert not fourteen.adopted
    assert fourteen.stated == (
        "Not adopted: 14 in favour, 13 against, 0 abstentions; 51.85% of members in favour, at least 55% required;"
        " 14 members in favour, at least 15 required."
    )
    assert fourteen.conditions[2].met
    fifteen = decide("eu-qmv", EU, {code: YES if code in largest(15) else ABSTAIN for code in EU.codes})
    assert fifteen.adopted
    assert "15 members in favour, at least 15 required" in fifteen.reason


def test_eu_qmv_reinforced_needs_72_percent_of_members() -> None:
    small = ("MLT", "CYP", "LUX", "EST", "LVA", "SVN", "HRV", "LTU")
    outcome = decide("eu-qmv-reinforced", EU, eu_votes(no=small))
    assert outcome.stated == (
        "Not adopted: 19 in favour, 8 against, 0 abstentions; 70.37% of members in favour, at least 72% required."
    )
    assert decide("eu-qmv-reinforced", EU, eu_votes(no=small[:7])).adopted
    blocked = decide("eu-qmv-reinforced", EU, eu_votes(no=("DEU", "FRA", "ITA")))
    assert not blocked.adopted, "the reinforced majority has no blocking-minority clause"
    assert decide("eu-qmv", EU, eu_votes(no=("DEU", "FRA", "ITA"))).adopted


@pytest.mark.parametrize(("weight", "adopted", "shown"), [
    (64999, False, "64.99%"), (65000, True, "65.00%"), (65001, True, "65.001%"),
])
def test_a_share_is_rounded_down_so_it_never_seems_to_reach_a_threshold_it_misses(
    weight: int, adopted: bool, shown: str
) -> None:
    board = weighted_board("at_least_share", "65%", weight)
    outcome = decide("board", board, {"AAA": YES, "BBB": NO})
    assert outcome.adopted is adopted
    assert f"; {shown} of the weight of members present and voting in favour, at least 65% required." in outcome.reason


def test_a_share_just_over_a_strict_threshold_shows_the_decimals_that_decide_it() -> None:
    outcome = decide("board", weighted_board("more_than_share", "50%", 50001), {"AAA": YES, "BBB": NO})
    assert outcome.adopted
    assert "; 50.001% of the weight of members present and voting in favour, more than 50% required." in outcome.reason


def weighted_board(kind: str, threshold: str, weight: int) -> Electorate:
    return parse_electorate(
        'name = "Board"\n'
        f'[rules.board]\nsummary = "a share of the weight cast"\n'
        f'conditions = [{{counts = "weight", base = "present-and-voting", {kind} = "{threshold}"}}]\n'
        f'[[delegation]]\ncode = "AAA"\nname = "A"\nweight = {weight}\n'
        f'[[delegation]]\ncode = "BBB"\nname = "B"\nweight = {100000 - weight}\n'
    )


# --- weighted majorities and rules written in the electorate file ----------------------------


def test_weighted_majority_counts_weight_cast() -> None:
    """Weights are 1 to 15 in MEMBERS order: VNM and TUN (15+14) outweigh CHN, FRA, RUS, GBR (1+2+3+4): 29 of 39."""
    outcome = decide("weighted-majority", unsc(), votes(yes=("VNM", "TUN"), no=PERMANENT[:4], abstain=("ZAF",)))
    assert outcome.adopted
    assert outcome.reason == (
        "2 in favour, 4 against, 1 abstention, 8 absent; 74.35% of the weight of members present and voting"
        " in favour, more than 50% required."
    )
    tie = decide("weighted-majority", unsc(), votes(yes=("USA", "BEL"), no=("CHN", "IDN")))  # 5+6 against 1+10
    assert not tie.adopted and tie.reason.endswith("50.00% of the weight of members present and voting in favour,"
                                                     " more than 50% required.")


BOARD = """\
name = "Board of Governors"

[rules.board-special]
summary = "a special majority: 70% of the total voting power, and a majority of the governors present"
quorum = 2
veto = true
conditions = [
    { counts = "weight", base = "members", at_least_share = "70%" },
    { counts = "members", base = "present", more_than_share = "1/2" },
]

[[delegation]]
code = "AAA"
name = "A"
weight = 40
permanent = true

[[delegation]]
code = "BBB"
name = "B"
weight = 35

[[delegation]]
code = "CCC"
name = "C"
weight = 15.5

[[delegation]]
code = "DDD"
name = "D"
weight = 9.5
"""


def test_a_rule_written_in_the_electorate_file() -> None:
    board = parse_electorate(BOARD)
    assert parse_electorate(dump_electorate(board)) == board
    adopted = decide("board-special", board, {"AAA": YES, "BBB": YES, "CCC": ABSTAIN})
    assert adopted.stated == (
        "Adopted: 2 in favour, 0 against, 1 abstention, 1 absent; 75.00% of the weight in favour, at least 70%"
        " required; 66.66% of members present in favour, more than 1/2 required."
    )
    assert [c.condition for c in adopted.conditions] == [
        "at least 2 members present and voting", "at least 70% of the weight in favour",
        "more than 1/2 of members present in favour", "no negative vote of a permanent member",
    ]
    short = decide("board-special", board, {"AAA": YES, "CCC": YES, "DDD": YES})
    assert short.stated.endswith("65.00% of the weight in favour, at least 70% required.")
    vetoed = decide("board-special", board, {"AAA": NO, "BBB": YES, "CCC": YES, "DDD": YES})
    assert not vetoed.adopted
    quorum = decide("board-special", board, {"AAA": YES, "BBB": ABSTAIN, "CCC": ABSTAIN})
    assert quorum.stated.endswith("quorum not met: 1 present and voting, 2 required.")
    vetoed = decide("board-special", board, {"AAA": NO, "BBB": YES, "CCC": YES, "DDD": YES}, quorum=1)
    assert vetoed.vetoed_by == ()  # short of 70% without A: failed on the count, no veto recorded
    assert decide("board-special", board, {"AAA": NO, "BBB": YES, "CCC": YES, "DDD": YES}, quorum=1).reason.endswith(
        "60.00% of the weight in favour, at least 70% required.")


def test_rules_in_a_file_are_checked() -> None:
    with pytest.raises(ValueError, match="rules.eu-qmv: the name of a rule built in"):
        parse_electorate(BOARD.replace("board-special", "eu-qmv"))
    with pytest.raises(ValueError, match="exactly one of at_least"):
        parse_electorate(BOARD.replace('at_least_share = "70%"', 'at_least_share = "70%", at_least = 3'))
    with pytest.raises(ValueError, match="'170%' is not a share"):
        parse_electorate(BOARD.replace('"70%"', '"170%"'))
    with pytest.raises(ValueError, match="'half' is not a share"):
        parse_electorate(BOARD.replace('"1/2"', '"half"'))
    with pytest.raises(UsageError, match="counts weight, but electorate 'Board of Governors' gives none for DDD"):
        decide("board-special", parse_electorate(BOARD.replace("weight = 9.5\n", "")), {})
    with pytest.raises(UsageError, match="counts population, but electorate 'UNSC 2020' gives none for CHN"):
        check("eu-qmv", unsc(delegation=[{"code": code, "name": code} for code in MEMBERS]))
    with pytest.raises(UsageError, match="requires at least 15 members in favour but electorate 'UNSC 2020' has only 1"):
        check("eu-qmv", unsc(delegation=[{"code": "CHN", "name": "China", "population": 1}]))
    with pytest.raises(UsageError, match="unknown rule 'board'.*board-special"):
        decide("board", parse_electorate(BOARD), {})


# --- mistakes a user can make -----------------------------------------------------------------


def test_unknown_rule_lists_the_valid_names() -> None:
    with pytest.raises(UsageError, match="unknown rule 'majority'") as raised:
        decide("majority", unsc(), {})
    for name in RULES:
        assert name in str(raised.value)


def test_unknown_delegation_is_named() -> None:
    with pytest.raises(UsageError, match="delegation XYZ not in electorate"):
        decide("unsc-substantive", unsc(), votes(yes=MEMBERS) | {"XYZ": YES})


def test_choice_that_is_not_a_choice_is_named() -> None:
    with pytest.raises(UsageError, match="delegation FRA: 'maybe' is not a choice"):
        decide("silence", unsc(), {"FRA": "maybe"})  # type: ignore[dict-item]


def test_unsc_rules_need_required_yes() -> None:
    with pytest.raises(UsageError, match="needs required_yes"):
        decide("unsc-substantive", unsc(required_yes=None), {})
    with pytest.raises(UsageError, match="requires 16 affirmative votes but has only 15 members"):
        decide("unsc-procedural", unsc(required_yes=16), {})


def test_parameters_a_rule_does_not_take_are_refused() -> None:
    with pytest.raises(UsageError, match="has no quorum"):
        check("unanimity", unsc(), quorum=3)
    with pytest.raises(UsageError, match="does not take parties to a dispute"):
        check("unsc-procedural", unsc(), parties_to_dispute=("RUS",))
    with pytest.raises(UsageError, match="party to the dispute ATL not in electorate"):
        check("unsc-substantive", unsc(), parties_to_dispute=("ATL",))
    with pytest.raises(UsageError, match="quorum 16 is not between 1 and the 15 members"):
        check("simple-majority", unsc(), quorum=16)
    with pytest.raises(UsageError, match="quorum 0 is not between"):
        check("two-thirds", unsc(), quorum=0)
    with pytest.raises(UsageError, match="has no members"):
        check("silence", Electorate())
    with pytest.raises(UsageError, match="S/2020/999, which is not among the drafts"):
        decide_all("unsc-substantive", unsc(), {"S/2020/654": {}}, parties_to_dispute={"S/2020/999": ("RUS",)})


def test_only_the_council_rules_keep_their_deadline_fixed() -> None:
    assert {name for name, rule in RULES.items() if not rule.extendable} == {"unsc-substantive", "unsc-procedural"}


# --- properties -------------------------------------------------------------------------------

ballots = st.dictionaries(st.sampled_from(MEMBERS), st.sampled_from(list(Choice)))


@given(rule=st.sampled_from(list(RULES)), choices=ballots, order=st.randoms(use_true_random=False))
def test_outcome_never_depends_on_order_and_everyone_is_counted_once(
    rule: str, choices: dict[str, Choice], order: random.Random
) -> None:
    items = list(choices.items())
    order.shuffle(items)
    shuffled = dict(items)
    members = list(unsc().delegation)
    order.shuffle(members)
    reordered = unsc(delegation=[m.model_dump() for m in members])
    outcome = decide(rule, unsc(), choices)
    assert decide(rule, unsc(), shuffled) == outcome
    assert outcome.yes + outcome.no + outcome.abstain + outcome.absent == len(MEMBERS)
    again = decide(rule, reordered, shuffled)
    assert (again.adopted, again.yes, again.no, again.abstain, again.absent) == (
        outcome.adopted,
        outcome.yes,
        outcome.no,
        outcome.abstain,
        outcome.absent,
    )
    assert set(again.vetoed_by) == set(outcome.vetoed_by)


def test_the_command_line_names_every_rule_built_in() -> None:
    from voting.cli import RULE_HELP

    assert all(name in RULE_HELP for name in RULES)
