"""A real cluster for the cluster-level suites: the real control plane and the node agent on
it, the agent a process of its own, as `podtask dev --cluster real` runs them.

Unlike the session's bare `real_control_plane`, pods run here: the node agent registers this
machine as the Node `podtask-local` and runs the pods the scheduler binds to it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from kubernetes import client, config

from podtask_devcluster.control_plane import ControlPlane

NODE_NAME = "podtask-local"
NODE_READY_SECONDS = 60
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class RealCluster:
    def __init__(
        self,
        state: Path,
        workdir: Path,
        *,
        node_env: Mapping[str, str] | None = None,
        admission_plugins: Sequence[str] = (),
        component_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.state = state
        self.workdir = workdir
        self.node_env = dict(node_env or {})
        self.plane = ControlPlane(
            state / "kube", admission_plugins=admission_plugins, component_args=component_args
        )
        self.agent: subprocess.Popen[bytes] | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self.plane.kubeconfig

    def start(self) -> RealCluster:
        self.plane.start()
        self.start_node_agent()
        return self

    def start_node_agent(self) -> None:
        cert, key = self.plane.node_serving_cert(NODE_NAME)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PODTASK_", "KUBE"))}
        log = (self.state / "node-agent.log").open("ab")
        self.agent = subprocess.Popen(
            [
                *(sys.executable, "-m", "podtask_devcluster.node_agent"),
                *("--kubeconfig", str(self.plane.node_kubeconfig(NODE_NAME))),
                *("--serving-cert", str(cert), "--serving-key", str(key)),
                *("--client-ca", str(self.plane.ca_file), "--node-name", NODE_NAME),
                *("--state-dir", str(self.state / "node"), "--workdir", str(self.workdir)),
            ],
            env={**base, **self.node_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_node_ready()

    def stop_node_agent(self, sig: int = signal.SIGTERM) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(sig)
            try:
                self.agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait(timeout=10)
        self.agent = None

    def node_agent_log(self) -> str:
        path = self.state / "node-agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_node_ready(self) -> None:
        api = config.new_client_from_config(config_file=str(self.plane.kubeconfig))
        nodes = client.CoreV1Api(api)
        deadline = time.monotonic() + NODE_READY_SECONDS
        try:
            while time.monotonic() < deadline:
                assert self.agent is not None
                if self.agent.poll() is not None:
                    raise RuntimeError(f"the node agent exited:\n{self.node_agent_log()[-3000:]}")
                try:
                    conditions = nodes.read_node(NODE_NAME).status.conditions or []
                except client.ApiException:
                    conditions = []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    return
                time.sleep(0.2)
            raise RuntimeError(f"the node never became Ready:\n{self.node_agent_log()[-3000:]}")
        finally:
            api.close()

    def stop(self) -> None:
        self.stop_node_agent()
        self.plane.stop()

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
