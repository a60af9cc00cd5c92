"""`voting demo`, as a newcomer runs it: the July 2020 Syria round, start to finish."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One run of `voting demo` for the module: its folder and what it printed."""
    folder = tmp_path_factory.mktemp("demo") / "demo"
    result = subprocess.run([sys.executable, "-m", "voting", "demo", "--dir", str(folder)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    return folder, result.stdout


def test_the_demo_reproduces_the_july_2020_round(demo: tuple[Path, str]) -> None:
    folder, out = demo
    assert ("S/2020/654: NOT ADOPTED — 13 in favour, 2 against, 0 abstentions; negative vote of permanent members"
            " CHN, RUS.") in out
    assert "S/2020/658: NOT ADOPTED — 4 in favour, 7 against, 4 abstentions; 9 affirmative votes required." in out
    assert re.search(r"^CHN China +NO \(VETO\) +YES ", out, re.MULTILINE)
    assert "unknown-signer" in out and "late" in out
    status = subprocess.run(
        [sys.executable, "-m", "voting", "--json", "--config", str(folder / "config" / "voting.toml"),
         "status"], capture_output=True, text=True, timeout=60)
    [vote] = json.loads(status.stdout)
    assert vote["outcome"]["S/2020/654"]["vetoed_by"] == ["CHN", "RUS"]
    assert vote["outcome"]["S/2020/658"]["vetoed_by"] == []
    assert vote["voted"]["NER"]["S/2020/654"] == "yes"
    assert {r["reason"] for r in vote["rejected"]} == {"unknown-signer", "late"}
    assert vote["outbox"]["queued"] == 0 and vote["outbox"]["failed"] == 0


def test_the_results_email_quotes_the_bundle_that_is_published(demo: tuple[Path, str]) -> None:
    import hashlib

    from voting.ballot import text_of_entity
    from voting.mail import maildir

    folder, _ = demo
    [bundle] = (folder / "var" / "records").glob("*.zip")
    published = hashlib.sha256(bundle.read_bytes()).hexdigest()
    results = [maildir.read(m) for m in maildir.messages(folder / "var" / "mail" / "fra@delegations.example")
               if b"Subject: Results" in maildir.read(m)]
    assert len(results) == 1
    assert f"Audit bundle SHA-256: {published}" in text_of_entity(results[0])
    record = next((folder / "var" / "records").glob("*.txt")).read_text()
    assert f"Audit bundle SHA-256: {published}" in record


def test_the_demo_bundle_audits_on_the_command_line_and_a_changed_byte_fails(demo: tuple[Path, str],
                                                                            tmp_path: Path) -> None:
    import os
    import pty
    import zipfile

    folder, _ = demo
    [bundle] = (folder / "var" / "records").glob("*.zip")
    ca = folder / "keys" / "secretariat.pem"
    audited = subprocess.run([sys.executable, "-m", "voting", "--json", "audit", str(bundle), "--secretariat-cert",
                              str(ca)], capture_output=True, text=True, timeout=60)
    report = json.loads(audited.stdout)
    assert audited.returncode == 0 and report["valid"] and report["failed"] == 0

    # On a terminal, the audit shows its progress through the messages.
    controller, terminal = pty.openpty()
    shown = subprocess.run([sys.executable, "-m", "voting", "audit", str(bundle)], stdin=terminal,
                           stdout=subprocess.PIPE, stderr=terminal, timeout=60)
    os.close(terminal)
    progress = os.read(controller, 65536).decode()
    os.close(controller)
    assert shown.returncode == 0 and "verifying messages:" in progress
    assert shown.stdout.decode().rstrip().endswith("checks passed")

    tampered, changed = tmp_path / "tampered.zip", []
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if not changed and item.filename.startswith("messages/") and b"S/2020/654: YES" in data:
                data = data.replace(b"S/2020/654: YES", b"S/2020/654: NO ", 1)
                changed.append(item.filename)
            target.writestr(item, data)
    assert changed
    failed = subprocess.run([sys.executable, "-m", "voting", "audit", str(tampered)], capture_output=True, text=True,
                            timeout=60)
    assert failed.returncode == 1 and "FAIL" in failed.stdout and "checks failed" in failed.stdout


@pytest.mark.parametrize(("procedure", "expected"), [
    ("silence", [
        "S/PRST/DEMO/1: ADOPTED — under the silence procedure, no member having broken silence before the deadline.",
        "S/PRST/DEMO/2: NOT ADOPTED — silence broken by CHN (objection received ",
        "The Russian Federation breaks silence",
    ]),
    ("eu-qmv", [
        "ST-DEMO-1: ADOPTED — 24 in favour, 3 against, 0 abstentions;",
        "53.06% of the population in favour, at least 65% required, but only 3 members not in favour, fewer than"
        " the 4 of a blocking minority.",
        "ST-DEMO-2: NOT ADOPTED — 23 in favour, 4 against, 0 abstentions; 42.24% of the population in favour, at"
        " least 65% required.",
    ]),
])
def test_the_demo_of_each_procedure_runs_on_the_embedded_server_and_audits(
    procedure: str, expected: list[str], tmp_path: Path
) -> None:
    result = subprocess.run([sys.executable, "-m", "voting", "demo", "--procedure", procedure, "--dir",
                             str(tmp_path / "demo")], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr + result.stdout
    for line in expected:
        assert line in result.stdout
    assert re.search(r"^Audit of the bundle: \d+ checks passed$", result.stdout, re.MULTILINE)
