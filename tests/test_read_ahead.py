"""A long pass reads its next messages in a process of its own (`voting.read_ahead`): sooner, never otherwise.

Each test runs the real pass over real mail taken in through the embedded
SMTP server; the reading process is the real `python` the service starts.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Deployment, open_vote, wait_for

from voting.config import load_config
from voting.read_ahead import NICENESS, PATIENCE_SECONDS, ReadingProcess
from voting.reasons import Reason
from voting.service import Service
from voting.service.judging import ANSWER_BATCH
from voting.verdict import BALLOT, Judgement

Decided = tuple[str, str | None, str, str | None, dict[str, str], str | None, str | None]


def mixed_mail(deployment: Deployment, service: Service, tmp_path: Path) -> list[tuple[bytes, str]]:
    """Three batches and more of what a vote's mailbox holds: every delegation's ballot, then changes of vote, a
    copy of a ballot, a ballot under another delegation's token, unsigned and broken mail, and, last, ballots
    encrypted to the secretariat (which only its key opens)."""
    codes = sorted(deployment.identities)
    mail = [(deployment.reply(code, ["yes"]), code) for code in codes]
    mail += [(deployment.reply(code, ["no"], explanation=f"{code} changed its mind."), code) for code in codes[:10]]
    mail += [(b"Received: by a relay that delivered it twice\r\n" + mail[0][0], codes[0])]
    mail += [(deployment.reply("USA", ["no"], ballot=deployment.ballot_of("FRA")), "USA")]
    mail += [(b"From: %s\r\nSubject: my vote, %d\r\n\r\nYES\r\n" % (deployment.address(c).encode(), n), c)
             for c in codes for n in range(2)]
    mail += [(b"From: fra@delegations.example\r\nContent-Type: multipart/signed; boundary=\"x\"\r\n\r\n--x\r\n", "FRA")]
    recipient = service.keys.signer.certificate
    mail += [(deployment.encrypted_reply(code, recipient, tmp_path, explanation="Sealed."), code)
             for code in codes[10:13]]
    assert len(mail) > 2 * ANSWER_BATCH
    return mail


def taken_in(deployment: Deployment, service: Service, mail: list[tuple[bytes, str]]) -> None:
    for raw, code in mail:
        deployment.submit(raw, deployment.address(code))
    assert service.fetch() == len(mail)


def decided(service: Service, vote_id: str) -> list[Decided]:
    """Every decision by what it says, the superseded ballot named by its message's hash."""
    decisions = sorted([*service.ledger.decisions(vote_id), *service.ledger.decisions(None)], key=lambda d: d.message)
    sha = {d.message: d.sha256 for d in decisions}
    return [(d.sha256, d.code, d.verdict, d.reason, dict(d.choices), sha.get(d.supersedes) if d.supersedes else None,
             d.signed_sha256) for d in decisions]


def started(service: Service) -> ReadingProcess:
    """The reading process, running: started as a pass with more than a batch waiting starts it."""
    process = service._reading_process(ANSWER_BATCH + 1)
    assert process is not None
    wait_for(process.ready, "the reading process to start")
    return process


def test_a_long_pass_decides_with_the_reading_process_as_without_it(running: Deployment, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    mail = mixed_mail(running, service, tmp_path)
    taken_in(running, service, mail)
    service.shut_down()
    alone = tmp_path / "alone"
    shutil.copytree(running.config.root, alone)

    service = Service(running.config)
    process = started(service)
    service.decide_pending()
    assert process.messages_read >= len(mail) - 2 * ANSWER_BATCH  # all but the first batch, read here
    with_process = decided(service, vote_id)
    service.shut_down()

    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # one core: no reading process
    service = Service(load_config(alone / "config" / "voting.toml"))
    service.decide_pending()
    assert service._reading is None
    assert with_process == decided(service, vote_id)

    by_reason = [(code, verdict, reason) for _, code, verdict, reason, *_ in with_process]
    assert by_reason.count(("USA", "rejected", Reason.WRONG_BALLOT_TOKEN.value)) == 1
    assert [r for r in by_reason if r[2] == Reason.REPLAYED.value] == [(mail[0][1], "rejected", "replayed")]
    sealed = [d for d in with_process[-3:]]
    assert [(d[2], d[4]) for d in sealed] == [(BALLOT, {"S/2020/654": "yes"})] * 3
    vote = service.ledger.vote(vote_id)
    counted = service.counted(vote, vote.closes_at)["S/2020/654"]
    assert sorted(counted.values()) == sorted(["no"] * 10 + ["yes"] * 5)
    service.shut_down()


def test_a_reading_process_that_dies_mid_pass_leaves_the_pass_whole(running: Deployment, tmp_path: Path) -> None:
    lines: list[str] = []
    service = Service(running.config, log=lines.append)
    vote_id = open_vote(service, tmp_path)
    service.send()
    mail = mixed_mail(running, service, tmp_path)
    taken_in(running, service, mail)
    process = started(service)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    judged = service.decide_pending()
    assert len(judged) == len(mail)
    assert len(decided(service, vote_id)) == len(mail)
    assert service._reading is None
    assert any(line.startswith("reading ahead in another process stopped") for line in lines), lines
    vote = service.ledger.vote(vote_id)
    assert len(service.counted(vote, vote.closes_at)["S/2020/654"]) == 15
    assert started(service) is not process  # a later long pass starts another
    service.shut_down()


def test_a_stopped_reading_process_delays_a_pass_by_its_patience_alone(running: Deployment, tmp_path: Path) -> None:
    """Stopped (or starved of a core by busier processes), it takes no batch and gives no readings: the pass waits
    `PATIENCE_SECONDS` for it once, stops it and reads its mail itself."""
    lines: list[str] = []
    service = Service(running.config, log=lines.append)
    vote_id = open_vote(service, tmp_path)
    service.send()
    mail = mixed_mail(running, service, tmp_path)
    taken_in(running, service, mail)
    process = started(service)
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)
    assert len(service.decide_pending()) == len(mail)
    assert len(decided(service, vote_id)) == len(mail)
    [stopped] = [line for line in lines if line.startswith("reading ahead")]
    assert stopped.startswith("reading ahead in another process stopped (TimeoutError: ")  # the batch taken, or not
    assert f"within {PATIENCE_SECONDS} s); the pass reads its mail itself" in stopped
    wait_for(lambda: not _running(process.pid), "the stopped reading process to be killed")

    process = started(service)  # and a batch larger than the pipe holds is not taken
    assert process.pid is not None
    os.kill(process.pid, signal.SIGSTOP)
    large = [(n, b"Subject: large\r\n\r\n" + b"x" * (1 << 20), datetime.now(UTC)) for n in range(2)]
    with pytest.raises(TimeoutError, match="took no batch"):
        process.send(pickle.dumps(service.electorate()), service._known().views, large)
    service.shut_down()
    assert not _running(process.pid)


def test_a_batch_whose_pass_ended_before_taking_it_never_lends_its_readings(running: Deployment,
                                                                            tmp_path: Path) -> None:
    """A pass that ends between sending a batch and taking its readings (its disk failed) leaves them in the pipe;
    the next batch's readings are its own, never those."""
    service = Service(running.config)
    vote_id = open_vote(service, tmp_path)
    service.send()
    ballot = (running.reply("FRA", ["yes"]), datetime.now(UTC))
    unsigned = (b"From: fra@delegations.example\r\nSubject: vote\r\n\r\nYES\r\n", datetime.now(UTC))
    process = started(service)
    views = service._known().views
    electorate = pickle.dumps(service.electorate())
    process.send(electorate, views, [(1, *ballot)])
    wait_for(process.ready, "the readings left in the pipe to be taken and dropped")
    second = process.send(electorate, views, [(2, *unsigned)])
    [reading] = process.readings(second)
    assert isinstance(reading, Judgement) and reading.reason is Reason.NOT_SIGNED
    assert reading.vote_id is None and vote_id in views
    service.shut_down()


def test_the_reading_process_runs_below_the_service_and_ends_with_it(deployment: Deployment) -> None:
    """Below: an operator's command during a long pass takes a core before it. No pydantic plugin runs in it. It
    ends when the service is shut down, and when the service is killed outright."""
    service = Service(deployment.config)
    process = started(service)
    assert process.pid is not None
    assert os.getpriority(os.PRIO_PROCESS, process.pid) == os.getpriority(os.PRIO_PROCESS, 0) + NICENESS
    environment = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    assert b"PYDANTIC_DISABLE_PLUGINS=__all__" in environment  # nothing installed beside it sees the key it holds
    service.shut_down()
    assert not Path(f"/proc/{process.pid}").exists()

    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from voting.config import load_config
        from voting.service import Service
        from voting.service.judging import ANSWER_BATCH
        process = Service(load_config(Path({str(deployment.config.path)!r})))._reading_process(ANSWER_BATCH + 1)
        while not process.ready():
            pass
        print(process.pid, flush=True)
        sys.stdin.read()
    """)
    service_process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True)
    assert service_process.stdout is not None
    reading_pid = int(service_process.stdout.readline())
    assert Path(f"/proc/{reading_pid}").exists()
    service_process.kill()
    service_process.wait()
    wait_for(lambda: not _running(reading_pid), "the reading process to end with the service")


def _running(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its parent to collect it has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
