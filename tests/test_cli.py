"""The command line as users call it: real processes, exit codes, one-line errors, JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, voting

from voting.cli import build_parser
from voting.config import load_config
from voting.mail import maildir
from voting.pki import (
    SECRETARIAT_SIGNING,
    SecretariatKeys,
    certificate_pem,
    fingerprint,
    has_secretariat_role,
    issue_signing_certificate,
    load_pkcs12,
    read_certificate,
)
from voting.smime.sign import sign_entity
from voting.service import Service

ROOT = Path(__file__).resolve().parents[1]
UNSC = ROOT / "config" / "electorates" / "unsc-2020.toml"
EU = ROOT / "voting" / "data" / "eu-2026.toml"


def subcommands() -> list[str]:
    parser = build_parser()
    names = []
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            names.extend(f"{name} {n}" for a in nested for n in a.choices) if nested else names.append(name)
    return names


@pytest.mark.parametrize("command", subcommands())
def test_every_command_has_help_and_is_in_the_readme(command: str) -> None:
    result = voting(*command.split(), "--help")
    assert result.returncode == 0 and "usage:" in result.stdout
    assert f"voting {command}" in (ROOT / "README.md").read_text()


def test_tally_decides_the_2020_outcomes(tmp_path: Path) -> None:
    votes = {
        "S/2020/654": {**{c: "yes" for c in ("BEL", "DEU", "DOM", "EST", "FRA", "GBR", "IDN", "NER", "TUN", "USA",
                                             "VCT", "VNM", "ZAF")}, "CHN": "no", "RUS": "no"},
        "RES/2533": {**{c: "yes" for c in ("BEL", "DEU", "EST", "FRA", "GBR", "IDN", "NER", "TUN", "USA", "VCT",
                                           "VNM", "ZAF")}, "CHN": "abstain", "RUS": "abstain", "DOM": "abstain"},
    }
    path = tmp_path / "votes.json"
    path.write_text(json.dumps(votes))
    result = voting("--json", "tally", "--rule", "unsc-substantive", "--electorate", str(UNSC), "--votes", str(path))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["S/2020/654"]["adopted"] is False and outcome["S/2020/654"]["vetoed_by"] == ["CHN", "RUS"]
    assert (outcome["RES/2533"]["adopted"], outcome["RES/2533"]["yes"], outcome["RES/2533"]["abstain"]) == (True, 12, 3)
    text = voting("tally", "--rule", "unsc-substantive", "--electorate", str(UNSC), "--votes", str(path))
    assert "NOT ADOPTED" in text.stdout


def test_tally_json_explains_each_condition_of_eu_qmv(tmp_path: Path) -> None:
    members = re.findall(r'^code = "([A-Z]+)"', EU.read_text(), re.MULTILINE)
    votes = {
        "blocking-minority": {c: "no" if c in ("DEU", "FRA", "ITA", "ESP") else "yes" for c in members},
        "three-large": {c: "no" if c in ("DEU", "FRA", "ITA") else "yes" for c in members},
    }
    path = tmp_path / "votes.json"
    path.write_text(json.dumps(votes))
    result = voting("--json", "tally", "--rule", "eu-qmv", "--electorate", str(EU), "--votes", str(path))
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["blocking-minority"]["adopted"] is False
    assert outcome["blocking-minority"]["conditions"] == [
        {"condition": "at least 55% of members in favour", "met": True,
         "found": "85.18% of members in favour (23 of 27)"},
        {"condition": "at least 15 members in favour", "met": True, "found": "23 members in favour"},
        {"condition": "at least 65% of the population in favour, unless fewer than 4 members are not in favour"
                      " (no blocking minority)",
         "met": False, "found": "42.24% of the population in favour (189,759,375 of 449,215,816)"},
    ]
    assert outcome["three-large"]["adopted"] is True
    text = voting("tally", "--rule", "eu-qmv", "--electorate", str(EU), "--votes", str(path)).stdout
    assert "blocking-minority: NOT ADOPTED — 23 in favour, 4 against, 0 abstentions; 42.24% of the population in" \
           " favour, at least 65% required." in text
    assert "fewer than the 4 of a blocking minority." in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tally", "--rule", "eu-qmv", "--electorate", str(UNSC), "--votes", "{votes}"),
         "counts population, but electorate"),
        (("tally", "--rule", "no-such-rule", "--electorate", str(UNSC), "--votes", "{votes}"), "unknown rule"),
        (("tally", "--rule", "unsc-substantive", "--electorate", "missing.toml", "--votes", "{votes}"), "missing.toml"),
        (("tally", "--rule", "unsc-substantive", "--electorate", str(UNSC), "--votes", "{bad}"), "not JSON"),
        (("status",), "no such configuration file"),
        (("open", "--draft", "X=x.txt", "--rule", "silence", "--closes", "tomorrow"), "ISO 8601"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "votes.json").write_text('{"S/1": {"FRA": "yes"}}')
    (tmp_path / "bad.json").write_text("{nope")
    filled = [a.format(votes=tmp_path / "votes.json", bad=tmp_path / "bad.json") for a in args]
    result = voting(*filled, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 2


def test_a_bad_configuration_names_the_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config" / "voting.toml"
    config.parent.mkdir()
    config.write_text('[mailbox]\nkind = "pigeon"\n')
    result = voting("--config", str(config), "status")
    assert result.returncode == 2
    assert re.search(r"voting\.toml: mailbox\.kind: ", result.stderr)
    result = voting("status", cwd=tmp_path, env={"VOTING_SMTP__PORT": "not-a-port"})
    assert result.returncode == 2 and "smtp.port" in result.stderr and "VOTING_SMTP__PORT" in result.stderr


def test_init_keys_and_verify_mail(tmp_path: Path) -> None:
    result = voting("init", str(tmp_path / "d"), "--electorate", "unsc-2020")
    assert result.returncode == 0, result.stderr
    config = tmp_path / "d" / "config" / "voting.toml"
    assert (tmp_path / "d" / "keys" / "secretariat.key").stat().st_mode & 0o777 == 0o600
    issued = voting("--json", "--config", str(config), "keys", "issue", "FRA", "--email", "fra@delegations.example")
    assert issued.returncode == 0, issued.stderr
    listing = json.loads(voting("--json", "--config", str(config), "keys", "list").stdout)
    france = next(row for row in listing if row["code"] == "FRA")
    assert france["certificates"][0]["sha256"] == json.loads(issued.stdout)["sha256"]
    again = voting("init", str(tmp_path / "d"))
    assert again.returncode == 2 and "refusing" in again.stderr
    revoked = voting("--config", str(config), "keys", "revoke", "FRA", "--yes")
    assert revoked.returncode == 0
    assert json.loads(voting("--json", "--config", str(config), "keys", "list").stdout)[1]["certificates"][0]["revoked"]


def test_verify_mail_on_the_thunderbird_corpus(thunderbird: Path) -> None:
    corpus = thunderbird
    good = voting("--json", "verify-mail", str(corpus / "alice.dsig.SHA256.multipart.eml"), "--ca", str(corpus / "TestCA.pem"))
    bad = voting("--json", "verify-mail", str(corpus / "alice.dsig.SHA256.multipart.bad.eml"), "--ca", str(corpus / "TestCA.pem"))
    assert json.loads(bad.stdout)["reason"] == "bad-signature" and bad.returncode == 1
    assert json.loads(good.stdout)["signature_intact"] is True


def test_a_delegate_replies_with_voting_reply_and_the_service_counts_it(tmp_path: Path) -> None:
    import signal
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert voting("init", str(tmp_path / "d"), "--port", str(port)).returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    issued = voting("--json", "--config", config, "keys", "issue", "FRA", "--email", "fra@delegations.example",
                    "--name", "France", "--permanent", "--legacy", "--new")
    assert issued.returncode == 0, issued.stderr
    p12 = json.loads(issued.stdout)
    draft = tmp_path / "draft.txt"
    draft.write_text("Draft resolution\n")
    serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", config, "serve"], stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as client:
                if client.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        opened = voting("--json", "--config", config, "open", "--draft", f"S/2020/1={draft}", "--rule",
                        "simple-majority", "--closes", "2999-01-01T00:00:00Z", "--title", "Test")
        assert opened.returncode == 0, opened.stderr
        vote_id = json.loads(opened.stdout)["vote"]
        inbox = tmp_path / "d" / "var" / "mail" / "fra@delegations.example" / "new"
        ballot = next(inbox.iterdir())
        sent = voting("--config", config, "reply", str(ballot), "--p12", p12["pkcs12"], "--vote", "pour", "--send",
                      env={"VOTING_P12_PASSWORD": p12["password"]})
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = json.loads(voting("--json", "--config", config, "status", vote_id).stdout)
            if status["voted"]:
                break
            time.sleep(0.3)
        assert status["voted"] == {"FRA": {"S/2020/1": "yes"}}
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, serve.stderr.read() if serve.stderr else ""
    closed = voting("--json", "--config", config, "close", vote_id, "--yes")
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["outcome"]["S/2020/1"]["adopted"] is True
    polled = voting("--json", "--config", config, "poll", "--once")
    assert polled.returncode == 0 and json.loads(polled.stdout)["fetched"] == 0


def test_keys_import_pins_an_external_certificate_and_refuses_the_secretariats_own(tmp_path: Path) -> None:
    assert voting("init", str(tmp_path / "d"), "--electorate", "unsc-2020").returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    key, certificate = tmp_path / "gbr.key", tmp_path / "gbr.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(certificate),
         "-days", "30", "-subj", "/CN=United Kingdom", "-addext", "subjectAltName=email:gbr@delegations.example",
         "-addext", "extendedKeyUsage=emailProtection", "-addext", "keyUsage=critical,digitalSignature",
         "-addext", "basicConstraints=critical,CA:FALSE"],
        capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    request = tmp_path / "gbr.csr"
    made = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=United Kingdom", "-out", str(request)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    imported = voting("--json", "--config", config, "keys", "import", "GBR", str(certificate), "--csr", str(request))
    assert imported.returncode == 0, imported.stderr
    pin = json.loads(imported.stdout)["sha256"]
    listing = json.loads(voting("--json", "--config", config, "keys", "list").stdout)
    [gbr] = [row for row in listing if row["code"] == "GBR"]
    assert gbr["certificates"] == [{"sha256": pin, "issued_by_secretariat": False, "secretariat_held_key": False,
                                    "key_copy_in_keys": None, "revoked": False,
                                    "not_after": gbr["certificates"][0]["not_after"]}]
    own = voting("--config", config, "keys", "import", "FRA", str(tmp_path / "d" / "keys" / "secretariat.pem"))
    assert own.returncode == 2 and "secretariat's own address" in own.stderr
    ca = voting("--config", config, "keys", "import", "FRA", str(tmp_path / "d" / "keys" / "secretariat-ca.pem"))
    assert ca.returncode == 2 and ("names no email address" in ca.stderr or "CA certificate" in ca.stderr)


def test_a_certificate_with_the_secretariat_s_signing_role_is_never_a_delegation_s(tmp_path: Path) -> None:
    """Only the secretariat's signer carries the role; a delegation may not import a certificate claiming it."""
    assert voting("init", str(tmp_path / "d"), "--electorate", "unsc-2020").returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    keys = tmp_path / "d" / "keys"
    assert has_secretariat_role(read_certificate(keys / "secretariat.pem"))
    issued = json.loads(voting("--json", "--config", config, "keys", "issue", "FRA", "--email",
                               "fra@delegations.example").stdout)
    france = load_pkcs12(Path(issued["pkcs12"]).read_bytes(), issued["password"].encode())
    assert not has_secretariat_role(france.certificate)
    key, certificate, request = tmp_path / "gbr.key", tmp_path / "gbr.pem", tmp_path / "gbr.csr"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
         str(key), "-out", str(certificate), "-days", "30", "-subj", "/CN=United Kingdom",
         "-addext", "subjectAltName=email:gbr@delegations.example",
         "-addext", f"extendedKeyUsage=emailProtection,{SECRETARIAT_SIGNING.dotted_string}",
         "-addext", "basicConstraints=critical,CA:FALSE"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    made = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=United Kingdom", "-out",
                           str(request)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    imported = voting("--config", config, "keys", "import", "GBR", str(certificate), "--csr", str(request))
    assert imported.returncode == 2 and "secretariat's signing role" in imported.stderr, imported.stderr


def test_a_signer_made_before_the_role_is_refused_until_rotated(tmp_path: Path) -> None:
    assert voting("init", str(tmp_path / "d")).returncode == 0
    config = load_config(tmp_path / "d" / "config" / "voting.toml")
    keys = SecretariatKeys.load(config.keys_dir, config.key_password())
    old = issue_signing_certificate(keys.ca, common_name="Secretariat", emails=["votes@secretariat.example"],
                                    encryption=True, key=keys.signer.key)
    (config.keys_dir / "secretariat.pem").write_text(certificate_pem(old.certificate))
    issue = ("--config", str(config.path), "keys", "issue", "FRA", "--email", "fra@delegations.example", "--new")
    refused = voting(*issue)
    assert refused.returncode == 2 and "voting keys rotate-signer" in refused.stderr, refused.stderr
    rotated = voting("--json", "--config", str(config.path), "keys", "rotate-signer")
    assert rotated.returncode == 0, rotated.stderr
    signer = SecretariatKeys.load(config.keys_dir, config.key_password()).signer.certificate
    assert has_secretariat_role(signer) and json.loads(rotated.stdout)["sha256"] == fingerprint(signer)
    assert signer.public_key() == old.certificate.public_key() and signer.subject == old.certificate.subject
    assert voting(*issue).returncode == 0


def test_extend_on_the_command_line(tmp_path: Path) -> None:
    assert voting("init", str(tmp_path / "d"), "--electorate", "unsc-2020", "--vote-prefix", "ga").returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    draft = tmp_path / "draft.txt"
    draft.write_text("Decision under the silence procedure\n")
    opened = voting("--json", "--config", config, "open", "--draft", f"A/74/L.1={draft}", "--rule", "silence",
                    "--closes", "2999-01-01T00:00:00Z", "--allow-missing")
    vote_id = json.loads(opened.stdout)["vote"]
    assert vote_id == "ga-2999-0001"
    moved = voting("--config", config, "extend", vote_id, "--closes", "2999-01-04T00:00:00Z")
    assert moved.returncode == 0 and "2999-01-04T00:00:00Z" in moved.stdout
    earlier = voting("--config", config, "extend", vote_id, "--closes", "2001-01-01T00:00:00Z")
    assert earlier.returncode == 2 and "not in the future" in earlier.stderr


def _signed_by(p12: str, password: str, sender: str) -> bytes:
    identity = load_pkcs12(Path(p12).read_bytes(), password.encode())
    entity = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nVOTE: YES\r\n"
    return f"From: {sender}\r\nSubject: test\r\n".encode() + sign_entity(entity, identity.key, identity.certificate)


def test_reissuing_a_certificate_retires_the_earlier_ones(tmp_path: Path) -> None:
    assert voting("init", str(tmp_path / "d")).returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    issue = ("--json", "--config", config, "keys", "issue", "FRA", "--email", "fra@delegations.example")
    first = json.loads(voting(*issue, "--new").stdout)
    kept = json.loads(voting(*issue, "--keep-old").stdout)
    assert kept["retired"] == []
    second = voting(*issue[1:])
    assert second.returncode == 0, second.stderr
    assert "retired from " in second.stdout and first["sha256"] in second.stdout and kept["sha256"] in second.stdout
    listed = json.loads(voting("--json", "--config", config, "keys", "list").stdout)
    france = next(row for row in listed if row["code"] == "FRA")
    assert [c["revoked"] for c in france["certificates"]] == [True, True, False]
    old = tmp_path / "old.eml"
    old.write_bytes(_signed_by(first["pkcs12"], first["password"], "fra@delegations.example"))
    checked = voting("--json", "--config", config, "verify-mail", str(old))
    assert json.loads(checked.stdout)["reason"] == "revoked-certificate", checked.stdout


def test_the_ledger_is_private_whatever_the_umask(tmp_path: Path) -> None:
    script = (f"umask 022 && {sys.executable} -m voting init {tmp_path / 'd'} >/dev/null && "
              f"{sys.executable} -m voting --config {tmp_path / 'd' / 'config' / 'voting.toml'} poll --once")
    assert subprocess.run(["sh", "-c", script], capture_output=True).returncode == 0
    ledger = [p for p in (tmp_path / "d" / "var").iterdir() if p.name.startswith("voting.sqlite3")]
    assert ledger and {p.stat().st_mode & 0o777 for p in ledger} == {0o600}, ledger
    assert (tmp_path / "d" / "var").stat().st_mode & 0o077 == 0


HEAVY = ("cryptography", "asn1crypto", "imapclient", "aiosmtpd", "pydantic_settings", "voting.smime", "voting.pki")
"""What only reading, signing or fetching mail needs: a command that only reads the ledger starts without it."""


def test_status_starts_without_the_cryptography_and_the_mail_clients(running: Deployment, tmp_path: Path) -> None:
    """`voting status` of a vote with ballots, each checked against its chain, as a process of its own."""
    deployment = running
    service = Service(deployment.config, log=lambda line: None)
    vote_id = open_vote(service, tmp_path)
    service.send()
    for code in ("FRA", "CHN"):
        maildir.deliver(deployment.config.inbox, deployment.reply(code, ["yes"], explanation="Our reasons."))
    assert [j.counted for j in service.poll_once().judgements] == [True, True]
    service.shut_down()
    script = ("import sys\nfrom voting.cli import main\nmain(sys.argv[1:])\n"
              f"print(sorted({{m.split('.')[0] + '.' + m.split('.')[1] if m.startswith('voting.') else m.split('.')[0]"
              f" for m in sys.modules}} & set({HEAVY!r})))")
    shown = subprocess.run([sys.executable, "-c", script, "--config", str(deployment.config.path), "status", vote_id],
                           capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "voted (2)" in shown.stdout, shown
    assert shown.stdout.strip().splitlines()[-1] == "[]", shown.stdout


def test_no_pydantic_plugin_sees_the_configuration(deployment: Deployment, tmp_path: Path) -> None:
    """A pydantic plugin installed beside the service, as any package can declare one, is handed every value that
    pydantic validates: the configuration's passwords among them. The command loads none."""
    site = tmp_path / "site"
    (site / "spy-1.0.dist-info").mkdir(parents=True)
    (site / "spy-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: spy\nVersion: 1.0\n")
    (site / "spy-1.0.dist-info" / "entry_points.txt").write_text("[pydantic]\nspy = spy:plugin\n")
    seen = tmp_path / "seen"
    (site / "spy.py").write_text(f"from pathlib import Path\nPath({str(seen)!r}).write_text('loaded')\nplugin = None\n")
    shown = voting("--config", str(deployment.config.path), "votes", env={"PYTHONPATH": str(site)})
    assert shown.returncode == 0, shown
    assert not seen.exists()
