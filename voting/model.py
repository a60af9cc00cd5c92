"""The domain's values: choices, delegations and their certificates, electorates, outcomes.

Pydantic models where the value crosses a boundary (the electorate file, the
audit manifest); frozen dataclasses elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from voting.times import zone_name

CODE_PATTERN = r"^[A-Z][A-Z0-9-]{1,15}$"

TimeZoneName = Annotated[str, AfterValidator(zone_name)]
"""An IANA time zone name ("Europe/Paris"): where a reader is, so times are also shown in its local time."""


class Choice(StrEnum):
    YES = "yes"
    NO = "no"
    ABSTAIN = "abstain"


class RegisteredCertificate(BaseModel):
    """A certificate registered to a delegation, pinned by its SHA-256 fingerprint."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    pem: str
    issued_by_secretariat: bool = False
    secretariat_held_key: bool = Field(
        description="Whether the secretariat ever held the certificate's private key: it generated the key "
        "(`keys issue`), so whoever held its keys could have signed as the delegation. False when the delegation "
        "made the key and proved holding it (`keys sign`, `keys import`); each delegation can check its own"
    )
    revoked: bool = False
    revoked_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _custody_of_earlier_files(cls, data: object) -> object:
        """Files written before custody was recorded: every certificate the secretariat issued, it made the key of."""
        if isinstance(data, dict) and "secretariat_held_key" not in data:
            return {**data, "secretariat_held_key": bool(data.get("issued_by_secretariat", False))}
        return data


def mailbox_addresses(addresses: list[str]) -> list[str]:
    """The addresses, each checked to be one mailbox, lowercased: the one form compared with a From header."""
    for address in addresses:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address):
            raise ValueError(f"{address!r} is not a mailbox address")
    return [a.lower() for a in addresses]


class Delegation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=CODE_PATTERN)
    name: str
    permanent: bool = False
    addresses: list[str] = Field(default_factory=list)
    certificates: list[RegisteredCertificate] = Field(default_factory=list)
    timezone: TimeZoneName | None = None
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}$")
    """The language of the letters it receives: a wording catalogue (en and fr come with the service)."""

    _addresses_are_mailboxes = field_validator("addresses")(mailbox_addresses)

    @property
    def label(self) -> str:
        return f"{self.code} ({self.name})"


class Electorate(BaseModel):
    """The members of a body and the numbers its rules need."""

    model_config = ConfigDict(extra="forbid")

    name: str = "Electorate"
    required_yes: int | None = Field(
        default=None, ge=1, description="Affirmative votes a draft needs under the unsc-* rules"
    )
    quorum: int | None = Field(default=None, ge=1, description="Members present and voting a majority rule needs")
    observers: list[str] = Field(
        default_factory=list,
        description="Addresses told when a vote opens and of its results, which cannot vote: no delegation's",
    )
    delegation: list[Delegation] = Field(default_factory=list)

    _observers_are_mailboxes = field_validator("observers")(mailbox_addresses)

    @model_validator(mode="after")
    def _observers_are_no_delegations(self) -> Electorate:
        for d in self.delegation:
            shared = sorted(set(d.addresses) & set(self.observers))
            if shared:
                raise ValueError(f"{', '.join(shared)} is an address of {d.code}, so it cannot be an observer")
        return self

    @model_validator(mode="after")
    def _unique(self) -> Electorate:
        seen_codes: set[str] = set()
        owner_of: dict[str, str] = {}
        for d in self.delegation:
            if d.code in seen_codes:
                raise ValueError(f"delegation {d.code} is listed twice")
            seen_codes.add(d.code)
            for c in d.certificates:
                if c.sha256 in owner_of:
                    raise ValueError(
                        f"certificate {c.sha256[:16]}… is registered to both {owner_of[c.sha256]} and {d.code}"
                    )
                owner_of[c.sha256] = d.code
        return self

    @property
    def codes(self) -> list[str]:
        return [d.code for d in self.delegation]

    @property
    def permanent(self) -> frozenset[str]:
        return frozenset(d.code for d in self.delegation if d.permanent)

    def get(self, code: str) -> Delegation | None:
        return next((d for d in self.delegation if d.code == code), None)


@dataclass(frozen=True)
class Outcome:
    adopted: bool
    yes: int
    no: int
    abstain: int
    absent: int
    vetoed_by: tuple[str, ...] = ()
    reason: str = ""
    """The count and why it decides: "13 in favour, 2 against, 0 abstentions; negative vote of permanent members
    CHN, RUS." """

    @property
    def stated(self) -> str:
        """The outcome in one sentence, as the results and the audit state it."""
        return f"{'Adopted' if self.adopted else 'Not adopted'}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "adopted": self.adopted,
            "yes": self.yes,
            "no": self.no,
            "abstain": self.abstain,
            "absent": self.absent,
            "vetoed_by": list(self.vetoed_by),
            "reason": self.reason,
        }
