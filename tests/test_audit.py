"""`voting export` and `voting audit` (docs/audit.md): a real vote exported, then every kind of tampering caught."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Deployment, copy_deployment, open_vote, voting, wait_for
from cryptography.hazmat.primitives.serialization import Encoding

from voting.audit import Check, audit_bundle, checks_json, render_checks, replay
from voting.audit.reading import unpack
from voting.audit.replay import Job
from voting.ballot import text_of_entity
from voting.bundle import export_bundle, read_bundle
from voting.errors import UsageError
from voting.mail.compose import signed_mail, text_as_html
from voting.ledger import GENESIS, canonical_json, event_hash
from voting.manifest import Manifest, schema_text
from voting.pki import (
    Identity,
    SecretariatKeys,
    certificate_pem,
    create_ca,
    fingerprint,
    issue_signing_certificate,
)
from voting.service import Service, embedded_server
from voting.smime.sign import sign_detached_der
from voting.smime.verify import Trust, TrustedCertificate, verify_message
from voting.verdict import Reading, settle

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "docs" / "audit-manifest.schema.json"
DRAFT = "S/2020/654"


@dataclass(frozen=True)
class Exported:
    bundle: bytes
    keys: SecretariatKeys
    vote_id: str
    sha_of: dict[str, list[str]]
    """Delegation code -> the SHA-256 of its messages, in order of receipt."""
    deployment: Deployment
    service: Service


@pytest.fixture(scope="module")
def exported(unsc_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """One vote: FRA yes, NER abstain then yes, USA no, GBR on FRA's ballot (rejected), unsigned mail
    (rejected, bound to no vote), closed early, then a statement from DEU; exported."""
    work = tmp_path_factory.mktemp("audit")
    deployment = copy_deployment(unsc_template, work / "deployment")
    service = Service(deployment.config)
    vote_id = open_vote(service, work)
    with embedded_server(deployment.config, required=True):
        service.send()
        deployment.submit(deployment.reply("FRA", ["yes"], explanation="France supports the draft."),
                          "fra@delegations.example")
        deployment.submit(deployment.reply("NER", ["abstain"]), "ner@delegations.example")
        service.poll_once()
        time.sleep(0.01)
        deployment.submit(deployment.reply("NER", ["yes"]), "ner@delegations.example")
        deployment.submit(deployment.reply("GBR", ["yes"], ballot=deployment.ballot_of("FRA")),
                          "gbr@delegations.example")
        deployment.submit(b"From: usa@delegations.example\r\nSubject: vote\r\n\r\nNO\r\n", "usa@delegations.example")
        deployment.submit(deployment.reply("USA", ["no"]), "usa@delegations.example")
        service.poll_once()
        service.close_now(vote_id)
        deployment.submit(deployment.reply("DEU", ["yes"], explanation="Germany explains its vote."),
                          "deu@delegations.example")
        service.poll_once()
    out = work / "bundle.zip"
    summary = export_bundle(service, vote_id, out)
    assert summary.path == out and summary.messages == 7
    sha_of: dict[str, list[str]] = {}
    for decision in service.ledger.decisions(vote_id) + service.ledger.decisions(None):
        sha_of.setdefault(decision.code or "?", []).append(decision.sha256)
    return Exported(read_bundle(out), service.keys, vote_id, sha_of, deployment, service)


# -- tampering helpers ------------------------------------------------------------------------


def members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def repack(contents: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def edit_manifest(exported: Exported | EncryptedExport, change: Callable[[dict[str, Any]], None], *,
                  resign: bool = True) -> bytes:
    """The bundle with its manifest changed and, as a dishonest secretariat would, signed again."""
    contents = members(exported.bundle)
    document = json.loads(contents["manifest.json"])
    change(document)
    contents["manifest.json"] = json.dumps(document, indent=2).encode()
    if resign:
        signer = exported.keys.signer
        contents["manifest.json.p7s"] = sign_detached_der(contents["manifest.json"], signer.key, signer.certificate)
    return repack(contents)


def failures(checks: list[Check]) -> dict[str, str]:
    return {check.name: check.detail for check in checks if not check.ok}


def message(document: dict[str, Any], sha256: str) -> dict[str, Any]:
    return next(m for m in document["messages"] if m["sha256"] == sha256)


# -- the untouched bundle ---------------------------------------------------------------------


def test_the_untouched_bundle_passes_every_check(exported: Exported) -> None:
    seen: list[tuple[int, int]] = []
    checks = audit_bundle(exported.bundle, progress=lambda done, total: seen.append((done, total)))
    assert failures(checks) == {}
    names = [c.name for c in checks]
    for expected in ("signature", "hash chain", "vote parameters", "electorate snapshot", "ballot tokens",
                     f"draft {DRAFT}", "decisions", f"counted {DRAFT}", f"outcome {DRAFT}", "closing"):
        assert expected in names
    assert sum(name.endswith("verdict") for name in names) == 7
    assert sum(name.startswith("certificate ") for name in names) == 15
    assert seen[-1] == (7, 7)
    signature = next(c for c in checks if c.name == "signature")
    assert "carried in the bundle" in signature.detail
    lines = render_checks(checks)
    assert lines[-1] == f"all {len(checks)} checks passed"
    assert checks_json(checks)["valid"] is True


def test_the_bundle_holds_what_happened(exported: Exported) -> None:
    contents = members(exported.bundle)
    document = json.loads(contents["manifest.json"])
    verdicts = sorted((m["code"] or "-", m["verdict"], m["reason"] or "") for m in document["messages"])
    assert verdicts == [
        ("-", "rejected", "not-signed"),
        ("DEU", "statement", ""),
        ("FRA", "ballot", ""),
        ("GBR", "rejected", "wrong-ballot-token"),
        ("NER", "ballot", ""),
        ("NER", "ballot", ""),
        ("USA", "ballot", ""),
    ]
    first_ner, second_ner = exported.sha_of["NER"]
    assert message(document, second_ner)["supersedes"] == first_ner
    assert document["counted"][DRAFT]["NER"] == {"message": second_ner, "choice": "yes"}
    assert document["outcomes"][DRAFT]["yes"] == 2 and document["outcomes"][DRAFT]["adopted"] is False
    [draft] = document["drafts"]
    assert set(contents) == {"manifest.json", "manifest.json.p7s", f"drafts/{draft['sha256']}",
                             *(f"messages/{m['sha256']}.eml" for m in document["messages"])}
    assert contents[f"drafts/{draft['sha256']}"] == draft["text"].encode()
    assert (draft["file_name"], draft["media_type"]) == ("S-2020-654.txt", "text/plain")
    for m in document["messages"]:
        assert hashlib.sha256(contents[f"messages/{m['sha256']}.eml"]).hexdigest() == m["sha256"]


def test_the_signature_checks_against_the_given_secretariat_certificate(exported: Exported) -> None:
    for certificate in (exported.keys.ca.certificate, exported.keys.signer.certificate):
        checks = audit_bundle(exported.bundle, secretariat_ca=certificate)
        assert failures(checks) == {}
        assert "--secretariat-cert" in next(c for c in checks if c.name == "signature").detail


def test_the_manifest_signature_verifies_with_openssl(exported: Exported, tmp_path: Path) -> None:
    for name, data in members(exported.bundle).items():
        if "/" not in name:
            (tmp_path / name).write_bytes(data)
    (tmp_path / "ca.pem").write_text(certificate_pem(exported.keys.ca.certificate))
    result = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                             str(tmp_path / "manifest.json.p7s"), "-content", str(tmp_path / "manifest.json"),
                             "-CAfile", str(tmp_path / "ca.pem"), "-purpose", "any", "-out", "/dev/null"],
                            capture_output=True)
    assert result.returncode == 0, result.stderr


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == schema_text()


# -- tampering --------------------------------------------------------------------------------


def test_a_changed_byte_in_a_message_is_named(exported: Exported) -> None:
    contents = members(exported.bundle)
    sha = exported.sha_of["USA"][-1]
    name = f"messages/{sha}.eml"
    contents[name] = contents[name].replace(b"NO", b"YES", 1)
    failed = failures(audit_bundle(repack(contents)))
    assert f"{name} was changed" in failed[f"message {sha[:16]}… SHA-256"]
    assert "replay gives" in failed[f"message {sha[:16]}… verdict"]


def test_a_message_removed_from_the_bundle_is_named(exported: Exported) -> None:
    contents = members(exported.bundle)
    sha = exported.sha_of["FRA"][0]
    del contents[f"messages/{sha}.eml"]
    failed = failures(audit_bundle(repack(contents)))
    assert "missing from the bundle" in failed["bundle members"]
    assert "missing" in failed[f"message {sha[:16]}… SHA-256"]


def test_a_message_removed_from_the_manifest_is_caught_by_the_chain(exported: Exported) -> None:
    sha = exported.sha_of["FRA"][0]

    def remove(document: dict[str, Any]) -> None:
        document["messages"].remove(message(document, sha))

    contents = members(edit_manifest(exported, remove))
    del contents[f"messages/{sha}.eml"]
    failed = failures(audit_bundle(repack(contents)))
    assert f"decision on message {sha[:16]}…, which the manifest does not list" in failed["decisions"]
    assert "FRA" in failed[f"counted {DRAFT}"]


def test_a_message_added_to_the_bundle_is_named(exported: Exported) -> None:
    extra = exported.deployment.reply("CHN", ["no"])
    sha = hashlib.sha256(extra).hexdigest()
    contents = members(exported.bundle)
    contents[f"messages/{sha}.eml"] = extra
    failed = failures(audit_bundle(repack(contents)))
    assert f"messages/{sha}.eml is in the bundle but not listed" in failed["bundle members"]


def test_a_message_added_to_the_manifest_is_caught_by_the_chain(exported: Exported) -> None:
    extra = exported.deployment.reply("CHN", ["no"])
    sha = hashlib.sha256(extra).hexdigest()

    def add(document: dict[str, Any]) -> None:
        entry = dict(message(document, exported.sha_of["USA"][-1]), sha256=sha, code="CHN")
        document["messages"].append(entry)
        document["counted"][DRAFT]["CHN"] = {"message": sha, "choice": "no"}

    contents = members(edit_manifest(exported, add))
    contents[f"messages/{sha}.eml"] = extra
    failed = failures(audit_bundle(repack(contents)))
    assert f"message {sha[:16]}… has no decision event in the chain" in failed["decisions"]
    assert "closing" in failed


def test_a_flipped_verdict_is_named(exported: Exported) -> None:
    sha = exported.sha_of["GBR"][0]

    def flip(document: dict[str, Any]) -> None:
        message(document, sha).update(verdict="ballot", reason=None, choices={DRAFT: "yes"})

    failed = failures(audit_bundle(edit_manifest(exported, flip)))
    assert "replay gives GBR: rejected (wrong-ballot-token)" in failed[f"message {sha[:16]}… verdict"]
    assert f"message {sha[:16]}… differs from its decision event" in failed["decisions"]


def test_a_counted_ballot_swapped_for_the_earlier_one_is_named(exported: Exported) -> None:
    first, second = exported.sha_of["NER"]

    def swap(document: dict[str, Any]) -> None:
        document["counted"][DRAFT]["NER"] = {"message": first, "choice": "abstain"}

    failed = failures(audit_bundle(edit_manifest(exported, swap)))
    assert f"NER is counted abstain from message {first[:16]}…" in failed[f"counted {DRAFT}"]
    assert f"last valid ballot on time is {second[:16]}…" in failed[f"counted {DRAFT}"]
    assert "counted" in failed["closing"]


def test_a_flipped_outcome_is_named(exported: Exported) -> None:
    def adopt(document: dict[str, Any]) -> None:
        document["outcomes"][DRAFT]["adopted"] = True

    failed = failures(audit_bundle(edit_manifest(exported, adopt)))
    assert "recorded adopted 2-1-0" in failed[f"outcome {DRAFT}"]
    assert "Not adopted" in failed[f"outcome {DRAFT}"]
    assert "outcomes" in failed["closing"]


def test_a_moved_deadline_is_named(exported: Exported) -> None:
    def move(document: dict[str, Any]) -> None:
        document["vote"]["closes_at"] = document["vote"]["opened_at"]

    failed = failures(audit_bundle(edit_manifest(exported, move)))
    assert "closes_at" in failed["vote parameters"]
    usa = exported.sha_of["USA"][0]
    assert "replay gives USA: rejected (late)" in failed[f"message {usa[:16]}… verdict"]


def test_a_replaced_certificate_is_named(exported: Exported) -> None:
    rogue = issue_signing_certificate(create_ca("Rogue", "Nobody"), common_name="France",
                                      emails=["fra@delegations.example"], key_type="ec")

    def replace(document: dict[str, Any]) -> None:
        fra = next(d for d in document["electorate"]["current"]["delegation"] if d["code"] == "FRA")
        fra["certificates"][0]["pem"] = certificate_pem(rogue.certificate)

    failed = failures(audit_bundle(edit_manifest(exported, replace)))
    [name] = [n for n in failed if n.startswith("certificate FRA")]
    assert "the PEM is another certificate" in failed[name]
    assert "FRA" in failed["electorate certificates"]
    fra = exported.sha_of["FRA"][0]
    assert "replay gives" in failed[f"message {fra[:16]}… verdict"]


def test_custody_of_a_key_is_stated_and_cannot_be_restated_after_the_vote_opened(exported: Exported) -> None:
    checks = {check.name: check.detail for check in audit_bundle(exported.bundle)}
    for code in ("FRA", "USA"):
        [name] = [n for n in checks if n.startswith(f"certificate {code} ")]
        assert checks[name].endswith("; key generated by the secretariat, which held it before handing it over")

    def disown(document: dict[str, Any]) -> None:
        fra = next(d for d in document["electorate"]["current"]["delegation"] if d["code"] == "FRA")
        fra["certificates"][0]["secretariat_held_key"] = False

    checks = {check.name: check for check in audit_bundle(edit_manifest(exported, disown))}
    [name] = [n for n in checks if n.startswith("certificate FRA ")]
    assert checks[name].detail.endswith("; key made by the delegation; the secretariat never held it")
    assert not checks["electorate certificates"].ok and "FRA" in checks["electorate certificates"].detail


def test_a_changed_electorate_is_named(exported: Exported) -> None:
    def enlarge(document: dict[str, Any]) -> None:
        snapshot = json.loads(document["electorate"]["snapshot_json"])
        next(d for d in snapshot["delegation"] if d["code"] == "NER")["permanent"] = True
        document["electorate"]["snapshot_json"] = json.dumps(snapshot)

    failed = failures(audit_bundle(edit_manifest(exported, enlarge)))
    assert "but the vote-opened event records" in failed["electorate snapshot"]


def test_an_event_removed_from_the_chain_is_named(exported: Exported) -> None:
    def remove(document: dict[str, Any]) -> None:
        del document["chain"]["events"][1]

    failed = failures(audit_bundle(edit_manifest(exported, remove)))
    assert failed["hash chain"].startswith("event 2 is missing")
    assert "no decision event" in failed["decisions"]


def test_a_changed_event_is_named(exported: Exported) -> None:
    def rewrite(document: dict[str, Any]) -> None:
        document["chain"]["events"][0]["data"]["rule"] = "silence"

    failed = failures(audit_bundle(edit_manifest(exported, rewrite)))
    assert failed["hash chain"] == "event 1 (vote-opened) was changed: its hash does not match its content"
    assert "rule" in failed["vote parameters"]


def test_a_draft_shown_under_another_title_file_name_or_media_type_is_named(exported: Exported) -> None:
    for key in ("title", "file_name", "media_type"):
        def rename(document: dict[str, Any]) -> None:
            document["drafts"][0][key] += " (revised)"

        failed = failures(audit_bundle(edit_manifest(exported, rename)))
        assert list(failed) == ["vote parameters"] and "drafts" in failed["vote parameters"], (key, failed)


def test_a_statement_window_other_than_the_chain_s_is_named(exported: Exported) -> None:
    def widen(document: dict[str, Any]) -> None:
        document["vote"]["statement_hours"] += 1

    failed = failures(audit_bundle(edit_manifest(exported, widen)))
    assert "vote parameters" in failed and "statement_hours" in failed["vote parameters"], failed


def chain_again(document: dict[str, Any]) -> None:
    """Every link of the manifest's chain computed again, and its head: as one who rewrites the chain would."""
    previous = GENESIS
    for event in document["chain"]["events"]:
        event["prev_hash"] = previous
        event["hash"] = previous = event_hash(previous, event["seq"], event["at"], event["kind"],
                                              canonical_json(event["data"]))
    document["chain"]["head"] = previous


def test_a_bundle_whose_vote_opened_event_states_no_draft_title_nor_window_still_passes(exported: Exported) -> None:
    """As a bundle of a vote opened before the drafts' title, file name and media type and the statement window
    were chained reads."""
    def as_before(document: dict[str, Any]) -> None:
        events = document["chain"]["events"]
        del events[0]["data"]["statement_hours"]
        for draft in events[0]["data"]["drafts"]:
            for key in ("title", "file_name", "media_type"):
                del draft[key]
        chain_again(document)

    assert failures(audit_bundle(edit_manifest(exported, as_before))) == {}


def test_a_second_result_chained_after_the_first_is_named(exported: Exported) -> None:
    """The audit reads the first vote-closed event; a second one stating another result, linked and signed like
    the rest, would be the result to any reader that takes the last."""
    def close_again(document: dict[str, Any]) -> None:
        events = document["chain"]["events"]
        closing = next(e for e in events if e["kind"] == "vote-closed")
        again = json.loads(json.dumps(closing))
        for outcome in again["data"]["outcomes"].values():
            outcome["adopted"] = not outcome["adopted"]
        events.append({**again, "seq": len(events) + 1})
        chain_again(document)

    failed = failures(audit_bundle(edit_manifest(exported, close_again)))
    assert failed["hash chain"].endswith("(vote-closed) follows the vote-closed event"), failed


def test_a_manifest_changed_without_signing_again_fails_the_signature(exported: Exported) -> None:
    def retitle(document: dict[str, Any]) -> None:
        document["vote"]["title"] = "Another vote"

    failed = failures(audit_bundle(edit_manifest(exported, retitle, resign=False)))
    assert "manifest.json.p7s does not verify" in failed["signature"]


def test_a_manifest_signed_by_another_key_fails_against_the_secretariat_certificate(exported: Exported) -> None:
    rogue_ca = create_ca("Rogue CA", "Nobody")
    rogue = issue_signing_certificate(rogue_ca, common_name="Secretariat", emails=["votes@secretariat.example"],
                                      key_type="ec", secretariat_role=True)
    contents = members(exported.bundle)
    document = json.loads(contents["manifest.json"])
    document["secretariat_ca_pem"] = certificate_pem(rogue_ca.certificate)
    document["signer_sha256"] = fingerprint(rogue.certificate)
    contents["manifest.json"] = json.dumps(document, indent=2).encode()
    contents["manifest.json.p7s"] = sign_detached_der(contents["manifest.json"], rogue.key, rogue.certificate)
    forged = repack(contents)
    failed = failures(audit_bundle(forged, secretariat_ca=exported.keys.ca.certificate))
    assert "does not verify against the --secretariat-cert" in failed["signature"]
    assert "neither the --secretariat-cert nor its issuer" in failed["secretariat CA"]
    without = failures(audit_bundle(forged))
    assert "signature" not in without
    assert any(name.endswith("verdict") for name in without)


# -- unreadable bundles -----------------------------------------------------------------------


def only_failure(checks: list[Check]) -> str:
    assert render_checks(checks)[-1].endswith(f"of {len(checks)} checks failed")
    [detail] = [c.detail for c in checks if not c.ok]
    return detail


def test_a_file_that_is_not_a_zip_is_a_clear_failure() -> None:
    assert "not a zip file" in only_failure(audit_bundle(b"PK\x03\x04 certainly not a zip"))
    assert "not a zip file" in only_failure(audit_bundle(b""))


def test_a_missing_member_is_a_clear_failure(exported: Exported) -> None:
    contents = members(exported.bundle)
    del contents["manifest.json.p7s"]
    assert "manifest.json.p7s missing from the bundle" in only_failure(audit_bundle(repack(contents)))


@pytest.mark.parametrize("manifest", [b"{not json", b"[" * 100_000 + b"]" * 100_000, b'{"format": "other"}',
                                      "\u00ff".encode("latin-1")])
def test_a_broken_manifest_is_a_clear_failure(exported: Exported, manifest: bytes) -> None:
    contents = members(exported.bundle)
    contents["manifest.json"] = manifest
    assert "manifest.json is not a voting-audit-bundle/1 manifest" in only_failure(audit_bundle(repack(contents)))


def test_an_oversized_member_is_refused_without_reading_it_all(exported: Exported) -> None:
    contents = members(exported.bundle)
    contents["messages/" + "0" * 64 + ".eml"] = bytes(65 << 20)
    assert "is larger than" in only_failure(audit_bundle(repack(contents)))


def test_an_unexpected_member_is_named(exported: Exported) -> None:
    contents = members(exported.bundle)
    contents["notes.txt"] = b"hello"
    assert "notes.txt is not a member a bundle holds" in failures(audit_bundle(repack(contents)))["bundle members"]


# -- export errors ------------------------------------------------------------------------------


def test_an_open_vote_cannot_be_exported(exported: Exported, tmp_path: Path) -> None:
    vote_id = open_vote(exported.service, tmp_path)
    with pytest.raises(UsageError, match="still open"):
        export_bundle(exported.service, vote_id, tmp_path / "open.zip")
    assert not (tmp_path / "open.zip").exists()


def test_an_unwritable_destination_and_an_unreadable_bundle_are_usage_errors(exported: Exported,
                                                                             tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(UsageError, match="cannot write the bundle"):
        export_bundle(exported.service, exported.vote_id, tmp_path / "a-file" / "b.zip")
    with pytest.raises(UsageError, match="cannot read the bundle"):
        read_bundle(tmp_path / "missing.zip")


# -- ballots encrypted to the secretariat ---------------------------------------------------------


@dataclass(frozen=True)
class EncryptedExport:
    bundle: bytes
    keys: SecretariatKeys
    decisions: dict[str, tuple[str, str | None, str]]
    """Delegation -> (verdict, reason, SHA-256) of its message."""


@pytest.fixture(scope="module")
def encrypted_export(unsc_template: Path, tmp_path_factory: pytest.TempPathFactory) -> EncryptedExport:
    """EST encrypts its ballot to the secretariat, FRA to USA by mistake, VNM does not encrypt; then export."""
    work = tmp_path_factory.mktemp("encrypted")
    deployment = copy_deployment(unsc_template, work / "deployment")
    service = Service(deployment.config)
    vote_id = open_vote(service, work)
    usa = deployment.identities["USA"].certificate
    with embedded_server(deployment.config, required=True):
        service.send()
        for code, recipient in (("EST", service.keys.signer.certificate), ("FRA", usa)):
            deployment.submit(deployment.encrypted_reply(code, recipient, work), deployment.address(code))
        deployment.submit(deployment.reply("VNM", ["no"]), deployment.address("VNM"))
        service.poll_once()
        service.close_now(vote_id)
    by_sender = {}
    for decision in service.ledger.decisions(vote_id) + service.ledger.decisions(None):
        raw = service.ledger.raw_message(decision.message)
        sender = raw.split(b"From: ", 1)[1].split(b"@", 1)[0].decode().upper()
        by_sender[sender] = (decision.verdict, decision.reason, decision.sha256)
    export_bundle(service, vote_id, work / "bundle.zip")
    return EncryptedExport(read_bundle(work / "bundle.zip"), service.keys, by_sender)


def test_a_ballot_encrypted_to_the_secretariat_is_counted_and_audited(encrypted_export: EncryptedExport) -> None:
    decisions = encrypted_export.decisions
    assert decisions["EST"][:2] == ("ballot", None)
    assert decisions["FRA"][:2] == ("rejected", "encrypted")
    assert decisions["VNM"][:2] == ("ballot", None)
    checks = audit_bundle(encrypted_export.bundle, secretariat_ca=encrypted_export.keys.ca.certificate)
    assert failures(checks) == {}
    est = decisions["EST"][2]
    assert f"message {est[:16]}… decrypted" in [c.name for c in checks]
    contents = members(encrypted_export.bundle)
    document = json.loads(contents["manifest.json"])
    decrypted = contents[f"messages/{est}.decrypted.eml"]
    assert message(document, est)["decrypted"]["sha256"] == hashlib.sha256(decrypted).hexdigest()
    assert b"multipart/signed" in decrypted
    assert message(document, decisions["FRA"][2])["decrypted"] is None
    assert message(document, decisions["VNM"][2])["decrypted"] is None
    assert {name for name in contents if name.endswith(".decrypted.eml")} == {f"messages/{est}.decrypted.eml"}


def test_a_changed_decrypted_entity_is_named(encrypted_export: EncryptedExport) -> None:
    est = encrypted_export.decisions["EST"][2]
    contents = members(encrypted_export.bundle)
    contents[f"messages/{est}.decrypted.eml"] += b"\r\n"
    failed = failures(audit_bundle(repack(contents)))
    assert "was changed" in failed[f"message {est[:16]}… decrypted"]


def test_a_wrong_or_missing_content_key_is_named(encrypted_export: EncryptedExport) -> None:
    est = encrypted_export.decisions["EST"][2]
    def wrong_key(document: dict[str, Any]) -> None:
        message(document, est)["decrypted"]["content_key"] = "00" * 32

    failed = failures(audit_bundle(edit_manifest(encrypted_export, wrong_key)))
    assert "does not decrypt the message" in failed[f"message {est[:16]}… decrypted"]
    assert "replay gives unknown sender: rejected (encrypted)" in failed[f"message {est[:16]}… verdict"]

    def no_key(document: dict[str, Any]) -> None:
        message(document, est)["decrypted"] = None

    failed = failures(audit_bundle(edit_manifest(encrypted_export, no_key)))
    assert "the manifest lists no decryption" in failed["bundle members"]
    assert "replay gives unknown sender: rejected (encrypted)" in failed[f"message {est[:16]}… verdict"]


def test_a_rejected_message_bound_to_no_vote_cannot_be_removed_unnoticed(exported: Exported) -> None:
    document = json.loads(members(exported.bundle)["manifest.json"])
    unbound = next(m["sha256"] for m in document["messages"] if m["vote_id"] is None)

    def remove(manifest: dict[str, Any]) -> None:
        manifest["messages"] = [m for m in manifest["messages"] if m["sha256"] != unbound]

    bundle = members(edit_manifest(exported, remove))
    del bundle[f"messages/{unbound}.eml"]
    failed = failures(audit_bundle(repack(bundle)))
    assert "does not list" in failed["decisions"], failed


def test_a_bundle_forged_and_signed_by_a_delegation_fails_the_readme_s_audit(exported: Exported, tmp_path: Path) -> None:
    """A delegation holds a key the secretariat CA certified; the signing certificate pinned is the secretariat's own."""
    france = exported.deployment.identities["FRA"]

    def adopt(document: dict[str, Any]) -> None:
        document["vote"]["title"] = "Forged by a delegation"

    contents = members(edit_manifest(exported, adopt, resign=False))
    contents["manifest.json.p7s"] = sign_detached_der(contents["manifest.json"], france.key, france.certificate,
                                                      france.chain)
    forged = tmp_path / "forged.zip"
    forged.write_bytes(repack(contents))
    pinned = exported.deployment.config.keys_dir / "secretariat.pem"
    result = voting("audit", str(forged), "--secretariat-cert", str(pinned))
    assert result.returncode == 1 and re.search(r"(?m)^FAIL\s+signature", result.stdout), result.stdout
    honest = tmp_path / "honest.zip"
    honest.write_bytes(exported.bundle)
    assert voting("audit", str(honest), "--secretariat-cert", str(pinned)).returncode == 0


def test_a_counted_choice_for_an_unknown_draft_is_a_failed_check_not_a_crash(exported: Exported) -> None:
    def invent(document: dict[str, Any]) -> None:
        ballot = next(m for m in document["messages"] if m["verdict"] == "ballot")
        ballot["choices"]["S/9999/1"] = "yes"
        code = ballot["code"]
        document["counted"]["S/9999/1"] = {code: {**next(iter(document["counted"].values()))[code], "choice": "yes"}}

    failed = failures(audit_bundle(edit_manifest(exported, invent)))
    assert failed, "an invented draft must fail the audit"


def test_a_zip_bomb_is_refused_before_it_is_expanded(exported: Exported, tmp_path: Path) -> None:
    """A bundle of well under a megabyte whose manifest inflates to hundreds: one failed check, little memory."""
    contents = members(exported.bundle)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("manifest.json", "w", force_zip64=True) as manifest:
            manifest.write(contents["manifest.json"][:-2])
            for _ in range(400):
                manifest.write(b" " * (1 << 20))
            manifest.write(b"}\n")
        archive.writestr("manifest.json.p7s", contents["manifest.json.p7s"])
    assert path.stat().st_size < 1 << 20
    # Measured from a small parent: a child forked from this test process would count its memory too.
    measure = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
               " print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(done.stdout)")
    result = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "voting", "audit", str(path)],
                            capture_output=True, text=True, timeout=120)
    status, peak_kib = (int(word) for word in result.stdout.split("\n", 1)[0].split())
    assert status == 1 and "zip bomb" in result.stdout, result.stdout
    assert peak_kib < 300_000, f"{peak_kib} KiB used"


def test_a_ballot_dated_on_time_but_taken_in_after_the_count_is_late_in_service_and_audit(
        unsc_template: Path, tmp_path: Path) -> None:
    """An IMAP APPEND may date a message at any time: one dated before the deadline that the service only
    sees after it counted is late, and the honest bundle that records it so passes its audit."""
    deployment = copy_deployment(unsc_template, tmp_path / "deployment")
    service = Service(deployment.config)
    vote_id = open_vote(service, tmp_path)
    with embedded_server(deployment.config, required=True):
        service.send()
        deployment.submit(deployment.reply("FRA", ["yes"]), "fra@delegations.example")
        service.poll_once()
        service.close_now(vote_id)
        deadline = service.ledger.vote(vote_id).closes_at
        inbox = deployment.config.inbox
        before = {path for path in inbox.rglob("*") if path.is_file()}
        deployment.submit(deployment.reply("USA", ["no"]), "usa@delegations.example")
        wait_for(lambda: {path for path in inbox.rglob("*") if path.is_file()} - before, "the USA reply")
        for path in {path for path in inbox.rglob("*") if path.is_file()} - before:
            dated = (deadline.timestamp() - 60,) * 2
            os.utime(path, dated)
        service.poll_once()
    usa = next(d for d in service.ledger.decisions(vote_id) if d.code == "USA")
    assert (usa.verdict, usa.reason) == ("rejected", "late") and usa.received_at < deadline
    out = tmp_path / "bundle.zip"
    export_bundle(service, vote_id, out)
    assert failures(audit_bundle(read_bundle(out))) == {}


# -- the results email and the signer's role --------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """The bundle written when the vote closed, and the results email as FRA's mailbox received it."""

    bundle: Path
    results: Path
    results_text: str


@pytest.fixture(scope="module")
def published(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Published:
    deployment = exported.deployment
    closing = next(e for e in exported.service.ledger.events(exported.vote_id) if e.kind == "vote-closed")
    bundle = deployment.config.records_dir / f"{exported.vote_id}-{closing.hash[:12]}.zip"
    wait_for(lambda: any(b"Subject: Results:" in raw for raw in deployment.inbox_of("FRA")), "the results email")
    raw = next(raw for raw in deployment.inbox_of("FRA") if b"Subject: Results:" in raw)
    results = tmp_path_factory.mktemp("results") / "results.eml"
    results.write_bytes(raw)
    checked = verify_message(raw, Trust(registered=(TrustedCertificate(exported.keys.signer.certificate),)),
                             datetime.now(UTC))
    assert checked.valid and checked.signed_content is not None
    return Published(bundle, results, text_of_entity(checked.signed_content))


def audited(bundle: Path, *options: str) -> dict[str, tuple[bool, str]]:
    """`voting audit` as a user runs it: check name -> (passed, detail), from its printed lines."""
    result = voting("audit", str(bundle), *options)
    checks = {m["name"]: (m["status"] == "ok", m["detail"])
              for m in re.finditer(r"(?m)^(?P<status>ok|FAIL)\s+(?P<name>[^:]+): (?P<detail>.*)$", result.stdout)}
    assert result.returncode == (0 if all(ok for ok, _ in checks.values()) else 1), result.stdout + result.stderr
    return checks


def keys_file(exported: Exported, name: str) -> str:
    return str(exported.deployment.config.keys_dir / name)


def test_the_results_email_a_delegation_received_names_the_bundle_and_passes_the_audit(
        exported: Exported, published: Published) -> None:
    for pin in ("secretariat.pem", "secretariat-ca.pem"):
        checks = audited(published.bundle, "--secretariat-cert", keys_file(exported, pin),
                         "--results", str(published.results))
        assert all(ok for ok, _ in checks.values()), checks
        assert {"results signature", "results bundle SHA-256", "results chain head"} <= set(checks)
    alone = audited(published.bundle, "--results", str(published.results))
    assert all(ok for ok, _ in alone.values()) and "same signer as the results email" in alone["signature"][1]


def test_without_a_pin_or_the_results_the_audit_says_the_signer_is_only_the_bundle_s_own(
        published: Published) -> None:
    checks = audited(published.bundle)
    assert all(ok for ok, _ in checks.values())
    assert "carried in the bundle itself only" in checks["signature"][1]
    assert "not who made it" in checks["signature"][1]


def test_the_results_email_does_not_name_a_bundle_made_after_the_head_moved(exported: Exported,
                                                                           published: Published,
                                                                           tmp_path: Path) -> None:
    """A statement after the close moved the chain on: the later export is another bundle with another head."""
    later = tmp_path / "later.zip"
    later.write_bytes(exported.bundle)
    checks = audited(later, "--secretariat-cert", keys_file(exported, "secretariat.pem"),
                     "--results", str(published.results))
    assert checks["results signature"][0]
    assert not checks["results bundle SHA-256"][0] and hashlib.sha256(exported.bundle).hexdigest() in \
        checks["results bundle SHA-256"][1]
    assert not checks["results chain head"][0]


def results_signed_by(identity: Identity, sender: str, text: str) -> bytes:
    return signed_mail(identity, sender=sender, sender_name="Results", recipients=["fra@delegations.example"],
                       subject="Results", text=text, html_body=text_as_html(text), sent_at=datetime.now(UTC)).raw


def test_a_results_email_signed_by_a_delegation_fails(exported: Exported, published: Published,
                                                     tmp_path: Path) -> None:
    """FRA's certificate comes from the same CA, and its signature is intact: it lacks the secretariat's role."""
    forged = tmp_path / "results.eml"
    forged.write_bytes(results_signed_by(exported.deployment.identities["FRA"], "fra@delegations.example",
                                         published.results_text))
    checks = audited(published.bundle, "--secretariat-cert", keys_file(exported, "secretariat-ca.pem"),
                     "--results", str(forged))
    assert checks["signature"][0]
    assert not checks["results signature"][0] and "lacks the secretariat's signing role" in \
        checks["results signature"][1]
    assert not checks["results bundle SHA-256"][0] and not checks["results chain head"][0]
    pinned = audited(published.bundle, "--secretariat-cert", keys_file(exported, "secretariat.pem"),
                     "--results", str(forged))
    assert not pinned["results signature"][0] and "does not verify" in pinned["results signature"][1]


def test_a_results_email_quoting_another_bundle_hash_fails(exported: Exported, published: Published,
                                                           tmp_path: Path) -> None:
    """Signed by the secretariat itself, it names another bundle: a dishonest secretariat's two versions."""
    actual = hashlib.sha256(published.bundle.read_bytes()).hexdigest()
    other = tmp_path / "results.eml"
    other.write_bytes(results_signed_by(exported.keys.signer, "votes@secretariat.example",
                                        published.results_text.replace(actual, "0" * 64)))
    checks = audited(published.bundle, "--secretariat-cert", keys_file(exported, "secretariat.pem"),
                     "--results", str(other))
    assert checks["results signature"][0] and checks["results chain head"][0]
    assert not checks["results bundle SHA-256"][0]
    assert f"Audit bundle SHA-256: {'0' * 64}" in checks["results bundle SHA-256"][1]


def test_a_bundle_forged_by_a_delegation_fails_against_the_secretariat_ca(exported: Exported, tmp_path: Path) -> None:
    """The CA certified FRA too; pinning it, only a signer with the secretariat's role passes."""
    france = exported.deployment.identities["FRA"]
    for pinned in (fingerprint(exported.keys.signer.certificate), fingerprint(france.certificate)):
        def adopt(document: dict[str, Any], pin: str = pinned) -> None:
            document["vote"]["title"] = "Forged by a delegation"
            document["signer_sha256"] = pin

        contents = members(edit_manifest(exported, adopt, resign=False))
        contents["manifest.json.p7s"] = sign_detached_der(contents["manifest.json"], france.key, france.certificate,
                                                          france.chain)
        forged = tmp_path / "forged.zip"
        forged.write_bytes(repack(contents))
        checks = audited(forged, "--secretariat-cert", keys_file(exported, "secretariat-ca.pem"))
        assert not checks["signature"][0] and "lacks the secretariat's signing role" in checks["signature"][1]


def test_a_bundle_signed_by_the_secretariat_but_pinning_another_signer_fails(exported: Exported) -> None:
    def repin(document: dict[str, Any]) -> None:
        document["signer_sha256"] = fingerprint(exported.deployment.identities["FRA"].certificate)

    failed = failures(audit_bundle(edit_manifest(exported, repin), secretariat_ca=exported.keys.ca.certificate))
    assert "not the signer the manifest pins" in failed["signature"]


def test_one_hash_names_a_bundle_in_the_results_export_record_and_audit(exported: Exported, published: Published,
                                                                        tmp_path: Path) -> None:
    config = str(exported.deployment.config.path)
    labelled = re.compile(r"(?m)^Audit bundle SHA-256: ([0-9a-f]{64})$")

    def named(text: str) -> str:
        [sha256] = labelled.findall(text.replace("\r\n", "\n"))
        return str(sha256)

    def audit_names(bundle: Path) -> str:
        result = voting("audit", str(bundle))
        assert result.returncode == 0, result.stdout
        return named(result.stdout)

    closed_with = hashlib.sha256(published.bundle.read_bytes()).hexdigest()
    assert named(published.results_text) == audit_names(published.bundle) == closed_with
    exported_file = tmp_path / "export.zip"
    export = voting("--config", config, "export", exported.vote_id, "--out", str(exported_file))
    assert export.returncode == 0, export.stderr
    assert named(export.stdout) == audit_names(exported_file) == hashlib.sha256(exported_file.read_bytes()).hexdigest()
    record = voting("--config", config, "record", exported.vote_id, "--out", str(tmp_path / "record"))
    assert record.returncode == 0, record.stderr
    [recorded] = (tmp_path / "record").glob("*.zip")
    assert named(record.stdout) == audit_names(recorded) == named((tmp_path / "record" / f"{exported.vote_id}.txt")
                                                                  .read_text())
    as_json = json.loads(voting("--json", "audit", str(recorded)).stdout)
    assert as_json["bundle_sha256"] == named(record.stdout)


# -- reading the messages on every core ---------------------------------------------------------


def _stop_the_process(job: Job) -> Reading | str:
    """Reads no message: the process that reads it stops, as one killed or out of memory would."""
    os._exit(1)


def with_a_copy_and_a_window_past_the_calendar(exported: Exported) -> bytes:
    """The bundle, signed again, with a copy of NER's first ballot under another outer header (recorded as a
    replay), and a statement window so long that replaying DEU's late statement overflows the calendar."""
    contents = members(exported.bundle)
    document = json.loads(contents["manifest.json"])
    first_ner, second_ner = exported.sha_of["NER"]
    copy = b"X-Resent: again\r\n" + contents[f"messages/{first_ner}.eml"]
    sha = hashlib.sha256(copy).hexdigest()
    contents[f"messages/{sha}.eml"] = copy
    place = next(i for i, m in enumerate(document["messages"]) if m["sha256"] == second_ner) + 1
    document["messages"].insert(place, {**message(document, first_ner), "sha256": sha, "verdict": "rejected",
                                        "reason": "replayed", "choices": {}, "explanation": "", "signed_sha256": None,
                                        "received_at": message(document, second_ner)["received_at"]})
    document["vote"]["statement_hours"] = 1e9
    contents["manifest.json"] = json.dumps(document, indent=2).encode()
    signer = exported.keys.signer
    contents["manifest.json.p7s"] = sign_detached_der(contents["manifest.json"], signer.key, signer.certificate)
    return repack(contents)


def read_both_ways(bundle: bytes, monkeypatch: pytest.MonkeyPatch) -> list[Check]:
    """The audit's checks with the messages read in other processes, once found the same as read in this one."""
    monkeypatch.setattr(replay, "MIN_PARALLEL", 10**9)
    here = audit_bundle(bundle)
    monkeypatch.setattr(replay, "MIN_PARALLEL", 1)
    elsewhere = audit_bundle(bundle)
    assert elsewhere == here
    return elsewhere


def verdicts(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks if check.name.endswith("verdict")}


def test_the_messages_read_on_every_core_give_the_checks_read_in_one_process(
        exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    replayed = verdicts(read_both_ways(with_a_copy_and_a_window_past_the_calendar(exported), monkeypatch))
    assert len(replayed) == 8
    deu = exported.sha_of["DEU"][0]
    assert replayed.pop(f"message {deu[:16]}… verdict").detail.startswith("cannot be replayed: OverflowError: ")
    assert all(check.ok for check in replayed.values()), replayed
    assert sorted(check.detail for check in replayed.values()) == [
        "FRA: ballot S/2020/654=yes", "GBR: rejected (wrong-ballot-token)", "NER: ballot S/2020/654=abstain",
        "NER: ballot S/2020/654=yes", "NER: rejected (replayed)", "USA: ballot S/2020/654=no",
        "unknown sender: rejected (not-signed)"]


def test_what_a_hostile_bundle_raises_in_another_process_is_each_message_s_failed_check(
        exported: Exported, monkeypatch: pytest.MonkeyPatch) -> None:
    """A revocation time without a time zone cannot be compared with any receipt time: reading each message
    raises, in the process that reads it."""
    def revoke_without_zone(document: dict[str, Any]) -> None:
        china = next(d for d in document["electorate"]["current"]["delegation"] if d["code"] == "CHN")
        china["certificates"][0].update(revoked=True, revoked_at="2020-01-01T00:00:00")

    replayed = verdicts(read_both_ways(edit_manifest(exported, revoke_without_zone), monkeypatch))
    assert sorted(replayed) == sorted(f"message {sha[:16]}… verdict" for shas in exported.sha_of.values()
                                      for sha in shas)
    assert {check.detail for check in replayed.values()} == {
        "cannot be replayed: TypeError: can't compare offset-naive and offset-aware datetimes"}


def test_a_large_bundle_is_read_in_other_processes_as_it_is_here(exported: Exported) -> None:
    """Past MIN_PARALLEL messages the readings come back from other processes (without the signer's
    certificate, which cannot travel), and tell exactly what the readings made here do."""
    contents = unpack(exported.bundle)
    manifest = Manifest.model_validate_json(contents.manifest)
    drafts = [d.symbol for d in manifest.drafts]
    setting = replay.Setting(
        manifest.electorate.current, (exported.keys.ca.certificate.public_bytes(Encoding.DER),),
        replay.vote_view(manifest.vote, drafts, manifest.ballot_tokens, counted=False),
        replay.vote_view(manifest.vote, drafts, manifest.ballot_tokens))
    jobs = [replay.Job(contents.messages[m.sha256], m.received_at, False, None, m.code or "")
            for m in manifest.messages]
    copies = -(-replay.MIN_PARALLEL // len(jobs))
    here = replay.readings(setting, jobs)
    elsewhere = replay.readings(setting, jobs * copies)

    def told(reading: Reading | str) -> tuple[Any, ...]:
        assert not isinstance(reading, str)
        judged = settle(reading, {})
        return (judged.verdict, judged.reason, judged.detail, judged.vote_id, judged.code, judged.choices,
                judged.explanation, judged.ignored, judged.signed_sha256)

    assert [told(r) for r in elsewhere] == [told(r) for r in here] * copies
    assert all(r.verification.signer is None for r in elsewhere if not isinstance(r, str) and r.verification)
    assert any(r.verification.signer is not None for r in here if not isinstance(r, str) and r.verification)


def test_a_process_that_stops_while_reading_changes_no_check(exported: Exported,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = with_a_copy_and_a_window_past_the_calendar(exported)
    here = audit_bundle(bundle)
    monkeypatch.setattr(replay, "MIN_PARALLEL", 1)
    monkeypatch.setattr(replay, "_read_elsewhere", _stop_the_process)
    assert audit_bundle(bundle) == here
