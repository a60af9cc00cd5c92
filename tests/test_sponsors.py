"""A draft's sponsors: given to `voting open`, recorded in the chain, named in every letter and record, audited."""

from __future__ import annotations

import json
import zipfile
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from conftest import Deployment, open_vote, voting

from tests.test_audit import edit_manifest, failures
from voting.audit import audit_bundle
from voting.ballot import text_of_entity
from voting.bundle import read_bundle
from voting.electorate import load_electorate, save_electorate
from voting.service import Service


def subject_of(raw: bytes) -> str:
    return str(message_from_bytes(raw, policy=default)["Subject"])


def html_of(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default)
    return str(next(p for p in message.walk() if p.get_content_type() == "text/html").get_content())


def open_two_drafts(deployment: Deployment, tmp_path: Path, *options: str) -> tuple[int, str, str]:
    """`voting open` with S/2020/654 and S/2020/658, as the secretariat runs it: exit status, stdout, stderr."""
    drafts = []
    for symbol in ("S/2020/654", "S/2020/658"):
        path = tmp_path / f"{symbol.replace('/', '-')}.txt"
        path.write_text(f"Draft resolution {symbol}\n\nText of the draft.\n")
        drafts += ["--draft", f"{symbol}={path}"]
    opened = voting("--json", "--config", str(deployment.config.path), "open", *drafts, "--rule", "unsc-substantive",
                    "--closes", "+1h", "--title", "Syria", *options)
    return opened.returncode, opened.stdout, opened.stderr


def test_a_sponsor_given_wrong_is_one_clear_line_and_opens_nothing(running: Deployment, tmp_path: Path) -> None:
    for options, said in [
        (("--sponsor", "S/2020/999=BEL"), "--sponsor S/2020/999: S/2020/999 is not a draft of this vote (its drafts:"
                                          " S/2020/654, S/2020/658)"),
        (("--sponsor", "S/2020/654=BEL,XYZ"), "--sponsor S/2020/654=XYZ: XYZ is no delegation of the electorate; a"
                                              " sponsor from outside it is named in words"),
        (("--sponsor", "S/2020/654=BEL,,DEU"), "--sponsor S/2020/654: a sponsor is empty"),
        (("--sponsor", "S/2020/654"), "--sponsor 'S/2020/654': write SYMBOL=WHO[,WHO...]"),
    ]:
        status, _, stderr = open_two_drafts(running, tmp_path, *options)
        assert status == 2 and said in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert "Traceback" not in stderr
    assert Service(running.config).ledger.votes() == []


def test_sponsors_are_named_in_the_ballots_results_record_and_status_and_audited(running: Deployment,
                                                                              tmp_path: Path) -> None:
    electorate = load_electorate(running.config.electorate_file)
    fra = electorate.get("FRA")
    assert fra is not None
    fra.language = "fr"
    save_electorate(running.config.electorate_file, electorate)
    config = str(running.config.path)
    status, stdout, stderr = open_two_drafts(running, tmp_path, "--sponsor", "S/2020/654=BEL, deu",
                                             "--sponsor", "S/2020/658=RUS")
    assert status == 0, stderr
    vote_id = json.loads(stdout)["vote"]
    service = Service(running.config)
    opened = next(e for e in service.ledger.events(vote_id) if e.kind == "vote-opened")
    assert [d.get("sponsors") for d in opened.data["drafts"]] == [["BEL", "DEU"], ["RUS"]]

    ballot = running.ballot_of("GBR")
    assert "S/2020/654: YES | NO | ABSTAIN\n    Draft resolution S/2020/654\n    Sponsored by Belgium, Germany\n" in (
        text_of_entity(ballot).replace("\r\n", "\n"))
    assert "Sponsored by Russian Federation" in html_of(ballot)
    french_ballot = running.ballot_of("FRA")
    assert "    Présenté par Belgique, Allemagne\n" in text_of_entity(french_ballot).replace("\r\n", "\n")
    assert "Présenté par Fédération de Russie" in html_of(french_ballot)

    running.submit(running.reply("GBR", ["S/2020/654=yes", "S/2020/658=no"]), running.address("GBR"))
    assert voting("--config", config, "poll", "--once").returncode == 0
    closed = voting("--config", config, "close", vote_id, "--yes")
    assert closed.returncode == 0, closed.stderr
    results = next(raw for raw in running.inbox_of("GBR") if b"Subject: Results:" in raw)
    assert "  S/2020/654: Draft resolution S/2020/654\n    Sponsored by Belgium, Germany\n    SHA-256 " in (
        text_of_entity(results).replace("\r\n", "\n"))
    assert "Sponsored by Russian Federation" in html_of(results)
    french = next(raw for raw in running.inbox_of("FRA") if subject_of(raw).startswith("Résultats : Syria"))
    assert "Présenté par Belgique, Allemagne" in text_of_entity(french)
    assert "Présenté par Fédération de Russie" in html_of(french)
    assert "Belgique" not in text_of_entity(results) and "Allemagne" not in html_of(results)

    recorded = voting("--json", "--config", config, "record", vote_id, "--out", str(tmp_path / "record"))
    assert recorded.returncode == 0, recorded.stderr
    paths = json.loads(recorded.stdout)
    for page in (paths["html"], paths["text"]):
        text = Path(page).read_text()
        assert "Sponsored by Belgium, Germany" in text and "Sponsored by Russian Federation" in text
        assert "Belgique" not in text, "the public record is in the secretariat's language"
    shown = json.loads(voting("--json", "--config", config, "status", vote_id).stdout)
    assert [d["sponsors"] for d in shown["drafts"]] == [
        [{"code": "BEL", "name": "Belgium"}, {"code": "DEU", "name": "Germany"}],
        [{"code": "RUS", "name": "Russian Federation"}]]

    bundle = tmp_path / "bundle.zip"
    assert voting("--config", config, "export", vote_id, "--out", str(bundle)).returncode == 0
    audit = voting("audit", str(bundle), "--secretariat-cert", str(running.config.keys_dir / "secretariat.pem"))
    assert audit.returncode == 0 and "all " in audit.stdout and "checks passed" in audit.stdout, audit.stdout
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert [d["sponsors"] for d in manifest["drafts"]] == [["BEL", "DEU"], ["RUS"]]

    def claim_another_sponsor(document: dict[str, Any]) -> None:
        document["drafts"][1]["sponsors"] = ["RUS", "CHN"]

    signed = SimpleNamespace(bundle=read_bundle(bundle), keys=service.keys)
    failed = failures(audit_bundle(edit_manifest(signed, claim_another_sponsor)))  # type: ignore[arg-type]
    assert list(failed) == ["vote parameters"] and "drafts" in failed["vote parameters"], failed


def test_a_sponsor_from_outside_the_body_is_named_in_words_and_no_sponsor_is_no_key(running: Deployment,
                                                                                   tmp_path: Path) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path, ("S/2020/654", "S/2020/658"),
                        sponsors={"S/2020/654": ["European  Commission", "European Commission"]})
    service.send()
    assert "    Sponsored by European Commission\n" in text_of_entity(running.ballot_of("USA")).replace("\r\n", "\n")
    opened = next(e for e in service.ledger.events(vote_id) if e.kind == "vote-opened")
    assert opened.data["drafts"][0]["sponsors"] == ["European Commission"]
    assert "sponsors" not in opened.data["drafts"][1], "a draft without sponsors is recorded as before"
