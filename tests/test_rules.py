"""Voting rules, checked against the Security Council's real votes of 2020 and the rules' edges."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voting.errors import UsageError
from voting.model import Choice, Electorate
from voting.rules import RULES, check, decide, decide_all

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
            "delegation": [{"code": code, "name": code, "permanent": code in PERMANENT} for code in MEMBERS],
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
    assert decide("silence", unsc(), {}).adopted
    outcome = decide("silence", unsc(), votes(yes=ELECTED, no=("RUS",)))
    assert not outcome.adopted
    assert outcome.reason.endswith("silence broken by RUS.")


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
