"""Throughput of one service pass: ballots fetched from the Maildir, verified, judged, recorded and answered.

Each answer is a receipt signed by the secretariat (ECDSA P-256), queued in
the ledger in the decision's transaction. Prints ballots per second for the
pass and the share of it spent signing receipts. Run: python bench/bench_pipeline.py [BALLOTS]
Its functions build the deployments and ballots of bench/run.py.
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from voting.config import Config
from voting.deployment import init_deployment, issue_delegation_key
from voting.electorate import load_electorate
from voting.mail import maildir
from voting.mail.compose import signed_mail
from voting.pki import Identity, load_pkcs12
from voting.reply import Secretariat, build_reply
from voting.service import DraftFile, Service
from voting.verdict import Judgement

UNSC = 15
"""The Security Council's fifteen members, the template's electorate."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Bench:
    """A deployment with keys issued to every delegation and one vote open, its ballots in hand."""

    config: Config
    service: Service
    vote_id: str
    identities: dict[str, Identity]
    ballots: dict[str, bytes]
    made: int = field(default=0)
    """Replies made so far: each names its number in its explanation, so that no two are the same bytes."""

    @property
    def codes(self) -> list[str]:
        return list(self.identities)

    def replies(self, count: int) -> list[bytes]:
        """`count` signed replies, the delegations in turn, each with its own text.

        Two replies of the same text signed in the same second are the same
        bytes under deterministic RSA, which the service rightly refuses as a
        replay: the explanation numbers each one.
        """
        secretariat = Secretariat.of_deployment(self.config)
        made = []
        for _ in range(count):
            code = self.codes[self.made % len(self.codes)]
            reply = build_reply(self.ballots[code], self.identities[code], ["yes" if self.made % 3 else "abstain"],
                                secretariat=secretariat, explanation=f"Reply {self.made} of the bench.",
                                now=datetime.now(UTC))
            made.append(reply.message.raw)
            self.made += 1
        return made

    def deliver(self, raws: list[bytes]) -> None:
        for raw in raws:
            maildir.deliver(self.config.inbox, raw)


def bench_deployment(delegations: int = UNSC, root: Path | None = None) -> Bench:
    """A new deployment: the Security Council's template, or `delegations` members of a general assembly."""
    root = root or Path(tempfile.mkdtemp(prefix="voting-bench-"))
    template = "unsc-2020" if delegations == UNSC else None
    config = init_deployment(root, name="Bench Secretariat", address="votes@secretariat.example", template=template,
                             port=free_port())
    members = ([(d.code, d.addresses[0], False) for d in load_electorate(config.electorate_file).delegation]
               if template else [(f"M{n:03d}", f"m{n:03d}@delegations.example", True) for n in range(delegations)])
    identities = {}
    for code, address, new in members:
        issued = issue_delegation_key(config, code, email=address, name=code if new else None, permanent=False,
                                      new=new)
        identities[code] = load_pkcs12(issued.pkcs12_path.read_bytes(), issued.password.encode())
    draft = root / "draft.txt"
    draft.write_text("Draft resolution\n")
    service = Service(config, log=lambda line: None)
    vote_id = service.open_vote([DraftFile("S/1", draft)], rule="unsc-substantive" if template else "simple-majority",
                                closes_at=datetime.now(UTC) + timedelta(hours=3), title="Bench")
    electorate = load_electorate(config.electorate_file)
    ballots = {}
    for message in service.ledger.outbox("queued"):
        code = next(d.code for d in electorate.delegation if d.addresses[0] in message.recipients)
        ballots[code] = message.raw
    return Bench(config, service, vote_id, identities, ballots)


def decide_seconds(bench: Bench, ballots: int) -> tuple[float, list[Judgement]]:
    """Seconds per ballot to verify, judge, record and answer `ballots` new replies taken in from the Maildir."""
    bench.deliver(bench.replies(ballots))
    bench.service.fetch()
    started = time.perf_counter()
    judged = bench.service.decide_pending()
    return (time.perf_counter() - started) / max(1, len(judged)), judged


def receipt_seconds(service: Service, rounds: int = 100) -> float:
    """Seconds to compose and sign one receipt (ECDSA P-256) as the service does."""
    keys = service.keys
    started = time.perf_counter()
    for _ in range(rounds):
        signed_mail(keys.signer, sender="votes@secretariat.example", sender_name="Bench", recipients=["x@y.example"],
                    subject="Receipt", text="Recorded.\n", html_body="<p>Recorded.</p>", sent_at=datetime.now(UTC))
    return (time.perf_counter() - started) / rounds


def main() -> int:
    ballots = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    bench = bench_deployment()
    bench.deliver(bench.replies(ballots))
    started = time.perf_counter()
    fetched = bench.service.fetch()
    fetch_seconds = time.perf_counter() - started
    started = time.perf_counter()
    judged = bench.service.decide_pending()
    decide = (time.perf_counter() - started) / len(judged)
    receipt = receipt_seconds(bench.service)
    counted = sum(j.counted for j in judged)
    print(f"ballots delivered: {ballots}; stored: {fetched}; judged: {len(judged)}; counted: {counted}")
    print(f"fetch (raw bytes committed first): {fetched / fetch_seconds:,.0f} messages/s")
    print(f"verify + judge + record + signed receipt: {1 / decide:,.0f} ballots/s ({decide * 1e3:.2f} ms each)")
    print(f"composing and signing one receipt: {receipt * 1e3:.2f} ms ({receipt / decide:.0%} of a ballot's time)")
    bench.service.shut_down()
    return 0 if counted == ballots else 1


if __name__ == "__main__":
    sys.exit(main())
