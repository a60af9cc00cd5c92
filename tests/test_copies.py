"""Copies of a counted ballot, however their signature is re-encoded, never count again: service and audit alike."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import algos, cms
from conftest import Deployment, open_vote, voting

from voting.bundle import export_bundle
from voting.deployment import issue_delegation_key
from voting.ledger import SCHEMA, Ledger
from voting.pki import Identity, load_pkcs12
from voting.service import Service

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SIGNATURE_PART = re.compile(rb"(filename=smime\.p7s\r\n\r\n)([A-Za-z0-9+/=\r\n]+?)(\r\n--)")


def with_signed_data(raw: bytes, change: Callable[[cms.SignedData], None]) -> bytes:
    """The message with its CMS SignedData changed and encoded again; everything the signer signed kept."""
    match = SIGNATURE_PART.search(raw)
    assert match is not None
    info = cms.ContentInfo.load(base64.b64decode(match.group(2)))
    change(info["content"])
    encoded = base64.encodebytes(info.dump(force=True)).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    return raw[: match.start(2)] + encoded + raw[match.end(2) :]


def negated_s(signed_data: cms.SignedData) -> None:
    """ECDSA (r, s) as (r, n - s): another signature value, as valid as the first."""
    signer = signed_data["signer_infos"][0]
    value = algos.DSASignature.load(signer["signature"].native)
    r, s = value["r"].native, value["s"].native
    signer["signature"] = algos.DSASignature({"r": r, "s": P256_ORDER - s}).dump()


def without_certificates(signed_data: cms.SignedData) -> None:
    """The certificates left out: the signer is then found among the registered ones."""
    del signed_data["certificates"]


def france_voted_yes(running: Deployment, tmp_path: Path, key_type: str) -> tuple[Identity, Service, str, bytes]:
    """France, with a new key of the type given, has voted yes in a new vote: its identity, the service, the
    vote and the ballot's raw bytes."""
    issued = issue_delegation_key(running.config, "FRA", email="fra@delegations.example", name=None,
                                  permanent=True, key_type=key_type)
    fra = load_pkcs12(issued.pkcs12_path.read_bytes(), issued.password.encode())
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    yes = running.reply("FRA", ["yes"], identity=fra)
    running.submit(yes, "fra@delegations.example")
    service.poll_once()
    return fra, service, vote_id, yes


@pytest.mark.parametrize(("key_type", "reencode"), [("ec", negated_s), ("rsa", without_certificates)])
def test_a_reencoded_copy_of_a_superseded_ballot_is_replayed_and_the_audit_agrees(
    running: Deployment, tmp_path: Path, key_type: str, reencode: Callable[[cms.SignedData], None]
) -> None:
    fra, service, vote_id, yes = france_voted_yes(running, tmp_path, key_type)
    time.sleep(1.1)  # the change of vote is signed at another second
    running.submit(running.reply("FRA", ["no"], identity=fra), "fra@delegations.example")
    service.poll_once()
    copy = with_signed_data(yes, reencode)
    assert copy != yes
    running.submit(copy, "fra@delegations.example")
    service.poll_once()

    recorded = [(d.code, d.verdict, d.reason) for d in service.ledger.decisions(vote_id)]
    assert recorded == [("FRA", "ballot", None), ("FRA", "ballot", None), ("FRA", "rejected", "replayed")]
    vote = service.ledger.vote(vote_id)
    assert service.counted(vote, vote.closes_at)["S/2020/654"] == {"FRA": "no"}

    service.close_now(vote_id)
    bundle = tmp_path / "bundle.zip"
    export_bundle(service, vote_id, bundle)
    audited = voting("--json", "audit", str(bundle))
    assert audited.returncode == 0, audited.stdout + audited.stderr
    failed = [check for check in json.loads(audited.stdout)["checks"] if not check["ok"]]
    assert failed == []


def test_ledgers_of_earlier_schemas_recognise_copies_by_their_signed_attributes(running: Deployment,
                                                                                tmp_path: Path) -> None:
    """A ledger written by schema 2 (signature hashes) or 1 (none) recognises a re-encoded copy once migrated."""
    fra, service, vote_id, yes = france_voted_yes(running, tmp_path, "ec")
    path = service.ledger.path
    service.ledger.close()
    old = sqlite3.connect(path)
    old.execute("ALTER TABLE decisions RENAME COLUMN signed_sha256 TO signature_sha256")
    old.execute("UPDATE decisions SET signature_sha256 = 'an earlier hash of the signature value'")
    old.execute("PRAGMA user_version=2")
    old.commit()
    old.close()
    assert "signed_sha256 TEXT" in SCHEMA

    with Ledger.open(path) as ledger:
        columns = {row["name"] for row in ledger.db.execute("PRAGMA table_info(decisions)")}
        assert "signed_sha256" in columns and "signature_sha256" not in columns
        assert all(d.signed_sha256 for d in ledger.decisions(vote_id))
    service = Service(running.config)
    running.submit(with_signed_data(yes, negated_s), "fra@delegations.example")
    service.poll_once()
    assert [d.reason for d in service.ledger.decisions(vote_id)] == [None, "replayed"]
