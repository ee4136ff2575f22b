"""`podtask dev`: the embedded cluster, the API and the operator, on this machine, in one command.

Each component runs as its own process (the same code that runs in a real cluster; only the
cluster differs). This module only composes them: it starts them in order, checks that what
answers on each port is the part it started, registers the task modules' manifest
(`register`: a `Task` per task, a `TaskQueue` per queue, by the rules of
`podtask._control.registration`), stores the dev API key's digest in the keys' Secret, prints where
everything is, restarts a part that dies (with a backoff, saying so) while the others and the
pods keep running, and stops them in reverse order on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from podtask._authoring.manifest import Manifest
from podtask._cli.declarations import DeclarationReader, ImportFailure
from podtask._cli.dev_watch import ModuleWatch
from podtask._cli.ports import PortTaken, ensure_port_free
from podtask._cli.supervision import RestartBackoff, restart_notice
from podtask._contract.crds import custom_resource_definitions
from podtask._contract.wire import ENV_PREFIX, INSTANCE_HEADER
from podtask._control import registration

# The image of `podtask dev`'s tasks when pods run as processes: nothing is pulled or run
# from it (the command runs in this environment), it only names the dev build.
DEV_IMAGE = "podtask-dev"
PR_SET_PDEATHSIG = 1
NAMESPACE = "default"
SUPERVISE_SECONDS = 0.2
# `--cluster`: the embedded cluster (the default), or a real control plane built from source.
CLUSTERS = ("embedded", "real")
# `--runtime`: pods' commands as processes of this environment, or pods in their images, or
# simulated pods that start no process (benchmarks; never the default).
RUNTIMES = ("processes", "containers", "simulated")
# How long a simulated pod runs: passed on to the node from podtask dev's own environment.
SIMULATED_SECONDS_ENV = "PODTASK_NODE_SIMULATED_SECONDS"
# The one Node of `--cluster real`: this machine, as the node agent registers it.
NODE_NAME = "podtask-local"
NODE_READY_SECONDS = 60
# The operator lists every TaskRun and pod before it serves: a state of many runs takes a while.
OPERATOR_READY_SECONDS = 180


def free_port() -> int:
    """A free loopback port, outside the range that outgoing connections take theirs from."""
    from podtask_devcluster.ports import free_port as free_loopback_port

    return free_loopback_port()


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
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            json.dump(
                {"apiKey": created.api_key, "runnerTokenSecret": created.runner_token_secret}, file
            )
        return created


def dev_version(module_ref: str) -> str:
    """A version that changes whenever the module's source does."""
    source = Path(module_ref)
    digest = hashlib.sha256(source.read_bytes() if source.is_file() else module_ref.encode())
    return "dev-" + digest.hexdigest()[:12]


def task_resources(
    manifest: Manifest, namespace: str = NAMESPACE, image: str = DEV_IMAGE
) -> list[dict[str, Any]]:
    """The `Task` objects for every task in the manifest, versioned by their source."""
    return registration.task_resources(
        manifest, namespace, image=image, version_of=lambda task: dev_version(task.module)
    )


def _simulated_seconds(runtime: str) -> dict[str, str]:
    """The node's PODTASK_NODE_SIMULATED_SECONDS, from podtask dev's environment, when its pods
    are simulated (the parts' environments leave out every other PODTASK_ variable)."""
    seconds = os.environ.get(SIMULATED_SECONDS_ENV)
    return {SIMULATED_SECONDS_ENV: seconds} if runtime == "simulated" and seconds else {}


def unreadable_by_others(folder: Path) -> Path | None:
    """The first folder on the way to `folder` (itself included) that a user who is neither
    its owner nor in its group cannot enter or list, or None when there is none.

    Containers run as the pods' user (10001), not as the developer: the source they mount
    must be open to others, as a checkout usually is (and a private home folder is not).
    """
    resolved = folder.resolve()
    for step in [*reversed(resolved.parents), resolved]:
        needed = stat.S_IXOTH | (stat.S_IROTH if step == resolved else 0)
        if step.stat().st_mode & needed != needed:
            return step
    return None


def task_image(runtime: str) -> str:
    """The image `podtask dev` registers its tasks with. In containers they run in the runner
    image, their source mounted from this machine (`PODTASK_DEV_SOURCE_DIR`), which must
    therefore be in podman's store: `make images` builds it."""
    if runtime != "containers":
        return DEV_IMAGE
    from podtask_devcluster.image_build import RUNNER_IMAGE, image_exists
    from podtask_devcluster.podman import tools_missing_reason

    missing = tools_missing_reason(("podman", "runc"))
    if missing is not None:
        raise SystemExit(f"podtask dev --runtime containers: {missing}")
    if not image_exists(RUNNER_IMAGE):
        raise SystemExit(
            f"podtask dev --runtime containers: the runner image {RUNNER_IMAGE} is not in "
            "podman's image store; build it with `make images`"
        )
    closed = unreadable_by_others(Path.cwd())
    if closed is not None:
        raise SystemExit(
            f"podtask dev --runtime containers: the task source in {Path.cwd()} is mounted into "
            f"containers that run as another user, who cannot read {closed}; open it to others "
            f"(chmod o+rx {closed}) or work in a folder that is"
        )
    return RUNNER_IMAGE


# The embedded cluster's URL (it asks for no credentials), or a kubeconfig file.
KubeTarget = str | Path


def kube_client(target: KubeTarget) -> Any:
    """A Kubernetes client for the embedded cluster's URL, or for a kubeconfig's cluster."""
    from kubernetes import client, config

    if isinstance(target, Path):
        return config.new_client_from_config(config_file=str(target))  # type: ignore[no-untyped-call]
    configuration = client.Configuration()
    configuration.host = target
    return client.ApiClient(configuration)


CRD_ESTABLISHED_SECONDS = 60


def _install_crds(api_client: Any) -> None:
    """Create or replace podtask's CRDs, then wait until each is served (`Established`):
    a real apiserver refuses objects of a kind it does not serve yet."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    # Plain dicts in and out: the CRDs are built as JSON, not as the client's models.
    crds: Any = client.ApiextensionsV1Api(api_client)
    names = []
    for crd in custom_resource_definitions():
        name = crd["metadata"]["name"]
        names.append(name)
        try:
            existing = crds.read_custom_resource_definition(name)
        except ApiException as error:
            if error.status != 404:
                raise
            crds.create_custom_resource_definition(crd)
        else:
            crd["metadata"]["resourceVersion"] = existing.metadata.resource_version
            crds.replace_custom_resource_definition(name, crd)
    deadline = time.monotonic() + CRD_ESTABLISHED_SECONDS
    for name in names:
        while not _established(crds.read_custom_resource_definition(name)):
            if time.monotonic() > deadline:
                raise SystemExit(f"podtask dev: the CRD {name} was not established in time")
            time.sleep(0.1)


def _established(crd: Any) -> bool:
    conditions = (crd.status.conditions if crd.status else None) or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def register(
    cluster: KubeTarget,
    manifest: Manifest,
    namespace: str = NAMESPACE,
    image: str = DEV_IMAGE,
    *,
    crds: bool = True,
) -> None:
    """Install the CRDs (unless `crds` is False: a reload), then the manifest's `Task` and
    `TaskQueue` objects in `namespace`."""
    with kube_client(cluster) as api_client:
        if crds:
            _install_crds(api_client)
        registration.register_manifest(
            api_client, namespace, task_resources(manifest, namespace, image), manifest.queues
        )


DEV_KEY_NAME = "podtask-dev"


def store_dev_key(cluster: KubeTarget, api_key: str, namespace: str = NAMESPACE) -> None:
    """Keep the dev key's digest, as a write key, in the API keys' Secret of `namespace`.

    The API reads its keys there, as in a real cluster; `podtask keys create` adds more.
    """
    from podtask._control.api_keys import ApiKeySecret, api_key_digest, with_dev_key

    digest = api_key_digest(api_key)
    with kube_client(cluster) as api_client:
        ApiKeySecret(api_client, namespace).change(
            lambda keys: with_dev_key(keys, DEV_KEY_NAME, digest)
        )


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it if `podtask dev` itself dies.

    Without it a `podtask dev` killed with SIGKILL would leave the parts running. The cluster
    stops its pods when it stops; were it killed too, its container shims kill them.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def make_private(state_dir: Path) -> None:
    """Owner-only modes for the state dir and everything in it (an older version left them
    readable): it holds the database, the dev secrets, the kubeconfig and logs."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    for root, dirs, files in os.walk(state_dir):
        for name in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(path, 0o600)


@dataclass
class Part:
    """One process of the stack: how to start it, and how it has been doing."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None

    def log_tail(self) -> str:
        """The end of its log: why it stopped, for the message that says it did."""
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""


class DevStack:
    """The three processes of `podtask dev`: started in order, each restarted with a backoff
    when it dies (the others and the pods keep running), stopped in reverse order.

    A restarted cluster keeps its objects (SQLite) but not its pods' processes: like a node
    that rebooted, it reports those pods lost, and the operator retries their attempts.
    """

    def __init__(
        self,
        state_dir: Path,
        api_port: int,
        cluster_port: int,
        cluster: str = "embedded",
        runtime: str = "processes",
    ) -> None:
        self.state_dir = state_dir.resolve()
        if cluster not in CLUSTERS:
            raise SystemExit(f"podtask dev: unknown cluster {cluster!r}; choose one of {CLUSTERS}")
        if runtime not in RUNTIMES:
            raise SystemExit(f"podtask dev: unknown runtime {runtime!r}; choose one of {RUNTIMES}")
        self.runtime = runtime
        if cluster == "real" and cluster_port:
            raise SystemExit(
                "podtask dev: --cluster-port is the embedded cluster's; the real control plane "
                "chooses free ports of its own"
            )
        self.cluster = cluster
        # The real control plane (`--cluster real`), started in this process's main thread.
        self.control_plane: Any = None
        if api_port:
            ensure_port_free(api_port, "API", "--port")
        if cluster_port:
            ensure_port_free(cluster_port, "embedded cluster", "--cluster-port")
        self.api_port = api_port or free_port()
        self.cluster_port = cluster_port or free_port()
        # The operator's health endpoint and metrics (the same port again after a restart).
        self.operator_port = free_port()
        # Each health endpoint echoes it: what answers on our ports is ours, not another server.
        self.instance = secrets.token_hex(16)
        self.parts: list[Part] = []
        self._logs: dict[str, TextIO] = {}
        # Where `start` registered the task modules, with what they declared then.
        self.kube: KubeTarget = ""
        self.image = DEV_IMAGE
        self.reader: DeclarationReader | None = None
        self.watch: ModuleWatch | None = None

    @property
    def cluster_url(self) -> str:
        return f"http://127.0.0.1:{self.cluster_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def operator_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.operator_port}/metrics"

    @property
    def kubeconfig(self) -> Path:
        # The same path for both clusters: the walkthrough's `export KUBECONFIG` works on each.
        return self.state_dir / "kubeconfig"

    def _add(self, name: str, args: list[str], env: dict[str, str]) -> Part:
        part = Part(name, args, env, self.state_dir / "logs" / f"{name.lower()}.log")
        self.parts.append(part)
        self._spawn(part)
        return part

    def _spawn(self, part: Part) -> None:
        log = self._logs.get(part.name)
        if log is None:
            part.log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            log = self._logs[part.name] = part.log_path.open("a")
        # A session of its own: Ctrl-C reaches only us, and we stop the parts in order.
        part.process = subprocess.Popen(
            [sys.executable, *part.args],
            env=part.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        part.started_at = time.monotonic()
        part.restart_at = None

    def _wait_ready(self, url: str, part: Part, port: int, option: str) -> None:
        deadline = time.monotonic() + 60
        answered_by_another = False
        assert part.process is not None
        while time.monotonic() < deadline:
            if part.process.poll() is not None:
                tail = part.log_tail()
                if answered_by_another or "already in use" in tail:
                    raise PortTaken(port, part.name, option)
                raise SystemExit(f"podtask dev: the {part.name} exited during start-up:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                response = httpx.get(url, timeout=2)
                if response.status_code == 200:
                    if response.headers.get(INSTANCE_HEADER) == self.instance:
                        return
                    answered_by_another = True
            time.sleep(0.1)
        if answered_by_another:
            raise PortTaken(port, part.name, option)
        raise SystemExit(f"podtask dev: the {part.name} did not become ready; see {part.log_path}")

    def start(self, module_refs: Sequence[str]) -> DevSecrets:
        make_private(self.state_dir)
        # Read by a child process, as each reload will be (`declarations`).
        self.reader = DeclarationReader(module_refs)
        reading = self.reader.read()
        if isinstance(reading, ImportFailure):
            raise SystemExit(f"podtask dev: {reading.describe()}")
        # Watched from this reading on: a module saved while the parts start is not missed.
        self.watch = ModuleWatch(module_refs, reading, self.register_change, self.reader.read)
        image = self.image = task_image(self.runtime)
        dev_secrets = DevSecrets.load_or_create(self.state_dir)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        node_env = {**base_env, **_simulated_seconds(self.runtime)}
        kube = (
            self._start_real(node_env) if self.cluster == "real" else self._start_embedded(node_env)
        )
        self.kube = kube
        register(kube, reading.manifest, image=image)
        store_dev_key(kube, dev_secrets.api_key)
        shared = {
            **base_env,
            "KUBECONFIG": str(self.kubeconfig),
            "PODTASK_NAMESPACE": NAMESPACE,
            "PODTASK_RUNNER_TOKEN_SECRET": dev_secrets.runner_token_secret,
        }
        # The API finds the dev key in the keys' Secret (`store_dev_key`), not in its env.
        api = self._add(
            "API",
            ["-m", "podtask_api", "--host", "127.0.0.1", "--port", str(self.api_port)],
            {
                **shared,
                "PODTASK_DEV_MODE": "true",
                "PODTASK_DEV_RUNTIME": self.runtime,
                "PODTASK_INSTANCE": self.instance,
            },
        )
        self._wait_ready(f"{self.api_url}/healthz", api, self.api_port, "--port")
        operator = self._add(
            "operator",
            ["-m", "podtask_operator"],
            {
                **shared,
                "PODTASK_API_URL": self.api_url,
                # One operator on one machine: no Lease to wait for after a crash.
                "PODTASK_LEADER_ELECTION": "false",
                "PODTASK_HEALTH_HOST": "127.0.0.1",
                "PODTASK_HEALTH_PORT": str(self.operator_port),
                # The task modules were registered by absolute path from here.
                "PODTASK_DEV_SOURCE_DIR": os.getcwd(),
            },
        )
        self._wait_operator_ready(operator)
        return dev_secrets

    def _wait_operator_ready(self, operator: Part) -> None:
        """Until the operator serves (its `/readyz`): its queues rebuilt from the cluster, its
        watches starting. Before, a run triggered would wait unseen."""
        url = f"http://127.0.0.1:{self.operator_port}/readyz"
        deadline = time.monotonic() + OPERATOR_READY_SECONDS
        assert operator.process is not None
        while time.monotonic() < deadline:
            if operator.process.poll() is not None:
                raise SystemExit(
                    f"podtask dev: the operator exited during start-up:\n{operator.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"podtask dev: the operator did not become ready; see {operator.log_path}")

    def register_change(self, manifest: Manifest) -> None:
        """Register what the task modules declare after a change (the watch's doing)."""
        register(self.kube, manifest, image=self.image, crds=False)

    def _start_embedded(self, base_env: dict[str, str]) -> KubeTarget:
        cluster = self._add(
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
                "--instance",
                self.instance,
                "--runtime",
                self.runtime,
            ],
            base_env,
        )
        self._wait_ready(f"{self.cluster_url}/readyz", cluster, self.cluster_port, "--cluster-port")
        return self.cluster_url

    def _start_real(self, base_env: dict[str, str]) -> KubeTarget:
        """etcd, kube-apiserver, the scheduler and the controller-manager (built the first
        time), then the node agent, which registers this machine as the one Node."""
        from podtask_devcluster.control_plane import ControlPlane, ensure_binaries

        print(
            "podtask dev: starting the real control plane "
            "(built from source the first time: minutes)…",
            flush=True,
        )
        try:
            ensure_binaries()
            self.control_plane = ControlPlane(self.state_dir / "kube").start()
        except (RuntimeError, OSError) as error:
            raise SystemExit(f"podtask dev: {error}") from None
        plane = self.control_plane
        agent = self._add(
            "node-agent",
            plane.node_agent_args(
                NODE_NAME, self.state_dir / "node", Path.cwd(), runtime=self.runtime
            ),
            base_env,
        )
        self._wait_node_ready(agent)
        # The admin's kubeconfig (certificates inline), where the embedded cluster keeps its own.
        self.kubeconfig.unlink(missing_ok=True)
        fd = os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as copy:
            copy.write(Path(plane.kubeconfig).read_text())
        return self.kubeconfig

    def _wait_node_ready(self, agent: Part) -> None:
        deadline = time.monotonic() + NODE_READY_SECONDS
        while time.monotonic() < deadline:
            assert agent.process is not None
            if agent.process.poll() is not None:
                raise SystemExit(
                    f"podtask dev: the node agent exited during start-up:\n{agent.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if self.control_plane.node_condition(NODE_NAME) == "True":
                    return
            time.sleep(0.2)
        raise SystemExit(f"podtask dev: the node agent did not become ready; see {agent.log_path}")

    def supervise(self, now: float) -> list[str]:
        """Restart the parts that died, each after its backoff; what happened, in words."""
        notices: list[str] = []
        if self.control_plane is not None and not self.control_plane.running:
            # Its components hold the cluster's state: no restart behind the user's back.
            raise SystemExit(
                "podtask dev: the control plane stopped: "
                + "; ".join(self.control_plane.exited_components())
            )
        for part in self.parts:
            if part.process is None:
                continue
            code = part.process.poll()
            if code is None:
                continue
            if part.restart_at is None:
                delay = part.backoff.after_exit(now - part.started_at)
                part.restart_at = now + delay
                notices.append(f"{restart_notice(part.name, code, delay)} (log: {part.log_path})")
            elif now >= part.restart_at:
                self._spawn(part)
                notices.append(f"restarted the {part.name} (pid {part.process.pid})")
        return notices

    def stop(self) -> None:
        # A second Ctrl-C must not cut the teardown short and leave parts running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.reader is not None:
            self.reader.close()
        for part in reversed(self.parts):
            process = part.process
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.parts.clear()
        if self.control_plane is not None:
            self.control_plane.stop()
        for log in self._logs.values():
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


def run_dev(module_refs: Sequence[str], stack: DevStack) -> int:
    """`podtask dev`: start `stack` with the tasks of `module_refs`, keep it running (each part
    restarted when it dies) until Ctrl-C or SIGTERM, then stop it."""
    # Everything the stack writes (database, secrets, kubeconfig, logs) is for its owner only.
    os.umask(0o077)
    with _stop_on_signals():
        try:
            dev_secrets = stack.start(module_refs)
            print(f"API: {stack.api_url}")
            print(f"API key: {dev_secrets.api_key}")
            print(f"Dashboard: {stack.api_url}/ (sign in with the API key)")
            print(f"Operator metrics: {stack.operator_metrics_url}")
            print(f"Kubeconfig: {stack.kubeconfig}")
            print(f"Logs: {stack.state_dir / 'logs'}")
            print(f"Watching: {' '.join(module_refs)} (a saved change is registered at once)")
            print("Ready. Press Ctrl-C to stop.", flush=True)
            assert stack.watch is not None
            while True:
                now = time.monotonic()
                for notice in [*stack.supervise(now), *stack.watch.poll(now)]:
                    print(f"podtask dev: {notice}", flush=True)
                time.sleep(SUPERVISE_SECONDS)
        except KeyboardInterrupt:
            print("Stopping…", flush=True)
            return 0
        finally:
            stack.stop()
