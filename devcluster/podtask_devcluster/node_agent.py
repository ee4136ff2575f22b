"""The node agent: a kubelet for podtask that speaks the Kubernetes API. It registers a Node
with this machine's CPU and memory, renews its Lease in `kube-node-lease` and reports node
status, runs the pods bound to it (`nodepods`, with the runtime chosen by `--runtime` or
PODTASK_NODE_RUNTIME: local processes, the default, podman containers, or simulated ones that
start no process; `runtime`), posts
kubelet Events, and serves container logs to the apiserver over HTTPS (`logserver`), so
`kubectl logs` works through a real apiserver.

It authenticates with the node's client certificate (`system:node:<name>`, group
`system:nodes`): the Node authorizer and NodeRestriction decide what it may do.

Node lost. The agent's containers die with it (their shims get SIGHUP when it goes; podman
containers outlive a killed agent until its next start removes them), and a stopped agent
stops heartbeating, so the control plane sees the node go NotReady. When it
starts again it adopts its pods the way a restarted kubelet finds its containers gone: a pod
that had started (Running, or a container running or terminated) ends Failed with its
containers terminated `ContainerStatusUnknown` (exit 137) when its restartPolicy is Never, and
else has its containers started again (each a restart, the lost run its last state); a pod
that never started runs now; a pod being deleted is deleted (grace 0); a pod the API no longer
has is simply not seen.

`python -m podtask_devcluster.node_agent --kubeconfig … --serving-cert … --serving-key …`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from podtask_devcluster.container_restarts import NEVER, restart_policy
from podtask_devcluster.containers import ContainerRun, PodRun
from podtask_devcluster.images import ImageSet
from podtask_devcluster.kubeapi import ApiError, Connection, Gone, KubeApi
from podtask_devcluster.logserver import ContainerLog, LogServer
from podtask_devcluster.nodepods import NodePod, PodWorker, Restarts, Timing, restarts_after_loss
from podtask_devcluster.nodestatus import (
    LEASE_NAMESPACE,
    Machine,
    lease_object,
    micro_time,
    node_object,
    node_status,
    rfc3339,
)
from podtask_devcluster.podevents import node_event
from podtask_devcluster.podlogs import log_path, previous_log_path, remove_pod_logs
from podtask_devcluster.podstatus import conditions, lost_container_statuses, now_rfc3339
from podtask_devcluster.private_files import private_directory
from podtask_devcluster.runtime import (
    SIMULATED,
    add_runtime_option,
    make_runtime,
    runtime_choice,
)
from podtask_devcluster.store import JsonObject

log = logging.getLogger(__name__)

DEFAULT_NODE_NAME = "podtask-local"
LEASE_RENEW_SECONDS = 10.0
STATUS_REPORT_SECONDS = 60.0
RETRY_SECONDS = 2.0
STOP_GRACE_SECONDS = 2.0
TERMINAL = ("Succeeded", "Failed")

Key = tuple[str, str]


class NodeAgent:
    def __init__(
        self,
        connection: Connection,
        state_dir: Path,
        serving_cert: Path,
        serving_key: Path,
        *,
        node_name: str = DEFAULT_NODE_NAME,
        client_ca_file: Path | None = None,
        images: ImageSet | None = None,
        workdir: Path | None = None,
        timing: Timing | None = None,
        lease_renew_seconds: float = LEASE_RENEW_SECONDS,
        status_report_seconds: float = STATUS_REPORT_SECONDS,
        runtime: str | None = None,
        simulated_seconds: float | None = None,
    ) -> None:
        self.connection = connection
        self.node_name = node_name
        self.state_dir = Path(state_dir)
        self.log_dir = self.state_dir / "logs"
        self.images = images if images is not None else ImageSet.from_env()
        self.runtime = runtime_choice(runtime)
        self._runtime = make_runtime(
            self.runtime, node_name, self.state_dir, self.images, simulated_seconds
        )
        self._workdir = Path(workdir) if workdir is not None else Path.cwd()
        self._timing = timing or Timing()
        self._lease_every = lease_renew_seconds
        self._status_every = status_report_seconds
        client_ca = client_ca_file or connection.ca_file
        if client_ca is None:
            raise ValueError("the node agent needs the CA of the clients that read logs")
        self._logs = LogServer(self._log_of, serving_cert, serving_key, client_ca)
        self._api: KubeApi | None = None
        self._worker: PodWorker | None = None
        self._pods: dict[Key, NodePod] = {}
        self._seen: dict[Key, JsonObject] = {}
        self._handled: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._node_uid = ""
        self._boot_id = str(uuid.uuid4())
        self._machine = (
            Machine.simulated()
            if self.runtime == SIMULATED
            else Machine.this_one(private_directory(self.state_dir))
        )
        self.registered = asyncio.Event()
        self.synced = asyncio.Event()

    @property
    def port(self) -> int:
        return self._logs.port

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> NodeAgent:
        private_directory(self.log_dir)
        self._api = KubeApi(self.connection)
        await self._runtime.open(self._on_oom)
        self._worker = PodWorker(
            self._api,
            self.node_name,
            self.log_dir,
            self._workdir,
            self._runtime,
            self._timing,
            lambda: self._stopping,
        )
        await self._logs.start()
        await self._register()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._heartbeat()),
            loop.create_task(self._watch_pods()),
            loop.create_task(self._runtime.supervise(self._containers)),
        ]
        return self

    async def stop(self) -> None:
        """Stop heartbeating and kill every container (they die with the agent anyway);
        statuses are left as they are, for the next start to adopt (the node is lost)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        entries = list(self._pods.values())
        containers = [c for entry in entries for c in entry.run.containers]
        await asyncio.gather(*(self._runtime.stop(c) for c in containers))
        waits = [e.run.task for e in entries if e.run.task is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=STOP_GRACE_SECONDS)
            await asyncio.gather(*(self._runtime.kill(c) for c in containers))
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
                for task in pending:
                    task.cancel()
        with contextlib.suppress(OSError):
            await self._runtime.close()
        await self._logs.stop()
        if self._api is not None:
            await self._api.close()

    async def __aenter__(self) -> NodeAgent:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ the Node and its Lease

    def _status(self, previous: list[JsonObject]) -> JsonObject:
        return node_status(self._machine, self.port, previous, rfc3339(), self._boot_id)

    async def _register(self) -> None:
        assert self._api is not None
        while True:
            try:
                try:
                    node = await self._api.create(
                        "/api/v1/nodes", node_object(self.node_name, self._status([]))
                    )
                except ApiError as error:
                    if error.status != 409:
                        raise
                    node = await self._api.get(f"/api/v1/nodes/{self.node_name}")
                    await self._report_status(node)
                self._node_uid = str(node["metadata"]["uid"])
                await self._renew_lease()
                for reason, message in (
                    ("Starting", "Starting kubelet."),
                    ("NodeReady", f"Node {self.node_name} status is now: NodeReady"),
                ):
                    await self._api.create(
                        "/api/v1/namespaces/default/events",
                        node_event(self.node_name, reason, message),
                    )
                self.registered.set()
                return
            except (ApiError, OSError) as error:
                log.warning("registering node %s: %s", self.node_name, error)
                await asyncio.sleep(RETRY_SECONDS)

    async def _report_status(self, node: JsonObject | None = None) -> None:
        assert self._api is not None
        path = f"/api/v1/nodes/{self.node_name}"
        if node is None:
            node = await self._api.get(path)
        previous = (node.get("status") or {}).get("conditions") or []
        await self._api.strategic_patch(path + "/status", {"status": self._status(previous)})

    async def _renew_lease(self) -> None:
        assert self._api is not None
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{self.node_name}"
        try:
            lease = await self._api.get(path)
        except ApiError as error:
            if error.status != 404:
                raise
            await self._api.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases",
                lease_object(self.node_name, self._node_uid, micro_time()),
            )
            return
        fresh = lease_object(self.node_name, self._node_uid, micro_time())
        lease["spec"] = {**(lease.get("spec") or {}), **fresh["spec"]}
        await self._api.replace(path, lease)

    async def _heartbeat(self) -> None:
        since_status = 0.0
        while True:
            await asyncio.sleep(self._lease_every)
            since_status += self._lease_every
            try:
                await self._renew_lease()
                if since_status >= self._status_every:
                    since_status = 0.0
                    await self._report_status()
            except (ApiError, OSError) as error:
                log.warning("heartbeat of node %s: %s", self.node_name, error)

    # ------------------------------------------------------------ the pods bound here

    async def _watch_pods(self) -> None:
        assert self._api is not None
        selector = {"fieldSelector": f"spec.nodeName={self.node_name}"}
        resource_version: str | None = None
        while True:
            try:
                if resource_version is None:
                    listed = await self._api.get("/api/v1/pods", selector)
                    resource_version = str(listed["metadata"]["resourceVersion"])
                    present = {_key(p) for p in listed.get("items") or []}
                    for key in list(self._seen):
                        if key not in present:
                            self._on_pod("DELETED", self._seen[key])
                    for pod in listed.get("items") or []:
                        self._on_pod("MODIFIED" if _key(pod) in self._seen else "ADDED", pod)
                    self.synced.set()
                params = {**selector, "resourceVersion": resource_version}
                async for event in self._api.watch("/api/v1/pods", params):
                    obj = event["object"]
                    resource_version = str(
                        obj["metadata"].get("resourceVersion") or resource_version
                    )
                    if event["type"] != "BOOKMARK":
                        self._on_pod(str(event["type"]), obj)
            except Gone:
                resource_version = None
            except (ApiError, OSError, ValueError) as error:
                log.warning("watching pods of node %s: %s", self.node_name, error)
                await asyncio.sleep(RETRY_SECONDS)

    def _on_pod(self, kind: str, pod: JsonObject) -> None:
        assert self._worker is not None
        meta = pod["metadata"]
        key = _key(pod)
        uid = str(meta.get("uid", ""))
        entry = self._pods.get(key)
        if kind == "DELETED":
            self._seen.pop(key, None)
            if entry is not None and entry.run.uid == uid:
                entry.run.removed = True
                entry.deleting.set()
                for container in entry.run.containers:
                    self._spawn(self._runtime.kill(container))
                if entry.run.finished:
                    del self._pods[key]
            with contextlib.suppress(OSError):
                remove_pod_logs(self.log_dir, key[0], key[1])
            return
        self._seen[key] = pod
        if entry is not None and entry.run.uid == uid:
            entry.pod = pod
            if meta.get("deletionTimestamp") and not entry.deleting.is_set():
                entry.deleting.set()
                if entry.run.finished:
                    # Its containers ended before: only the deletion is left to finish.
                    self._spawn(self._worker.delete_pod(key[0], key[1], uid))
                else:
                    grace = int(meta.get("deletionGracePeriodSeconds") or 0)
                    self._spawn(self._worker.terminate(entry, grace))
            return
        if entry is not None and not entry.run.finished:
            return  # the old pod of that name is still stopping
        loop = asyncio.get_running_loop()
        phase = (pod.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            if uid not in self._handled:
                self._handled.add(uid)
                self._spawn(self._worker.delete_pod(key[0], key[1], uid))
            return
        if phase in TERMINAL:
            return
        restarts: list[Restarts] = []
        if _started(pod) and entry is None:
            if restart_policy(pod) != NEVER:
                restarts = restarts_after_loss(pod, now_rfc3339())
            elif uid not in self._handled:
                self._handled.add(uid)
                self._spawn(self._mark_lost(pod))
                return
            else:
                return
        if entry is not None and entry.run.uid == uid:
            return
        entry = NodePod(pod, PodRun(key[0], key[1], uid), restarts=restarts)
        self._pods[key] = entry
        entry.run.task = loop.create_task(self._run(entry))

    async def _run(self, entry: NodePod) -> None:
        assert self._worker is not None
        # A finished pod stays known (its logs are served) until the API removes it.
        await self._worker.run(entry)
        key = (entry.namespace, entry.name)
        if entry.run.removed and self._pods.get(key) is entry:
            del self._pods[key]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _mark_lost(self, pod: JsonObject) -> None:
        """A pod that had started before this agent started: its processes are gone."""
        assert self._worker is not None and self._api is not None
        meta = pod["metadata"]
        entry = NodePod(pod, PodRun(meta.get("namespace", ""), meta["name"], meta.get("uid", "")))
        status = {
            "phase": "Failed",
            "conditions": conditions(ready=False, reason="PodFailed"),
            "containerStatuses": lost_container_statuses(pod, now_rfc3339()),
        }
        if await self._worker.write_status(entry, status):
            await self._worker.events.post(
                pod,
                "Failed",
                f"The node agent {self.node_name} restarted; the pod's containers did not "
                "survive it",
            )

    # ------------------------------------------------------------ runtime hooks

    def _containers(self) -> list[ContainerRun]:
        return [c for entry in list(self._pods.values()) for c in entry.run.containers]

    def _on_oom(self, container: ContainerRun, usage: int) -> None:
        assert self._worker is not None
        for entry in self._pods.values():
            if container in entry.run.containers:
                self._spawn(
                    self._worker.events.post(
                        entry.pod,
                        "OOMKilling",
                        f"Memory cgroup out of memory: Killed container {container.name} "
                        f"(using {usage} bytes, limit {container.memory_limit})",
                        container=container.name,
                    )
                )

    def _log_of(
        self, namespace: str, name: str, container: str
    ) -> tuple[JsonObject, ContainerLog | None] | None:
        pod = self._seen.get((namespace, name))
        if pod is None:
            return None
        path = log_path(self.log_dir, namespace, name, container)
        entry = self._pods.get((namespace, name))

        def still_writing() -> bool:
            if entry is None or entry.run.finished:
                return False
            return any(
                c.name == container
                and (
                    c.alive()
                    or (c.process is None and c.start_error is None and c.exit_code is None)
                )
                for c in entry.run.containers
            )

        if not path.exists():
            return pod, None
        previous = previous_log_path(path)
        return pod, ContainerLog(path, still_writing, previous if previous.exists() else None)


def _key(pod: JsonObject) -> Key:
    return (str(pod["metadata"].get("namespace", "")), str(pod["metadata"]["name"]))


def _started(pod: JsonObject) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") == "Running":
        return True
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


# ------------------------------------------------------------ command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podtask_devcluster.node_agent")
    parser.add_argument("--kubeconfig", type=Path, required=True, help="the node's credentials")
    parser.add_argument("--serving-cert", type=Path, required=True)
    parser.add_argument("--serving-key", type=Path, required=True)
    parser.add_argument("--client-ca", type=Path, help="CA of clients allowed to read logs")
    parser.add_argument("--node-name", default=DEFAULT_NODE_NAME)
    parser.add_argument("--state-dir", type=Path, default=Path(".podtask/node"))
    parser.add_argument("--workdir", type=Path, default=None)
    add_runtime_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    private_directory(args.state_dir)
    connection = Connection.from_kubeconfig(
        args.kubeconfig, private_directory(args.state_dir / "credentials")
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        agent = NodeAgent(
            connection,
            args.state_dir,
            args.serving_cert,
            args.serving_key,
            node_name=args.node_name,
            client_ca_file=args.client_ca,
            workdir=args.workdir,
            runtime=args.runtime,
            simulated_seconds=args.simulated_seconds,
        )
        async with agent:
            print(
                f"node {agent.node_name} ready, kubelet port {agent.port}, runtime {agent.runtime}",
                flush=True,
            )
            await stop.wait()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
