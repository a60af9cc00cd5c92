"""What every stage of the service shares: the configuration, the ledger, the keys, and writing mail.

The service is the imperative shell around the pure core (`verdict.judge`,
`rules.decide`, `ballot`, `smime`). It is built in stages, each a class in the
module named after it that builds on the ones before, in the order a vote
lives: `opening`, `intake` (taking mail in), `resending` (a ballot sent
again), `judging`, `closing`, `reminding`; `Service` (in `voting.service`)
runs one pass over them and reports status. The stages import the
cryptography, the message parsers and the mail clients in the methods that
use them, so that a command that only reads the ledger (`voting status`)
starts without them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from voting.config import Config
from voting.errors import ConfigError, KeyMaterialError
from voting.ledger import DecisionRecord, Ledger, VoteRecord
from voting.mail.compose import Attachment, OutgoingMessage, signed_mail
from voting.model import Delegation, Electorate
from voting.times import log_time
from voting.verdict import BALLOT, CountedBallot
from voting.wording import DEFAULT_LANGUAGE, Wording, wording

if TYPE_CHECKING:
    from voting.electorate import ElectorateFile
    from voting.pki import Identity, SecretariatKeys
    from voting.read_ahead import ReadingProcess

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def vote_electorate(vote: VoteRecord) -> Electorate:
    """The membership snapshot taken when the vote opened, read once per vote (it never changes)."""
    cached = _SNAPSHOTS.get(vote.id)
    if cached is not None and cached[0] == vote.electorate_json:
        return cached[1]
    electorate = Electorate.model_validate_json(vote.electorate_json)
    if len(_SNAPSHOTS) >= MAX_SNAPSHOTS:
        _SNAPSHOTS.pop(next(iter(_SNAPSHOTS)))
    _SNAPSHOTS[vote.id] = (vote.electorate_json, electorate)
    return electorate


MAX_SNAPSHOTS = 64
"""Votes whose snapshot is kept read: more than are ever open at once."""
_SNAPSHOTS: dict[str, tuple[str, Electorate]] = {}


class ServiceBase:
    def __init__(self, config: Config, *, clock: Clock = utcnow, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.ledger = Ledger.open(config.database)
        self.log = log or self._log_to_stderr
        self._reading: ReadingProcess | None = None
        """The process reading mail ahead of a long pass (`Judging._reading_process`), once one is started."""

    def _log_to_stderr(self, text: str) -> None:
        """Each line on stderr after the time it is written, as `voting serve` shows what happens."""
        stamp = log_time(self.clock())
        print("".join(f"{stamp} {line}\n" for line in text.splitlines()), end="", file=sys.stderr, flush=True)

    def shut_down(self) -> None:
        """The ledger closed and the process reading mail ahead, if any, stopped: the service done with."""
        if self._reading is not None:
            self._reading.close()
            self._reading = None
        self.ledger.close()

    @cached_property
    def keys(self) -> SecretariatKeys:
        from voting.pki import SecretariatKeys

        return SecretariatKeys.load(self.config.keys_dir, self.config.key_password())

    def decryption(self) -> tuple[Identity | None, str | None]:
        """The secretariat's identity, which opens what was encrypted to it; or None and why it cannot be loaded,
        for a check that runs without it (`voting check`, `voting status`) to say what it left unread."""
        try:
            return self.keys.signer, None
        except (ConfigError, KeyMaterialError) as error:
            return None, ("the explanations of ballots encrypted to the secretariat whose chain does not record"
                          f" them (votes of earlier versions) are not checked without its key: {error}")

    @cached_property
    def _electorate_file(self) -> ElectorateFile:
        from voting.electorate import ElectorateFile

        return ElectorateFile(self.config.electorate_file)

    def electorate(self) -> Electorate:
        """Read afresh each time: certificates issued or revoked meanwhile take effect at once."""
        return self._electorate_file.load()

    @property
    def secretariat(self) -> tuple[str, str]:
        s = self.config.settings.secretariat
        return s.address, s.name

    def _words(self, delegation: Delegation) -> Wording:
        """The delegation's language: the deployment's own catalogue (beside its configuration) before the service's."""
        return wording(delegation.language, (self.config.path.parent,))

    def secretariat_words(self) -> Wording:
        """The secretariat's language, for observers and the public record, as the deployment words it."""
        return wording(DEFAULT_LANGUAGE, (self.config.path.parent,))

    def _zones(self, delegation: Delegation) -> tuple[str | None, ...]:
        """Where a letter to the delegation is read, and where the secretariat is: its times are also given there."""
        return delegation.timezone, self.config.settings.secretariat.timezone

    def _write(
        self,
        to: Delegation | Sequence[str],
        subject: str,
        text: str,
        html_body: str,
        kind: str,
        vote_id: str | None,
        now: datetime,
        *,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        auto_submitted: str = "auto-generated",
        attachments: Sequence[Attachment] = (),
    ) -> OutgoingMessage:
        """Sign a message from the secretariat to a delegation's registered addresses (or to given addresses: an
        observer's) and queue it; its HTML is marked as in the delegation's language, or the secretariat's.

        Call inside the transaction of what the message announces.
        """
        recipients = to.addresses if isinstance(to, Delegation) else list(to)
        address, name = self.secretariat
        mail = signed_mail(
            self.keys.signer,
            sender=address,
            sender_name=name,
            recipients=recipients,
            subject=subject,
            text=text,
            html_body=html_body,
            sent_at=now,
            in_reply_to=in_reply_to,
            references=references,
            auto_submitted=auto_submitted,
            attachments=attachments,
            language=to.language if isinstance(to, Delegation) else DEFAULT_LANGUAGE,
        )
        self.ledger.queue_mail(
            message_id=mail.message_id,
            kind=kind,
            vote_id=vote_id,
            envelope_from=address,
            recipients=recipients,
            raw=mail.raw,
            now=now,
        )
        return mail

    def send(self) -> tuple[int, int]:
        from voting.mail.outbox import drain

        return drain(self.ledger, self.config, self.clock)

    def _ballots(self, vote_id: str, deadline: datetime, code: str | None = None) -> list[tuple[str, CountedBallot]]:
        return counted_pairs(self.ledger.decisions(vote_id, code), deadline)


def counted_pairs(decisions: Iterable[DecisionRecord], deadline: datetime) -> list[tuple[str, CountedBallot]]:
    """The ballots among the decisions received before the deadline, as `counted_ballots` takes them."""
    return [
        (d.code, CountedBallot(d.sha256, d.received_at, d.choices, d.message))
        for d in decisions
        if d.verdict == BALLOT and d.code and d.received_at < deadline
    ]
