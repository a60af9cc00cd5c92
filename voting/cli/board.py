"""What the secretariat reads of a vote while it runs: `voting status`, its --watch board, `voting check`."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from voting.cli.common import emit, service_of
from voting.errors import UsageError
from voting.times import readable_time, time_left


def deadline_text(is_open: bool, closes_at: datetime, closed_at: datetime | None, seconds_left: int,
                  zone: str | None) -> str:
    """When the vote closes and how long is left, or when it closed, as people read it."""
    if not is_open:
        return f"closed {readable_time(closed_at or closes_at, [zone])}"
    left = f"{time_left(seconds_left)} left" if seconds_left else "deadline passed, counted at the service's next pass"
    return f"closes {readable_time(closes_at, [zone])} ({left})"


def status_text(status: dict[str, Any], zone: str | None) -> str:
    """`voting status` for one vote: who has voted, who has not yet (absent, once closed), rejections, the outbox."""
    from voting.model import Outcome
    from voting.record import ABSENT, NOT_YET_VOTED, outcome_line

    def when(text: str) -> str:
        return readable_time(datetime.fromisoformat(text), [zone])

    damaged = [f"LEDGER DAMAGED, not to be trusted: {line}" for line in status["damaged"]]
    if status["state"] == "unreadable":
        return "\n".join([*damaged, f"vote {status['vote']} cannot be shown: the ledger's rows of it are damaged"])
    is_open = status["state"] == "open"
    closed_at = datetime.fromisoformat(status["closed_at"]) if status["closed_at"] else None
    lines = damaged + [
        f"{status['title']} [{status['vote']}]  rule {status['rule']}  {status['state'].upper()}",
        deadline_text(is_open, datetime.fromisoformat(status["closes_at"]), closed_at, status["seconds_left"], zone),
        f"voted ({len(status['voted'])}): "
        + (", ".join(f"{code} {' '.join(f'{s}={c}' for s, c in choices.items())}" for code, choices in status["voted"].items()) or "-"),
        f"{NOT_YET_VOTED if is_open else ABSENT} ({len(status['not_voted'])}): {', '.join(status['not_voted']) or '-'}",
    ]
    if status["rejected"]:
        lines.append(f"rejected ({len(status['rejected'])}):")
        lines.extend(f"  {when(r['received_at'])} {r['code'] or 'unknown sender'}: {r['reason']}" for r in status["rejected"])
    if status["outcome"]:
        lines.extend(outcome_line(symbol, Outcome.from_dict(o)) for symbol, o in status["outcome"].items())
    outbox = status["outbox"]
    lines.append(f"outbox: {outbox['queued']} queued, {outbox['sent']} sent, {outbox['failed']} failed")
    lines.extend(f"  retrying: {r['message_id']} after {r['attempts']} attempts: {r['error']}"
                 for r in status.get("outbox_retrying", []))
    lines.extend(f"  failed: {f['message_id']} to {', '.join(f['recipients'])}: {f['error']}" for f in status["outbox_failures"])
    if status.get("mailbox"):
        lines.append(mailbox_text(status["mailbox"], when))
    if status["storage"]["full"]:
        lines.append(f"storage: FULL, {status['storage']['free_bytes']} bytes free at {status['storage']['where']}:"
                     " mail is refused (451) and nothing is recorded until space is freed; the service then resumes")
    return "\n".join(lines)


def mailbox_text(mailbox: dict[str, Any], when: Callable[[str], str]) -> str:
    if mailbox["connection"] == "local":
        return f"mailbox: {mailbox['mailbox']} (local Maildir), {mailbox['waiting']} messages waiting to be taken in"
    line = f"mailbox: {mailbox['mailbox']} {mailbox['connection']}"
    if mailbox["since"]:
        line += f" since {when(mailbox['since'])}"
    line += f", last fetch {when(mailbox['last_fetch_at']) if mailbox['last_fetch_at'] else 'never'}"
    if mailbox["last_fetch_at"]:
        line += f" ({mailbox['last_fetch_new']} new)"
    if mailbox["last_error"]:
        line += f"\n  last error at {when(mailbox['last_error_at'])}: {mailbox['last_error']}"
    return line


WATCH_SECONDS = 2.0
"""How often `voting status --watch` redraws: a ballot the service has taken in shows within this."""


CLEAR_SCREEN = "\033[H\033[2J"


def cmd_status(args: argparse.Namespace) -> int:
    service = service_of(args)
    zone = service.config.settings.secretariat.timezone

    def board() -> tuple[list[dict[str, Any]], str]:
        votes = [args.vote] if args.vote else service.ledger.vote_ids()
        statuses = [service.status(vote_id) for vote_id in votes]
        return statuses, "\n\n".join(status_text(s, zone) for s in statuses) or "No votes yet."

    if args.watch:
        if args.json:
            raise UsageError("--watch redraws a board on the terminal; for JSON, run voting status without --watch")
        if sys.stdout.isatty():
            return watch(board)
        print("voting: --watch redraws only on a terminal; the status is printed once", file=sys.stderr)
    statuses, text = board()
    emit(args, statuses[0] if args.vote else statuses, text)
    return 1 if any(s["damaged"] for s in statuses) else 0


def watch(board: Callable[[], tuple[Any, str]]) -> int:
    """Redraw the board every WATCH_SECONDS until Ctrl-C, which ends it normally."""
    try:
        while True:
            now = readable_time(datetime.now(UTC).replace(microsecond=0))
            sys.stdout.write(f"{CLEAR_SCREEN}voting status at {now}; Ctrl-C to stop\n\n{board()[1]}\n")
            sys.stdout.flush()
            time.sleep(WATCH_SECONDS)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        return 0


def cmd_check(args: argparse.Namespace) -> int:
    from voting.integrity import ledger_damage

    service = service_of(args)
    ledger = service.ledger
    votes = ledger.vote_ids()
    if args.vote:
        if args.vote not in votes:
            raise UsageError(f"no vote {args.vote!r} in {ledger.path}")
        votes = [args.vote]
    decryption, unread = service.decryption()
    damage = ledger_damage(ledger, votes, every_message=not args.vote, decryption=decryption)
    checked = (f"vote {args.vote}, its chain" if args.vote else
               f"{len(votes)} vote, its chain" if len(votes) == 1 else f"{len(votes)} votes, their chains")
    text = "\n".join(f"DAMAGED: {line}" for line in damage) if damage else (
        f"intact: {checked}, decisions, explanations and raw messages"
        + ("" if args.vote else ", and every message in the ledger"))
    emit(args, {"votes": votes, "damaged": damage, "unchecked": unread},
         text + (f"\nNOT CHECKED: {unread}" if unread else ""))
    return 1 if damage else 0
