"""Setting up a deployment and its keys: who may vote, with which certificate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TYPE_CHECKING

from voting.cli.common import config_of, confirmed, emit, password_of
from voting.errors import UsageError
from voting.times import readable_time

if TYPE_CHECKING:
    from voting.config import Config


def next_steps(config: Config) -> list[str]:
    """What to do after `voting init`, in the words of the README's step-by-step deployment."""
    here = config.root.resolve() == Path.cwd().resolve()
    return [
        *([] if here else [f"cd {config.root}"]),
        "voting keys sign REQUEST.pem",
        "voting keys issue CODE --email ADDRESS",
        "voting keys import CODE CERT.pem --csr REQUEST.pem",
    ]


def cmd_init(args: argparse.Namespace) -> int:
    from voting.deployment import init_deployment

    config = init_deployment(
        Path(args.directory), name=args.name, address=args.address, template=args.electorate, port=args.port,
        prefix=args.vote_prefix,
    )
    emit(
        args,
        {"directory": str(config.root), "config": str(config.path), "keys": str(config.keys_dir),
         "next": next_steps(config)},
        f"New deployment in {config.root}\n  configuration: {config.path}\n  keys: {config.keys_dir}\n"
        f"  electorate: {config.electorate_file}\n"
        + "\n".join(f"Next: {step}" for step in next_steps(config)),
    )
    return 0


def cmd_keys_issue(args: argparse.Namespace) -> int:
    from voting.deployment import issue_delegation_key

    issued = issue_delegation_key(
        config_of(args), args.code, email=args.email, name=args.name, permanent=args.permanent, legacy=args.legacy,
        keep_old=args.keep_old, new=args.new, out=Path(args.out) if args.out else None,
    )
    emit(
        args,
        {"code": issued.code, "sha256": issued.sha256, "pkcs12": str(issued.pkcs12_path), "password": issued.password,
         "secretariat_held_key": True, **retirement_json(issued.retired, issued.retired_at)},
        "\n".join([
            f"Issued a signing certificate to {issued.code} (SHA-256 {issued.sha256})",
            f"  the one copy of its PKCS#12: {issued.pkcs12_path}",
            "  hand it to the delegation, then delete it here; nothing else the secretariat keeps can sign for it",
            f"  its password, written nowhere (send it by another channel): {issued.password}",
            "  registered as a certificate whose key the secretariat held (`voting keys request` and "
            "`voting keys sign` make one it never holds)",
            *retirement_lines(issued.retired, issued.retired_at),
        ]),
    )
    return 0


def retirement_json(retired: Sequence[str], at: datetime | None) -> dict[str, Any]:
    return {"retired": list(retired), "retired_at": f"{at:%Y-%m-%dT%H:%M:%SZ}" if at else None}


def retirement_lines(retired: Sequence[str], at: datetime | None) -> list[str]:
    return [f"  retired from {at:%Y-%m-%dT%H:%M:%SZ} (ballots it signed before stay valid): {pin}" for pin in retired]


def cmd_keys_request(args: argparse.Namespace) -> int:
    from voting.delegate import make_request

    made = make_request(Path(args.out or "."), args.code, args.email, password_of(args, "VOTING_KEY_PASSWORD"))
    shown = made.password.decode() if made.generated else None
    emit(
        args,
        {"code": args.code, "key": str(made.key_path), "request": str(made.request_path),
         "key_sha256": made.key_sha256, "password": shown},
        "\n".join([
            f"Made {args.code}'s signing key on this machine; it never leaves it",
            f"  private key (keep it here): {made.key_path}",
            *([f"  its passphrase, written nowhere (keep it safe): {shown}"] if shown else []),
            f"  request to send to the secretariat: {made.request_path}",
            f"  the key's SHA-256, to read to the secretariat by telephone: {made.key_sha256}",
            f"When the certificate comes back: voting keys bundle CERT.pem --key {made.key_path}",
        ]),
    )
    return 0


def cmd_keys_sign(args: argparse.Namespace) -> int:
    from voting.deployment import sign_delegation_request

    signed = sign_delegation_request(
        config_of(args), Path(args.request), code=args.code, confirmed=args.email, name=args.name,
        permanent=args.permanent, keep_old=args.keep_old, out=Path(args.out) if args.out else None,
    )
    emit(
        args,
        {"code": signed.code, "sha256": signed.sha256, "key_sha256": signed.key_sha256,
         "addresses": list(signed.addresses), "certificate": str(signed.certificate_path),
         "secretariat_held_key": False, **retirement_json(signed.retired, signed.retired_at)},
        "\n".join([
            f"Issued a signing certificate to {signed.code} <{', '.join(signed.addresses)}> (SHA-256 {signed.sha256})",
            f"  for the key with SHA-256 {signed.key_sha256}: the delegation must read you the same by telephone",
            f"  certificate to send back to the delegation: {signed.certificate_path}",
            "  registered as a certificate whose key the secretariat never held",
            *retirement_lines(signed.retired, signed.retired_at),
        ]),
    )
    return 0


def cmd_keys_bundle(args: argparse.Namespace) -> int:
    from voting.delegate import bundle_pkcs12
    from voting.pki import fingerprint

    password = password_of(args, "VOTING_KEY_PASSWORD")
    if not password:
        raise UsageError("give the key's passphrase with --password-file FILE or VOTING_KEY_PASSWORD")
    key_path = Path(args.key)
    out = Path(args.out) if args.out else key_path.with_suffix(".p12")
    identity = bundle_pkcs12(Path(args.certificate), key_path, out, password, legacy=args.legacy)
    emit(args, {"pkcs12": str(out), "sha256": fingerprint(identity.certificate)},
         f"Wrote {out} for the mail client, protected by the key's passphrase")
    return 0


def cmd_keys_import(args: argparse.Namespace) -> int:
    from voting.deployment import Proof, import_delegation_certificate

    proof = Proof("message", Path(args.proof)) if args.proof else Proof("csr", Path(args.csr)) if args.csr else None
    pin = import_delegation_certificate(config_of(args), args.code, Path(args.certificate), proof)
    emit(args, {"code": args.code, "sha256": pin}, f"Registered certificate {pin} to {args.code}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from voting.deployment import revoke_delegation
    from voting.electorate import load_electorate

    config = config_of(args)
    delegation = load_electorate(config.electorate_file).get(args.code)
    if delegation is not None and not confirmed(
        args, "keys revoke", f"Revoke every certificate of {delegation.label} now? Ballots it signs after now will not count"
    ):
        print("voting: nothing revoked", file=sys.stderr)
        return 1
    at = datetime.now(UTC).replace(microsecond=0)
    revoke_delegation(config, args.code, at)
    emit(args, {"code": args.code, "revoked_at": at.isoformat()},
         f"Revoked every certificate of {args.code} from {readable_time(at, [config.settings.secretariat.timezone])}")
    return 0


def cmd_keys_rotate_signer(args: argparse.Namespace) -> int:
    from voting.pki import SIGNER_CERTIFICATE, SecretariatKeys, fingerprint

    config = config_of(args)
    signer = SecretariatKeys.rotate_signer(config.keys_dir, config.key_password()).signer
    pin = fingerprint(signer.certificate)
    path = config.keys_dir / SIGNER_CERTIFICATE
    emit(args, {"certificate": str(path), "sha256": pin},
         f"New signing certificate {path} (SHA-256 {pin}), with the secretariat's signing role;"
         " publish it to the delegations in place of the old one")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from voting.deployment import kept_pkcs12_path
    from voting.electorate import load_electorate, why_cannot_vote
    from voting.pki import load_pem_certificate

    config = config_of(args)
    now = datetime.now(UTC)
    electorate = load_electorate(config.electorate_file)
    rows: list[dict[str, Any]] = []
    for d in electorate.delegation:
        certificates: list[dict[str, Any]] = []
        for c in d.certificates:
            certificate = load_pem_certificate(c.pem)
            certificates.append(
                {
                    "sha256": c.sha256,
                    "issued_by_secretariat": c.issued_by_secretariat,
                    "secretariat_held_key": c.secretariat_held_key,
                    "key_copy_in_keys": str(kept) if (kept := kept_pkcs12_path(config, d.code, c.sha256)).exists()
                    else None,
                    "revoked": c.revoked,
                    "not_after": certificate.not_valid_after_utc.isoformat(),
                }
            )
        rows.append({"code": d.code, "name": d.name, "permanent": d.permanent, "addresses": d.addresses,
                     "certificates": certificates, "cannot_vote": why_cannot_vote(d, now)})
    lines = [f"{electorate.name}: {len(rows)} delegations"]
    for row in rows:
        marks = " (permanent)" if row["permanent"] else ""
        lines.append(f"{row['code']:<5} {row['name']}{marks}  {', '.join(row['addresses'])}")
        lines.extend(
            f"      {c['sha256'][:16]}…  until {c['not_after'][:10]}"
            + ("  REVOKED" if c["revoked"] else "")
            + ("" if c["issued_by_secretariat"] else "  imported")
            + ("  key held by the secretariat" if c["secretariat_held_key"] else "  key made by the delegation")
            + (f"  a copy of the key is still in {c['key_copy_in_keys']}: hand it over and delete it"
               if c["key_copy_in_keys"] else "")
            for c in row["certificates"]
        )
        if row["cannot_vote"]:
            lines.append(f"      cannot vote: {row['cannot_vote']}")
    emit(args, rows, "\n".join(lines))
    return 0
