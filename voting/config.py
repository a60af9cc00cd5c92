"""The deployment's configuration (README, "Configuration"): TOML read into pydantic models.

Any key can be overridden by an environment variable `VOTING_<SECTION>__<KEY>`.
Relative paths are relative to the deployment directory: the folder that
holds `config/`, or the configuration file's own folder when it is not in a
folder named `config`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from functools import cache
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from voting.errors import ConfigError
from voting.layout import DEFAULT_CONFIG
from voting.model import TimeZoneName
from voting.times import duration

ENV_PREFIX = "VOTING_"

TlsMode = Literal["implicit", "starttls", "none"]


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1: the only hosts mail may reach without TLS."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretariatSection(Section):
    name: str = "Secretariat"
    address: str = Field(default="votes@secretariat.example", pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    keys_dir: Path = Path("keys")
    key_password_file: Path = Path("secrets/key-password")
    key_password: SecretStr | None = None
    vote_prefix: str = Field(default="vote", pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    timezone: TimeZoneName | None = None
    """The secretariat's time zone: letters and the record show its local time beside UTC."""


class ElectorateSection(Section):
    file: Path = Path("config/electorates/unsc-2020.toml")


class MailboxSection(Section):
    kind: Literal["embedded", "maildir", "imap"] = "embedded"
    root: Path = Path("var/mail")
    maildir: Path = Path("var/mail/inbox")
    host: str = "localhost"
    port: int = Field(default=993, ge=1, le=65535)
    tls: TlsMode = "implicit"
    ca_file: str = ""
    username: str = ""
    password_file: str = ""
    password: SecretStr | None = None
    folder: str = "INBOX"
    processed_folder: str = "Processed"
    idle: bool = True


class SmtpSection(Section):
    kind: Literal["embedded", "smtp"] = "embedded"
    host: str = "127.0.0.1"
    port: int = Field(default=8025, ge=0, le=65535)
    tls: TlsMode = "none"
    ca_file: str = ""
    username: str = ""
    password_file: str = ""
    password: SecretStr | None = None


class ServiceSection(Section):
    database: Path = Path("var/voting.sqlite3")
    records_dir: Path = Path("var/records")
    """Where closing a vote writes its audit bundle, and `voting record` the public record."""
    poll_seconds: float = Field(default=30, gt=0)
    statement_hours: float = Field(default=3, ge=0, description="Explanations of vote accepted this long after close")
    max_message_bytes: int = Field(default=25 * 2**20, gt=0)
    reminders: list[str] = Field(
        default_factory=lambda: ["6h", "1h"],
        description="How long before the deadline delegations that have not voted are reminded",
    )

    @field_validator("reminders")
    @classmethod
    def _reminders_are_durations(cls, reminders: list[str]) -> list[str]:
        for reminder in reminders:
            if duration(reminder) <= timedelta(0):
                raise ValueError(f"{reminder!r} is no length of time before the deadline")
        if len(set(reminders)) != len(reminders):
            raise ValueError("a reminder is given twice")
        return reminders

    def reminder_offsets(self) -> dict[str, timedelta]:
        """Each reminder and how long before the deadline it goes out."""
        return {reminder: duration(reminder) for reminder in self.reminders}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secretariat: SecretariatSection = SecretariatSection()
    electorate: ElectorateSection = ElectorateSection()
    mailbox: MailboxSection = MailboxSection()
    smtp: SmtpSection = SmtpSection()
    service: ServiceSection = ServiceSection()

    @model_validator(mode="after")
    def _plain_text_only_on_loopback(self) -> Settings:
        for section, kind in (("mailbox", "imap"), ("smtp", "smtp")):
            part = getattr(self, section)
            if part.kind == kind and part.tls == "none" and not is_loopback(part.host):
                raise ValueError(f"{section}.tls = \"none\" is allowed only for a loopback host, not {part.host!r}")
        return self


class Config:
    """Settings plus where they came from, so that paths and errors can name the file."""

    def __init__(self, settings: Settings, path: Path, root: Path) -> None:
        self.settings = settings
        self.path = path
        self.root = root

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    @property
    def database(self) -> Path:
        return self.resolve(self.settings.service.database)

    @property
    def records_dir(self) -> Path:
        return self.resolve(self.settings.service.records_dir)

    @property
    def keys_dir(self) -> Path:
        return self.resolve(self.settings.secretariat.keys_dir)

    @property
    def electorate_file(self) -> Path:
        return self.resolve(self.settings.electorate.file)

    @property
    def inbox(self) -> Path:
        """The secretariat's Maildir (embedded and maildir kinds)."""
        mailbox = self.settings.mailbox
        if mailbox.kind == "embedded":
            return self.resolve(mailbox.root) / self.settings.secretariat.address.lower()
        return self.resolve(mailbox.maildir)

    def secret(self, section: str, name: str) -> str:
        """A secret from its environment variable or its `*_file`; never from the file itself."""
        part = getattr(self.settings, section)
        value: SecretStr | None = getattr(part, name)
        if value is not None:
            return value.get_secret_value()
        file_key = f"{name}_file"
        file_name = getattr(part, file_key)
        if not file_name:
            return ""
        secret_path = self.resolve(file_name)
        try:
            return secret_path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"{self.path}: {section}.{file_key}: cannot read {secret_path}: {error.strerror}"
                f" (or set {ENV_PREFIX}{section.upper()}__{name.upper()})"
            ) from None

    def key_password(self) -> bytes:
        password = self.secret("secretariat", "key_password")
        if not password:
            raise ConfigError(f"{self.path}: secretariat.key_password_file: the key password is empty")
        return password.encode()


def deployment_root(config_path: Path) -> Path:
    folder = config_path.resolve().parent
    return folder.parent if folder.name == "config" else folder


OTHER_VARIABLES = frozenset({"VOTING_P12_PASSWORD"})
"""Variables of the prefix that are not settings: the delegate's PKCS#12 password for `voting reply`."""


def check_environment(environ: Mapping[str, str]) -> None:
    """A misspelt override would be silently ignored; refuse it instead, naming it."""
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        section, separator, key = name.removeprefix(ENV_PREFIX).lower().partition("__")
        field = Settings.model_fields.get(section)
        model = field.annotation if field is not None else None
        known = model.model_fields if isinstance(model, type) and issubclass(model, Section) else {}
        if not separator or key not in known:
            raise ConfigError(f"environment variable {name} names no setting (write VOTING_<SECTION>__<KEY>,"
                              " e.g. VOTING_SMTP__PORT)")


def load_config(path: Path = DEFAULT_CONFIG) -> Config:
    """Read and validate the configuration; every problem is a ConfigError naming the file and the key."""
    check_environment(os.environ)
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (run `voting init` or pass --config)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    try:
        settings = _settings_overridden()(**data) if _overrides(os.environ) else Settings(**data)
    except ValidationError as error:
        raise ConfigError(f"{path}: {describe_validation_error(error)}") from None
    return Config(settings, path, deployment_root(path))


def _overrides(environ: Mapping[str, str]) -> bool:
    return any(name.startswith(ENV_PREFIX) and name not in OTHER_VARIABLES for name in environ)


@cache
def _settings_overridden() -> type[Settings]:
    """`Settings` under the environment's overrides, which win over the file (given as init arguments).

    pydantic-settings is imported only here, when a variable overrides a
    setting: a command reading the file alone starts without it.
    """
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

    class OverriddenSettings(BaseSettings, Settings):  # type: ignore[misc]
        model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (env_settings, init_settings)

    return OverriddenSettings


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem: the dotted key, then pydantic's message; names the override variable too."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        variable = ENV_PREFIX + "__".join(str(part).upper() for part in item["loc"])
        origin = f" (from {variable})" if variable in os.environ else ""
        problems.append(f"{key}: {message}{origin}" if key else message)
    return "; ".join(problems)
