"""mutt as a delegate's mail client: it replies to a real ballot, signs with S/MIME through GPGME and gpgsm, sends
through the embedded SMTP server, and the service counts the reply.

mutt signs only when driven interactively (its batch mode sends unsigned mail), so it runs in a tmux pane: the
test types into the compose menu with send-keys and reads the screen, pinentry-curses' passphrase prompt
included, with capture-pane (docs/smime.md, mutt section).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Deployment, open_vote

from tests.smime_fixtures import GnuPG, gnupg_home
from voting.pki import pkcs12_bytes, read_certificate
from voting.service import Service

PASSWORD = "correct horse battery staple"
SCREEN_TIMEOUT = 30.0


class Pane:
    """One tmux server of its own with one pane; every wait is bounded and fails showing the screen."""

    def __init__(self, command: str, directory: Path) -> None:
        for tool in ("tmux", "mutt", "pinentry-curses"):
            assert shutil.which(tool), f"{tool} is required by this test (apt-get install tmux mutt pinentry-curses)"
        self.socket = f"voting-mutt-{secrets.token_hex(6)}"
        self.tmux("new-session", "-d", "-s", "mutt", "-x", "160", "-y", "48", "-c", str(directory), command)

    def tmux(self, *arguments: str) -> str:
        result = subprocess.run(["tmux", "-L", self.socket, *arguments], capture_output=True, check=False, timeout=10)
        assert result.returncode == 0, f"tmux {arguments[0]} failed: {result.stderr.decode(errors='replace')}"
        return result.stdout.decode(errors="replace")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "mutt")

    def wait_for(self, text: str, timeout: float = SCREEN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"{text!r} did not appear within {timeout} s; the screen shows:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "mutt", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False, timeout=10)


@pytest.fixture
def gnupg() -> Iterator[GnuPG]:
    with gnupg_home("pinentry-program /usr/bin/pinentry-curses") as home:
        yield home


def muttrc(path: Path, *, key: str, address: str, port: int, inbox: Path, choice_line: str) -> Path:
    """mutt over GPGME and gpgsm, S/MIME by default, SMTP to the embedded server; the "editor" writes the choice
    above the quoted ballot, as a delegate would."""
    path.write_text(
        f"""set crypt_use_gpgme=yes
set smime_is_default=yes
set smime_sign_as="0x{key}"
set crypt_verify_sig=no
set from="{address}"
set realname="France"
set use_from=yes
set smtp_url="smtp://127.0.0.1:{port}"
set ssl_starttls=no
set ssl_force_tls=no
set editor="sed -i '1i {choice_line}'"
set abort_unmodified=no
set include=yes
set fast_reply=yes
set copy=no
set record=""
set mbox_type=Maildir
set folder="{inbox}"
set spoolfile="{inbox}"
set sleep_time=0
set wait_key=no
"""
    )
    return path


def test_mutt_replies_to_the_ballot_signs_with_smime_and_the_vote_is_counted(
    running: Deployment, gnupg: GnuPG, tmp_path: Path
) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    gnupg.trust(read_certificate(running.config.keys_dir / "secretariat-ca.pem"))
    legacy = pkcs12_bytes(running.identities["FRA"], PASSWORD.encode(), friendly_name="FRA", legacy=True)
    key = gnupg.import_pkcs12(legacy, PASSWORD.encode())
    inbox = running.mail_root / running.address("FRA")
    config = muttrc(tmp_path / "muttrc", key=key, address=running.address("FRA"),
                    port=running.config.settings.smtp.port, inbox=inbox, choice_line="S/2020/654: NO")
    command = (f"env HOME={tmp_path} GNUPGHOME={gnupg.home} TERM=screen "
               f"sh -c 'GPG_TTY=$(tty) exec mutt -n -F {config} -f {inbox}'")
    pane = Pane(command, tmp_path)
    try:
        pane.wait_for("Ballot: Test vote")
        pane.keys("r")
        pane.wait_for("y:Send")
        pane.keys("S")
        pane.wait_for("(s)ign")
        pane.keys("s")
        pane.wait_for("Security: Sign (S/MIME)")
        pane.keys("y")
        pane.wait_for("Passphrase:")
        pane.keys(PASSWORD, "Enter")
        pane.wait_for("Mail sent.")
        pane.keys("q")
    finally:
        pane.close()
    service.poll_once()
    [decision] = service.ledger.decisions(vote_id)
    assert (decision.code, decision.verdict, decision.reason, decision.choices) == (
        "FRA", "ballot", None, {"S/2020/654": "no"}
    )
    raw = service.ledger.raw_message(decision.message)
    assert b"multipart/signed" in raw and b"application/pkcs7-signature" in raw
    assert any(b"Subject: Receipt" in message for message in running.inbox_of("FRA"))
