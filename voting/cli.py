"""The `voting` command: argument parsing and printing only (README, "Commands").

Exit status: 0 success, 1 what was checked is invalid or rejected, 2 a usage
or configuration error, with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from voting import __version__
from voting.errors import LedgerError, StorageError, UsageError, VotingError
from voting.files import read_bounded
from voting.layout import DEFAULT_CONFIG, TEMPLATES
from voting.publication import Publication
from voting.times import duration, readable_time, time_left

if TYPE_CHECKING:
    from voting.config import Config
    from voting.mail.smtp import SmtpSettings
    from voting.reply import SignedReply

Handler = Callable[[argparse.Namespace], int]


def parse_when(text: str) -> datetime:
    """An ISO 8601 instant, or a time from now such as +24h, +90m or +3d (whole seconds, UTC).

    A time without a zone is refused rather than guessed.
    """
    if text.strip().startswith("+"):
        try:
            return datetime.now(UTC).replace(microsecond=0) + duration(text.strip()[1:])
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z for UTC or an offset such as +02:00")
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time such as 2020-07-08T12:00:00Z, nor a time from now such as +24h"
        ) from None


MAX_INPUT_BYTES = 32 << 20
RULE_HELP = ("a rule built in (unsc-substantive, unsc-procedural, simple-majority, two-thirds, unanimity, silence,"
             " eu-qmv, eu-qmv-reinforced, weighted-majority) or one the electorate file defines under [rules.NAME]")
"""Larger than any message the service accepts, PKCS#12 file or votes file a person would give."""


def read_input(path: str, what: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    return read_bounded(Path(path), limit, what, UsageError)


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False, default=str))
    else:
        print(text, end="" if text.endswith("\n") else "\n")


def config_of(args: argparse.Namespace) -> Config:
    from voting.config import load_config

    return load_config(args.config)


def service_of(args: argparse.Namespace) -> Any:
    with loading():
        from voting.service import Service

        return Service(config_of(args), log=(lambda line: None) if args.json else None)


@contextmanager
def loading() -> Iterator[None]:
    """Load the service with the cycle collector paused, then freeze what the load built.

    Modules, classes and schemas live as long as the process: collecting
    them while they load, and again when the process exits, is work thrown
    away (about a quarter of a short command's time, such as `voting status`).
    What the command builds afterwards is collected as usual.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


# -- commands ---------------------------------------------------------------------


def next_steps(config: Config) -> list[str]:
    """What to do after `voting init`, in the words of the README's step-by-step deployment."""
    here = config.root.resolve() == Path.cwd().resolve()
    return [
        *([] if here else [f"cd {config.root}"]),
        "voting keys sign REQUEST.pem",
        "voting keys issue CODE --email ADDRESS",
        "voting keys import CODE CERT.pem --csr REQUEST.pem",
    ]


def cmd_init(args: argparse.Namespace) -> int:
    from voting.deployment import init_deployment

    config = init_deployment(
        Path(args.directory), name=args.name, address=args.address, template=args.electorate, port=args.port,
        prefix=args.vote_prefix,
    )
    emit(
        args,
        {"directory": str(config.root), "config": str(config.path), "keys": str(config.keys_dir),
         "next": next_steps(config)},
        f"New deployment in {config.root}\n  configuration: {config.path}\n  keys: {config.keys_dir}\n"
        f"  electorate: {config.electorate_file}\n"
        + "\n".join(f"Next: {step}" for step in next_steps(config)),
    )
    return 0


def cmd_keys_issue(args: argparse.Namespace) -> int:
    from voting.deployment import issue_delegation_key

    issued = issue_delegation_key(
        config_of(args), args.code, email=args.email, name=args.name, permanent=args.permanent, legacy=args.legacy,
        keep_old=args.keep_old, new=args.new, out=Path(args.out) if args.out else None,
    )
    emit(
        args,
        {"code": issued.code, "sha256": issued.sha256, "pkcs12": str(issued.pkcs12_path), "password": issued.password,
         "secretariat_held_key": True, **retirement_json(issued.retired, issued.retired_at)},
        "\n".join([
            f"Issued a signing certificate to {issued.code} (SHA-256 {issued.sha256})",
            f"  the one copy of its PKCS#12: {issued.pkcs12_path}",
            "  hand it to the delegation, then delete it here; nothing else the secretariat keeps can sign for it",
            f"  its password, written nowhere (send it by another channel): {issued.password}",
            "  registered as a certificate whose key the secretariat held (`voting keys request` and "
            "`voting keys sign` make one it never holds)",
            *retirement_lines(issued.retired, issued.retired_at),
        ]),
    )
    return 0


def retirement_json(retired: Sequence[str], at: datetime | None) -> dict[str, Any]:
    return {"retired": list(retired), "retired_at": f"{at:%Y-%m-%dT%H:%M:%SZ}" if at else None}


def retirement_lines(retired: Sequence[str], at: datetime | None) -> list[str]:
    return [f"  retired from {at:%Y-%m-%dT%H:%M:%SZ} (ballots it signed before stay valid): {pin}" for pin in retired]


def password_of(args: argparse.Namespace, variable: str) -> bytes:
    """The password in --password-file, else in the environment variable; empty when neither gives one."""
    if args.password_file:
        return read_input(args.password_file, "--password-file").strip()
    return os.environ.get(variable, "").encode()


def cmd_keys_request(args: argparse.Namespace) -> int:
    from voting.delegate import make_request

    made = make_request(Path(args.out or "."), args.code, args.email, password_of(args, "VOTING_KEY_PASSWORD"))
    shown = made.password.decode() if made.generated else None
    emit(
        args,
        {"code": args.code, "key": str(made.key_path), "request": str(made.request_path),
         "key_sha256": made.key_sha256, "password": shown},
        "\n".join([
            f"Made {args.code}'s signing key on this machine; it never leaves it",
            f"  private key (keep it here): {made.key_path}",
            *([f"  its passphrase, written nowhere (keep it safe): {shown}"] if shown else []),
            f"  request to send to the secretariat: {made.request_path}",
            f"  the key's SHA-256, to read to the secretariat by telephone: {made.key_sha256}",
            f"When the certificate comes back: voting keys bundle CERT.pem --key {made.key_path}",
        ]),
    )
    return 0


def cmd_keys_sign(args: argparse.Namespace) -> int:
    from voting.deployment import sign_delegation_request

    signed = sign_delegation_request(
        config_of(args), Path(args.request), code=args.code, confirmed=args.email, name=args.name,
        permanent=args.permanent, keep_old=args.keep_old, out=Path(args.out) if args.out else None,
    )
    emit(
        args,
        {"code": signed.code, "sha256": signed.sha256, "key_sha256": signed.key_sha256,
         "addresses": list(signed.addresses), "certificate": str(signed.certificate_path),
         "secretariat_held_key": False, **retirement_json(signed.retired, signed.retired_at)},
        "\n".join([
            f"Issued a signing certificate to {signed.code} <{', '.join(signed.addresses)}> (SHA-256 {signed.sha256})",
            f"  for the key with SHA-256 {signed.key_sha256}: the delegation must read you the same by telephone",
            f"  certificate to send back to the delegation: {signed.certificate_path}",
            "  registered as a certificate whose key the secretariat never held",
            *retirement_lines(signed.retired, signed.retired_at),
        ]),
    )
    return 0


def cmd_keys_bundle(args: argparse.Namespace) -> int:
    from voting.delegate import bundle_pkcs12
    from voting.pki import fingerprint

    password = password_of(args, "VOTING_KEY_PASSWORD")
    if not password:
        raise UsageError("give the key's passphrase with --password-file FILE or VOTING_KEY_PASSWORD")
    key_path = Path(args.key)
    out = Path(args.out) if args.out else key_path.with_suffix(".p12")
    identity = bundle_pkcs12(Path(args.certificate), key_path, out, password, legacy=args.legacy)
    emit(args, {"pkcs12": str(out), "sha256": fingerprint(identity.certificate)},
         f"Wrote {out} for the mail client, protected by the key's passphrase")
    return 0


def cmd_keys_import(args: argparse.Namespace) -> int:
    from voting.deployment import Proof, import_delegation_certificate

    proof = Proof("message", Path(args.proof)) if args.proof else Proof("csr", Path(args.csr)) if args.csr else None
    pin = import_delegation_certificate(config_of(args), args.code, Path(args.certificate), proof)
    emit(args, {"code": args.code, "sha256": pin}, f"Registered certificate {pin} to {args.code}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from voting.deployment import revoke_delegation
    from voting.electorate import load_electorate

    config = config_of(args)
    delegation = load_electorate(config.electorate_file).get(args.code)
    if delegation is not None and not confirmed(
        args, "keys revoke", f"Revoke every certificate of {delegation.label} now? Ballots it signs after now will not count"
    ):
        print("voting: nothing revoked", file=sys.stderr)
        return 1
    at = datetime.now(UTC).replace(microsecond=0)
    revoke_delegation(config, args.code, at)
    emit(args, {"code": args.code, "revoked_at": at.isoformat()},
         f"Revoked every certificate of {args.code} from {readable_time(at, [config.settings.secretariat.timezone])}")
    return 0


def confirmed(args: argparse.Namespace, command: str, question: str) -> bool:
    """The operator's yes to a step that cannot be undone: --yes, or y on the terminal; a script must say --yes."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{command} asks for confirmation and no terminal is here to answer; a script must add --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_keys_rotate_signer(args: argparse.Namespace) -> int:
    from voting.pki import SIGNER_CERTIFICATE, SecretariatKeys, fingerprint

    config = config_of(args)
    signer = SecretariatKeys.rotate_signer(config.keys_dir, config.key_password()).signer
    pin = fingerprint(signer.certificate)
    path = config.keys_dir / SIGNER_CERTIFICATE
    emit(args, {"certificate": str(path), "sha256": pin},
         f"New signing certificate {path} (SHA-256 {pin}), with the secretariat's signing role;"
         " publish it to the delegations in place of the old one")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from voting.deployment import kept_pkcs12_path
    from voting.electorate import load_electorate, why_cannot_vote
    from voting.pki import load_pem_certificate

    config = config_of(args)
    now = datetime.now(UTC)
    electorate = load_electorate(config.electorate_file)
    rows: list[dict[str, Any]] = []
    for d in electorate.delegation:
        certificates: list[dict[str, Any]] = []
        for c in d.certificates:
            certificate = load_pem_certificate(c.pem)
            certificates.append(
                {
                    "sha256": c.sha256,
                    "issued_by_secretariat": c.issued_by_secretariat,
                    "secretariat_held_key": c.secretariat_held_key,
                    "key_copy_in_keys": str(kept) if (kept := kept_pkcs12_path(config, d.code, c.sha256)).exists()
                    else None,
                    "revoked": c.revoked,
                    "not_after": certificate.not_valid_after_utc.isoformat(),
                }
            )
        rows.append({"code": d.code, "name": d.name, "permanent": d.permanent, "addresses": d.addresses,
                     "certificates": certificates, "cannot_vote": why_cannot_vote(d, now)})
    lines = [f"{electorate.name}: {len(rows)} delegations"]
    for row in rows:
        marks = " (permanent)" if row["permanent"] else ""
        lines.append(f"{row['code']:<5} {row['name']}{marks}  {', '.join(row['addresses'])}")
        lines.extend(
            f"      {c['sha256'][:16]}…  until {c['not_after'][:10]}"
            + ("  REVOKED" if c["revoked"] else "")
            + ("" if c["issued_by_secretariat"] else "  imported")
            + ("  key held by the secretariat" if c["secretariat_held_key"] else "  key made by the delegation")
            + (f"  a copy of the key is still in {c['key_copy_in_keys']}: hand it over and delete it"
               if c["key_copy_in_keys"] else "")
            for c in row["certificates"]
        )
        if row["cannot_vote"]:
            lines.append(f"      cannot vote: {row['cannot_vote']}")
    emit(args, rows, "\n".join(lines))
    return 0


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
    checked = f"{len(votes)} votes" if not args.vote else f"vote {args.vote}"
    text = "\n".join(f"DAMAGED: {line}" for line in damage) if damage else (
        f"intact: {checked}, their chains, decisions, explanations and raw messages"
        + ("" if args.vote else ", and every message in the ledger"))
    emit(args, {"votes": votes, "damaged": damage, "unchecked": unread},
         text + (f"\nNOT CHECKED: {unread}" if unread else ""))
    return 1 if damage else 0


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


def cmd_verify_mail(args: argparse.Namespace) -> int:
    from voting.electorate import load_electorate, trust_of
    from voting.pki import SecretariatKeys, read_certificate
    from voting.smime.verify import Trust, TrustedCertificate, verify_message

    raw = read_input(args.file, "message")
    at = args.at or datetime.now(UTC)
    decryption = None
    if args.cert or args.ca:
        trust = Trust(
            registered=tuple(TrustedCertificate(read_certificate(Path(p))) for p in args.cert),
            anchors=tuple(read_certificate(Path(p)) for p in args.ca),
        )
    else:
        config = config_of(args)
        keys = SecretariatKeys.load(config.keys_dir, config.key_password())
        trust = trust_of(load_electorate(config.electorate_file), (keys.ca.certificate,), at)
        decryption = keys.signer
    verification = verify_message(raw, trust, at, decryption)
    document = verification.as_json()
    if verification.valid:
        who = f"{verification.owner} " if verification.owner else ""
        text = f"valid: signed by {who}{document['signer']['subject']} <{', '.join(document['signer']['emails'])}>"
    else:
        text = f"invalid: {verification.reason.value if verification.reason else 'unknown'}"
        if verification.reason:
            text += f": {verification.detail or verification.reason.describe()}"
    emit(args, document, text)
    return 0 if verification.valid else 1


def ask_secret(what: str, alternatives: str) -> bytes:
    """A secret typed on the controlling terminal, not echoed; refused where there is no terminal to ask on."""
    import getpass

    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        raise UsageError(f"no terminal to ask for the {what} on: {alternatives}") from None
    try:
        secret = getpass.getpass(f"{what[0].upper()}{what[1:]}: ").encode()
    except EOFError:
        secret = b""
    if not secret:
        raise UsageError(f"no {what} was typed")
    return secret


def reply_password(args: argparse.Namespace) -> bytes:
    """The PKCS#12 password: from --password-file, or VOTING_P12_PASSWORD for scripts, else typed on the terminal."""
    password = password_of(args, "VOTING_P12_PASSWORD")
    if password:
        return password
    if args.password_file:
        raise UsageError(f"--password-file {args.password_file} is empty")
    return ask_secret(f"password of {Path(args.p12).name}",
                      "give --password-file FILE, or set VOTING_P12_PASSWORD in a script")


def reply_relay(args: argparse.Namespace) -> SmtpSettings:
    """Where --send sends: the relay of --smtp (no deployment needed), else the --config deployment's [smtp].

    The password of --smtp-user is asked later, once there is a signed reply to send.
    """
    from voting.mail.outbox import smtp_settings
    from voting.mail.smtp import relay_settings

    if not args.smtp:
        if args.smtp_tls or args.smtp_user:
            raise UsageError("--smtp-tls and --smtp-user go with --smtp HOST[:PORT]")
        if not args.config.exists():
            raise UsageError("--send needs --smtp HOST[:PORT], your mail provider's SMTP server, or --config of a"
                             " deployment")
        return smtp_settings(config_of(args))
    return relay_settings(args.smtp, args.smtp_tls, args.smtp_user or "", os.environ.get("VOTING_SMTP__PASSWORD", ""))


TLS_WORDS = {"starttls": "STARTTLS", "implicit": "implicit TLS", "none": "no TLS"}


def signed_lines(signed: SignedReply) -> list[str]:
    """What the delegate signed, read back: the choices per draft and the explanation's first line."""
    from voting.times import readable_time

    facts = signed.facts
    lines = [f"Signed for {facts.delegation_code} ({facts.delegation_name}) on vote {facts.vote_id},"
             f" which closes {readable_time(facts.closes)}:",
             *(f"  {symbol}: {choice.upper()}" for symbol, choice in signed.choices.items())]
    if signed.explanation:
        first, *rest = signed.explanation.split("\n")
        lines.append(f"  Explanation: {first}" + (" […]" if rest else ""))
    return lines


def cmd_reply(args: argparse.Namespace) -> int:
    from voting.mail.smtp import SmtpConnection
    from voting.pki import load_pkcs12, mailboxes, read_certificate
    from voting.reply import Secretariat, check_reply_is_due, read_ballot, sign_reply

    if args.smtp and not args.send:
        raise UsageError("--smtp names the relay for --send: give --send too")
    if args.secretariat_cert:
        secretariat = Secretariat(read_certificate(Path(args.secretariat_cert)), args.secretariat_address)
    elif args.config.exists():
        secretariat = Secretariat.of_deployment(config_of(args))
    else:
        raise UsageError("give --secretariat-cert PEM, the secretariat's certificate that came with your delegation's "
                         "certificate (ask the secretariat for it if it did not), so that the ballot's signature can be "
                         "checked before anything is signed; or --config of the deployment")
    relay = reply_relay(args) if args.send else None
    explanation = read_input(args.explanation, "--explanation").decode("utf-8", "replace") if args.explanation else ""
    p12 = read_input(args.p12, "--p12")
    ballot = read_ballot(read_input(args.ballot, "ballot"), secretariat, datetime.now(UTC))
    identity = load_pkcs12(p12, reply_password(args))
    now = datetime.now(UTC)
    check_reply_is_due(ballot, identity.certificate, now, after_close=args.after_close)
    signed = sign_reply(ballot, identity, args.vote, explanation=explanation, now=now)
    reply, to = signed.message, signed.to
    done = signed_lines(signed)
    if args.out:
        try:
            Path(args.out).write_bytes(reply.raw)
        except OSError as error:
            raise UsageError(f"--out {args.out}: {error.strerror}") from None
        done.append(f"Written to {args.out}")
    if relay is not None:
        if relay.username and not relay.password:
            relay = replace(relay, password=ask_secret(f"SMTP password of {relay.username}",
                                                       "set VOTING_SMTP__PASSWORD").decode())
        with SmtpConnection(relay) as connection:
            connection.send(mailboxes(identity.certificate)[0], [to], reply.raw)
        done.append(f"Sent to {to} through {relay.host} port {relay.port} ({TLS_WORDS[relay.tls]}),"
                    f" Message-ID {reply.message_id}")
    if not args.out and not args.send:
        sys.stdout.buffer.write(reply.raw)
        sys.stdout.flush()
        print("\n".join(done), file=sys.stderr)
        return 0
    emit(args, {"message_id": reply.message_id, "to": to, "sent": args.send, "out": args.out,
                "vote": signed.facts.vote_id, "delegation": signed.facts.delegation_code,
                "choices": {symbol: str(choice) for symbol, choice in signed.choices.items()},
                "explanation": signed.explanation,
                "relay": f"{relay.host}:{relay.port}" if relay else None}, "\n".join(done))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from voting.bundle import export_bundle

    summary = export_bundle(service_of(args), args.vote, Path(args.out))
    emit(
        args,
        {"bundle": str(summary.path), "vote": summary.vote_id, "messages": summary.messages, "bytes": summary.bytes,
         **publication_json(summary.publication)},
        "\n".join([f"Wrote {summary.path}: {summary.messages} messages, {summary.bytes} bytes",
                   *summary.publication.lines()]),
    )
    return 0


def publication_json(publication: Publication) -> dict[str, str]:
    """The `--json` keys of `voting.publication.Publication`, as `export`, `record` and `audit` print them."""
    return {"bundle_sha256": publication.bundle_sha256, "head": publication.chain_head,
            "signer_sha256": publication.signer_sha256}


def cmd_audit(args: argparse.Namespace) -> int:
    from voting.audit import audit_bundle, checks_json, render_checks
    from voting.bundle import read_bundle
    from voting.pki import read_certificate
    from voting.publication import BUNDLE_SHA256, bundle_sha256, line

    anchor = read_certificate(Path(args.secretariat_cert)) if args.secretariat_cert else None
    results = read_input(args.results, "results email") if args.results else None
    show_progress = not args.json and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            print(f"\rverifying messages: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    bundle = read_bundle(Path(args.bundle))
    checks = audit_bundle(bundle, anchor, progress, results)
    sha256 = bundle_sha256(bundle)
    emit(args, {"bundle_sha256": sha256, **checks_json(checks)},
         "\n".join([line(BUNDLE_SHA256, sha256), *render_checks(checks)]))
    return 0 if all(check.ok for check in checks) else 1


def cmd_record(args: argparse.Namespace) -> int:
    from voting.bundle import write_record

    service = service_of(args)
    record = write_record(service, args.vote, Path(args.out) if args.out else service.config.records_dir)
    bundle = record.bundle
    emit(args,
         {"html": str(record.html), "text": str(record.text), "bundle": str(bundle.path) if bundle else None,
          **(publication_json(bundle.publication) if bundle else {})},
         "\n".join([f"  html   {record.html}", f"  text   {record.text}",
                    *([f"  bundle {bundle.path}", *bundle.publication.lines()] if bundle else [])]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from voting.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None, as_json=args.json, procedure=args.procedure)


# -- the parser -----------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """Usage mistakes are one line on stderr and exit status 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    def options(default: Any) -> Parser:
        """--config and --json, accepted before or after the command; a subcommand's copy must not reset them."""
        parent = Parser(add_help=False)
        parent.add_argument("--config", type=Path, default=default(DEFAULT_CONFIG),
                            help=f"configuration file (default {DEFAULT_CONFIG})")
        parent.add_argument("--json", action="store_true", default=default(False),
                            help="print one JSON document on stdout")
        return parent

    common = options(lambda _: argparse.SUPPRESS)
    parser = Parser(prog="voting", description="Vote on resolutions by S/MIME-signed email.",
                                     parents=[options(lambda value: value)])
    parser.add_argument("--version", action="version", version=f"voting {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Handler, help_text: str, parent: Any = commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    p = command("init", cmd_init, "create a new deployment: configuration, secretariat CA and signing key, electorate")
    p.add_argument("directory", nargs="?", default=".", help="deployment directory (default: current)")
    p.add_argument("--name", help="the secretariat's name (default: Secretariat)")
    p.add_argument("--address", help="the secretariat's voting address (default: votes@secretariat.example)")
    p.add_argument("--electorate", choices=TEMPLATES, help="start from a packaged electorate instead of an empty one")
    p.add_argument("--port", type=int, help="port of the embedded mail server (default: 8025)")
    p.add_argument("--vote-prefix", help="vote ids are PREFIX-YEAR-NNNN (default: vote)")

    keys = commands.add_parser("keys", help="register delegations and their certificates", parents=[common],
                               description="register delegations and their certificates")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = command("issue", cmd_keys_issue, "register a delegation and issue it a signing certificate and PKCS#12", key_commands)
    p.add_argument("code", help="delegation code, e.g. FRA")
    p.add_argument("--email", required=True, help="the delegation's mailbox")
    p.add_argument("--name", help="the delegation's name (for a new delegation)")
    p.add_argument("--permanent", action="store_true", help="a permanent member")
    p.add_argument("--legacy", action="store_true", help="3DES/SHA-1 PKCS#12 for old Outlook, macOS and gpgsm")
    p.add_argument("--keep-old", action="store_true",
                   help="keep the delegation's earlier certificates valid (by default they are retired from now)")
    p.add_argument("--new", action="store_true", help="register a delegation not yet in the electorate")
    p.add_argument("--out", metavar="DIR|FILE.p12",
                   help="where to write the one copy of the PKCS#12 (default: handover/, never keys/)")
    p = command("request", cmd_keys_request,
                "for a delegate: make the delegation's key and a certificate request on this machine", key_commands)
    p.add_argument("code", help="delegation code, e.g. FRA")
    p.add_argument("--email", required=True, help="the delegation's mailbox, which the certificate will name")
    p.add_argument("--out", metavar="DIR", help="folder for CODE.key and CODE-request.pem (default: current)")
    p.add_argument("--password-file", help="the key's passphrase (or VOTING_KEY_PASSWORD; default: a new one, printed)")
    p = command("sign", cmd_keys_sign,
                "certify a delegation's request: its key stays with the delegation", key_commands)
    p.add_argument("request", help="the delegation's certificate signing request (PEM or DER)")
    p.add_argument("--code", help="the delegation (default: the code the request names)")
    p.add_argument("--email", action="append", default=[], metavar="ADDR",
                   help="an address of the request that the delegation has not registered yet, confirmed")
    p.add_argument("--name", help="the delegation's name (for a new delegation)")
    p.add_argument("--permanent", action="store_true", help="a permanent member")
    p.add_argument("--keep-old", action="store_true",
                   help="keep the delegation's earlier certificates valid (by default they are retired from now)")
    p.add_argument("--out", metavar="DIR|FILE.pem", help="where to write the certificate (default: handover/)")
    p = command("bundle", cmd_keys_bundle,
                "for a delegate: the key and its certificate as a PKCS#12 for the mail client", key_commands)
    p.add_argument("certificate", help="the certificate PEM the secretariat sent back (with its CA)")
    p.add_argument("--key", required=True, help="the private key `voting keys request` made")
    p.add_argument("--password-file",
                   help="the key's passphrase (or VOTING_KEY_PASSWORD); it also protects the PKCS#12")
    p.add_argument("--out", metavar="FILE.p12", help="the PKCS#12 to write (default: the key's name with .p12)")
    p.add_argument("--legacy", action="store_true", help="3DES/SHA-1 PKCS#12 for old Outlook, macOS and gpgsm")
    p = command("import", cmd_keys_import, "register an externally issued certificate, pinned by its SHA-256", key_commands)
    p.add_argument("code")
    p.add_argument("certificate", help="PEM file")
    proofs = p.add_mutually_exclusive_group()
    proofs.add_argument("--proof", metavar="SIGNED.eml", help="an email signed with the certificate's key")
    proofs.add_argument("--csr", metavar="REQUEST.pem", help="a certificate signing request made with the same key")
    p = command("revoke", cmd_keys_revoke, "revoke every certificate of a delegation from now on", key_commands)
    p.add_argument("code")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (for scripts)")
    command("list", cmd_keys_list, "list delegations and certificates", key_commands)
    command("rotate-signer", cmd_keys_rotate_signer,
            "certify the secretariat's signing key anew, with the secretariat's signing role", key_commands)

    p = command("open", cmd_open, "open a vote and send the ballots")
    p.add_argument("--draft", action="append", required=True, metavar="SYMBOL=FILE",
                   help="a draft and its file as circulated (text, PDF, Word...): attached to every ballot")
    p.add_argument("--rule", required=True, help=RULE_HELP)
    p.add_argument("--closes", required=True, type=parse_when, metavar="WHEN", help="deadline: ISO 8601 with a zone (2020-07-08T12:00:00Z), or from now (+24h, +90m, +3d)")
    p.add_argument("--title", action="append", default=[], metavar="TITLE or SYMBOL=TITLE",
                   help="the vote's title; or a draft's (default: the first line of a text file)")
    p.add_argument("--id", help="vote id (default: PREFIX-YEAR-NNNN)")
    p.add_argument("--quorum", type=int, help="members present and voting required (majority rules)")
    p.add_argument("--party", action="append", default=[], metavar="SYMBOL=CODE",
                   help="a party to the dispute, which must abstain on that (Chapter VI) draft")
    p.add_argument("--sponsor", action="append", default=[], metavar="SYMBOL=WHO[,WHO...]",
                   help="who put the draft forward: delegation codes, shown with their names; or, for a sponsor from"
                        " outside the electorate, its name (European Commission)")
    p.add_argument("--first-ballot-final", action="store_true", help="refuse changes of vote")
    p.add_argument("--observer", action="append", default=[], metavar="ADDR",
                   help="an address told of the vote and its results, which cannot vote (beside the electorate's)")
    p.add_argument("--allow-missing", action="store_true",
                   help="open even though some delegations cannot vote yet (no valid certificate); they are named")

    command("serve", cmd_serve, "run the service: watch the mailbox, process, close, tally, send")
    p = command("poll", cmd_poll, "one pass of the service, for cron and tests")
    p.add_argument("--once", action="store_true", help="one pass (the only mode)")
    p = command("status", cmd_status, "who has voted, who has not, what was rejected and why, time left")
    p.add_argument("vote", nargs="?")
    p.add_argument("--watch", action="store_true",
                   help=f"on a terminal, redraw every {WATCH_SECONDS:g} seconds as ballots arrive, until Ctrl-C")
    command("votes", cmd_votes, "every vote: its state, rule, deadline and turnout")
    p = command("resend", cmd_resend, "send a delegation its ballot again, with the same token")
    p.add_argument("vote")
    p.add_argument("code", help="delegation code, e.g. FRA")
    p = command("close", cmd_close, "close a vote now and tally it")
    p.add_argument("vote")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (for scripts)")
    p = command("check", cmd_check, "verify the ledger: its pages, each vote's chain, decisions and raw messages")
    p.add_argument("vote", nargs="?")
    p = command("extend", cmd_extend, "move the deadline, where the rule allows")
    p.add_argument("vote")
    p.add_argument("--closes", required=True, type=parse_when, metavar="WHEN")

    p = command("export", cmd_export, "write the audit bundle of a closed vote")
    p.add_argument("vote")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="the zip file to write")
    p = command("audit", cmd_audit, "verify an audit bundle offline; one line per check")
    p.add_argument("bundle")
    p.add_argument("--secretariat-cert", metavar="PEM",
                   help="the secretariat's signing certificate, or its CA, obtained independently (default: the CA"
                        " in the bundle); the signer must carry the secretariat's signing role")
    p.add_argument("--results", metavar="RESULTS.eml",
                   help="the signed results email as a delegation received it: it must be signed by the bundle's"
                        " signer and quote this bundle's SHA-256 and hash-chain head")
    p = command("record", cmd_record, "write the public record: an HTML vote board and a plain-text version")
    p.add_argument("vote")
    p.add_argument("--out", metavar="DIR", help="folder to write to (default: service.records_dir)")

    p = command("tally", cmd_tally, "decide outcomes from a votes file, without mail; --json explains each condition")
    p.add_argument("--rule", required=True, help=RULE_HELP)
    p.add_argument("--electorate", required=True, help="electorate TOML file")
    p.add_argument("--votes", required=True, help='JSON: {"DRAFT": {"CODE": "yes" | "no" | "abstain"}}')
    p.add_argument("--quorum", type=int)

    p = command("verify-mail", cmd_verify_mail, "check one signed message")
    p.add_argument("file")
    p.add_argument("--cert", action="append", default=[], help="a pinned signer certificate (PEM)")
    p.add_argument("--ca", action="append", default=[], help="a trust anchor (PEM)")
    p.add_argument("--at", type=parse_when, help="verification time (default now)")

    p = command("reply", cmd_reply, "for a delegate: build (and optionally send) a signed reply to a ballot")
    p.add_argument("ballot", help="the ballot email (.eml)")
    p.add_argument("--p12", required=True, help="the delegation's PKCS#12 file")
    p.add_argument("--password-file", help="file holding the PKCS#12 password (default: asked on the terminal;"
                                           " a script may set VOTING_P12_PASSWORD instead)")
    p.add_argument("--vote", action="append", required=True, metavar="CHOICE",
                   help="yes, no or abstain for every draft, or SYMBOL=CHOICE for one")
    p.add_argument("--explanation", help="a text file: the explanation of vote")
    p.add_argument("--secretariat-cert", metavar="PEM",
                   help="the secretariat's signing certificate, or its CA (then with --secretariat-address), against "
                        "which the ballot's signature is checked (default: the keys of the --config deployment)")
    p.add_argument("--secretariat-address", metavar="ADDRESS",
                   help="the secretariat's address, from which ballots come (needed with a CA as --secretariat-cert)")
    p.add_argument("--out", help="write the signed reply here")
    p.add_argument("--after-close", action="store_true",
                   help="sign although the ballot's closing time has passed (the deadline was moved, or for an"
                        " explanation of vote after the close; a choice received after the close is not counted)")
    p.add_argument("--send", action="store_true",
                   help="send it to the secretariat through --smtp, or the SMTP server of the --config deployment")
    p.add_argument("--smtp", metavar="HOST[:PORT]", help="the SMTP server to send through, e.g. your mail provider's")
    p.add_argument("--smtp-tls", choices=("starttls", "implicit", "none"),
                   help="TLS to --smtp (default: starttls, port 587; none only to a loopback host, port 25;"
                        " implicit: port 465)")
    p.add_argument("--smtp-user", metavar="USER",
                   help="log in to --smtp as USER; the password is asked on the terminal (or VOTING_SMTP__PASSWORD)")

    p = command("demo", cmd_demo, "the whole written procedure on the embedded mail server")
    p.add_argument("--dir", help="where to write (default: a new temporary directory)")
    p.add_argument("--procedure", choices=("recorded", "silence", "eu-qmv"), default="recorded",
                   help="recorded: the Security Council's July 2020 round (default); silence: drafts under the silence"
                        " procedure; eu-qmv: the Council of the EU's qualified majority")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except VotingError as error:
        print(f"voting: {error}", file=sys.stderr)
        return error.exit_status
    except sqlite3.Error as error:
        print(f"voting: the ledger (service.database) failed: {error} (voting check names what is damaged)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (`| head`) has gone: say nothing more, and let no flush at exit complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(f"voting: {error.filename + ': ' if error.filename else ''}{error.strerror or error}", file=sys.stderr)
        return 1
