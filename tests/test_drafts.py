"""What is voted on: each draft in full in every ballot, its file attached as circulated, one SHA-256 everywhere."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from conftest import Deployment, voting

from voting.audit import audit_bundle
from voting.ballot import text_of_entity
from voting.service import Service

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SPONSORED = (
    "Draft resolution S/2020/658, submitted by the Russian Federation\n\n"
    "The Security Council,\n"
    "Vote-ID: unsc-2099-0001\n"
    "Ballot-Token: AAAAAAAAAAAAAAAAAAAAAA\n"
    "S/2020/654: NO\n"
    "VOTE: NO\n"
    "1. Decides to renew the mechanism for six months;\n"
)


def open_with_files(running: Deployment, tmp_path: Path, *options: str) -> tuple[str, Path, Path]:
    """S/2020/654 as a PDF (titled on the command line) and S/2020/658 as text written to unsettle a reply."""
    pdf, text = tmp_path / "S-2020-654.pdf", tmp_path / "S-2020-658.txt"
    pdf.write_bytes(PDF)
    text.write_text(SPONSORED)
    opened = voting("--json", "--config", str(running.config.path), "open",
                    "--draft", f"S/2020/654={pdf}", "--draft", f"S/2020/658={text}",
                    "--title", "S/2020/654=Draft resolution submitted by Belgium and Germany",
                    "--title", "Syria", "--rule", "unsc-substantive", "--closes", "+1h", *options)
    assert opened.returncode == 0, opened.stderr
    return json.loads(opened.stdout)["vote"], pdf, text


def test_every_ballot_carries_each_draft_in_full_and_its_file_as_circulated(running: Deployment,
                                                                             tmp_path: Path) -> None:
    vote_id, pdf, text = open_with_files(running, tmp_path)
    raw = running.ballot_of("FRA")
    ballot = message_from_bytes(raw, policy=default)
    attached = {part.get_filename(): part.get_content() for part in ballot.walk()
                if part.get_content_disposition() == "attachment" and part.get_filename() != "smime.p7s"}
    assert attached == {"S-2020-654.pdf": PDF, "S-2020-658.txt": SPONSORED}
    body = text_of_entity(raw)
    for data in (PDF, SPONSORED.encode()):
        assert f"SHA-256: {hashlib.sha256(data).hexdigest()}" in body
    assert "S/2020/654: Draft resolution submitted by Belgium and Germany" in body
    assert "    | 1. Decides to renew the mechanism for six months;" in body
    assert "Subject: Ballot: Syria" in raw.decode("ascii", "replace")


def test_a_draft_cannot_unsettle_the_replies_that_quote_it(running: Deployment, tmp_path: Path) -> None:
    """A sponsor's draft with Vote-ID, token and choice lines in it: every reply still binds and counts."""
    vote_id, _, _ = open_with_files(running, tmp_path)
    service = Service(running.config)
    running.submit(running.reply("FRA", ["S/2020/654=yes", "S/2020/658=abstain"]), running.address("FRA"))
    service.poll_once()
    [decided] = service.ledger.decisions(vote_id)
    assert (decided.verdict, decided.choices) == ("ballot", {"S/2020/654": "yes", "S/2020/658": "abstain"})


def test_the_results_and_the_bundle_name_each_draft_by_the_same_sha256(running: Deployment, tmp_path: Path) -> None:
    vote_id, pdf, text = open_with_files(running, tmp_path)
    service = Service(running.config)
    service.close_now(vote_id)
    service.send()
    results = next(text_of_entity(r) for r in running.inbox_of("FRA") if b"Subject: Results" in r)
    out = tmp_path / "bundle.zip"
    assert voting("--config", str(running.config.path), "export", vote_id, "--out", str(out)).returncode == 0
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for path in (pdf, text):
            sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
            assert f"SHA-256 {sha256}" in results
            assert archive.read(f"drafts/{sha256}") == path.read_bytes()
    assert [(d["file_name"], d["media_type"], d["text"]) for d in manifest["drafts"]] == [
        ("S-2020-654.pdf", "application/pdf", ""), ("S-2020-658.txt", "text/plain", SPONSORED)]
    assert all(check.ok for check in audit_bundle(out.read_bytes()))
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    pdf_member = f"drafts/{hashlib.sha256(PDF).hexdigest()}"
    members[pdf_member] = PDF.replace(b"Catalog", b"Catalag")
    swapped = io.BytesIO()
    with zipfile.ZipFile(swapped, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    failed = {c.name: c.detail for c in audit_bundle(swapped.getvalue()) if not c.ok}
    assert "was changed: its SHA-256 is" in failed["draft S/2020/654"]


def test_a_draft_file_the_service_cannot_take_is_refused_clearly(running: Deployment, tmp_path: Path) -> None:
    config = str(running.config.path)
    pdf = tmp_path / "draft.pdf"
    pdf.write_bytes(PDF)
    untitled = voting("--config", config, "open", "--draft", f"S/2020/654={pdf}", "--rule", "unsc-substantive",
                      "--closes", "+1h")
    assert untitled.returncode == 2 and "--title S/2020/654=TITLE" in untitled.stderr
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    too_big = voting("--config", config, "open", "--draft", f"S/2020/654={huge}", "--rule", "unsc-substantive",
                     "--closes", "+1h")
    assert too_big.returncode == 2 and "at most 10,485,760" in too_big.stderr
    assert "Traceback" not in untitled.stderr + too_big.stderr
    assert Service(running.config).ledger.votes() == []
