"""`voting init` and the secretariat's key commands: the files of a deployment.

These functions own the deployment's files (configuration, keys, electorate)
and make one change each; the command line only parses and prints.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from voting.config import (
    Config,
    SecretariatSection,
    SmtpSection,
    describe_validation_error,
    load_config,
)
from voting.electorate import (
    add_delegation,
    load_electorate,
    parse_electorate,
    register_certificate,
    revoke,
    save_electorate,
)
from voting.errors import KeyMaterialError, UsageError
from voting.files import add_lines, read_bounded, write_file_atomically
from voting.layout import TEMPLATES
from voting.model import CODE_PATTERN, Electorate
from voting.pki import (
    CA_CERTIFICATE,
    SecretariatKeys,
    certify_key,
    check_csr_proves,
    fingerprint,
    is_ca,
    issue_signing_certificate,
    key_sha256,
    load_pem_certificate,
    mailboxes,
    pkcs12_bytes,
    read_certificate,
    read_csr,
    same_key,
    signing_key,
    write_certificate,
)
from voting.smime.verify import Trust, TrustedCertificate, verify_message

NOT_IN_GIT = ("secrets/", "var/", "handover/", "*.p12", "*.p12.password", "*.key")

CONFIG_TEMPLATE = """\
# Configuration of a voting deployment (see README). Relative paths are
# relative to this deployment's directory, the parent of config/.
# Any key can be overridden by an environment variable VOTING_<SECTION>__<KEY>.

[secretariat]
name = {name}
address = {address}
keys_dir = "keys"
key_password_file = "secrets/key-password"
vote_prefix = {prefix}

[electorate]
file = {electorate}

[mailbox]
kind = "embedded"          # "embedded", "maildir" or "imap"
root = "var/mail"          # embedded: one Maildir per address under this folder

[smtp]
kind = "embedded"          # "embedded" (the built-in server) or "smtp" (a relay)
host = "127.0.0.1"
port = {port}

[service]
database = "var/voting.sqlite3"
poll_seconds = 30
statement_hours = 3
"""


def packaged_electorate(name: str) -> str:
    if name not in TEMPLATES:
        raise UsageError(f"no electorate template {name!r}; known: {', '.join(TEMPLATES)}")
    return resources.files("voting").joinpath("data", f"{name}.toml").read_text(encoding="utf-8")


def toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_deployment(
    directory: Path,
    *,
    name: str | None = None,
    address: str | None = None,
    template: str | None = None,
    port: int | None = None,
    prefix: str | None = None,
) -> Config:
    """A new deployment: configuration, secretariat CA and signing key, an electorate (empty, or a template).

    Where `config/voting.toml` exists but the secretariat has no keys yet (this
    repository's own checkout is such a deployment), the keys are made for the
    configuration as it stands.
    """
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} is a file, not a folder for a deployment")
    config_path = directory / "config" / "voting.toml"
    if config_path.exists():
        given = [option for option, value in (
            ("--name", name), ("--address", address), ("--electorate", template), ("--port", port),
            ("--vote-prefix", prefix)) if value is not None]
        if given:
            raise UsageError(
                f"{config_path} exists already; edit it instead of giving {', '.join(given)}"
            )
        return _complete_deployment(config_path)
    name = name or "Secretariat"
    address = address or "votes@secretariat.example"
    port = port or 8025
    prefix = prefix or "vote"
    try:
        SecretariatSection(name=name, address=address, vote_prefix=prefix)
        SmtpSection(port=port)
    except ValidationError as error:
        raise UsageError(f"init: {describe_validation_error(error)}") from None
    electorate_file = Path("config/electorates") / f"{template or 'electorate'}.toml"
    electorate_text = packaged_electorate(template) if template else 'name = "Electorate"\n'
    parse_electorate(electorate_text)
    (directory / "config" / "electorates").mkdir(parents=True, exist_ok=True)
    write_file_atomically(directory / electorate_file, electorate_text.encode(), mode=0o644)
    write_file_atomically(
        config_path,
        CONFIG_TEMPLATE.format(
            name=toml_string(name),
            address=toml_string(address),
            prefix=toml_string(prefix),
            electorate=toml_string(electorate_file.as_posix()),
            port=port,
        ).encode(),
        mode=0o644,
    )
    return _complete_deployment(config_path)


def _complete_deployment(config_path: Path) -> Config:
    """The secretariat's keys, and their password where none is kept yet, for an existing configuration."""
    config = load_config(config_path)
    if (config.keys_dir / CA_CERTIFICATE).exists():
        raise UsageError(f"{config.root} is a deployment already ({config.keys_dir} holds keys); refusing to overwrite it")
    secretariat = config.settings.secretariat
    password_file = config.resolve(secretariat.key_password_file)
    if not password_file.exists() and secretariat.key_password is None:
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomically(password_file, secrets.token_urlsafe(32).encode() + b"\n", mode=0o600)
    try:
        add_lines(config.root / ".gitignore", NOT_IN_GIT)
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{config.root / '.gitignore'}: cannot update: {error}") from None
    SecretariatKeys.create(config.keys_dir, secretariat.name, secretariat.name, secretariat.address, config.key_password())
    return config


@dataclass(frozen=True)
class IssuedCredential:
    code: str
    sha256: str
    pkcs12_path: Path
    """The one copy of the PKCS#12, outside the keys directory, to be handed over and then deleted here."""
    password: str
    """The PKCS#12 transport password, shown once and written nowhere."""
    retired: tuple[str, ...] = ()
    """Fingerprints of the delegation's earlier certificates, revoked from the moment of this issue."""
    retired_at: datetime | None = None


@dataclass(frozen=True)
class SignedRequest:
    code: str
    sha256: str
    key_sha256: str
    """The request's key, for the secretariat to compare with what the delegation reads it by another channel."""
    addresses: tuple[str, ...]
    certificate_path: Path
    """The certificate followed by the secretariat CA, to send back to the delegation."""
    retired: tuple[str, ...] = ()
    retired_at: datetime | None = None


HANDOVER_DIRECTORY = "handover"
"""Where `keys issue` and `keys sign` write what goes to a delegation, unless told otherwise: outside `keys/`."""


def handover_path(config: Config, out: Path | None, code: str, pin: str, suffix: str) -> Path:
    """`out` itself when it names a `suffix` file, else a file named by the certificate in `out` (or handover/).

    Never under the keys directory: nothing there may hold what lets a delegation sign.
    """
    if out is not None and out.suffix == suffix:
        path = out
    else:
        path = (out or config.root / HANDOVER_DIRECTORY) / f"{code}-{pin[:12]}{suffix}"
    if path.resolve().is_relative_to(config.keys_dir.resolve()):
        raise UsageError(
            f"{path} is in the secretariat's keys directory {config.keys_dir}; write what is handed over elsewhere"
        )
    if path.exists():
        raise UsageError(f"{path} exists already; refusing to replace it")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{path.parent}: cannot create the folder: {error.strerror or error}") from None
    return path


@dataclass(frozen=True)
class _Registration:
    electorate: Electorate
    name: str
    retired: tuple[str, ...]
    retired_at: datetime | None


def _prepare_registration(
    config: Config, code: str, *, emails: Sequence[str], name: str | None, permanent: bool, keep_old: bool,
    now: datetime | None,
) -> _Registration:
    """The electorate with the delegation registered, or given `emails`, and its certificates retired from now.

    Unless `keep_old`: once a new certificate is issued, a key that was lost
    or mishandled can no longer vote (ballots it signed before stay valid).
    """
    refuse_secretariat_address(config, emails)
    electorate = load_electorate(config.electorate_file)
    existing = electorate.get(code)
    retired_at = (now or datetime.now(UTC)).replace(microsecond=0)
    retired = () if keep_old or existing is None else tuple(
        c.sha256 for c in existing.certificates if not c.revoked
    )
    if retired:
        electorate = revoke(electorate, code, retired_at)
    for email in emails:
        electorate = add_delegation(
            electorate, code, name or (existing.name if existing else code), email=email,
            permanent=permanent or bool(existing and existing.permanent),
        )
    delegation = electorate.get(code)
    assert delegation is not None
    return _Registration(electorate, delegation.name, retired, retired_at if retired else None)


def issue_delegation_key(
    config: Config,
    code: str,
    *,
    email: str,
    name: str | None,
    permanent: bool,
    legacy: bool = False,
    key_type: str = "rsa",
    keep_old: bool = False,
    new: bool = False,
    out: Path | None = None,
    now: datetime | None = None,
) -> IssuedCredential:
    """Register (or extend) a delegation, make it a key and certificate, and write the one PKCS#12 to hand over.

    The PKCS#12 goes to `out` (default handover/), never to the keys
    directory, and its password is returned, not written: once the file is
    handed over, nothing the secretariat keeps can sign as the delegation. The
    certificate is registered as one whose key the secretariat held. `keep_old`
    keeps earlier certificates valid, for a second mail client. A code not in
    the electorate is registered only when `new` says so, and `new` is refused
    for a code that is: a mistyped code would otherwise make a delegation, and a
    delegation's certificates would be retired by what was meant for a new one.
    """
    _check_new(load_electorate(config.electorate_file), code, new)
    registration = _prepare_registration(config, code, emails=[email], name=name, permanent=permanent,
                                         keep_old=keep_old, now=now)
    keys = SecretariatKeys.load(config.keys_dir, config.key_password())
    label = f"{registration.name} ({code})"
    identity = issue_signing_certificate(
        keys.ca, common_name=label, emails=[email], organization=registration.name,
        key_type=key_type,  # type: ignore[arg-type]
    )
    electorate = register_certificate(registration.electorate, code, identity.certificate, issued_by_secretariat=True,
                                      secretariat_held_key=True)
    password = secrets.token_urlsafe(12)
    pin = fingerprint(identity.certificate)
    p12 = handover_path(config, out, code, pin, ".p12")
    write_file_atomically(p12, pkcs12_bytes(identity, password.encode(), friendly_name=label, legacy=legacy),
                          mode=0o600)
    save_electorate(config.electorate_file, electorate)
    return IssuedCredential(code, pin, p12, password, registration.retired, registration.retired_at)


def _check_new(electorate: Electorate, code: str, new: bool) -> None:
    existing = electorate.get(code)
    if existing is None and not new:
        raise UsageError(f"no delegation {code} in the electorate {electorate.name!r} (its codes: "
                         f"{', '.join(electorate.codes) or 'none yet'}); to register a new delegation, add --new")
    if existing is not None and new:
        raise UsageError(f"{code} is already a delegation ({existing.name}), not a new one; without --new this issues"
                         f" {code} a new certificate, and retires its earlier ones unless --keep-old")


def sign_delegation_request(
    config: Config,
    request: Path,
    *,
    code: str | None,
    confirmed: Sequence[str] = (),
    name: str | None = None,
    permanent: bool = False,
    keep_old: bool = False,
    out: Path | None = None,
    now: datetime | None = None,
) -> SignedRequest:
    """Certify the key of a request the delegation made on its own machine: the secretariat never holds that key.

    The request's signature proves its maker holds the key. It must name the
    delegation (`code`, or its common name) and mailboxes the delegation has
    registered or the secretariat `confirmed`; a key already registered to
    another delegation is refused. The certificate is registered as one whose
    key the secretariat never held, and written with the CA to hand back.
    """
    csr = read_csr(request)
    public_key = signing_key(csr, str(request))
    code = _requested_code(csr, code, request)
    addresses = mailboxes(csr)
    if not addresses:
        raise UsageError(f"{request}: the request names no email address, so no ballot could match its certificate")
    electorate = load_electorate(config.electorate_file)
    _check_requested_addresses(electorate, code, addresses, confirmed, request)
    _refuse_another_delegations_key(electorate, code, csr, request)
    registration = _prepare_registration(config, code, emails=addresses, name=name, permanent=permanent,
                                         keep_old=keep_old, now=now)
    keys = SecretariatKeys.load(config.keys_dir, config.key_password())
    certificate = certify_key(keys.ca, public_key, common_name=f"{registration.name} ({code})", emails=addresses,
                              organization=registration.name)
    electorate = register_certificate(registration.electorate, code, certificate, issued_by_secretariat=True,
                                      secretariat_held_key=False)
    pin = fingerprint(certificate)
    path = handover_path(config, out, code, pin, ".pem")
    write_certificate(path, certificate, keys.ca.certificate)
    save_electorate(config.electorate_file, electorate)
    return SignedRequest(code, pin, key_sha256(csr), addresses, path, registration.retired, registration.retired_at)


def _requested_code(csr: x509.CertificateSigningRequest, code: str | None, request: Path) -> str:
    """The delegation a request is for: `code`, which a request naming a delegation code must agree with."""
    names = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    named = next((n for n in names if re.fullmatch(CODE_PATTERN, n)), None)
    if code is None and named is None:
        raise UsageError(f"{request}: the request names no delegation code; give --code CODE")
    if code is not None and named is not None and named != code:
        raise UsageError(f"{request}: the request is for {named}, not {code}")
    return code or str(named)


def _check_requested_addresses(
    electorate: Electorate, code: str, addresses: Sequence[str], confirmed: Sequence[str], request: Path
) -> None:
    """Each mailbox of the request is one the delegation has, or one the secretariat names on the command line.

    A request travels by mail: whoever swaps it must not get ballots and
    results sent to an address of their choosing without the secretariat
    saying so.
    """
    delegation = electorate.get(code)
    known = {*(delegation.addresses if delegation else ()), *(a.lower() for a in confirmed)}
    unknown = [a for a in addresses if a not in known]
    if unknown:
        raise UsageError(
            f"{request}: asks for {', '.join(unknown)}, not an address of {code}; if that is where {code} writes from, "
            f"sign with --email {unknown[0]}"
        )


def _refuse_another_delegations_key(
    electorate: Electorate, code: str, csr: x509.CertificateSigningRequest, request: Path
) -> None:
    """A key votes for one delegation: a request for a key registered to another, even revoked, is refused."""
    for delegation in electorate.delegation:
        for registered in delegation.certificates:
            if delegation.code != code and same_key(csr, load_pem_certificate(registered.pem)):
                raise UsageError(
                    f"{request}: its key is already registered to {delegation.code} (certificate "
                    f"{registered.sha256[:16]}…); a key signs for one delegation, so this request cannot be {code}'s"
                )


def kept_pkcs12_path(config: Config, code: str, pin: str) -> Path:
    """Where earlier versions of `keys issue` kept a delegation's PKCS#12, which `keys list` points out."""
    return config.keys_dir / "delegations" / f"{code}-{pin[:12]}.p12"


def refuse_secretariat_address(config: Config, addresses: Sequence[str]) -> None:
    """A delegation never gets the secretariat's address: its ballots and results would go to the secretariat."""
    own = config.settings.secretariat.address.lower()
    if own in (address.lower() for address in addresses):
        raise UsageError(f"{own} is the secretariat's own address; a delegation cannot be registered with it")


MAX_PROOF_BYTES = 32 << 20
"""Largest signed message read as a proof of possession: a mail with attachments, not an archive."""

HOW_TO_PROVE = (
    "--proof MESSAGE.eml, any email the delegation signed with that certificate (a signed mail it sent, saved"
    " with its headers, or `openssl cms -sign -in note.txt -signer CERT.pem -inkey KEY.pem -out MESSAGE.eml`),"
    " or --csr REQUEST.pem, a request made with the same key (`openssl req -new -key KEY.pem -out REQUEST.pem`)"
)


@dataclass(frozen=True)
class Proof:
    """Evidence that whoever registers a certificate holds its private key: a signed message, or a CSR."""

    kind: Literal["message", "csr"]
    path: Path


def check_possession(certificate: x509.Certificate, proof: Proof) -> None:
    """The proof was signed by the certificate's key; KeyMaterialError says why not.

    A certificate is public: without this, anyone could register a
    delegation's certificate, or one naming its key, as their own.
    """
    if proof.kind == "csr":
        check_csr_proves(read_csr(proof.path), certificate, str(proof.path))
        return
    raw = read_bounded(proof.path, MAX_PROOF_BYTES, "signed message", KeyMaterialError)
    trust = Trust(registered=(TrustedCertificate(certificate),), anchors_admit_unregistered=False)
    checked = verify_message(raw, trust, datetime.now(UTC))
    if not checked.signature_intact or checked.signer is None:
        raise KeyMaterialError(
            f"{proof.path}: not a message with an intact S/MIME signature ({checked.reason}); it proves nothing"
        )
    if not same_key(checked.signer, certificate):
        raise KeyMaterialError(f"{proof.path}: signed by another key than the certificate's")


def import_delegation_certificate(config: Config, code: str, certificate_path: Path, proof: Proof | None) -> str:
    """Register a certificate the delegation made or obtained itself, once it has shown it holds the key."""
    electorate = load_electorate(config.electorate_file)
    certificate = read_certificate(certificate_path)
    refuse_secretariat_address(config, mailboxes(certificate))
    if is_ca(certificate):
        raise UsageError(f"{certificate_path} is a CA certificate, not a delegate's signing certificate")
    if proof is None:
        raise UsageError(f"registering a certificate needs proof that {code} holds its private key: {HOW_TO_PROVE}")
    check_possession(certificate, proof)
    electorate = register_certificate(electorate, code, certificate, issued_by_secretariat=False,
                                      secretariat_held_key=False)
    save_electorate(config.electorate_file, electorate)
    return fingerprint(certificate)


def revoke_delegation(config: Config, code: str, at: datetime) -> Electorate:
    electorate = revoke(load_electorate(config.electorate_file), code, at)
    save_electorate(config.electorate_file, electorate)
    return electorate
