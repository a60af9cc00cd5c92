"""mutt as a delegate's mail client: it replies to a real ballot, signs with S/MIME through GPGME and gpgsm, sends
through the embedded SMTP server, and the service counts the reply.

mutt signs only when driven interactively (its batch mode sends unsigned mail), so it runs in a tmux pane: the
test types into the compose menu with send-keys and reads the screen, pinentry-curses' passphrase prompt
included, with capture-pane (docs/smime.md, mutt section).
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Deployment, open_vote

from tests.smime_fixtures import GnuPG, gnupg_home
from voting.pki import pkcs12_bytes
from voting.service import Service

PASSWORD = "correct horse battery staple 7"
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
        return self.wait_for_one_of(text, timeout=timeout)

    def wait_for_one_of(self, *texts: str, timeout: float = SCREEN_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if any(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                pytest.fail(f"none of {texts!r} appeared within {timeout} s; the screen shows:\n{screen}")
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "mutt", *keys)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False, timeout=10)


@pytest.fixture
def gnupg() -> Iterator[GnuPG]:
    with gnupg_home("pinentry-program /usr/bin/pinentry-curses") as home:
        yield home


DOCS = Path(__file__).parent.parent / "docs" / "smime.md"
P12_PASSWORD = "HvbbqoB2vxDnir5R"


def documented_setup() -> tuple[list[str], list[str]]:
    """The shell commands and the muttrc lines of docs/smime.md's mutt section, as a delegate copies them."""
    text = DOCS.read_text()
    section = text[text.index("### mutt (with GnuPG's gpgsm)"):text.index("### Without a mail client that signs")]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.DOTALL)
    commands = next(body for language, body in blocks if language == "sh").splitlines()
    settings = next(body for language, body in blocks if not language).splitlines()
    return commands, settings


def muttrc(path: Path, settings: list[str], *, port: int, inbox: Path, choice_line: str) -> Path:
    """The documented settings, then what a test needs: SMTP to the embedded server, the delegation's Maildir as the
    mailbox, and an "editor" that writes the choice above the quoted ballot, as a delegate would."""
    path.write_text("\n".join(settings) + f"""
set realname="France"
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
""")
    return path


def test_a_delegate_set_up_as_documented_reads_the_ballot_in_mutt_and_its_signed_reply_is_counted(
    running: Deployment, gnupg: GnuPG, tmp_path: Path
) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gnupg").symlink_to(gnupg.home)
    (home / "CODE.p12").write_bytes(
        pkcs12_bytes(running.identities["FRA"], P12_PASSWORD.encode(), friendly_name="France (FRA)", legacy=True))
    shutil.copy(running.config.keys_dir / "secretariat-ca.pem", home / "secretariat-ca.pem")
    commands, settings = documented_setup()
    pane = Pane(f"env HOME={home} GNUPGHOME={gnupg.home} TERM=screen sh", home)
    inbox = running.mail_root / running.address("FRA")
    try:
        for command in commands:
            pane.keys(command, "Enter")
            if command.startswith("gpgsm --import CODE.p12"):
                for prompt, secret in (("unprotect the PKCS#12", P12_PASSWORD), ("protect the imported object", PASSWORD),
                                       ("re-enter this passphrase", PASSWORD)):
                    pane.wait_for(prompt)
                    pane.keys(secret, "Enter")
                pane.wait_for("secret keys imported: 1")
        pane.keys("echo set-up-$((1 + 1))", "Enter")
        screen = pane.wait_for("set-up-2")
        [fingerprint] = re.findall(r"(?:^|\s)([0-9A-F]{40})$", screen, re.MULTILINE)
        assert (gnupg.home / "trustlist.txt").read_text().strip().endswith(" S")
        address = running.address("FRA")
        config = muttrc(tmp_path / "muttrc", [line.replace("FINGERPRINT", fingerprint).replace("ADDRESS", address)
                                              for line in settings],
                        port=running.config.settings.smtp.port, inbox=inbox, choice_line="S/2020/654: NO")
        pane.keys("clear", "Enter", f"exec mutt -n -F {config} -f {inbox}", "Enter")
        pane.wait_for("Ballot: Test vote")
        pane.keys("Enter")
        screen = pane.wait_for("Good signature from")
        assert "^M" not in screen and "Reply by " in screen, screen
        pane.keys("r")
        screen = pane.wait_for("y:Send")
        assert "Security: Sign (S/MIME)" in screen, screen
        pane.keys("y")
        if "Passphrase:" in pane.wait_for_one_of("Passphrase:", "Mail sent."):
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
