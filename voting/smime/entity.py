"""Which entity of a message is the signed one, found on its raw bytes (docs/design.md §2.2, checks 1 to 3).

The signed entity is sliced out of the bytes as received (line endings
canonicalised to CRLF), never re-serialised, after the whole message was
walked within the bounds of `voting.mime`. It is the message itself, or, for
a message encrypted to the secretariat, the entity its envelope holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from voting.mime import (
    MAX_MIME_DEPTH,
    Headers,
    Part,
    content_type,
    crlf,
    decode_transfer,
    multipart_parts,
    parts,
    split_entity,
    too_complex,
)
from voting.pki import Identity
from voting.reasons import Reason, Rejected
from voting.smime.cms import OID_ENCRYPTED, OID_SIGNED_DATA, ContentInfo, econtent, read_content_info
from voting.smime.decrypt import ContentKey, Decrypted, open_envelope

MAX_MESSAGE_BYTES = 25 * 1024 * 1024

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_OPAQUE_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_ENCRYPTED_SMIME_TYPES = frozenset({"enveloped-data", "authenveloped-data"})


def _is_multipart_signed(part: Part) -> bool:
    return part.type == "multipart/signed" and bool(part.content_type.get_boundary())


def _first_parts(walked: Sequence[Part], at: int) -> list[Part]:
    """`walked[at]` and, while it is a multipart/signed, its first part, as `parts` found them.

    The walk is depth first, so a multipart's first part, if it has one, is
    the next entity found, one level down.
    """
    chain = [walked[at]]
    while _is_multipart_signed(chain[-1]) and at + 1 < len(walked) and walked[at + 1].depth == chain[-1].depth + 1:
        at += 1
        chain.append(walked[at])
    return chain


def _read_first_parts(entity: bytes, depth: int) -> list[Part]:
    """`_first_parts` of an entity no walk has read (the content a signature embeds), as far as it can be read."""
    chain: list[Part] = []
    while True:
        if depth > MAX_MIME_DEPTH:
            raise too_complex(f"more than {MAX_MIME_DEPTH} levels of nesting")
        try:
            data = crlf(entity)
            headers, body = split_entity(data)
            ctype = content_type(headers)
            boundary = ctype.get_boundary() if ctype.get_content_type() == "multipart/signed" else None
            signed_parts, closed = multipart_parts(body, boundary) if boundary else ([], True)
        except Rejected as rejected:
            if rejected.reason in (Reason.TOO_LARGE, Reason.TOO_COMPLEX):
                raise
            return chain
        chain.append(Part(headers, body, ctype, depth, data, closed))
        if not signed_parts:
            return chain
        entity, depth = signed_parts[0], depth + 1


def _is_encrypted(chain: Sequence[Part]) -> bool:
    """Whether signed content is, under any layers of signature, an encrypted entity.

    `chain` is the content and its first parts down its layers of multipart
    signature (`_first_parts`). A verifier that holds no decryption key cannot
    read such a ballot, so it is rejected as encrypted before anything else is
    checked about the signature.
    """
    if not chain or _is_multipart_signed(chain[-1]):  # unreadable, or a signature over nothing
        return False
    part = chain[-1]
    if part.type not in _OPAQUE_TYPES:
        return False
    if str(part.content_type.get_param("smime-type", "")).lower() in _ENCRYPTED_SMIME_TYPES:
        return True
    try:
        info = read_content_info(decode_transfer(part.headers, part.body))
        kind = info.content_type
        if kind in OID_ENCRYPTED:
            return True
        inner = econtent(info) if kind == OID_SIGNED_DATA else None
    except Rejected as rejected:
        if rejected.reason in (Reason.TOO_LARGE, Reason.TOO_COMPLEX):
            raise
        return False
    return inner is not None and _is_encrypted(_read_first_parts(inner, part.depth + 1))


def _is_signature(part: Part) -> bool:
    return part.type == "multipart/signed" or part.type in _SIGNATURE_TYPES or part.type in _OPAQUE_TYPES


@dataclass(frozen=True)
class _Signed:
    """What the MIME layer hands to the CMS layer."""

    headers: Headers
    content: bytes
    """The signed bytes: the embedded content as signed, or the first part of a multipart/signed, already CRLF
    as a slice of the message's canonical bytes."""
    info: ContentInfo
    detached: bool
    parts: tuple[Part, ...]
    """The entities of `content`, as the walk of the message found them (attached messages opened)."""


def _signed_entity(raw: bytes) -> _Signed:
    """Checks 1-3: bounds, the top-level entity is the signed one, and its content sliced out.

    The whole message is walked within the bounds of `voting.mime` first, and
    the content embedded in an opaque signature before it is looked into, so
    that nothing costly is done with a message that exceeds them.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Rejected(Reason.TOO_LARGE)
    entities = parts(crlf(raw))
    headers, body, message = entities[0].headers, entities[0].body, entities[0].content_type
    ctype = message.get_content_type()
    if ctype == "multipart/signed":
        protocol = str(message.get_param("protocol", "")).lower()
        boundary = message.get_boundary()
        if protocol not in _SIGNATURE_TYPES:
            raise Rejected(Reason.NOT_SIGNED)
        if not boundary:
            raise Rejected(Reason.MALFORMED_MIME)
        places = [at for at, part in enumerate(entities) if part.depth == 1]
        if len(places) > 2:
            raise Rejected(Reason.NOT_ENTIRELY_SIGNED)
        if len(places) < 2 or not entities[0].closed:
            raise Rejected(Reason.MALFORMED_MIME)
        content, signature = entities[places[0]], entities[places[1]]
        if signature.type not in _SIGNATURE_TYPES:
            raise Rejected(Reason.MALFORMED_MIME)
        if _is_encrypted(_first_parts(entities, 1)):
            raise Rejected(Reason.ENCRYPTED)
        info = read_content_info(decode_transfer(signature.headers, signature.body))
        if info.content_type != OID_SIGNED_DATA:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
        return _Signed(headers, content.entity, info, detached=True, parts=tuple(entities[1 : places[1]]))
    if ctype in _OPAQUE_TYPES:
        said_encrypted = str(message.get_param("smime-type", "")).lower() in _ENCRYPTED_SMIME_TYPES
        try:
            info = read_content_info(decode_transfer(headers, body))
            kind = info.content_type
        except Rejected:
            if said_encrypted:
                raise Rejected(Reason.ENCRYPTED) from None
            raise
        if kind in OID_ENCRYPTED:
            # The envelope travels with the reason, for a verifier that holds a key to open it.
            raise Rejected(Reason.ENCRYPTED, envelope=info.der, headers=headers)
        if said_encrypted:
            raise Rejected(Reason.ENCRYPTED)
        if kind != OID_SIGNED_DATA:
            raise Rejected(Reason.NOT_SIGNED)
        embedded = econtent(info)
        if embedded is None:
            raise Rejected(Reason.BAD_CMS_STRUCTURE)
        walked = parts(crlf(embedded), depth=1)
        if _is_encrypted(_first_parts(walked, 0)):
            raise Rejected(Reason.ENCRYPTED)
        return _Signed(headers, embedded, info, detached=False, parts=tuple(walked))
    if ctype in _SIGNATURE_TYPES:
        raise Rejected(Reason.NOT_SIGNED)
    if any(_is_signature(part) for part in entities):
        raise Rejected(Reason.NOT_ENTIRELY_SIGNED)
    raise Rejected(Reason.NOT_SIGNED)


def decrypt_message(raw: bytes, decryption: Identity | ContentKey) -> Decrypted | None:
    """The entity inside a message encrypted to us (what the audit bundle carries beside it), else None."""
    try:
        return opened(raw, decryption)[1]
    except Rejected as rejected:
        return rejected.known.get("decrypted")
    except RecursionError:
        return None


def opened(raw: bytes, decryption: Identity | ContentKey | None) -> tuple[_Signed, Decrypted | None]:
    """The signed entity: the message itself, or, for a message encrypted to us, the entity inside.

    Inside an envelope, the signed entity is checked by the same rules as a
    whole message (a second envelope is not opened), and the From checked is
    the outer message's: the encrypted entity carries no headers of its own.
    """
    try:
        return _signed_entity(raw), None
    except Rejected as rejected:
        envelope = rejected.known.get("envelope")
        if envelope is None or decryption is None:
            raise
        decrypted = open_envelope(envelope, decryption)
        try:
            inner = _signed_entity(decrypted.entity)
        except Rejected as inner_rejected:
            raise Rejected(inner_rejected.reason, inner_rejected.detail, decrypted=decrypted) from None
        return replace(inner, headers=rejected.known["headers"]), decrypted
