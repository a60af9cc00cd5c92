"""Every message judged again by the service's own `verdict.judge`, in the order the service decided them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from voting.audit.chain import first_event
from voting.audit.checks import Check, Progress, short
from voting.audit.reading import Contents
from voting.electorate import trust_of
from voting.manifest import Manifest, MessageEntry, VoteInfo
from voting.smime.decrypt import ContentKey
from voting.verdict import BALLOT, Judgement, PriorBallot, VoteView, judge


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


def verdict_checks(
    contents: Contents, manifest: Manifest, ca: x509.Certificate | None, progress: Progress | None
) -> list[Check]:
    """Replay `judge` over every message in the order received, as the service decided them.

    A message decided after the vote-closed event in the chain was judged
    against a vote already counted, whatever its date, and is replayed so.
    """
    drafts = [d.symbol for d in manifest.drafts]
    before_count = vote_view(manifest.vote, drafts, manifest.ballot_tokens, counted=False)
    after_count = vote_view(manifest.vote, drafts, manifest.ballot_tokens)
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
    name = f"message {short(entry.sha256)}… verdict"
    if raw is None:
        return None, Check(name, False, "cannot be replayed: the message's bytes are missing")
    try:
        trust = trust_of(manifest.electorate.current, anchors, entry.received_at)
        key = ContentKey(bytes.fromhex(entry.decrypted.content_key)) if entry.decrypted is not None else None
        judgement = judge(raw, entry.received_at, {view.id: view}, trust, previous, key)
    except Exception as error:  # noqa: BLE001 - a hostile bundle must end in a failed check, not a traceback
        return None, Check(name, False, f"cannot be replayed: {type(error).__name__}: {error}")
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
