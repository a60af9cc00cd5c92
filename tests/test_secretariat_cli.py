"""The secretariat at the command line: what it is refused, what it is asked, and what it sees while a vote runs."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Deployment, voting, voting_on_a_terminal

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
READABLE = r"[A-Z][a-z]+day \d{1,2} [A-Z][a-z]+ \d{4}, \d\d:\d\d(:\d\d)? UTC"


class Terminal:
    """`voting` on a pseudo-terminal that the test reads while it runs and interrupts, as an operator does with Ctrl-C.

    (`voting_on_a_terminal` serves a command that ends by itself.)
    """

    def __init__(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-m", "voting", *args], stdin=slave, stdout=slave,
                                        stderr=slave, close_fds=True)
        os.close(slave)
        self.output = ""

    def read_until(self, pattern: str, *, seconds: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while not (found := re.search(pattern, self.output)):
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                pytest.fail(f"no {pattern!r} on the terminal; it shows:\n{self.output[-3000:]}")
        return found

    def _read(self, seconds: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, seconds))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the process has gone and the terminal is closed
            return False
        self.output += chunk.decode("utf-8", "replace")
        return bool(chunk)

    def wait(self) -> int:
        status = self.process.wait(timeout=60)
        while self._read(0.1):
            pass
        os.close(self.master)
        return status


def config_of(deployment: Deployment) -> str:
    return str(deployment.config.path)


def open_by_cli(deployment: Deployment, tmp_path: Path, *options: str, closes: str = "+1h") -> str:
    draft = tmp_path / "draft.txt"
    draft.write_text("Draft resolution S/2020/654\n")
    opened = voting("--json", "--config", config_of(deployment), "open", "--draft", f"S/2020/654={draft}",
                    "--rule", "unsc-substantive", "--closes", closes, "--title", "Syria", *options)
    assert opened.returncode == 0, opened.stderr
    return str(json.loads(opened.stdout)["vote"])


def fresh_deployment(tmp_path: Path) -> str:
    """A new deployment of the Security Council electorate, in which only France holds a certificate."""
    assert voting("init", str(tmp_path / "d"), "--electorate", "unsc-2020").returncode == 0
    config = str(tmp_path / "d" / "config" / "voting.toml")
    assert voting("--config", config, "keys", "issue", "FRA", "--email", "fra@delegations.example").returncode == 0
    return config


def test_open_names_the_delegations_that_cannot_vote_and_opens_only_when_told(tmp_path: Path) -> None:
    config = fresh_deployment(tmp_path)
    assert voting("--config", config, "keys", "issue", "GBR", "--email", "gbr@delegations.example").returncode == 0
    assert voting("--config", config, "keys", "revoke", "GBR", "--yes").returncode == 0
    draft = tmp_path / "draft.txt"
    draft.write_text("Draft resolution\n")
    command = ("--config", config, "open", "--draft", f"S/2020/1={draft}", "--rule", "unsc-substantive",
               "--closes", "+1h")
    refused = voting(*command)
    assert refused.returncode == 2, refused.stderr
    assert "CHN, RUS, USA" in refused.stderr and "(no certificate)" in refused.stderr
    assert "GBR (every certificate revoked)" in refused.stderr and "--allow-missing" in refused.stderr
    assert "FRA" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert voting("--json", "--config", config, "votes").stdout.strip() == "[]"

    listed = {row["code"]: row["cannot_vote"] for row in json.loads(voting("--json", "--config", config, "keys", "list").stdout)}
    assert (listed["FRA"], listed["GBR"], listed["CHN"]) == (None, "every certificate revoked", "no certificate")
    assert "cannot vote: every certificate revoked" in voting("--config", config, "keys", "list").stdout

    opened = voting(*command, "--allow-missing")
    assert opened.returncode == 0, opened.stderr
    assert "15 ballots sent" in opened.stdout


def test_keys_issue_registers_a_new_delegation_only_when_told_and_never_with_another_s_address(tmp_path: Path) -> None:
    config = fresh_deployment(tmp_path)
    electorate = tmp_path / "d" / "config" / "electorates" / "unsc-2020.toml"
    before = electorate.read_text()
    typo = voting("--config", config, "keys", "issue", "FRN", "--email", "frn@delegations.example")
    assert typo.returncode == 2 and "no delegation FRN" in typo.stderr and "--new" in typo.stderr, typo.stderr
    not_new = voting("--config", config, "keys", "issue", "FRA", "--email", "fra@delegations.example", "--new")
    assert not_new.returncode == 2 and "FRA is already a delegation (France)" in not_new.stderr, not_new.stderr
    taken = voting("--config", config, "keys", "issue", "CHN", "--email", "fra@delegations.example")
    assert taken.returncode == 2 and "fra@delegations.example is an address of FRA" in taken.stderr, taken.stderr
    taken_by_new = voting("--config", config, "keys", "issue", "AUS", "--email", "FRA@delegations.example", "--new")
    assert taken_by_new.returncode == 2 and "is an address of FRA" in taken_by_new.stderr, taken_by_new.stderr
    assert electorate.read_text() == before
    assert not list((tmp_path / "d" / "handover").glob("CHN-*")) and not list((tmp_path / "d" / "handover").glob("AUS-*"))

    new = voting("--json", "--config", config, "keys", "issue", "AUS", "--email", "aus@delegations.example",
                 "--name", "Australia", "--new")
    assert new.returncode == 0, new.stderr
    listed = json.loads(voting("--json", "--config", config, "keys", "list").stdout)
    assert [row["addresses"] for row in listed if row["code"] == "AUS"] == [["aus@delegations.example"]]


def test_keys_sign_refuses_an_address_of_another_delegation(tmp_path: Path) -> None:
    config = fresh_deployment(tmp_path)
    desk = tmp_path / "desk"
    made = voting("keys", "request", "CHN", "--email", "fra@delegations.example", "--out", str(desk),
                  env={"VOTING_KEY_PASSWORD": "a passphrase"})
    assert made.returncode == 0, made.stderr
    signed = voting("--config", config, "keys", "sign", str(desk / "CHN-request.pem"), "--email",
                    "fra@delegations.example")
    assert signed.returncode == 2 and "fra@delegations.example is an address of FRA" in signed.stderr, signed.stderr


def test_an_electorate_file_giving_two_delegations_one_address_is_refused(tmp_path: Path) -> None:
    config = fresh_deployment(tmp_path)
    electorate = tmp_path / "d" / "config" / "electorates" / "unsc-2020.toml"
    electorate.write_text(electorate.read_text().replace('"chn@delegations.example"', '"fra@delegations.example"'))
    listed = voting("--config", config, "keys", "list")
    assert listed.returncode == 2, listed.stderr
    assert "address fra@delegations.example is registered to both" in listed.stderr and "Traceback" not in listed.stderr


def test_votes_lists_every_vote_with_its_state_rule_deadline_and_turnout(running: Deployment, tmp_path: Path) -> None:
    first = open_by_cli(running, tmp_path)
    second = open_by_cli(running, tmp_path)
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")  # to the latest ballot, the second's
    assert voting("--config", config_of(running), "poll", "--once").returncode == 0
    assert voting("--config", config_of(running), "close", second, "--yes").returncode == 0

    listed = json.loads(voting("--json", "--config", config_of(running), "votes").stdout)
    assert [(v["vote"], v["state"], v["rule"], v["voted"], v["delegations"]) for v in listed] == [
        (first, "open", "unsc-substantive", 0, 15), (second, "closed", "unsc-substantive", 1, 15)]
    assert listed[1]["outcome"]["S/2020/654"]["adopted"] is False
    text = voting("--config", config_of(running), "votes").stdout
    assert re.search(rf"{first}  Syria\n  OPEN, rule unsc-substantive, closes {READABLE} \(\d+ min \d\d s left\)\n"
                     r"  0 of 15 delegations have voted\n", text), text
    assert re.search(rf"{second}  Syria\n  CLOSED, rule unsc-substantive, closed {READABLE}\n"
                     r"  1 of 15 delegations voted; S/2020/654 NOT ADOPTED", text), text
    assert ".000" not in text and "+00:00" not in text


def test_status_watch_redraws_as_ballots_arrive_and_ctrl_c_ends_it(running: Deployment, tmp_path: Path) -> None:
    vote_id = open_by_cli(running, tmp_path)
    board = Terminal("--config", config_of(running), "status", vote_id, "--watch")
    try:
        board.read_until(r"not yet voted \(15\)")
        running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
        running.submit(running.reply("CHN", ["yes"], identity=running.identities["RUS"]), "chn@delegations.example")
        assert voting("--config", config_of(running), "poll", "--once").returncode == 0
        shown = board.read_until(r"voted \(1\): FRA S/2020/654=yes\r?\nnot yet voted \(14\)[^\n]*\n"
                                 r"rejected \(1\):\r?\n  [^\n]* RUS: [a-z-]+")
        assert re.search(rf"closes {READABLE} \(\d+ min \d\d s left\)", board.output)
        assert "outbox: " in board.output and "\033[2J" in board.output
        assert re.search(rf"voting status at {READABLE}; Ctrl-C to stop", board.output), shown
    finally:
        board.process.send_signal(signal.SIGINT)
        status = board.wait()
    assert status == 0, board.output[-2000:]
    assert "Traceback" not in board.output and "KeyboardInterrupt" not in board.output


def test_status_watch_without_a_terminal_prints_once(running: Deployment, tmp_path: Path) -> None:
    vote_id = open_by_cli(running, tmp_path)
    once = voting("--config", config_of(running), "status", vote_id, "--watch")
    assert once.returncode == 0 and once.stdout.count("not yet voted (15)") == 1
    assert "only on a terminal" in once.stderr
    with_json = voting("--json", "--config", config_of(running), "status", vote_id, "--watch")
    assert with_json.returncode == 2 and "--watch" in with_json.stderr


def test_the_provisional_record_says_not_yet_voted_and_absent_only_after_the_close(
    running: Deployment, tmp_path: Path
) -> None:
    vote_id = open_by_cli(running, tmp_path)
    running.submit(running.reply("FRA", ["yes"]), "fra@delegations.example")
    assert voting("--config", config_of(running), "poll", "--once").returncode == 0
    provisional = json.loads(voting("--json", "--config", config_of(running), "record", vote_id, "--out",
                                    str(tmp_path / "open")).stdout)
    text, page = Path(provisional["text"]).read_text(), Path(provisional["html"]).read_text()
    assert re.search(r"CHN China\s+NOT YET VOTED\s+-", text) and "ABSENT" not in text, text
    assert re.search(r"FRA France\s+YES\s+", text), text
    assert "NOT YET VOTED" in page and "ABSENT" not in page
    assert "not yet voted (14)" in voting("--config", config_of(running), "status", vote_id).stdout

    assert voting("--config", config_of(running), "close", vote_id, "--yes").returncode == 0
    final = json.loads(voting("--json", "--config", config_of(running), "record", vote_id, "--out",
                              str(tmp_path / "closed")).stdout)
    text, page = Path(final["text"]).read_text(), Path(final["html"]).read_text()
    assert re.search(r"CHN China\s+ABSENT\s+-", text) and "NOT YET VOTED" not in text, text
    assert "ABSENT" in page and "NOT YET VOTED" not in page
    assert "absent (14)" in voting("--config", config_of(running), "status", vote_id).stdout


def test_close_asks_on_a_terminal_and_a_script_must_say_yes(running: Deployment, tmp_path: Path) -> None:
    vote_id = open_by_cli(running, tmp_path)
    scripted = voting("--config", config_of(running), "close", vote_id)
    assert scripted.returncode == 2 and "--yes" in scripted.stderr, scripted.stderr

    status, shown = voting_on_a_terminal("--config", config_of(running), "close", vote_id,
                                         typed=[("[y/N]", "n")], cwd=tmp_path)
    assert status == 1 and "stays open" in shown, shown
    assert re.search(rf"Close vote {vote_id} now\? Ballots received after now will not count \[y/N\] ", shown), shown
    assert json.loads(voting("--json", "--config", config_of(running), "status", vote_id).stdout)["state"] == "open"

    status, shown = voting_on_a_terminal("--config", config_of(running), "close", vote_id,
                                         typed=[("[y/N]", "y")], cwd=tmp_path)
    assert status == 0, shown
    assert "NOT ADOPTED" in shown and re.search(rf"closed {READABLE}", shown)
    assert json.loads(voting("--json", "--config", config_of(running), "status", vote_id).stdout)["state"] == "closed"


def test_keys_revoke_asks_on_a_terminal_and_a_script_must_say_yes(deployment: Deployment, tmp_path: Path) -> None:
    def revoked() -> bool:
        listed = json.loads(voting("--json", "--config", config_of(deployment), "keys", "list").stdout)
        return all(c["revoked"] for row in listed if row["code"] == "FRA" for c in row["certificates"])

    scripted = voting("--config", config_of(deployment), "keys", "revoke", "FRA")
    assert scripted.returncode == 2 and "keys revoke" in scripted.stderr and "--yes" in scripted.stderr
    status, shown = voting_on_a_terminal("--config", config_of(deployment), "keys", "revoke", "FRA",
                                         typed=[("[y/N]", "")], cwd=tmp_path)
    assert status == 1 and not revoked(), shown
    assert re.search(r"Revoke every certificate of FRA \(France\) now\? .* \[y/N\] ", shown), shown
    done = voting("--config", config_of(deployment), "keys", "revoke", "FRA", "--yes")
    assert done.returncode == 0 and re.search(rf"from {READABLE}$", done.stdout.strip()), done.stdout
    assert revoked()


def test_serve_stamps_its_lines_and_prints_each_outcome_when_a_vote_closes(deployment: Deployment,
                                                                           tmp_path: Path) -> None:
    closes = (datetime.now(UTC) + timedelta(seconds=20)).replace(microsecond=0)
    vote_id = open_by_cli(deployment, tmp_path, closes=closes.isoformat())
    serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", config_of(deployment), "serve"],
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        assert serve.stderr is not None
        deadline = time.monotonic() + 90
        submitted = False
        while not any("NOT ADOPTED" in line for line in lines) and time.monotonic() < deadline:
            lines.append(serve.stderr.readline())
            if not submitted and "watching" in lines[-1]:
                deployment.submit(deployment.reply("FRA", ["yes"]), "fra@delegations.example")
                submitted = True
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    text = "".join(lines)
    assert all(re.match(rf"{STAMP} ", line) for line in lines if line), text
    assert re.search(rf"{STAMP} [0-9a-f]{{12}} FRA: ballot, received {STAMP}\n", text), text
    assert re.search(rf"{STAMP} closed vote {vote_id}\n{STAMP}   S/2020/654: NOT ADOPTED — 1 in favour, 0 against,"
                     r" 0 abstentions, 14 absent", text), text
