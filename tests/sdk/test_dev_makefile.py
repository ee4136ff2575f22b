"""`make dev`: the first install shows pip's progress (not ~50 s of silence), and `PORT=`
chooses the API's port (a second `make dev` needs another one)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> list[str]:
    """The recipe lines of `target` in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"{re.escape(target)}:", line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_the_first_install_shows_pips_progress() -> None:
    recipe = _recipe("$(STAMP)")
    installs = [line for line in recipe if "pip install" in line]
    assert len(installs) == 2
    assert not any("--quiet" in line or " -q" in line for line in installs)
    assert recipe[0].startswith("@echo ") and "about a minute" in recipe[0]


def test_make_dev_passes_port_to_podtask_dev() -> None:
    assert "PORT ?= 8030" in (ROOT / "Makefile").read_text().splitlines()
    [command] = [line for line in _recipe("dev") if "podtask dev" in line]
    assert "--port $(PORT)" in command


@pytest.mark.component
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_dev_port_reaches_the_command() -> None:
    def dev_command(*variables: str) -> str:
        done = subprocess.run(
            ["make", "-n", "dev", *variables],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return next(line for line in done.stdout.splitlines() if "podtask dev" in line)

    assert " --port 8030 " in dev_command()
    assert " --port 8031 " in dev_command("PORT=8031")
