"""`ControlPlane`: a real Kubernetes control plane (etcd, kube-apiserver, kube-scheduler,
kube-controller-manager, built by `control_plane_build`) on loopback, for tests and for
`make dev CLUSTER=real`.

Everything lives in the state dir: the PKI (`pki/`), etcd's data (`etcd/`), one log per
component (`logs/<component>.log`, named with its last lines in any start failure), and the
kubeconfigs (`kubeconfig` is the admin's). Each component listens on a free loopback port,
talks TLS with client certificates from the one CA, and is authorized the way kubeadm's
cluster is: `Node,RBAC`, the default admission plugins plus `NodeRestriction`, ServiceAccount
tokens signed by the control plane's own key (each component's command line is
`control_plane_flags`'s). The processes get SIGKILL when the process that
started them dies (`PR_SET_PDEATHSIG`), so a killed pytest or `make dev` leaves nothing
running; `stop()` ends them in order, SIGTERM first.

`python -m podtask_devcluster.control_plane build` builds the binaries; `... run` starts the
control plane and prints its kubeconfig until Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import ctypes
import functools
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import yaml

from podtask_devcluster import control_plane_flags as flags
from podtask_devcluster.control_plane_build import (
    ControlPlaneBuildFailed,
    GoToolchainMissing,
    ensure_binaries,
)
from podtask_devcluster.control_plane_pki import ClusterPki, KeyPair
from podtask_devcluster.local_cluster import LocalCluster
from podtask_devcluster.ports import free_ports
from podtask_devcluster.private_files import (
    open_private_for_writing,
    private_directory,
    write_private_text,
)

__all__ = [
    "ControlPlane",
    "ControlPlaneBuildFailed",
    "ControlPlaneStartFailed",
    "GoToolchainMissing",
    "ensure_binaries",
]

START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 20.0
POLL_SECONDS = 0.2
LOG_TAIL_LINES = 20
CONTEXT_NAME = "podtask-real"
PR_SET_PDEATHSIG = 1
# The ClusterRoles the RBAC bootstrap writes; the control plane is ready once they exist.
BOOTSTRAP_CLUSTER_ROLES = ("cluster-admin", "admin", "edit", "view", "system:node")


class ControlPlaneStartFailed(RuntimeError):
    pass


@dataclass
class _Component:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log: BinaryIO | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = open_private_for_writing(self.log_path)
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop the
            # components in order.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        if self.process is not None:
            try:
                self.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def die_with_parent() -> None:
    """In a child, before exec: SIGKILL it when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ControlPlane(LocalCluster):
    """A real Kubernetes control plane with its state under `state_dir`.

    `start()` returns once kube-apiserver is ready, the scheduler and controller-manager are
    healthy, and the `default` namespace, its `default` ServiceAccount and the built-in RBAC
    roles exist. `admission_plugins` are enabled on top of the defaults and `NodeRestriction`
    (for example `OwnerReferencesPermissionEnforcement`); `component_args` adds flags per
    component (`{"kube-controller-manager": ["--node-monitor-grace-period=10s"]}`).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        admission_plugins: Sequence[str] = (),
        component_args: Mapping[str, Sequence[str]] | None = None,
        start_timeout: float = START_TIMEOUT_SECONDS,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.admission_plugins = tuple(admission_plugins)
        self.component_args = {name: list(args) for name, args in (component_args or {}).items()}
        self.start_timeout = start_timeout
        self.pki = ClusterPki(self.state_dir / "pki")
        self.log_dir = self.state_dir / "logs"
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.version = ""
        self._port = 0
        self._components: list[_Component] = []
        # PR_SET_PDEATHSIG fires when the *thread* that forked a child ends: the components are
        # forked by this one thread, which lives until stop(), whichever thread calls start().
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    # ------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("the control plane is not started")
        return f"https://127.0.0.1:{self._port}"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca.cert

    @property
    def running(self) -> bool:
        return bool(self._components) and all(c.exit_code is None for c in self._components)

    def exited_components(self) -> list[str]:
        """The components that ended on their own, each with its exit code and log."""
        return [
            f"{c.name} exited with {c.exit_code} (log: {c.log_path})"
            for c in self._components
            if c.exit_code is not None
        ]

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def start(self) -> ControlPlane:
        if self._components:
            return self
        binaries = ensure_binaries()
        private_directory(self.state_dir)
        private_directory(self.log_dir)
        self.pki.create()
        try:
            self._start(binaries)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM each component, dependents first; SIGKILL whatever is left after a while."""
        if self._client is not None:
            self._client.close()
            self._client = None
        components, self._components = self._components, []
        spawner, self._spawner = self._spawner, None
        by_name = {c.name: c for c in components}
        for group in (
            ("kube-scheduler", "kube-controller-manager"),
            ("kube-apiserver",),
            ("etcd",),
        ):
            stopping = [by_name[name] for name in group if name in by_name]
            for component in stopping:
                component.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            for component in stopping:
                component.wait_or_kill(deadline)
        if spawner is not None:
            spawner.shutdown(wait=False)

    def node_credentials(self, node_name: str) -> tuple[Path, Path]:
        """A node agent's client certificate and key (user `system:node:<name>`, group
        `system:nodes`)."""
        pair = self.pki.node_client(node_name)
        return pair.cert, pair.key

    def node_serving_cert(self, node_name: str) -> tuple[Path, Path]:
        """A node agent's serving certificate and key (loopback and `node_name`), which
        kube-apiserver verifies when it proxies logs."""
        pair = self.pki.node_serving(node_name)
        return pair.cert, pair.key

    def node_kubeconfig(self, node_name: str) -> Path:
        """A kubeconfig with the node's client certificate."""
        path = self.state_dir / "nodes" / f"{node_name}.kubeconfig"
        private_directory(path.parent)
        self._write_kubeconfig(path, _cert_user(self.pki.node_client(node_name)))
        return path

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token of ServiceAccount `namespace/name` (TokenRequest), bound to nothing else;
        `seconds` is at least 600, as the apiserver requires."""
        response = self.client().post(
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            json={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds},
            },
        )
        if response.status_code != 201:
            raise RuntimeError(
                f"TokenRequest for {namespace}/{name}: {response.status_code} {response.text}"
            )
        token: str = response.json()["status"]["token"]
        return token

    def kubeconfig_for_token(self, token: str, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig at `path` that authenticates with a bearer token."""
        self._write_kubeconfig(Path(path), {"token": token}, namespace)
        return Path(path)

    def node_agent_args(
        self,
        node_name: str,
        state_dir: Path,
        workdir: Path,
        *,
        runtime: str | None = None,
        simulated_seconds: float | None = None,
    ) -> list[str]:
        """The arguments of `python` that run the node agent for Node `node_name` on this
        control plane: its own client certificate, serving certificate and state; `runtime`
        (processes, containers, simulated) or, without it, PODTASK_NODE_RUNTIME's choice, and
        how long a simulated container runs."""
        cert, key = self.node_serving_cert(node_name)
        chosen = ["--runtime", runtime] if runtime is not None else []
        if simulated_seconds is not None:
            chosen += ["--simulated-seconds", str(simulated_seconds)]
        return [
            *("-m", "podtask_devcluster.node_agent"),
            *("--kubeconfig", str(self.node_kubeconfig(node_name))),
            *("--serving-cert", str(cert), "--serving-key", str(key)),
            *("--client-ca", str(self.ca_file), "--node-name", node_name),
            *("--state-dir", str(state_dir), "--workdir", str(workdir)),
            *chosen,
        ]

    def node_condition(self, node_name: str, type_: str = "Ready") -> str | None:
        """The status (True, False, Unknown) of the Node's condition `type_`, None while the
        Node or the condition does not exist."""
        response = self.client().get(f"/api/v1/nodes/{node_name}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        for condition in (response.json().get("status") or {}).get("conditions") or []:
            if condition.get("type") == type_:
                return str(condition.get("status"))
        return None

    def client(self) -> httpx.Client:
        """An HTTP client authenticated as the admin (system:masters)."""
        if self._client is None:
            self._client = self._http_client(self.pki.pair("admin"))
        return self._client

    # ------------------------------------------------------------ starting

    def _start(self, binaries: Path) -> None:
        etcd_port, peer_port, self._port, scheduler_port, manager_port = free_ports(5)
        self._write_kubeconfig(self.kubeconfig, _cert_user(self.pki.pair("admin")))
        scheduler_kubeconfig = self.state_dir / "kube-scheduler.kubeconfig"
        manager_kubeconfig = self.state_dir / "kube-controller-manager.kubeconfig"
        self._write_kubeconfig(scheduler_kubeconfig, _cert_user(self.pki.pair("scheduler")))
        self._write_kubeconfig(manager_kubeconfig, _cert_user(self.pki.pair("controller-manager")))
        deadline = time.monotonic() + self.start_timeout

        etcd_args = flags.etcd(self.pki, self.state_dir, etcd_port, peer_port)
        etcd = self._launch("etcd", binaries, etcd_args)
        etcd_client = self._http_client(self.pki.pair("apiserver-etcd-client"))
        try:
            self._wait(
                "etcd to be healthy",
                lambda: _ok(etcd_client, f"https://127.0.0.1:{etcd_port}/health"),
                deadline,
            )
        finally:
            etcd_client.close()
        del etcd

        self._launch(
            "kube-apiserver",
            binaries,
            flags.apiserver(self.pki, self._port, etcd_port, self.admission_plugins),
        )
        self._wait("kube-apiserver /readyz", lambda: _ok(self.client(), "/readyz"), deadline)
        self.version = self.client().get("/version").json()["gitVersion"]

        self._launch(
            "kube-scheduler",
            binaries,
            flags.scheduler(self.state_dir, scheduler_kubeconfig, scheduler_port),
        )
        self._launch(
            "kube-controller-manager",
            binaries,
            flags.controller_manager(self.pki, self.state_dir, manager_kubeconfig, manager_port),
        )
        insecure = httpx.Client(verify=False, timeout=5)
        try:
            for name, port in (
                ("kube-scheduler", scheduler_port),
                ("kube-controller-manager", manager_port),
            ):
                url = f"https://127.0.0.1:{port}/healthz"
                self._wait(f"{name} /healthz", functools.partial(_ok, insecure, url), deadline)
        finally:
            insecure.close()
        for role in BOOTSTRAP_CLUSTER_ROLES:
            path = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}"
            self._wait(f"ClusterRole {role}", functools.partial(_ok, self.client(), path), deadline)
        self._wait(
            "the default namespace",
            lambda: _ok(self.client(), "/api/v1/namespaces/default"),
            deadline,
        )
        # Made by the controller-manager: pods are refused until their ServiceAccount exists.
        self._wait(
            "the default ServiceAccount",
            lambda: _ok(self.client(), "/api/v1/namespaces/default/serviceaccounts/default"),
            deadline,
        )

    def _launch(self, name: str, binaries: Path, args: list[str]) -> _Component:
        component = _Component(
            name,
            [str(binaries / name), *args, *self.component_args.get(name, ())],
            self.log_path(name),
        )
        self._components.append(component)
        if self._spawner is None:
            self._spawner = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="control-plane-spawner"
            )
        self._spawner.submit(component.start).result()
        return component

    def _wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        while True:
            for component in self._components:
                if component.exit_code is not None:
                    raise ControlPlaneStartFailed(
                        f"{component.name} exited with {component.exit_code} while waiting for "
                        f"{what}; its log {component.log_path} ends with:\n{component.tail()}"
                    )
            if check():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {c.log_path}\n{c.tail(LOG_TAIL_LINES // 2)}" for c in self._components
                )
                raise ControlPlaneStartFailed(
                    f"timed out after {self.start_timeout:.0f}s waiting for {what}; logs:\n{logs}"
                )
            time.sleep(POLL_SECONDS)

    # ------------------------------------------------------------ files and clients

    def _write_kubeconfig(
        self, path: Path, user: dict[str, str], namespace: str = "default"
    ) -> None:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT_NAME,
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.pki.ca.cert),
                    },
                }
            ],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {
                        "cluster": CONTEXT_NAME,
                        "user": CONTEXT_NAME,
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": CONTEXT_NAME,
            "users": [{"name": CONTEXT_NAME, "user": user}],
            "preferences": {},
        }
        write_private_text(path, yaml.safe_dump(config, sort_keys=False))

    def _http_client(self, identity: KeyPair) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(identity.cert), str(identity.key))
        base = f"https://127.0.0.1:{self._port}" if self._port else ""
        return httpx.Client(base_url=base, verify=context, timeout=10)


def _cert_user(pair: KeyPair) -> dict[str, str]:
    return {"client-certificate-data": _b64(pair.cert), "client-key-data": _b64(pair.key)}


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def _ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podtask_devcluster.control_plane",
        description="Build or run the real Kubernetes control plane (development only).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("build", help="build the binaries into the cache, if it lacks them")
    run = commands.add_parser("run", help="start the control plane; Ctrl-C stops it")
    run.add_argument("--state-dir", type=Path, default=None, help="default: a temporary folder")
    run.add_argument(
        "--admission-plugin",
        action="append",
        default=[],
        help="enable this admission plugin too (repeatable)",
    )
    options = parser.parse_args(argv)
    try:
        if options.command == "build":
            print(f"Binaries: {ensure_binaries()}", flush=True)
            return 0
        return _run(options.state_dir, options.admission_plugin)
    except (GoToolchainMissing, ControlPlaneBuildFailed, ControlPlaneStartFailed) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(state_dir: Path | None, admission_plugins: list[str]) -> int:
    done = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with contextlib.ExitStack() as stack:
        if state_dir is None:
            state_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="podtask-kube-"))
            )
        control_plane = stack.enter_context(
            ControlPlane(state_dir, admission_plugins=admission_plugins)
        )
        print(f"Kubernetes: {control_plane.version} at {control_plane.url}", flush=True)
        print(f"Kubeconfig: {control_plane.kubeconfig}", flush=True)
        print(f"  export KUBECONFIG={control_plane.kubeconfig.resolve()}", flush=True)
        print(f"Logs: {control_plane.log_dir}", flush=True)
        while not done.wait(0.5):
            if not control_plane.running:
                print(
                    "the control plane stopped unexpectedly: "
                    + "; ".join(control_plane.exited_components()),
                    file=sys.stderr,
                )
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
