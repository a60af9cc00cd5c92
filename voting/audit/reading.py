"""Reading a bundle: a zip taken apart within fixed bounds, so a hostile file is one failed check, not a crash."""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass

from pydantic import ValidationError

from voting.manifest import DRAFTS_DIRECTORY, MANIFEST_MEMBER, MESSAGES_DIRECTORY, SIGNATURE_MEMBER

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
_DRAFT_NAME = re.compile(re.escape(DRAFTS_DIRECTORY) + r"([0-9a-f]{64})")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)


class Unreadable(Exception):
    """The bundle cannot be read as one at all; nothing further can be checked."""


@dataclass(frozen=True)
class Contents:
    manifest: bytes
    signature: bytes
    messages: dict[str, bytes]
    """SHA-256 in the member's name -> the member's bytes."""
    decrypted: dict[str, bytes]
    """SHA-256 of the encrypted message in the member's name -> its decrypted entity."""
    drafts: dict[str, bytes]
    """SHA-256 in the member's name -> the draft file's bytes."""
    member_problems: tuple[str, ...]


class _Budget:
    """What the members may still expand to, so that a small bundle never takes much memory to read."""

    def __init__(self, bundle_size: int) -> None:
        self.total = min(MAX_BUNDLE_BYTES, MAX_EXPANSION * bundle_size + EXPANSION_SLACK)
        self.left = self.total

    def read(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
        """A member's bytes, never more than `limit` or the budget left, whatever the zip's headers claim."""
        if info.file_size > limit:
            raise Unreadable(f"{info.filename} is larger than {limit} bytes")
        allowed = min(limit, self.left)
        try:
            with archive.open(info) as stream:
                data = stream.read(allowed + 1)
        except _ZIP_ERRORS as error:
            raise Unreadable(f"{info.filename} cannot be read: {error}") from None
        if len(data) > limit:
            raise Unreadable(f"{info.filename} is larger than {limit} bytes")
        if len(data) > allowed:
            raise Unreadable(f"its members expand to more than {self.total} bytes, over {MAX_EXPANSION} times the"
                              " bundle's size: refused as a zip bomb")
        self.left -= len(data)
        return data


def unpack(data: bytes) -> Contents:
    if len(data) > MAX_BUNDLE_BYTES:
        raise Unreadable(f"larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS as error:
        raise Unreadable(f"not a zip file ({error})") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise Unreadable(f"more than {MAX_MEMBERS} members")
        names = Counter(info.filename for info in infos)
        missing = [name for name in (MANIFEST_MEMBER, SIGNATURE_MEMBER) if name not in names]
        if missing:
            raise Unreadable(f"{' and '.join(missing)} missing from the bundle")
        problems = [f"{name} appears {count} times" for name, count in names.items() if count > 1]
        problems += [
            f"{name} is not a member a bundle holds"
            for name in names
            if name not in (MANIFEST_MEMBER, SIGNATURE_MEMBER)
            and not _MESSAGE_NAME.fullmatch(name)
            and not _DECRYPTED_NAME.fullmatch(name)
            and not _DRAFT_NAME.fullmatch(name)
        ]
        by_name = {info.filename: info for info in infos}
        budget = _Budget(len(data))
        manifest = budget.read(archive, by_name[MANIFEST_MEMBER], MAX_MANIFEST_BYTES)
        signature = budget.read(archive, by_name[SIGNATURE_MEMBER], MAX_SIGNATURE_BYTES)
        messages: dict[str, bytes] = {}
        decrypted: dict[str, bytes] = {}
        drafts: dict[str, bytes] = {}
        for name, info in by_name.items():
            for pattern, into in ((_MESSAGE_NAME, messages), (_DECRYPTED_NAME, decrypted), (_DRAFT_NAME, drafts)):
                found = pattern.fullmatch(name)
                if found:
                    into[found.group(1)] = budget.read(archive, info, MAX_MESSAGE_BYTES)
    return Contents(manifest, signature, messages, decrypted, drafts, tuple(problems))


def first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = len(error.errors()) - 1
    return f"{where + ': ' if where else ''}{first['msg']}" + (f" (and {more} more)" if more else "")
