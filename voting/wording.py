"""What the secretariat writes to a delegation, in the delegation's language: catalogues of texts, one per language.

English and French come with the service (`voting/data/wording-XX.toml`);
a deployment adds a language, or rewords one, with `config/wording-XX.toml`
beside its configuration. Every catalogue has the English keys and, in each
text, the same `{fields}`, so a catalogue can never drop a fact that a letter
must state: that is checked when it is read, and a wrong one is a
configuration error naming the key.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from voting.errors import ConfigError

DEFAULT_LANGUAGE = "en"
LANGUAGE_CODE = r"^[a-z]{2,3}$"


class Wording(NamedTuple):
    """One language's texts: `wording("answer.reason", reason=...)` gives a text with its fields filled in."""

    language: str
    texts: Mapping[str, Any]

    def __call__(self, key: str, **fields: object) -> str:
        return str(self.texts[key]).format(**fields)

    def names(self, key: str) -> list[str]:
        """A list of the catalogue (day or month names)."""
        return list(self.texts[key])


def _flat(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _fields(text: object) -> set[str]:
    if not isinstance(text, str):
        return set()
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _read(text: str, where: str) -> dict[str, Any]:
    try:
        return _flat(tomllib.loads(text))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{where}: not a wording catalogue: {error}") from None


@cache
def _english() -> dict[str, Any]:
    return _read(resources.files("voting").joinpath("data/wording-en.toml").read_text("utf-8"), "wording-en.toml")


def _checked(texts: dict[str, Any], where: str) -> dict[str, Any]:
    """The catalogue, if it has every English key with the same fields (a reworded English may leave keys out)."""
    english = _english()
    for key, text in english.items():
        if key not in texts:
            raise ConfigError(f"{where}: {key} is missing (every key of wording-en.toml is needed)")
        if _fields(texts[key]) != _fields(text):
            raise ConfigError(f"{where}: {key} must use the fields {sorted(_fields(text))}, as wording-en.toml does")
        if isinstance(text, list) and (not isinstance(texts[key], list) or len(texts[key]) != len(text)):
            raise ConfigError(f"{where}: {key} must list {len(text)} names")
    unknown = sorted(set(texts) - set(english))
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} is no key of wording-en.toml")
    return texts


def wording(language: str = DEFAULT_LANGUAGE, folders: Sequence[Path] = ()) -> Wording:
    """The catalogue of `language`: a deployment's own (in one of `folders`) before the one that comes with the
    service. An unknown language is a configuration error naming the catalogues there are."""
    if not re.fullmatch(LANGUAGE_CODE, language):
        raise ConfigError(f"language {language!r}: write a two- or three-letter code such as en or fr")
    name = f"wording-{language}.toml"
    for folder in folders:
        path = folder / name
        if path.is_file():
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ConfigError(f"{path}: cannot read the catalogue: {error}") from None
            return _catalogue(language, text, str(path), over_english=language == DEFAULT_LANGUAGE)
    packaged = _packaged(name)
    if packaged is None:
        known = sorted({p.name[8:-5] for p in resources.files("voting").joinpath("data").iterdir()
                        if p.name.startswith("wording-")} | {p.name[8:-5] for f in folders for p in f.glob("wording-*.toml")})
        raise ConfigError(f"no wording catalogue for the language {language!r} (there are: {', '.join(known)});"
                          f" add {name} to the deployment's config folder")
    return _catalogue(language, packaged, name, over_english=False)


@cache
def _packaged(name: str) -> str | None:
    """A catalogue that comes with the service, read once: it does not change while the service runs."""
    packaged = resources.files("voting").joinpath(f"data/{name}")
    return packaged.read_text("utf-8") if packaged.is_file() else None


@lru_cache(maxsize=32)
def _catalogue(language: str, text: str, where: str, *, over_english: bool) -> Wording:
    """The catalogue a text holds (`over_english`: the keys it rewords in English), checked.

    Parsed once per text: a file edited meanwhile is another text, read anew.
    """
    texts = _read(text, where)
    return Wording(language, MappingProxyType(_checked({**_english(), **texts} if over_english else texts, where)))


ENGLISH = wording()
"""The default: English, as the service ships it."""
