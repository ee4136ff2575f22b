"""`podtask dev`: the embedded cluster, the API and the operator, on this machine, in one command.

Each component runs as its own process (the same code that runs in a real
cluster; only the cluster differs). This module only composes them: it starts
them in order, registers the task modules' manifest (`register`: a `Task` per task, a
`TaskQueue` per queue), prints where everything is, and stops them in reverse order on
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

from podtask.crds import custom_resource_definitions
from podtask.manifest import Manifest, load_manifest
from podtask.resources import API_VERSION, GROUP, VERSION, QueueRef

DEV_IMAGE = "podtask-dev"
PR_SET_PDEATHSIG = 1
NAMESPACE = "default"

# The concurrency limit a TaskQueue was last given from its declaration (JSON: a number or
# null). A limit changed live differs from it and survives a restart; a new declaration wins.
DECLARED_LIMIT_ANNOTATION = f"{GROUP}/declared-concurrency-limit"


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
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Task",
            "metadata": {"name": task.id, "namespace": namespace},
            "spec": task.task_spec(
                image=DEV_IMAGE, default_version=dev_version(task.module)
            ).to_wire(),
        }
        for task in manifest.tasks
    ]


def declared_limit(queue: QueueRef) -> str:
    """The value of `DECLARED_LIMIT_ANNOTATION` for `queue`'s declaration."""
    return json.dumps(queue.concurrency_limit)


def queue_resource(queue: QueueRef, namespace: str = NAMESPACE) -> dict[str, Any]:
    """The `TaskQueue` object for a declared queue, as first created (not paused)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {
            "name": queue.name,
            "namespace": namespace,
            "annotations": {DECLARED_LIMIT_ANNOTATION: declared_limit(queue)},
        },
        # An undeclared limit is null: the operator applies its default.
        "spec": {"concurrencyLimit": queue.concurrency_limit, "paused": False},
    }


def queue_patch(existing: dict[str, Any], queue: QueueRef) -> dict[str, Any] | None:
    """The merge patch that brings an existing `TaskQueue` to `queue`'s declaration, or None.

    None when the declaration is the one last applied, so that a limit changed live
    (`kubectl patch taskqueue`) stays; `paused` is never touched. A queue without the
    annotation was not made from a declaration, which then wins.
    """
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    declared = declared_limit(queue)
    if annotations.get(DECLARED_LIMIT_ANNOTATION) == declared:
        return None
    # A null limit in a merge patch removes the field, which reads as null too.
    return {
        "metadata": {"annotations": {DECLARED_LIMIT_ANNOTATION: declared}},
        "spec": {"concurrencyLimit": queue.concurrency_limit},
    }


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


_MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def _install_crds(kube: httpx.Client) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for crd in custom_resource_definitions():
        existing = kube.get(f"{path}/{crd['metadata']['name']}")
        if existing.status_code == 200:
            crd["metadata"]["resourceVersion"] = existing.json()["metadata"]["resourceVersion"]
            kube.put(f"{path}/{crd['metadata']['name']}", json=crd).raise_for_status()
        else:
            kube.post(path, json=crd).raise_for_status()


def _names(listing: httpx.Response) -> dict[str, dict[str, Any]]:
    listing.raise_for_status()
    return {item["metadata"]["name"]: item for item in listing.json().get("items", [])}


def register_tasks(kube: httpx.Client, tasks: list[dict[str, Any]], namespace: str) -> None:
    """Make the `Task` objects exactly `tasks`: a task no longer declared is not deployed."""
    tasks_path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/tasks"
    current = set(_names(kube.get(tasks_path)))
    wanted = {t["metadata"]["name"] for t in tasks}
    for stale in current - wanted:
        kube.delete(f"{tasks_path}/{stale}")
    for body in tasks:
        name = body["metadata"]["name"]
        if name in current:
            kube.patch(
                f"{tasks_path}/{name}", json={"spec": body["spec"]}, headers=_MERGE_PATCH
            ).raise_for_status()
        else:
            kube.post(tasks_path, json=body).raise_for_status()


def register_queues(kube: httpx.Client, queues: Sequence[QueueRef], namespace: str) -> None:
    """Give each declared queue its `TaskQueue`, with the declared limit (see `queue_patch`).

    Queues no longer declared stay: runs may still wait in them.
    """
    queues_path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/taskqueues"
    current = _names(kube.get(queues_path))
    for queue in queues:
        if queue.name not in current:
            kube.post(queues_path, json=queue_resource(queue, namespace)).raise_for_status()
            continue
        patch = queue_patch(current[queue.name], queue)
        if patch is not None:
            kube.patch(
                f"{queues_path}/{queue.name}", json=patch, headers=_MERGE_PATCH
            ).raise_for_status()


def register(cluster_url: str, manifest: Manifest, namespace: str = NAMESPACE) -> None:
    """Install the CRDs, then the manifest's `Task` and `TaskQueue` objects in `namespace`."""
    with httpx.Client(base_url=cluster_url, timeout=30) as kube:
        _install_crds(kube)
        register_tasks(kube, task_resources(manifest, namespace), namespace)
        register_queues(kube, manifest.queues, namespace)


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
        shared = {
            **base_env,
            "KUBECONFIG": str(self.kubeconfig),
            "PODTASK_NAMESPACE": NAMESPACE,
            "PODTASK_RUNNER_TOKEN_SECRET": dev_secrets.runner_token_secret,
        }
        api_key_hash = hashlib.sha256(dev_secrets.api_key.encode()).hexdigest()
        api = self._spawn(
            "api",
            ["-m", "podtask_api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            {**shared, "PODTASK_API_KEY_HASHES": api_key_hash, "PODTASK_DEV_MODE": "true"},
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
