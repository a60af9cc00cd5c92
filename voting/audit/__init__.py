"""The audit bundle's pure core (docs/design.md §6, docs/audit.md): build the manifest, and verify a bundle.

`build_manifest` turns what the ledger holds about a closed vote into a
`Manifest`. `audit_bundle` takes a bundle's bytes and returns one `Check` per
item, replaying the service's own functions (`verdict.judge`,
`verdict.counted_choices`, `rules.decide`, `ledger.event_hash`) on nothing but
what the bundle holds, so a verifier needs no ledger and no network.

Each kind of check lives in the module named after it: `reading` (the zip,
within bounds), `signer` (who signed the bundle and the results email),
`members` (what the bundle holds, against its hashes), `chain` (the vote's
events), `replay` (every verdict judged again), `counting` (the count and the
outcomes); `building` makes the manifest for `voting export`.
"""

from __future__ import annotations

from cryptography import x509
from pydantic import ValidationError

from voting.audit.building import build_manifest, with_decrypted
from voting.audit.chain import chain_check, closing_check, decision_check, parameter_check, token_check
from voting.audit.checks import Check, Progress, checks_json, render_checks
from voting.audit.counting import outcome_checks, recount
from voting.audit.members import (
    certificate_checks,
    decrypted_checks,
    draft_checks,
    member_check,
    message_hash_checks,
    read_snapshot,
)
from voting.audit.reading import Unreadable, first_problem, unpack
from voting.audit.reading import MAX_BUNDLE_BYTES
from voting.audit.replay import verdict_checks
from voting.audit.signer import results_checks, secretariat_checks
from voting.manifest import FORMAT, Manifest

__all__ = ["MAX_BUNDLE_BYTES", "Check", "audit_bundle", "build_manifest", "checks_json", "render_checks",
           "with_decrypted"]


def audit_bundle(
    data: bytes,
    secretariat_ca: x509.Certificate | None = None,
    progress: Progress | None = None,
    results: bytes | None = None,
) -> list[Check]:
    """Every check of docs/audit.md on a bundle's bytes; a bundle that cannot be read gives one failed check.

    `secretariat_ca` is the --secretariat-cert: the secretariat's signing
    certificate, or its CA; `results` the raw results email a delegation
    received, which must name this bundle.
    """
    try:
        contents = unpack(data)
    except Unreadable as error:
        return [Check("bundle", False, f"not a readable audit bundle: {error}")]
    checks = [Check("bundle", True, f"zip with {len(contents.messages)} messages")]
    try:
        manifest = Manifest.model_validate_json(contents.manifest)
    except ValidationError as error:
        return [*checks, Check("manifest", False, f"manifest.json is not a {FORMAT} manifest: {first_problem(error)}")]
    checks.append(Check("manifest", True, f"{FORMAT}, vote {manifest.vote.id}, {len(manifest.messages)} messages"))
    ca, signer_trust, secretariat = secretariat_checks(contents, manifest, secretariat_ca, results is not None)
    snapshot, snapshot_check = read_snapshot(manifest)
    counted, cast_at, counted_checks = recount(manifest)
    return [
        *checks,
        *secretariat,
        *(results_checks(results, data, manifest, signer_trust) if results is not None else []),
        member_check(contents, manifest),
        chain_check(manifest),
        parameter_check(manifest),
        snapshot_check,
        token_check(manifest),
        *draft_checks(contents, manifest),
        *certificate_checks(manifest, snapshot),
        *message_hash_checks(contents, manifest),
        *decrypted_checks(contents, manifest),
        *verdict_checks(contents, manifest, ca, progress),
        decision_check(manifest),
        *counted_checks,
        *outcome_checks(manifest, snapshot, counted, cast_at),
        closing_check(manifest),
    ]
