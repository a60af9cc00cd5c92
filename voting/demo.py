"""`voting demo`: a written procedure, end to end, on the embedded mail server.

By default the July 2020 Syria round: two competing drafts in one vote under
`unsc-substantive`; fifteen delegations with freshly issued certificates reply
with signed mail as they voted on 7-10 July 2020 (S/2020/654 failed 13-2 on
the negative votes of China and the Russian Federation; S/2020/658 failed
4-7-4). One delegation changes its vote before the deadline, a forged reply
signed with an unregistered key is rejected, a late reply is recorded but not
counted.

`--procedure silence` circulates two illustrative drafts of the same Council
under the silence procedure: one is adopted as nobody objects, two members
break silence on the other with a letter. `--procedure eu-qmv` puts two
illustrative proposals to the 27 members of the Council of the European Union
under its qualified majority: one is adopted as three large members are no
blocking minority, the other fails on the population condition alone.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from voting.audit import audit_bundle, checks_json, render_checks
from voting.bundle import write_record
from voting.config import Config
from voting.deployment import HANDOVER_DIRECTORY, init_deployment, issue_delegation_key
from voting.electorate import load_electorate
from voting.mail import maildir
from voting.mail.outbox import smtp_settings
from voting.mail.smtp import SmtpConnection
from voting.pki import Identity, create_ca, issue_signing_certificate, load_pkcs12
from voting.reply import Secretariat, build_reply
from voting.service import MAILBOX_SETTLING, DraftFile, Service, embedded_server

DRAFT_654 = "S/2020/654"
DRAFT_658 = "S/2020/658"

DRAFTS = {
    DRAFT_654: "Draft resolution submitted by Belgium and Germany\n\nThe situation in the Middle East (Syria):"
               " renewal of the cross-border humanitarian mechanism for twelve months.\n",
    DRAFT_658: "Draft resolution submitted by the Russian Federation\n\nThe situation in the Middle East (Syria):"
               " renewal of the cross-border humanitarian mechanism through one crossing point for six months.\n",
}

# How each member voted on 7-10 July 2020 (S/PV records of the written procedure).
VOTES_654 = {code: "yes" for code in ("BEL", "DEU", "DOM", "EST", "FRA", "GBR", "IDN", "NER", "TUN", "USA", "VCT",
                                      "VNM", "ZAF")} | {"CHN": "no", "RUS": "no"}
VOTES_658 = ({code: "yes" for code in ("CHN", "RUS", "VNM", "ZAF")}
             | {code: "no" for code in ("BEL", "DEU", "DOM", "EST", "FRA", "GBR", "USA")}
             | {code: "abstain" for code in ("IDN", "NER", "TUN", "VCT")})

CHANGES_VOTE = "NER"      # first abstains on S/2020/654, then votes in favour
LATE = "EST"              # writes again after the deadline
FORGED_AS = "USA"         # someone signs a reply for the United States with a key nobody registered
EXPLANATIONS = {
    "DEU": "Germany and Belgium, as penholders, regret that the Council could not preserve two crossing points.",
    "RUS": "The Russian Federation considers that one crossing point is sufficient.",
}

VOTING_SECONDS_PER_DELEGATION = 1.0
"""Time to reply before the deadline: fifteen seconds for the Security Council."""


@dataclass(frozen=True)
class Procedure:
    """A demo's body, rule and drafts, and how each delegation replies (a member absent from `votes` stays silent)."""

    template: str
    secretariat: str
    prefix: str
    rule: str
    title: str
    drafts: Mapping[str, str]
    votes: Mapping[str, Mapping[str, str]]
    """Draft -> delegation -> choice."""
    explanations: Mapping[str, str]
    mishaps: bool = False
    """A change of vote, a forged reply and a late one, as in the July 2020 round."""
    sponsors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Draft -> who put it forward: delegation codes, or a proposer from outside the body named in words."""


SILENCE_DRAFTS = {
    "S/PRST/DEMO/1": "Draft statement by the President of the Security Council\n\nThe Security Council welcomes the"
                     " ceasefire and calls on all parties to respect it.\n",
    "S/PRST/DEMO/2": "Draft statement by the President of the Security Council\n\nThe Security Council decides to"
                     " extend the deadline for the report of the Panel of Experts.\n",
}
EU_DRAFTS = {
    "ST-DEMO-1": "Proposal for a Council Regulation (illustrative)\n\nOn the common format of customs declarations.\n",
    "ST-DEMO-2": "Proposal for a Council Decision (illustrative)\n\nOn the position to be taken on behalf of the"
                 " Union in an international committee.\n",
}
EU_MEMBERS = ("BEL", "BGR", "CZE", "DNK", "DEU", "EST", "IRL", "GRC", "ESP", "FRA", "HRV", "ITA", "CYP", "LVA", "LTU",
              "LUX", "HUN", "MLT", "NLD", "AUT", "POL", "PRT", "ROU", "SVN", "SVK", "FIN", "SWE")


def _against(against: tuple[str, ...]) -> dict[str, str]:
    return {code: "no" if code in against else "yes" for code in EU_MEMBERS}


PROCEDURES: Mapping[str, Procedure] = {
    "recorded": Procedure(
        "unsc-2020", "Security Council Affairs Division", "unsc", "unsc-substantive",
        "The situation in the Middle East (Syria)", DRAFTS, {DRAFT_654: VOTES_654, DRAFT_658: VOTES_658},
        EXPLANATIONS, mishaps=True, sponsors={DRAFT_654: ("BEL", "DEU"), DRAFT_658: ("RUS",)},
    ),
    "silence": Procedure(
        "unsc-2020", "Security Council Affairs Division", "unsc", "silence",
        "Draft presidential statements under the silence procedure", SILENCE_DRAFTS,
        {"S/PRST/DEMO/1": {}, "S/PRST/DEMO/2": {"RUS": "object", "CHN": "object"}},
        {"RUS": "The Russian Federation breaks silence: the Panel's mandate was not discussed in consultations."},
    ),
    "eu-qmv": Procedure(
        "eu-2026", "General Secretariat of the Council", "eu", "eu-qmv",
        "Written procedure of the Council", EU_DRAFTS,
        {"ST-DEMO-1": _against(("DEU", "FRA", "ITA")), "ST-DEMO-2": _against(("DEU", "FRA", "ITA", "ESP"))},
        {"ESP": "Spain cannot support the Decision in its present form."},
        sponsors={symbol: ("European Commission",) for symbol in EU_DRAFTS},
    ),
}
"""`voting demo --procedure NAME`."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def say(enabled: bool, line: str) -> None:
    if enabled:
        print(line, flush=True)


def run_demo(directory: Path | None, *, as_json: bool = False, procedure: str = "recorded") -> int:
    started = time.monotonic()
    talk = not as_json
    chosen = PROCEDURES[procedure]
    root = directory or Path(tempfile.mkdtemp(prefix="voting-demo-"))
    say(talk, f"Demo deployment in {root}")
    config = init_deployment(root, name=chosen.secretariat, address="votes@secretariat.example",
                             template=chosen.template, port=free_port(), prefix=chosen.prefix)
    electorate = load_electorate(config.electorate_file)
    identities: dict[str, Identity] = {}
    for delegation in electorate.delegation:
        issued = issue_delegation_key(config, delegation.code, email=delegation.addresses[0], name=None,
                                      permanent=delegation.permanent)
        identities[delegation.code] = load_pkcs12(issued.pkcs12_path.read_bytes(), issued.password.encode())
    say(talk, f"Issued S/MIME certificates to {len(identities)} delegations; their keys, handed over, sign from"
              f" {root / HANDOVER_DIRECTORY}")

    drafts = []
    for symbol, text in chosen.drafts.items():
        path = root / f"{symbol.replace('/', '-')}.txt"
        path.write_text(text, encoding="utf-8")
        drafts.append(DraftFile(symbol, path))

    service = Service(config, log=(lambda line: say(talk, f"  service: {line}")))
    addresses = {d.code: d.addresses[0] for d in electorate.delegation}
    with embedded_server(config, required=True):
        closes_at = datetime.now(UTC) + timedelta(seconds=VOTING_SECONDS_PER_DELEGATION * len(addresses))
        vote_id = service.open_vote(drafts, rule=chosen.rule, closes_at=closes_at, title=chosen.title,
                                    sponsors=chosen.sponsors)
        service.send()
        say(talk, f"Opened vote {vote_id} under {chosen.rule}, closing {closes_at:%H:%M:%S} UTC; ballots emailed to"
                  f" {len(addresses)} delegations")

        def reply(code: str, votes: dict[str, str], explanation: str = "", identity: Identity | None = None) -> None:
            ballot = maildir.messages(config.resolve(config.settings.mailbox.root) / addresses[code])[0]
            signed = build_reply(
                maildir.read(ballot), identity or identities[code],
                [f"{symbol}={choice}" for symbol, choice in votes.items()],
                secretariat=Secretariat.of_deployment(config), explanation=explanation, now=datetime.now(UTC),
            )
            sender = addresses[code]
            with SmtpConnection(smtp_settings(config)) as connection:
                connection.send(sender, [signed.to], signed.message.raw)

        if chosen.mishaps:
            reply(CHANGES_VOTE, {DRAFT_654: "abstain", DRAFT_658: VOTES_658[CHANGES_VOTE]})
            service.poll_once()
        for code in addresses:
            choices = {symbol: votes[code] for symbol, votes in chosen.votes.items() if code in votes}
            if choices:
                reply(code, choices, chosen.explanations.get(code, ""))
        if chosen.mishaps:
            reply(FORGED_AS, {DRAFT_654: "no", DRAFT_658: "yes"}, identity=forged_identity(addresses[FORGED_AS]))
        service.poll_once()
        say(talk, "Replies received and acknowledged; waiting for the deadline")
        time.sleep(max(0.0, (closes_at - datetime.now(UTC)).total_seconds()) + 0.5)
        if chosen.mishaps:
            reply(LATE, {DRAFT_654: "no", DRAFT_658: "yes"})
        time.sleep(max(0.0, (closes_at + MAILBOX_SETTLING - datetime.now(UTC)).total_seconds()))
        report = service.poll_once()
        while service.ledger.outbox("queued"):
            service.send()

    record = write_record(service, vote_id, config.records_dir)
    assert record.bundle is not None
    results_email = next(m.path for m in maildir.messages(config.resolve(config.settings.mailbox.root) / addresses["FRA"])
                         if b"\nSubject: Results" in maildir.read(m))
    checks = audit_bundle(record.bundle.path.read_bytes(), service.keys.signer.certificate,
                          results=results_email.read_bytes())
    status = service.status(vote_id)
    seconds = time.monotonic() - started
    audited = all(check.ok for check in checks)
    if as_json:
        print(json.dumps({"directory": str(root), "vote": vote_id, "status": status, "audit": checks_json(checks),
                          "record": {"html": str(record.html), "text": str(record.text), "bundle": str(record.bundle.path)},
                          "seconds": round(seconds, 1)},
                         indent=2, default=str))
    else:
        say(talk, f"Closed {', '.join(report.closed) or '-'}; results emailed to every delegation\n")
        print(record.text.read_text(encoding="utf-8"))
        print(render_checks(checks)[-1].replace("all", "Audit of the bundle:", 1) if audited else
              "\n".join(render_checks(checks)))
        print(files_written(vote_id, config, record.html, record.text, record.bundle.path, results_email))
        print(f"Finished in {seconds:.1f} s")
    service.shut_down()
    outcomes: dict[str, Any] = status["outcome"] or {}
    return 0 if outcomes and audited else 1


def forged_identity(address: str) -> Identity:
    """A key and certificate for a delegation's address from a CA the secretariat never heard of."""
    rogue = create_ca("Rogue CA", "Nobody")
    return issue_signing_certificate(rogue, common_name="United States (forged)", emails=[address])


def files_written(vote_id: str, config: Config, html: Path, text: Path, bundle: Path, results: Path) -> str:
    return "\n".join(
        [
            "Written:",
            f"  record (HTML)     {html}",
            f"  record (text)     {text}",
            f"  audit bundle      {bundle}",
            f"  configuration     {config.path}",
            f"  electorate        {config.electorate_file}",
            f"  keys              {config.keys_dir}",
            f"  handed over       {config.root / HANDOVER_DIRECTORY}",
            f"  ledger            {config.database}",
            f"  mailboxes         {config.resolve(config.settings.mailbox.root)}",
            f"  France's results  {results}",
            f"Check it again:     voting audit {bundle} --secretariat-cert {config.keys_dir / 'secretariat.pem'}"
            f" --results {results}",
            f"Status:             voting --config {config.path} status {vote_id}",
        ]
    )
