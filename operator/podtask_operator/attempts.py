"""`classify_attempt`: what one finished attempt was, from its pod and the runner's report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from podtask._contract.resources import AttemptReport, RunError
from podtask._contract.wire import (
    EXIT_KILLED,
    EXIT_RUNNER_FAILED,
    EXIT_TERMINATED,
    NON_RETRYABLE_ERRORS,
    TERMINATED_ERROR,
    TIMED_OUT_ERROR,
)

# Pod-level reasons that mean the node or the cluster lost the pod, not the task failing.
LOST_POD_REASONS = frozenset({"Evicted", "NodeLost", "Preempting", "Shutdown", "Terminated"})
# A SIGKILL (`EXIT_KILLED`) without the container's reason `OOMKilled` is someone else's.
KILLED_ERROR = "TaskKilledError"
# The kubelet's container reason when it lost track of a container (the node restarted).
CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"
# The reasons of a pod's DisruptionTarget condition (k8s.io/api core/v1): who is taking the
# pod away, and the attempt reason it gives.
DISRUPTION_REASONS = {
    "PreemptionByScheduler": "Preempted",
    "TerminationByKubelet": "Evicted",
    "EvictionByEvictionAPI": "Evicted",
    "DeletionByTaintManager": "Evicted",
    "DeletionByPodGC": "NodeLost",
}


class AttemptKind(StrEnum):
    """What kind of ending one attempt had, as `classify_attempt` reads it from its pod."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ABORTED = "Aborted"
    OUT_OF_MEMORY = "OutOfMemory"
    TIMED_OUT = "TimedOut"
    CRASHED = "Crashed"
    LOST = "Lost"
    # The pod never started its container (unschedulable, image, config): a system failure.
    NOT_STARTED = "NotStarted"


@dataclass(frozen=True)
class ClassifiedAttempt:
    """One finished attempt as the operator judges it (not the hooks' `podtask.AttemptResult`,
    nor the runner's `CompletionReport`): its kind, and what the pod and report said."""

    kind: AttemptKind
    exit_code: int | None
    reason: str
    error: RunError | None = None
    output: Any = None


def _terminated_state(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated:
            return terminated  # type: ignore[no-any-return]
    return None


def disruption_reason(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """The reason and message of the pod's DisruptionTarget condition, when it has one."""
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return str(condition.get("reason") or ""), str(condition.get("message") or "")
    return None


def pod_is_finished(pod: Mapping[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def classify_attempt(
    pod: Mapping[str, Any] | None, report: AttemptReport | None, attempt: int
) -> ClassifiedAttempt | None:
    """The attempt's result, or None while its pod is still running.

    `pod` is None when the pod is gone. A report counts only for this attempt.
    """
    if report is not None and report.attempt != attempt:
        report = None
    if pod is not None and not pod_is_finished(pod):
        return None
    success = reported_success(pod, report, attempt)
    if success is not None:
        return success
    terminated = _terminated_state(pod) if pod is not None else None
    exit_code = terminated.get("exitCode") if terminated else None
    container_reason = (terminated or {}).get("reason") or ""
    pod_reason = (pod or {}).get("status", {}).get("reason") or ""

    if pod is None:
        error = RunError(type="PodLost", message="the attempt's pod disappeared before it finished")
        return ClassifiedAttempt(AttemptKind.LOST, None, "PodDeleted", error=error)
    if pod_reason in LOST_POD_REASONS:
        message = pod.get("status", {}).get("message") or f"the pod was lost ({pod_reason})"
        return ClassifiedAttempt(
            AttemptKind.LOST, exit_code, pod_reason, RunError(type=pod_reason, message=message)
        )
    disruption = disruption_reason(pod)
    if disruption is not None and disruption[0] in DISRUPTION_REASONS:
        reason = DISRUPTION_REASONS[disruption[0]]
        message = f"{disruption[0]}: {disruption[1]}" if disruption[1] else disruption[0]
        return ClassifiedAttempt(
            AttemptKind.LOST, exit_code, reason, RunError(type=reason, message=message)
        )
    if container_reason == CONTAINER_STATUS_UNKNOWN:
        message = (terminated or {}).get("message") or "the container could not be located"
        error = RunError(type="NodeLost", message=f"{CONTAINER_STATUS_UNKNOWN}: {message}")
        return ClassifiedAttempt(AttemptKind.LOST, exit_code, "NodeLost", error)
    if container_reason == "OOMKilled":
        error = RunError(type="OutOfMemoryError", message="the task ran out of memory (OOMKilled)")
        return ClassifiedAttempt(AttemptKind.OUT_OF_MEMORY, exit_code, "OOMKilled", error=error)
    if report is not None and report.error is not None:
        # What the task reported wins over how its process ended: a task error whose
        # cleanup was cut short by SIGTERM is still that task error.
        error = report.error
        if error.type == TIMED_OUT_ERROR:
            return ClassifiedAttempt(AttemptKind.TIMED_OUT, exit_code, "MaxDurationExceeded", error)
        if error.type == TERMINATED_ERROR:
            return ClassifiedAttempt(AttemptKind.LOST, exit_code, "Terminated", error=error)
        outcome = AttemptKind.ABORTED if error.type in NON_RETRYABLE_ERRORS else AttemptKind.FAILED
        return ClassifiedAttempt(outcome, exit_code, "Error", error=error)
    if exit_code == EXIT_TERMINATED:
        error = RunError(
            type=TERMINATED_ERROR, message="the attempt's pod was terminated (SIGTERM)"
        )
        return ClassifiedAttempt(AttemptKind.LOST, exit_code, "Terminated", error=error)
    if exit_code == EXIT_KILLED:
        # Killed from outside (by hand, a node agent, a runtime): not the task's doing, so a
        # system retry on the same machine, like a lost pod.
        error = RunError(
            type=KILLED_ERROR,
            message="the task process was killed by signal 9 (SIGKILL, exit code 137) "
            "without running out of memory",
        )
        return ClassifiedAttempt(AttemptKind.LOST, exit_code, "Killed", error=error)
    if exit_code == EXIT_RUNNER_FAILED:
        # The runner could not talk to the API: a system problem, not the task's.
        error = RunError(type="RunnerUnreachable", message="the runner could not reach the API")
        return ClassifiedAttempt(AttemptKind.LOST, exit_code, "RunnerUnreachable", error=error)
    message = (terminated or {}).get("message") or (
        f"the task process exited with code {exit_code} without reporting a result"
    )
    reason = container_reason or "Crashed"
    return ClassifiedAttempt(
        AttemptKind.CRASHED, exit_code, reason, RunError(type="TaskCrashed", message=message)
    )


def reported_success(
    pod: Mapping[str, Any] | None, report: AttemptReport | None, attempt: int
) -> ClassifiedAttempt | None:
    """The attempt's success when its runner reported one, whatever its pod does now.

    For the ends that do not wait for the pod (a cancel, maxDuration): once the task's
    success is recorded, stopping its pod cannot undo it.
    """
    if report is None or report.attempt != attempt or not report.ok:
        return None
    terminated = _terminated_state(pod) if pod is not None else None
    exit_code = terminated.get("exitCode") if terminated else None
    return ClassifiedAttempt(AttemptKind.SUCCEEDED, exit_code, "Completed", output=report.output)
