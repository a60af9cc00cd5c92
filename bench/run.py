"""Every speed figure of the service beside its ceiling, in one run: python bench/run.py [ROW ...]

Each row measures what the service does and, beside it, the least that the
same work can cost here (bare `cryptography` calls, one SQLite commit, a bare
IMAP fetch, an empty Python start), so that the ratio says how much is left.
Figures are medians of 3. The table is Markdown, as README.md quotes it.
Rows run alone by name (`python bench/run.py verify decide`; `--list` names
them), or from Python: `ROWS["decide"]()` returns that row's lines.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import tomli_w
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from imapclient import IMAPClient

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]

from bench_pipeline import UNSC, Bench, bench_deployment, decide_seconds, free_port, receipt_seconds  # noqa: E402
from bench_verify import bare_rsa_rate, openssl_rate, rate, signed_reply, verify_rate  # noqa: E402

from tests.dovecot import Dovecot  # noqa: E402
from voting.bundle import export_bundle  # noqa: E402
from voting.config import load_config  # noqa: E402
from voting.deployment import init_deployment  # noqa: E402
from voting.electorate import trust_by_time  # noqa: E402
from voting.integrity import message_damage, vote_damage  # noqa: E402
from voting.mail.outbox import smtp_settings  # noqa: E402
from voting.mail.smtp import SmtpConnection  # noqa: E402
from voting.reasons import Reason  # noqa: E402
from voting.service import DraftFile, Service  # noqa: E402
from voting.service.judging import OuterHeaders, PriorBallots  # noqa: E402
from voting.smime.sign import sign_entity  # noqa: E402
from voting.verdict import BALLOT, REJECTED, judge  # noqa: E402

ASSEMBLY = 193
"""A general assembly's members: the electorate whose size must not slow a ballot down."""
DECIDE_BALLOTS = 200
IMAP_MESSAGES = 1000
AUDIT_BALLOTS = 1000
SERVE_BALLOTS = 100
LEDGER_FILL = 20_000
GROWTH_BALLOTS = 100
EARLIER_BALLOTS = 3000
"""Ballots already counted in the vote before the growth rounds: 200 of each of its 15 delegations."""
PASS_REPLIES = 10_000
"""As many replies as a pass takes in when a whole day's mail waits for it: what `voting status` must stay quick under."""


@dataclass(frozen=True)
class Row:
    what: str
    figure: str
    ceiling: str
    ratio: str


def median3(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(3))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def per_s(count: float) -> str:
    return f"{count:,.0f}/s"


def times(ratio: float) -> str:
    return f"{ratio:,.1f}×" if ratio < 10 else f"{ratio:,.0f}×"


def below(rate_of: float, ceiling: float) -> str:
    """How many times the ceiling's cost one item takes: 1× is the ceiling itself."""
    return f"{times(ceiling / rate_of)} the ceiling's cost"


# -- what several rows share, made once per run ----------------------------------------------------------------------


@cache
def unsc() -> Bench:
    return bench_deployment(UNSC)


@cache
def assembly() -> Bench:
    return bench_deployment(ASSEMBLY)


@cache
def rsa_verify_seconds() -> float:
    key = signed_reply().key
    return 1 / median3(lambda: bare_rsa_rate(key, 2000))


@cache
def ecdsa_sign_seconds() -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"signed attributes of a receipt" * 10
    return 1 / median3(lambda: rate(lambda: key.sign(data, ec.ECDSA(hashes.SHA256())), 2000))


@cache
def commit_seconds() -> float:
    """One SQLite transaction inserting a ballot's bytes, WAL and synchronous=FULL as the ledger runs."""
    with tempfile.TemporaryDirectory() as folder:
        db = sqlite3.connect(Path(folder) / "commit.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, raw BLOB)")
        blob = os.urandom(8000)

        def commit() -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (raw) VALUES (?)", (blob,))
            db.execute("COMMIT")

        seconds = 1 / median3(lambda: rate(commit, 300))
        db.close()
        return seconds


def counted_seconds(bench: Bench, ballots: int) -> float:
    seconds, judged = decide_seconds(bench, ballots)
    if len(judged) != ballots or not all(j.counted for j in judged):
        raise SystemExit(f"bench: {sum(j.counted for j in judged)} of {ballots} ballots counted")
    return seconds


# -- the rows --------------------------------------------------------------------------------------------------------


def row_verify() -> list[Row]:
    reply = signed_reply()
    ours = median3(lambda: verify_rate(reply, 1000))
    bare = 1 / rsa_verify_seconds()
    return [Row("`verify_message`, RSA-2048 signed reply", per_s(ours), f"bare RSA verify {per_s(bare)}",
                below(ours, bare))]


def service_verify_rate(bench: Bench, raw: bytes, rounds: int = 300) -> float:
    """The service's path for one message before recording: outer headers, trust, ballot parsing, verification."""
    service = bench.service
    known = service._known()
    trust_at = trust_by_time(service.electorate())
    anchors = (service.keys.ca.certificate,)
    signer = service.keys.signer

    def one() -> None:
        now = datetime.now(UTC)
        OuterHeaders.of(raw)
        judge(raw, now, known.views, trust_at(now, anchors), PriorBallots(known.ballots), signer)

    return rate(one, rounds)


def row_service_verify() -> list[Row]:
    bench = unsc()
    raw = bench.replies(1)[0]
    ours = median3(lambda: service_verify_rate(bench, raw))
    bare = 1 / rsa_verify_seconds()
    reply = signed_reply()
    openssl = median3(lambda: openssl_rate(reply, 60))
    return [
        Row("service verify path (headers + ballot + verify), 15 members", per_s(ours),
            f"bare RSA verify {per_s(bare)}", below(ours, bare)),
        Row("the same vs `openssl cms -verify`, a process per message", per_s(ours), f"openssl {per_s(openssl)}",
            f"{times(ours / openssl)} faster"),
    ]


def row_decide() -> list[Row]:
    bench = assembly()
    seconds = median3(lambda: counted_seconds(bench, DECIDE_BALLOTS))
    ceiling = rsa_verify_seconds() + ecdsa_sign_seconds() + commit_seconds()
    return [Row(f"decide (verify + judge + record + signed receipt), {ASSEMBLY} members", per_s(1 / seconds),
                f"RSA verify + ECDSA sign + 1 commit {per_s(1 / ceiling)}",
                f"{times(seconds / ceiling)} the ceiling's cost")]


def row_receipt() -> list[Row]:
    service = unsc().service
    ours = median3(lambda: receipt_seconds(service))
    signer = service.keys.signer
    entity = b"Content-Type: text/plain\r\n\r\n" + b"Recorded.\r\n" * 100
    cms = 1 / median3(lambda: rate(lambda: sign_entity(entity, signer.key, signer.certificate, signer.chain), 300))
    return [Row("compose + sign one receipt (ECDSA P-256)", ms(ours),
                f"bare ECDSA sign {ms(ecdsa_sign_seconds())}, CMS sign {ms(cms)}",
                f"{times(ours / cms)} CMS sign alone")]


def imap_messages(count: int, round_number: int) -> list[bytes]:
    """Distinct messages of a signed reply's size: ingest stores bytes, it does not read them."""
    raw = unsc().replies(1)[0]
    return [f"X-Bench: {round_number}-{n}\r\n".encode() + raw for n in range(count)]


def bare_imap_fetch(dovecot: Dovecot, context: ssl.SSLContext) -> float:
    """Connect, STARTTLS, log in and fetch the folder in batches of 500 with imapclient, storing nothing."""
    started = time.perf_counter()
    client = IMAPClient("localhost", port=dovecot.port, ssl=False, timeout=30)
    client.starttls(context)
    client.login(dovecot.user, dovecot.password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search("ALL"))
    fetched = 0
    for start in range(0, len(uids), 500):
        fetched += len(client.fetch(uids[start:start + 500], ["BODY.PEEK[]", "INTERNALDATE"]))
    client.logout()
    return fetched / (time.perf_counter() - started)


def row_imap() -> list[Row]:
    root = Path(tempfile.mkdtemp(prefix="voting-bench-imap-"))
    root.chmod(0o755)  # Dovecot's own user reaches its mail and certificates
    dovecot = Dovecot(root / "dovecot")
    dovecot.prepare()
    dovecot.start()
    try:
        config = init_deployment(root / "deployment", port=free_port())
        (config.root / "imap-password").write_text(dovecot.password)
        data = tomllib.loads(config.path.read_text())
        data["mailbox"] = {"kind": "imap", "host": "localhost", "port": dovecot.port, "tls": "starttls",
                           "ca_file": str(dovecot.ca_file), "username": dovecot.user,
                           "password_file": "imap-password", "folder": "INBOX", "processed_folder": "Processed"}
        config.path.write_text(tomli_w.dumps(data))
        config = load_config(config.path)
        context = ssl.create_default_context(cafile=str(dovecot.ca_file))
        ours, bare = [], []
        for round_number in range(3):
            with dovecot.client() as client:
                for raw in imap_messages(IMAP_MESSAGES, round_number):
                    client.append("INBOX", raw)
            bare.append(bare_imap_fetch(dovecot, context))
            service = Service(config, log=lambda line: None)
            started = time.perf_counter()
            stored = service.fetch()
            ours.append(stored / (time.perf_counter() - started))
            service.close_mailbox()
            service.shut_down()
            if stored != IMAP_MESSAGES:
                raise SystemExit(f"bench: IMAP ingest stored {stored} of {IMAP_MESSAGES}")
    finally:
        dovecot.stop()
    return [Row(f"IMAP ingest into the ledger (Dovecot, STARTTLS, {IMAP_MESSAGES} in batches of 500)",
                per_s(statistics.median(ours)), f"bare imapclient fetch {per_s(statistics.median(bare))}",
                below(statistics.median(ours), statistics.median(bare)))]


def new_vote(bench: Bench) -> None:
    """Open another vote in the bench's deployment, whose ballots the next replies answer."""
    draft = bench.config.root / "draft.txt"
    queued = {m.message_id for m in bench.service.ledger.outbox("queued")}
    bench.vote_id = bench.service.open_vote([DraftFile("S/1", draft)], rule="simple-majority",
                                            closes_at=datetime.now(UTC) + timedelta(hours=3), title="Audited")
    electorate = bench.service.electorate()
    for message in bench.service.ledger.outbox("queued"):
        if message.message_id not in queued:
            code = next(d.code for d in electorate.delegation if d.addresses[0] in message.recipients)
            bench.ballots[code] = message.raw


@cache
def audit_bundle_path() -> tuple[Path, int]:
    """A closed vote of the assembly with AUDIT_BALLOTS ballots, exported; the assembly then has a new vote open."""
    bench = assembly()
    new_vote(bench)
    closed = bench.vote_id
    for _ in range(AUDIT_BALLOTS // 250):
        counted_seconds(bench, 250)
    bench.service.close_now(closed)
    summary = export_bundle(bench.service, closed, bench.config.root / "audit.zip")
    new_vote(bench)
    return summary.path, summary.messages


def row_audit() -> list[Row]:
    path, messages = audit_bundle_path()

    def audit() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "voting", "audit", str(path)], check=True, capture_output=True)
        return messages / (time.perf_counter() - started)

    ours = median3(audit)
    bare = 1 / rsa_verify_seconds()
    return [Row(f"`voting audit`, bundle of {messages:,} ballots, {ASSEMBLY} members", f"{ours:,.0f} msg/s",
                f"bare RSA verify {per_s(bare)}", below(ours, bare))]


def receipts_in(folder: Path) -> int:
    return sum(len(os.listdir(folder / sub)) for sub in ("new", "cur") if (folder / sub).exists())


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def row_serve() -> list[Row]:
    """`voting serve` on its embedded server: from a ballot's submission to its receipt in the delegation's Maildir."""
    bench = unsc()
    mail_root = bench.config.resolve(bench.config.settings.mailbox.root)
    first = bench.made  # the delegations reply in turn: reply n is the (first + n)th's
    replies = bench.replies(SERVE_BALLOTS)
    folders = [mail_root / f"{code.lower()}@delegations.example" for code in bench.codes]
    serve = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(bench.config.path), "serve"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latency, submit = [], []
    try:
        deadline = time.monotonic() + 60
        while not all(receipts_in(folder) for folder in folders):  # the ballots, sent by the first pass
            if time.monotonic() > deadline or serve.poll() is not None:
                raise SystemExit("bench: voting serve did not send the ballots")
            time.sleep(0.05)
        settings = smtp_settings(bench.config)
        for n, raw in enumerate(replies):
            folder = folders[(first + n) % len(folders)]
            before = receipts_in(folder)
            started = time.perf_counter()
            with SmtpConnection(settings) as connection:
                connection.send(folder.name, [bench.config.settings.secretariat.address], raw)
            submit.append(time.perf_counter() - started)
            deadline = time.monotonic() + 30
            while receipts_in(folder) == before:
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: no receipt within 30 s for ballot {n}")
                time.sleep(0.001)
            latency.append(time.perf_counter() - started)
    finally:
        serve.terminate()
        serve.wait(30)
    return [Row(f"`voting serve`: ballot submitted to receipt delivered, {SERVE_BALLOTS} ballots",
                f"p50 {ms(percentile(latency, 0.5))}, p99 {ms(percentile(latency, 0.99))}",
                f"SMTP submit p50 {ms(percentile(submit, 0.5))}, p99 {ms(percentile(submit, 0.99))}",
                f"{times(percentile(latency, 0.99) / percentile(submit, 0.99))} submit p99")]


AS_INSTALLED = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""The environment of a command as an installed package runs it: its modules' bytecode compiled once (by the first
run here), not at every start."""


def run_seconds(*command: str) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=AS_INSTALLED)
    return time.perf_counter() - started


def wall_seconds(*command: str) -> float:
    run_seconds(*command)  # the files in the page cache and the bytecode written, as on a machine in use
    return statistics.median(run_seconds(*command) for _ in range(5))


def row_startup() -> list[Row]:
    bench = unsc()
    python = sys.executable
    bare = wall_seconds(python, "-c", "pass")
    rows = []
    for what, command in (("`voting --help`", (python, "-m", "voting", "--help")),
                          ("`voting status VOTE`", status_command(bench))):
        seconds = wall_seconds(*command)
        rows.append(Row(f"{what} wall time", ms(seconds), f"`python -c pass` {ms(bare)}", times(seconds / bare)))
    return rows


def status_command(bench: Bench) -> tuple[str, ...]:
    return (sys.executable, "-m", "voting", "--config", str(bench.config.path), "status", bench.vote_id)


def row_status_during_pass() -> list[Row]:
    """`voting status` run again and again while `voting poll --once` takes in and decides a pile of replies to
    the same vote, each status reading a ledger that grows under it."""
    bench = bench_deployment(UNSC)
    bench.deliver(bench.replies(PASS_REPLIES))
    bench.service.shut_down()
    idle = wall_seconds(*status_command(bench))
    started = time.perf_counter()
    passing = subprocess.Popen([sys.executable, "-m", "voting", "--config", str(bench.config.path), "poll", "--once"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=AS_INSTALLED)
    during = []
    while passing.poll() is None:
        during.append(run_seconds(*status_command(bench)))
    pass_seconds = time.perf_counter() - started
    if passing.returncode != 0 or len(during) < 5:
        raise SystemExit(f"bench: the pass exited {passing.returncode} after {len(during)} status runs")
    return [Row(f"`voting status VOTE` during a pass of {PASS_REPLIES:,} replies ({pass_seconds:.0f} s, "
                f"{len(during)} runs), median; slowest", f"{ms(statistics.median(during))}; {ms(max(during))}",
                f"idle {ms(idle)}", f"{statistics.median(during) / idle:.2f}")]


def fill_ledger(bench: Bench, count: int) -> None:
    """`count` earlier messages, decided: the mail a busy secretariat address has taken in over the years."""
    ledger = bench.service.ledger
    at = datetime.now(UTC) - timedelta(days=30)
    with ledger.transaction():
        for n in range(count):
            raw = f"From: someone{n}@elsewhere.example\r\nSubject: Earlier mail {n}\r\n\r\nNot signed.\r\n".encode()
            message = ledger.store_message(raw, at, f"bench:{n}", at)
            ledger.record_decision(message, vote_id=None, code=None, verdict=REJECTED, reason=Reason.NOT_SIGNED.value,
                                   detail="", choices={}, explanation="", supersedes=None, signed_sha256=None, now=at)


def row_growth() -> list[Row]:
    """The same ballots judged in four deployments in turn, so that whatever else runs weighs on each alike.

    Every delegation has voted once before the rounds (`voted`: 200 times),
    as in a vote under way: a signer's certificate chain is validated the
    first time it is seen, once a process, whatever the size of the body.
    """
    small, filled, members, voted = bench_deployment(UNSC), bench_deployment(UNSC), assembly(), bench_deployment(UNSC)
    fill_ledger(filled, LEDGER_FILL)
    deployments = {"small": small, "filled": filled, "members": members, "voted": voted}
    for bench, earlier in ((small, UNSC), (filled, UNSC), (members, ASSEMBLY), (voted, EARLIER_BALLOTS)):
        counted_seconds(bench, earlier)
    costs: dict[str, list[float]] = {name: [] for name in deployments}
    for _ in range(3):
        for name, bench in deployments.items():
            costs[name].append(counted_seconds(bench, GROWTH_BALLOTS))
    base, large, many, earlier = (statistics.median(costs[name]) for name in deployments)
    return [
        Row(f"growth: cost per ballot, {LEDGER_FILL:,} vs 15 messages in the ledger", f"{ms(large)} vs {ms(base)}",
            "same cost", f"{large / base:.2f}"),
        Row(f"growth: cost per ballot, {ASSEMBLY} vs 15 members", f"{ms(many)} vs {ms(base)}", "same cost",
            f"{many / base:.2f}"),
        Row(f"growth: cost per ballot, {EARLIER_BALLOTS // UNSC} vs a few earlier ballots of each delegation",
            f"{ms(earlier)} vs {ms(base)}", "same cost", f"{earlier / base:.2f}"),
    ]


def row_integrity() -> list[Row]:
    """The ledger's check of a vote of the assembly, every member's ballot counted: as `voting status` runs it, and
    in full as a close does."""
    bench = assembly()
    new_vote(bench)
    counted_seconds(bench, ASSEMBLY)
    ledger = bench.service.ledger
    ballots = [d for d in ledger.decisions(bench.vote_id) if d.verdict == BALLOT]
    raws = {d.sha256: ledger.raw_message(d.message) for d in ballots}

    def each(check: Callable[[], object]) -> float:
        started = time.perf_counter()
        check()
        return (time.perf_counter() - started) / len(ballots)

    assert not vote_damage(ledger, bench.vote_id, full=False)
    status = median3(lambda: each(lambda: vote_damage(ledger, bench.vote_id, full=False)))
    full = median3(lambda: each(lambda: vote_damage(ledger, bench.vote_id)))
    hashing = median3(lambda: each(lambda: [message_damage(sha, raw) for sha, raw in raws.items()]))
    return [
        Row(f"`voting status` ledger check, {len(ballots)} ballots", f"{ms(status)} per ballot",
            f"SHA-256 of its bytes {hashing * 1e6:.0f} µs", times(status / hashing)),
        Row(f"the check before a close, {len(ballots)} ballots", f"{ms(full)} per ballot",
            f"SHA-256 of its bytes {hashing * 1e6:.0f} µs", times(full / hashing)),
    ]


ROWS: dict[str, Callable[[], list[Row]]] = {
    "verify": row_verify,
    "service-verify": row_service_verify,
    "decide": row_decide,
    "receipt": row_receipt,
    "imap": row_imap,
    "audit": row_audit,
    "serve": row_serve,
    "startup": row_startup,
    "status-during-pass": row_status_during_pass,
    "growth": row_growth,
    "integrity": row_integrity,
}


def table(rows: Sequence[Row]) -> str:
    lines = ["| what | measured | ceiling or comparison | ratio |", "| --- | --- | --- | --- |"]
    lines.extend(f"| {r.what} | {r.figure} | {r.ceiling} | {r.ratio} |" for r in rows)
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    if "--list" in argv:
        print("\n".join(ROWS))
        return 0
    unknown = [name for name in argv if name not in ROWS]
    if unknown:
        print(f"bench: no row {', '.join(unknown)}; rows: {', '.join(ROWS)}", file=sys.stderr)
        return 2
    rows: list[Row] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voting-bench-") as folder:
        Path(folder).chmod(0o755)  # Dovecot's own user reaches its mail in here
        tempfile.tempdir = folder  # every deployment and server of the run, removed with it
        for name in argv or list(ROWS):
            print(f"measuring {name}...", file=sys.stderr, flush=True)
            rows.extend(ROWS[name]())
    print(f"{os.cpu_count()} cores, Python {platform.python_version()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;"
          f" medians of 3; {time.perf_counter() - started:.0f} s in all")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
