"""Signed mail nobody on this project wrote, found through one setting.

The Thunderbird S/MIME test corpus and the "Johnny, You Are Fired" attack
corpus are other people's work and never live in this repository. Tests find
them in `VOTING_INTEROP_DIR` (default: `../shared/interop` beside the
checkout). Where they are absent, the tests that need them are skipped with
one reason naming the setting; under CI (`CI=true`) they fail instead, so CI
always proves every row.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

SETTING = "VOTING_INTEROP_DIR"
DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "interop"
THUNDERBIRD = "thunderbird-smime"
JOHNNY = "johnny-smime"


def interop_dir() -> Path:
    return Path(os.environ[SETTING]).expanduser() if os.environ.get(SETTING) else DEFAULT


def missing_reason() -> str:
    return f"interop corpora not found in {interop_dir()}: set {SETTING} to the folder holding {THUNDERBIRD}/ and {JOHNNY}/"


def available(name: str) -> bool:
    return (interop_dir() / name / "EXPECTED.tsv").is_file()


def corpus(name: str) -> Path:
    """The corpus folder; a skip with one reason where it is absent, a failure under CI."""
    if not available(name):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(missing_reason() + " (CI=true: a missing corpus is a failure)", pytrace=False)
        pytest.skip(missing_reason())
    return interop_dir() / name


def rows(name: str) -> list[dict[str, str]]:
    """EXPECTED.tsv of a corpus, for parametrizing; one placeholder row that skips (or fails) when absent."""
    if not available(name):
        return [{"file": f"{name}-missing", "missing": name}]
    with (interop_dir() / name / "EXPECTED.tsv").open(newline="") as table:
        return list(csv.DictReader(table, delimiter="\t"))


def row_file(row: dict[str, str], name: str) -> Path:
    """The file of one EXPECTED.tsv row, through `corpus` so a placeholder row skips or fails."""
    return corpus(row.get("missing", name)) / row["file"]
