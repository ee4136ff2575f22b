"""One pod on the node agent, from bound to gone, as a kubelet runs it: status Pending, the
image check (the agent never pulls: an image it lacks is ErrImagePull, then ImagePullBackOff),
the environment (a missing Secret or ConfigMap is CreateContainerConfigError, retried), the
containers started with the node's runtime (`runtime`: local processes or podman containers,
one flow for both), Running, a container that ends started again as the pod's restartPolicy
says (`container_restarts`: at once, then after a growing back-off, CrashLoopBackOff), then
Succeeded or Failed once no container will start again; a deletion stops it with its grace
period (Killing) and then deletes the pod with grace 0. Each step writes `pods/status` and
posts the Events a kubelet posts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podtask_devcluster.container_restarts import (
    BACKOFF_SECONDS,
    NEVER,
    BackOff,
    back_off_message,
    crash_loop_waiting,
    next_start,
    restart_policy,
    starts_again,
)
from podtask_devcluster.containers import ContainerRun, PodRun
from podtask_devcluster.kubeapi import ApiError, KubeApi
from podtask_devcluster.podenv import (
    CONFIGMAP,
    ContainerConfigError,
    Placement,
    Plan,
    plan_container,
    referenced_objects,
)
from podtask_devcluster.podevents import WARNING, PodEvents
from podtask_devcluster.podlogs import keep_as_previous, log_path, remove_pod_logs
from podtask_devcluster.podstatus import (
    live_status,
    lost_container_statuses,
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
    restart_backoff: tuple[float, float] = BACKOFF_SECONDS


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


@dataclass
class Restarts:
    """What one container's earlier runs left: how often it was started again, how its last
    run ended, its back-off, and the waiting state it shows while it backs off."""

    count: int = 0
    last_state: JsonObject | None = None
    backoff: BackOff = field(default_factory=BackOff)
    waiting: JsonObject | None = None


@dataclass(eq=False)
class NodePod:
    """A pod the agent runs; `pod` is the newest version the watch delivered."""

    pod: JsonObject
    run: PodRun
    deleting: asyncio.Event = field(default_factory=asyncio.Event)
    # By container, in the spec's order; given when an agent adopts a pod whose containers it
    # lost (`restarts_after_loss`), else fresh when the pod starts.
    restarts: list[Restarts] = field(default_factory=list)

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
        if len(entry.restarts) != len(specs):
            entry.restarts = [Restarts() for _ in specs]
        # A pod whose containers ran before (lost with an earlier agent) stays Running while
        # they start again, as a kubelet counts a container with a last state.
        restarted = any(r.last_state for r in entry.restarts)
        pending = {
            "phase": "Running" if restarted else "Pending",
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": start_time,
            "conditions": _pod_conditions(False, scheduled_at, "ContainersNotReady"),
            "containerStatuses": _counted(
                entry, [waiting_status(c, "ContainerCreating") for c in specs]
            ),
        }
        if not await self.write_status(entry, pending):
            return
        plans = await self._prepare(entry, specs, pending)
        if plans is None:
            return
        await self._start_containers(entry, specs, plans)
        await self._write_running(entry, specs, scheduled_at, with_ip=True)
        policy = restart_policy(entry.pod)
        await asyncio.gather(
            *(
                self._follow(entry, specs, plans, index, policy, scheduled_at)
                for index in range(len(specs))
            )
        )
        if self.stopping() or entry.run.removed:
            return
        await self._report_end(entry, specs, scheduled_at)

    async def _write_running(
        self, entry: NodePod, specs: list[JsonObject], scheduled_at: str, *, with_ip: bool = False
    ) -> None:
        """The pod Running, each container as it is now."""
        ready = all(c.alive() for c in entry.run.containers) and not any(
            r.waiting for r in entry.restarts
        )
        status: JsonObject = {
            "phase": "Running",
            "conditions": _pod_conditions(
                ready, scheduled_at, None if ready else "ContainersNotReady"
            ),
            "containerStatuses": _live_statuses(entry, specs),
        }
        if with_ip:
            status.update({"podIP": HOST_IP, "podIPs": [{"ip": HOST_IP}]})
        await self.write_status(entry, status)

    async def _follow(
        self,
        entry: NodePod,
        specs: list[JsonObject],
        plans: list[Plan],
        index: int,
        policy: str,
        scheduled_at: str,
    ) -> None:
        """Container `index` until it ends for good: each time it ends, started again (after
        its back-off) while `policy` says so and the pod is not being deleted."""
        restarts = entry.restarts[index]
        loop = asyncio.get_running_loop()
        while True:
            container = entry.run.containers[index]
            if container.start_error is None:
                await self.runtime.wait(container)
            if self._ending(entry):
                return
            if not starts_again(policy, container.exit_code or 0):
                if policy != NEVER and len(specs) > 1:
                    await self._write_running(entry, specs, scheduled_at)  # the others run on
                return
            delay, restarts.backoff = next_start(
                restarts.backoff, loop.time(), self.timing.restart_backoff
            )
            restarts.last_state = {"terminated": terminated(container)}
            if delay > 0:
                restarts.waiting = crash_loop_waiting(delay, container.name, entry.pod)
                await self._write_running(entry, specs, scheduled_at)
                await self.events.post(
                    entry.pod,
                    "BackOff",
                    back_off_message(container.name, entry.pod),
                    container=container.name,
                    event_type=WARNING,
                )
                await self._pause(entry, delay)
                restarts.waiting = None  # over, whether it starts again or the pod ends
                if self._ending(entry):
                    return
            restarts.count += 1
            await self._start_again(entry, specs[index], plans[index], index)
            await self._write_running(entry, specs, scheduled_at)

    def _ending(self, entry: NodePod) -> bool:
        """Whether the pod's containers are not to start again: the agent stops, or the pod
        is being deleted or gone."""
        return self.stopping() or entry.run.removed or entry.deleting.is_set()

    async def _start_again(
        self, entry: NodePod, spec: JsonObject, plan: Plan, index: int
    ) -> ContainerRun:
        """A new run of container `index`, in place of the one that ended, whose log becomes
        the container's previous one (`kubectl logs --previous`)."""
        name = str(spec.get("name", ""))
        log_file = log_path(self.log_dir, entry.namespace, entry.name, name)
        keep_as_previous(log_file)
        await self._post_pulled(entry, spec)
        started = await self.runtime.start(entry.pod, spec, plan, log_file)
        entry.run.containers[index] = started
        await self._post_started(entry, started)
        if entry.run.removed:
            await self.runtime.kill(started)  # gone while it started
        elif entry.deleting.is_set():
            await self.runtime.stop(started)  # deleted while it started: its grace period runs
        return started

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
            await self._post_started(entry, started)
        if entry.deleting.is_set():
            # Deleted while starting: the terminating task found no process yet to signal.
            for container in entry.run.containers:
                await self.runtime.stop(container)

    async def _post_started(self, entry: NodePod, started: ContainerRun) -> None:
        if started.start_error is not None:
            await self.events.post(
                entry.pod, "Failed", f"Error: {started.start_error}", container=started.name
            )
        else:
            await self.events.post(
                entry.pod, "Created", "Container created", container=started.name
            )
            await self.events.post(
                entry.pod, "Started", "Container started", container=started.name
            )

    async def _post_pulled(self, entry: NodePod, spec: JsonObject) -> None:
        await self.events.post(
            entry.pod,
            "Pulled",
            f'Container image "{spec.get("image", "")}" already present on machine',
            container=str(spec.get("name", "")),
        )

    async def _report_end(self, entry: NodePod, specs: list[JsonObject], scheduled_at: str) -> None:
        """Succeeded when every container exited 0, else Failed, with their terminations."""
        failed = any(c.exit_code != 0 for c in entry.run.containers)
        reason = "PodFailed" if failed else "PodCompleted"
        await self.write_status(
            entry,
            {
                "phase": "Failed" if failed else "Succeeded",
                "conditions": _pod_conditions(False, scheduled_at, reason),
                "containerStatuses": _live_statuses(entry, specs),
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
                    await self._post_pulled(entry, spec)
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
                statuses = _counted(
                    entry, [waiting_status(c, "CreateContainerConfigError", message) for c in specs]
                )
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
        return await self.write_status(
            entry, {**pending, "containerStatuses": _counted(entry, statuses)}
        )

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


def restarts_after_loss(pod: JsonObject, finished: str) -> list[Restarts]:
    """A pod's containers lost with an earlier agent, to be started again: each start counts
    as a restart, the lost run (`ContainerStatusUnknown`) as its last state. Its back-off
    starts over, as a restarted kubelet's does."""
    before = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
    return [
        Restarts(
            count=int((before.get(lost["name"]) or {}).get("restartCount") or 0) + 1,
            last_state=lost["state"],
        )
        for lost in lost_container_statuses(pod, finished)
    ]


def _live_statuses(entry: NodePod, specs: list[JsonObject]) -> list[JsonObject]:
    """The started containers' statuses now, with what their earlier runs left."""
    return [
        live_status(spec, c, restart_count=r.count, last_state=r.last_state, waiting=r.waiting)
        for spec, c, r in zip(specs, entry.run.containers, entry.restarts, strict=True)
    ]


def _counted(entry: NodePod, statuses: list[JsonObject]) -> list[JsonObject]:
    """`statuses` (the containers', in order) with what their earlier runs left."""
    for status, restarts in zip(statuses, entry.restarts, strict=False):
        status["restartCount"] = restarts.count
        status["lastState"] = restarts.last_state or {}
    return statuses


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
