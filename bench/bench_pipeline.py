"""Throughput of one service pass: ballots fetched from the Maildir, verified, judged, recorded and answered.

Each answer is a receipt signed by the secretariat (ECDSA P-256), queued in
the ledger in the decision's transaction. Prints ballots per second for the
pass and the share of it spent signing receipts. Run: python bench/bench_pipeline.py [BALLOTS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from voting.deployment import init_deployment, issue_delegation_key
from voting.electorate import load_electorate
from voting.mail import maildir
from voting.mail.compose import signed_mail
from voting.pki import load_pkcs12
from voting.reply import Secretariat, build_reply
from voting.service import DraftFile, Service


def main() -> int:
    ballots = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    root = Path(tempfile.mkdtemp(prefix="voting-bench-"))
    config = init_deployment(root, name="Bench Secretariat", address="votes@secretariat.example", template="unsc-2020")
    electorate = load_electorate(config.electorate_file)
    identities = {}
    for delegation in electorate.delegation:
        issued = issue_delegation_key(config, delegation.code, email=delegation.addresses[0], name=None,
                                      permanent=delegation.permanent)
        identities[delegation.code] = load_pkcs12(issued.pkcs12_path.read_bytes(), issued.password.encode())
    draft = root / "draft.txt"
    draft.write_text("Draft resolution\n")
    service = Service(config, log=lambda line: None)
    service.open_vote([DraftFile("S/1", draft)], rule="unsc-substantive", closes_at=datetime.now(UTC) + timedelta(hours=1),
                      title="Bench")
    ballot_of = {}
    for message in service.ledger.outbox("queued"):
        code = next(d.code for d in electorate.delegation if d.addresses[0] in message.recipients)
        ballot_of[code] = message.raw
    codes = list(identities)
    for index in range(ballots):
        code = codes[index % len(codes)]
        reply = build_reply(ballot_of[code], identities[code], ["yes" if index % 3 else "abstain"],
                            secretariat=Secretariat.of_deployment(config), now=datetime.now(UTC))
        maildir.deliver(config.inbox, reply.message.raw)

    started = time.perf_counter()
    fetched = service.fetch()
    fetch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    judged = service.decide_pending()
    decide_seconds = time.perf_counter() - started

    keys = service.keys
    started = time.perf_counter()
    for _ in range(100):
        signed_mail(keys.signer, sender="votes@secretariat.example", sender_name="Bench", recipients=["x@y.example"],
                    subject="Receipt", text="Recorded.\n", html_body="<p>Recorded.</p>", sent_at=datetime.now(UTC))
    receipt_seconds = (time.perf_counter() - started) / 100

    counted = sum(j.counted for j in judged)
    print(f"ballots delivered: {ballots}; stored: {fetched}; judged: {len(judged)}; counted: {counted}")
    print(f"fetch (raw bytes committed first): {fetched / fetch_seconds:,.0f} messages/s")
    print(f"verify + judge + record + signed receipt: {len(judged) / decide_seconds:,.0f} ballots/s"
          f" ({decide_seconds / len(judged) * 1e3:.2f} ms each)")
    print(f"composing and signing one receipt: {receipt_seconds * 1e3:.2f} ms"
          f" ({receipt_seconds / (decide_seconds / len(judged)):.0%} of a ballot's time)")
    service.close_ledger()
    return 0 if counted == ballots else 1


if __name__ == "__main__":
    sys.exit(main())
