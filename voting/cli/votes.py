"""The secretariat's commands that run a vote: open it, run the service, close it, move its deadline, tally."""

from __future__ import annotations

import argparse
import json
import signal
import sqlite3
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TYPE_CHECKING

from voting.cli.board import deadline_text, status_text
from voting.cli.common import config_of, confirmed, emit, read_input, service_of
from voting.errors import LedgerError, StorageError, UsageError

if TYPE_CHECKING:
    from voting.config import Config


def cmd_open(args: argparse.Namespace) -> int:
    from voting.service import DraftFile

    files: list[tuple[str, Path]] = []
    for item in args.draft:
        symbol, separator, path = item.partition("=")
        if not separator or not symbol or not path:
            raise UsageError(f"--draft {item!r}: write SYMBOL=FILE, e.g. S/2020/654=draft.txt")
        files.append((symbol.strip(), Path(path)))
    symbols = [symbol for symbol, _ in files]
    draft_titles: dict[str, str] = {}
    vote_titles: list[str] = []
    for item in args.title:
        symbol, separator, title = item.partition("=")
        if separator and symbol.strip() in symbols:
            draft_titles[symbol.strip()] = title
        else:
            vote_titles.append(item)
    if len(vote_titles) > 1:
        raise UsageError(f"--title is given twice for the vote ({' / '.join(vote_titles)}); a draft's title is"
                         " written --title SYMBOL=TITLE")
    drafts = [DraftFile(symbol, path, draft_titles.get(symbol)) for symbol, path in files]
    parties: dict[str, list[str]] = {}
    for item in args.party:
        symbol, separator, code = item.partition("=")
        if not separator:
            raise UsageError(f"--party {item!r}: write SYMBOL=CODE")
        parties.setdefault(symbol, []).append(code)
    sponsors: dict[str, list[str]] = {}
    for item in args.sponsor:
        symbol, separator, who = item.partition("=")
        if not separator or not symbol.strip() or not who.strip():
            raise UsageError(f"--sponsor {item!r}: write SYMBOL=WHO[,WHO...], e.g. S/2020/654=BEL,DEU")
        sponsors.setdefault(symbol.strip(), []).extend(who.split(","))
    service = service_of(args)
    vote_id = service.open_vote(
        drafts, rule=args.rule, closes_at=args.closes, title=next(iter(vote_titles), ", ".join(symbols)),
        first_ballot_final=args.first_ballot_final, quorum=args.quorum, parties_to_dispute=parties,
        sponsors=sponsors, vote_id=args.id, observers=args.observer, allow_missing=args.allow_missing,
    )
    sent, failed = send_now(service)
    queued = service.ledger.outbox("queued")
    why = f" ({queued[0].last_error}; `voting serve` keeps retrying)" if queued else ""
    emit(
        args,
        {"vote": vote_id, "ballots_sent": sent, "ballots_queued": failed},
        f"Opened vote {vote_id}: {sent} ballots sent" + (f", {failed} queued for retry{why}" if failed else ""),
    )
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    service = service_of(args)
    message_id = service.resend(args.vote, args.code)
    sent, _ = send_now(service)
    emit(args, {"vote": args.vote, "code": args.code, "message_id": message_id, "sent": bool(sent)},
         f"Ballot of {args.code} in vote {args.vote} " + ("sent again" if sent else "queued to be sent again")
         + ", with the same token")
    return 0


def send_now(service: Any) -> tuple[int, int]:
    """Drain the outbox now, through the embedded mail server when no `voting serve` runs it."""
    from voting.service import embedded_server

    with embedded_server(service.config, required=False):
        return service.send()  # type: ignore[no-any-return]


def report_text(report: Any, service: Any) -> str:
    """What one pass did, and the outcome of each draft of a vote it closed."""
    from voting.model import Outcome
    from voting.record import outcome_line

    lines = [f"fetched {report.fetched}, decided {len(report.judgements)}, reminded {report.reminded},"
             f" closed {len(report.closed)}, sent {report.sent}, send failures {report.failed}"]
    for vote_id in report.closed:
        lines.append(f"closed vote {vote_id}")
        lines.extend(f"  {outcome_line(symbol, Outcome.from_dict(outcome))}"
                     for symbol, outcome in (service.ledger.vote(vote_id).outcome or {}).items())
    return "\n".join(lines)


def report_json(report: Any) -> dict[str, Any]:
    return {
        "fetched": report.fetched,
        "decisions": [
            {"vote": j.vote_id, "code": j.code, "verdict": j.verdict, "reason": j.reason.value if j.reason else None}
            for j in report.judgements
        ],
        "reminded": report.reminded,
        "closed": report.closed,
        "sent": report.sent,
        "send_failures": report.failed,
        "mailbox_read": report.mailbox_read,
    }


def cmd_poll(args: argparse.Namespace) -> int:
    from voting.service import embedded_server

    service = service_of(args)
    with embedded_server(service.config, required=False):
        report = service.poll_once()
    emit(args, report_json(report), report_text(report, service))
    if not report.mailbox_read:
        print("voting: the mailbox could not be read; votes past their deadline stay open (see voting status)",
              file=sys.stderr)
        return 1
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from voting.service import Service, embedded_server

    service = Service(config_of(args))  # its stamped lines on stderr are what serve shows, --json or not
    stop, delivered = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with embedded_server(service.config, required=True, delivered=delivered.set) as server:
        if server is not None:
            service.log(f"embedded mail server on {server.host}:{server.port}")
        service.log(f"watching {watched(service.config)}; stop with Ctrl-C")
        trouble = ""
        try:
            while not stop.is_set():
                try:
                    report = service.poll_once()
                except (StorageError, LedgerError, sqlite3.OperationalError) as error:
                    # A full disk, a ledger locked too long, or a damaged row (which voting check names): nothing of
                    # the pass was committed past what it took in; the next pass tries again.
                    if str(error) != trouble:
                        service.log(f"the pass stopped, and is tried again: {error}")
                    trouble = str(error)
                else:
                    if trouble:
                        service.log("the ledger takes writes again; the service goes on")
                    trouble = ""
                    if report.fetched or report.closed or report.sent or report.failed:
                        service.log(report_text(report, service))
                service.wait_for_mail(min(service.config.settings.service.poll_seconds, 2.0) if server else
                                      service.config.settings.service.poll_seconds, stop, delivered)
        except KeyboardInterrupt:
            pass
        finally:
            service.close_mailbox()
    return 0


def watched(config: Config) -> str:
    """The mailbox `voting serve` watches, as the operator knows it; never with a password."""
    from voting.mail.imap import mailbox_label

    mailbox = config.settings.mailbox
    if mailbox.kind == "imap":
        return f"{mailbox_label(mailbox.username, mailbox.host, mailbox.port, mailbox.folder)} (tls {mailbox.tls})"
    return str(config.inbox)


def cmd_votes(args: argparse.Namespace) -> int:
    """Every vote: its state, rule, deadline and turnout, and the outcome of a closed one."""
    from voting.ledger import utc_text

    service = service_of(args)
    zone = service.config.settings.secretariat.timezone
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    lines: list[str] = []
    for vote in service.ledger.votes():
        board = service.board(vote.id)
        voted = sum(1 for row in board.rows if row.received_at)
        seconds_left = max(0, int((vote.closes_at - now).total_seconds()))
        rows.append({"vote": vote.id, "title": vote.title, "state": "open" if vote.is_open else "closed",
                     "rule": vote.rule, "closes_at": utc_text(vote.closes_at),
                     "closed_at": utc_text(vote.closed_at) if vote.closed_at else None,
                     "voted": voted, "delegations": len(board.rows), "outcome": vote.outcome})
        adopted = "; ".join(f"{symbol} {'ADOPTED' if o['adopted'] else 'NOT ADOPTED'}"
                            for symbol, o in (vote.outcome or {}).items())
        lines.extend([
            f"{vote.id}  {vote.title}",
            f"  {'OPEN' if vote.is_open else 'CLOSED'}, rule {vote.rule}, "
            f"{deadline_text(vote.is_open, vote.closes_at, vote.closed_at, seconds_left, zone)}",
            f"  {voted} of {len(board.rows)} delegations {'have voted' if vote.is_open else 'voted'}"
            + (f"; {adopted}" if adopted else ""),
        ])
    emit(args, rows, "\n".join(lines) or "No votes yet.")
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    service = service_of(args)
    if service.ledger.vote(args.vote).is_open and not confirmed(
        args, "close", f"Close vote {args.vote} now? Ballots received after now will not count"
    ):
        print(f"voting: vote {args.vote} stays open", file=sys.stderr)
        return 1
    service.close_now(args.vote)
    send_now(service)
    vote = service.ledger.vote(args.vote)
    emit(args, {"vote": args.vote, "outcome": vote.outcome},
         status_text(service.status(args.vote), service.config.settings.secretariat.timezone))
    return 0


def cmd_extend(args: argparse.Namespace) -> int:
    service = service_of(args)
    service.extend(args.vote, args.closes)
    emit(args, {"vote": args.vote, "closes_at": args.closes.isoformat()}, f"Vote {args.vote} now closes {args.closes:%Y-%m-%dT%H:%M:%SZ}")
    return 0


def cmd_tally(args: argparse.Namespace) -> int:
    from voting.electorate import load_electorate
    from voting.model import Choice
    from voting.record import outcome_line
    from voting.rules import decide

    electorate = load_electorate(Path(args.electorate))
    try:
        votes = json.loads(read_input(args.votes, "--votes").decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"--votes {args.votes}: not JSON: {error}") from None
    if not isinstance(votes, dict) or not all(isinstance(v, dict) for v in votes.values()):
        raise UsageError(f'--votes {args.votes}: expected {{"DRAFT": {{"CODE": "yes" | "no" | "abstain"}}}}')
    outcomes = {}
    for symbol, choices in votes.items():
        try:
            parsed = {code: Choice(str(choice).lower()) for code, choice in choices.items()}
        except ValueError:
            raise UsageError(f"--votes {args.votes}: {symbol}: every choice must be yes, no or abstain") from None
        outcomes[symbol] = decide(args.rule, electorate, parsed, quorum=args.quorum)
    explained = {s: {**o.as_dict(), "conditions": [c.as_dict() for c in o.conditions]} for s, o in outcomes.items()}
    emit(args, explained, "\n".join(outcome_line(s, o) for s, o in outcomes.items()))
    return 0
