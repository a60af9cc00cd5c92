"""The service's hot path at the size of a General Assembly (193 delegations), each figure against its ceiling.

- verify_message of an RSA-2048 reply, with the service's trust (chain to the
  secretariat CA), against cryptography's bare RSA verify of the same signature;
- the service's verify path (trust of the electorate at the receipt time, then
  verify_message), against the same ceiling;
- composing and signing one receipt, against the CMS signature alone;
- deciding (verify, judge, record, signed receipt queued), ballots per second.

Run: python bench/bench_decide.py [DELEGATIONS] [BALLOTS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from voting.deployment import init_deployment
from voting.electorate import add_delegation, load_electorate, register_certificate, save_electorate, trust_of
from voting.mail import maildir
from voting.mail.compose import signed_mail
from voting.pki import Identity, SecretariatKeys, issue_signing_certificate
from voting.reply import Secretariat, build_reply
from voting.service import DraftFile, Service
from voting.smime.cms import read_signer_info
from voting.smime.entity import opened
from voting.smime.sign import sign_entity
from voting.smime.verify import verify_message


def rate(work: Callable[[], object], seconds: float = 1.5) -> float:
    """Calls per second of `work`, run for about `seconds`."""
    work()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        work()
        calls += 1
    return calls / elapsed


def deployment(root: Path, size: int) -> tuple[Service, dict[str, Identity]]:
    """A deployment of `size` delegations, each with an RSA-2048 key the secretariat CA certified."""
    config = init_deployment(root, name="Bench Secretariat", address="votes@secretariat.example", template="unsc-2020")
    electorate = load_electorate(config.electorate_file)
    for index in range(size - len(electorate.delegation)):
        code = f"M{index:03d}"
        electorate = add_delegation(electorate, code, f"Member {index}", email=f"{code.lower()}@delegations.example",
                                    permanent=False)
    keys = SecretariatKeys.load(config.keys_dir, config.key_password())
    identities = {}
    for delegation in electorate.delegation:
        identity = issue_signing_certificate(keys.ca, common_name=delegation.code, emails=[delegation.addresses[0]])
        electorate = register_certificate(electorate, delegation.code, identity.certificate,
                                          issued_by_secretariat=True, secretariat_held_key=True)
        identities[delegation.code] = identity
    save_electorate(config.electorate_file, electorate)
    return Service(config, log=lambda line: None), identities


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 193
    ballots = int(sys.argv[2]) if len(sys.argv) > 2 else 600
    root = Path(tempfile.mkdtemp(prefix="voting-bench-"))
    service, identities = deployment(root, size)
    config = service.config
    draft = root / "draft.txt"
    draft.write_text("Draft resolution\n")
    service.open_vote([DraftFile("S/1", draft)], rule="unsc-substantive", closes_at=datetime.now(UTC) + timedelta(hours=1),
                      title="Bench")
    electorate = service.electorate()
    owner = {address: d.code for d in electorate.delegation for address in d.addresses}
    ballot_of = {}
    for message in service.ledger.outbox("queued"):
        ballot_of[owner[message.recipients[0]]] = message.raw
    codes = list(identities)
    secretariat = Secretariat.of_deployment(config)
    replies = []
    for index in range(ballots):
        code = codes[index % len(codes)]
        replies.append(build_reply(ballot_of[code], identities[code], ["yes" if index % 3 else "abstain"],
                                   explanation=f"Reply {index}.", secretariat=secretariat,
                                   now=datetime.now(UTC)).message.raw)

    now = datetime.now(UTC)
    anchors = (service.keys.ca.certificate,)
    raw = replies[0]
    trust = trust_of(electorate, anchors, now)
    assert verify_message(raw, trust, now).valid
    signed, _ = opened(raw, None)
    signer_info = read_signer_info(signed.info, signed.detached, signed.content)
    public_key = identities[codes[0]].certificate.public_key()
    bare = rate(lambda: public_key.verify(signer_info.signature, signer_info.signed_attributes, padding.PKCS1v15(),
                                          hashes.SHA256()))
    verify = rate(lambda: verify_message(raw, trust, now))
    service_path = rate(lambda: verify_message(raw, trust_of(electorate, anchors, now), now))

    signer = service.keys.signer
    entity = b"Content-Type: text/plain\r\n\r\nRecorded.\r\n"
    cms_sign = rate(lambda: sign_entity(entity, signer.key, signer.certificate, signer.chain))
    receipt = rate(lambda: signed_mail(signer, sender="votes@secretariat.example", sender_name="Bench",
                                       recipients=["x@y.example"], subject="Receipt", text="Recorded.\n",
                                       html_body="<p>Recorded.</p>", sent_at=now))

    for reply in replies:
        maildir.deliver(config.inbox, reply)
    fetched = service.fetch()
    started = time.perf_counter()
    judged = service.decide_pending()
    decide_seconds = time.perf_counter() - started
    counted = sum(j.counted for j in judged)
    service.shut_down()

    print(f"delegations: {size}; ballots delivered: {ballots}; stored: {fetched}; judged: {len(judged)};"
          f" counted: {counted}")
    print(f"bare RSA-2048 verify (cryptography): {bare:,.0f}/s")
    print(f"verify_message: {verify:,.0f}/s ({1e3 / verify:.3f} ms), {verify / bare:.1%} of bare verify"
          " (target 25%)")
    print(f"service verify path (trust_of + verify_message): {service_path:,.0f}/s ({1e3 / service_path:.3f} ms),"
          f" {service_path / bare:.1%} of bare verify (target 15%)")
    print(f"receipt composed and signed: {1e3 / receipt:.3f} ms; CMS sign alone {1e3 / cms_sign:.3f} ms"
          " (target 0.2 ms)")
    print(f"decide (verify + judge + record + signed receipt): {len(judged) / decide_seconds:,.0f} ballots/s"
          f" ({decide_seconds / len(judged) * 1e3:.2f} ms each; target 1,000/s)")
    return 0 if counted == ballots else 1


if __name__ == "__main__":
    sys.exit(main())
