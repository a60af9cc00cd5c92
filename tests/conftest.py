"""Shared fixtures: a real deployment in a temporary directory, with real keys and a real mail server."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tomli_w
from cryptography import x509

from tests.interop import THUNDERBIRD, corpus
from tests.smime_fixtures import openssl_encrypt, run_openssl, write_pem
from voting.config import Config, load_config
from voting.deployment import init_deployment, issue_delegation_key
from voting.electorate import load_electorate
from voting.mail import maildir
from voting.mail.outbox import smtp_settings
from voting.mail.server import MailServer
from voting.mail.smtp import SmtpConnection
from voting.pki import Identity, load_pkcs12
from voting.reply import Secretariat, build_reply
from voting.service import DraftFile, Service, embedded_server
from voting.smime.verify import Trust, TrustedCertificate, verify_message

if TYPE_CHECKING:  # the plugin itself is loaded by pytest_plugins, so that its asserts are rewritten
    from dovecot import Dovecot

pytest_plugins = ["dovecot"]


@pytest.fixture(scope="session")
def thunderbird() -> Path:
    """Thunderbird's S/MIME test corpus (see tests/interop.py)."""
    return corpus(THUNDERBIRD)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Deployment:
    config: Config
    identities: dict[str, Identity]

    @property
    def mail_root(self) -> Path:
        return self.config.resolve(self.config.settings.mailbox.root)

    def address(self, code: str) -> str:
        return f"{code.lower()}@delegations.example"

    def inbox_of(self, code: str) -> list[bytes]:
        return [maildir.read(m) for m in maildir.messages(self.mail_root / self.address(code))]

    def ballot_of(self, code: str) -> bytes:
        ballots = [raw for raw in self.inbox_of(code) if b"Subject: Ballot:" in raw]
        assert ballots, f"no ballot in the inbox of {code}"
        return ballots[-1]

    def reply(self, code: str, votes: list[str], *, explanation: str = "", identity: Identity | None = None,
              ballot: bytes | None = None) -> bytes:
        reply = build_reply(ballot or self.ballot_of(code), identity or self.identities[code], votes,
                            secretariat=Secretariat.of_deployment(self.config), explanation=explanation,
                            now=datetime.now(UTC))
        return reply.message.raw

    def encrypted_reply(self, code: str, recipient: x509.Certificate, directory: Path, *,
                        explanation: str = "") -> bytes:
        """`code`'s yes, signed by `openssl cms -sign` with its key, then encrypted by `openssl cms -encrypt`."""
        identity = self.identities[code]
        trust = Trust(registered=(TrustedCertificate(identity.certificate, code),))
        entity = verify_message(self.reply(code, ["yes"], explanation=explanation), trust,
                                datetime.now(UTC)).signed_content
        assert entity is not None
        key_path, cert_path = write_pem(directory, code, identity)  # type: ignore[arg-type]
        (directory / "entity.txt").write_bytes(entity)
        signed = run_openssl("cms", "-sign", "-in", directory / "entity.txt", "-signer", cert_path, "-inkey",
                             key_path, "-md", "sha256")
        head = f"From: {self.address(code)}\r\nTo: votes@secretariat.example\r\nSubject: Re: Ballot\r\n"
        return head.encode() + openssl_encrypt(directory, signed, recipient, "-aes-256-gcm")

    def submit(self, raw: bytes, sender: str) -> None:
        """Hand a message to the embedded SMTP server, as a delegate's mail client does."""
        with SmtpConnection(smtp_settings(self.config)) as connection:
            connection.send(sender, [self.config.settings.secretariat.address], raw)


def make_deployment(root: Path, codes: tuple[str, ...]) -> Deployment:
    config = init_deployment(root, name="Security Council Affairs Division", address="votes@secretariat.example",
                             template="unsc-2020", port=free_port(), prefix="unsc")
    identities = {}
    for code in codes:
        issued = issue_delegation_key(config, code, email=f"{code.lower()}@delegations.example", name=None,
                                      permanent=False, out=handed_over(config))
        handed_over_password(issued.pkcs12_path).write_text(issued.password)
        identities[code] = load_pkcs12(issued.pkcs12_path.read_bytes(), issued.password.encode())
    return Deployment(config, identities)


def handed_over(config: Config) -> Path:
    """Where the tests' delegations receive the PKCS#12 files the secretariat issued for them."""
    return config.root.parent / f"{config.root.name}-delegations"


def handed_over_password(p12: Path) -> Path:
    """The delegation's note of its PKCS#12 password, which `keys issue` printed and wrote nowhere."""
    return p12.with_name(p12.name + ".password")


@pytest.fixture(scope="session")
def unsc_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A deployment with all 15 members' keys issued once; tests copy it (key generation is the slow part)."""
    root = tmp_path_factory.mktemp("unsc-template")
    electorate_codes = ("CHN", "FRA", "RUS", "GBR", "USA", "BEL", "DOM", "EST", "DEU", "IDN", "NER", "VCT", "ZAF",
                        "TUN", "VNM")
    make_deployment(root, electorate_codes)
    return root


@pytest.fixture
def deployment(unsc_template: Path, tmp_path: Path) -> Deployment:
    return copy_deployment(unsc_template, tmp_path / "deployment")


def copy_deployment(template: Path, root: Path) -> Deployment:
    """A deployment of its own, copied from the session's template, with a fresh port for its mail server."""
    shutil.copytree(template, root)
    shutil.copytree(template.parent / f"{template.name}-delegations", root.parent / f"{root.name}-delegations")
    config_path = root / "config" / "voting.toml"
    old_port = load_config(config_path).settings.smtp.port
    config_path.write_text(config_path.read_text().replace(f"port = {old_port}", f"port = {free_port()}"))
    config = load_config(config_path)
    return Deployment(config, issued_identities(config))


def issued_identities(config: Config) -> dict[str, Identity]:
    """Each delegation's identity, from the PKCS#12 that `keys issue` handed over for its certificate."""
    identities = {}
    for d in load_electorate(config.electorate_file).delegation:
        p12 = handed_over_p12(config, d.code, d.certificates[-1].sha256)
        identities[d.code] = load_pkcs12(p12.read_bytes(), handed_over_password(p12).read_bytes().strip())
    return identities


def handed_over_p12(config: Config, code: str, pin: str) -> Path:
    return handed_over(config) / f"{code}-{pin[:12]}.p12"


@pytest.fixture
def running(deployment: Deployment) -> Iterator[Deployment]:
    """The deployment with its embedded SMTP server listening."""
    with embedded_server(deployment.config, required=True):
        yield deployment


def open_vote(service: Service, root: Path, symbols: tuple[str, ...] = ("S/2020/654",), *, rule: str = "unsc-substantive",
              seconds: float = 3600, **options: object) -> str:
    drafts = []
    for symbol in symbols:
        path = root / (symbol.replace("/", "-") + ".txt")
        path.write_text(f"Draft resolution {symbol}\n\nText of the draft.\n")
        drafts.append(DraftFile(symbol, path))
    return service.open_vote(drafts, rule=rule, closes_at=datetime.now(UTC) + timedelta(seconds=seconds),
                             title="Test vote", **options)  # type: ignore[arg-type]


def voting(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `voting` command as a script runs it: a new process, no terminal, its output and exit status."""
    return subprocess.run([sys.executable, "-m", "voting", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, timeout=120,
                          check=False, start_new_session=True)


def voting_on_a_terminal(*args: str, typed: list[tuple[str, str]], cwd: Path,
                         env: dict[str, str] | None = None, seconds: float = 120) -> tuple[int, str]:
    """The `voting` command run on a terminal of its own (a pseudo-terminal), as a person runs it: each answer of
    `typed` is typed once its prompt has appeared. Returns the exit status and everything the terminal showed."""
    pid, terminal = pty.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, "-m", "voting", *args], {**os.environ, **(env or {})})
        finally:
            os._exit(127)
    shown, answered, to_type = b"", 0, list(typed)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    chunk = os.read(terminal, 4096)
                except OSError:  # EIO: the command has ended and closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if to_type and to_type[0][0].encode() in shown[answered:]:
                answered = len(shown)
                os.write(terminal, to_type.pop(0)[1].encode() + b"\n")
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"voting {' '.join(args)} did not end within {seconds} s; the terminal shows:\n{shown.decode()}")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace").replace("\r\n", "\n")


def write_config(deployment: Deployment, **sections: dict[str, object]) -> None:
    """Change sections of the deployment's configuration file, as an operator would, and reload it."""
    path = deployment.config.path
    data = tomllib.loads(path.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(tomli_w.dumps(data))
    deployment.config = load_config(path)


@pytest.fixture
def relay(deployment: Deployment) -> Iterator[MailServer]:
    """The SMTP relay the service sends through; it delivers into the deployment's Maildirs, where tests read."""
    server = MailServer(deployment.mail_root, port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def imap(deployment: Deployment, dovecot: Dovecot, relay: MailServer) -> Deployment:
    """The deployment reading its mail from Dovecot over verified STARTTLS and sending through the relay."""
    dovecot.empty()
    secret = deployment.config.root / "secrets" / "imap-password"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(dovecot.password + "\n")
    write_config(
        deployment,
        mailbox={"kind": "imap", "host": "localhost", "port": dovecot.port, "tls": "starttls",
                 "ca_file": str(dovecot.ca_file), "username": dovecot.user, "password_file": "secrets/imap-password",
                 "folder": "INBOX", "processed_folder": "Processed"},
        smtp={"kind": "smtp", "host": "127.0.0.1", "port": relay.port, "tls": "none"},
        service={"poll_seconds": 60},
    )
    return deployment


def fault(deployment: Deployment, script: str) -> None:
    """Run SQL on the deployment's ledger, once a service has made it, from outside the service: a trigger that
    makes a write fail, stall or be noted, or its removal."""
    with sqlite3.connect(deployment.config.database) as connection:
        connection.executescript(script)


def stall(table: str, when: str) -> str:
    """A `fault` that holds the process inserting a row of `table` matching `when` for minutes, inside its
    transaction: a test kills it there. `unstall(table)` removes it."""
    numbers = ",".join(map(str, range(400)))
    return (f"CREATE TABLE stall (n INTEGER); INSERT INTO stall SELECT value FROM json_each('[{numbers}]');"
            f" CREATE TRIGGER stall_{table} BEFORE INSERT ON {table} WHEN {when}"
            " BEGIN SELECT count(*) FROM stall a, stall b, stall c, stall d; END;")


def unstall(table: str) -> str:
    return f"DROP TRIGGER stall_{table}; DROP TABLE stall;"


def wait_for(condition: Callable[[], object], what: str, *, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def waits_on_a_lock(pid: int) -> bool:
    """True while the process sleeps in SQLite's busy handler (a nanosleep), not on the network."""
    try:
        return "nanosleep" in Path(f"/proc/{pid}/wchan").read_text()
    except FileNotFoundError:
        return False
