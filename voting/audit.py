"""The audit bundle's pure core (docs/design.md §6, docs/audit.md): build the manifest, and verify a bundle.

`build_manifest` turns what the ledger holds about a closed vote into a
`Manifest`. `audit_bundle` takes a bundle's bytes and returns one `Check` per
item, replaying the service's own functions (`verdict.judge`,
`verdict.counted_choices`, `rules.decide`, `ledger.event_hash`) on nothing but
what the bundle holds, so a verifier needs no ledger and no network.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from pydantic import ValidationError

from voting import rules
from voting.electorate import trust_of
from voting.errors import KeyMaterialError, LedgerError, UsageError, VotingError
from voting.ledger import (
    GENESIS,
    DecisionRecord,
    DraftRecord,
    Event,
    VoteRecord,
    canonical_json,
    event_hash,
    utc_text,
)
from voting.manifest import (
    FORMAT,
    MANIFEST_MEMBER,
    MESSAGES_DIRECTORY,
    SIGNATURE_MEMBER,
    ChainInfo,
    CountedEntry,
    DecryptedEntry,
    DraftEntry,
    ElectorateInfo,
    EventEntry,
    Manifest,
    MessageEntry,
    OutcomeEntry,
    VoteInfo,
    decrypted_member,
    message_member,
)
from voting.model import Choice, Electorate
from voting.pki import certificate_pem, fingerprint, load_pem_certificate
from voting.smime.decrypt import ContentKey, Decrypted
from voting.smime.entity import decrypt_message
from voting.smime.verify import Trust, TrustedCertificate, verify_detached_der
from voting.verdict import (
    BALLOT,
    CountedBallot,
    Judgement,
    PriorBallot,
    VoteView,
    counted_ballots,
    counted_choices,
    judge,
)

MAX_BUNDLE_BYTES = 2 << 30
MAX_MANIFEST_BYTES = 512 << 20
MAX_SIGNATURE_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 64 << 20
MAX_MEMBERS = 1_000_000
MAX_EXPANSION = 100
"""Members may hold at most this many times the bundle's size (plus EXPANSION_SLACK): mail and JSON deflate
by a few times, a zip bomb by thousands."""
EXPANSION_SLACK = 16 << 20
"""Limits far above any real vote, so a hostile zip (a bomb, a million members) is refused early."""

_MESSAGE_NAME = re.compile(re.escape(MESSAGES_DIRECTORY) + r"([0-9a-f]{64})\.eml")
_DECRYPTED_NAME = re.compile(re.escape(MESSAGES_DIRECTORY) + r"([0-9a-f]{64})\.decrypted\.eml")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


# ------------------------------------------------------------------ building


def _vote_view(vote: VoteInfo, drafts: Sequence[str], tokens: Mapping[str, str], *, counted: bool = True) -> VoteView:
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


def build_manifest(
    *,
    vote: VoteRecord,
    drafts: Sequence[DraftRecord],
    bound: Sequence[DecisionRecord],
    unbound: Sequence[DecisionRecord],
    tokens: Mapping[str, str],
    electorate: Electorate,
    secretariat_ca: x509.Certificate,
    events: Sequence[Event],
    exported_at: datetime,
) -> Manifest:
    """The manifest of a closed vote.

    `bound` are the decisions on messages bound to the vote; of `unbound`
    (messages bound to no vote), those the service also recorded in this vote's
    chain are listed too: those received while it was open or taking
    statements, since any of them may have been a ballot for it that failed
    before it could be bound.
    """
    if vote.closed_at is None or vote.outcome is None:
        raise UsageError(f"vote {vote.id} is still open; it can be exported once it is closed")
    closing = next((e for e in events if e.kind == "vote-closed"), None)
    if closing is None:
        raise LedgerError(f"vote {vote.id} is closed but its chain has no vote-closed event")
    info = VoteInfo(
        id=vote.id,
        title=vote.title,
        rule=vote.rule,
        opened_at=vote.opened_at,
        closes_at=vote.closes_at,
        closed_at=vote.closed_at,
        first_ballot_final=vote.first_ballot_final,
        quorum=vote.quorum,
        statement_hours=vote.statement_hours,
    )
    chained = {e.data.get("message") for e in events if e.kind == "decision"}
    listed = sorted([*bound, *(d for d in unbound if d.sha256 in chained)], key=lambda d: (d.received_at, d.message))
    sha_of = {d.message: d.sha256 for d in bound}
    choices_of = {d.sha256: d.choices for d in bound}
    counted: dict[str, dict[str, str]] = closing.data["counted"]
    return Manifest(
        format=FORMAT,
        exported_at=exported_at,
        vote=info,
        drafts=[
            DraftEntry(symbol=d.symbol, title=d.title, text=d.text, sha256=d.sha256, parties=list(d.parties_to_dispute))
            for d in drafts
        ],
        electorate=ElectorateInfo(snapshot_json=vote.electorate_json, current=electorate),
        secretariat_ca_pem=certificate_pem(secretariat_ca),
        ballot_tokens=dict(tokens),
        messages=[_message_entry(d, sha_of) for d in listed],
        counted={
            symbol: {
                code: CountedEntry(message=sha, choice=Choice(choices_of[sha][symbol])) for code, sha in codes.items()
            }
            for symbol, codes in counted.items()
        },
        outcomes={symbol: OutcomeEntry.model_validate(o) for symbol, o in vote.outcome.items()},
        chain=ChainInfo(
            events=[EventEntry(seq=e.seq, at=e.at, kind=e.kind, data=e.data, prev_hash=e.prev_hash, hash=e.hash)
                    for e in events],
            head=events[-1].hash,
        ),
    )


def with_decrypted(manifest: Manifest, opened: Mapping[str, Decrypted]) -> Manifest:
    """The manifest with each message encrypted to the secretariat naming its decrypted entity and content key.

    `opened` maps a message's SHA-256 to its opened envelope. The content key
    opens that one message only, so an auditor, who holds no private key,
    can decrypt it and check that the decrypted entity is what was sent.
    """
    def entry(message: MessageEntry) -> MessageEntry:
        found = opened.get(message.sha256)
        if found is None:
            return message
        decrypted = DecryptedEntry(sha256=hashlib.sha256(found.entity).hexdigest(), content_key=found.content_key.hex())
        return message.model_copy(update={"decrypted": decrypted})

    return manifest.model_copy(update={"messages": [entry(message) for message in manifest.messages]})


def _message_entry(decision: DecisionRecord, sha_of: Mapping[int, str]) -> MessageEntry:
    if decision.supersedes is not None and decision.supersedes not in sha_of:
        raise LedgerError(f"message {decision.sha256} supersedes message {decision.supersedes}, not of this vote")
    return MessageEntry(
        sha256=decision.sha256,
        received_at=decision.received_at,
        vote_id=decision.vote_id,
        code=decision.code,
        verdict=decision.verdict,  # type: ignore[arg-type]  # the ledger's CHECK constraint keeps it to the three
        reason=decision.reason,  # type: ignore[arg-type]  # a Reason value, validated by the model
        detail=decision.detail,
        choices=decision.choices,  # type: ignore[arg-type]
        explanation=decision.explanation,
        supersedes=sha_of[decision.supersedes] if decision.supersedes is not None else None,
    )


# ------------------------------------------------------------------ reading the zip


class _Unreadable(Exception):
    """The bundle cannot be read as one at all; nothing further can be checked."""


@dataclass(frozen=True)
class _Contents:
    manifest: bytes
    signature: bytes
    messages: dict[str, bytes]
    """SHA-256 in the member's name -> the member's bytes."""
    decrypted: dict[str, bytes]
    """SHA-256 of the encrypted message in the member's name -> its decrypted entity."""
    member_problems: tuple[str, ...]


class _Budget:
    """What the members may still expand to, so that a small bundle never takes much memory to read."""

    def __init__(self, bundle_size: int) -> None:
        self.total = min(MAX_BUNDLE_BYTES, MAX_EXPANSION * bundle_size + EXPANSION_SLACK)
        self.left = self.total

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
        """A member's bytes, never more than `limit` or the budget left, whatever the zip's headers claim."""
        if info.file_size > limit:
            raise _Unreadable(f"{info.filename} is larger than {limit} bytes")
        allowed = min(limit, self.left)
        try:
            with archive.open(info) as stream:
                data = stream.read(allowed + 1)
        except _ZIP_ERRORS as error:
            raise _Unreadable(f"{info.filename} cannot be read: {error}") from None
        if len(data) > limit:
            raise _Unreadable(f"{info.filename} is larger than {limit} bytes")
        if len(data) > allowed:
            raise _Unreadable(f"its members expand to more than {self.total} bytes, over {MAX_EXPANSION} times the"
                              " bundle's size: refused as a zip bomb")
        self.left -= len(data)
        return data


def _unpack(data: bytes) -> _Contents:
    if len(data) > MAX_BUNDLE_BYTES:
        raise _Unreadable(f"larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as error:
        raise _Unreadable(f"not a zip file ({error})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _Unreadable(f"more than {MAX_MEMBERS} members")
        names = Counter(info.filename for info in infos)
        missing = [name for name in (MANIFEST_MEMBER, SIGNATURE_MEMBER) if name not in names]
        if missing:
            raise _Unreadable(f"{' and '.join(missing)} missing from the bundle")
        problems = [f"{name} appears {count} times" for name, count in names.items() if count > 1]
        problems += [
            f"{name} is not a member a bundle holds"
            for name in names
            if name not in (MANIFEST_MEMBER, SIGNATURE_MEMBER)
            and not _MESSAGE_NAME.fullmatch(name)
            and not _DECRYPTED_NAME.fullmatch(name)
        ]
        by_name = {info.filename: info for info in infos}
        budget = _Budget(len(data))
        manifest = budget.read(archive, by_name[MANIFEST_MEMBER], MAX_MANIFEST_BYTES)
        signature = budget.read(archive, by_name[SIGNATURE_MEMBER], MAX_SIGNATURE_BYTES)
        messages: dict[str, bytes] = {}
        decrypted: dict[str, bytes] = {}
        for name, info in by_name.items():
            for pattern, into in ((_MESSAGE_NAME, messages), (_DECRYPTED_NAME, decrypted)):
                found = pattern.fullmatch(name)
                if found:
                    into[found.group(1)] = budget.read(archive, info, MAX_MESSAGE_BYTES)
    return _Contents(manifest, signature, messages, decrypted, tuple(problems))


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = len(error.errors()) - 1
    return f"{where + ': ' if where else ''}{first['msg']}" + (f" (and {more} more)" if more else "")


# ------------------------------------------------------------------ checks


def _short(sha256: str) -> str:
    return sha256[:16]


def _secretariat_checks(
    contents: _Contents, manifest: Manifest, given: x509.Certificate | None
) -> tuple[x509.Certificate | None, list[Check]]:
    """The bundle's CA, the check that it is usable, and the manifest's signature check."""
    try:
        ca: x509.Certificate | None = load_pem_certificate(manifest.secretariat_ca_pem)
    except KeyMaterialError as error:
        ca = None
        ca_check = Check("secretariat CA", False, f"secretariat_ca_pem: {error}")
    else:
        assert ca is not None
        ca_check = Check("secretariat CA", True, f"{ca.subject.rfc4514_string()} (SHA-256 {_short(fingerprint(ca))}…)")
        if given is not None and not _same_or_issued_by(given, ca):
            ca_check = Check("secretariat CA", False, "the bundle's CA is neither the --secretariat-cert nor its issuer")
    if given is not None:
        trust = Trust(registered=(TrustedCertificate(given, owner="secretariat"),), anchors=(given,))
        source = f"the --secretariat-cert {given.subject.rfc4514_string()}"
    elif ca is not None:
        trust = Trust(anchors=(ca,))
        source = "the CA carried in the bundle itself (give --secretariat-cert to check it independently)"
    else:
        return None, [Check("signature", False, "no certificate to check manifest.json.p7s against"), ca_check]
    result = verify_detached_der(contents.manifest, contents.signature, trust, manifest.exported_at)
    if result.valid and result.signer is not None:
        signature = Check(
            "signature", True, f"manifest.json signed by {result.signer.subject.rfc4514_string()}, trusted via {source}"
        )
    else:
        reason = result.reason.describe() if result.reason else "invalid"
        signature = Check("signature", False, f"manifest.json.p7s does not verify against {source}: {reason}")
    return ca, [signature, ca_check]


def _same_or_issued_by(given: x509.Certificate, ca: x509.Certificate) -> bool:
    if given == ca:
        return True
    try:
        given.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _member_check(contents: _Contents, manifest: Manifest) -> Check:
    listed = Counter(m.sha256 for m in manifest.messages)
    problems = list(contents.member_problems)
    problems += [f"message {sha} is listed {count} times" for sha, count in listed.items() if count > 1]
    problems += [f"{message_member(sha)} is in the bundle but not listed in the manifest"
                 for sha in contents.messages if sha not in listed]
    problems += [f"{message_member(sha)} is listed in the manifest but missing from the bundle"
                 for sha in listed if sha not in contents.messages]
    opened = {m.sha256 for m in manifest.messages if m.decrypted is not None}
    problems += [f"{decrypted_member(sha)} is in the bundle but the manifest lists no decryption of that message"
                 for sha in contents.decrypted if sha not in opened]
    problems += [f"{decrypted_member(sha)} is listed in the manifest but missing from the bundle"
                 for sha in opened if sha not in contents.decrypted]
    if problems:
        return Check("bundle members", False, "; ".join(problems))
    decrypted = f" ({len(opened)} decrypted)" if opened else ""
    return Check("bundle members", True, f"manifest, signature and {len(listed)} messages{decrypted}, nothing else")


def _draft_checks(manifest: Manifest) -> list[Check]:
    checks = []
    for draft in manifest.drafts:
        actual = hashlib.sha256(draft.text.encode("utf-8")).hexdigest()
        if actual == draft.sha256:
            checks.append(Check(f"draft {draft.symbol}", True, f"text matches SHA-256 {_short(actual)}…"))
        else:
            checks.append(Check(f"draft {draft.symbol}", False, f"text hashes to {actual}, not {draft.sha256}"))
    return checks


def _certificate_checks(manifest: Manifest, snapshot: Electorate | None) -> list[Check]:
    """Each certificate of the current electorate is the one its pin names; the snapshot's are among them."""
    checks = []
    current = manifest.electorate.current
    for delegation in current.delegation:
        for registered in delegation.certificates:
            name = f"certificate {delegation.code} {_short(registered.sha256)}…"
            try:
                actual = fingerprint(load_pem_certificate(registered.pem))
            except KeyMaterialError as error:
                checks.append(Check(name, False, f"pem: {error}"))
                continue
            if actual != registered.sha256:
                checks.append(Check(name, False, f"the PEM is another certificate, whose SHA-256 is {actual}"))
            else:
                revoked = f", revoked at {registered.revoked_at}" if registered.revoked else ""
                checks.append(Check(name, True, f"PEM matches its SHA-256{revoked}"))
    if snapshot is not None:
        pems = {(d.code, c.sha256): c.pem for d in current.delegation for c in d.certificates}
        differing = [
            f"{d.code} {_short(c.sha256)}…"
            for d in snapshot.delegation
            for c in d.certificates
            if pems.get((d.code, c.sha256)) != c.pem
        ]
        if differing:
            checks.append(Check("electorate certificates", False,
                                f"certificates of the snapshot missing or different now: {', '.join(differing)}"))
        else:
            checks.append(Check("electorate certificates", True,
                                "every certificate of the snapshot is in the current electorate, unchanged"))
    return checks


def _message_hash_checks(contents: _Contents, manifest: Manifest) -> list[Check]:
    checks = []
    for entry in manifest.messages:
        name = f"message {_short(entry.sha256)}… SHA-256"
        raw = contents.messages.get(entry.sha256)
        if raw is None:
            checks.append(Check(name, False, f"{message_member(entry.sha256)} is missing from the bundle"))
            continue
        actual = hashlib.sha256(raw).hexdigest()
        if actual != entry.sha256:
            checks.append(Check(name, False, f"{message_member(entry.sha256)} was changed: its SHA-256 is {actual}"))
        else:
            checks.append(Check(name, True, f"{len(raw)} bytes match the file name and the manifest"))
    return checks


def _decrypted_checks(contents: _Contents, manifest: Manifest) -> list[Check]:
    """Each decrypted entity hashes as listed and is what the message's content key decrypts it to."""
    checks = []
    for entry in manifest.messages:
        if entry.decrypted is None:
            continue
        name = f"message {_short(entry.sha256)}… decrypted"
        entity = contents.decrypted.get(entry.sha256)
        raw = contents.messages.get(entry.sha256)
        if entity is None or raw is None:
            checks.append(Check(name, False, "the message or its decrypted entity is missing from the bundle"))
            continue
        actual = hashlib.sha256(entity).hexdigest()
        opened = decrypt_message(raw, ContentKey(bytes.fromhex(entry.decrypted.content_key)))
        if actual != entry.decrypted.sha256:
            checks.append(Check(name, False, f"{decrypted_member(entry.sha256)} was changed: its SHA-256 is {actual}"))
        elif opened is None or opened.entity != entity:
            checks.append(Check(name, False, f"the content key does not decrypt the message to "
                                             f"{decrypted_member(entry.sha256)}"))
        else:
            checks.append(Check(name, True, f"the content key decrypts the message to the {len(entity)} bytes "
                                            "of its decrypted entity"))
    return checks


def _facts(decided: MessageEntry | Judgement, supersedes: str | None) -> dict[str, Any]:
    """What a verdict says, alike for one recorded in the manifest and one replayed, to compare them."""
    return {
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


def _verdict_checks(
    contents: _Contents, manifest: Manifest, ca: x509.Certificate | None, progress: Progress | None
) -> list[Check]:
    """Replay `judge` over every message in the order received, as the service decided them.

    A message decided after the vote-closed event in the chain was judged
    against a vote already counted, whatever its date, and is replayed so.
    """
    drafts = [d.symbol for d in manifest.drafts]
    before_count = _vote_view(manifest.vote, drafts, manifest.ballot_tokens, counted=False)
    after_count = _vote_view(manifest.vote, drafts, manifest.ballot_tokens)
    decided_after_count = _decided_after_count(manifest)
    anchors = (ca,) if ca is not None else ()
    previous: dict[tuple[str, str], list[PriorBallot]] = {}
    checks = []
    for index, entry in enumerate(manifest.messages):
        view = after_count if entry.sha256 in decided_after_count else before_count
        judgement, check = _replay(contents.messages.get(entry.sha256), entry, view, anchors, manifest, previous)
        if judgement is not None and judgement.verdict == BALLOT and judgement.vote_id and judgement.code:
            previous.setdefault((judgement.vote_id, judgement.code), []).append(
                PriorBallot(index, judgement.signed_sha256 or "", frozenset(judgement.choices))
            )
        checks.append(check)
        if progress is not None:
            progress(index + 1, len(manifest.messages))
    return checks


def _replay(
    raw: bytes | None,
    entry: MessageEntry,
    view: VoteView,
    anchors: tuple[x509.Certificate, ...],
    manifest: Manifest,
    previous: Mapping[tuple[str, str], Sequence[PriorBallot]],
) -> tuple[Judgement | None, Check]:
    name = f"message {_short(entry.sha256)}… verdict"
    if raw is None:
        return None, Check(name, False, "cannot be replayed: the message's bytes are missing")
    try:
        trust = trust_of(manifest.electorate.current, anchors, entry.received_at)
        key = ContentKey(bytes.fromhex(entry.decrypted.content_key)) if entry.decrypted is not None else None
        judgement = judge(raw, entry.received_at, {view.id: view}, trust, previous, key)
    except Exception as error:  # noqa: BLE001 - a hostile bundle must end in a failed check, not a traceback
        return None, Check(name, False, f"cannot be replayed: {type(error).__name__}: {error}")
    recorded = _facts(entry, entry.supersedes)
    replayed = _facts(judgement, None if judgement.supersedes is None
                      else manifest.messages[judgement.supersedes].sha256)
    differing = [key for key in recorded if recorded[key] != replayed[key]]
    if differing:
        return judgement, Check(name, False, f"recorded {_summary(recorded)}; replay gives {_summary(replayed)} "
                                             f"(differs in {', '.join(differing)})")
    return judgement, Check(name, True, _summary(recorded))


def _counted_checks(manifest: Manifest) -> tuple[dict[str, dict[str, Choice]], list[Check]]:
    """The counted ballot per delegation and draft, recomputed from the verified ballots."""
    view = _vote_view(manifest.vote, [d.symbol for d in manifest.drafts], manifest.ballot_tokens)
    ballots = [
        (m.code, CountedBallot(m.sha256, m.received_at, m.choices, index))
        for index, m in enumerate(manifest.messages)
        if m.verdict == BALLOT and m.vote_id == view.id and m.code and m.received_at < view.deadline
    ]
    latest_of = counted_ballots(ballots, view.drafts)
    expected = counted_choices(ballots, view.drafts)
    checks = []
    for symbol in sorted(set(view.drafts) | set(manifest.counted)):
        recorded = manifest.counted.get(symbol, {})
        should = expected.get(symbol)
        if should is None:
            checks.append(Check(f"counted {symbol}", False, f"{symbol} is not a draft of this vote"))
            continue
        problems = []
        for code in sorted(set(should) | set(recorded)):
            entry = recorded.get(code)
            if entry is None:
                problems.append(f"{code}'s ballot ({should[code]}) is not counted")
                continue
            latest = latest_of[symbol].get(code)
            if latest is None:
                problems.append(f"{code} is counted ({entry.choice}) but sent no valid ballot on time for it")
                continue
            if entry.message != latest.message or entry.choice != should[code]:
                problems.append(f"{code} is counted {entry.choice} from message {_short(entry.message)}…, but its "
                                f"last valid ballot on time is {_short(latest.message)}… ({should[code]})")
        if problems:
            checks.append(Check(f"counted {symbol}", False, "; ".join(problems)))
        else:
            tally = Counter(str(choice) for choice in should.values())
            checks.append(Check(f"counted {symbol}", True, f"{len(should)} ballots counted: "
                                + ", ".join(f"{n} {c}" for c, n in sorted(tally.items()))))
    return expected, checks


def _outcome_checks(manifest: Manifest, snapshot: Electorate | None, counted: Mapping[str, Mapping[str, Choice]]
                    ) -> list[Check]:
    checks = []
    for draft in manifest.drafts:
        name = f"outcome {draft.symbol}"
        recorded = manifest.outcomes.get(draft.symbol)
        if recorded is None:
            checks.append(Check(name, False, "the manifest records no outcome for this draft"))
            continue
        if snapshot is None:
            checks.append(Check(name, False, "cannot be decided: the electorate snapshot is unreadable"))
            continue
        try:
            outcome = rules.decide(manifest.vote.rule, snapshot, counted.get(draft.symbol, {}),
                                   quorum=manifest.vote.quorum, parties_to_dispute=draft.parties)
        except VotingError as error:
            checks.append(Check(name, False, f"cannot be decided under {manifest.vote.rule}: {error}"))
            continue
        if outcome.as_dict() == recorded.model_dump():
            checks.append(Check(name, True, outcome.reason))
        else:
            checks.append(Check(name, False, f"recorded {'adopted' if recorded.adopted else 'not adopted'} "
                                             f"{recorded.yes}-{recorded.no}-{recorded.abstain}; the rule "
                                             f"{manifest.vote.rule} gives: {outcome.reason}"))
    extra = sorted(set(manifest.outcomes) - {d.symbol for d in manifest.drafts})
    if extra:
        checks.append(Check("outcomes", False, f"outcomes recorded for drafts not voted on: {', '.join(extra)}"))
    return checks


def _snapshot(manifest: Manifest) -> tuple[Electorate | None, Check]:
    try:
        snapshot = Electorate.model_validate_json(manifest.electorate.snapshot_json)
    except ValidationError as error:
        return None, Check("electorate snapshot", False, f"snapshot_json: {_first_problem(error)}")
    opened = _event(manifest, "vote-opened")
    recorded = opened.data.get("electorate_sha256") if opened else None
    actual = hashlib.sha256(manifest.electorate.snapshot_json.encode("utf-8")).hexdigest()
    if recorded != actual:
        return snapshot, Check("electorate snapshot", False,
                               f"the snapshot hashes to {actual}, but the vote-opened event records {recorded}")
    return snapshot, Check("electorate snapshot", True,
                           f"{len(snapshot.delegation)} delegations, as recorded when the vote opened")


def _decided_after_count(manifest: Manifest) -> set[str]:
    """SHA-256 of the messages whose decision follows the vote-closed event in the chain."""
    closing = _event(manifest, "vote-closed")
    return {
        str(e.data.get("message")) for e in manifest.chain.events
        if closing is not None and e.seq > closing.seq and e.kind == "decision"
    }


def _event(manifest: Manifest, kind: str) -> EventEntry | None:
    return next((e for e in manifest.chain.events if e.kind == kind), None)


def _chain_check(manifest: Manifest) -> Check:
    previous = GENESIS
    for expected_seq, event in enumerate(manifest.chain.events, start=1):
        where = f"event {event.seq} ({event.kind})"
        if event.seq != expected_seq:
            return Check("hash chain", False, f"event {expected_seq} is missing: the chain goes on with {where}")
        if event.prev_hash != previous:
            return Check("hash chain", False, f"{where} does not link to the event before it")
        if event_hash(previous, event.seq, event.at, event.kind, canonical_json(event.data)) != event.hash:
            return Check("hash chain", False, f"{where} was changed: its hash does not match its content")
        previous = event.hash
    if previous != manifest.chain.head:
        return Check("hash chain", False, f"the head {manifest.chain.head} is not the last event's hash {previous}")
    return Check("hash chain", True, f"{len(manifest.chain.events)} events link from genesis to head {previous}")


def _parameter_check(manifest: Manifest) -> Check:
    """The vote as the manifest states it is the vote as the chain recorded it."""
    opened = _event(manifest, "vote-opened")
    if opened is None:
        return Check("vote parameters", False, "the chain has no vote-opened event")
    vote = manifest.vote
    data = opened.data
    closes_at = data.get("closes_at")
    for event in manifest.chain.events:
        if event.kind == "deadline-moved":
            closes_at = event.data.get("to")
    stated = {
        "opened_at": utc_text(vote.opened_at),
        "title": vote.title,
        "rule": vote.rule,
        "closes_at": utc_text(vote.closes_at),
        "first_ballot_final": vote.first_ballot_final,
        "quorum": vote.quorum,
        "drafts": [{"symbol": d.symbol, "sha256": d.sha256, "parties": d.parties} for d in manifest.drafts],
    }
    chained = {**{key: data.get(key) for key in stated}, "opened_at": opened.at, "closes_at": closes_at}
    differing = [key for key in stated if stated[key] != chained[key]]
    if differing:
        return Check("vote parameters", False, "the manifest differs from the chain in "
                     + ", ".join(f"{key} ({stated[key]!r}, chain {chained[key]!r})" for key in differing))
    return Check("vote parameters", True, f"{vote.rule}, closes {stated['closes_at']}, as the chain records")


def _token_check(manifest: Manifest) -> Check:
    opened = _event(manifest, "vote-opened")
    recorded = opened.data.get("ballot_tokens_sha256") if opened else None
    hashed = {code: hashlib.sha256(token.encode()).hexdigest() for code, token in manifest.ballot_tokens.items()}
    if not isinstance(recorded, dict) or hashed != recorded:
        recorded = recorded if isinstance(recorded, dict) else {}
        wrong = sorted(code for code in set(hashed) | set(recorded) if hashed.get(code) != recorded.get(code))
        return Check("ballot tokens", False, f"tokens not as hashed when the vote opened: {', '.join(wrong) or 'none'}")
    return Check("ballot tokens", True, f"{len(hashed)} tokens hash to the vote-opened event's values")


def _decision_check(manifest: Manifest) -> Check:
    """Every message listed has its decision event in the vote's chain, and the chain records no other.

    Messages bound to no vote are in the chain too, so none can be left out of
    the bundle unnoticed.
    """
    events = {e.data.get("message"): e.data for e in manifest.chain.events if e.kind == "decision"}
    listed_messages = manifest.messages
    problems = []
    for entry in listed_messages:
        expected = {
            "message": entry.sha256,
            "received_at": utc_text(entry.received_at),
            "code": entry.code,
            "verdict": entry.verdict,
            "reason": entry.reason.value if entry.reason else None,
            "choices": {symbol: str(choice) for symbol, choice in entry.choices.items()},
            "supersedes": entry.supersedes,
        }
        recorded = events.get(entry.sha256)
        if recorded is None:
            problems.append(f"message {_short(entry.sha256)}… has no decision event in the chain")
        elif recorded != expected:
            differing = sorted(key for key in expected if expected[key] != recorded.get(key))
            problems.append(f"message {_short(entry.sha256)}… differs from its decision event in {', '.join(differing)}")
    listed = {m.sha256 for m in listed_messages}
    problems += [f"the chain records a decision on message {_short(str(sha))}…, which the manifest does not list"
                 for sha in events if sha not in listed]
    if problems:
        return Check("decisions", False, "; ".join(problems))
    return Check("decisions", True, f"{len(listed_messages)} messages match the chain's decision events one to one")


def _closing_check(manifest: Manifest) -> Check:
    closing = _event(manifest, "vote-closed")
    if closing is None:
        return Check("closing", False, "the chain has no vote-closed event")
    stated = {
        "closed_at": utc_text(manifest.vote.closed_at),
        "outcomes": {symbol: o.model_dump() for symbol, o in manifest.outcomes.items()},
        "counted": {symbol: {code: e.message for code, e in codes.items()} for symbol, codes in manifest.counted.items()},
    }
    differing = [key for key in stated if stated[key] != closing.data.get(key)]
    if differing:
        return Check("closing", False, f"the manifest's {', '.join(differing)} differ from the vote-closed event")
    return Check("closing", True, f"closed at {stated['closed_at']}, outcomes and counted ballots as the chain records")


def audit_bundle(
    data: bytes, secretariat_ca: x509.Certificate | None = None, progress: Progress | None = None
) -> list[Check]:
    """Every check of docs/audit.md on a bundle's bytes; a bundle that cannot be read gives one failed check."""
    try:
        contents = _unpack(data)
    except _Unreadable as error:
        return [Check("bundle", False, f"not a readable audit bundle: {error}")]
    checks = [Check("bundle", True, f"zip with {len(contents.messages)} messages")]
    try:
        manifest = Manifest.model_validate_json(contents.manifest)
    except ValidationError as error:
        return [*checks, Check("manifest", False, f"manifest.json is not a {FORMAT} manifest: {_first_problem(error)}")]
    checks.append(Check("manifest", True, f"{FORMAT}, vote {manifest.vote.id}, {len(manifest.messages)} messages"))
    ca, secretariat = _secretariat_checks(contents, manifest, secretariat_ca)
    snapshot, snapshot_check = _snapshot(manifest)
    counted, counted_checks = _counted_checks(manifest)
    return [
        *checks,
        *secretariat,
        _member_check(contents, manifest),
        _chain_check(manifest),
        _parameter_check(manifest),
        snapshot_check,
        _token_check(manifest),
        *_draft_checks(manifest),
        *_certificate_checks(manifest, snapshot),
        *_message_hash_checks(contents, manifest),
        *_decrypted_checks(contents, manifest),
        *_verdict_checks(contents, manifest, ca, progress),
        _decision_check(manifest),
        *counted_checks,
        *_outcome_checks(manifest, snapshot, counted),
        _closing_check(manifest),
    ]


# ------------------------------------------------------------------ reporting


def render_checks(checks: Sequence[Check]) -> list[str]:
    """One line per check, then the verdict line `voting audit` ends with."""
    lines = [f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}" for check in checks]
    failed = sum(not check.ok for check in checks)
    lines.append(f"all {len(checks)} checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    return lines


def checks_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The `voting audit --json` document."""
    failed = sum(not check.ok for check in checks)
    return {
        "valid": failed == 0,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "passed": len(checks) - failed,
        "failed": failed,
    }
