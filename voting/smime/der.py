"""BER read in place (X.690): where each element of a CMS structure starts and ends, and the few values a check needs.

An element is its identifier octet and four offsets into the bytes, never a
copy, and only the elements a check reads are looked at: a certificate is
skipped by its length, a definite-length field no check reads too.
Definite and indefinite lengths, constructed strings and high tag numbers are
read as mail clients send them; every malformation (truncation, a length past
its container, an indefinite length on a primitive, indefinite lengths nested
deeper than `MAX_INDEFINITE_DEPTH`) is `Reason.BAD_CMS_STRUCTURE`. Which
elements a CMS structure must hold is `voting.smime.cms`'s.
"""

from __future__ import annotations

from voting.reasons import Reason, Rejected

Element = tuple[int, int, int, int, int]
"""An element's identifier octet, where it starts, where its contents start and end, and where it ends.

An indefinite length's end-of-contents octets lie between the last two.
For a high tag number the identifier octet is the one that announces it.
"""

MAX_INDEFINITE_DEPTH = 10
"""Indefinite lengths nested in one another. Their ends are found by reading what they hold, recursively; a
streamed signature nests six. The bound is asn1crypto's, which read these structures before, so that the
same message gets the same answer."""

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
CONSTRUCTED = 0x20


def malformed() -> Rejected:
    """What every encoding fault is, whichever element it is in."""
    return Rejected(Reason.BAD_CMS_STRUCTURE)


def element(data: bytes, at: int, end: int, depth: int = 0) -> Element:
    """The element at `at`, which must end by `end`."""
    if depth > MAX_INDEFINITE_DEPTH or at >= end:
        raise malformed()
    start = at
    identifier = data[at]
    at += 1
    if identifier & 0x1F == 0x1F:
        number = 0
        while True:
            if at >= end:
                raise malformed()
            byte = data[at]
            at += 1
            if byte == 0x80 and not number:
                raise malformed()  # a tag number must be minimal
            number = number << 7 | byte & 0x7F
            if not byte & 0x80:
                break
        if number < 31:
            raise malformed()
    if at >= end:
        raise malformed()
    length = data[at]
    at += 1
    if length < 0x80:
        contents_end = at + length
    elif length > 0x80:
        octets = length & 0x7F
        if at + octets > end:
            raise malformed()
        contents_end = at + octets + int.from_bytes(data[at : at + octets], "big")
        at += octets
    else:
        if not identifier & CONSTRUCTED:
            raise malformed()
        contents_end = at
        while contents_end + 2 > end or data[contents_end] or data[contents_end + 1]:
            contents_end = element(data, contents_end, end, depth + 1)[4]
        return identifier, start, at, contents_end, contents_end + 2
    if contents_end > end:
        raise malformed()
    return identifier, start, at, contents_end, contents_end


def only(data: bytes, start: int, end: int) -> Element:
    """The one element that fills `data[start:end]`: DER and BER allow nothing after it."""
    found = element(data, start, end)
    if found[4] != end:
        raise malformed()
    return found


def children(data: bytes, parent: Element) -> list[Element]:
    """The elements a constructed element holds, in order."""
    if not parent[0] & CONSTRUCTED:
        raise malformed()
    at, end = parent[2], parent[3]
    found = []
    while at < end:
        child = element(data, at, end)
        found.append(child)
        at = child[4]
    return found


def tagged(found: Element, identifier: int) -> Element:
    """`found`, if its identifier octet is `identifier`."""
    if found[0] != identifier:
        raise malformed()
    return found


def octets(data: bytes, found: Element, identifier: int = OCTET_STRING) -> bytes:
    """An OCTET STRING's value (`identifier` for one implicitly tagged), primitive or in indefinite-length chunks."""
    kind, _, start, end, stop = found
    if kind == identifier:
        return data[start:end]
    if kind == identifier | CONSTRUCTED and stop != end:
        return b"".join(octets(data, chunk) for chunk in children(data, found))
    raise malformed()


def integer(data: bytes, found: Element) -> int:
    _, _, start, end, _ = tagged(found, INTEGER)
    return int.from_bytes(data[start:end], "big", signed=True)


_DOTTED: dict[bytes, str] = {}
MAX_DOTTED = 1024


def oid(data: bytes, found: Element) -> str:
    """An OBJECT IDENTIFIER in dotted form, each encoding decoded once: a signature names the same dozen."""
    _, _, start, end, _ = tagged(found, OID)
    encoded = data[start:end]
    dotted = _DOTTED.get(encoded)
    if dotted is None:
        dotted = _dotted(encoded)
        if len(_DOTTED) < MAX_DOTTED:
            _DOTTED[encoded] = dotted
    return dotted


def _dotted(encoded: bytes) -> str:
    """Base-128 arcs, the first two in one; an unfinished last arc is left out, as asn1crypto did."""
    arcs: list[int] = []
    part = 0
    for byte in encoded:
        part = part << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.extend(((2, part - 80) if part >= 80 else divmod(part, 40)) if not arcs else (part,))
            part = 0
    return ".".join(map(str, arcs))
