"""Certificates: fingerprints and mailboxes, the secretariat CA, issuing and PKCS#12."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: the pin by which delegations are registered."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def mailboxes(certificate: x509.Certificate) -> tuple[str, ...]:
    """The certificate's email addresses, lowercased.

    The subjectAltName rfc822Names when the extension is present; otherwise,
    for older certificates (the Thunderbird test set among them), the
    subject's emailAddress attributes.
    """
    try:
        san = certificate.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return tuple(
            str(attribute.value).lower()
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        )
    return tuple(name.lower() for name in san.get_values_for_type(x509.RFC822Name))
