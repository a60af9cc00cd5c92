"""Every letter and page as a diplomat reads it, on a phone (390 px) and a desktop (1200 px): never sideways."""

from __future__ import annotations

import os
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from conftest import copy_deployment

from tests.chromium import WIDTHS, screenshot, sideways_overflow
from tests.test_drafts import open_with_files
from voting.bundle import write_record
from voting.electorate import load_electorate, save_electorate
from voting.service import Service, embedded_server

SCREENSHOTS = "TEST_SCREENSHOTS"
"""Set to a folder to keep the screenshots there, to look at them."""


def html_of(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default)
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return str(part.get_content())


@pytest.fixture(scope="module")
def pages(unsc_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One vote of sponsored drafts as FRA sees it: ballot (a PDF and a text draft), receipt, rejection, results;
    the ballot and results as Belgium reads them, in French; and the record."""
    work = tmp_path_factory.mktemp("rendering")
    deployment = copy_deployment(unsc_template, work / "deployment")
    electorate = load_electorate(deployment.config.electorate_file)
    belgium = electorate.get("BEL")
    assert belgium is not None
    belgium.language, belgium.timezone = "fr", "Europe/Brussels"
    save_electorate(deployment.config.electorate_file, electorate)
    with embedded_server(deployment.config, required=True):
        vote_id, _, _ = open_with_files(deployment, work, "--sponsor", "S/2020/654=BEL,DEU",
                                        "--sponsor", "S/2020/658=RUS")
        service = Service(deployment.config)
        deployment.submit(deployment.reply("FRA", ["S/2020/654=yes", "S/2020/658=no"],
                                           explanation="France supports the cross-border mechanism, a lifeline "
                                                       "for millions of Syrians."), deployment.address("FRA"))
        deployment.submit(b"From: fra@delegations.example\r\nSubject: vote\r\n\r\nS/2020/654: YES\r\n",
                          deployment.address("FRA"))
        service.poll_once()
        service.close_now(vote_id)
        service.send()
        inbox = deployment.inbox_of("FRA")
        french = deployment.inbox_of("BEL")
        record = write_record(service, vote_id, work / "record")

    def letter(subject: str, mails: list[bytes] = inbox) -> str:
        return html_of(next(raw for raw in mails
                            if str(message_from_bytes(raw, policy=default)["Subject"]).startswith(subject)))

    return {"ballot": letter("Ballot"), "receipt": letter("Receipt"), "rejection": letter("Rejected"),
            "results": letter("Results"), "record": record.html.read_text(),
            "ballot-fr": letter("Ballot", french), "results-fr": letter("Résultats", french)}


def test_belgium_reads_its_letters_in_french(pages: dict[str, str]) -> None:
    assert '<html lang="fr">' in pages["results-fr"] and "NON ADOPTÉ" in pages["results-fr"]
    assert "Présenté par Belgique, Allemagne" in pages["results-fr"] and "Présenté par" in pages["ballot-fr"]
    assert "Royaume-Uni de Grande-Bretagne et d&#x27;Irlande du Nord" in pages["results-fr"]
    assert "BEL (Belgique)" in pages["ballot-fr"] and "United Kingdom" not in pages["results-fr"]
    assert '<html lang="en">' in pages["results"] and "Sponsored by Russian Federation" in pages["results"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["ballot", "receipt", "rejection", "results", "record", "ballot-fr", "results-fr"])
def test_nothing_scrolls_sideways(pages: dict[str, str], kind: str, width: int, tmp_path: Path) -> None:
    keep = os.environ.get(SCREENSHOTS)
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    screenshot(pages[kind], width, folder / f"{kind}-{width}.png")
    assert sideways_overflow(pages[kind], width, tmp_path) == 0, f"the {kind} scrolls sideways at {width} px"


def test_the_measure_sees_a_page_that_scrolls_sideways(tmp_path: Path) -> None:
    wide = "<!DOCTYPE html><html><body><pre>" + "x" * 400 + "</pre></body></html>"
    assert sideways_overflow(wide, 390, tmp_path) > 0
