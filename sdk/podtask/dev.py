"""`podtask dev`: the embedded cluster, the API and the operator, on this machine, in one command.

Each component runs as its own process (the same code that runs in a real
cluster; only the cluster differs). This module only composes them: it starts
them in order, registers the task modules' manifest (`register`: a `Task` per task, a
`TaskQueue` per queue, by the rules of `podtask.registration`), stores the dev API key's
digest in the keys' Secret, prints where everything is, and stops them in reverse order on
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from podtask import registration
from podtask.crds import custom_resource_definitions
from podtask.manifest import Manifest, load_manifest

DEV_IMAGE = "podtask-dev"
PR_SET_PDEATHSIG = 1
NAMESPACE = "default"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DevSecrets:
    """Kept in the state dir so the API key and runner tokens survive a restart."""

    api_key: str
    runner_token_secret: str

    @classmethod
    def load_or_create(cls, state_dir: Path) -> DevSecrets:
        path = state_dir / "dev-secrets.json"
        if path.exists():
            raw = json.loads(path.read_text())
            return cls(api_key=raw["apiKey"], runner_token_secret=raw["runnerTokenSecret"])
        created = cls(
            api_key="pt_dev_" + secrets.token_urlsafe(24),
            runner_token_secret=secrets.token_urlsafe(32),
        )
        path.write_text(
            json.dumps(
                {"apiKey": created.api_key, "runnerTokenSecret": created.runner_token_secret}
            )
        )
        path.chmod(0o600)
        return created


def dev_version(module_ref: str) -> str:
    """A version that changes whenever the module's source does."""
    source = Path(module_ref)
    digest = hashlib.sha256(source.read_bytes() if source.is_file() else module_ref.encode())
    return "dev-" + digest.hexdigest()[:12]


def task_resources(manifest: Manifest, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The `Task` objects for every task in the manifest, versioned by their source."""
    return registration.task_resources(
        manifest, namespace, image=DEV_IMAGE, version_of=lambda task: dev_version(task.module)
    )


def _wait_ready(url: str, process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise SystemExit(f"podtask dev: the {name} exited during start-up:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"podtask dev: the {name} did not become ready; see {log}")


def _install_crds(kube: httpx.Client) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for crd in custom_resource_definitions():
        existing = kube.get(f"{path}/{crd['metadata']['name']}")
        if existing.status_code == 200:
            crd["metadata"]["resourceVersion"] = existing.json()["metadata"]["resourceVersion"]
            kube.put(f"{path}/{crd['metadata']['name']}", json=crd).raise_for_status()
        else:
            kube.post(path, json=crd).raise_for_status()


def _embedded_client(cluster_url: str) -> Any:
    """A Kubernetes client for the embedded cluster (which asks for no credentials)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = cluster_url
    return client.ApiClient(configuration)


def register(cluster_url: str, manifest: Manifest, namespace: str = NAMESPACE) -> None:
    """Install the CRDs, then the manifest's `Task` and `TaskQueue` objects in `namespace`."""
    with httpx.Client(base_url=cluster_url, timeout=30) as kube:
        _install_crds(kube)
    with _embedded_client(cluster_url) as api_client:
        registration.register_manifest(
            api_client, namespace, task_resources(manifest, namespace), manifest.queues
        )


DEV_KEY_NAME = "podtask-dev"


def store_dev_key(cluster_url: str, api_key: str, namespace: str = NAMESPACE) -> None:
    """Keep the dev key's digest, as a write key, in the API keys' Secret of `namespace`.

    The API reads its keys there, as in a real cluster; `podtask keys create` adds more.
    """
    from podtask.api_keys import ApiKeySecret, api_key_digest, with_dev_key

    digest = api_key_digest(api_key)
    with _embedded_client(cluster_url) as api_client:
        ApiKeySecret(api_client, namespace).change(
            lambda keys: with_dev_key(keys, DEV_KEY_NAME, digest)
        )


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it if `podtask dev` itself dies.

    Without it a `podtask dev` killed with SIGKILL would leave the parts running.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class DevStack:
    """The three processes of `podtask dev`, started in order and stopped in reverse."""

    def __init__(self, state_dir: Path, api_port: int, cluster_port: int) -> None:
        self.state_dir = state_dir.resolve()
        self.api_port = api_port or free_port()
        self.cluster_port = cluster_port or free_port()
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[TextIO] = []

    @property
    def cluster_url(self) -> str:
        return f"http://127.0.0.1:{self.cluster_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.state_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("a")
        self._logs.append(log)
        # A session of its own: Ctrl-C reaches only us, and we stop the parts in order.
        process = subprocess.Popen(
            [sys.executable, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.processes.append((name, process))
        return process

    def start(self, module_refs: Sequence[str]) -> DevSecrets:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        manifest = load_manifest(module_refs)
        dev_secrets = DevSecrets.load_or_create(self.state_dir)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
        cluster = self._spawn(
            "cluster",
            [
                "-m",
                "podtask_devcluster",
                "--state-dir",
                str(self.state_dir),
                "--port",
                str(self.cluster_port),
                "--workdir",
                os.getcwd(),
            ],
            base_env,
        )
        _wait_ready(
            f"{self.cluster_url}/readyz",
            cluster,
            "embedded cluster",
            self.state_dir / "logs" / "cluster.log",
        )
        register(self.cluster_url, manifest)
        store_dev_key(self.cluster_url, dev_secrets.api_key)
        shared = {
            **base_env,
            "KUBECONFIG": str(self.kubeconfig),
            "PODTASK_NAMESPACE": NAMESPACE,
            "PODTASK_RUNNER_TOKEN_SECRET": dev_secrets.runner_token_secret,
        }
        # The API finds the dev key in the keys' Secret (`store_dev_key`), not in its env.
        api = self._spawn(
            "api",
            ["-m", "podtask_api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            {**shared, "PODTASK_DEV_MODE": "true"},
        )
        _wait_ready(f"{self.api_url}/healthz", api, "API", self.state_dir / "logs" / "api.log")
        self._spawn(
            "operator",
            ["-m", "podtask_operator"],
            # One operator on one machine: no Lease to wait for after a crash.
            {**shared, "PODTASK_API_URL": self.api_url, "PODTASK_LEADER_ELECTION": "false"},
        )
        return dev_secrets

    def failed(self) -> str | None:
        for name, process in self.processes:
            if process.poll() is not None:
                return f"the {name} exited with code {process.returncode}"
        return None

    def stop(self) -> None:
        # A second Ctrl-C must not cut the teardown short and leave parts running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_dev(module_refs: Sequence[str], state_dir: Path, api_port: int, cluster_port: int) -> int:
    stack = DevStack(state_dir, api_port, cluster_port)
    with _stop_on_signals():
        try:
            dev_secrets = stack.start(module_refs)
            print(f"API: {stack.api_url}")
            print(f"API key: {dev_secrets.api_key}")
            print(f"Kubeconfig: {stack.kubeconfig}")
            print(f"Logs: {stack.state_dir / 'logs'}")
            print("Ready. Press Ctrl-C to stop.", flush=True)
            while (problem := stack.failed()) is None:
                time.sleep(0.5)
            print(f"podtask dev: {problem}; stopping", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("Stopping…", flush=True)
            return 0
        finally:
            stack.stop()
