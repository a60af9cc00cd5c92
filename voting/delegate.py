"""The delegate's side of key custody: the delegation's key made, and kept, on the delegate's own machine.

`make_request` writes the key and the certificate request that `voting keys
sign` certifies at the secretariat; `bundle_pkcs12` joins the key with the
certificate sent back, for the mail client. The secretariat never sees the key.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.x509.oid import NameOID

from voting.errors import UsageError
from voting.files import write_file_atomically
from voting.model import CODE_PATTERN
from voting.pki import (
    Identity,
    identity_of,
    key_sha256,
    new_request,
    pkcs12_bytes,
    read_certificate_chain,
    read_private_key,
    write_private_key,
    write_request,
)


@dataclass(frozen=True)
class Request:
    key_path: Path
    request_path: Path
    key_sha256: str
    """Read to the secretariat by telephone: `keys sign` prints the same for the request it received."""
    password: bytes
    generated: bool
    """Whether the passphrase was made here, and so must be shown to the delegate once."""


def make_request(folder: Path, code: str, email: str, password: bytes) -> Request:
    """CODE.key (encrypted with `password`, or a new passphrase) and CODE-request.pem in `folder`."""
    if not re.fullmatch(CODE_PATTERN, code):
        raise UsageError(f"{code!r} is not a delegation code such as FRA (capital letters and digits)")
    key_path, request_path = folder / f"{code}.key", folder / f"{code}-request.pem"
    if key_path.exists():
        raise UsageError(f"{key_path} exists already: it may be the key of a request sent earlier; refusing to replace it")
    chosen = password or secrets.token_urlsafe(12).encode()
    key, request = new_request(code, email)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{folder}: cannot create the folder: {error.strerror or error}") from None
    write_private_key(key_path, key, chosen)
    write_request(request_path, request)
    return Request(key_path, request_path, key_sha256(request), chosen, generated=not password)


def bundle_pkcs12(certificate_path: Path, key_path: Path, out: Path, password: bytes, *, legacy: bool) -> Identity:
    """The key and the certificate the secretariat sent back (with its CA) as a PKCS#12 under the key's passphrase."""
    if out.exists():
        raise UsageError(f"{out} exists already; refusing to replace it")
    identity = identity_of(read_private_key(key_path, password), read_certificate_chain(certificate_path),
                           str(certificate_path))
    names = identity.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else identity.certificate.subject.rfc4514_string()
    try:
        write_file_atomically(out, pkcs12_bytes(identity, password, friendly_name=name, legacy=legacy), mode=0o600)
    except OSError as error:
        raise UsageError(f"{out}: cannot write: {error.strerror or error}") from None
    return identity
