"""The whole dev stack, started with the real `podtask dev` command, for end-to-end tests."""

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from podtask._cli.devprocess import DevProcess
from tests.clusters import CLUSTERS

ROOT = Path(__file__).resolve().parents[2]
TASK_MODULES = Path(__file__).parent / "task_modules"
FINAL = {"Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure"}


class Stack:
    def __init__(self, dev: DevProcess) -> None:
        self.dev = dev
        self.http = httpx.Client(
            base_url=dev.api_url, headers={"Authorization": f"Bearer {dev.api_key}"}, timeout=30
        )

    @property
    def kube_env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.dev.kubeconfig}

    def trigger(self, task_id: str, payload: Any, **options: Any) -> str:
        body: dict[str, Any] = {"payload": payload}
        if options:
            body["options"] = options
        response = self.http.post(f"/api/v1/tasks/{task_id}/trigger", json=body)
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def pod(self, name: str) -> dict[str, Any]:
        """The pod as kubectl shows it."""
        done = subprocess.run(
            ["kubectl", "get", "pod", name, "-o", "json"],
            env=self.kube_env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def node_fits(self, requests: dict[str, str]) -> bool:
        """Whether some node's allocatable holds `requests` (cpu and memory)."""
        from podtask_devcluster.quantities import parse_quantity

        if self.dev.cluster == "embedded":
            return True  # its scheduler checks no resource fit: every machine runs in dev

        done = subprocess.run(
            ["kubectl", "get", "nodes", "-o", "json"],
            env=self.kube_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        nodes = json.loads(done.stdout)["items"]
        return any(
            parse_quantity(node["status"]["allocatable"]["cpu"]) >= parse_quantity(requests["cpu"])
            and parse_quantity(node["status"]["allocatable"]["memory"])
            >= parse_quantity(requests["memory"])
            for node in nodes
        )

    def wait_for(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        return wait_until(lambda: (r := self.run(run_id))["status"] in FINAL and r, timeout)


def at(stamp: str) -> datetime:
    """A timestamp of the API's JSON as a datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def wait_until(check: Callable[[], Any], timeout: float = 90, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {check}")
        time.sleep(interval)


def start_timeout(cluster: str) -> float:
    # The real control plane's first start may build it (minutes on a fresh machine); the
    # embedded one can take minutes too when `make test`'s workers start stacks at once.
    return 300 if cluster == "embedded" else 1800


def start_stack(state_dir: Path, *modules: str, cluster: str = "embedded") -> DevProcess:
    return DevProcess(
        [str(ROOT / "examples"), *modules],
        state_dir,
        cwd=ROOT,
        cluster=cluster,
        start_timeout=start_timeout(cluster),
    ).start()


@contextlib.contextmanager
def module_stack(
    tmp_path_factory: pytest.TempPathFactory, file_name: str, source: str, cluster: str
) -> Iterator[Stack]:
    """`podtask dev` serving one task module, `source` saved as `file_name` in a project
    folder of its own (the module `stack.dev.modules[0]`, which a test may save over)."""
    project = tmp_path_factory.mktemp("project")
    module = project / file_name
    module.write_text(source)
    dev = DevProcess(
        [str(module)],
        project / ".podtask",
        cwd=project,
        cluster=cluster,
        start_timeout=start_timeout(cluster),
    ).start()
    try:
        yield Stack(dev)
    finally:
        dev.stop()


@pytest.fixture(scope="package", params=CLUSTERS)
def cluster_kind(request: pytest.FixtureRequest) -> str:
    """`podtask dev --cluster` of the stack: the embedded cluster, then the real one."""
    return str(request.param)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory, cluster_kind: str) -> Iterator[Stack]:
    dev = start_stack(
        tmp_path_factory.mktemp("dev") / ".podtask",
        str(TASK_MODULES / "misbehaving.py"),
        cluster=cluster_kind,
    )
    try:
        yield Stack(dev)
    finally:
        dev.stop()
