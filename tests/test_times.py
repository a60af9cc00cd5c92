"""Times as people read them: one form, in UTC with the weekday, and where the reader is."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, write_config

from voting.ballot import text_of_entity
from voting.electorate import load_electorate, save_electorate
from voting.errors import ConfigError
from voting.config import load_config
from voting.service import Service
from voting.times import parse_readable_time, readable_time

FRACTION = re.compile(r"\d\d:\d\d:\d\d\.\d")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")


def test_one_readable_form_with_the_local_time_beside_it() -> None:
    deadline = datetime(2020, 7, 8, 12, 0, tzinfo=UTC)
    assert readable_time(deadline) == "Wednesday 8 July 2020, 12:00 UTC"
    assert readable_time(deadline, ["America/New_York", None, "Europe/Paris"]) == (
        "Wednesday 8 July 2020, 12:00 UTC (08:00 in New York; 14:00 in Paris)")
    assert readable_time(datetime(2020, 7, 8, 23, 30, 5, 123456, tzinfo=UTC), ["Asia/Tokyo"]) == (
        "Wednesday 8 July 2020, 23:30:05 UTC (Thursday 9 July, 08:30:05 in Tokyo)")


@pytest.mark.parametrize("moment", [
    datetime(2020, 7, 8, 12, 0, tzinfo=UTC), datetime(2026, 12, 2, 13, 55, 49, tzinfo=UTC),
    datetime(2024, 2, 29, 0, 0, 1, tzinfo=UTC), datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
])
def test_a_readable_time_reads_back_as_the_same_instant(moment: datetime) -> None:
    assert parse_readable_time(readable_time(moment)) == moment
    assert parse_readable_time(readable_time(moment, ["Asia/Tokyo"])) == moment


@pytest.mark.parametrize("text", [
    "Monday 2 December 2026, 13:55:49 UTC", "Wednesday 2 December 2026, 13:55:00 UTC",
    "Wednesday 02 December 2026, 13:55 UTC", "Wednesday 2 December 2026, 13:55:49", "2026-12-02T13:55:49Z",
    "Wednesday 2 December 2026, 13:55:49 UTC and later", "",
])
def test_only_the_readable_form_is_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_readable_time(text)


def test_a_delegation_reads_its_ballot_and_receipt_in_utc_and_its_own_time(running: Deployment,
                                                                           tmp_path: Path) -> None:
    write_config(running, secretariat={"timezone": "America/New_York"})
    electorate_file = running.config.electorate_file
    electorate = load_electorate(electorate_file)
    fra = electorate.get("FRA")
    assert fra is not None
    fra.timezone = "Europe/Paris"
    save_electorate(electorate_file, electorate)
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = text_of_entity(running.ballot_of("FRA"))
    reply_by = next(line for line in ballot.splitlines() if line.startswith("Reply by "))
    assert re.fullmatch(r"Reply by \w+day \d+ \w+ \d{4}, \d\d:\d\d(:\d\d)? UTC "
                        r"\(.*in Paris; .*in New York\)\.", reply_by), reply_by
    running.submit(running.reply("FRA", ["yes"]), running.address("FRA"))
    service.poll_once()
    service.send()
    receipt = next(text_of_entity(raw) for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw)
    assert "in Paris; " in receipt and "in New York)" in receipt
    for letter in (ballot, receipt):
        assert not FRACTION.search(letter) and "UTC" in letter
    service.close_now(vote_id)
    service.send()
    results = next(text_of_entity(raw) for raw in running.inbox_of("FRA") if b"Subject: Results" in raw)
    assert not FRACTION.search(results) and not ISO.search(results)


def test_an_unknown_time_zone_is_a_configuration_error(running: Deployment) -> None:
    write_config_text = running.config.path.read_text() + '\n'
    running.config.path.write_text(write_config_text.replace("[secretariat]", '[secretariat]\ntimezone = "Mars/Olympus"'))
    with pytest.raises(ConfigError, match="Mars/Olympus.*IANA time zone"):
        load_config(running.config.path)
