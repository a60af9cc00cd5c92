"""Certificates: fingerprints and mailboxes, the secretariat CA, issuing and PKCS#12.

Everything here takes and returns values, except the few functions named
`read_*`/`write_*` and `SecretariatKeys`, which are the file edge for keys and
certificates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

from asn1crypto import core as asn1, pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
)

from voting.errors import KeyMaterialError, UsageError
from voting.files import read_bounded, write_file_atomically

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
"""The key types the product signs with (docs/design.md §2.2: RSA ≥ 2048 and ECDSA)."""

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

MIN_RSA_BITS = 2048
SIGNING_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
"""The keys a delegation's request may carry: those whose signatures the service accepts."""

MAX_FILE_BYTES = 1 << 20
"""Largest key, certificate or PKCS#12 file read: real ones are a few kilobytes."""

CLOCK_SKEW = dt.timedelta(minutes=5)
"""Certificates start this much before issue, so a signer whose clock lags can use them at once."""

LEGACY_PKCS12_ROUNDS = 2048
"""Iterations of the legacy profile: what `openssl pkcs12 -export -legacy` uses."""

SECRETARIAT_SIGNING = x509.ObjectIdentifier("2.25.157778840078424389692498156723365091939")
"""The extended key usage of the secretariat's signing role (docs/audit.md): it signs the audit bundles and
the results. A UUID-based OID (ITU-T X.667, arc 2.25), the project's own; only `SecretariatKeys` puts it in a
certificate, and no delegation's certificate may carry it, so the role tells the secretariat from a delegation
whose certificate the same CA issued."""

_MAILBOX = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class Identity:
    """A private key with its certificate and the issuers above it, nearest first."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: the pin by which delegations are registered."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def mailboxes(certificate: x509.Certificate | x509.CertificateSigningRequest) -> tuple[str, ...]:
    """The certificate's (or a request's) email addresses, lowercased.

    The subjectAltName rfc822Names when the extension is present; otherwise,
    for older certificates (the Thunderbird test set among them), the
    subject's emailAddress attributes.
    """
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return tuple(
            str(attribute.value).lower()
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        )
    return tuple(name.lower() for name in san.get_values_for_type(x509.RFC822Name))


# --- issuing -------------------------------------------------------------------------------------


def _name(common_name: str, organization: str | None) -> x509.Name:
    if not common_name.strip():
        raise UsageError("a certificate needs a non-empty common name")
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _validity(not_before: dt.datetime | None, days: int) -> tuple[dt.datetime, dt.datetime]:
    if days < 1:
        raise UsageError(f"a certificate must be valid for at least one day, not {days}")
    start = not_before if not_before is not None else dt.datetime.now(dt.UTC) - CLOCK_SKEW
    if start.tzinfo is None:
        raise UsageError("not_before must carry a time zone")
    return start, start + dt.timedelta(days=days)


def _serial() -> int:
    """A positive serial of 128 random bits (the CA/B S/MIME BR ask for at least 64)."""
    return secrets.randbelow(2**128 - 1) + 1


def _key_usage(
    *,
    digital_signature: bool = False,
    non_repudiation: bool = False,
    cert_sign: bool = False,
    key_encipherment: bool = False,
    key_agreement: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=non_repudiation,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(common_name: str, organization: str, *, days: int = 3650) -> Identity:
    """A self-signed ECDSA P-384 root that may issue end-entity certificates only (pathlen 0)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name(common_name, organization)
    start, end = _validity(None, days)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return Identity(key=key, certificate=certificate)


def _check_mailbox(address: str) -> str:
    """The address lowercased, as the electorate keeps addresses and `mailboxes` reads them."""
    if not _MAILBOX.fullmatch(address):
        raise UsageError(f"{address!r} is not a plain ASCII mailbox address (local@domain)")
    return address.lower()


def is_ca(certificate: x509.Certificate) -> bool:
    """Whether basicConstraints marks it a CA: such a certificate issues others and never signs a ballot."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def issue_signing_certificate(
    ca: Identity,
    *,
    common_name: str,
    emails: Sequence[str],
    organization: str | None = None,
    days: int = 825,
    key_type: Literal["rsa", "ec"] = "rsa",
    not_before: dt.datetime | None = None,
    encryption: bool = False,
    secretariat_role: bool = False,
    key: PrivateKey | None = None,
) -> Identity:
    """A new key and an S/MIME signing certificate for it, in the modern profile (RFC 8550/8551, CA/B S/MIME BR).

    RSA-2048 by default because every mail client imports it; "ec" gives P-256.
    `encryption` also lets mail clients encrypt to it (keyEncipherment for
    RSA, keyAgreement for EC): the secretariat's certificate needs that, so
    that a delegation may send its ballot encrypted. `secretariat_role` adds
    the SECRETARIAT_SIGNING usage, for the secretariat's signer only. `key`
    certifies an existing key instead of making one.
    """
    if key is None:
        key = rsa.generate_private_key(65537, 2048) if key_type == "rsa" else ec.generate_private_key(ec.SECP256R1())
    certificate = certify_key(
        ca, key.public_key(), common_name=common_name, emails=emails, organization=organization, days=days,
        not_before=not_before, encryption=encryption, secretariat_role=secretariat_role,
    )
    return Identity(key=key, certificate=certificate, chain=(ca.certificate, *ca.chain))


def certify_key(
    ca: Identity,
    public_key: PublicKey,
    *,
    common_name: str,
    emails: Sequence[str],
    organization: str | None = None,
    days: int = 825,
    not_before: dt.datetime | None = None,
    encryption: bool = False,
    secretariat_role: bool = False,
) -> x509.Certificate:
    """An S/MIME signing certificate for a key the CA never sees: the one a delegation's request carries.

    `secretariat_role` adds the SECRETARIAT_SIGNING usage, for the secretariat's signer only.
    """
    if not emails:
        raise UsageError("a signing certificate needs at least one email address")
    addresses = [_check_mailbox(address) for address in emails]
    if not is_ca(ca.certificate):
        raise KeyMaterialError(f"{ca.certificate.subject.rfc4514_string()} is not a CA certificate")
    usages = [ExtendedKeyUsageOID.EMAIL_PROTECTION, *([SECRETARIAT_SIGNING] if secretariat_role else [])]
    start, end = _validity(not_before, days)
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(
                digital_signature=True,
                non_repudiation=True,
                key_encipherment=encryption and is_rsa,
                key_agreement=encryption and not is_rsa,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(a) for a in addresses]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA384() if isinstance(ca.key, ec.EllipticCurvePrivateKey) else hashes.SHA256())
    )


def has_secretariat_role(certificate: x509.Certificate) -> bool:
    """Whether the certificate's extendedKeyUsage lists SECRETARIAT_SIGNING; an unreadable one does not."""
    try:
        return SECRETARIAT_SIGNING in certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return False


def _require_email_protection(
    _policy: object, _certificate: x509.Certificate, usage: x509.ExtendedKeyUsage | None
) -> None:
    if usage is not None and ExtendedKeyUsageOID.EMAIL_PROTECTION not in usage:
        raise ValueError("extendedKeyUsage does not allow emailProtection")


def smime_verifier(anchors: Sequence[x509.Certificate], at: dt.datetime) -> ClientVerifier:
    """A chain verifier for S/MIME signing certificates, built on cryptography's Web PKI verifier.

    `PolicyBuilder().build_client_verifier()` applies the Web PKI end-entity
    profile, whose extendedKeyUsage rule demands clientAuth. Here that one rule
    is replaced in the end-entity `ExtensionPolicy`: extendedKeyUsage may be
    absent (RFC 8550 §4.4.4: then any use is allowed) and, when present, must
    list emailProtection; subjectAltName may be absent (older certificates
    carry the mailbox in the subject). The CA policy stays the Web PKI one.
    `verify(leaf, intermediates)` then raises `VerificationError` or returns
    the chain, leaf first.
    """
    ee_policy = (
        ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_email_protection)
        .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    )
    return (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(at)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )


# --- PKCS#12 ---------------------------------------------------------------------------------------


def _require_password(password: bytes) -> None:
    if not password:
        raise KeyMaterialError("a password is required to protect a private key")


def pkcs12_bytes(identity: Identity, password: bytes, *, friendly_name: str, legacy: bool = False) -> bytes:
    """The identity as a password-protected PKCS#12 file for a mail client, chain included.

    Modern: AES-256-CBC with PBKDF2 and a SHA-256 MAC. Legacy: 3DES with a
    SHA-1 MAC, for clients that cannot read the modern one (old Outlook and
    macOS, gpgsm 2.2 of Debian 12).
    """
    _require_password(password)
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if not legacy:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
        return _serialized_pkcs12(identity, friendly_name, builder.build(password))
    legacy_encryption = (
        builder.kdf_rounds(LEGACY_PKCS12_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password)
    )
    for _ in range(GNUPG_SALT_TRIES):
        data = _serialized_pkcs12(identity, friendly_name, legacy_encryption)
        if not gnupg_misderives_a_key(data, password):
            return data
    raise KeyMaterialError(f"no PKCS#12 salt that gpgsm can read was drawn in {GNUPG_SALT_TRIES} tries")


def _serialized_pkcs12(identity: Identity, friendly_name: str,
                       encryption: serialization.KeySerializationEncryption) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode(), identity.key, identity.certificate, list(identity.chain) or None, encryption
    )


GNUPG_SALT_TRIES = 64
"""A salt gpgsm misreads is drawn about once in forty files; sixty-four in a row never happen."""
_BLOCK = 1 << 512


def _pkcs12_pbe_salts(data: bytes) -> list[tuple[bytes, int]]:
    """The salt and iteration count of each password-encrypted part of a PKCS#12 file (RFC 7292 PBE)."""
    algorithms = []
    for info in asn1_pkcs12.Pfx.load(data).authenticated_safe:
        if info["content_type"].native == "encrypted_data":
            algorithms.append(info["content"]["encrypted_content_info"]["content_encryption_algorithm"])
        elif info["content_type"].native == "data":
            algorithms.extend(bag["bag_value"]["encryption_algorithm"]
                              for bag in asn1_pkcs12.SafeContents.load(info["content"].native)
                              if bag["bag_id"].native == "pkcs8_shrouded_key_bag")
    return [(algorithm["parameters"]["salt"].native, algorithm["parameters"]["iterations"].native)
            for algorithm in algorithms if isinstance(algorithm["parameters"], asn1.Sequence)]


def gnupg_misderives_a_key(data: bytes, password: bytes) -> bool:
    """True when gpgsm 2.2 would derive a wrong 3DES key for a part of this PKCS#12 file, and so refuse the password.

    The 24-byte key takes two rounds of RFC 7292's derivation; between them each 64-byte block I_j becomes
    (I_j + B + 1) mod 2^512, and gpgsm writes it back without its leading zero bytes. When such a block starts
    with a zero byte (one derivation in 128), gpgsm's second round hashes shifted bytes, and the import fails
    as "bad passphrase" although the password is right.
    """
    diversified = (password.decode() + "\0").encode("utf-16-be")
    for salt, iterations in _pkcs12_pbe_salts(data):
        blocks = ((salt * 64)[:64], (diversified * 64)[:64])
        first = hashlib.sha1(b"\x01" * 64 + b"".join(blocks)).digest()
        for _ in range(iterations - 1):
            first = hashlib.sha1(first).digest()
        increment = int.from_bytes((first * 4)[:64], "big") + 1
        if any((int.from_bytes(block, "big") + increment) % _BLOCK < _BLOCK >> 8 for block in blocks):
            return True
    return False


def _ordered_chain(leaf: x509.Certificate, others: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """Issuers nearest first, following issuer names from the leaf; certificates off that path follow."""
    remaining = list(others)
    chain: list[x509.Certificate] = []
    current = leaf
    while (issuer := next((c for c in remaining if c.subject == current.issuer), None)) is not None:
        remaining.remove(issuer)
        chain.append(issuer)
        current = issuer
    return (*chain, *remaining)


def _usable_key(key: object, where: str) -> PrivateKey:
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyMaterialError(f"{where}: holds a {type(key).__name__}; only RSA and EC keys are supported")
    return key


def _check_pair(key: PrivateKey, certificate: x509.Certificate, where: str) -> None:
    if key.public_key() != certificate.public_key():
        raise KeyMaterialError(f"{where}: the private key does not belong to the certificate")


def load_pkcs12(data: bytes, password: bytes) -> Identity:
    """The key, certificate and chain of a PKCS#12 file (modern, legacy, or NSS's RC2 one)."""
    if len(data) > MAX_FILE_BYTES:
        raise KeyMaterialError(f"PKCS#12 file is {len(data)} bytes; more than {MAX_FILE_BYTES} cannot be a key file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # NSS writes BER; cryptography warns but reads it
            bundle = pkcs12.load_pkcs12(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyMaterialError(
            "cannot open the PKCS#12 file: wrong password, or not an intact PKCS#12 file"
        ) from None
    if bundle.key is None or bundle.cert is None:
        raise KeyMaterialError("the PKCS#12 file does not hold both a private key and its certificate")
    key = _usable_key(bundle.key, "PKCS#12 file")
    certificate = bundle.cert.certificate
    _check_pair(key, certificate, "PKCS#12 file")
    chain = _ordered_chain(certificate, [c.certificate for c in bundle.additional_certs])
    return Identity(key=key, certificate=certificate, chain=chain)


# --- files -----------------------------------------------------------------------------------------


def _write(path: Path, data: bytes, *, mode: int, what: str) -> None:
    try:
        write_file_atomically(path, data, mode=mode)
    except OSError as error:
        raise KeyMaterialError(f"{path}: cannot write the {what}: {error.strerror or error}") from None


def write_private_key(path: Path, key: PrivateKey, password: bytes) -> None:
    """Encrypted PKCS#8 PEM, mode 0600."""
    _require_password(password)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    _write(path, data, mode=0o600, what="private key")


def read_private_key(path: Path, password: bytes) -> PrivateKey:
    """An encrypted PEM private key; an unencrypted one is refused, as keys must never rest in clear."""
    _require_password(password)
    data = read_bounded(path, MAX_FILE_BYTES, "private key", KeyMaterialError)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise KeyMaterialError(f"{path}: the private key is not encrypted; refusing to use it") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"{path}: wrong password, or not a PEM private key") from None
    return _usable_key(key, str(path))


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_pem_certificate(text: str | bytes) -> x509.Certificate:
    """The first certificate of a PEM text."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else text
        return x509.load_pem_x509_certificate(data)
    except (ValueError, UnicodeEncodeError):
        raise KeyMaterialError("not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None


def write_certificate(path: Path, certificate: x509.Certificate, *chain: x509.Certificate) -> None:
    """PEM, the certificate first, then any issuers given, as mail clients and `keys bundle` read a chain."""
    text = "".join(certificate_pem(c) for c in (certificate, *chain))
    _write(path, text.encode("ascii"), mode=0o644, what="certificate")


def read_certificate(path: Path) -> x509.Certificate:
    """A certificate file, PEM or (as Windows exports `.cer`) DER."""
    data = read_bounded(path, MAX_FILE_BYTES, "certificate", KeyMaterialError)
    try:
        return load_pem_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except (KeyMaterialError, ValueError):
        raise KeyMaterialError(f"{path}: not a PEM or DER certificate") from None


def read_certificate_chain(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file, in order: the certificate, then its issuers."""
    data = read_bounded(path, MAX_FILE_BYTES, "certificate", KeyMaterialError)
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise KeyMaterialError(f"{path}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None


def identity_of(key: PrivateKey, certificates: Sequence[x509.Certificate], where: str) -> Identity:
    """The key with the first certificate, which must be the key's, and the rest as its chain."""
    _check_pair(key, certificates[0], where)
    return Identity(key=key, certificate=certificates[0], chain=_ordered_chain(certificates[0], certificates[1:]))


def same_key(one: x509.Certificate | x509.CertificateSigningRequest, other: x509.Certificate) -> bool:
    """Whether both carry the same public key; a key of a type cryptography cannot load matches nothing."""
    try:
        return bool(one.public_key() == other.public_key())
    except UnsupportedAlgorithm:
        return False


def load_csr(data: bytes, where: str) -> x509.CertificateSigningRequest:
    """A PEM or DER certificate signing request whose signature is intact: it proves its maker holds the key."""
    try:
        csr = x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
        intact = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError(f"{where}: not a PEM or DER certificate signing request") from None
    if not intact:
        raise KeyMaterialError(f"{where}: the request's signature does not verify; it proves nothing")
    return csr


def read_csr(path: Path) -> x509.CertificateSigningRequest:
    return load_csr(read_bounded(path, MAX_FILE_BYTES, "certificate signing request", KeyMaterialError), str(path))


def key_sha256(holder: x509.Certificate | x509.CertificateSigningRequest) -> str:
    """SHA-256 of the public key (DER SubjectPublicKeyInfo), lowercase hex.

    The delegation reads it to the secretariat by another channel than the one
    the request travelled by, so that a request swapped on the way is not signed.
    """
    der = holder.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def signing_key(csr: x509.CertificateSigningRequest, where: str) -> PublicKey:
    """The request's key, if the service accepts its signatures: RSA of 2048 bits or more, or ECDSA on P-256/384/521."""
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        key = None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, SIGNING_CURVES):
        return key
    raise KeyMaterialError(
        f"{where}: the request's key is not one whose signatures are accepted (RSA of {MIN_RSA_BITS} bits or more, "
        "or ECDSA on P-256, P-384 or P-521)"
    )


def new_request(code: str, email: str) -> tuple[PrivateKey, x509.CertificateSigningRequest]:
    """A new RSA-2048 key (every mail client imports it) and a request for it naming the delegation and its mailbox."""
    address = _check_mailbox(email)
    key = rsa.generate_private_key(65537, 2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(code, None))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, csr


def write_request(path: Path, csr: x509.CertificateSigningRequest) -> None:
    _write(path, csr.public_bytes(serialization.Encoding.PEM), mode=0o644, what="certificate signing request")


def check_csr_proves(csr: x509.CertificateSigningRequest, certificate: x509.Certificate, where: str) -> None:
    """The request was signed by the certificate's key (its own signature was checked when it was read)."""
    if not same_key(csr, certificate):
        raise KeyMaterialError(f"{where}: the request is signed by another key than the certificate's")


# --- the secretariat's keys ------------------------------------------------------------------------

CA_CERTIFICATE = "secretariat-ca.pem"
CA_KEY = "secretariat-ca.key"
SIGNER_CERTIFICATE = "secretariat.pem"
SIGNER_KEY = "secretariat.key"
IGNORED_IN_GIT = ("*.key", "*.p12", "*.p12.password")


class SecretariatKeys(NamedTuple):
    """The secretariat CA and the secretariat's own signing identity, as kept in the keys directory.

    A tuple, so `ca, signer = SecretariatKeys.load(directory, password)` works.
    The signer is ECDSA P-256: every receipt is a signature, and P-256 signs
    about 20 times faster than RSA-2048.
    """

    ca: Identity
    signer: Identity

    @classmethod
    def create(cls, directory: Path, name: str, organization: str, address: str, password: bytes) -> SecretariatKeys:
        """New CA and signer written to `directory`; refuses to overwrite existing keys."""
        _require_password(password)
        existing = [n for n in (CA_CERTIFICATE, CA_KEY, SIGNER_CERTIFICATE, SIGNER_KEY) if (directory / n).exists()]
        if existing:
            raise KeyMaterialError(f"{directory}: already holds {', '.join(existing)}; refusing to replace keys")
        ca = create_ca(f"{name} CA", organization)
        signer = issue_signing_certificate(
            ca, common_name=name, emails=[address], organization=organization, key_type="ec", encryption=True,
            secretariat_role=True,
        )
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise KeyMaterialError(
                f"{directory}: cannot create the keys directory: {error.strerror or error}"
            ) from None
        _keep_out_of_git(directory / ".gitignore")
        write_private_key(directory / CA_KEY, ca.key, password)
        write_certificate(directory / CA_CERTIFICATE, ca.certificate)
        write_private_key(directory / SIGNER_KEY, signer.key, password)
        write_certificate(directory / SIGNER_CERTIFICATE, signer.certificate)
        return cls(ca=ca, signer=signer)

    @classmethod
    def load(cls, directory: Path, password: bytes) -> SecretariatKeys:
        """Both identities, checked to be key/certificate pairs, the signer issued by the CA and holding its role.

        A signer without the role (made before the role existed) is refused:
        what it signs would not pass `voting audit`.
        """
        ca, signer = cls._read(directory, password)
        if not has_secretariat_role(signer.certificate):
            raise KeyMaterialError(
                f"{directory / SIGNER_CERTIFICATE}: does not carry the secretariat's signing role (extended key usage"
                f" {SECRETARIAT_SIGNING.dotted_string}), which `voting audit` requires of whoever signs the bundles"
                " and results; run `voting keys rotate-signer` to certify the signing key with it"
            )
        return cls(ca=ca, signer=signer)

    @classmethod
    def rotate_signer(cls, directory: Path, password: bytes) -> SecretariatKeys:
        """A new signing certificate with the secretariat's role, for the same key, name and address.

        The key stays, so ballots encrypted to the old certificate still open;
        the new certificate replaces `secretariat.pem`, to be published anew.
        """
        ca, old = cls._read(directory, password)
        def attribute(oid: x509.ObjectIdentifier) -> str | None:
            found = old.certificate.subject.get_attributes_for_oid(oid)
            return str(found[0].value) if found else None

        signer = issue_signing_certificate(
            ca,
            common_name=attribute(NameOID.COMMON_NAME) or "Secretariat",
            emails=mailboxes(old.certificate),
            organization=attribute(NameOID.ORGANIZATION_NAME),
            encryption=True,
            secretariat_role=True,
            key=old.key,
        )
        write_certificate(directory / SIGNER_CERTIFICATE, signer.certificate)
        return cls(ca=ca, signer=signer)

    @staticmethod
    def _read(directory: Path, password: bytes) -> tuple[Identity, Identity]:
        ca = _read_identity(directory / CA_KEY, directory / CA_CERTIFICATE, password, ())
        signer = _read_identity(directory / SIGNER_KEY, directory / SIGNER_CERTIFICATE, password, (ca.certificate,))
        try:
            signer.certificate.verify_directly_issued_by(ca.certificate)
        except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
            raise KeyMaterialError(f"{directory / SIGNER_CERTIFICATE}: not issued by {CA_CERTIFICATE}") from None
        return ca, signer


def _read_identity(
    key_path: Path, certificate_path: Path, password: bytes, chain: tuple[x509.Certificate, ...]
) -> Identity:
    key = read_private_key(key_path, password)
    certificate = read_certificate(certificate_path)
    _check_pair(key, certificate, str(key_path))
    return Identity(key=key, certificate=certificate, chain=chain)


def _keep_out_of_git(path: Path) -> None:
    """Make sure the keys directory's .gitignore lists the private-key patterns, keeping what it has."""
    try:
        present = path.read_text().splitlines() if path.exists() else []
        missing = [pattern for pattern in IGNORED_IN_GIT if pattern not in present]
        if missing:
            write_file_atomically(path, "".join(f"{line}\n" for line in (*present, *missing)).encode(), mode=0o644)
    except (OSError, UnicodeDecodeError) as error:
        raise KeyMaterialError(f"{path}: cannot update: {error}") from None
