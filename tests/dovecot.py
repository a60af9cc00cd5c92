"""A private Dovecot IMAP server for tests: unprivileged, on 127.0.0.1, with TLS from a CA made here.

The fixture fails, never skips, when Dovecot is not installed: the IMAP path
is a production path and must be tested wherever the suite runs.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from imapclient import IMAPClient

from voting.pki import certificate_pem, create_ca

USER = "votes"
PASSWORD = "imap-secret-Zq81"
START_SECONDS = 10.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
default_login_user = dovenull
default_internal_user = dovecot
mail_location = maildir:{root}/mail/%u
mail_max_lock_timeout = 5min
verbose_proctitle = yes
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        pytest.fail(f"{name} is not installed: install the Debian package dovecot-imapd (the IMAP tests need it)")
    return path


def _server_certificate(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[bytes, bytes]:
    """A TLS server certificate for the name localhost only (not for 127.0.0.1), issued by the test CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@dataclass
class Dovecot:
    """One Dovecot instance; `start`, `stop` and `restart` drive the real daemon."""

    root: Path
    capability: str = ""
    port: int = field(default_factory=_free_port)
    tls_port: int = field(default_factory=_free_port)
    user: str = USER
    password: str = PASSWORD

    @property
    def config_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "ca.pem"

    def maildir(self, folder: str = "INBOX") -> Path:
        base = self.root / "mail" / self.user
        return base if folder == "INBOX" else base / f".{folder}"

    def prepare(self) -> None:
        dovecot = pwd.getpwnam("dovecot")
        for sub in ("run", "state", "mail", "home", "tls"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "home"):
            os.chown(self.root / sub, dovecot.pw_uid, dovecot.pw_gid)
        authority = create_ca("Test IMAP CA", "Voting tests")
        assert isinstance(authority.key, ec.EllipticCurvePrivateKey)
        certificate, key = _server_certificate(authority.key, authority.certificate)
        self.ca_file.write_text(certificate_pem(authority.certificate))
        (self.root / "tls" / "server.pem").write_bytes(certificate)
        (self.root / "tls" / "server.key").write_bytes(key)
        (self.root / "tls" / "server.key").chmod(0o600)
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        self.config_file.write_text(
            CONFIG.format(root=self.root, port=self.port, tls_port=self.tls_port,
                          capability=f"imap_capability = {self.capability}" if self.capability else "")
        )

    def start(self) -> None:
        # The daemon keeps the standard streams it inherits: give it a file, not a pipe to wait on.
        with open(self.root / "start.log", "w+") as output:
            result = subprocess.run([_binary("dovecot"), "-c", str(self.config_file)], stdout=output, stderr=output,
                                    check=False)
            output.seek(0)
            if result.returncode != 0:
                pytest.fail(f"dovecot did not start: {output.read().strip()} {self.log()}")
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                socket.create_connection(("127.0.0.1", self.tls_port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dovecot is not listening on port {self.port} after {START_SECONDS} s: {self.log()}")
                time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run([_binary("doveadm"), "-c", str(self.config_file), "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        deadline = time.monotonic() + START_SECONDS
        while (self.root / "run" / "master.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def sessions(self) -> dict[int, str]:
        """Each IMAP process of this server, by its process id, with its title: `verbose_proctitle` shows in it the
        command the session is carrying out, such as IDLE."""
        master = (self.root / "run" / "master.pid").read_text().split()[0]
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
                title = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            name = text.split("(", 1)[1].rsplit(")", 1)[0]
            if text.rsplit(")", 1)[1].split()[1] == master and name == "imap":
                found[int(stat.parent.name)] = title
        return found

    def idling(self) -> int:
        """How many sessions wait in IDLE: a client there learns of new mail at once."""
        return sum(1 for title in self.sessions().values() if title.endswith(" IDLE]"))

    def kill_sessions(self) -> int:
        """SIGKILL every IMAP process of this server, as a crash would: their clients see the connection drop."""
        killed = 0
        for pid in self.sessions():
            os.kill(pid, signal.SIGKILL)
            killed += 1
        return killed

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def doveadm(self, *arguments: str) -> str:
        result = subprocess.run([_binary("doveadm"), "-c", str(self.config_file), *arguments],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"doveadm {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout

    def client(self) -> IMAPClient:
        """A plain loopback session of the mailbox owner, for the test to look at the mailbox."""
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX", when: datetime | None = None) -> None:
        with self.client() as client:
            client.append(folder, raw, msg_time=when)

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.client() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))

    def empty(self) -> None:
        """Remove every message of every folder, so that tests sharing the server start clean."""
        with self.client() as client:
            for _, _, name in client.list_folders():
                client.select_folder(name)
                uids = client.search("ALL")
                if uids:
                    client.delete_messages(uids)
                    client.expunge()


def _run(capability: str = "") -> Iterator[Dovecot]:
    _binary("dovecot")
    _binary("doveadm")
    root = Path(tempfile.mkdtemp(prefix="voting-dovecot-"))
    root.chmod(0o755)  # the dovecot user must reach its mail and certificates
    server = Dovecot(root, capability=capability)
    server.prepare()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    """A Dovecot with its default capabilities (MOVE, IDLE, UIDPLUS), shared by a test module."""
    yield from _run()


@pytest.fixture(scope="module")
def dovecot_without_move() -> Iterator[Dovecot]:
    """A Dovecot announcing neither MOVE nor IDLE: the client must COPY + EXPUNGE and poll."""
    yield from _run("IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE SORT UIDPLUS NAMESPACE")
