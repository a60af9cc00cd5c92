"""`voting export` and the file side of `voting audit`: the ledger in, a zip file out, and back.

The manifest itself is built by the pure `audit.build_manifest`; this module
reads the ledger into values, signs, and writes or reads the zip.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from voting.audit import build_manifest, with_decrypted
from voting.audit.reading import MAX_BUNDLE_BYTES, MAX_EXPANSION
from voting.errors import LedgerError, UsageError
from voting.files import fsync_directory, read_bounded, write_failure, write_file_atomically
from voting.integrity import damage_text, publication_damage
from voting.manifest import (
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    decrypted_member,
    draft_member,
    manifest_bytes,
    message_member,
)
from voting.pki import fingerprint
from voting.publication import Publication, bundle_sha256
from voting.smime.entity import decrypt_message
from voting.smime.sign import sign_detached_der

if TYPE_CHECKING:
    from voting.service import Service


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    vote_id: str
    messages: int
    bytes: int
    publication: Publication
    """The bundle's SHA-256, the vote's hash-chain head and the signer, as the results email states them."""


@dataclass(frozen=True)
class PublishedBundle:
    path: Path
    publication: Publication


def pack(manifest: bytes, signature: bytes, messages: Mapping[str, bytes], at: datetime,
         decrypted: Mapping[str, bytes] | None = None, drafts: Mapping[str, bytes] | None = None) -> bytes:
    """The zip, with members in a fixed order and one timestamp, so equal inputs give equal bytes.

    `decrypted` maps an encrypted message's SHA-256 to its decrypted entity;
    `drafts` a draft file's SHA-256 to its bytes.
    A member that deflates by more than half the audit's MAX_EXPANSION (a
    message of a million empty parts, say) is stored as it is, so that no
    message received can make the bundle look like a zip bomb to the audit.
    """
    stamp = at.astimezone(UTC).timetuple()[:6]
    opened = decrypted or {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        members = [(MANIFEST_MEMBER, manifest), (SIGNATURE_MEMBER, signature)]
        members += [(draft_member(sha), content) for sha, content in sorted((drafts or {}).items())]
        for sha in sorted(messages):
            members.append((message_member(sha), messages[sha]))
            if sha in opened:
                members.append((decrypted_member(sha), opened[sha]))
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=stamp)  # type: ignore[arg-type]
            deflates_moderately = len(data) <= MAX_EXPANSION // 2 * len(zlib.compress(data))
            info.compress_type = zipfile.ZIP_DEFLATED if deflates_moderately else zipfile.ZIP_STORED
            archive.writestr(info, data)
    return buffer.getvalue()


def export_bundle(service: Service, vote_id: str, out: Path) -> ExportSummary:
    """Write the audit bundle of a closed vote to `out`, atomically."""
    with service.ledger.snapshot():  # what is checked is what is written, whatever a pass commits meanwhile
        return _export(service, vote_id, out)


def _export(service: Service, vote_id: str, out: Path) -> ExportSummary:
    ledger = service.ledger
    damage = publication_damage(ledger, vote_id, service.keys.signer)
    if damage:
        raise LedgerError(f"no bundle of vote {vote_id} is written: {damage_text(damage)}")
    vote = ledger.vote(vote_id)
    if vote.is_open:
        raise UsageError(f"vote {vote_id} is still open; it can be exported once it is closed")
    bound = ledger.decisions(vote_id)
    unbound = ledger.decisions(None)
    events = ledger.events(vote_id)
    keys = service.keys
    drafts = ledger.drafts(vote_id)
    manifest = build_manifest(
        vote=vote,
        drafts=drafts,
        bound=bound,
        unbound=unbound,
        tokens=ledger.ballot_tokens(vote_id),
        electorate=service.electorate(),
        secretariat_ca=keys.ca.certificate,
        signer=keys.signer.certificate,
        events=events,
        exported_at=service.clock(),
    )
    ledger_id = {d.sha256: d.message for d in (*bound, *unbound)}
    raws = {m.sha256: ledger.raw_message(ledger_id[m.sha256]) for m in manifest.messages}
    opened = {sha: found for sha, raw in raws.items() if (found := decrypt_message(raw, keys.signer)) is not None}
    manifest = with_decrypted(manifest, opened)
    document = manifest_bytes(manifest)
    signature = sign_detached_der(document, keys.signer.key, keys.signer.certificate, keys.signer.chain)
    data = pack(document, signature, raws, manifest.exported_at, {sha: d.entity for sha, d in opened.items()},
                {d.sha256: d.content for d in drafts})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_file_atomically(out, data, mode=0o644)
    except OSError as error:
        raise write_failure(error, f"{out}: cannot write the bundle") from None
    return ExportSummary(
        path=out,
        vote_id=vote_id,
        messages=len(raws),
        bytes=len(data),
        publication=Publication(bundle_sha256(data), manifest.chain.head, manifest.signer_sha256),
    )


def read_bundle(path: Path) -> bytes:
    """A bundle file's bytes for `audit_bundle`, refusing files no bundle could be."""
    return read_bounded(path, MAX_BUNDLE_BYTES, "bundle", UsageError)


PENDING_SUFFIX = ".zip.pending"


def bundle_name(vote_id: str, head: str) -> str:
    """The published bundle's file name: the vote, then the beginning of the chain head it states."""
    return f"{vote_id}-{head[:12]}.zip"


@dataclass(frozen=True)
class PendingBundle:
    """A bundle written aside, under a hidden name holding its whole head, until what it states is committed."""

    pending: Path
    path: Path
    publication: Publication


def _move_into_place(pending: Path, path: Path) -> None:
    """Publish a bundle written aside, durably; one already published under its name is kept, never replaced."""
    if path.exists():
        pending.unlink(missing_ok=True)
        return
    try:
        os.rename(pending, path)
    except FileNotFoundError:
        if not path.exists():  # another process, settling, moved it into place first
            raise
    fsync_directory(path.parent)


def _pending_of(path: Path) -> tuple[str, str]:
    """The vote and the whole head a pending bundle's name holds."""
    vote_id, _, head = path.name[1 : -len(PENDING_SUFFIX)].rpartition("-")
    return vote_id, head


def _write_aside(service: Service, vote_id: str) -> PendingBundle:
    head = service.ledger.events(vote_id)[-1].hash
    published = service.config.records_dir
    pending = published / f".{vote_id}-{head}{PENDING_SUFFIX}"
    summary = export_bundle(service, vote_id, pending)
    return PendingBundle(pending, published / bundle_name(vote_id, head), summary.publication)


@contextmanager
def bundles_on_commit(service: Service) -> Iterator[Callable[[str], Publication]]:
    """Around a transaction that closes a vote: its bundle written aside, moved into place once it committed.

    Enter it before the transaction (`with bundles_on_commit(s) as bundle_of, s.ledger.transaction():`); the
    function it gives writes the bundle of the vote's head as it stands in the transaction. If the transaction
    fails, the bundle goes with it; if the process dies before moving it into place, `settle_bundles` does it.
    """
    written: list[PendingBundle] = []

    def bundle_of(vote_id: str) -> Publication:
        written.append(_write_aside(service, vote_id))
        return written[-1].publication

    try:
        yield bundle_of
    except BaseException:
        for bundle in written:
            bundle.pending.unlink(missing_ok=True)
        raise
    for bundle in written:
        _move_into_place(bundle.pending, bundle.path)


def settle_bundles(service: Service, vote_id: str | None = None) -> None:
    """Bundles left aside by a process that died while closing: published if the ledger holds their head,
    removed otherwise, so that no bundle is ever published that the ledger does not back.

    It runs under the ledger's write lock, which a closing process holds until it has committed: a bundle
    whose head is not in the ledger then is one whose transaction never committed.
    """
    folder = service.config.records_dir
    pattern = f".{vote_id or '*'}-*{PENDING_SUFFIX}"
    if not any(folder.glob(pattern)):
        return
    with service.ledger.transaction():
        for pending in sorted(folder.glob(pattern)):
            owner, head = _pending_of(pending)
            if any(event.hash == head for event in service.ledger.events(owner)):
                _move_into_place(pending, folder / bundle_name(owner, head))
            else:
                pending.unlink(missing_ok=True)


def published_bundle(service: Service, vote_id: str, folder: Path) -> PublishedBundle:
    """The bundle of a closed vote as of its chain's head, named after that head; written once, never replaced.

    Closing a vote writes it under `service.records_dir` and the results
    email quotes its SHA-256; a record made later quotes the same file (copied
    when written elsewhere), unless statements received after the close have
    moved the head on, which gives a new bundle beside it.
    """
    published = service.config.records_dir
    with service.ledger.transaction():  # the head cannot move while its bundle is written
        settle_bundles(service, vote_id)
        head = service.ledger.events(vote_id)[-1].hash
        name = bundle_name(vote_id, head)
        if not (published / name).exists():
            export_bundle(service, vote_id, published / name)
    data = (published / name).read_bytes()
    if folder.resolve() != published.resolve():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_file_atomically(folder / name, data, mode=0o644)
        except OSError as error:
            raise UsageError(f"{folder}: cannot write the bundle: {error.strerror or error}") from None
    publication = Publication(bundle_sha256(data), head, fingerprint(service.keys.signer.certificate))
    return PublishedBundle(folder / name, publication)


@dataclass(frozen=True)
class Record:
    html: Path
    text: Path
    bundle: PublishedBundle | None
    """None while the vote is open."""


def write_record(service: Service, vote_id: str, folder: Path) -> Record:
    """The public record in HTML and text; for a closed vote, with the bundle of the vote as it now stands.

    Checked first as a bundle is (`integrity`): a record shows the votes and
    explanations whether or not a bundle is written with it.
    """
    from voting.record import record_html, record_text

    with service.ledger.transaction():  # the record, its check and its bundle of one state of the ledger
        damage = publication_damage(service.ledger, vote_id, service.keys.signer)
        if damage:
            raise LedgerError(f"no record of vote {vote_id} is written: {damage_text(damage)}")
        vote = service.ledger.vote(vote_id)
        bundle = None if vote.is_open else published_bundle(service, vote_id, folder)
        board = service.board(vote_id)
    publication = bundle.publication if bundle else None
    words = service.secretariat_words()
    paths = {"html": folder / f"{vote_id}.html", "text": folder / f"{vote_id}.txt"}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_file_atomically(paths["html"], record_html(board, publication, words).encode(), mode=0o644)
        write_file_atomically(paths["text"], record_text(board, publication, words).encode(), mode=0o644)
    except OSError as error:
        raise UsageError(f"{folder}: cannot write the record: {error.strerror or error}") from None
    return Record(paths["html"], paths["text"], bundle)
