"""The embedded SMTP server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voting.errors import MailError
from voting.mail import maildir
from voting.mail.server import MailServer, is_plain_address

RAW = (
    b"From: Delegation <fra@delegations.example>\r\n"
    b"To: votes@secretariat.example\r\n"
    b"Subject: =?utf-8?q?Vote?=\r\n"
    b"Content-Type: text/plain; charset=latin-1\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"S/2020/654: CONTRE \xe9\xe0\xff\x80\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b"trailing spaces   \r\n"
    b"\r\n"
    + b"L" * 998
    + b"\r\n"
    + b"long " * 2000
    + b"\r\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MailServer]:
    with MailServer(tmp_path / "mail", port=0) as running:
        yield running


def client(server: MailServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.port, local_hostname="client.example", timeout=10)


def stored(server: MailServer, address: str) -> list[bytes]:
    return [maildir.read(message) for message in maildir.messages(server.mailbox(address))]


def test_the_inbox_keeps_the_bytes_and_a_delegations_maildir_has_unix_line_ends(tmp_path: Path) -> None:
    """The service reads the inbox as received; mutt reads a delegation's Maildir, where CRLF shows as ^M."""
    with MailServer(tmp_path / "mail", port=0, inbox="Votes@Secretariat.example") as server, client(server) as smtp:
        assert smtp.sendmail("votes@secretariat.example", ["votes@secretariat.example", "fra@delegations.example"],
                             RAW + b"a lone \r stays\r\n") == {}
        assert stored(server, "votes@secretariat.example") == [RAW + b"a lone \r stays\r\n"]
        assert stored(server, "fra@delegations.example") == [RAW.replace(b"\r\n", b"\n") + b"a lone \r stays\n"]


def test_port_zero_picks_a_free_port(server: MailServer) -> None:
    assert server.port not in (0, 8025)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        assert connection.recv(1024).startswith(b"220 ")


def test_the_server_sends_its_replies_without_waiting_for_acknowledgements(server: MailServer) -> None:
    """TCP_NODELAY on the accepted connection: Nagle's algorithm would hold a reply until the client's delayed ACK."""
    with client(server) as smtp:
        smtp.ehlo()
        assert server._controller is not None and server._controller.smtpd is not None
        accepted = server._controller.smtpd.transport.get_extra_info("socket")
        assert accepted.getsockname() == smtp.sock.getpeername()
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_delivery_into_the_inbox_is_signalled_and_one_to_another_address_is_not(tmp_path: Path) -> None:
    signals: list[int] = []
    with MailServer(tmp_path / "mail", port=0, inbox="votes@secretariat.example",
                    delivered=lambda: signals.append(len(stored(server, "votes@secretariat.example")))) as server:
        with client(server) as smtp:
            smtp.sendmail("votes@secretariat.example", ["fra@delegations.example"], RAW)
            assert signals == []
            smtp.sendmail("fra@delegations.example", ["Votes@Secretariat.example", "gbr@delegations.example"], RAW)
    assert signals == [1]  # once, and only once the message is in the inbox's Maildir


def test_the_exact_bytes_land_in_the_recipients_maildir(server: MailServer) -> None:
    with client(server) as smtp:
        assert smtp.sendmail("fra@delegations.example", ["votes@secretariat.example"], RAW) == {}
    assert stored(server, "votes@secretariat.example") == [RAW]
    (message,) = maildir.pending(server.mailbox("votes@secretariat.example"))
    assert message.path.parent == server.root / "votes@secretariat.example" / "new"


def test_the_reply_says_accepted_for_delivery(server: MailServer) -> None:
    with client(server) as smtp:
        smtp.ehlo()
        smtp.mail("fra@delegations.example")
        smtp.rcpt("votes@secretariat.example")
        assert smtp.data(RAW) == (250, b"Message accepted for delivery")


def test_each_recipient_gets_one_copy_in_its_own_lowercased_maildir(server: MailServer) -> None:
    recipients = ["Votes@Secretariat.Example", "fra@delegations.example", "votes@secretariat.example"]
    with client(server) as smtp:
        smtp.sendmail("", recipients, RAW)
    assert stored(server, "votes@secretariat.example") == [RAW]
    assert stored(server, "fra@delegations.example") == [RAW]
    assert sorted(p.name for p in server.root.iterdir()) == ["fra@delegations.example", "votes@secretariat.example"]


def test_several_messages_on_one_connection_arrive_in_order(server: MailServer) -> None:
    bodies = [b"Subject: %d\r\n\r\nmessage %d\r\n" % (n, n) for n in range(5)]
    with client(server) as smtp:
        for body in bodies:
            smtp.sendmail("a@example.org", ["b@example.org"], body)
    assert stored(server, "b@example.org") == bodies


def test_an_oversized_message_announced_with_size_gets_552(tmp_path: Path) -> None:
    with MailServer(tmp_path, port=0, max_message_bytes=1000) as small, client(small) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("a@example.org", ["b@example.org"], b"x" * 2000 + b"\r\n")
        assert refused.value.smtp_code == 552
    assert not (tmp_path / "b@example.org").exists()


def test_an_oversized_message_sent_without_size_gets_552_after_data(tmp_path: Path) -> None:
    with MailServer(tmp_path, port=0, max_message_bytes=1000) as small, client(small) as smtp:
        smtp.ehlo()
        smtp.mail("a@example.org")
        smtp.rcpt("b@example.org")
        code, _ = smtp.data((b"y" * 70 + b"\r\n") * 40)
        assert code == 552
        assert smtp.noop()[0] == 250
        assert smtp.sendmail("a@example.org", ["b@example.org"], b"small\r\n") == {}
    assert [maildir.read(m) for m in maildir.messages(tmp_path / "b@example.org")] == [b"small\r\n"]


def test_millions_of_short_lines_are_taken_in_within_a_second_byte_for_byte(server: MailServer) -> None:
    raw = b"Subject: lines\r\n\r\n" + b"\r\n" * 5_000_000 + b".\r\n..\r\nx\r\n" * 100_000
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        replies = connection.makefile("rb")

        def say(line: bytes, code: bytes) -> None:
            connection.sendall(line)
            assert replies.readline().startswith(code)

        assert replies.readline().startswith(b"220")
        say(b"HELO client.example\r\n", b"250")
        say(b"MAIL FROM:<fra@delegations.example>\r\n", b"250")
        say(b"RCPT TO:<votes@secretariat.example>\r\n", b"250")
        say(b"DATA\r\n", b"354")
        started = time.perf_counter()
        say(stuffed + b".\r\n", b"250")
        seconds = time.perf_counter() - started
        say(b"QUIT\r\n", b"221")
    assert stored(server, "votes@secretariat.example") == [raw]
    assert seconds < 2.0, f"taking in {len(raw)} bytes took {seconds:.2f} s"


def test_an_empty_message_and_lines_of_dots_arrive_as_sent(server: MailServer) -> None:
    sent = [b".\r\n", b"\r\n", b"x\r\n.\r\n..\r\n"]
    with client(server) as smtp:
        for raw in sent:
            smtp.sendmail("a@example.org", ["dots@example.org"], raw)
        smtp.mail("a@example.org")
        smtp.rcpt("dots@example.org")
        smtp.putcmd("data")
        assert smtp.getreply()[0] == 354
        smtp.send(b".\r\n")
        assert smtp.getreply()[0] == 250
    assert sorted(stored(server, "dots@example.org")) == sorted([*sent, b""])


@pytest.mark.parametrize(
    "address",
    ['"quoted local"@example.org', "a/b@example.org", "../up@example.org", "x@-bad-.example", "ü@example.org", "a@b@c"],
)
def test_recipients_that_are_not_plain_addresses_get_553(server: MailServer, address: str) -> None:
    assert not is_plain_address(address)
    with client(server) as smtp:
        smtp.command_encoding = "utf-8"
        smtp.ehlo()
        smtp.mail("a@example.org")
        code, _ = smtp.rcpt(address)
        assert code == 553
    assert not server.root.exists() or list(server.root.iterdir()) == []


def test_mailbox_refuses_an_address_that_could_escape_the_root(server: MailServer) -> None:
    with pytest.raises(MailError, match="plain local@domain"):
        server.mailbox("../../etc@example.org")


def test_a_delivery_failure_is_451_and_the_server_keeps_serving(server: MailServer) -> None:
    server.root.mkdir(parents=True, exist_ok=True)
    (server.root / "blocked@example.org").write_bytes(b"a file where a Maildir should be")
    with client(server) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            smtp.sendmail("a@example.org", ["blocked@example.org"], RAW)
        assert failed.value.smtp_code == 451
        assert smtp.sendmail("a@example.org", ["open@example.org"], RAW) == {}
    assert stored(server, "open@example.org") == [RAW]


def test_the_server_survives_a_client_that_disconnects_in_the_middle_of_data(server: MailServer) -> None:
    smtp = client(server)
    smtp.ehlo()
    smtp.mail("a@example.org")
    smtp.rcpt("cut@example.org")
    smtp.putcmd("data")
    assert smtp.getreply()[0] == 354
    smtp.send(b"Subject: half\r\n\r\nonly half of the mess")
    smtp.sock.shutdown(socket.SHUT_RDWR)
    smtp.close()
    with client(server) as again:
        assert again.sendmail("a@example.org", ["cut@example.org"], RAW) == {}
    assert stored(server, "cut@example.org") == [RAW]


def test_starting_on_a_taken_port_raises_mail_error(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(MailError, match=f"port {port}"):
            MailServer(tmp_path, port=port).start()


def test_stop_closes_the_port_and_the_server_can_start_again(tmp_path: Path) -> None:
    server = MailServer(tmp_path, port=0)
    server.start()
    port = server.port
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    server.start()
    try:
        assert server.port == port
        with client(server) as smtp:
            smtp.sendmail("a@example.org", ["b@example.org"], RAW)
    finally:
        server.stop()
    assert stored(server, "b@example.org") == [RAW]


def test_starting_twice_is_refused(server: MailServer) -> None:
    with pytest.raises(MailError, match="already running"):
        server.start()
