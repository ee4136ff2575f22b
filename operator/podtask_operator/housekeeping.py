"""Housekeeping: finished attempt pods and finished TaskRuns are deleted once their retention
has passed.

This module owns what "due for deletion" means (pure functions over the objects as the
watches showed them: `sweep_index`) and the periodic sweep that acts on it; only the leader
sweeps. A finished pod stays for the pod retention, counted from when its container finished,
so that `kubectl logs` works until then (the API serves the copy the runner sent after that,
for the run retention); a pod whose run is not final is never deleted, because the operator
still needs it to classify the attempt. A finished TaskRun stays for the run retention,
counted from its `status.finishedAt`; its pods go with it through their ownerReference.
Nothing here adds a finalizer, so nothing can get stuck.

Batch markers (`podtask._contract.batch_markers`): a batch still open after the abandon timeout was
given up by whoever created it (the API died, its client stopped retrying); its marker is
deleted, pinned to the version that was open, and its runs (held, never started) go with it
through their ownerReference. A committed marker is deleted once none of its runs is left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from podtask._contract.batch_markers import (
    LABEL_BATCH,
    BatchMarker,
    BatchState,
    batch_owner,
    read_marker,
)
from podtask._contract.resources import FINAL_PHASES, parse_timestamp
from podtask._contract.wire import GROUP, LABEL_RUN, TASK_RUNS, VERSION
from podtask_operator.kube import Conflict, Kube, NotFound, core_path, group_path
from podtask_operator.kube_login import KubeLogin

if TYPE_CHECKING:
    from podtask_operator.sweep_index import SweepIndex

log = logging.getLogger(__name__)

FINISHED_POD_PHASES = frozenset({"Succeeded", "Failed"})
_FINAL_RUN_PHASES = frozenset(phase.value for phase in FINAL_PHASES)
_PAGE_SIZE = 500


def _latest(values: Iterable[object]) -> datetime | None:
    return max((t for t in map(parse_timestamp, values) if t is not None), default=None)


def pod_finished_at(pod: Mapping[str, Any]) -> datetime | None:
    """When a finished pod finished: its last container's `finishedAt`, else its last condition
    change, else its creation. None while the pod has not finished."""
    status = pod.get("status") or {}
    if status.get("phase") not in FINISHED_POD_PHASES:
        return None
    containers = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    finished = _latest(
        ((c.get("state") or {}).get("terminated") or {}).get("finishedAt") for c in containers
    )
    if finished is None:
        # An evicted or lost pod may have no terminated container; its conditions still moved.
        finished = _latest(c.get("lastTransitionTime") for c in status.get("conditions") or [])
    return finished or parse_timestamp((pod.get("metadata") or {}).get("creationTimestamp"))


def run_is_final(run: Mapping[str, Any]) -> bool:
    return (run.get("status") or {}).get("phase") in _FINAL_RUN_PHASES


def run_finished_at(run: Mapping[str, Any]) -> datetime | None:
    """When a final run finished: `status.finishedAt`, else (never expected) its creation, so
    that a final run missing the stamp is still cleaned up rather than kept forever."""
    if not run_is_final(run):
        return None
    return parse_timestamp((run.get("status") or {}).get("finishedAt")) or parse_timestamp(
        (run.get("metadata") or {}).get("creationTimestamp")
    )


def _being_deleted(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def run_due_for_deletion(run: Mapping[str, Any], now: datetime, retention: timedelta) -> bool:
    finished = run_finished_at(run)
    return finished is not None and not _being_deleted(run) and finished + retention <= now


def pod_due_for_deletion(
    pod: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    now: datetime,
    retention: timedelta,
) -> bool:
    """Whether to delete an attempt pod, given its TaskRun as listed (None: not found; then the
    pod is kept: the garbage collector removes it with its owner, and a run we did not see may
    exist and still need it)."""
    if run is None or not run_is_final(run) or _being_deleted(pod):
        return False
    finished = pod_finished_at(pod)
    return finished is not None and finished + retention <= now


@dataclass(frozen=True)
class Doomed:
    """An object to delete, pinned to its uid so that a same-named successor survives."""

    name: str
    uid: str
    # Pinned to this version too when set: an open batch committed meanwhile survives.
    resource_version: str = ""


@dataclass(frozen=True)
class SweepPlan:
    runs: list[Doomed] = field(default_factory=list)
    pods: list[Doomed] = field(default_factory=list)
    markers: list[Doomed] = field(default_factory=list)


def marker_due_for_deletion(
    marker: BatchMarker, runs_left: int, now: datetime, abandon_after: timedelta
) -> bool:
    """Whether to delete a batch's marker: open past the abandon timeout (the batch was given
    up), or committed with none of its runs left. Never younger than the timeout, so that a
    batch being created (whose runs a list made a moment earlier missed) is left alone."""
    if marker.created_at is None or marker.created_at + abandon_after > now:
        return False
    return marker.state is BatchState.OPEN or runs_left == 0


def runs_per_batch(runs: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """How many of `runs` each batch (by its marker's uid) has."""
    runs_of: dict[str, int] = {}
    for run in runs:
        owner = batch_owner(run)
        if owner is not None:
            runs_of[owner.uid] = runs_of.get(owner.uid, 0) + 1
    return runs_of


def plan_marker_sweep(
    markers: Iterable[Mapping[str, Any]],
    runs_of: Mapping[str, int],
    now: datetime,
    abandon_after: timedelta,
) -> list[Doomed]:
    """The batch markers one sweep deletes (see `marker_due_for_deletion`); `runs_of`: how
    many runs each batch has left, by its marker's uid (`runs_per_batch`)."""
    doomed = []
    for body in markers:
        marker = read_marker(body)
        if marker is None or _being_deleted(body):
            continue
        if marker_due_for_deletion(marker, runs_of.get(marker.uid, 0), now, abandon_after):
            doomed.append(Doomed(marker.name, marker.uid, marker.resource_version))
    return doomed


def _doomed(obj: Mapping[str, Any]) -> Doomed:
    meta = obj.get("metadata") or {}
    return Doomed(str(meta.get("name", "")), str(meta.get("uid", "")))


def plan_sweep(
    runs: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    now: datetime,
    *,
    pod_retention: timedelta,
    run_retention: timedelta,
) -> SweepPlan:
    """What one sweep deletes: the runs due, and the pods due whose run is not deleted with them
    (those go with their run)."""
    runs_by_name = {_doomed(run).name: run for run in runs}
    doomed_runs = {
        name for name, run in runs_by_name.items() if run_due_for_deletion(run, now, run_retention)
    }
    plan = SweepPlan(runs=[_doomed(runs_by_name[name]) for name in sorted(doomed_runs)])
    for pod in pods:
        run_name = str(((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_RUN, ""))
        if run_name in doomed_runs:
            continue
        if pod_due_for_deletion(pod, runs_by_name.get(run_name), now, pod_retention):
            plan.pods.append(_doomed(pod))
    return plan


class HousekeepingClient:
    """The few calls a sweep makes, through a `Kube` of its own (two connections: a sweep
    never crowds out the reconciler's calls)."""

    def __init__(self, login: KubeLogin, namespace: str) -> None:
        self.namespace = namespace
        self._kube = Kube(login, connections=2)

    async def close(self) -> None:
        await self._kube.close()

    async def _list(self, path: str, **selector: str) -> list[dict[str, Any]]:
        """Every object at `path` that `selector` selects, page by page, so that a namespace
        with many retained runs never comes back as one response."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, str | int] = {**selector, "limit": _PAGE_SIZE}
            if token is not None:
                params["continue"] = token
            page = await self._kube.request("GET", path, params=params)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    async def _delete(self, path: str, target: Doomed) -> bool:
        """Delete `target` at `path`, pinned to it (`_delete_options`). True when deleted;
        False when already gone (404) or replaced by a new object of the same name (409 on
        the uid precondition)."""
        try:
            await self._kube.request("DELETE", path, body=_delete_options(target))
        except (NotFound, Conflict):
            return False
        return True

    async def list_markers(self) -> list[dict[str, Any]]:
        return await self._list(core_path(self.namespace, "configmaps"), labelSelector=LABEL_BATCH)

    async def batch_has_runs(self, batch_id: str) -> bool:
        """Whether any TaskRun of the batch exists (one is enough: a list of at most one)."""
        page = await self._kube.request(
            "GET",
            group_path(GROUP, VERSION, self.namespace, TASK_RUNS),
            params={"labelSelector": f"{LABEL_BATCH}={batch_id}", "limit": 1},
        )
        return bool(page.get("items"))

    async def delete_marker(self, marker: Doomed) -> bool:
        return await self._delete(core_path(self.namespace, "configmaps", marker.name), marker)

    async def delete_run(self, run: Doomed) -> bool:
        return await self._delete(
            group_path(GROUP, VERSION, self.namespace, TASK_RUNS, run.name), run
        )

    async def delete_pod(self, pod: Doomed) -> bool:
        return await self._delete(core_path(self.namespace, "pods", pod.name), pod)


def _delete_options(target: Doomed) -> dict[str, Any]:
    # Background: the run goes at once and the garbage collector follows with its pods.
    preconditions = {"uid": target.uid}
    if target.resource_version:
        preconditions["resourceVersion"] = target.resource_version
    return {"propagationPolicy": "Background", "preconditions": preconditions}


@dataclass(frozen=True)
class SweepResult:
    deleted_runs: list[str]
    deleted_pods: list[str]
    deleted_markers: list[str] = field(default_factory=list)


async def sweep_once(
    client: HousekeepingClient,
    index: SweepIndex,
    *,
    now: datetime,
    pod_retention: timedelta,
    run_retention: timedelta,
    batch_abandon_after: timedelta = timedelta(minutes=10),
) -> SweepResult:
    """From the runs and attempt pods the watches showed (`index`) and the batch markers
    listed, delete what is due (see `plan_sweep` and `plan_marker_sweep`)."""
    markers = await client.list_markers()
    plan = plan_sweep(
        index.runs(), index.pods(), now, pod_retention=pod_retention, run_retention=run_retention
    )
    deleted_runs = []
    for run in plan.runs:
        if await client.delete_run(run):
            deleted_runs.append(run.name)
        index.forget_run(run.name)  # deleted, gone or replaced: its own event says which
    deleted_pods = []
    for pod in plan.pods:
        if await client.delete_pod(pod):
            deleted_pods.append(pod.name)
        index.forget_pod(pod.name)
    doomed_markers = plan_marker_sweep(markers, index.runs_per_batch(), now, batch_abandon_after)
    committed = {
        marker.uid: marker.batch_id
        for marker in map(read_marker, markers)
        if marker is not None and marker.state is BatchState.COMMITTED
    }
    deleted_markers = []
    for doomed in doomed_markers:
        # "None of its runs is left" is the one rule an index that lags can get wrong (its
        # runs' events not handled yet, or not since a restart): asked of the API server.
        spent = doomed.uid not in committed or not await client.batch_has_runs(
            committed[doomed.uid]
        )
        if spent and await client.delete_marker(doomed):
            deleted_markers.append(doomed.name)
    if deleted_runs or deleted_pods or deleted_markers:
        log.info(
            "housekeeping deleted %d finished run(s), %d finished pod(s) and %d batch marker(s)",
            len(deleted_runs),
            len(deleted_pods),
            len(deleted_markers),
        )
    return SweepResult(deleted_runs, deleted_pods, deleted_markers)


async def run_housekeeping(
    client: HousekeepingClient,
    index: SweepIndex,
    *,
    interval_seconds: float,
    pod_retention: timedelta,
    run_retention: timedelta,
    batch_abandon_after: timedelta = timedelta(minutes=10),
    utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Sweep now and then every `interval_seconds`, until cancelled. A failed sweep is logged
    and the next one tries again: nothing is lost by deleting late."""
    while True:
        try:
            await sweep_once(
                client,
                index,
                now=utcnow(),
                pod_retention=pod_retention,
                run_retention=run_retention,
                batch_abandon_after=batch_abandon_after,
            )
        except Exception:
            log.exception("housekeeping sweep failed; retrying in %gs", interval_seconds)
        await asyncio.sleep(interval_seconds)
