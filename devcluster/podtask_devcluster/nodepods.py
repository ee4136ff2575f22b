"""One pod on the node agent, from bound to gone, as a kubelet runs it: status Pending, the
image check (the agent never pulls: an image it lacks is ErrImagePull, then ImagePullBackOff),
the environment (a missing Secret or ConfigMap is CreateContainerConfigError, retried), the
containers started with the node's runtime (`runtime`: local processes or podman containers,
one flow for both), Running, then Succeeded or Failed; a deletion
stops it with its grace period (Killing) and then deletes the pod with grace 0. Each step
writes `pods/status` and posts the Events a kubelet posts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podtask_devcluster.containers import PodRun
from podtask_devcluster.kubeapi import ApiError, KubeApi
from podtask_devcluster.podenv import (
    CONFIGMAP,
    ContainerConfigError,
    Placement,
    Plan,
    plan_container,
    referenced_objects,
)
from podtask_devcluster.podevents import PodEvents
from podtask_devcluster.podlogs import log_path, remove_pod_logs
from podtask_devcluster.podstatus import (
    container_status,
    live_status,
    now_rfc3339,
    terminated,
    waiting_status,
)
from podtask_devcluster.private_files import private_directory
from podtask_devcluster.runtime import ContainerRuntime
from podtask_devcluster.store import JsonObject

log = logging.getLogger(__name__)

HOST_IP = "127.0.0.1"
IMAGE_BACKOFF_SECONDS = (10.0, 300.0)
CONFIG_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class Timing:
    """How long the agent waits between retries (shorter in tests)."""

    image_backoff: tuple[float, float] = IMAGE_BACKOFF_SECONDS
    config_retry: float = CONFIG_RETRY_SECONDS


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


@dataclass(eq=False)
class NodePod:
    """A pod the agent runs; `pod` is the newest version the watch delivered."""

    pod: JsonObject
    run: PodRun
    deleting: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def namespace(self) -> str:
        return self.run.namespace

    @property
    def name(self) -> str:
        return self.run.name


@dataclass
class PodWorker:
    """Runs the pods of node `node`: their containers with `runtime`, their logs under
    `log_dir`, their status and Events written through `api`; `stopping` says when the agent
    stops (a pod is then left as it is)."""

    api: KubeApi
    node: str
    log_dir: Path
    workdir: Path
    runtime: ContainerRuntime
    timing: Timing
    stopping: Callable[[], bool]
    events: PodEvents = field(init=False)
    placement: Placement = field(init=False)

    def __post_init__(self) -> None:
        self.events = PodEvents(self.api, self.node)
        self.placement = Placement(node_name=self.node, host_ip=HOST_IP, pod_ip=HOST_IP)

    # ------------------------------------------------------------ API writes

    async def write_status(self, entry: NodePod, status: JsonObject) -> bool:
        """Patch `pods/status` (uid as precondition); False once the pod is gone."""
        if self.stopping() or entry.run.removed:
            return False
        patch = {"metadata": {"uid": entry.run.uid}, "status": status}
        try:
            entry.pod = await self.api.merge_patch(
                pod_path(entry.namespace, entry.name) + "/status", patch
            )
        except ApiError as error:
            if error.status in (404, 409, 422):
                log.info("status of %s/%s not written: %s", entry.namespace, entry.name, error)
                return False
            raise
        return True

    async def delete_pod(self, namespace: str, name: str, uid: str) -> None:
        """What a kubelet does once a terminating pod's containers are gone."""
        body = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        # A kubelet reclaims a pod's containers, and their logs with them, before it asks for
        # the final delete: once the pod is gone, so are its logs.
        with contextlib.suppress(OSError):
            remove_pod_logs(self.log_dir, namespace, name)
        with contextlib.suppress(ApiError):
            await self.api.delete(pod_path(namespace, name), body)

    # ------------------------------------------------------------ the pod's life

    async def run(self, entry: NodePod) -> None:
        try:
            await self._steps(entry)
        except (ApiError, OSError) as error:
            log.warning("pod %s/%s: %s", entry.namespace, entry.name, error)
        finally:
            with contextlib.suppress(OSError):
                await self.runtime.release_pod(entry.run.uid)
            entry.run.finished = True
            entry.run.ended.set()
            if entry.deleting.is_set() and not entry.run.removed and not self.stopping():
                await self.delete_pod(entry.namespace, entry.name, entry.run.uid)

    async def _steps(self, entry: NodePod) -> None:
        specs: list[JsonObject] = (entry.pod.get("spec") or {}).get("containers") or []
        scheduled_at = _scheduled_at(entry.pod)
        start_time = (entry.pod.get("status") or {}).get("startTime") or now_rfc3339()
        pending = {
            "phase": "Pending",
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": start_time,
            "conditions": _pod_conditions(False, scheduled_at, "ContainersNotReady"),
            "containerStatuses": [waiting_status(c, "ContainerCreating") for c in specs],
        }
        if not await self.write_status(entry, pending):
            return
        plans = await self._prepare(entry, specs, pending)
        if plans is None:
            return
        await self._start_containers(entry, specs, plans)
        ready = all(c.alive() for c in entry.run.containers)
        await self.write_status(
            entry,
            {
                "phase": "Running",
                "podIP": HOST_IP,
                "podIPs": [{"ip": HOST_IP}],
                "conditions": _pod_conditions(
                    ready, scheduled_at, None if ready else "ContainersNotReady"
                ),
                "containerStatuses": [
                    live_status(spec, c)
                    for spec, c in zip(specs, entry.run.containers, strict=True)
                ],
            },
        )
        await asyncio.gather(
            *(self.runtime.wait(c) for c in entry.run.containers if c.start_error is None)
        )
        if self.stopping() or entry.run.removed:
            return
        await self._report_end(entry, specs, scheduled_at)

    async def _start_containers(
        self, entry: NodePod, specs: list[JsonObject], plans: list[Plan]
    ) -> None:
        """Each container started (or failed to start), with its events; stopped at once if
        the pod was deleted meanwhile."""
        private_directory(self.log_dir)
        for spec, plan in zip(specs, plans, strict=True):
            name = str(spec.get("name", ""))
            started = await self.runtime.start(
                entry.pod, spec, plan, log_path(self.log_dir, entry.namespace, entry.name, name)
            )
            entry.run.containers.append(started)
            if started.start_error is not None:
                await self.events.post(
                    entry.pod,
                    "Failed",
                    f"Error: {started.start_error}",
                    container=name,
                )
            else:
                await self.events.post(entry.pod, "Created", "Container created", container=name)
                await self.events.post(entry.pod, "Started", "Container started", container=name)
        if entry.deleting.is_set():
            # Deleted while starting: the terminating task found no process yet to signal.
            for container in entry.run.containers:
                await self.runtime.stop(container)

    async def _report_end(self, entry: NodePod, specs: list[JsonObject], scheduled_at: str) -> None:
        """Succeeded when every container exited 0, else Failed, with their terminations."""
        failed = any(c.exit_code != 0 for c in entry.run.containers)
        reason = "PodFailed" if failed else "PodCompleted"
        await self.write_status(
            entry,
            {
                "phase": "Failed" if failed else "Succeeded",
                "conditions": _pod_conditions(False, scheduled_at, reason),
                "containerStatuses": [
                    container_status(
                        spec,
                        {"terminated": terminated(c)},
                        ready=False,
                        container_id=c.container_id,
                    )
                    for spec, c in zip(specs, entry.run.containers, strict=True)
                ],
            },
        )

    async def _prepare(
        self, entry: NodePod, specs: list[JsonObject], pending: JsonObject
    ) -> list[Plan] | None:
        """Images present and environment built, retried as a kubelet retries; None when the
        pod is deleted (or the agent stops) first."""
        backoff = self.timing.image_backoff[0]
        pulled: set[str] = set()
        while not entry.deleting.is_set() and not self.stopping():
            missing = [
                c for c in specs if not await self.runtime.has_image(str(c.get("image", "")))
            ]
            if missing:
                await self._failed_pull(entry, specs, missing, pending, backoff)
                backoff = min(backoff * 2, self.timing.image_backoff[1])
                continue
            for spec in specs:
                name = str(spec.get("name", ""))
                if name not in pulled:
                    pulled.add(name)
                    await self.events.post(
                        entry.pod,
                        "Pulled",
                        f'Container image "{spec.get("image", "")}" already present on machine',
                        container=name,
                    )
            try:
                objects = await self._fetch_referenced(entry.pod)

                def lookup(kind: str, _namespace: str, name: str) -> JsonObject | None:
                    return objects.get((kind, name))  # noqa: B023 (used before the loop goes on)

                for spec in specs:
                    await self.runtime.check(entry.pod, spec)
                return [
                    plan_container(
                        entry.pod,
                        spec,
                        lookup,
                        self.placement,
                        self.workdir,
                        host_environment=self.runtime.host_environment,
                    )
                    for spec in specs
                ]
            except ContainerConfigError as error:
                message = str(error)
                statuses = [waiting_status(c, "CreateContainerConfigError", message) for c in specs]
                if not await self.write_status(entry, {**pending, "containerStatuses": statuses}):
                    return None
                await self.events.post(
                    entry.pod,
                    "Failed",
                    f"Error: {message}",
                    container=str(specs[0].get("name", "")),
                )
                await self._pause(entry, self.timing.config_retry)
        return None

    async def _failed_pull(
        self,
        entry: NodePod,
        specs: list[JsonObject],
        missing: list[JsonObject],
        pending: JsonObject,
        backoff: float,
    ) -> None:
        """ErrImagePull, then ImagePullBackOff for `backoff` seconds, as a kubelet shows a
        missing image (statuses and events); the pod marked deleting if it is gone."""
        pull_error = self.runtime.pull_error
        errors = {str(c.get("image", "")): pull_error(str(c.get("image", ""))) for c in missing}
        if not await self._show_waiting(entry, specs, missing, pending, "ErrImagePull", errors):
            entry.deleting.set()
            return
        for spec in missing:
            image, name = str(spec.get("image", "")), str(spec.get("name", ""))
            await self.events.post(
                entry.pod,
                "Failed",
                f'Failed to pull image "{image}": {pull_error(image)}',
                container=name,
            )
            await self.events.post(entry.pod, "Failed", "Error: ErrImagePull", container=name)
        await self._pause(entry, self.timing.image_backoff[0])
        if entry.deleting.is_set() or self.stopping():
            return
        backoffs = {
            image: f'Back-off pulling image "{image}": ErrImagePull: {pull_error(image)}'
            for image in errors
        }
        if not await self._show_waiting(
            entry, specs, missing, pending, "ImagePullBackOff", backoffs
        ):
            entry.deleting.set()
            return
        for spec in missing:
            image, name = str(spec.get("image", "")), str(spec.get("name", ""))
            await self.events.post(
                entry.pod, "BackOff", f'Back-off pulling image "{image}"', container=name
            )
            await self.events.post(entry.pod, "Failed", "Error: ImagePullBackOff", container=name)
        await self._pause(entry, backoff)

    async def _show_waiting(
        self,
        entry: NodePod,
        specs: list[JsonObject],
        missing: list[JsonObject],
        pending: JsonObject,
        reason: str,
        message_by_image: dict[str, str],
    ) -> bool:
        """The containers lacking their image waiting for `reason`, the others creating."""
        lacking = {str(c.get("name", "")) for c in missing}
        statuses = [
            waiting_status(c, reason, message_by_image[str(c.get("image", ""))])
            if str(c.get("name", "")) in lacking
            else waiting_status(c, "ContainerCreating")
            for c in specs
        ]
        return await self.write_status(entry, {**pending, "containerStatuses": statuses})

    async def _pause(self, entry: NodePod, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entry.deleting.wait(), seconds)

    async def _fetch_referenced(self, pod: JsonObject) -> dict[tuple[str, str], JsonObject]:
        namespace = pod["metadata"].get("namespace", "default")
        found: dict[tuple[str, str], JsonObject] = {}
        for kind, name in sorted(referenced_objects(pod)):
            plural = "configmaps" if kind == CONFIGMAP else "secrets"
            try:
                found[(kind, name)] = await self.api.get(
                    f"/api/v1/namespaces/{namespace}/{plural}/{name}"
                )
            except ApiError as error:
                # The Node authorizer answers 403 for what no pod of this node references.
                if error.status not in (403, 404):
                    raise
        return found

    async def terminate(self, entry: NodePod, grace: int) -> None:
        """Stop the pod's containers: SIGTERM (Killing), SIGKILL after the grace period."""
        for container in entry.run.containers:
            if container.alive():
                await self.events.post(
                    entry.pod,
                    "Killing",
                    f"Stopping container {container.name}",
                    container=container.name,
                )
                await self.runtime.stop(container)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entry.run.ended.wait(), max(grace, 0))
        for container in entry.run.containers:
            if container.alive():
                await self.runtime.kill(container)


def _scheduled_at(pod: JsonObject) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("lastTransitionTime"):
            return str(condition["lastTransitionTime"])
    return now_rfc3339()


def _pod_conditions(ready: bool, scheduled_at: str, reason: str | None) -> list[JsonObject]:
    now = now_rfc3339()

    def condition(kind: str, status: bool, since: str, why: str | None = None) -> JsonObject:
        found: JsonObject = {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        if why:
            found["reason"] = why
        return found

    return [
        condition("PodReadyToStartContainers", True, scheduled_at),
        condition("Initialized", True, scheduled_at),
        condition("Ready", ready, now, reason),
        condition("ContainersReady", ready, now, reason),
        condition("PodScheduled", True, scheduled_at),
    ]
