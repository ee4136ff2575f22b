"""A real cluster for the cluster-level suites: the real control plane and the node agent on
it, the agent a process of its own, as `podtask dev --cluster real` runs them.

Unlike the session's bare `real_control_plane`, pods run here: the node agent registers this
machine as the Node `podtask-local` and runs the pods the scheduler binds to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from podtask_devcluster.control_plane import ControlPlane, die_with_parent

NODE_NAME = "podtask-local"
NODE_READY_SECONDS = 180


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
        self.control_plane = ControlPlane(
            state / "kube", admission_plugins=admission_plugins, component_args=component_args
        )
        self.node_agent: subprocess.Popen[bytes] | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self.control_plane.kubeconfig

    def start(self) -> RealCluster:
        self.control_plane.start()
        try:
            self.start_node_agent()
        except BaseException:
            # `with` calls no __exit__ when __enter__ fails: stop the control plane here.
            self.stop()
            raise
        return self

    def start_node_agent(self) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PODTASK_", "KUBE"))}
        args = self.control_plane.node_agent_args(NODE_NAME, self.state / "node", self.workdir)
        with (self.state / "node-agent.log").open("ab") as log:
            self.node_agent = subprocess.Popen(
                [sys.executable, *args],
                env={**base, **self.node_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its containers die with it; it dies with the test run, whatever kills that.
                preexec_fn=die_with_parent,
            )
        self._wait_node_ready()

    def stop_node_agent(self, sig: int = signal.SIGTERM) -> None:
        """SIGKILL: the node is lost (its containers die with it, no one reports)."""
        agent, self.node_agent = self.node_agent, None
        if agent is None or agent.poll() is not None:
            return
        agent.send_signal(sig)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait(timeout=10)

    def node_condition(self, type_: str = "Ready") -> str | None:
        """The status of the node's condition `type_` (True, False, Unknown), if it has one."""
        return self.control_plane.node_condition(NODE_NAME, type_)

    def node_ready(self) -> bool:
        return self.node_condition() == "True"

    def node_agent_log(self) -> str:
        path = self.state / "node-agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _wait_node_ready(self) -> None:
        deadline = time.monotonic() + NODE_READY_SECONDS
        while not self.node_ready():
            assert self.node_agent is not None
            if self.node_agent.poll() is not None:
                raise RuntimeError(f"the node agent exited:\n{self.node_agent_log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the node never became Ready:\n{self.node_agent_log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.stop_node_agent()
        self.control_plane.stop()

    def __enter__(self) -> RealCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
