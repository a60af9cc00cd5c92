"""What every command shares: reading its input and options, loading the service, printing its answer."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TYPE_CHECKING

from voting.errors import UsageError
from voting.files import read_bounded
from voting.times import duration

if TYPE_CHECKING:
    from voting.config import Config


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


def password_of(args: argparse.Namespace, variable: str) -> bytes:
    """The password in --password-file, else in the environment variable; empty when neither gives one."""
    if args.password_file:
        return read_input(args.password_file, "--password-file").strip()
    return os.environ.get(variable, "").encode()


def confirmed(args: argparse.Namespace, command: str, question: str) -> bool:
    """The operator's yes to a step that cannot be undone: --yes, or y on the terminal; a script must say --yes."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"{command} asks for confirmation and no terminal is here to answer; a script must add --yes")
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


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
