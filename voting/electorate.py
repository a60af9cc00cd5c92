"""The electorate file: who votes, with which addresses and certificates.

A TOML file of `[[delegation]]` tables, each with `[[delegation.certificates]]`
holding a pinned certificate in a literal multi-line string. Reading and
writing are at the edge (`load_electorate`, `save_electorate`); changes
(`add_delegation`, `register_certificate`, `revoke`) are pure and return a new
`Electorate`.
"""

from __future__ import annotations

import functools
import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import tomli_w
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import ValidationError

from voting.errors import ConfigError, KeyMaterialError, UsageError
from voting.files import read_bounded, write_file_atomically
from voting.model import Delegation, Electorate, RegisteredCertificate
from voting.pki import (
    SECRETARIAT_SIGNING,
    certificate_pem,
    fingerprint,
    has_secretariat_role,
    load_pem_certificate,
    mailboxes,
)
from voting.rules import RULES
from voting.smime.verify import Trust, TrustedCertificate

MAX_ELECTORATE_BYTES = 16 << 20
"""Far above any body's file (a few kilobytes per certificate), low enough to refuse garbage early."""

_LITERAL_SAFE = re.compile(r"[\x20-\x7e\n]*")
"""Text a TOML multi-line literal string holds unchanged (printable ASCII and newlines)."""


def _location(loc: Sequence[int | str]) -> str:
    """pydantic's ('delegation', 3, 'code') as the reader sees it in the file: delegation[3].code."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).removeprefix(".")


def _describe(error: ValidationError) -> str:
    """The first problem, as 'key: reason'; the rest are usually its consequences."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    elif first["type"] == "string_pattern_mismatch":
        message = f"{first['input']!r} does not match {first['ctx']['pattern']}"
    where = _location(first["loc"]) or "delegation"  # the electorate's own check is across its delegations
    more = len(error.errors()) - 1
    return f"{where}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _check_pins(electorate: Electorate) -> None:
    """Each pinned PEM must be a certificate whose SHA-256 is the pin: a hand-edited file may disagree."""
    for i, delegation in enumerate(electorate.delegation):
        for j, registered in enumerate(delegation.certificates):
            where = f"delegation[{i}].certificates[{j}]"
            try:
                certificate = load_pem_certificate(registered.pem)
            except KeyMaterialError as error:
                raise ValueError(f"{where}.pem: {error}") from None
            if fingerprint(certificate) != registered.sha256:
                raise ValueError(
                    f"{where}.sha256: does not match the pem, whose SHA-256 is {fingerprint(certificate)}"
                )


SignerIdentifier = tuple[str, object]
"""What names a certificate's signer, labelled for an error: ('public key', DER), ('issuer and serial', ...)."""


def _signer_identifiers(certificate: x509.Certificate) -> list[SignerIdentifier]:
    """The key a signature is checked with, and every way a CMS signature may name its signer's certificate.

    Two delegations' certificates sharing any of these could have one's
    signatures matched to the other's certificate: a ballot counted for the
    wrong delegation, or rejected.
    """
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"]
    identifiers: list[SignerIdentifier] = [
        ("public key", tbs["subject_public_key_info"].dump()),
        ("issuer and serial number", (tbs["issuer"].hashable, tbs["serial_number"].native)),
        ("subject key identifier", tbs["subject_public_key_info"].sha1),
    ]
    if parsed.key_identifier is not None:
        identifiers.append(("subject key identifier", parsed.key_identifier))
    return identifiers


@functools.lru_cache(maxsize=4096)
def _identifiers_of_pem(pem: str) -> tuple[SignerIdentifier, ...]:
    """`_signer_identifiers` of a registered certificate, worked out once: the electorate is read every pass."""
    return tuple(_signer_identifiers(load_pem_certificate(pem)))


def shared_signer(electorate: Electorate) -> str | None:
    """Why two delegations' certificates could be taken for each other, or None when none can."""
    seen: dict[SignerIdentifier, tuple[str, str]] = {}
    for delegation in electorate.delegation:
        for registered in delegation.certificates:
            for identifier in _identifiers_of_pem(registered.pem):
                owner, pin = seen.setdefault(identifier, (delegation.code, registered.sha256))
                if owner != delegation.code:
                    return (
                        f"{delegation.code}'s certificate {registered.sha256[:16]}… has the same {identifier[0]}"
                        f" as {owner}'s certificate {pin[:16]}…; a signature of one would be taken for the other"
                    )
    return None


def parse_electorate(text: str) -> Electorate:
    """The electorate in a TOML text; ValueError says where and why it is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML: {error}") from None
    except RecursionError:
        raise ValueError("invalid TOML: nested too deeply") from None
    try:
        electorate = Electorate.model_validate(data)
    except ValidationError as error:
        raise ValueError(_describe(error)) from None
    _check_pins(electorate)
    if built_in := sorted(set(electorate.rules) & set(RULES)):
        raise ValueError(f"rules.{built_in[0]}: the name of a rule built in; give the body's rule a name of its own")
    if (conflict := shared_signer(electorate)) is not None:
        raise ValueError(conflict)
    return electorate


def load_electorate(path: Path) -> Electorate:
    return _electorate_in(path, read_bounded(path, MAX_ELECTORATE_BYTES, "electorate", ConfigError))


def _electorate_in(path: Path, data: bytes) -> Electorate:
    try:
        return parse_electorate(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except ValueError as error:
        raise ConfigError(f"{path}: {error}") from None


class ElectorateFile:
    """An electorate file read afresh at each `load`, so that a certificate issued or revoked takes effect at
    once, and parsed again only when its bytes have changed: `voting serve` runs a pass at every delivery, and
    parsing a 193-member file cost more than judging the ballot that caused the pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read: tuple[bytes, Electorate] | None = None

    def load(self) -> Electorate:
        data = read_bounded(self.path, MAX_ELECTORATE_BYTES, "electorate", ConfigError)
        if self._read is None or self._read[0] != data:
            self._read = (data, _electorate_in(self.path, data))
        return self._read[1]


def _line(key: str, value: Any) -> str:
    return tomli_w.dumps({key: value})


def _pem_line(pem: str) -> str:
    """PEM in a literal multi-line string, so the file shows the certificate as it is usually seen."""
    if _LITERAL_SAFE.fullmatch(pem) and "'''" not in pem and not pem.endswith("'"):
        return f"pem = '''\n{pem}'''\n"
    return _line("pem", pem)


def _names_line(names: dict[str, str]) -> str:
    """ `names = { fr = "Belgique" }`: an inline table, so it stays among the delegation's own keys."""
    pairs = ", ".join(_line(language, name).strip() for language, name in names.items())
    return f"names = {{ {pairs} }}\n"


def _certificate_table(registered: RegisteredCertificate) -> str:
    lines = [
        "[[delegation.certificates]]\n",
        _line("sha256", registered.sha256),
        _pem_line(registered.pem),
        _line("issued_by_secretariat", registered.issued_by_secretariat),
        _line("secretariat_held_key", registered.secretariat_held_key),
        _line("revoked", registered.revoked),
    ]
    if registered.revoked_at is not None:
        lines.append(_line("revoked_at", registered.revoked_at))
    return "".join(lines)


def _delegation_table(delegation: Delegation) -> str:
    head = "".join(
        [
            "[[delegation]]\n",
            _line("code", delegation.code),
            _line("name", delegation.name),
            _names_line(delegation.names) if delegation.names else "",
            _line("permanent", delegation.permanent),
            _line("weight", delegation.weight) if delegation.weight is not None else "",
            _line("population", delegation.population) if delegation.population is not None else "",
            _line("addresses", delegation.addresses),
            _line("timezone", delegation.timezone) if delegation.timezone else "",
            _line("language", delegation.language) if delegation.language != "en" else "",
        ]
    )
    return "\n".join([head, *(_certificate_table(c) for c in delegation.certificates)])


def dump_electorate(electorate: Electorate) -> str:
    """Readable TOML that `parse_electorate` turns back into an equal electorate."""
    top = _line("name", electorate.name)
    if electorate.required_yes is not None:
        top += _line("required_yes", electorate.required_yes)
    if electorate.quorum is not None:
        top += _line("quorum", electorate.quorum)
    if electorate.observers:
        top += _line("observers", electorate.observers)
    rules = [tomli_w.dumps({"rules": {name: spec.model_dump(exclude_none=True)}}) for name, spec in electorate.rules.items()]
    return "\n".join([top, *rules, *(_delegation_table(d) for d in electorate.delegation)])


def save_electorate(path: Path, electorate: Electorate) -> None:
    try:
        write_file_atomically(path, dump_electorate(electorate).encode("utf-8"), mode=0o644)
    except OSError as error:
        raise ConfigError(f"{path}: cannot write the electorate: {error.strerror or error}") from None


# --- changes -------------------------------------------------------------------------------------


def _delegation(electorate: Electorate, code: str) -> Delegation:
    delegation = electorate.get(code)
    if delegation is None:
        raise UsageError(f"no delegation {code!r} in the electorate {electorate.name!r}")
    return delegation


def _replace(electorate: Electorate, replacement: Delegation) -> Electorate:
    delegations = [replacement if d.code == replacement.code else d for d in electorate.delegation]
    return electorate.model_copy(update={"delegation": delegations})


def _with_addresses(electorate: Electorate, code: str, new: Sequence[str]) -> list[str]:
    """The delegation's addresses and the `new` ones; an address of another delegation is refused.

    Ballots, receipts and results go to a delegation's addresses, and an
    unsigned message is answered to the delegation whose address sent it: one
    address shared by two delegations would send each the other's mail.
    """
    wanted = list(dict.fromkeys(a.lower() for a in new))
    for other in electorate.delegation:
        taken = [a for a in wanted if a in other.addresses]
        if other.code != code and taken:
            raise UsageError(f"{taken[0]} is an address of {other.code} ({other.name}); an address belongs to one"
                             f" delegation, so it cannot be {code}'s too")
    existing = electorate.get(code)
    result = list(existing.addresses if existing else ())
    result.extend(a for a in wanted if a not in result)
    return result


def _refuse_observers(electorate: Electorate, code: str, addresses: Sequence[str]) -> None:
    """An observer's address is never a delegation's: mail from it must count for nobody."""
    shared = sorted({a.lower() for a in addresses} & set(electorate.observers))
    if shared:
        raise UsageError(f"{', '.join(shared)} is an observer's address in the electorate, so it cannot be {code}'s")


def add_delegation(electorate: Electorate, code: str, name: str, *, email: str, permanent: bool) -> Electorate:
    """A new delegation; for an existing code, `email` joins its addresses and the rest is kept."""
    _refuse_observers(electorate, code, [email])
    existing = electorate.get(code)
    addresses = _with_addresses(electorate, code, [email])
    try:
        if existing is None:
            delegation = Delegation(code=code, name=name, permanent=permanent, addresses=addresses)
            return electorate.model_copy(update={"delegation": [*electorate.delegation, delegation]})
        return _replace(electorate, Delegation.model_validate({**existing.model_dump(), "addresses": addresses}))
    except ValidationError as error:
        raise UsageError(f"delegation {code!r}: {_describe(error)}") from None


def register_certificate(
    electorate: Electorate, code: str, certificate: x509.Certificate, *, issued_by_secretariat: bool,
    secretariat_held_key: bool,
) -> Electorate:
    """The certificate pinned to the delegation, and its mailboxes added to the delegation's addresses.

    Registering a certificate the delegation already holds changes nothing (a
    revoked one stays revoked). Every way in (`keys issue`, `keys import`)
    comes here, so a certificate with the secretariat's signing role is
    refused for all of them.
    """
    delegation = _delegation(electorate, code)
    pin = fingerprint(certificate)
    if has_secretariat_role(certificate):
        raise UsageError(
            f"certificate {pin[:16]}… carries the secretariat's signing role (extended key usage"
            f" {SECRETARIAT_SIGNING.dotted_string}); no delegation may hold it"
        )
    owner = next((d.code for d in electorate.delegation for c in d.certificates if c.sha256 == pin), None)
    if owner == code:
        return electorate
    if owner is not None:
        raise UsageError(
            f"certificate {pin[:16]}… is already registered to {owner}; a certificate votes for one delegation"
        )
    boxes = mailboxes(certificate)
    _refuse_observers(electorate, code, boxes)
    if not boxes:
        raise UsageError(
            f"certificate {certificate.subject.rfc4514_string()} names no email address, so no ballot could match it"
        )
    registered = RegisteredCertificate(
        sha256=pin, pem=certificate_pem(certificate), issued_by_secretariat=issued_by_secretariat,
        secretariat_held_key=secretariat_held_key,
    )
    try:
        updated = Delegation.model_validate(
            {
                **delegation.model_dump(),
                "addresses": _with_addresses(electorate, code, boxes),
                "certificates": [*delegation.certificates, registered],
            }
        )
    except ValidationError as error:
        raise UsageError(f"certificate of {code}: {_describe(error)}") from None
    result = _replace(electorate, updated)
    if (conflict := shared_signer(result)) is not None:
        raise UsageError(f"refusing to register the certificate: {conflict}")
    return result


def revoke(electorate: Electorate, code: str, at: datetime) -> Electorate:
    """Every certificate of the delegation revoked from `at`; ones revoked earlier keep their time."""
    if at.tzinfo is None:
        raise UsageError("a revocation time must carry a time zone")
    delegation = _delegation(electorate, code)
    certificates = [
        c if c.revoked else c.model_copy(update={"revoked": True, "revoked_at": at}) for c in delegation.certificates
    ]
    return _replace(electorate, delegation.model_copy(update={"certificates": certificates}))


def revoked_by(registered: RegisteredCertificate, at: datetime | None) -> bool:
    """Whether the certificate is revoked at `at` (at any time, without it): a revocation counts from its time on."""
    return registered.revoked and (at is None or registered.revoked_at is None or registered.revoked_at <= at)


NO_ADDRESS = "no address"


def why_cannot_vote(delegation: Delegation, at: datetime) -> str | None:
    """Why no ballot of the delegation could be sent or counted at `at`, or None when one can."""
    if not delegation.addresses:
        return NO_ADDRESS
    if not delegation.certificates:
        return "no certificate"
    standing = [c for c in delegation.certificates if not revoked_by(c, at)]
    if not standing:
        return "every certificate revoked"
    certificates = [load_pem_certificate(c.pem) for c in standing]
    if not any(c.not_valid_before_utc <= at < c.not_valid_after_utc for c in certificates):
        return "no certificate valid now (expired, or not yet valid)"
    return None


def unable_to_vote(electorate: Electorate, at: datetime) -> dict[str, str]:
    """Each delegation that cannot vote at `at`, with the reason (`why_cannot_vote`)."""
    return {d.code: why for d in electorate.delegation if (why := why_cannot_vote(d, at)) is not None}


def trust_of(electorate: Electorate, anchors: Sequence[x509.Certificate], at: datetime | None = None) -> Trust:
    """What signature verification trusts: each registered certificate with its owner, and the CA anchors.

    With `at`, a certificate counts as revoked only from its revocation time
    on, so a ballot received before a revocation stays valid when re-checked.
    The same registrations, anchors and revocations give the same `Trust`,
    built once: the certificates are read and indexed once, not per message.
    """
    key = (
        tuple((d.code, c.pem, c.issued_by_secretariat, revoked_by(c, at)) for d in electorate.delegation
              for c in d.certificates),
        tuple(anchors),
    )
    trust = _TRUSTS.get(key)
    if trust is None:
        registered = tuple(
            TrustedCertificate(certificate=_certificate(pem), owner=code, revoked=revoked, chain_to_anchor=chained)
            for code, pem, chained, revoked in key[0]
        )
        trust = Trust(registered=registered, anchors=key[1], anchors_admit_unregistered=False)
        if len(_TRUSTS) >= MAX_TRUSTS:
            _TRUSTS.pop(next(iter(_TRUSTS)))
        _TRUSTS[key] = trust
    return trust


MAX_TRUSTS = 8
"""Electorates kept with their trust: the one in force, and those around a revocation an audit steps across."""
_TRUSTS: dict[tuple[tuple[tuple[str, str, bool, bool], ...], tuple[x509.Certificate, ...]], Trust] = {}


TrustAt = Callable[[datetime, tuple[x509.Certificate, ...]], Trust]
"""The trust of one electorate at a receipt time, under given anchors (`trust_by_time`)."""


def trust_by_time(electorate: Electorate) -> TrustAt:
    """`trust_of` the electorate at any receipt time, each trust built once.

    Between two revocation times every certificate stands or is revoked
    alike, so the trust is the same: a pass or an audit builds one per span
    its messages fall in, not one per message. The revocation times are read
    at the first call, inside a message's judging, where `trust_of` would
    read them.
    """
    cuts: list[datetime] = []
    built: dict[tuple[int, tuple[x509.Certificate, ...]], Trust] = {}

    def at(when: datetime, anchors: tuple[x509.Certificate, ...]) -> Trust:
        if not built:
            cuts[:] = sorted({c.revoked_at for d in electorate.delegation for c in d.certificates
                              if c.revoked and c.revoked_at is not None})
        key = (bisect_right(cuts, when), anchors)
        if key not in built:
            built[key] = trust_of(electorate, anchors, when)
        return built[key]

    return at


@functools.lru_cache(maxsize=4096)
def _certificate(pem: str) -> x509.Certificate:
    """A registered certificate, read from its PEM once."""
    return load_pem_certificate(pem)
