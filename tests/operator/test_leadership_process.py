"""Two real `python -m podtask_operator` processes against the embedded cluster: exactly one
leads, the other stands by (healthy); SIGKILL the leader and the standby takes over, and its
health endpoint stays healthy on Lease events alone; SIGTERM releases the Lease."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from podtask_devcluster.ports import free_port
from tests.embedded_kube import EmbeddedKube

T = TypeVar("T")
STALL_SECONDS = 3


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Replica:
    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "podtask_operator"],
            env={**env, "PODTASK_HEALTH_HOST": "127.0.0.1", "PODTASK_HEALTH_PORT": str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def leads(self) -> bool:
        return "leading as" in self.log()

    def health(self) -> tuple[int, dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None  # not serving yet

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def replicas(embedded_kube: EmbeddedKube, tmp_path: Path) -> Iterator[list[Replica]]:
    namespace = embedded_kube.new_namespace("ha")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")},
        "KUBECONFIG": str(embedded_kube.kubeconfig),
        "PODTASK_NAMESPACE": namespace.name,
        "PODTASK_API_URL": "http://127.0.0.1:1",
        "PODTASK_RUNNER_TOKEN_SECRET": "s" * 32,
        "PODTASK_LEASE_DURATION_SECONDS": "2",
        "PODTASK_LEASE_RENEW_SECONDS": "0.5",
        "PODTASK_WATCH_STALL_SECONDS": str(STALL_SECONDS),
    }
    started = [Replica(name, env, tmp_path / f"{name}.log") for name in ("one", "two")]
    yield started
    for replica in started:
        replica.stop()


def test_one_replica_leads_and_the_standby_takes_over_when_it_dies(
    replicas: list[Replica],
) -> None:
    wait_for(lambda: any(r.leads() for r in replicas), 30, "a replica to lead")
    leader, standby = sorted(replicas, key=lambda r: not r.leads())
    wait_for(lambda: "standby:" in standby.log(), 10, "the other replica to stand by")
    assert not standby.leads(), standby.log()
    assert standby.health() == (
        200,
        {"healthy": True, "role": "standby", "secondsSinceWatchEvent": None,
         "reason": "waiting for the Lease"},
    )  # fmt: skip

    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait()
    wait_for(standby.leads, 20, f"the standby to take over:\n{standby.log()}")

    # Healthy for longer than the stall limit, with no runs at all: the Lease events keep the
    # heartbeat going.
    def beating() -> dict[str, Any] | None:
        health = standby.health()
        return health[1] if health and health[1]["secondsSinceWatchEvent"] is not None else None

    wait_for(beating, 10, "the new leader's first watch event")
    deadline = time.monotonic() + 2 * STALL_SECONDS
    while time.monotonic() < deadline:
        status, report = standby.health() or (0, {})
        assert status == 200 and report["role"] == "leader", (report, standby.log())
        time.sleep(0.5)

    standby.process.send_signal(signal.SIGTERM)
    assert standby.process.wait(20) == 0, standby.log()
    assert "released the Lease" in standby.log()
