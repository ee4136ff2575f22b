"""The dev stack composed part by part, for tests that need to reach inside it.

Unlike `podtask dev`, the cluster is driven from the test's own process, so a test can
watch every pod creation as it happens, and the API and the operator are processes of
their own that a test can SIGKILL and start again. As its Deployment would, the stack
starts the operator again when it exits on losing its Lease (crash-only: a leader that cannot
renew in time, say on a loaded machine, exits with `EXIT_LEADERSHIP_LOST`); any other exit
fails the test's next wait at once (`assert_running`).

Two clusters: the embedded one runs in the test's process and reports each creation from
inside it, with its store as of that create; the real control plane (`real_stack`) runs a
node agent a test can stop (a node lost) and reports each creation from a watch, whose
view at that event is the namespace's pods as of that create.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from podtask._authoring.manifest import build_manifest
from podtask._authoring.modules import load_tasks
from podtask._cli.dev import free_port, register
from podtask._cli.supervision import describe_exit
from podtask_devcluster import EmbeddedCluster
from podtask_operator.__main__ import EXIT_LEADERSHIP_LOST
from tests.e2e.conftest import FINAL, wait_until
from tests.e2e.real_stack import WatchedRealCluster

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PodCreation:
    """One pod creation, and what the cluster held at that moment."""

    name: str
    run: str
    queue: str
    key: str
    active_in_bucket: int
    active_of_key: dict[str, int]


def _active(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class ComponentExited(RuntimeError):
    """A process of the stack ended while a test waited on it."""


class ComposedStack:
    """`cluster_kind`: "embedded" or "real"; `node_env` (the node agent's environment, such
    as `PODTASK_NODE_IMAGES`) and `component_args` (the control plane's extra flags) are for
    the real one."""

    def __init__(
        self,
        state: Path,
        modules: Sequence[str],
        operator_env: dict[str, str] | None = None,
        *,
        cluster_kind: str = "embedded",
        node_env: dict[str, str] | None = None,
        component_args: dict[str, list[str]] | None = None,
    ) -> None:
        self.state = state
        self.modules = [str(m) for m in modules]
        self.operator_env = operator_env or {}
        self.cluster_kind = cluster_kind
        self.creations: list[PodCreation] = []
        self._lock = threading.Lock()
        self.cluster: EmbeddedCluster | WatchedRealCluster
        if cluster_kind == "embedded":
            self.cluster = EmbeddedCluster(state / "cluster", port=0, workdir=ROOT)
        elif cluster_kind == "real":
            self.cluster = WatchedRealCluster(
                state / "real", ROOT, node_env=node_env, component_args=component_args
            )
        else:
            raise ValueError(f"unknown cluster kind {cluster_kind!r}")
        self.api_key = "pt_test_" + secrets.token_urlsafe(16)
        self.runner_secret = secrets.token_urlsafe(32)
        self.api_port = free_port()
        self.api: subprocess.Popen[bytes] | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        # More operator replicas (`start_replica`), by name: each stands by for the Lease.
        self.replicas: dict[str, subprocess.Popen[bytes]] = {}
        # The exit codes of the operator's restarts after a lost Lease, as a Deployment's
        # restart count.
        self.operator_restarts: list[int] = []
        self._operator_lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    # --- parts ----------------------------------------------------------------------

    @property
    def embedded(self) -> EmbeddedCluster:
        """The embedded cluster, for a test that reaches into it (embedded-only tests)."""
        assert isinstance(self.cluster, EmbeddedCluster), "an embedded-only test"
        return self.cluster

    @property
    def real(self) -> WatchedRealCluster:
        assert isinstance(self.cluster, WatchedRealCluster), "a real-cluster-only test"
        return self.cluster

    def __enter__(self) -> ComposedStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> ComposedStack:
        # A stack that fails to start (a deadline missed on a loaded machine) stops what it
        # started: `with` calls no __exit__ then, and a fixture's error leaves no teardown.
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> ComposedStack:
        manifest = build_manifest(load_tasks(self.modules))
        if isinstance(self.cluster, EmbeddedCluster):
            cluster = self.cluster
            cluster.start()

            def observe(obj: dict[str, Any]) -> None:
                if obj.get("kind") == "Pod":
                    self._observe(obj, cluster.objects("pods", namespace="default"))

            cluster.add_create_observer(observe)
            register(cluster.url, manifest)
        else:
            self.cluster.start()
            self.cluster.add_create_observer(self._observe)
            register(self.cluster.kubeconfig_path, manifest)
        self.start_api()
        self.start_operator()
        return self

    def start_api(self) -> None:
        self.api = self._spawn(
            "api",
            ["-m", "podtask_api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            {"PODTASK_API_KEY_HASHES": hashlib.sha256(self.api_key.encode()).hexdigest()},
        )
        # Generous: on a loaded machine (`make test`'s workers starting stacks at once) the
        # API's imports alone take a while.
        wait_until(self._api_ready, timeout=180)

    def kill_api(self) -> None:
        assert self.api is not None
        self.api.send_signal(signal.SIGKILL)
        self.api.wait(timeout=30)

    def start_operator(self) -> None:
        with self._operator_lock:
            self._spawn_operator()
        if self._supervisor is None:
            self._supervisor = threading.Thread(
                target=self._supervise_operator, name="operator-restarts", daemon=True
            )
            self._supervisor.start()

    def _supervise_operator(self) -> None:
        while not self._stopping.wait(0.5):
            with self._operator_lock:
                if self.operator is not None and self.operator.poll() == EXIT_LEADERSHIP_LOST:
                    self.operator_restarts.append(EXIT_LEADERSHIP_LOST)
                    self._spawn_operator()

    def _spawn_operator(self) -> None:
        self.operator = self._operator_process("operator")

    def _operator_process(
        self, name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        return self._spawn(
            name,
            ["-m", "podtask_operator"],
            {
                "PODTASK_API_URL": self.api_url,
                "PODTASK_LEASE_DURATION_SECONDS": "4",
                "PODTASK_LEASE_RENEW_SECONDS": "1",
                **self.operator_env,
                **(env or {}),
            },
        )

    def start_replica(self, name: str, env: dict[str, str] | None = None) -> None:
        """Another operator, as a Deployment's second replica: it stands by until the Lease
        is free, then leads. Its log is `<name>.log`; the stack stops it."""
        self.replicas[name] = self._operator_process(name, env)

    def kill_operator(self) -> None:
        with self._operator_lock:
            assert self.operator is not None
            self.operator.send_signal(signal.SIGKILL)
            self.operator.wait(timeout=30)

    def stop(self) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        for process in (self.operator, *self.replicas.values(), self.api):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.cluster.stop()

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.state / f"{name}.log").open("ab")
        base = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
        return subprocess.Popen(
            [sys.executable, *args],
            env={
                **base,
                "KUBECONFIG": str(self.cluster.kubeconfig_path),
                "PODTASK_NAMESPACE": "default",
                "PODTASK_RUNNER_TOKEN_SECRET": self.runner_secret,
                **env,
            },
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log_tails(self, lines: int = 150) -> dict[str, str]:
        """The last `lines` of each process's log, for a failing test's report."""
        tails = {}
        for name in ("operator", "api"):
            path = self.state / f"{name}.log"
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                tails[f"{name}.log (last {len(text)} lines)"] = "\n".join(text)
        return tails

    def _api_ready(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    # --- observing --------------------------------------------------------------------

    def _observe(self, obj: dict[str, Any], held: list[dict[str, Any]]) -> None:
        """Record one creation; `held`: the namespace's pods at that moment, `obj` among them."""
        labels = obj["metadata"].get("labels") or {}
        queue = labels.get("podtask.dev/queue", "")
        key = labels.get("podtask.dev/concurrency-key", "")
        pods = [
            p
            for p in held
            if _active(p) and (p["metadata"].get("labels") or {}).get("podtask.dev/queue") == queue
        ]
        per_key: dict[str, int] = {}
        for pod in pods:
            k = (pod["metadata"].get("labels") or {}).get("podtask.dev/concurrency-key", "")
            per_key[k] = per_key.get(k, 0) + 1
        creation = PodCreation(
            name=obj["metadata"]["name"],
            run=labels.get("podtask.dev/run", ""),
            queue=queue,
            key=key,
            active_in_bucket=per_key.get(key, 0),
            active_of_key=per_key,
        )
        with self._lock:
            self.creations.append(creation)

    @property
    def creation_gaps(self) -> int:
        """Stretches of pod history the real cluster's watch missed (their creations were seen
        late, with a later view); the embedded cluster sees every creation as it happens."""
        return self.cluster.watch_gaps if isinstance(self.cluster, WatchedRealCluster) else 0

    def created_in(self, queue: str) -> list[PodCreation]:
        with self._lock:
            return [c for c in self.creations if c.queue == queue]

    # --- API --------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=60
        )

    def trigger(self, task: str, payload: Any = None, **options: Any) -> str:
        with self.http() as http:
            response = http.post(
                f"/api/v1/tasks/{task}/trigger", json={"payload": payload, "options": options}
            )
        assert response.status_code in (200, 201), response.text
        return str(response.json()["id"])

    def batch(self, task: str, payloads: list[Any], **options: Any) -> list[str]:
        items = [{"task": task, "payload": p, "options": options} for p in payloads]
        with self.http() as http:
            response = http.post("/api/v1/tasks/batch", json={"items": items})
        assert response.status_code == 201, response.text
        return [r["id"] for r in response.json()["runs"]]

    def run(self, run_id: str) -> dict[str, Any]:
        with self.http() as http:
            response = http.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def runs(self) -> list[dict[str, Any]]:
        return self.cluster.objects("taskruns", group="podtask.dev", namespace="default")

    def assert_running(self) -> None:
        """Fail at once, not at a wait's deadline, when the operator or the API exited by
        itself (nothing restarts them here, as a Deployment would)."""
        for name, process in (("operator", self.operator), ("api", self.api)):
            code = None if process is None else process.poll()
            if code is not None and not (name == "operator" and code == EXIT_LEADERSHIP_LOST):
                raise ComponentExited(
                    f"the {name} {describe_exit(code)}; its log: {self.state / (name + '.log')}"
                )

    def wait_for(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            self.assert_running()
            run = self.run(run_id)
            return run if run["status"] in FINAL else None

        return wait_until(ended, timeout)  # type: ignore[no-any-return]

    def wait_all(self, run_ids: Sequence[str], timeout: float = 300) -> dict[str, dict[str, Any]]:
        wanted = set(run_ids)

        def done() -> dict[str, dict[str, Any]] | None:
            self.assert_running()
            runs = {
                r["metadata"]["name"]: r for r in self.runs() if r["metadata"]["name"] in wanted
            }
            finished = {
                n: r for n, r in runs.items() if (r.get("status") or {}).get("phase") in FINAL
            }
            return finished if len(finished) == len(wanted) else None

        try:
            return wait_until(done, timeout=timeout, interval=0.5)  # type: ignore[no-any-return]
        except AssertionError:
            # Say which runs did not end, and where each stands.
            left = [r for r in self.runs() if r["metadata"]["name"] in wanted]
            stands = sorted(
                f"{r['metadata']['name']}: {(r.get('status') or {}).get('phase')} "
                f"{[c.get('reason') for c in (r.get('status') or {}).get('conditions') or []]}"
                for r in left
                if (r.get("status") or {}).get("phase") not in FINAL
            )
            raise AssertionError(
                f"{len(stands)} of {len(wanted)} runs not ended after {timeout}s: {stands}"
            ) from None

    def patch_queue(self, name: str, spec: dict[str, Any]) -> None:
        """Merge `spec` into the TaskQueue's, and return once the operator acts on it (its
        `status.observedGeneration`): from then on no run starts against the old spec."""
        patch = json.dumps({"spec": spec})
        patched = self.kubectl(
            "patch", "taskqueue", name, "--type", "merge", "-p", patch, "-o", "json"
        )
        generation = json.loads(patched)["metadata"]["generation"]

        def acted_on() -> bool:
            queue = json.loads(self.kubectl("get", "taskqueue", name, "-o", "json"))
            return int((queue.get("status") or {}).get("observedGeneration") or 0) >= generation

        wait_until(acted_on)

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        done = self.kubectl_run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def kubectl_run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            env={**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )


def max_active(creations: Sequence[PodCreation], of: Callable[[PodCreation], int]) -> int:
    return max((of(c) for c in creations), default=0)
