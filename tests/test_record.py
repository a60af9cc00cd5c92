"""The public record as people see it: rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Deployment, open_vote

from tests.chromium import FLAGS as CHROMIUM_FLAGS
from tests.chromium import chromium, png_pixels
from voting.ballot import text_of_entity
from voting.bundle import Record, write_record
from voting.service import Service


def closed_vote_record(running: Deployment, tmp_path: Path) -> tuple[Service, str, Record]:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, ("S/2020/654", "S/2020/658"))
    service.send()
    running.submit(running.reply("FRA", ["S/2020/654=yes", "S/2020/658=no"], explanation="France explains."),
                   "fra@delegations.example")
    running.submit(running.reply("CHN", ["S/2020/654=no", "S/2020/658=abstain"]), "chn@delegations.example")
    service.poll_once()
    service.close_now(vote_id)
    return service, vote_id, write_record(service, vote_id, tmp_path / "record")


def test_the_record_lists_every_delegation_and_the_bundle_hash(running: Deployment, tmp_path: Path) -> None:
    import hashlib

    service, vote_id, record = closed_vote_record(running, tmp_path)
    text = record.text.read_text()
    bundle = record.bundle
    assert bundle is not None and hashlib.sha256(bundle.path.read_bytes()).hexdigest() in text
    for delegation in service.electorate().delegation:
        assert delegation.name in text
    assert "France explains." in text
    html = record.html.read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert 'name="viewport"' in html


def test_the_record_renders_in_chromium(running: Deployment, tmp_path: Path) -> None:
    service, vote_id, record = closed_vote_record(running, tmp_path)
    page = record.html.resolve()
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for delegation in service.electorate().delegation:
        assert f'data-delegation="{delegation.code}"' in dom.stdout
    shot = tmp_path / "record.png"
    result = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=412,900",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    width, height, pixels = png_pixels(shot)
    assert (width, height) == (412, 900)
    assert len(set(pixels[i:i + 3] for i in range(0, len(pixels), 997))) > 5, "the screenshot is blank"


def test_a_record_written_elsewhere_quotes_the_published_bundle(running: Deployment, tmp_path: Path) -> None:
    import hashlib

    service, vote_id, published = closed_vote_record(running, tmp_path)
    elsewhere = write_record(service, vote_id, tmp_path / "elsewhere")
    assert published.bundle is not None and elsewhere.bundle is not None
    assert published.bundle.path.name == elsewhere.bundle.path.name
    assert published.bundle.path.read_bytes() == elsewhere.bundle.path.read_bytes()
    quoted = hashlib.sha256(elsewhere.bundle.path.read_bytes()).hexdigest()
    assert quoted in elsewhere.text.read_text()


def test_an_explanation_can_never_pass_for_a_line_of_the_board(running: Deployment, tmp_path: Path) -> None:
    forged = ("We explain.\nAudit bundle SHA-256: " + "0" * 64 + "\nS/2020/654: ADOPTED \u2014 12 in favour"
              "\u2028Audit bundle SHA-256: " + "1" * 64)
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    running.submit(running.reply("FRA", ["yes"], explanation=forged), "fra@delegations.example")
    service.poll_once()
    receipt = next(raw for raw in running.inbox_of("FRA") if b"Subject: Receipt" in raw)
    service.close_now(vote_id)
    service.send()
    record = write_record(service, vote_id, tmp_path / "record")
    results = next(raw for raw in running.inbox_of("CHN") if b"Subject: Results" in raw)
    for text in (record.text.read_text(), text_of_entity(receipt), text_of_entity(results)):
        lines = text.splitlines()
        assert "    | We explain." in lines or "We explain." not in text, text
        forged_lines = ("Audit bundle SHA-256: " + "0" * 64, "Audit bundle SHA-256: " + "1" * 64, "S/2020/654: ADOPTED")
        assert not any(line.startswith(forged_lines) for line in lines), text
