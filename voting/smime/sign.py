"""Signing: detached CMS signatures over exact bytes, and multipart/signed entities that send the bytes signed."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from voting.mime import crlf

_MICALG = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}


def sign_detached_der(
    data: bytes, key: pkcs7.PKCS7PrivateKeyTypes, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> bytes:
    """A detached CMS signature (DER) over the bytes exactly as given, SHA-256, with signingTime."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(certificate, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    return builder.sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
    )


def _boundary(entity: bytes) -> str:
    while True:
        boundary = f"----=_vote_{secrets.token_hex(16)}"
        if boundary.encode("ascii") not in entity:
            return boundary


def sign_entity(
    entity: bytes, key: pkcs7.PKCS7PrivateKeyTypes, certificate: x509.Certificate, chain: Sequence[x509.Certificate] = ()
) -> bytes:
    """Wrap a 7-bit MIME entity in a multipart/signed entity (MIME-Version and Content-Type + body, CRLF).

    The caller prepends From/To/Subject/Date/Message-ID. The signature is over
    the CRLF form of `entity`, which is also what is embedded, so the bytes
    signed are the bytes sent.
    """
    canonical = crlf(entity)
    if not canonical.isascii():
        raise ValueError("the entity to sign must be 7-bit: encode its body as quoted-printable or base64")
    if any(len(line) > 998 for line in canonical.split(b"\r\n")):
        raise ValueError("the entity to sign has a line longer than 998 octets")
    signature = base64.encodebytes(sign_detached_der(canonical, key, certificate, chain))
    boundary = _boundary(canonical)
    micalg = _MICALG["sha256"]
    return b"".join(
        [
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
            f' micalg={micalg}; boundary="{boundary}"\r\n'.encode("ascii"),
            b"\r\nThis is an S/MIME signed message.\r\n",
            f"\r\n--{boundary}\r\n".encode("ascii"),
            canonical,
            f"\r\n--{boundary}\r\n".encode("ascii"),
            b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n",
            crlf(signature).rstrip(b"\r\n"),
            f"\r\n--{boundary}--\r\n".encode("ascii"),
        ]
    )
