"""Test-only key material and signed mail: certificates made with cryptography, mail signed by the openssl CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2050, 1, 1, tzinfo=UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Identity:
    """A key and its certificate, plus the CA that issued it."""

    key: PrivateKey
    certificate: x509.Certificate
    issuer: x509.Certificate


@cache
def make_key(kind: str) -> PrivateKey:
    """One key per kind for the whole run: RSA generation is slow."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves = {"p224": ec.SECP224R1(), "p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
    return ec.generate_private_key(curves[kind])


def _name(common_name: str, email: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if email is not None:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    return x509.Name(attributes)


@cache
def make_ca(name: str = "Test Secretariat CA") -> Identity:
    key = make_key("p256") if name == "Test Secretariat CA" else ec.generate_private_key(ec.SECP256R1())
    subject = _name(name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(key, certificate, certificate)


def make_identity(
    email: str = "fra@delegations.example",
    *,
    key_kind: str = "rsa2048",
    usages: tuple[x509.ObjectIdentifier, ...] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    san: bool = True,
    subject_email: bool = False,
    not_before: datetime = NOT_BEFORE,
    not_after: datetime = NOT_AFTER,
    ca: Identity | None = None,
) -> Identity:
    """An end-entity S/MIME certificate with the secretariat's modern profile (each part switchable)."""
    issuer = ca or make_ca()
    key = make_key(key_kind)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(email, email if subject_email else None))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return Identity(key, builder.sign(issuer.key, hashes.SHA256()), issuer.certificate)


def openssl() -> str:
    """The openssl binary; a missing tool fails the test loudly rather than skipping it."""
    path = shutil.which("openssl")
    assert path is not None, "the openssl CLI is required by these tests (apt-get install openssl)"
    return path


def write_pem(directory: Path, stem: str, identity: Identity) -> tuple[Path, Path]:
    key_path = directory / f"{stem}.key.pem"
    cert_path = directory / f"{stem}.cert.pem"
    key_path.write_bytes(
        identity.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(identity.certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def run_openssl(*arguments: str | Path, stdin: bytes = b"") -> bytes:
    result = subprocess.run(
        [openssl(), *map(str, arguments)], input=stdin, capture_output=True, check=False, timeout=60
    )
    assert result.returncode == 0, f"openssl {arguments[:2]} failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


ENTITY = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"Vote-ID: unsc-2020-0007\r\n"
    b"Ballot-Token: 3q2+7w0F8xH1m9kz0bA1Rg\r\n"
    b"\r\n"
    b"S/2020/654: YES\r\n"
)


def headers(sender: str = "fra@delegations.example") -> bytes:
    return (
        f"From: {sender}\r\n"
        "To: votes@secretariat.example\r\n"
        "Subject: Re: Ballot unsc-2020-0007\r\n"
        "Date: Wed, 08 Jul 2020 10:00:00 +0000\r\n"
        "Message-ID: <reply-1@delegations.example>\r\n"
    ).encode("ascii")


def openssl_sign(
    directory: Path,
    identity: Identity,
    *options: str,
    entity: bytes = ENTITY,
    sender: str = "fra@delegations.example",
    digest: str = "sha256",
    command: str = "cms",
) -> bytes:
    """A reply signed by `openssl cms -sign` (or `openssl smime -sign`; detached unless -nodetach is given).

    From, To and Subject are prepended. For -certfile, an `{issuer}` option
    stands for a PEM file holding the issuer, `{chain}` for one holding the
    issuer then the signer.
    """
    key_path, cert_path = write_pem(directory, "signer", identity)
    issuer_path, chain_path = directory / "issuer.pem", directory / "chain.pem"
    issuer_path.write_bytes(identity.issuer.public_bytes(serialization.Encoding.PEM))
    chain_path.write_bytes(issuer_path.read_bytes() + cert_path.read_bytes())
    files = {"{issuer}": str(issuer_path), "{chain}": str(chain_path)}
    entity_path = directory / "entity.txt"
    entity_path.write_bytes(entity)
    signed = run_openssl(
        command, "-sign", "-in", entity_path, "-signer", cert_path, "-inkey", key_path, "-md", digest,
        *(files.get(option, option) for option in options),
    )
    return headers(sender) + signed


def openssl_verifies(directory: Path, message: bytes, ca: x509.Certificate) -> bool:
    """Whether `openssl cms -verify -CAfile` accepts the message (the independent second opinion)."""
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    message_path = directory / "message.eml"
    message_path.write_bytes(message)
    result = subprocess.run(
        [openssl(), "cms", "-verify", "-in", message_path, "-CAfile", ca_path, "-purpose", "smimesign", "-out", "/dev/null"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    return result.returncode == 0


def openssl_encrypt(directory: Path, entity: bytes, recipient: x509.Certificate, *options: str) -> bytes:
    """`openssl cms -encrypt` of a MIME entity (a signed reply, say) to a certificate: a whole pkcs7-mime entity.

    `options` follow `-recip`, so `-keyopt` applies to that recipient.
    """
    cert_path = directory / "recipient.cert.pem"
    cert_path.write_bytes(recipient.public_bytes(serialization.Encoding.PEM))
    return run_openssl("cms", "-encrypt", "-recip", cert_path, *options, stdin=entity)


@dataclass(frozen=True)
class GnuPG:
    """A GnuPG home of its own, driven through gpgsm's command line."""

    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.home)}

    def gpgsm(
        self, *arguments: str | Path, stdin: bytes = b"", check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """`gpgsm --batch --status-fd 1 ...`; a failure with `check` shows gpgsm's own words."""
        result = subprocess.run(
            ["gpgsm", "--batch", "--status-fd", "1", *map(str, arguments)],
            input=stdin, capture_output=True, env=self.env, check=False, timeout=60,
        )
        assert not check or result.returncode == 0, (
            f"gpgsm {arguments[:2]} failed: {result.stderr.decode(errors='replace')}"
        )
        return result

    def import_pkcs12(self, data: bytes, password: bytes) -> str:
        """Import a PKCS#12 file (the non-interactive recipe of docs/smime.md, mutt section); returns the key's fingerprint."""
        path = self.home / "identity.p12"
        path.write_bytes(data)
        self.gpgsm("--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", path, stdin=password + b"\n")
        listing = self.gpgsm("--list-secret-keys", "--with-colons").stdout.decode()
        fingerprints = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        assert len(fingerprints) == 1, listing
        return fingerprints[0]

    def trust(self, ca: x509.Certificate) -> None:
        """Import a CA and mark it trusted for S/MIME (trustlist.txt: SHA-1 fingerprint and `S`)."""
        path = self.home / "ca.pem"
        path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.gpgsm("--import", path)
        with (self.home / "trustlist.txt").open("a") as trustlist:
            trustlist.write(f"{ca.fingerprint(hashes.SHA1()).hex(':').upper()} S\n")


@contextmanager
def gnupg_home(*agent_options: str) -> Iterator[GnuPG]:
    """A fresh GNUPGHOME (short, under /tmp: agent sockets live there), its agent killed afterwards.

    CRL checks are off: the secretariat's certificates name no CRL to fetch.
    """
    for tool in ("gpgsm", "gpg-agent", "gpgconf"):
        assert shutil.which(tool), f"{tool} is required by these tests (apt-get install gpgsm gpg-agent)"
    home = Path(tempfile.mkdtemp(prefix="gnupg-", dir="/tmp"))
    options = ("allow-loopback-pinentry", *agent_options)
    (home / "gpg-agent.conf").write_text("".join(f"{option}\n" for option in options))
    (home / "gpgsm.conf").write_text("disable-crl-checks\n")
    gnupg = GnuPG(home)
    try:
        yield gnupg
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=gnupg.env, capture_output=True, check=False, timeout=30)
        shutil.rmtree(home, ignore_errors=True)
