"""`voting init` and the secretariat's key commands: the files of a deployment.

These functions own the deployment's files (configuration, keys, electorate)
and make one change each; the command line only parses and prints.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

from cryptography import x509
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
from voting.model import Electorate
from voting.pki import (
    CA_CERTIFICATE,
    SecretariatKeys,
    check_csr_proves,
    same_key,
    fingerprint,
    is_ca,
    issue_signing_certificate,
    mailboxes,
    pkcs12_bytes,
    read_certificate,
    read_csr,
)
from voting.smime.verify import Trust, TrustedCertificate, verify_message

TEMPLATES = ("unsc-2020",)
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
    password: str
    """The PKCS#12 transport password, shown once and kept in a 0600 file beside it."""
    retired: tuple[str, ...] = ()
    """Fingerprints of the delegation's earlier certificates, revoked from the moment of this issue."""
    retired_at: datetime | None = None


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
    now: datetime | None = None,
) -> IssuedCredential:
    """Register (or extend) a delegation and issue it a certificate.

    A new certificate replaces the delegation's earlier ones: they are revoked
    from now (ballots they signed before stay valid), so a key that was lost
    or handed over can no longer vote. `keep_old` keeps them, for a second
    mail client of the same delegation.
    """
    refuse_secretariat_address(config, [email])
    electorate = load_electorate(config.electorate_file)
    existing = electorate.get(code)
    retired_at = (now or datetime.now(UTC)).replace(microsecond=0)
    retired = () if keep_old or existing is None else tuple(
        c.sha256 for c in existing.certificates if not c.revoked
    )
    if retired:
        electorate = revoke(electorate, code, retired_at)
    electorate = add_delegation(
        electorate, code, name or (existing.name if existing else code), email=email,
        permanent=permanent or bool(existing and existing.permanent),
    )
    delegation = electorate.get(code)
    assert delegation is not None
    keys = SecretariatKeys.load(config.keys_dir, config.key_password())
    identity = issue_signing_certificate(
        keys.ca, common_name=f"{delegation.name} ({code})", emails=[email],
        organization=delegation.name, key_type=key_type,  # type: ignore[arg-type]
    )
    electorate = register_certificate(electorate, code, identity.certificate, issued_by_secretariat=True)
    password = secrets.token_urlsafe(12)
    folder = config.keys_dir / "delegations"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    pin = fingerprint(identity.certificate)
    p12 = pkcs12_path(config, code, pin)
    write_file_atomically(
        p12, pkcs12_bytes(identity, password.encode(), friendly_name=f"{delegation.name} ({code})", legacy=legacy),
        mode=0o600,
    )
    write_file_atomically(p12.with_name(p12.name + ".password"), password.encode() + b"\n", mode=0o600)
    save_electorate(config.electorate_file, electorate)
    return IssuedCredential(code, pin, p12, password, retired, retired_at if retired else None)


def pkcs12_path(config: Config, code: str, pin: str) -> Path:
    """Where an issued PKCS#12 is kept: named by its certificate, so a new issue never replaces an earlier one."""
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
    electorate = register_certificate(electorate, code, certificate, issued_by_secretariat=False)
    save_electorate(config.electorate_file, electorate)
    return fingerprint(certificate)


def revoke_delegation(config: Config, code: str, at: datetime) -> Electorate:
    electorate = revoke(load_electorate(config.electorate_file), code, at)
    save_electorate(config.electorate_file, electorate)
    return electorate
