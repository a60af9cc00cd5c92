"""The domain's values: choices, delegations and their certificates, electorates, outcomes.

Pydantic models where the value crosses a boundary (the electorate file, the
audit manifest); named tuples elsewhere, and a frozen dataclass for an outcome,
whose conditions are left out of its comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from voting.times import zone_name
from voting.wording import DEFAULT_LANGUAGE, LANGUAGE_CODE

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
    weight: Decimal | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Votes or shares the delegation casts, for rules that count weight (a board's votes)",
    )
    population: int | None = Field(
        default=None, ge=0, description="The population the member represents, for rules that count it (eu-qmv)"
    )
    addresses: list[str] = Field(default_factory=list)
    certificates: list[RegisteredCertificate] = Field(default_factory=list)
    timezone: TimeZoneName | None = None
    language: str = Field(default=DEFAULT_LANGUAGE, pattern=LANGUAGE_CODE)
    """The language of the letters it receives: a wording catalogue (en and fr come with the service)."""
    names: dict[str, str] = Field(
        default_factory=dict,
        description="Its name in other languages than the secretariat's, by language code ({fr = \"Belgique\"}):"
        " a letter written in one of them names the delegation so; `name` is its name in the secretariat's language",
    )

    _addresses_are_mailboxes = field_validator("addresses")(mailbox_addresses)

    @field_validator("names")
    @classmethod
    def _names_by_language(cls, names: dict[str, str]) -> dict[str, str]:
        for language, name in names.items():
            if not re.fullmatch(LANGUAGE_CODE, language):
                raise ValueError(f"{language!r} is not a language code: write a two- or three-letter code in lower"
                                 " case, such as fr")
            if language == DEFAULT_LANGUAGE:
                raise ValueError(f"{language} is the secretariat's language, in which the delegation's name is `name`")
            if not name.strip():
                raise ValueError(f"the name in {language} is empty")
        return names

    @model_serializer(mode="wrap")
    def _without_names_when_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`names` left out when empty: the snapshot a vote records (and hashes) of an electorate that names no
        delegation in other languages stays as it was before names could be given."""
        data = handler(self)
        if isinstance(data, dict) and not self.names:
            data.pop("names", None)
        return data

    def name_in(self, language: str) -> str:
        """Its name in a letter written in `language`: as given for that language, else `name`."""
        return self.names.get(language, self.name)

    def label_in(self, language: str) -> str:
        """ "BEL (Belgique)": code and name, as a letter in `language` shows the delegation."""
        return f"{self.code} ({self.name_in(language)})"

    @property
    def label(self) -> str:
        """Code and name in the secretariat's language, as the secretariat's own tools show the delegation."""
        return self.label_in(DEFAULT_LANGUAGE)


def share(text: str) -> Fraction:
    """ "55%", "2/3" or "0.5" as an exact fraction between 0 and 1."""
    cleaned = text.strip()
    try:
        value = Fraction(cleaned[:-1].strip()) / 100 if cleaned.endswith("%") else Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a share: write 55%, 2/3 or 0.5") from None
    if not 0 < value <= 1:
        raise ValueError(f"{text!r} is not a share between 0 (excluded) and 100%")
    return value


def _share_text(text: str) -> str:
    share(text)
    return text


ShareText = Annotated[str, AfterValidator(_share_text)]
"""A share as written in the file ("55%", "2/3"), kept as written so the file round-trips."""

Counted = Literal["members", "weight", "population"]
Base = Literal["members", "present", "present-and-voting"]


class Condition(BaseModel):
    """One requirement on the votes in favour of a draft; a rule adopts a draft when all of its conditions hold."""

    model_config = ConfigDict(extra="forbid")

    counts: Counted = Field(
        default="members", description="What is added up in favour: members, their weight, or their population"
    )
    base: Base = Field(
        default="members",
        description="Of whom a share is taken: all members, those present (yes, no or abstain), or those present"
        " and voting (yes or no: abstentions do not count)",
    )
    at_least: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False, description="A number in favour")
    at_least_share: ShareText | None = Field(default=None, description="A share of the base in favour, or more")
    more_than_share: ShareText | None = Field(default=None, description="More than this share of the base in favour")
    blocking_minority: int | None = Field(
        default=None, ge=1,
        description="The condition fails only if at least this many members did not vote in favour; otherwise it"
        " is deemed met (Treaty on European Union, Article 16(4))",
    )

    @model_validator(mode="after")
    def _one_threshold(self) -> Condition:
        given = [k for k in ("at_least", "at_least_share", "more_than_share") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a condition takes exactly one of at_least, at_least_share, more_than_share")
        return self


class RuleSpec(BaseModel):
    """A body's voting rule as data: conditions on the votes in favour, and who may defeat a draft alone."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, description="The rule in one sentence, as the ballot and the record state it")
    conditions: list[Condition] = Field(min_length=1)
    veto: bool = Field(
        default=False, description="A no of a member marked permanent defeats a draft that meets the conditions"
    )
    quorum: int | None = Field(default=None, ge=1, description="Members present and voting a draft needs")
    extendable: bool = Field(default=True, description="Whether the deadline may be moved once the vote is open")


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
    rules: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")], RuleSpec] = Field(
        default_factory=dict, description="The body's own rules, by name, beside the named rules built in"
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
        address_of: dict[str, str] = {}
        for d in self.delegation:
            if d.code in seen_codes:
                raise ValueError(f"delegation {d.code} is listed twice")
            seen_codes.add(d.code)
            for address in d.addresses:
                if address_of.setdefault(address, d.code) != d.code:
                    raise ValueError(f"address {address} is registered to both {address_of[address]} and {d.code}")
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


class ConditionCheck(NamedTuple):
    """One condition of a rule as checked on a draft, with the numbers: what `voting tally --json` explains."""

    condition: str
    """What the rule requires: "at least 65% of the population in favour"."""
    met: bool
    found: str
    """What the count gives: "18 of 27 members in favour, 66.66%"."""

    def as_dict(self) -> dict[str, object]:
        return {"condition": self.condition, "met": self.met, "found": self.found}


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
    conditions: tuple[ConditionCheck, ...] = field(default=(), compare=False)
    """Each condition of the rule as checked; not part of `as_dict`, which the record and the audit state."""

    @property
    def stated(self) -> str:
        """The outcome in one sentence, as the results and the audit state it."""
        return f"{'Adopted' if self.adopted else 'Not adopted'}: {self.reason}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outcome:
        """The outcome as `as_dict` wrote it (in the ledger and in `voting status --json`)."""
        return cls(**{**data, "vetoed_by": tuple(data["vetoed_by"])})

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
