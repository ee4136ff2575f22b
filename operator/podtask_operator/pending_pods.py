"""`pending_verdict`: what an attempt's pod that has not finished says about its attempt.

Pure: it reads the pod as kube-apiserver, the scheduler, the kubelet and the controllers
write it, and the time. Four things can be said of such a pod:

- It has not started and cannot, for now: the scheduler found no node (PodScheduled=False,
  reason Unschedulable), the kubelet cannot pull its image (ErrImagePull, ImagePullBackOff,
  InvalidImageName…) or cannot create its container (CreateContainerConfigError: a missing
  Secret or key; CreateContainerError). That is a `Notice`, shown on the TaskRun at once.
- It has not started for too long: the pending timeout (counted from the pod's creation; none
  for clusters that autoscale) or, for a failing image pull, the shorter pull timeout (counted
  from when the pod was scheduled) has passed; an invalid image name cannot get better and
  ends at once. The attempt ends with its own reason (`Unschedulable`, `ImagePullFailed`,
  `ContainerConfigError`, else `NotStarted`): a system failure, retried.
- It is lost: its node is gone. Kubernetes says so by deleting it (the taint manager after the
  node's NoExecute taint, an eviction, a preemption) while no kubelet confirms the deletion:
  a deletion still pending well past its grace period. A pod marked `NodeLost` or in phase
  `Unknown` is lost too. The attempt ends as lost, and is retried.
- Its node is not ready (the node controller marked the running pod Ready=False or Unknown):
  a `Notice` only. Kubernetes decides when a node is lost (the NoExecute taint's toleration,
  300 s by default); until then the task may well be running still.

Execution starts when the task's container starts: a maxDuration counts from there, never
from the pod's creation, so a pod that never started cannot end TimedOut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from podtask._contract.machines import PRESETS
from podtask._contract.resources import RunError, parse_timestamp
from podtask._contract.wire import LABEL_MACHINE
from podtask_operator.attempts import AttemptKind, ClassifiedAttempt, disruption_reason

UNSCHEDULABLE = "Unschedulable"
IMAGE_PULL_FAILED = "ImagePullFailed"
CONTAINER_CONFIG_ERROR = "ContainerConfigError"
NOT_STARTED = "NotStarted"
NODE_NOT_READY = "NodeNotReady"
NODE_LOST = "NodeLost"

# The kubelet's waiting reasons (k8s.io/kubernetes pkg/kubelet/images, kuberuntime).
_PULL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "ImageInspectError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
    }
)
# A name the kubelet cannot parse never becomes pullable: no point in waiting.
_HOPELESS_PULL_REASONS = frozenset({"InvalidImageName"})
_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# How long past its deletionTimestamp (now + its grace period, as the apiserver set it) a pod
# may still be there before its node is taken for lost: a live kubelet confirms at once.
LOST_DELETION_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class PendingTimeouts:
    """`pending`: how long a pod may stay not started (None: for ever, for autoscaling
    clusters). `image_pull`: how long its image may keep failing to pull once the pod is
    scheduled (None: as long as `pending`)."""

    pending: timedelta | None = timedelta(minutes=10)
    image_pull: timedelta | None = timedelta(minutes=2)

    @classmethod
    def of(cls, pending_seconds: float, image_pull_seconds: float) -> PendingTimeouts:
        return cls(
            timedelta(seconds=pending_seconds) if pending_seconds > 0 else None,
            timedelta(seconds=image_pull_seconds) if image_pull_seconds > 0 else None,
        )


@dataclass(frozen=True)
class Notice:
    """Why the attempt does not go on, for the TaskRun's `Stalled` condition and an Event."""

    reason: str
    message: str


@dataclass(frozen=True)
class PendingVerdict:
    # When the task's container started (execution); None while it has not.
    started_at: datetime | None = None
    notice: Notice | None = None
    # End the attempt now, with this result (the pod is to be deleted).
    end: ClassifiedAttempt | None = None
    # When the verdict changes without any event (a timeout), if it may.
    recheck_at: datetime | None = None


def _status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("status") or {}


def _condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in _status(pod).get("conditions") or []:
        if condition.get("type") == type_:
            return condition  # type: ignore[no-any-return]
    return None


def execution_started_at(pod: Mapping[str, Any]) -> datetime | None:
    """When the first container started running (its `startedAt`), if one did."""
    starts: list[datetime] = []
    for container in _status(pod).get("containerStatuses") or []:
        state = container.get("state") or {}
        for key in ("running", "terminated"):
            started = parse_timestamp((state.get(key) or {}).get("startedAt"))
            if started is not None:
                starts.append(started)
    return min(starts) if starts else None


def _has_started(pod: Mapping[str, Any]) -> bool:
    for container in _status(pod).get("containerStatuses") or []:
        state = container.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def _waiting(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first container's waiting reason and message that says it cannot start."""
    for container in _status(pod).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason") or ""
        if reason in _PULL_REASONS or reason in _CONFIG_REASONS:
            return reason, waiting.get("message") or ""
    return None


def _cpu(quantity: str) -> str:
    cores = float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    return f"{cores:g}"


def _memory(quantity: str) -> str:
    if quantity.endswith("Mi") and quantity[:-2].isdigit() and int(quantity[:-2]) % 1024 == 0:
        return f"{int(quantity[:-2]) // 1024}Gi"
    return quantity


def _requests(pod: Mapping[str, Any]) -> str | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        if "cpu" in requests and "memory" in requests:
            try:
                return f"{_cpu(str(requests['cpu']))} CPU / {_memory(str(requests['memory']))}"
            except ValueError:
                return f"{requests['cpu']} CPU / {requests['memory']}"
    return None


def _needs(machine: str, pod: Mapping[str, Any]) -> str:
    """What the machine is (its preset, as the user chose it) and what its pod requests of a
    node (a ratio of it), when they differ: the scheduler's message is about the latter."""
    requests = _requests(pod)
    preset = PRESETS.get(machine)
    if preset is None:
        return requests or "its resources"
    size = f"{preset.cpu:g} CPU / {_memory(f'{preset.memory_mib}Mi')}"
    return size if requests in (None, size) else f"{size} (requests {requests})"


def start_problem(pod: Mapping[str, Any]) -> Notice | None:
    """Why a pod that has not started cannot start, as the cluster says it; None if nothing
    is known to be wrong (it is being scheduled, pulled or created)."""
    scheduled = _condition(pod, "PodScheduled")
    if (
        scheduled
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == UNSCHEDULABLE
    ):
        machine = (pod.get("metadata", {}).get("labels") or {}).get(LABEL_MACHINE, "?")
        why = scheduled.get("message") or "the scheduler found no node for it"
        return Notice(
            UNSCHEDULABLE, f"machine {machine} needs {_needs(machine, pod)}; no node fits ({why})"
        )
    waiting = _waiting(pod)
    if waiting is None:
        return None
    reason, message = waiting
    detail = f"{reason}: {message}" if message else reason
    if reason in _PULL_REASONS:
        return Notice(IMAGE_PULL_FAILED, f"the task's image cannot be pulled ({detail})")
    return Notice(CONTAINER_CONFIG_ERROR, f"the task's container cannot be created ({detail})")


def _scheduled_at(pod: Mapping[str, Any], created: datetime) -> datetime:
    scheduled = _condition(pod, "PodScheduled")
    if scheduled and scheduled.get("status") == "True":
        return parse_timestamp(scheduled.get("lastTransitionTime")) or created
    return created


def _lost(
    pod: Mapping[str, Any], now: datetime
) -> tuple[ClassifiedAttempt | None, datetime | None]:
    """The lost attempt's result, or when the pod will count as lost if nothing changes."""
    status = _status(pod)
    if status.get("reason") == NODE_LOST or status.get("phase") == "Unknown":
        message = status.get("message") or "the pod's node was lost"
        return _lost_result(NODE_LOST, message), None
    deleted = parse_timestamp(pod.get("metadata", {}).get("deletionTimestamp"))
    if deleted is None:
        return None, None
    overdue = deleted + LOST_DELETION_GRACE
    if now < overdue:
        return None, overdue
    node = (pod.get("spec") or {}).get("nodeName") or "its node"
    disruption = disruption_reason(pod)
    why = f" ({disruption[0]}: {disruption[1]})" if disruption else ""
    message = (
        f"the pod was deleted{why} and {node} never confirmed it: the node is lost, and the "
        "task with it"
    )
    return _lost_result(NODE_LOST, message), None


def _lost_result(reason: str, message: str) -> ClassifiedAttempt:
    return ClassifiedAttempt(AttemptKind.LOST, None, reason, RunError(type=reason, message=message))


def _node_not_ready(pod: Mapping[str, Any]) -> Notice | None:
    ready = _condition(pod, "Ready")
    if ready is None or ready.get("status") not in ("False", "Unknown"):
        return None
    if _status(pod).get("phase") != "Running":
        return None
    if not any(
        "running" in (c.get("state") or {}) for c in _status(pod).get("containerStatuses") or []
    ):
        return None
    node = (pod.get("spec") or {}).get("nodeName") or "the pod's node"
    return Notice(
        NODE_NOT_READY,
        f"node {node} is not ready: the attempt goes on if it comes back, and is retried "
        "if Kubernetes gives its pod up",
    )


def pending_verdict(
    pod: Mapping[str, Any], now: datetime, timeouts: PendingTimeouts
) -> PendingVerdict:
    """The verdict on a pod that has not finished (see the module's docstring)."""
    lost, lost_at = _lost(pod, now)
    if lost is not None:
        return PendingVerdict(end=lost)
    if _has_started(pod):
        return PendingVerdict(
            started_at=execution_started_at(pod) or now,
            notice=_node_not_ready(pod),
            recheck_at=lost_at,
        )
    created = parse_timestamp(pod.get("metadata", {}).get("creationTimestamp")) or now
    problem = start_problem(pod)
    deadline = None if timeouts.pending is None else created + timeouts.pending
    if problem is not None and problem.reason == IMAGE_PULL_FAILED:
        waiting = _waiting(pod)
        if waiting is not None and waiting[0] in _HOPELESS_PULL_REASONS:
            deadline = now
        elif timeouts.image_pull is not None:
            pull_deadline = _scheduled_at(pod, created) + timeouts.image_pull
            deadline = pull_deadline if deadline is None else min(deadline, pull_deadline)
    if deadline is not None and deadline <= now:
        reason = problem.reason if problem is not None else NOT_STARTED
        waited = (now - created).total_seconds()
        message = (
            problem.message
            if problem is not None
            else "the pod was created but its container never started"
        ) + f"; gave up after {waited:.0f}s"
        return PendingVerdict(
            notice=problem,
            end=ClassifiedAttempt(
                AttemptKind.NOT_STARTED, None, reason, RunError(type=reason, message=message)
            ),
        )
    recheck = [t for t in (deadline, lost_at) if t is not None]
    return PendingVerdict(notice=problem, recheck_at=min(recheck) if recheck else None)
