"""The SMTP client against real aiosmtpd servers on 127.0.0.1: plain, STARTTLS and implicit TLS."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from conftest import Deployment, handed_over_p12, open_vote, voting_on_a_terminal, write_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from voting.errors import MailError, UsageError
from voting.mail import maildir
from voting.mail.server import MailServer, SocketController
from voting.mail.smtp import SendFailure, SmtpConnection, SmtpSettings, relay_settings
from voting.pki import fingerprint
from voting.service import Service

RAW = b"From: votes@secretariat.example\r\nSubject: receipt\r\n\r\nrecorded \xe9\r\n.dot line\r\n"
USER, PASSWORD = "votes", "s3cret-Passw0rd"


@dataclass
class Recorder:
    """A tiny server-side handler: refuses some recipients, fails some messages, records the rest."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "451 4.2.0 Mailbox busy"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        if b"X-Fail: temporary" in content:
            return "451 4.3.0 Try again later"
        if b"X-Fail: permanent" in content:
            return "554 5.6.0 Content refused"
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), content))
        return "250 OK"


def only_password(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA and a server certificate for 127.0.0.1 (not for the name localhost), made with cryptography."""
    directory = tmp_path_factory.mktemp("pki")
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Mail CA"))
        .issuer_name(_name("Test Mail CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server_cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return Pki(ca_file=ca_file, server_context=context)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def plain(recorder: Recorder) -> Iterator[int]:
    controller = SocketController(recorder, port=0)
    controller.start()
    yield controller.port
    controller.stop()


@pytest.fixture
def starttls(recorder: Recorder, pki: Pki) -> Iterator[int]:
    controller = SocketController(
        recorder, port=0, tls_context=pki.server_context, require_starttls=True, authenticator=only_password
    )
    controller.start()
    yield controller.port
    controller.stop()


@pytest.fixture
def implicit(recorder: Recorder, pki: Pki) -> Iterator[int]:
    controller = SocketController(recorder, port=0, ssl_context=pki.server_context)
    controller.start()
    yield controller.port
    controller.stop()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


def failure(settings: SmtpSettings, recipients: list[str], raw: bytes = RAW) -> SendFailure:
    with pytest.raises(SendFailure) as caught, SmtpConnection(settings) as connection:
        connection.send("votes@secretariat.example", recipients, raw)
    return caught.value


def test_a_batch_over_one_connection_lands_byte_exact_in_the_embedded_server(tmp_path: Path) -> None:
    with MailServer(tmp_path, port=0) as server:
        with SmtpConnection(SmtpSettings("127.0.0.1", server.port)) as connection:
            connection.send("votes@secretariat.example", ["fra@delegations.example"], RAW)
            connection.send("votes@secretariat.example", ["fra@delegations.example", "gbr@delegations.example"], RAW)
        box = server.mailbox("fra@delegations.example")
        assert [maildir.read(m) for m in maildir.messages(box)] == [RAW, RAW]
        assert [maildir.read(m) for m in maildir.messages(server.mailbox("gbr@delegations.example"))] == [RAW]


def test_bare_line_feeds_are_sent_as_crlf(tmp_path: Path) -> None:
    with MailServer(tmp_path, port=0) as server, SmtpConnection(SmtpSettings("localhost", server.port)) as connection:
        connection.send("votes@secretariat.example", ["fra@delegations.example"], b"Subject: lf\n\n.dot\nend\r\n")
        (message,) = maildir.messages(server.mailbox("fra@delegations.example"))
        assert maildir.read(message) == b"Subject: lf\r\n\r\n.dot\r\nend\r\n"


def test_every_recipient_refused_with_550_is_permanent(plain: int) -> None:
    refused = failure(SmtpSettings("127.0.0.1", plain), ["refused@example.org"])
    assert refused.permanent and refused.code == 550
    assert "refused@example.org" in str(refused)


def test_some_recipients_refused_is_permanent_and_names_them(plain: int, recorder: Recorder) -> None:
    refused = failure(SmtpSettings("127.0.0.1", plain), ["ok@example.org", "refused@example.org", "busy@example.org"])
    assert refused.permanent and refused.code == 550
    assert "refused@example.org: 550" in str(refused) and "busy@example.org: 451" in str(refused)
    assert "ok@example.org" not in str(refused)
    assert recorder.received == [("votes@secretariat.example", ["ok@example.org"], RAW)]


def test_a_451_recipient_is_transient(plain: int) -> None:
    busy = failure(SmtpSettings("127.0.0.1", plain), ["busy@example.org"])
    assert not busy.permanent and busy.code == 451


def test_451_and_554_after_data(plain: int, recorder: Recorder) -> None:
    settings = SmtpSettings("127.0.0.1", plain)
    later = failure(settings, ["ok@example.org"], b"X-Fail: temporary\r\n\r\nx\r\n")
    assert not later.permanent and later.code == 451
    never = failure(settings, ["ok@example.org"], b"X-Fail: permanent\r\n\r\nx\r\n")
    assert never.permanent and never.code == 554
    assert recorder.received == []


def test_the_connection_survives_a_refused_message(plain: int, recorder: Recorder) -> None:
    with SmtpConnection(SmtpSettings("127.0.0.1", plain)) as connection:
        with pytest.raises(SendFailure):
            connection.send("votes@secretariat.example", ["refused@example.org"], RAW)
        connection.send("votes@secretariat.example", ["ok@example.org"], RAW)
    assert [content for _, _, content in recorder.received] == [RAW]


def test_connection_refused_is_transient() -> None:
    port = closed_port()
    with pytest.raises(SendFailure) as caught:
        SmtpConnection(SmtpSettings("127.0.0.1", port, timeout=5)).__enter__()
    assert not caught.value.permanent and caught.value.code is None
    assert f"port {port}" in str(caught.value)


def test_after_the_server_went_away_the_next_send_reconnects(tmp_path: Path) -> None:
    server = MailServer(tmp_path, port=0)
    server.start()
    with SmtpConnection(SmtpSettings("127.0.0.1", server.port)) as connection:
        server.stop()
        with pytest.raises(SendFailure) as lost:
            connection.send("votes@secretariat.example", ["fra@delegations.example"], RAW)
        assert not lost.value.permanent
        server.start()
        try:
            connection.send("votes@secretariat.example", ["fra@delegations.example"], RAW)
        finally:
            server.stop()
    assert [maildir.read(m) for m in maildir.messages(server.mailbox("fra@delegations.example"))] == [RAW]


@pytest.mark.parametrize("host", ["smtp.example.org", "192.0.2.10", "2001:db8::1", "localhost.example.org"])
def test_plain_smtp_to_a_non_loopback_host_is_refused(host: str) -> None:
    with pytest.raises(MailError, match="loopback"):
        SmtpConnection(SmtpSettings(host, 25))


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"])
def test_plain_smtp_to_a_loopback_host_is_allowed(host: str) -> None:
    SmtpConnection(SmtpSettings(host, 25))


def test_an_unknown_tls_mode_is_refused() -> None:
    with pytest.raises(MailError, match="'starttls'"):
        SmtpConnection(SmtpSettings("127.0.0.1", 25, tls="ssl"))  # type: ignore[arg-type]


def test_starttls_verified_with_the_ca_file_and_login(starttls: int, pki: Pki, recorder: Recorder) -> None:
    settings = SmtpSettings(
        "127.0.0.1", starttls, tls="starttls", ca_file=str(pki.ca_file), username=USER, password=PASSWORD
    )
    with SmtpConnection(settings) as connection:
        connection.send("votes@secretariat.example", ["ok@example.org"], RAW)
    assert recorder.received == [("votes@secretariat.example", ["ok@example.org"], RAW)]


def test_starttls_without_the_ca_file_is_refused(starttls: int, recorder: Recorder) -> None:
    untrusted = failure(SmtpSettings("127.0.0.1", starttls, tls="starttls"), ["ok@example.org"])
    assert not untrusted.permanent and "not trusted" in str(untrusted)
    assert recorder.received == []


def test_a_certificate_for_another_name_is_refused(starttls: int, pki: Pki) -> None:
    settings = SmtpSettings("localhost", starttls, tls="starttls", ca_file=str(pki.ca_file))
    with pytest.raises(SendFailure, match="not trusted"):
        SmtpConnection(settings).__enter__()


def test_a_wrong_password_is_permanent_and_never_shown(starttls: int, pki: Pki) -> None:
    wrong = "not-the-Passw0rd"
    settings = SmtpSettings("127.0.0.1", starttls, tls="starttls", ca_file=str(pki.ca_file), username=USER, password=wrong)
    with pytest.raises(SendFailure) as caught:
        SmtpConnection(settings).__enter__()
    assert caught.value.permanent and caught.value.code == 535
    assert wrong not in str(caught.value) and wrong not in repr(settings)


def test_starttls_to_a_server_without_it_is_refused_not_downgraded(plain: int, pki: Pki) -> None:
    settings = SmtpSettings("127.0.0.1", plain, tls="starttls", ca_file=str(pki.ca_file))
    with pytest.raises(SendFailure, match="does not offer") as caught:
        SmtpConnection(settings).__enter__()
    assert not caught.value.permanent


def test_implicit_tls(implicit: int, pki: Pki, recorder: Recorder) -> None:
    with SmtpConnection(SmtpSettings("127.0.0.1", implicit, tls="implicit", ca_file=str(pki.ca_file))) as connection:
        connection.send("votes@secretariat.example", ["ok@example.org"], RAW)
    assert recorder.received == [("votes@secretariat.example", ["ok@example.org"], RAW)]


def test_a_missing_ca_file_is_a_mail_error(tmp_path: Path) -> None:
    settings = SmtpSettings("127.0.0.1", 25, tls="starttls", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(MailError, match="cannot load smtp.ca_file"):
        SmtpConnection(settings).__enter__()


def test_a_non_ascii_address_is_sent_with_smtputf8_and_refused_by_the_embedded_server(tmp_path: Path) -> None:
    with MailServer(tmp_path, port=0) as server:
        refused = failure(SmtpSettings("127.0.0.1", server.port), ["délégation@example.org"])
    assert refused.permanent and refused.code == 553


@pytest.mark.parametrize("address", ["a@example.org>\r\nRCPT TO:<b@example.org", "a b@example.org", "<a@example.org>"])
def test_an_address_that_would_inject_smtp_commands_is_refused(plain: int, address: str, recorder: Recorder) -> None:
    with SmtpConnection(SmtpSettings("127.0.0.1", plain)) as connection:
        for sender, recipient in (("votes@secretariat.example", address), (address, "ok@example.org")):
            with pytest.raises(SendFailure, match="envelope address") as caught:
                connection.send(sender, [recipient], RAW)
            assert caught.value.permanent
        connection.send("votes@secretariat.example", ["ok@example.org"], RAW)
    assert [content for _, _, content in recorder.received] == [RAW]


def test_a_message_needs_a_recipient(plain: int) -> None:
    with SmtpConnection(SmtpSettings("127.0.0.1", plain)) as connection, pytest.raises(SendFailure, match="recipient") as caught:
        connection.send("votes@secretariat.example", [], RAW)
    assert caught.value.permanent


def test_the_ca_file_is_trusted_besides_the_system_authorities(pki: Pki) -> None:
    import ssl

    from voting.mail.tls import client_context

    system = ssl.create_default_context().cert_store_stats()["x509_ca"]
    extended = client_context(str(pki.ca_file), "smtp.ca_file").cert_store_stats()["x509_ca"]
    assert extended == system + 1


@pytest.mark.parametrize(("relay", "tls", "expected"), [
    ("smtp.example.org", None, ("smtp.example.org", 587, "starttls")),
    ("smtp.example.org", "implicit", ("smtp.example.org", 465, "implicit")),
    ("smtp.example.org:2525", None, ("smtp.example.org", 2525, "starttls")),
    ("127.0.0.1:8025", None, ("127.0.0.1", 8025, "none")),
    ("localhost", None, ("localhost", 25, "none")),
    ("[::1]:2525", None, ("::1", 2525, "none")),
    ("[2001:db8::1]", "starttls", ("2001:db8::1", 587, "starttls")),
])
def test_a_relay_named_on_the_command_line(relay: str, tls: Any, expected: tuple[str, int, str]) -> None:
    settings = relay_settings(relay, tls)
    assert (settings.host, settings.port, settings.tls) == expected


@pytest.mark.parametrize("relay", [":25", "smtp.example.org:", "smtp.example.org:0", "smtp.example.org:70000",
                                   "smtp.example.org:smtp", "[::1]:x"])
def test_a_relay_that_names_no_host_or_port_is_refused(relay: str) -> None:
    with pytest.raises(UsageError, match="--smtp"):
        relay_settings(relay, None)


def test_voting_reply_logs_in_to_a_starttls_relay_with_a_typed_password(
    running: Deployment, starttls: int, pki: Pki, recorder: Recorder, tmp_path: Path
) -> None:
    service = Service(running.config)
    open_vote(service, tmp_path)
    service.send()
    folder = tmp_path / "delegate"
    folder.mkdir()
    (folder / "ballot.eml").write_bytes(running.ballot_of("FRA"))
    p12 = handed_over_p12(running.config, "FRA", fingerprint(running.identities["FRA"].certificate))
    status, shown = voting_on_a_terminal(
        "reply", "ballot.eml", "--p12", str(p12), "--vote", "yes", "--secretariat-cert",
        str(running.config.keys_dir / "secretariat.pem"), "--send", "--smtp", f"127.0.0.1:{starttls}",
        "--smtp-tls", "starttls", "--smtp-user", USER,
        typed=[("Password of ", p12.with_name(p12.name + ".password").read_text().strip()),
               (f"SMTP password of {USER}: ", PASSWORD)],
        cwd=folder, env={"SSL_CERT_FILE": str(pki.ca_file)})
    assert status == 0, shown
    assert PASSWORD not in shown and f"through 127.0.0.1 port {starttls} (STARTTLS)" in shown
    [(sender, recipients, raw)] = recorder.received
    assert (sender, recipients) == ("fra@delegations.example", ["votes@secretariat.example"])
    assert b"application/pkcs7-signature" in raw


def test_a_corrected_smtp_password_file_is_read_at_the_next_connection(deployment: Deployment, starttls: int,
                                                                       pki: Pki, recorder: Recorder,
                                                                       tmp_path: Path) -> None:
    secret = deployment.config.root / "secrets" / "smtp-password"
    secret.write_text("not-the-Passw0rd\n")
    write_config(deployment, smtp={"kind": "smtp", "host": "127.0.0.1", "port": starttls, "tls": "starttls",
                                   "ca_file": str(pki.ca_file), "username": USER,
                                   "password_file": "secrets/smtp-password"})
    moment = [datetime.now(UTC)]
    service = Service(deployment.config, clock=lambda: moment[0], log=lambda line: None)
    open_vote(service, tmp_path)
    assert service.send() == (0, 15)
    secret.write_text(PASSWORD + "\n")
    moment[0] += timedelta(minutes=1)
    assert service.send() == (15, 0)
    assert len(recorder.received) == 15
