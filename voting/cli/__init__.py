"""The `voting` command: argument parsing and printing only (README, "Commands").

Exit status: 0 success, 1 what was checked is invalid or rejected, 2 a usage
or configuration error, with a one-line reason on stderr. Each group of
commands is in its own module: `keys`, `votes`, `board`, `delegate`, `records`.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from voting import NO_PYDANTIC_PLUGINS, __version__
from voting.cli.board import WATCH_SECONDS, cmd_check, cmd_status
from voting.cli.common import Handler, RULE_HELP, parse_when
from voting.cli.delegate import cmd_reply, cmd_verify_mail
from voting.cli.keys import (
    cmd_init,
    cmd_keys_bundle,
    cmd_keys_import,
    cmd_keys_issue,
    cmd_keys_list,
    cmd_keys_request,
    cmd_keys_revoke,
    cmd_keys_rotate_signer,
    cmd_keys_sign,
)
from voting.cli.records import cmd_audit, cmd_demo, cmd_export, cmd_record
from voting.cli.votes import cmd_close, cmd_extend, cmd_open, cmd_poll, cmd_resend, cmd_serve, cmd_tally, cmd_votes
from voting.errors import VotingError
from voting.layout import DEFAULT_CONFIG, TEMPLATES


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
    os.environ.update(NO_PYDANTIC_PLUGINS)
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
