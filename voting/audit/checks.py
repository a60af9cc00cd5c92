"""One result of `voting audit`: a named check that passed or failed, and how checks are shown."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def short(sha256: str) -> str:
    return sha256[:16]


def render_checks(checks: Sequence[Check]) -> list[str]:
    """One line per check, then the verdict line `voting audit` ends with."""
    lines = [f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}" for check in checks]
    failed = sum(not check.ok for check in checks)
    lines.append(f"all {len(checks)} checks passed" if not failed else f"{failed} of {len(checks)} checks failed")
    return lines


def checks_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The `voting audit --json` document."""
    failed = sum(not check.ok for check in checks)
    return {
        "valid": failed == 0,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "passed": len(checks) - failed,
        "failed": failed,
    }
