"""The `podtask` command as a real subprocess against an API served by uvicorn, for the CLI
tests of this folder; and the test's stand-in for the operator while a command waits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from api_fixtures import API_KEY, served, settings_for

from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace

ROOT = Path(__file__).resolve().parents[2]


def podtask(
    *args: str,
    env: dict[str, str],
    timeout: float = 60,
    stdout: int | IO[Any] = subprocess.PIPE,
    stderr: int | IO[Any] = subprocess.PIPE,
) -> subprocess.CompletedProcess[str]:
    """`podtask ARGS` from the repository root, with `env` for the PODTASK_ variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", *args],
        env={**clean, **env},
        cwd=ROOT,
        stdout=stdout,
        stderr=stderr,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def api_env(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[dict[str, str]]:
    """The API over `namespace`, served, as the environment `podtask` reads."""
    with served(create_app(settings_for(embedded_kube, namespace))) as url:
        yield {"PODTASK_API_URL": url, "PODTASK_API_KEY": API_KEY}


def play_operator(
    namespace: KubeNamespace, status: dict[str, Any], *, besides: frozenset[str] = frozenset()
) -> threading.Thread:
    """In the background: once a run appears (other than those `besides`), move it to
    Executing, then to `status`."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while not (new := set(namespace.run_names()) - besides):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [run_id] = new
        namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
        time.sleep(0.5)
        namespace.set_run_status(run_id, status)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
