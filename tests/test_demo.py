"""`voting demo`, as a newcomer runs it: the July 2020 Syria round, start to finish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_the_demo_reproduces_the_july_2020_round(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "voting", "demo", "--dir", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "S/2020/654: NOT ADOPTED (13 in favour, 2 against, 0 abstentions, 0 absent)" in out
    assert "S/2020/658: NOT ADOPTED (4 in favour, 7 against, 4 abstentions, 0 absent)" in out
    assert "unknown-signer" in out and "late" in out
    status = subprocess.run(
        [sys.executable, "-m", "voting", "--json", "--config", str(tmp_path / "demo" / "config" / "voting.toml"),
         "status"], capture_output=True, text=True, timeout=60)
    [vote] = json.loads(status.stdout)
    assert vote["outcome"]["S/2020/654"]["vetoed_by"] == ["CHN", "RUS"]
    assert vote["outcome"]["S/2020/658"]["vetoed_by"] == []
    assert vote["voted"]["NER"]["S/2020/654"] == "yes"
    assert {r["reason"] for r in vote["rejected"]} == {"unknown-signer", "late"}
    assert vote["outbox"]["queued"] == 0 and vote["outbox"]["failed"] == 0
