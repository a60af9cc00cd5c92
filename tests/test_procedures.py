"""Each body's written procedure through the whole mail path: signed ballots in, outcome, record and audit out."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import Deployment, open_vote

from voting.audit import audit_bundle
from voting.ballot import text_of_entity
from voting.bundle import write_record
from voting.electorate import load_electorate, save_electorate
from voting.errors import UsageError
from voting.service import MAILBOX_SETTLING, Service


def ballot_of(running: Deployment, code: str, vote_id: str) -> bytes:
    return next(raw for raw in running.inbox_of(code) if b"Subject: Ballot:" in raw and vote_id.encode() in raw)


def reply(running: Deployment, code: str, vote_id: str, votes: list[str], explanation: str = "") -> None:
    raw = running.reply(code, votes, explanation=explanation, ballot=ballot_of(running, code, vote_id))
    running.submit(raw, running.address(code))


def audited(service: Service, vote_id: str, folder: Path) -> list[str]:
    """The checks the bundle of the closed vote fails (none when the audit passes)."""
    record = write_record(service, vote_id, folder)
    assert record.bundle is not None
    checks = audit_bundle(record.bundle.path.read_bytes(), service.keys.signer.certificate)
    return [f"{c.name}: {c.detail}" for c in checks if not c.ok]


def test_a_silence_broken_and_a_recorded_vote_open_together(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    silence = open_vote(service, tmp_path, ("S/2020/700", "S/2020/702"), rule="silence")
    recorded = open_vote(service, tmp_path, ("S/2020/654",))
    service.send()
    ballot = text_of_entity(ballot_of(running, "FRA", silence))
    assert "You need not reply unless you object." in ballot and "S/2020/700: [ ] OBJECT" in ballot
    assert "YES | NO | ABSTAIN" in text_of_entity(ballot_of(running, "FRA", recorded))

    with pytest.raises(UsageError, match="no member has broken silence"):
        service.close_now(silence)
    letter = "The Russian Federation breaks silence: the draft was not consulted upon."
    reply(running, "RUS", silence, ["S/2020/700=OBJECT"], explanation=letter)
    reply(running, "FRA", recorded, ["yes"])
    service.poll_once()
    with pytest.raises(UsageError, match="no member has broken silence on S/2020/702"):
        service.close_now(silence)
    time.sleep(1.1)
    reply(running, "CHN", silence, ["反对"])
    service.poll_once()
    receipt = text_of_entity([raw for raw in running.inbox_of("RUS") if b"Subject: Receipt" in raw][0])
    assert "S/2020/700: OBJECTION (breaks silence)" in receipt
    assert "Letter breaking silence, published with the result:" in receipt

    service.close_now(silence)
    outcome = service.ledger.vote(silence).outcome
    assert outcome is not None and outcome["S/2020/700"]["adopted"] is False
    assert re.fullmatch(r"silence broken by CHN \(objection received [^)]+\)\.", outcome["S/2020/702"]["reason"])
    objections = {d.code: d.received_at for d in service.ledger.decisions(silence)}
    assert re.fullmatch(r"silence broken by CHN \(objection received [^)]+\), RUS \(objection received [^)]+\)\.",
                        outcome["S/2020/700"]["reason"])
    assert f"{objections['RUS']:%H:%M}" in outcome["S/2020/700"]["reason"]
    assert service.ledger.vote(recorded).is_open, "closing the silence procedure leaves the recorded vote open"
    assert audited(service, silence, tmp_path / "records") == []
    record = write_record(service, silence, tmp_path / "records").text.read_text(encoding="utf-8")
    assert "S/2020/700: NOT ADOPTED — silence broken by CHN" in record
    assert letter in record
    assert re.search(r"^RUS Russian Federation +OBJECTION ", record, re.MULTILINE)
    assert re.search(r"^FRA France +SILENT ", record, re.MULTILINE)

    service.close_now(recorded)
    assert service.ledger.vote(recorded).outcome["S/2020/654"]["yes"] == 1  # type: ignore[index]


def test_silence_kept_until_the_deadline_adopts_the_draft(running: Deployment, tmp_path: Path) -> None:
    service = Service(running.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path, ("S/2020/701",), rule="silence", seconds=2.0)
    service.send()
    reply(running, "FRA", vote_id, ["ABSTAIN"])
    service.poll_once()
    receipt = text_of_entity([raw for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw][0])
    assert "S/2020/701: ABSTAIN (no objection: silence unbroken)" in receipt
    time.sleep(2.0 + MAILBOX_SETTLING.total_seconds())
    assert service.poll_once().closed == [vote_id]
    outcome = service.ledger.vote(vote_id).outcome
    assert outcome is not None and outcome["S/2020/701"]["adopted"] is True
    assert outcome["S/2020/701"]["reason"] == (
        "under the silence procedure, no member having broken silence before the deadline.")
    assert audited(service, vote_id, tmp_path / "records") == []


def test_a_qualified_majority_by_population_and_a_rule_written_in_the_electorate_file(
    running: Deployment, tmp_path: Path
) -> None:
    """The Council's 15 members given populations and weights: eu-qmv and a board's rule decide, and the audit agrees."""
    electorate = load_electorate(running.config.electorate_file)
    populous = {"CHN": 1_410_000_000, "USA": 335_000_000, "IDN": 278_000_000}
    delegations = [d.model_copy(update={"population": populous.get(d.code, 10_000_000), "weight": Decimal(1 + d.permanent)})
                   for d in electorate.delegation]
    board = {"summary": "two thirds of the weight cast", "conditions": [
        {"counts": "weight", "base": "present-and-voting", "at_least_share": "2/3"}]}
    save_electorate(running.config.electorate_file,
                    electorate.model_validate({**electorate.model_dump(), "delegation": [d.model_dump() for d in
                                                                                          delegations],
                                               "rules": {"council-weighted": board}}))
    service = Service(running.config, log=lambda line: None)
    qmv = open_vote(service, tmp_path, ("QMV/1",), rule="eu-qmv")
    weighted = open_vote(service, tmp_path, ("W/1",), rule="council-weighted")
    service.send()
    for code in ("FRA", "RUS", "GBR", "BEL", "DOM", "EST", "DEU", "NER", "VCT", "ZAF", "TUN", "VNM"):
        reply(running, code, qmv, ["yes"])
    reply(running, "CHN", qmv, ["no"])
    for code, choice in (("CHN", "yes"), ("USA", "yes"), ("BEL", "no"), ("DOM", "no"), ("EST", "abstain")):
        reply(running, code, weighted, [choice])
    service.poll_once()
    service.close_now(qmv)
    service.close_now(weighted)
    qmv_outcome = service.ledger.vote(qmv).outcome["QMV/1"]  # type: ignore[index]
    # 12 of 15 (80%) in favour hold 120 of 2,143 million people (5.59%), but the 3 others are no blocking minority:
    # the 15-member condition alone decides.
    assert qmv_outcome["adopted"] is False
    assert qmv_outcome["reason"] == "12 in favour, 1 against, 0 abstentions, 2 absent; 12 members in favour, at least 15 required."
    weighted_outcome = service.ledger.vote(weighted).outcome["W/1"]  # type: ignore[index]
    assert weighted_outcome["adopted"] is True  # CHN 2 + USA 2 against BEL 1 + DOM 1: 4 of 6
    assert weighted_outcome["reason"].endswith("66.66% of the weight of members present and voting in favour,"
                                               " at least 2/3 required.")
    assert audited(service, qmv, tmp_path / "records") == []
    assert audited(service, weighted, tmp_path / "records") == []
