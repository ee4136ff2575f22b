"""Pod status as a kubelet writes it: the pod's conditions and each container's status
(waiting, running, terminated with its reason). Pure: the node agent builds its
`pods/status` writes from here."""

from __future__ import annotations

import datetime as dt

from podtask_devcluster.containers import ContainerRun
from podtask_devcluster.store import JsonObject


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(
    *, ready: bool, reason: str | None = None, scheduled_at: str | None = None
) -> list[JsonObject]:
    stamp = now_rfc3339()
    ready_condition: JsonObject = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    containers_ready = dict(ready_condition, type="ContainersReady")
    if reason:
        ready_condition["reason"] = reason
        containers_ready["reason"] = reason
    return [
        {
            "type": "Initialized",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": scheduled_at or stamp,
        },
        ready_condition,
        containers_ready,
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": scheduled_at or stamp,
        },
    ]


def container_status(
    spec: JsonObject,
    state: JsonObject,
    *,
    ready: bool,
    container_id: str = "",
    started: bool = False,
    restart_count: int = 0,
    last_state: JsonObject | None = None,
) -> JsonObject:
    status: JsonObject = {
        "name": spec.get("name", ""),
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": restart_count,
        "state": state,
        "lastState": last_state or {},
    }
    if container_id:
        status["containerID"] = container_id
    return status


def waiting_status(spec: JsonObject, reason: str, message: str | None = None) -> JsonObject:
    waiting: JsonObject = {"reason": reason}
    if message is not None:
        waiting["message"] = message
    return container_status(spec, {"waiting": waiting}, ready=False)


def terminated(container: ContainerRun) -> JsonObject:
    exit_code = container.exit_code if container.exit_code is not None else 0
    if container.start_error is not None:
        reason = "StartError"
    elif container.oom_killed:
        reason = "OOMKilled"
    elif exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    state: JsonObject = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": container.started_at,
        "finishedAt": container.finished_at or now_rfc3339(),
    }
    if container.signal:
        state["signal"] = container.signal
    if container.start_error:
        state["message"] = container.start_error
    if container.container_id:
        state["containerID"] = container.container_id
    return state


def live_status(
    spec: JsonObject,
    container: ContainerRun,
    *,
    restart_count: int = 0,
    last_state: JsonObject | None = None,
    waiting: JsonObject | None = None,
) -> JsonObject:
    """A started container's status now: running, or terminated once its process ended, or
    `waiting` (in back-off before it starts again); `restart_count` and `last_state` (its
    previous end) once it has been started again."""
    running = waiting is None and container.alive()
    if waiting is not None:
        state: JsonObject = {"waiting": waiting}
    elif running:
        state = {"running": {"startedAt": container.started_at}}
    else:
        state = {"terminated": terminated(container)}
    return container_status(
        spec,
        state,
        ready=running,
        container_id=container.container_id,
        started=running,
        restart_count=restart_count,
        last_state=last_state,
    )


def lost_container_statuses(pod: JsonObject, finished: str) -> list[JsonObject]:
    """What a restarted kubelet reports for containers whose processes did not survive: exit
    137, ContainerStatusUnknown."""
    previous = {c.get("name"): c for c in (pod.get("status") or {}).get("containerStatuses") or []}
    statuses = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        old = previous.get(container.get("name")) or {}
        started = ((old.get("state") or {}).get("running") or {}).get("startedAt")
        state: JsonObject = {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated",
            "finishedAt": finished,
        }
        if started:
            state["startedAt"] = started
        if old.get("containerID"):
            state["containerID"] = old["containerID"]
        statuses.append(
            container_status(
                container,
                {"terminated": state},
                ready=False,
                container_id=old.get("containerID", ""),
            )
        )
    return statuses
