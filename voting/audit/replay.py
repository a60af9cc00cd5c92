"""Every message judged again by the service's own `verdict.judge`, in the order the service decided them.

`judge` runs here as its two halves: `read_message` for each message on its
own (the signature, the signer's trust, the text: nearly all the work), on
every core for a large bundle, then `settle` in order, in this process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from voting.audit.chain import first_event
from voting.audit.checks import Check, Progress, short
from voting.audit.reading import Contents
from voting.electorate import trust_by_time
from voting.manifest import Manifest, MessageEntry, VoteInfo
from voting.model import Electorate
from voting.smime.decrypt import ContentKey
from voting.verdict import BALLOT, Judgement, PriorBallot, Reading, VoteView, portable, read_message, settle

MIN_PARALLEL = 200
"""Messages from which a bundle is read on every core: below, starting the processes costs more than it saves."""
CHUNKS_PER_PROCESS = 8
"""Messages are handed to the processes in this many parts each: enough to even out their loads, few enough
that handing them over costs little."""


def vote_view(vote: VoteInfo, drafts: Sequence[str], tokens: Mapping[str, str], *, counted: bool = True) -> VoteView:
    """The closed vote as `verdict.judge` sees it, for export (the statements window) and replay alike;
    `counted`: as a message judged after the count saw it."""
    return VoteView(
        id=vote.id,
        opened_at=vote.opened_at,
        drafts=tuple(drafts),
        closes_at=vote.closes_at,
        closed_at=vote.closed_at,
        statement_hours=vote.statement_hours,
        first_ballot_final=vote.first_ballot_final,
        tokens=tokens,
        counted=counted,
    )


def _decided_after_count(manifest: Manifest) -> set[str]:
    """SHA-256 of the messages whose decision follows the vote-closed event in the chain."""
    closing = first_event(manifest, "vote-closed")
    return {
        str(e.data.get("message")) for e in manifest.chain.events
        if closing is not None and e.seq > closing.seq and e.kind == "decision"
    }


def _facts(decided: MessageEntry | Judgement, supersedes: str | None, signed_sha256: str | None) -> dict[str, Any]:
    """What a verdict says, alike for one recorded in the manifest and one replayed, to compare them."""
    return {
        "signed_sha256": signed_sha256,
        "vote": decided.vote_id,
        "delegation": decided.code,
        "verdict": decided.verdict,
        "reason": decided.reason.value if decided.reason else None,
        "choices": {symbol: str(choice) for symbol, choice in decided.choices.items()},
        "explanation": decided.explanation,
        "supersedes": supersedes,
    }


def _summary(facts: Mapping[str, Any]) -> str:
    what = facts["verdict"] + (f" ({facts['reason']})" if facts["reason"] else "")
    choices = ", ".join(f"{s}={c}" for s, c in facts["choices"].items())
    return f"{facts['delegation'] or 'unknown sender'}: {what}" + (f" {choices}" if choices else "")


@dataclass(frozen=True)
class Setting:
    """What reading any message of the bundle needs, handed once to each process that reads.

    Certificates cannot cross from one process to another, so the anchors travel as DER.
    """

    electorate: Electorate
    anchors: tuple[bytes, ...]
    before_count: VoteView
    after_count: VoteView


@dataclass(frozen=True)
class Job:
    """One message to read, with what the manifest says of it."""

    raw: bytes
    received_at: datetime
    after_count: bool
    content_key: str | None
    signer: str
    """The delegation the manifest names, by which the messages are shared out: each process then checks the
    certificate chains of fewer signers (a hostile manifest only slows the audit down)."""


class Reader:
    """Reads a bundle's messages, building the trust once for each state of the revocations (`trust_by_time`),
    not per message."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.anchors = tuple(x509.load_der_x509_certificate(der) for der in setting.anchors)
        self.trust_at = trust_by_time(setting.electorate)

    def __call__(self, job: Job) -> Reading | str:
        """The message's reading, or why it cannot be read: a hostile bundle ends in a failed check, not a traceback."""
        view = self.setting.after_count if job.after_count else self.setting.before_count
        try:
            key = ContentKey(bytes.fromhex(job.content_key)) if job.content_key is not None else None
            trust = self.trust_at(job.received_at, self.anchors)
            return read_message(job.raw, job.received_at, {view.id: view}, trust, key)
        except Exception as error:  # noqa: BLE001 - whatever a hostile message raises is its failed check
            return _unreplayable(error)


def _unreplayable(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


_reader: Reader | None = None
"""The reader of a process started to read messages (`readings`)."""


def _start_reading(setting: Setting) -> None:
    global _reader
    _reader = Reader(setting)


def _read_elsewhere(job: Job) -> Reading | str:
    """The message read in a process started by `readings`, as it can be sent back."""
    assert _reader is not None
    reading = _reader(job)
    return reading if isinstance(reading, str) else portable(reading)


def readings(setting: Setting, jobs: Sequence[Job], progress: Progress | None = None) -> list[Reading | str]:
    """Each message's reading, in the order of `jobs`: read on every core from `MIN_PARALLEL` messages on.

    The other processes only make it faster: whatever they fail to give back
    (one was stopped, none could start) is read here, so the readings are the
    same whichever way they were made.
    """
    read: list[Reading | str | None] = [None] * len(jobs)
    done = 0
    processes = os.cpu_count() or 1
    if len(jobs) >= MIN_PARALLEL and processes > 1:
        order = sorted(range(len(jobs)), key=lambda place: jobs[place].signer)
        try:
            with ProcessPoolExecutor(processes, initializer=_start_reading, initargs=(setting,)) as pool:
                chunk = max(1, len(jobs) // (processes * CHUNKS_PER_PROCESS))
                for place, reading in zip(order, pool.map(_read_elsewhere, [jobs[p] for p in order], chunksize=chunk)):
                    read[place] = reading
                    done += 1
                    if progress is not None:
                        progress(done, len(jobs))
        except Exception:  # noqa: BLE001 - the messages not read elsewhere are read below
            pass
    reader = Reader(setting)
    result: list[Reading | str] = []
    for job, reading in zip(jobs, read):
        if reading is None:
            reading = reader(job)
            done += 1
            if progress is not None:
                progress(done, len(jobs))
        result.append(reading)
    return result


def verdict_checks(
    contents: Contents, manifest: Manifest, ca: x509.Certificate | None, progress: Progress | None
) -> list[Check]:
    """Replay `judge` over every message in the order received, as the service decided them.

    A message decided after the vote-closed event in the chain was judged
    against a vote already counted, whatever its date, and is replayed so.
    """
    drafts = [d.symbol for d in manifest.drafts]
    decided_after_count = _decided_after_count(manifest)
    setting = Setting(
        manifest.electorate.current,
        (ca.public_bytes(Encoding.DER),) if ca is not None else (),
        vote_view(manifest.vote, drafts, manifest.ballot_tokens, counted=False),
        vote_view(manifest.vote, drafts, manifest.ballot_tokens),
    )
    present = [index for index, entry in enumerate(manifest.messages) if entry.sha256 in contents.messages]
    jobs = [
        Job(contents.messages[entry.sha256], entry.received_at, entry.sha256 in decided_after_count,
            entry.decrypted.content_key if entry.decrypted is not None else None, entry.code or "")
        for entry in (manifest.messages[index] for index in present)
    ]
    read = dict(zip(present, readings(setting, jobs, progress)))
    previous: dict[tuple[str, str], list[PriorBallot]] = {}
    checks = []
    for index, entry in enumerate(manifest.messages):
        judgement, check = _replay(read.get(index), entry, manifest, previous)
        if judgement is not None and judgement.verdict == BALLOT and judgement.vote_id and judgement.code:
            previous.setdefault((judgement.vote_id, judgement.code), []).append(
                PriorBallot(index, judgement.signed_sha256 or "", frozenset(judgement.choices))
            )
        checks.append(check)
    return checks


def _replay(
    reading: Reading | str | None,
    entry: MessageEntry,
    manifest: Manifest,
    previous: Mapping[tuple[str, str], Sequence[PriorBallot]],
) -> tuple[Judgement | None, Check]:
    name = f"message {short(entry.sha256)}… verdict"
    if reading is None:
        return None, Check(name, False, "cannot be replayed: the message's bytes are missing")
    if isinstance(reading, str):
        return None, Check(name, False, f"cannot be replayed: {reading}")
    try:
        judgement = settle(reading, previous)
    except Exception as error:  # noqa: BLE001 - a hostile bundle must end in a failed check, not a traceback
        return None, Check(name, False, f"cannot be replayed: {_unreplayable(error)}")
    recorded = _facts(entry, entry.supersedes, entry.signed_sha256)
    replayed = _facts(judgement, None if judgement.supersedes is None
                      else manifest.messages[judgement.supersedes].sha256,
                      # a bundle whose chain does not record it states none
                      judgement.kept_signed_sha256 if entry.signed_sha256 is not None else None)
    differing = [key for key in recorded if recorded[key] != replayed[key]]
    if differing:
        return judgement, Check(name, False, f"recorded {_summary(recorded)}; replay gives {_summary(replayed)} "
                                             f"(differs in {', '.join(differing)})")
    return judgement, Check(name, True, _summary(recorded))
