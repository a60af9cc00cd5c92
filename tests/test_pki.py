"""Keys, certificates and PKCS#12, checked by reading the results back and by the real openssl and gpgsm."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import VerificationError

from voting import pki
from voting.errors import KeyMaterialError, UsageError

PASSWORD = b"correct horse battery staple"


def tool(name: str) -> str:
    """The path of a command the test needs; a missing tool fails the test, never skips it."""
    path = shutil.which(name)
    assert path is not None, f"{name} is not installed; these tests need the real {name}"
    return path


@pytest.fixture(scope="module")
def ca() -> pki.Identity:
    return pki.create_ca("Security Council Affairs Division CA", "United Nations")


@pytest.fixture(scope="module")
def delegate(ca: pki.Identity) -> pki.Identity:
    return pki.issue_signing_certificate(
        ca,
        common_name="France",
        emails=["fra@delegations.example", "FR.Vote@Delegations.example"],
        organization="France",
    )


def extension_oids(certificate: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return {extension.oid for extension in certificate.extensions}


def extension(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return certificate.extensions.get_extension_for_oid(oid)


# --- profiles --------------------------------------------------------------------------------------


def test_ca_has_exactly_the_root_profile(ca: pki.Identity) -> None:
    certificate = ca.certificate
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey) and ca.key.curve.name == "secp384r1"
    assert certificate.subject == certificate.issuer
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "United Nations"
    certificate.verify_directly_issued_by(certificate)
    assert extension_oids(certificate) == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    }
    constraints = extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = extension(certificate, ExtensionOID.KEY_USAGE)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    assert extension(certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value == (
        x509.SubjectKeyIdentifier.from_public_key(ca.key.public_key())
    )
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == dt.timedelta(days=3650)
    assert ca.chain == ()


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_issued_certificate_has_exactly_the_smime_profile(ca: pki.Identity, key_type: str) -> None:
    start = dt.datetime(2020, 7, 1, tzinfo=dt.UTC)
    identity = pki.issue_signing_certificate(
        ca,
        common_name="Niger",
        emails=["ner@delegations.example"],
        key_type=key_type,  # type: ignore[arg-type]
        days=30,
        not_before=start,
    )
    certificate = identity.certificate
    if key_type == "rsa":
        assert isinstance(identity.key, rsa.RSAPrivateKey) and identity.key.key_size == 2048
    else:
        assert isinstance(identity.key, ec.EllipticCurvePrivateKey) and identity.key.curve.name == "secp256r1"
    assert identity.chain == (ca.certificate,)
    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.subject.rfc4514_string() == "CN=Niger"
    assert not certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
    assert extension_oids(certificate) == {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
    constraints = extension(certificate, ExtensionOID.BASIC_CONSTRAINTS)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=False, path_length=None)
    usage = extension(certificate, ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value == x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    email_only = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert list(extension(certificate, ExtensionOID.EXTENDED_KEY_USAGE).value) == email_only
    assert extension(certificate, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value == x509.SubjectAlternativeName(
        [x509.RFC822Name("ner@delegations.example")]
    )
    assert extension(certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value == (
        x509.SubjectKeyIdentifier.from_public_key(identity.key.public_key())
    )
    issuer_ski = extension(ca.certificate, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert extension(certificate, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value.key_identifier == issuer_ski.digest
    assert 0 < certificate.serial_number < 2**128
    assert certificate.not_valid_before_utc == start
    assert certificate.not_valid_after_utc == start + dt.timedelta(days=30)
    assert pki.mailboxes(certificate) == ("ner@delegations.example",)


def test_serials_are_random(ca: pki.Identity) -> None:
    issued = [pki.issue_signing_certificate(ca, common_name="X", emails=["x@x.example"], key_type="ec") for _ in range(8)]
    serials = {identity.certificate.serial_number for identity in issued}
    assert len(serials) == 8
    assert max(serials).bit_length() > 64


def test_default_validity_starts_just_before_now(delegate: pki.Identity) -> None:
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(minutes=10) < delegate.certificate.not_valid_before_utc <= now
    lifetime = delegate.certificate.not_valid_after_utc - delegate.certificate.not_valid_before_utc
    assert lifetime == dt.timedelta(days=825)
    assert pki.mailboxes(delegate.certificate) == ("fra@delegations.example", "fr.vote@delegations.example")


@pytest.mark.parametrize(
    ("emails", "message"),
    [([], "at least one email"), (["not an address"], "not a plain ASCII mailbox"), (["a@b@c"], "mailbox")],
)
def test_issue_refuses_bad_addresses(ca: pki.Identity, emails: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        pki.issue_signing_certificate(ca, common_name="X", emails=emails)


def test_issue_refuses_a_non_ca_issuer(delegate: pki.Identity) -> None:
    with pytest.raises(KeyMaterialError, match="not a CA certificate"):
        pki.issue_signing_certificate(delegate, common_name="X", emails=["x@example.org"])


def test_issue_refuses_zero_days_and_empty_names(ca: pki.Identity) -> None:
    with pytest.raises(UsageError, match="at least one day"):
        pki.issue_signing_certificate(ca, common_name="X", emails=["x@example.org"], days=0)
    with pytest.raises(UsageError, match="common name"):
        pki.issue_signing_certificate(ca, common_name=" ", emails=["x@example.org"])


# --- chain validation with cryptography's verifier and an S/MIME extension policy --------------------


def test_issued_certificate_validates_to_the_ca(ca: pki.Identity, delegate: pki.Identity) -> None:
    verified = pki.smime_verifier([ca.certificate], dt.datetime.now(dt.UTC)).verify(delegate.certificate, [])
    assert verified.chain == [delegate.certificate, ca.certificate]
    assert verified.subjects == [
        x509.RFC822Name("fra@delegations.example"),
        x509.RFC822Name("fr.vote@delegations.example"),
    ]


def test_ec_certificate_validates_to_the_ca(ca: pki.Identity) -> None:
    identity = pki.issue_signing_certificate(ca, common_name="Estonia", emails=["est@x.example"], key_type="ec")
    verified = pki.smime_verifier([ca.certificate], dt.datetime.now(dt.UTC)).verify(identity.certificate, [])
    assert verified.chain == [identity.certificate, ca.certificate]


def test_verifier_refuses_another_ca(delegate: pki.Identity) -> None:
    stranger = pki.create_ca("Someone Else CA", "Elsewhere")
    with pytest.raises(VerificationError):
        pki.smime_verifier([stranger.certificate], dt.datetime.now(dt.UTC)).verify(delegate.certificate, [])


def test_verifier_refuses_outside_the_validity_period(ca: pki.Identity, delegate: pki.Identity) -> None:
    later = delegate.certificate.not_valid_after_utc + dt.timedelta(days=1)
    with pytest.raises(VerificationError, match="not valid at validation time"):
        pki.smime_verifier([ca.certificate], later).verify(delegate.certificate, [])


def test_verifier_refuses_a_certificate_not_for_email(ca: pki.Identity) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    tls_only = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("web@example.org")]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA384())
    )
    with pytest.raises(VerificationError, match="emailProtection"):
        pki.smime_verifier([ca.certificate], now).verify(tls_only, [])


# --- PKCS#12 ---------------------------------------------------------------------------------------


def openssl_info(data: bytes, tmp_path: Path, *extra: str) -> str:
    path = tmp_path / "identity.p12"
    path.write_bytes(data)
    result = subprocess.run(
        [tool("openssl"), "pkcs12", "-info", "-noout", "-in", str(path), "-passin", f"pass:{PASSWORD.decode()}"]
        + list(extra),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_modern_pkcs12_opens_in_openssl(delegate: pki.Identity, tmp_path: Path) -> None:
    data = pki.pkcs12_bytes(delegate, PASSWORD, friendly_name="France")
    info = openssl_info(data, tmp_path)
    assert "MAC: sha256" in info
    assert "PBES2, PBKDF2, AES-256-CBC" in info
    assert "3DES" not in info and "TripleDES" not in info


def test_legacy_pkcs12_opens_in_openssl_legacy_mode(delegate: pki.Identity, tmp_path: Path) -> None:
    data = pki.pkcs12_bytes(delegate, PASSWORD, friendly_name="France", legacy=True)
    info = openssl_info(data, tmp_path, "-legacy")
    assert "MAC: sha1" in info
    assert "pbeWithSHA1And3-KeyTripleDES-CBC" in info
    assert "AES" not in info


@pytest.fixture
def gnupghome() -> Iterator[Path]:
    """A throwaway GnuPG home with loopback pinentry; short path, as the agent's socket path is limited."""
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
    home.chmod(0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    environment = {**os.environ, "GNUPGHOME": str(home)}
    try:
        yield home
    finally:
        subprocess.run([tool("gpgconf"), "--kill", "all"], env=environment, capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_legacy_pkcs12_imports_into_gpgsm(delegate: pki.Identity, gnupghome: Path) -> None:
    path = gnupghome / "france.p12"
    path.write_bytes(pki.pkcs12_bytes(delegate, PASSWORD, friendly_name="France", legacy=True))
    environment = {**os.environ, "GNUPGHOME": str(gnupghome)}
    gpgsm = tool("gpgsm")
    imported = subprocess.run(
        [gpgsm, "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", str(path)],
        input=PASSWORD + b"\n",
        capture_output=True,
        env=environment,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr.decode()
    secret = subprocess.run(
        [gpgsm, "--batch", "--with-colons", "--list-secret-keys"], capture_output=True, env=environment, timeout=60
    )
    assert secret.returncode == 0, secret.stderr.decode()
    listing = secret.stdout.decode()
    fingerprint_sha1 = delegate.certificate.fingerprint(hashes.SHA1()).hex().upper()
    assert f"fpr:::::::::{fingerprint_sha1}:" in listing
    assert "fra@delegations.example" in listing.lower()


@pytest.mark.parametrize("legacy", [False, True])
def test_pkcs12_round_trips(delegate: pki.Identity, legacy: bool) -> None:
    loaded = pki.load_pkcs12(pki.pkcs12_bytes(delegate, PASSWORD, friendly_name="France", legacy=legacy), PASSWORD)
    assert loaded.certificate == delegate.certificate
    assert loaded.chain == delegate.chain
    assert loaded.key.public_key() == delegate.key.public_key()


def test_pkcs12_wrong_password_is_a_clear_error(delegate: pki.Identity) -> None:
    data = pki.pkcs12_bytes(delegate, PASSWORD, friendly_name="France")
    with pytest.raises(KeyMaterialError, match="wrong password"):
        pki.load_pkcs12(data, b"guess")


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x82\xff\xff" + b"\x00" * 64, b"\x30\x80" * 5000])
def test_pkcs12_garbage_is_a_clear_error(data: bytes) -> None:
    with pytest.raises(KeyMaterialError, match="PKCS#12"):
        pki.load_pkcs12(data, PASSWORD)


def test_pkcs12_too_large_is_refused_before_parsing() -> None:
    with pytest.raises(KeyMaterialError, match="cannot be a key file"):
        pki.load_pkcs12(b"\x00" * (pki.MAX_FILE_BYTES + 1), PASSWORD)


def test_pkcs12_without_a_password_is_refused(delegate: pki.Identity) -> None:
    with pytest.raises(KeyMaterialError, match="password is required"):
        pki.pkcs12_bytes(delegate, b"", friendly_name="France")


def test_pkcs12_from_thunderbird_test_set_loads(thunderbird: Path) -> None:
    identity = pki.load_pkcs12((thunderbird / "Alice.p12").read_bytes(), b"nss")
    assert pki.mailboxes(identity.certificate) == ("alice@example.com",)
    assert isinstance(identity.key, rsa.RSAPrivateKey)
    test_ca = x509.load_pem_x509_certificate((thunderbird / "TestCA.pem").read_bytes())
    assert identity.chain == (test_ca,)


def test_pkcs12_ec_from_thunderbird_test_set_loads(thunderbird: Path) -> None:
    identity = pki.load_pkcs12((thunderbird / "Alice-ec.p12").read_bytes(), b"nss")
    assert isinstance(identity.key, ec.EllipticCurvePrivateKey)
    assert identity.key.public_key() == identity.certificate.public_key()


# --- key and certificate files ---------------------------------------------------------------------


def test_private_key_file_is_0600_and_encrypted(delegate: pki.Identity, tmp_path: Path) -> None:
    path = tmp_path / "france.key"
    pki.write_private_key(path, delegate.key, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert pki.read_private_key(path, PASSWORD).public_key() == delegate.key.public_key()
    assert [p.name for p in tmp_path.iterdir()] == ["france.key"]


def test_private_key_file_is_0600_even_with_a_permissive_umask(delegate: pki.Identity, tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        pki.write_private_key(tmp_path / "k.key", delegate.key, PASSWORD)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


def test_private_key_replaces_an_old_file_atomically(ca: pki.Identity, tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_text("old")
    path.chmod(0o644)
    pki.write_private_key(path, ca.key, PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pki.read_private_key(path, PASSWORD).public_key() == ca.key.public_key()


def test_private_key_wrong_password(delegate: pki.Identity, tmp_path: Path) -> None:
    path = tmp_path / "france.key"
    pki.write_private_key(path, delegate.key, PASSWORD)
    with pytest.raises(KeyMaterialError, match="wrong password"):
        pki.read_private_key(path, b"guess")


def test_private_key_missing_corrupt_or_clear(delegate: pki.Identity, tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="No such file"):
        pki.read_private_key(tmp_path / "absent.key", PASSWORD)
    (tmp_path / "corrupt.key").write_bytes(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyMaterialError, match="not a PEM private key"):
        pki.read_private_key(tmp_path / "corrupt.key", PASSWORD)
    clear = delegate.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "clear.key").write_bytes(clear)
    with pytest.raises(KeyMaterialError, match="not encrypted"):
        pki.read_private_key(tmp_path / "clear.key", PASSWORD)
    with pytest.raises(KeyMaterialError, match="cannot read"):
        pki.read_private_key(tmp_path, PASSWORD)


def test_certificate_files_round_trip_in_pem_and_der(delegate: pki.Identity, tmp_path: Path) -> None:
    path = tmp_path / "france.pem"
    pki.write_certificate(path, delegate.certificate)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert pki.read_certificate(path) == delegate.certificate
    der = tmp_path / "france.cer"
    der.write_bytes(delegate.certificate.public_bytes(serialization.Encoding.DER))
    assert pki.read_certificate(der) == delegate.certificate
    text = pki.certificate_pem(delegate.certificate)
    assert text.startswith("-----BEGIN CERTIFICATE-----\n")
    assert pki.load_pem_certificate(text) == pki.load_pem_certificate(text.encode()) == delegate.certificate


@pytest.mark.parametrize(
    "text", ["", "hello", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "é"]
)
def test_garbage_certificate_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(KeyMaterialError, match="not a PEM certificate"):
        pki.load_pem_certificate(text)


def test_garbage_certificate_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_bytes(b"\x30\x03\x02\x01")
    with pytest.raises(KeyMaterialError, match="bad.pem: not a PEM or DER certificate"):
        pki.read_certificate(tmp_path / "bad.pem")
    (tmp_path / "huge.pem").write_bytes(b"A" * (pki.MAX_FILE_BYTES + 1))
    with pytest.raises(KeyMaterialError, match="larger than"):
        pki.read_certificate(tmp_path / "huge.pem")


# --- the secretariat's keys ------------------------------------------------------------------------


def test_secretariat_keys_create_and_load(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    created = pki.SecretariatKeys.create(
        directory, "Security Council Affairs Division", "United Nations", "votes@secretariat.example", PASSWORD
    )
    assert sorted(p.name for p in directory.iterdir()) == [
        ".gitignore",
        "secretariat-ca.key",
        "secretariat-ca.pem",
        "secretariat.key",
        "secretariat.pem",
    ]
    for name in ("secretariat-ca.key", "secretariat.key"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert set((directory / ".gitignore").read_text().splitlines()) >= {"*.key", "*.p12"}
    ca, signer = pki.SecretariatKeys.load(directory, PASSWORD)
    assert ca.certificate == created.ca.certificate and signer.certificate == created.signer.certificate
    assert isinstance(signer.key, ec.EllipticCurvePrivateKey) and signer.key.curve.name == "secp256r1"
    assert pki.mailboxes(signer.certificate) == ("votes@secretariat.example",)
    assert signer.chain == (ca.certificate,)
    pki.smime_verifier([ca.certificate], dt.datetime.now(dt.UTC)).verify(signer.certificate, [])
    usage = extension(signer.certificate, ExtensionOID.KEY_USAGE).value
    assert usage.digital_signature and usage.key_agreement, "mail clients must be able to encrypt ballots to it"


def test_secretariat_keys_respected_by_git(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    pki.SecretariatKeys.create(directory, "Secretariat", "UN", "votes@secretariat.example", PASSWORD)
    subprocess.run([tool("git"), "init", "-q", str(tmp_path)], check=True, timeout=60)
    (directory / "fra.p12").write_bytes(b"x")
    listed = subprocess.run(
        [tool("git"), "-C", str(tmp_path), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "keys/secretariat.pem" in listed and "keys/.gitignore" in listed
    assert ".key" not in listed and ".p12" not in listed


def test_secretariat_keys_keep_an_existing_gitignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("notes.txt\n*.key\n")
    pki.SecretariatKeys.create(tmp_path, "Secretariat", "UN", "votes@secretariat.example", PASSWORD)
    assert (tmp_path / ".gitignore").read_text() == "notes.txt\n*.key\n*.p12\n*.p12.password\n"


def test_secretariat_keys_refuse_to_overwrite(tmp_path: Path) -> None:
    pki.SecretariatKeys.create(tmp_path, "Secretariat", "UN", "votes@secretariat.example", PASSWORD)
    with pytest.raises(KeyMaterialError, match="refusing to replace"):
        pki.SecretariatKeys.create(tmp_path, "Secretariat", "UN", "votes@secretariat.example", PASSWORD)


def test_secretariat_keys_wrong_password_and_mismatch(tmp_path: Path) -> None:
    pki.SecretariatKeys.create(tmp_path / "a", "Secretariat", "UN", "votes@secretariat.example", PASSWORD)
    with pytest.raises(KeyMaterialError, match="wrong password"):
        pki.SecretariatKeys.load(tmp_path / "a", b"guess")
    pki.SecretariatKeys.create(tmp_path / "b", "Secretariat", "UN", "votes@secretariat.example", PASSWORD)
    shutil.copy(tmp_path / "b" / "secretariat.pem", tmp_path / "a" / "secretariat.pem")
    with pytest.raises(KeyMaterialError, match="does not belong to the certificate"):
        pki.SecretariatKeys.load(tmp_path / "a", PASSWORD)
    shutil.copy(tmp_path / "b" / "secretariat.key", tmp_path / "a" / "secretariat.key")
    with pytest.raises(KeyMaterialError, match="not issued by secretariat-ca.pem"):
        pki.SecretariatKeys.load(tmp_path / "a", PASSWORD)
    with pytest.raises(KeyMaterialError, match="No such file"):
        pki.SecretariatKeys.load(tmp_path / "c", PASSWORD)
