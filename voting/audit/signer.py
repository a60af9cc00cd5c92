"""Who signed the bundle and the results email: the secretariat's signing role, pinned (docs/audit.md)."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from voting.audit.checks import Check, short
from voting.audit.reading import Contents
from voting.ballot import text_of_entity
from voting.errors import KeyMaterialError
from voting.manifest import Manifest
from voting.pki import SECRETARIAT_SIGNING, fingerprint, has_secretariat_role, is_ca, load_pem_certificate
from voting.publication import BUNDLE_SHA256, CHAIN_HEAD, SIGNER_SHA256, bundle_sha256, line, stated
from voting.smime.verify import Trust, TrustedCertificate, verify_detached_der, verify_message


@dataclass(frozen=True)
class _SignerTrust:
    """Whom the manifest's and the results email's signer must chain to or be, and how the audit words it."""

    trust: Trust
    source: str


def _signer_trust(given: x509.Certificate | None, ca: x509.Certificate | None, with_results: bool
                  ) -> _SignerTrust | None:
    """The --secretariat-cert pinned exactly, or as a CA; else the CA the bundle carries; None without either."""
    if given is not None and is_ca(given):
        return _SignerTrust(Trust(anchors=(given,)), f"the --secretariat-cert CA {given.subject.rfc4514_string()}")
    if given is not None:
        return _SignerTrust(Trust(registered=(TrustedCertificate(given, owner="secretariat"),), anchors=(given,)),
                            f"the --secretariat-cert {given.subject.rfc4514_string()}")
    if ca is not None:
        return _SignerTrust(Trust(anchors=(ca,)), "the CA carried in the bundle itself" + (
            ", and the same signer as the results email" if with_results else
            " only: this proves the bundle consistent with itself, not who made it (give --secretariat-cert with"
            " the secretariat's signing certificate, or --results with the results email)"))
    return None


def _signer_problem(signer: x509.Certificate, manifest: Manifest) -> str | None:
    """Why a trusted signature is still not the secretariat's: the role, and the signer the manifest pins."""
    if not has_secretariat_role(signer):
        return (f"which lacks the secretariat's signing role (extended key usage {SECRETARIAT_SIGNING.dotted_string}):"
                " a certificate such as a delegation's, however it chains")
    if fingerprint(signer) != manifest.signer_sha256:
        return f"SHA-256 {fingerprint(signer)}, not the signer the manifest pins (signer_sha256 {manifest.signer_sha256})"
    return None


def secretariat_checks(
    contents: Contents, manifest: Manifest, given: x509.Certificate | None, with_results: bool
) -> tuple[x509.Certificate | None, _SignerTrust | None, list[Check]]:
    """The bundle's CA, the trust its signer is checked against, the CA check and the manifest's signature check."""
    try:
        ca: x509.Certificate | None = load_pem_certificate(manifest.secretariat_ca_pem)
    except KeyMaterialError as error:
        ca = None
        ca_check = Check("secretariat CA", False, f"secretariat_ca_pem: {error}")
    else:
        assert ca is not None
        ca_check = Check("secretariat CA", True, f"{ca.subject.rfc4514_string()} (SHA-256 {short(fingerprint(ca))}…)")
        if given is not None and not _same_or_issued_by(given, ca):
            ca_check = Check("secretariat CA", False, "the bundle's CA is neither the --secretariat-cert nor its issuer")
    signer_trust = _signer_trust(given, ca, with_results)
    if signer_trust is None:
        return None, None, [Check("signature", False, "no certificate to check manifest.json.p7s against"), ca_check]
    result = verify_detached_der(contents.manifest, contents.signature, signer_trust.trust, manifest.exported_at)
    if result.valid and result.signer is not None:
        subject = result.signer.subject.rfc4514_string()
        problem = _signer_problem(result.signer, manifest)
        signature = (Check("signature", False, f"manifest.json is signed by {subject}, {problem}") if problem else
                     Check("signature", True, f"manifest.json signed by {subject}, the signer the manifest pins, "
                                              f"trusted via {signer_trust.source}"))
    else:
        reason = result.reason.describe() if result.reason else "invalid"
        signature = Check("signature", False,
                          f"manifest.json.p7s does not verify against {signer_trust.source}: {reason}")
    return ca, signer_trust, [signature, ca_check]


def results_checks(results: bytes, bundle: bytes, manifest: Manifest, signer_trust: _SignerTrust | None) -> list[Check]:
    """The results email that delegations received names this bundle: signed by the signer the bundle pins,
    and quoting, in its signed text, the bundle's SHA-256 and the chain's head."""
    names = ("results signature", "results bundle SHA-256", "results chain head")
    if signer_trust is None:
        return [Check(name, False, "no certificate to check the results email against") for name in names]
    result = verify_message(results, signer_trust.trust, manifest.exported_at)
    problem = None
    if not result.valid or result.signer is None:
        reason = result.reason.describe() if result.reason else "invalid"
        problem = f"its S/MIME signature does not verify against {signer_trust.source}: {reason}"
    elif signer_problem := _signer_problem(result.signer, manifest):
        problem = f"it is signed by {result.signer.subject.rfc4514_string()}, {signer_problem}"
    if problem is not None:
        return [Check(names[0], False, problem),
                *(Check(name, False, "not read: the results email is not the secretariat's") for name in names[1:])]
    assert result.signer is not None and result.signed_content is not None
    text = text_of_entity(result.signed_content)
    signature = _stated_check(names[0], text, SIGNER_SHA256, manifest.signer_sha256, "the signer that signed it")
    if signature.ok:
        signature = Check(names[0], True, f"signed by {result.signer.subject.rfc4514_string()}, the signer the bundle"
                                          f" pins, which the email names: {line(SIGNER_SHA256, manifest.signer_sha256)}")
    return [
        signature,
        _stated_check(names[1], text, BUNDLE_SHA256, bundle_sha256(bundle), "this bundle's"),
        _stated_check(names[2], text, CHAIN_HEAD, manifest.chain.head, "the manifest's"),
    ]


def _stated_check(name: str, text: str, label: str, actual: str, whose: str) -> Check:
    """The signed text states `label` once, and it is `actual`."""
    found = stated(text, label)
    if len(found) != 1:
        return Check(name, False, f"the results email's signed text states {len(found)} lines \"{label}: …\","
                                  " not exactly one")
    if found[0] != actual:
        return Check(name, False, f"the results email states {line(label, found[0])}, but {whose} is {actual}")
    return Check(name, True, f"the results email states {line(label, actual)}, {whose}")


def _same_or_issued_by(given: x509.Certificate, ca: x509.Certificate) -> bool:
    if given == ca:
        return True
    try:
        given.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True
