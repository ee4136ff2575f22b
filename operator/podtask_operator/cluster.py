"""The operator's Pods, Secrets, TaskRuns, TaskQueues, TaskSchedules, Tasks and Events of one
namespace, through `Kube` (asyncio HTTP, retries of transient failures, typed errors)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Protocol

from podtask._contract.status_patches import version_pin
from podtask._contract.wire import GROUP, TASK_QUEUES, TASK_RUNS, TASK_SCHEDULES, TASKS, VERSION
from podtask_operator.kube import (
    Conflict,
    Kube,
    KubeError,
    NotFound,
    Refused,
    core_path,
    group_path,
)
from podtask_operator.kube_login import KubeLogin
from podtask_operator.run_events import run_event

log = logging.getLogger(__name__)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
# The TaskRuns of one page of `run_pages`: 10,000 runs in one answer are tens of MB parsed at
# once (kubectl chunks its lists by 500 too).
RUN_PAGE = 500


class RunChanged(Exception):
    """A TaskRun was written by someone else between the read a decision came from and the
    write of that decision (Kubernetes' 409 on a stale resourceVersion)."""


class ClusterApi(Protocol):
    """The calls the reconciler makes on its namespace: what `Cluster` implements, and what a
    test's in-memory cluster implements to drive the reconciler without Kubernetes."""

    async def get_run(self, name: str) -> dict[str, Any] | None: ...

    async def get_config_map(self, name: str) -> dict[str, Any] | None: ...

    async def patch_run_status(
        self, name: str, patch: list[dict[str, Any]], *, resource_version: str | None = None
    ) -> None: ...

    async def get_pod(self, name: str) -> dict[str, Any] | None: ...

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def create_secret(self, body: dict[str, Any]) -> None: ...

    def run_pages(self, limit: int = RUN_PAGE) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def list_queues(self) -> list[dict[str, Any]]: ...

    async def list_pods(self, label_selector: str) -> list[dict[str, Any]]: ...

    async def delete_pod(self, name: str) -> None: ...

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> bool: ...

    async def post_event(
        self, run: dict[str, Any], type_: str, reason: str, message: str, now: datetime
    ) -> None: ...


class Cluster:
    """Pods and TaskRuns of one namespace (and what schedules need: `schedule_ticker`)."""

    def __init__(self, login: KubeLogin, namespace: str) -> None:
        self.namespace = namespace
        self._kube = Kube(login)

    async def close(self) -> None:
        await self._kube.close()

    def _core(self, plural: str, name: str | None = None) -> str:
        return core_path(self.namespace, plural, name)

    def _ours(self, plural: str, name: str | None = None) -> str:
        return group_path(GROUP, VERSION, self.namespace, plural, name)

    async def get_run(self, name: str) -> dict[str, Any] | None:
        return await self._kube.get_or_none(self._ours(TASK_RUNS, name))

    async def get_config_map(self, name: str) -> dict[str, Any] | None:
        """A batch's marker (see podtask._contract.batch_markers); None when there is none."""
        return await self._kube.get_or_none(self._core("configmaps", name))

    async def patch_run_status(
        self, name: str, patch: list[dict[str, Any]], *, resource_version: str | None = None
    ) -> None:
        """Apply the JSON patch `patch` (`podtask._contract.status_patches`) to the run's status;
        with `resource_version`, only to that version of the run (else `RunChanged`), so that a
        decision never overwrites what it did not see."""
        pin = [] if resource_version is None else [version_pin(resource_version)]
        try:
            await self._kube.request(
                "PATCH",
                self._ours(TASK_RUNS, name) + "/status",
                body=[*pin, *patch],
                content_type=JSON_PATCH,
            )
        except Conflict as exc:
            if resource_version is not None:
                raise RunChanged(f"run {name} changed since version {resource_version}") from exc
            raise

    async def get_pod(self, name: str) -> dict[str, Any] | None:
        return await self._kube.get_or_none(self._core("pods", name))

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the pod; when it exists already (a retried create), return the existing one."""
        try:
            return await self._kube.request("POST", self._core("pods"), body=body)
        except Conflict:
            pass
        existing = await self.get_pod(body["metadata"]["name"])
        if existing is None:
            raise RuntimeError(f"pod {body['metadata']['name']} conflicts but cannot be read")
        return existing

    async def create_secret(self, body: dict[str, Any]) -> None:
        """Create the Secret; when it exists already (a retried create) it is the one to use:
        its name is deterministic and nothing ever changes it."""
        with contextlib.suppress(Conflict):
            await self._kube.request("POST", self._core("secrets"), body=body)

    async def _list(self, path: str, **params: str) -> list[dict[str, Any]]:
        return list((await self._kube.request("GET", path, params=params)).get("items", []))

    async def _patch_status(self, plural: str, name: str, body: dict[str, Any]) -> None:
        """Merge `body` (`{"status": …}`) into the status subresource of one of podtask's
        objects: for the statuses that hold no free-form JSON (a merge patch reads a null as
        "remove"), the queues' and schedules'."""
        await self._kube.request(
            "PATCH", self._ours(plural, name) + "/status", body=body, content_type=MERGE_PATCH
        )

    async def run_pages(self, limit: int = RUN_PAGE) -> AsyncIterator[list[dict[str, Any]]]:
        """Every TaskRun, a page of at most `limit` at a time (one list in chunks: `limit` and
        `continue`). When the list's continue token has expired (410: the API server no longer
        holds the version it lists from), the list starts again: the pages already given come
        again, newer."""
        path = self._ours(TASK_RUNS)
        params = {"limit": str(limit)}
        while True:
            try:
                answer = await self._kube.request("GET", path, params=params)
            except Refused as exc:
                if exc.status != 410 or "continue" not in params:
                    raise
                log.info("the list of TaskRuns expired while it was read; listing them again")
                params = {"limit": str(limit)}
                continue
            yield list(answer.get("items", []))
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return
            params = {"limit": str(limit), "continue": str(token)}

    async def list_queues(self) -> list[dict[str, Any]]:
        return await self._list(self._ours(TASK_QUEUES))

    async def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        return await self._list(self._core("pods"), labelSelector=label_selector)

    async def delete_pod(self, name: str) -> None:
        """Delete gracefully (the runner gets SIGTERM and runs cleanup); gone already is fine."""
        with contextlib.suppress(NotFound):
            await self._kube.request("DELETE", self._core("pods", name))

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> bool:
        """False when the TaskQueue does not exist."""
        try:
            await self._patch_status(TASK_QUEUES, name, {"status": status})
        except NotFound:
            return False
        return True

    # --- schedules: what `schedule_ticker.ScheduleApi` asks -----------------------------

    async def get_task(self, task_id: str) -> dict[str, Any] | None:
        """The deployed `Task` of this id; None when there is none."""
        return await self._kube.get_or_none(self._ours(TASKS, task_id))

    async def create_run(self, body: dict[str, Any]) -> bool:
        """Create a TaskRun: True, or False when one of its name exists already."""
        try:
            await self._kube.request("POST", self._ours(TASK_RUNS), body=body)
        except Conflict:
            return False
        return True

    async def patch_schedule_status(self, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the TaskSchedule's; False when it does not exist (any more)."""
        try:
            await self._patch_status(TASK_SCHEDULES, name, {"status": status})
        except NotFound:
            return False
        return True

    async def post_event(
        self, run: dict[str, Any], type_: str, reason: str, message: str, now: datetime
    ) -> None:
        """A Kubernetes Event on the TaskRun: `kubectl describe taskrun` shows why."""
        body = run_event(run, self.namespace, type_, reason, message, now)
        try:
            await self._kube.request("POST", self._core("events"), body=body)
        except KubeError as exc:
            # An Event is an explanation, not state: never let it fail a run's reconcile.
            log.warning("could not post event %s on %s: %s", reason, run["metadata"]["name"], exc)
