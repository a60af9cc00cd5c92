"""The README's step-by-step deployment, run verbatim in a copy of this checkout, as a new user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import voting

ROOT = Path(__file__).resolve().parents[1]


def readme_block(section: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"## {re.escape(section)}\n.*?```sh\n(.*?)```", text, re.S)
    assert found, f"no sh block under '## {section}' in README.md"
    return found.group(1)


def copy_of_checkout(into: Path) -> Path:
    """The files a clone has (tracked, and new ones not ignored), without the local virtual environment."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return into


def test_the_step_by_step_deployment_runs_verbatim(tmp_path: Path) -> None:
    clone = copy_of_checkout(tmp_path / "clone")
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-euc", readme_block("A deployment, step by step")], cwd=clone,
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"all \d+ checks passed", result.stdout), result.stdout[-3000:]


def test_init_names_the_readme_s_next_steps(tmp_path: Path) -> None:
    block = readme_block("A deployment, step by step")
    made = voting("--json", "init", str(tmp_path / "deploy"), "--electorate", "unsc-2020")
    assert made.returncode == 0, made.stderr
    steps = json.loads(made.stdout)["next"]
    assert steps[0] == f"cd {tmp_path / 'deploy'}"
    for step in steps[1:]:
        words = step.split()
        assert re.search(r"\s+".join(re.escape(w) if w.islower() or w.startswith("-") else r"\S+" for w in words),
                         block), f"`{step}` is not in the README's steps"
