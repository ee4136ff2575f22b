"""The local kubelet of the embedded cluster: runs each pod's containers with the shared
container runtime (`containers`: local processes under a shim, memory limits enforced), writes
pod status through the store, terminates pods gracefully on delete, and marks pods lost by a
cluster restart as failed. The node agent (`node_agent`) does the same over the Kubernetes API.

The image is never pulled: `command` + `args` run in the dev environment, with the virtualenv's
scripts first on PATH, so task modules and console scripts resolve as they do for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from pathlib import Path

from podtask_devcluster.containers import (
    ContainerRun,
    PodRun,
    kill_container,
    spawn_container,
    stop_container,
    wait_container,
    watch_memory,
)
from podtask_devcluster.podenv import (
    CONFIGMAP,
    ContainerConfigError,
    Placement,
    plan_container,
)
from podtask_devcluster.podlogs import log_path
from podtask_devcluster.podstatus import (
    conditions,
    container_status,
    live_status,
    lost_container_statuses,
    now_rfc3339,
    terminated,
)
from podtask_devcluster.private_files import private_directory
from podtask_devcluster.registry import PODS, Registry
from podtask_devcluster.store import JsonObject, WatchEvent, storage_key

NODE_NAME = "podtask-dev"
POD_IP = "127.0.0.1"
STOP_GRACE_SECONDS = 2.0
SECRETS = storage_key("", "secrets")
CONFIGMAPS = storage_key("", "configmaps")
PLACEMENT = Placement(node_name=NODE_NAME, host_ip=POD_IP, pod_ip=POD_IP)


class Kubelet:
    def __init__(self, registry: Registry, log_dir: Path, workdir: Path) -> None:
        self._registry = registry
        self._store = registry.store
        self._log_dir = log_dir
        self._workdir = workdir
        self._runs: dict[tuple[str, str], PodRun] = {}
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        registry.pod_has_process = self.has_process
        self._store.subscribe(self._on_event)

    # ------------------------------------------------------------ queries

    def has_process(self, namespace: str, name: str) -> bool:
        run = self._runs.get((namespace, name))
        return run is not None and not run.finished

    def still_writing(self, namespace: str, name: str, container: str) -> Callable[[], bool]:
        """For the log endpoint: is this container still producing output?"""

        def check() -> bool:
            run = self._runs.get((namespace, name))
            if run is None or run.finished:
                return False
            return any(
                c.name == container
                and (
                    c.alive()
                    or (c.process is None and c.start_error is None and c.exit_code is None)
                )
                for c in run.containers
            )

        return check

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._mark_lost_pods()
        self._monitor = self._loop.create_task(watch_memory(self._containers))

    def _mark_lost_pods(self) -> None:
        for pod in list(self._store.objects_of(PODS)):
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp"):
                self._registry.finish_pod_termination(meta.get("namespace", ""), meta["name"])
                continue
            if phase not in (None, "Pending", "Running", "Unknown"):
                continue
            lost = copy.deepcopy(pod)
            lost.setdefault("spec", {}).setdefault("nodeName", NODE_NAME)
            status = lost.setdefault("status", {})
            finished = now_rfc3339()
            status["phase"] = "Failed"
            status["reason"] = "NodeLost"
            status["message"] = (
                "The podtask dev cluster restarted while this pod was pending or running; its "
                "process did not survive the restart."
            )
            status["conditions"] = conditions(ready=False, reason="PodFailed")
            status["containerStatuses"] = lost_container_statuses(lost, finished)
            self._store.put(PODS, lost)

    async def stop(self) -> None:
        """Kill every pod process (SIGTERM, a short grace, SIGKILL); stored status is left as
        it was, so the next start reports those pods as lost."""
        self._stopping = True
        runs = list(self._runs.values())
        for run in runs:
            for container in run.containers:
                stop_container(container.process)
        waits = [run.task for run in runs if run.task is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=STOP_GRACE_SECONDS)
            for run in runs:
                for container in run.containers:
                    kill_container(container.process)
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
                for task in pending:
                    task.cancel()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    # ------------------------------------------------------------ events

    def _on_event(self, event: WatchEvent) -> None:
        if event.resource != PODS or self._stopping or self._loop is None:
            return
        pod = event.object
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        run = self._runs.get(key)
        if event.type == "ADDED":
            phase = (pod.get("status") or {}).get("phase")
            if run is None and phase in (None, "Pending") and not meta.get("deletionTimestamp"):
                run = PodRun(key[0], key[1], meta.get("uid", ""))
                self._runs[key] = run
                run.task = self._loop.create_task(self._run_pod(run))
        elif event.type == "MODIFIED":
            if (
                run is not None
                and run.uid == meta.get("uid")
                and meta.get("deletionTimestamp")
                and not run.terminating
            ):
                run.terminating = True
                grace = int(meta.get("deletionGracePeriodSeconds") or 0)
                self._loop.create_task(self._terminate(run, grace))
        elif event.type == "DELETED":
            if run is not None and run.uid == meta.get("uid"):
                run.removed = True
                run.terminating = True
                for container in run.containers:
                    kill_container(container.process)
            for container in (pod.get("spec") or {}).get("containers") or []:
                with contextlib.suppress(OSError):
                    log_path(self._log_dir, key[0], key[1], container.get("name", "")).unlink()

    # ------------------------------------------------------------ running a pod

    def _update_pod(self, run: PodRun, change: Callable[[JsonObject], None]) -> JsonObject | None:
        if self._stopping or run.removed:
            return None
        pod = self._store.get(PODS, run.namespace, run.name)
        if pod is None or pod["metadata"].get("uid") != run.uid:
            return None
        updated = copy.deepcopy(pod)
        change(updated)
        if updated == pod:
            return pod
        return self._store.put(PODS, updated)

    async def _run_pod(self, run: PodRun) -> None:
        try:
            await self._run_pod_steps(run)
        finally:
            run.finished = True
            run.ended.set()
            if self._runs.get((run.namespace, run.name)) is run:
                del self._runs[(run.namespace, run.name)]
            if run.terminating and not run.removed and not self._stopping:
                self._registry.finish_pod_termination(run.namespace, run.name)

    async def _run_pod_steps(self, run: PodRun) -> None:
        pod = self._store.get(PODS, run.namespace, run.name)
        if pod is None:
            return
        containers = (pod.get("spec") or {}).get("containers") or []
        scheduled_at = now_rfc3339()

        def schedule(obj: JsonObject) -> None:
            obj["spec"]["nodeName"] = NODE_NAME
            status = obj.setdefault("status", {})
            status["phase"] = "Pending"
            status["hostIP"] = POD_IP
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": scheduled_at,
                },
            ]
            status["containerStatuses"] = [
                container_status(c, {"waiting": {"reason": "ContainerCreating"}}, ready=False)
                for c in containers
            ]

        pod = self._update_pod(run, schedule)
        if pod is None or run.terminating:
            return
        try:
            plans = [
                plan_container(pod, container, self._lookup, PLACEMENT, self._workdir)
                for container in containers
            ]
        except ContainerConfigError as error:
            message = str(error)

            def config_error(obj: JsonObject) -> None:
                obj["status"]["containerStatuses"] = [
                    container_status(
                        c,
                        {"waiting": {"reason": "CreateContainerConfigError", "message": message}},
                        ready=False,
                    )
                    for c in containers
                ]

            self._update_pod(run, config_error)
            return
        private_directory(self._log_dir)
        for container, plan in zip(containers, plans, strict=True):
            log_file = log_path(self._log_dir, run.namespace, run.name, container.get("name", ""))
            run.containers.append(
                await spawn_container(container, plan, log_file, now_rfc3339(), now=now_rfc3339)
            )
        if run.terminating:
            # Deleted while starting: _terminate found no process yet to signal.
            for started in run.containers:
                stop_container(started.process)
        start_time = now_rfc3339()

        def running(obj: JsonObject) -> None:
            status = obj["status"]
            status["phase"] = "Running"
            status["podIP"] = POD_IP
            status["podIPs"] = [{"ip": POD_IP}]
            status["startTime"] = start_time
            status["conditions"] = conditions(
                ready=all(c.alive() for c in run.containers), scheduled_at=scheduled_at
            )
            status["containerStatuses"] = [
                live_status(spec, container)
                for spec, container in zip(containers, run.containers, strict=True)
            ]

        if any(c.process is not None for c in run.containers):
            self._update_pod(run, running)
        await asyncio.gather(
            *(
                wait_container(container, now_rfc3339)
                for container in run.containers
                if container.process
            )
        )
        if self._stopping or run.removed:
            return
        failed = any(c.exit_code != 0 for c in run.containers)

        def finished(obj: JsonObject) -> None:
            status = obj["status"]
            status["phase"] = "Failed" if failed else "Succeeded"
            status.setdefault("podIP", POD_IP)
            status.setdefault("podIPs", [{"ip": POD_IP}])
            status.setdefault("startTime", start_time)
            status["conditions"] = conditions(
                ready=False,
                reason="PodFailed" if failed else "PodCompleted",
                scheduled_at=scheduled_at,
            )
            status["containerStatuses"] = [
                container_status(
                    spec,
                    {"terminated": terminated(container)},
                    ready=False,
                    container_id=container.container_id,
                )
                for spec, container in zip(containers, run.containers, strict=True)
            ]

        self._update_pod(run, finished)

    def _lookup(self, kind: str, namespace: str, name: str) -> JsonObject | None:
        return self._store.get(CONFIGMAPS if kind == CONFIGMAP else SECRETS, namespace, name)

    async def _terminate(self, run: PodRun, grace: int) -> None:
        for container in run.containers:
            stop_container(container.process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.ended.wait(), max(grace, 0))
        for container in run.containers:
            if container.alive():
                kill_container(container.process)

    def _containers(self) -> list[ContainerRun]:
        return [c for run in list(self._runs.values()) for c in run.containers]
