"""What a vote leaves behind: its audit bundle, the audit of one, its public record; and the demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voting.cli.common import emit, read_input, service_of
from voting.publication import Publication


def cmd_export(args: argparse.Namespace) -> int:
    from voting.bundle import export_bundle

    summary = export_bundle(service_of(args), args.vote, Path(args.out))
    emit(
        args,
        {"bundle": str(summary.path), "vote": summary.vote_id, "messages": summary.messages, "bytes": summary.bytes,
         **publication_json(summary.publication)},
        "\n".join([f"Wrote {summary.path}: {summary.messages} messages, {summary.bytes} bytes",
                   *summary.publication.lines()]),
    )
    return 0


def publication_json(publication: Publication) -> dict[str, str]:
    """The `--json` keys of `voting.publication.Publication`, as `export`, `record` and `audit` print them."""
    return {"bundle_sha256": publication.bundle_sha256, "head": publication.chain_head,
            "signer_sha256": publication.signer_sha256}


def cmd_audit(args: argparse.Namespace) -> int:
    from voting.audit import audit_bundle, checks_json, render_checks
    from voting.bundle import read_bundle
    from voting.pki import read_certificate
    from voting.publication import BUNDLE_SHA256, bundle_sha256, line

    anchor = read_certificate(Path(args.secretariat_cert)) if args.secretariat_cert else None
    results = read_input(args.results, "results email") if args.results else None
    show_progress = not args.json and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show_progress:
            print(f"\rverifying messages: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    bundle = read_bundle(Path(args.bundle))
    checks = audit_bundle(bundle, anchor, progress, results)
    sha256 = bundle_sha256(bundle)
    emit(args, {"bundle_sha256": sha256, **checks_json(checks)},
         "\n".join([line(BUNDLE_SHA256, sha256), *render_checks(checks)]))
    return 0 if all(check.ok for check in checks) else 1


def cmd_record(args: argparse.Namespace) -> int:
    from voting.bundle import write_record

    service = service_of(args)
    record = write_record(service, args.vote, Path(args.out) if args.out else service.config.records_dir)
    bundle = record.bundle
    emit(args,
         {"html": str(record.html), "text": str(record.text), "bundle": str(bundle.path) if bundle else None,
          **(publication_json(bundle.publication) if bundle else {})},
         "\n".join([f"  html   {record.html}", f"  text   {record.text}",
                    *([f"  bundle {bundle.path}", *bundle.publication.lines()] if bundle else [])]))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from voting.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None, as_json=args.json, procedure=args.procedure)
