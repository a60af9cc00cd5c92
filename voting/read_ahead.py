"""Reading a pass's next messages in a process of its own, on another core, while this one records the last ones.

Reading a message (`verdict.read_message`: its signature, its signer's
trust, the vote it answers, its text) is about half of what deciding it
costs, and it needs nothing but the message, the votes and the electorate.
So while a pass records a batch of decisions and signs their answers, the
reading process reads the next batch.

It never makes a pass different: what it has not read (it is still
starting, it stopped, a message failed there) is read by the pass in its
turn, and `read_message` reads the same in either process. Nor does it make
a pass later by more than `PATIENCE_SECONDS` (`ReadingProcess`). It runs
at a lower priority than the secretariat's other commands, so that an
operator's `voting status` during a long pass takes a core before it. It
holds the secretariat's decryption key, as the service does, to open ballots
encrypted to the secretariat; the key reaches it through a pipe, never a
file, and it ends when the service does (its pipe closes).

It is a new Python running `main`, speaking length-prefixed pickles on its
standard input and output: started afresh, it inherits neither the service's
threads (the embedded mail server's) nor its main module.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_der_private_key

from voting import NO_PYDANTIC_PLUGINS
from voting.electorate import TrustAt, trust_by_time
from voting.pki import Identity
from voting.verdict import Reading, VoteView, portable, read_message

NICENESS = 10
"""How far below the secretariat's other commands the reading process runs."""
PATIENCE_SECONDS = 0.5
"""The longest a pass waits for the reading process to take a batch, or to give its readings (a batch takes it some
ten milliseconds)."""

_LENGTH = struct.Struct(">Q")


def _frame(value: object) -> bytes:
    data = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _write(stream: IO[bytes], value: object) -> None:
    stream.write(_frame(value))
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next value on the service's pipe, in the reading process; EOFError when the service has gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the service has gone")
    (length,) = _LENGTH.unpack(head)
    data = stream.read(length)
    if len(data) < length:
        raise EOFError("the service has gone")
    return pickle.loads(data)


class _Key(NamedTuple):
    """The secretariat's identity as it travels to the reading process: DER, the key unencrypted in the pipe."""

    key: bytes
    certificate: bytes
    chain: tuple[bytes, ...]

    @classmethod
    def of(cls, identity: Identity) -> _Key:
        return cls(identity.key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
                   identity.certificate.public_bytes(Encoding.DER),
                   tuple(c.public_bytes(Encoding.DER) for c in identity.chain))

    def identity(self) -> Identity:
        return Identity(load_der_private_key(self.key, None),  # type: ignore[arg-type]
                        x509.load_der_x509_certificate(self.certificate),
                        tuple(x509.load_der_x509_certificate(der) for der in self.chain))


class _Batch(NamedTuple):
    """What the service sends: the electorate pickled (None: the one sent before), the votes, and the messages."""

    electorate: bytes | None
    views: Mapping[str, VoteView]
    messages: Sequence[tuple[bytes, datetime]]


class _Reader:
    """What the reading process keeps from one batch to the next: the key, the anchors, and the trust of the
    electorate last sent."""

    def __init__(self, key: _Key | None, anchors: tuple[bytes, ...]) -> None:
        self.decryption = key.identity() if key is not None else None
        self.anchors = tuple(x509.load_der_x509_certificate(der) for der in anchors)
        self.trust_at: TrustAt | None = None

    def read(self, batch: _Batch) -> list[Reading | None]:
        if batch.electorate is not None:
            self.trust_at = trust_by_time(pickle.loads(batch.electorate))
        assert self.trust_at is not None
        readings: list[Reading | None] = []
        for raw, received_at in batch.messages:
            try:
                reading = read_message(raw, received_at, batch.views, self.trust_at(received_at, self.anchors),
                                       self.decryption)
                readings.append(portable(reading))
            except Exception:  # noqa: BLE001 - read again by the pass in its turn, where the failure is recorded
                readings.append(None)
        return readings


def main() -> None:
    """The reading process: its key and anchors first, then a batch at a time until the service's end of the pipe
    closes (and, if it closes while a batch is read, quietly)."""
    os.nice(NICENESS)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever else is written there goes to the log, not the pipe
    key, anchors = _read(source)
    reader = _Reader(key, anchors)
    _write(sink, os.getpid())
    while True:
        try:
            serial, batch = _read(source)
        except EOFError:
            return
        _write(sink, (serial, reader.read(batch)))


class Sent(NamedTuple):
    """A batch sent to be read: its number, its messages (ledger id and bytes), the votes they are read against."""

    serial: int
    messages: tuple[tuple[int, bytes], ...]
    views: dict[str, VoteView]


class ReadingProcess:
    """The process that reads ahead, started once and kept for the service's later passes; one batch at a time.

    A pass never waits for it to start, and waits at most `PATIENCE_SECONDS`
    for it to take a batch and give its readings back: past that (it is
    starved of a core, or stopped), it is stopped and the pass reads for
    itself, so that it can delay a pass by no more than that.
    """

    def __init__(self, decryption: Identity | None, anchors: Sequence[x509.Certificate]) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        environment = {**os.environ, **NO_PYDANTIC_PLUGINS, "PYTHONPATH": os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from voting.read_ahead import main; main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=environment, start_new_session=True,  # an operator's Ctrl-C stops the service, which stops it
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._to, self._from = self._process.stdin.fileno(), self._process.stdout.fileno()
        os.set_blocking(self._to, False)
        os.set_blocking(self._from, False)
        self._electorate = b""
        self._sent = self._answered = 0
        """Batches sent, and batches whose readings have come back."""
        self.pid: int | None = None
        """Set once the process runs."""
        self.messages_read = 0
        """How many messages it has read and given back."""
        self._put((_Key.of(decryption) if decryption is not None else None,
                   tuple(anchor.public_bytes(Encoding.DER) for anchor in anchors)))

    def ready(self) -> bool:
        """Whether it runs and has given back every batch sent (those of a pass that ended before taking them are
        dropped), so that a batch sent now is read at once."""
        if self.pid is None:
            if not self._waiting(0):
                return False
            self.pid = self._take()
        while self._answered < self._sent and self._waiting(0):
            self._answer()
        return self._answered == self._sent

    def send(self, electorate: bytes, views: dict[str, VoteView],
             messages: Sequence[tuple[int, bytes, datetime]]) -> Sent:
        """A batch sent, once `ready`; `electorate` pickled, sent only when it differs from the last one sent."""
        if not self.ready():
            raise RuntimeError("the reading process is not ready for a batch")
        changed = electorate != self._electorate
        self._sent += 1
        self._put((self._sent, _Batch(electorate if changed else None, views,
                                      [(raw, received_at) for _, raw, received_at in messages])))
        self._electorate = electorate
        return Sent(self._sent, tuple((message_id, raw) for message_id, raw, _ in messages), views)

    def readings(self, sent: Sent) -> list[Reading | None]:
        """The readings of the batch sent, in its order (None: read it in its turn)."""
        if self._answered >= sent.serial:
            raise LookupError(f"the readings of batch {sent.serial} were dropped")
        if not self._waiting(PATIENCE_SECONDS):
            raise TimeoutError(f"no readings within {PATIENCE_SECONDS} s")
        readings = self._answer()
        self.messages_read += sum(reading is not None for reading in readings)
        return readings

    def _answer(self) -> list[Reading | None]:
        """The readings of the next batch due; a reading never goes to another batch's message."""
        serial, readings = self._take()
        if serial != self._answered + 1:
            raise EOFError(f"batch {serial} read where batch {self._answered + 1} was due")
        self._answered = serial
        return readings  # type: ignore[no-any-return]

    def _waiting(self, seconds: float) -> bool:
        """Whether it has written something, waiting up to `seconds` for it."""
        return bool(select.select([self._from], [], [], seconds)[0])

    def _put(self, value: object) -> None:
        data = memoryview(_frame(value))
        deadline = time.monotonic() + PATIENCE_SECONDS
        while data:
            if not select.select([], [self._to], [], max(0.0, deadline - time.monotonic()))[1]:
                raise TimeoutError(f"the reading process took no batch within {PATIENCE_SECONDS} s")
            data = data[os.write(self._to, data):]

    def _take(self) -> Any:
        deadline = time.monotonic() + PATIENCE_SECONDS
        (length,) = _LENGTH.unpack(self._take_bytes(_LENGTH.size, deadline))
        return pickle.loads(self._take_bytes(length, deadline))

    def _take_bytes(self, count: int, deadline: float) -> bytes:
        taken = bytearray()
        while len(taken) < count:
            if not self._waiting(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"the reading process gave no readings within {PATIENCE_SECONDS} s")
            chunk = os.read(self._from, count - len(taken))
            if not chunk:
                raise EOFError("the reading process has gone")
            taken += chunk
        return bytes(taken)

    def close(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()
        try:
            self._process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self._process.kill()  # stopped, or starved of a core
            self._process.wait()
