"""What names a published audit bundle, written the same way wherever it is printed.

One hash names a bundle: the SHA-256 of the bundle file's bytes. The results
email states it with the vote's hash-chain head and the fingerprint of the
secretariat's signing certificate; `voting export`, `voting record` and
`voting audit` print the same lines, and `voting audit --results` reads them
back from the signed text of the results email.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

BUNDLE_SHA256 = "Audit bundle SHA-256"
CHAIN_HEAD = "Hash-chain head"
SIGNER_SHA256 = "Secretariat signing certificate SHA-256"


def bundle_sha256(data: bytes) -> str:
    """The name of a bundle: the SHA-256 of its file's bytes, lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def line(label: str, sha256: str) -> str:
    """`Label: <64 hex>`, as every output prints it and `stated` reads it."""
    return f"{label}: {sha256}"


class Publication(NamedTuple):
    """A closed vote's bundle as published with its results."""

    bundle_sha256: str
    chain_head: str
    signer_sha256: str
    """Fingerprint of the secretariat's signing certificate, which signed the bundle and the results."""

    def lines(self) -> list[str]:
        return [
            line(BUNDLE_SHA256, self.bundle_sha256),
            line(CHAIN_HEAD, self.chain_head),
            line(SIGNER_SHA256, self.signer_sha256),
        ]


def stated(text: str, label: str) -> list[str]:
    """Every SHA-256 that a line of `text` states under `label`, that line starting at its first column.

    A delegation's own words are quoted behind a mark (`quoting.QUOTE`), so
    they can never start such a line.
    """
    pattern = re.compile(rf"^{re.escape(label)}: ([0-9a-f]{{64}})$", re.MULTILINE)
    return pattern.findall(text.replace("\r\n", "\n"))
