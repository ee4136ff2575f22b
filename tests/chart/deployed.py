"""Running a rendered Deployment's container as a local process, the way its pod would run.

There is no container runtime here, so the container's command, args and environment are
taken from the rendered Deployment and run in this virtualenv (the control-plane image is
this package installed): `python` is this interpreter, each `env` entry is set as the
kubelet would set it (`secretKeyRef` resolved from the rendered Secret), and the Kubernetes
credentials are a kubeconfig for the ServiceAccount: on the embedded cluster its RBAC proxy,
on a real one a token of the ServiceAccount (TokenRequest), as the pod would get mounted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from podtask_devcluster.cluster import kubeconfig_text
from tests.chart.chart import Rendered


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per pod"
    return dict(containers[0])


def container_environment(container: dict[str, Any], rendered: Rendered) -> dict[str, str]:
    """The container's `env`, as the kubelet resolves it from the rendered objects."""
    env: dict[str, str] = {}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        env[entry["name"]] = rendered.secret_value(ref["name"], ref["key"])
    return env


def container_argv(container: dict[str, Any]) -> list[str]:
    argv = [*container.get("command", []), *container.get("args", [])]
    # The image's python is this virtualenv's: the package is installed in both.
    assert argv[0] == "python", argv
    return [sys.executable, *argv[1:]]


def probe_url(container: dict[str, Any], probe: str) -> str:
    """The URL the kubelet's httpGet probe calls, on this machine."""
    check = container[probe]["httpGet"]
    port = check["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    return f"http://127.0.0.1:{port}{check['path']}"


class DeployedProcess:
    """One replica of a rendered Deployment, as a process talking to `kube_url`."""

    def __init__(
        self, deployment: dict[str, Any], rendered: Rendered, kube: str | Path, state: Path
    ) -> None:
        """`kube`: the URL of a cluster that asks for no credentials (the RBAC proxy), or a
        kubeconfig (the ServiceAccount's token on a real cluster)."""
        self.name = deployment["metadata"]["name"]
        self.container = container_of(deployment)
        self.argv = container_argv(self.container)
        self.env = container_environment(self.container, rendered)
        self.state = state
        if isinstance(kube, Path):
            self.kubeconfig = kube
        else:
            self.kubeconfig = state / f"{self.name}.kubeconfig"
            self.kubeconfig.write_text(kubeconfig_text(kube))
        self.log = state / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DeployedProcess:
        # Nothing of this test process's own configuration leaks in: only what the pod gets.
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PODTASK_", "KUBERNETES_", "KUBECONFIG"))
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env={**base, **self.env, "KUBECONFIG": str(self.kubeconfig)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def probe(self, probe: str) -> int | None:
        """The status code of the container's probe, or None when nothing answers."""
        try:
            return httpx.get(probe_url(self.container, probe), timeout=2).status_code
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(
            lambda: self.probe("readinessProbe") == 200,
            timeout,
            lambda: (
                f"{self.name} never became ready:\n{self.output()[-4000:]}"
                + "".join(port_holders(p["containerPort"]) for p in self.container["ports"])
            ),
        )
        assert self.process is not None and self.process.poll() is None


def port_holders(port: int) -> str:
    """Who else has `port` as a local port: the sockets and their processes, if any."""
    found = ""
    for c in psutil.net_connections(kind="tcp"):
        if not c.laddr or c.laddr.port != port:
            continue
        try:
            command = " ".join(psutil.Process(c.pid).cmdline())[:300] if c.pid else "?"
        except psutil.Error:
            command = "(exited)"
        found += f"\n{port} {c.status} to {c.raddr} pid {c.pid}: {command}"
    return found


def wait_until(
    check: Callable[[], Any], timeout: float, describe: Callable[[], str], interval: float = 0.1
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(describe())
        time.sleep(interval)
