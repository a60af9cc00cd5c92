"""A delegate's commands: check a signed message, sign and send a reply to a ballot."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from voting.cli.common import ask_secret, config_of, emit, password_of, read_input
from voting.errors import UsageError

if TYPE_CHECKING:
    from voting.mail.smtp import SmtpSettings
    from voting.reply import SignedReply


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
