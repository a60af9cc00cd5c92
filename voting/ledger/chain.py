"""What the hash chain is made of: the ledger's text of instants and of JSON, the link hash, and what a decision
event records; pure functions, which `voting check` and `voting audit` apply as the ledger does when it writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from voting.errors import LedgerError

GENESIS = "0" * 64


def utc_text(moment: datetime) -> str:
    """The one text form of instants in the ledger: ISO 8601, UTC, microseconds, 'Z'.

    Written by `isoformat`, in half the time of `strftime`: a check of a
    large vote writes one for each decision.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_json_string = json.encoder.encode_basestring
"""How `canonical_json` writes a string (`ensure_ascii=False`), taken from the json module itself."""

_json_decoder = json.JSONDecoder()


def stored_json(text: str) -> Any:
    """A JSON text as the ledger writes it (`canonical_json`: nothing around the value), decoded.

    A check of a large vote decodes two texts per decision; `json.loads`
    looking for space around each cost a third of decoding it.
    """
    value, end = _json_decoder.raw_decode(text)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def stored_text(value: object) -> str:
    """A value of a text column, which one who rewrites the ledger could have left as bytes: refused inside
    `decoding`, which names the row. The value itself is not shown: it may be a ballot token, secret until the
    vote is closed, on a board the room can see."""
    if type(value) is not str:
        raise TypeError(f"{type(value).__name__} where a text was")
    return value


@contextmanager
def decoding(what: str) -> Iterator[None]:
    """A stored value that no longer decodes (JSON, a time), or is no longer text at all, is a damaged row: named in
    one line, not a traceback."""
    try:
        yield
    except (ValueError, TypeError) as error:
        raise LedgerError(f"{what}: a value stored in the ledger no longer reads, damaged ({error})") from None


def event_hash(prev_hash: str, seq: int, at: str, kind: str, data_json: str) -> str:
    """Link of the hash chain, over `canonical_json([prev_hash, seq, at, kind, data])` where `data_json` is
    `canonical_json(data)`; `voting audit` recomputes it with this same function.

    The list is written out here as `canonical_json` writes it: a check of a
    long chain computes this once per event, and the json module's generic
    walk cost three times the hash.
    """
    material = f"[{_json_string(prev_hash)},{seq},{_json_string(at)},{_json_string(kind)},{data_json}]"
    return hashlib.sha256(material.encode()).hexdigest()


def decision_event_data(sha256: str, received_at: datetime, code: str | None, verdict: str, reason: str | None,
                        choices: dict[str, str], supersedes: str | None, explanation: str,
                        signed_sha256: str | None) -> dict[str, Any]:
    """What the chain records of a decision; `voting check` and `voting audit` compare each decision with it.

    The explanation is chained by its SHA-256 and a counted ballot by that of
    its signed attributes, so that the ledger checks both against the chain
    without reading the signed message again. An explanation that is no
    longer text (a damaged row) has none, which no event records.
    """
    return {
        "message": sha256,
        "received_at": utc_text(received_at),
        "code": code,
        "verdict": verdict,
        "reason": reason,
        "choices": choices,
        "supersedes": supersedes,
        "explanation_sha256": hashlib.sha256(explanation.encode()).hexdigest() if type(explanation) is str else None,
        "signed_sha256": signed_sha256,
    }


def decision_event_json(sha256: str, received_text: str, code: str | None, verdict: str, reason: str | None,
                        choices_json: str, supersedes: str | None, explanation: str, signed_sha256: str | None) -> str:
    """`canonical_json(decision_event_data(...))`, the text the chain stores of a decision, written from the
    decision row as stored: its receipt time as `utc_text` wrote it and its choices as `canonical_json` did.

    Written out here as `canonical_json` writes it (its keys in sorted
    order), in a third of the time: a check of a large vote writes it for
    each decision and compares it with the event's stored text, without
    decoding that text. A row stored otherwise (damaged, or by an earlier
    version) gives a text no event holds; the check then compares its values.
    """
    explanation_sha256 = hashlib.sha256(explanation.encode()).hexdigest()
    return (f'{{"choices":{choices_json},'
            f'"code":{"null" if code is None else _json_string(code)},'
            f'"explanation_sha256":"{explanation_sha256}","message":{_json_string(sha256)},'
            f'"reason":{"null" if reason is None else _json_string(reason)},'
            f'"received_at":{_json_string(received_text)},'
            f'"signed_sha256":{"null" if signed_sha256 is None else _json_string(signed_sha256)},'
            f'"supersedes":{"null" if supersedes is None else _json_string(supersedes)},'
            f'"verdict":{_json_string(verdict)}}}')


CHAINED_LATER = frozenset({"explanation_sha256", "signed_sha256"})
"""What decision events recorded by earlier versions do not hold; for those, the explanation and the signed
attributes are checked against the signed message instead."""


def decision_differences(expected: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """The keys in which a decision differs from its chain event, of those its event was recorded with."""
    if expected == recorded:  # as nearly every decision is: one comparison instead of one per key
        return []
    return sorted(key for key in expected if expected[key] != recorded.get(key)
                  and (key in recorded or key not in CHAINED_LATER))


class Event(NamedTuple):
    """One link of a chain, as stored.

    A named tuple rather than a frozen dataclass, and its data decoded only
    when asked for: a check builds one per event, and compares a decision's
    event with its row by the stored text.
    """

    chain: str
    seq: int
    at: str
    kind: str
    prev_hash: str
    hash: str
    data_json: str
    """`data` as stored and hashed: `canonical_json(data)` when it was written."""

    @property
    def data(self) -> dict[str, Any]:
        """`data_json` decoded, anew at each access: where it is read more than once, read it once.

        Every event's data is a JSON object; any other JSON value is a
        damaged event, named here rather than found by what reads a key of it.
        """
        with decoding(f"the chain {self.chain!r}"):
            data = stored_json(self.data_json)
            if type(data) is not dict:
                raise ValueError(f"the data of event {self.seq} ({self.kind}) is not a JSON object")
            return data
