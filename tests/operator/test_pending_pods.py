"""`pending_verdict` and the lost-pod cases of `classify_attempt`, on pods as the real
scheduler, kubelet and controllers write them (k8s.io/kubernetes v1.37: the scheduler's
"0/N nodes are available" message, the kubelet's image and container waiting reasons, the
node lifecycle controller's Ready=False, the taint manager's and the scheduler's
DisruptionTarget conditions).

Each verdict and each classification here is also taken on the pod as `LivePods` keeps it
(`slim_pod`), and must be the same."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask._contract.resources import TaskRunSpec
from podtask_operator import attempts, pending_pods
from podtask_operator.attempts import AttemptKind, ClassifiedAttempt
from podtask_operator.live_pods import slim_pod
from podtask_operator.pending_pods import (
    LOST_DELETION_GRACE,
    PendingTimeouts,
    PendingVerdict,
    execution_started_at,
)
from podtask_operator.pods import pod_for_attempt
from podtask_operator.settings import OperatorSettings

CREATED = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
TIMEOUTS = PendingTimeouts(pending=timedelta(minutes=10), image_pull=timedelta(minutes=2))


def pending_verdict(
    pod: dict[str, Any], now: datetime, timeouts: PendingTimeouts
) -> PendingVerdict | None:
    verdict = pending_pods.pending_verdict(pod, now, timeouts)
    assert pending_pods.pending_verdict(slim_pod(pod), now, timeouts) == verdict
    return verdict


def classify_attempt(
    pod: dict[str, Any] | None, report: Any, attempt: int
) -> ClassifiedAttempt | None:
    result = attempts.classify_attempt(pod, report, attempt)
    if pod is not None:
        assert attempts.classify_attempt(slim_pod(pod), report, attempt) == result
    return result


def test_a_pod_as_live_pods_keeps_it_has_no_field_managers(created_pod: dict[str, Any]) -> None:
    pod = copy.deepcopy(created_pod)
    pod["metadata"]["managedFields"] = [{"manager": "podtask-operator", "fieldsV1": {"f:spec": {}}}]
    slim = slim_pod(pod)
    assert "managedFields" not in slim["metadata"]
    assert slim["metadata"]["labels"] == pod["metadata"]["labels"]
    assert slim["spec"]["containers"][0]["resources"] == pod["spec"]["containers"][0]["resources"]
    assert "env" not in slim["spec"]["containers"][0]
    assert slim["status"] == pod["status"]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _at(seconds: float) -> datetime:
    return CREATED + timedelta(seconds=seconds)


@pytest.fixture
def created_pod(
    run: dict[str, Any], spec: TaskRunSpec, settings: OperatorSettings
) -> dict[str, Any]:
    """The attempt's pod as the apiserver stores it on create, on machine large-2x."""
    pod = pod_for_attempt(run, spec, 1, "large-2x", settings)
    pod["metadata"].update(
        {"uid": "5f0c", "resourceVersion": "812", "creationTimestamp": _stamp(CREATED)}
    )
    pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    return pod


def _with_status(pod: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(pod)
    changed["status"] = {**changed["status"], **status}
    return changed


UNSCHEDULABLE_MESSAGE = (
    "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 "
    "nodes are available: 1 No preemption victims found for incoming pod."
)


def _unschedulable(pod: dict[str, Any]) -> dict[str, Any]:
    return _with_status(
        pod,
        {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": _stamp(_at(1)),
                    "reason": "Unschedulable",
                    "message": UNSCHEDULABLE_MESSAGE,
                }
            ]
        },
    )


def _kubelet_conditions(scheduled: datetime, ready: str = "False") -> list[dict[str, Any]]:
    def condition(type_: str, status: str, **extra: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": _stamp(scheduled),
            **extra,
        }

    not_ready = (
        {"reason": "ContainersNotReady", "message": "containers with unready status: [task]"}
        if ready == "False"
        else {}
    )
    return [
        condition("PodReadyToStartContainers", "True"),
        condition("Initialized", "True"),
        condition("Ready", ready, **not_ready),
        condition("ContainersReady", ready, **not_ready),
        condition("PodScheduled", "True"),
    ]


def _on_node(pod: dict[str, Any], state: dict[str, Any], scheduled: float = 2) -> dict[str, Any]:
    """The pod bound to node-1 and its container in `state`, as the kubelet writes it."""
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = "node-1"
    running = "running" in state
    return _with_status(
        bound,
        {
            "phase": "Running" if running else "Pending",
            "conditions": _kubelet_conditions(_at(scheduled), "True" if running else "False"),
            "hostIP": "10.0.0.5",
            "startTime": _stamp(_at(scheduled)),
            "containerStatuses": [
                {
                    "name": "task",
                    "image": "registry.example/tasks:v3",
                    "imageID": "",
                    "lastState": {},
                    "ready": running,
                    "restartCount": 0,
                    "started": running,
                    "state": state,
                }
            ],
        },
    )


PULL_ERROR = (
    'failed to pull and unpack image "registry.example/tasks:v3": failed to resolve reference '
    '"registry.example/tasks:v3": registry.example/tasks:v3: not found'
)


def _waiting(reason: str, message: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason, "message": message}}


# --- a pod that has not started ---------------------------------------------------------


def test_a_pod_being_scheduled_or_created_is_left_to_go_on(created_pod: dict[str, Any]) -> None:
    verdict = pending_verdict(created_pod, _at(5), TIMEOUTS)
    assert (verdict.notice, verdict.end, verdict.started_at) == (None, None, None)
    assert verdict.recheck_at == _at(600)
    creating = _on_node(created_pod, _waiting("ContainerCreating", ""))
    assert pending_verdict(creating, _at(5), TIMEOUTS).notice is None


def test_unschedulable_says_the_machine_and_the_schedulers_reason_at_once(
    created_pod: dict[str, Any],
) -> None:
    verdict = pending_verdict(_unschedulable(created_pod), _at(2), TIMEOUTS)
    assert verdict.end is None
    assert verdict.notice is not None
    assert verdict.notice.reason == "Unschedulable"
    # large-2x is 8 CPU / 16 GB; its requests are 0.75 of the CPU and all of the memory.
    assert verdict.notice.message == (
        "machine large-2x needs 8 CPU / 16Gi (requests 6 CPU / 16Gi); no node fits "
        f"({UNSCHEDULABLE_MESSAGE})"
    )
    assert verdict.recheck_at == _at(600)


def test_unschedulable_ends_the_attempt_after_the_pending_timeout(
    created_pod: dict[str, Any],
) -> None:
    verdict = pending_verdict(_unschedulable(created_pod), _at(600), TIMEOUTS)
    assert verdict.end is not None
    assert verdict.end.kind is AttemptKind.NOT_STARTED
    assert verdict.end.reason == "Unschedulable"
    assert verdict.end.error is not None
    assert verdict.end.error.message.endswith(
        "no node fits (" + UNSCHEDULABLE_MESSAGE + "); gave up after 600s"
    )


def test_a_pending_timeout_of_zero_waits_for_ever(created_pod: dict[str, Any]) -> None:
    forever = PendingTimeouts.of(0, 120)
    verdict = pending_verdict(_unschedulable(created_pod), _at(86400), forever)
    assert verdict.end is None and verdict.recheck_at is None
    assert verdict.notice is not None and verdict.notice.reason == "Unschedulable"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ErrImagePull", PULL_ERROR),
        (
            "ImagePullBackOff",
            f'Back-off pulling image "registry.example/tasks:v3": ErrImagePull: {PULL_ERROR}',
        ),
    ],
)
def test_a_failing_image_pull_ends_after_the_pull_timeout_from_scheduling(
    created_pod: dict[str, Any], reason: str, message: str
) -> None:
    pulling = _on_node(created_pod, _waiting(reason, message), scheduled=100)
    verdict = pending_verdict(pulling, _at(110), TIMEOUTS)
    assert verdict.notice is not None
    assert verdict.notice.reason == "ImagePullFailed"
    assert verdict.notice.message == f"the task's image cannot be pulled ({reason}: {message})"
    assert verdict.end is None
    assert verdict.recheck_at == _at(220)
    ended = pending_verdict(pulling, _at(220), TIMEOUTS).end
    assert ended is not None
    assert (ended.kind, ended.reason) == (AttemptKind.NOT_STARTED, "ImagePullFailed")


def test_the_pull_timeout_never_outlasts_the_pending_timeout(created_pod: dict[str, Any]) -> None:
    pulling = _on_node(created_pod, _waiting("ImagePullBackOff", "Back-off"), scheduled=590)
    assert pending_verdict(pulling, _at(595), TIMEOUTS).recheck_at == _at(600)


def test_an_invalid_image_name_ends_at_once(created_pod: dict[str, Any]) -> None:
    message = (
        'Failed to apply default image tag "Registry.example/Tasks": couldn\'t parse image '
        'name "Registry.example/Tasks": invalid reference format: repository name must be '
        "lowercase"
    )
    verdict = pending_verdict(
        _on_node(created_pod, _waiting("InvalidImageName", message)), _at(3), TIMEOUTS
    )
    assert verdict.end is not None and verdict.end.reason == "ImagePullFailed"


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("CreateContainerConfigError", 'secret "run-abc123-1-token" not found'),
        (
            "CreateContainerConfigError",
            "couldn't find key token in Secret tasks/run-abc123-1-token",
        ),
        ("CreateContainerError", "failed to reserve container name"),
    ],
)
def test_a_container_config_error_waits_for_the_pending_timeout(
    created_pod: dict[str, Any], reason: str, message: str
) -> None:
    stuck = _on_node(created_pod, _waiting(reason, message))
    verdict = pending_verdict(stuck, _at(300), TIMEOUTS)
    assert verdict.notice is not None
    assert verdict.notice.reason == "ContainerConfigError"
    assert f"{reason}: {message}" in verdict.notice.message
    assert verdict.end is None
    ended = pending_verdict(stuck, _at(600), TIMEOUTS).end
    assert ended is not None and ended.reason == "ContainerConfigError"


def test_a_pod_stuck_without_a_known_reason_ends_not_started(
    created_pod: dict[str, Any],
) -> None:
    creating = _on_node(created_pod, _waiting("ContainerCreating", ""))
    ended = pending_verdict(creating, _at(601), TIMEOUTS).end
    assert ended is not None
    assert (ended.kind, ended.reason) == (AttemptKind.NOT_STARTED, "NotStarted")


# --- a pod that started ------------------------------------------------------------------


def test_execution_starts_with_the_container_not_the_pod(created_pod: dict[str, Any]) -> None:
    running = _on_node(created_pod, {"running": {"startedAt": _stamp(_at(400))}})
    verdict = pending_verdict(running, _at(2000), TIMEOUTS)
    assert verdict == pending_verdict(running, _at(2000), TIMEOUTS)
    assert (verdict.started_at, verdict.notice, verdict.end) == (_at(400), None, None)
    assert execution_started_at(created_pod) is None


def test_a_running_pod_on_a_node_not_ready_is_a_notice_not_an_end(
    created_pod: dict[str, Any],
) -> None:
    running = _on_node(created_pod, {"running": {"startedAt": _stamp(_at(4))}})
    # What the node lifecycle controller does (MarkPodsNotReady): Ready goes False.
    for condition in running["status"]["conditions"]:
        if condition["type"] == "Ready":
            condition.update({"status": "False", "lastTransitionTime": _stamp(_at(100))})
    verdict = pending_verdict(running, _at(120), TIMEOUTS)
    assert verdict.end is None
    assert verdict.notice is not None
    assert verdict.notice.reason == "NodeNotReady"
    assert "node-1" in verdict.notice.message


def _taint_manager_deletes(pod: dict[str, Any], at: datetime) -> dict[str, Any]:
    """What the taint manager does once the node's NoExecute taint is past its toleration: a
    DisruptionTarget condition, then a graceful delete (deletionTimestamp = now + grace)."""
    deleted = copy.deepcopy(pod)
    deleted["status"]["conditions"].append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": _stamp(at),
            "reason": "DeletionByTaintManager",
            "message": "Taint manager: deleting due to NoExecute taint",
        }
    )
    deleted["metadata"]["deletionTimestamp"] = _stamp(at + timedelta(seconds=30))
    deleted["metadata"]["deletionGracePeriodSeconds"] = 30
    return deleted


def test_a_deletion_no_kubelet_confirms_is_a_lost_node(created_pod: dict[str, Any]) -> None:
    running = _on_node(created_pod, {"running": {"startedAt": _stamp(_at(4))}})
    deleted = _taint_manager_deletes(running, _at(400))
    overdue = _at(430) + LOST_DELETION_GRACE
    waiting = pending_verdict(deleted, _at(431), TIMEOUTS)
    assert waiting.end is None and waiting.recheck_at == overdue
    lost = pending_verdict(deleted, overdue, TIMEOUTS).end
    assert lost is not None
    assert (lost.kind, lost.reason) == (AttemptKind.LOST, "NodeLost")
    assert lost.error is not None
    assert "DeletionByTaintManager: Taint manager: deleting due to NoExecute taint" in (
        lost.error.message
    )
    assert "node-1" in lost.error.message


def test_a_pod_marked_node_lost_is_lost_at_once(created_pod: dict[str, Any]) -> None:
    running = _on_node(created_pod, {"running": {"startedAt": _stamp(_at(4))}})
    lost_pod = _with_status(
        running, {"phase": "Unknown", "reason": "NodeLost", "message": "node-1 is gone"}
    )
    lost = pending_verdict(lost_pod, _at(10), TIMEOUTS).end
    assert lost is not None and (lost.kind, lost.reason) == (AttemptKind.LOST, "NodeLost")


# --- a pod that ended: eviction, preemption, a node restart -----------------------------


def _ended(
    pod: dict[str, Any], exit_code: int, container_reason: str, **status: Any
) -> dict[str, Any]:
    started = _on_node(pod, {"running": {"startedAt": _stamp(_at(4))}})
    terminated = {
        "exitCode": exit_code,
        "reason": container_reason,
        "startedAt": _stamp(_at(4)),
        "finishedAt": _stamp(_at(60)),
    }
    started["status"]["containerStatuses"][0]["state"] = {"terminated": terminated}
    return _with_status(started, {"phase": "Failed", **status})


def _disruption(reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "DisruptionTarget",
        "status": "True",
        "lastTransitionTime": _stamp(_at(59)),
        "reason": reason,
        "message": message,
    }


@pytest.mark.parametrize(
    ("disruption", "reason"),
    [
        (
            _disruption(
                "PreemptionByScheduler",
                "default-scheduler: preempting to accommodate a higher priority pod",
            ),
            "Preempted",
        ),
        (_disruption("EvictionByEvictionAPI", "Eviction API: evicting"), "Evicted"),
        (
            _disruption(
                "TerminationByKubelet",
                "Pod was preempted by Kubelet to accommodate a critical pod.",
            ),
            "Evicted",
        ),
        (
            _disruption("DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"),
            "Evicted",
        ),
    ],
)
def test_a_disrupted_pod_is_a_lost_attempt(
    created_pod: dict[str, Any], disruption: dict[str, Any], reason: str
) -> None:
    ended = _ended(created_pod, 143, "Error")
    ended["status"]["conditions"].append(disruption)
    result = classify_attempt(ended, None, 1)
    assert result is not None
    assert (result.kind, result.reason) == (AttemptKind.LOST, reason)
    assert result.error is not None and disruption["message"] in result.error.message


def test_a_pod_evicted_by_the_kubelet_is_a_lost_attempt(created_pod: dict[str, Any]) -> None:
    message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 60Mi. "
    ended = _ended(created_pod, 137, "Error", reason="Evicted", message=message)
    result = classify_attempt(ended, None, 1)
    assert result is not None
    assert (result.kind, result.reason) == (AttemptKind.LOST, "Evicted")


def test_a_container_the_kubelet_lost_track_of_is_a_lost_node(
    created_pod: dict[str, Any],
) -> None:
    ended = _ended(created_pod, 137, "ContainerStatusUnknown")
    result = classify_attempt(ended, None, 1)
    assert result is not None
    assert (result.kind, result.reason) == (AttemptKind.LOST, "NodeLost")
