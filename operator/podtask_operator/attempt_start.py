"""Starting one attempt of an admitted run: its token Secret, its pod, the status that records
it, and what to do when the cluster refuses them (for now: the run waits; for good: it fails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podtask._contract.resources import RunPhase, TaskRunSpec, TaskRunStatus, parse_timestamp
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_operator import metrics
from podtask_operator.admission_order import Turn
from podtask_operator.cluster import ClusterApi
from podtask_operator.kube import Refused, Transient
from podtask_operator.lifecycle import attempt_deadline, start_attempt, waiting
from podtask_operator.pending_pods import PendingTimeouts
from podtask_operator.pods import pod_for_attempt, token_secret_for_attempt
from podtask_operator.run_writes import RunWriter
from podtask_operator.scheduler import AdmissionDeferred
from podtask_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

# Why a run waits when the cluster refuses its pod for now (`kube.Transient`).
_DEFERRED_REASONS = {"QuotaExceeded": "QuotaExceeded", "TooManyRequests": "TooManyRequests"}


@dataclass(frozen=True)
class StartedAttempt:
    pod: str
    # The first moment the attempt's verdict may change without an event, if any.
    recheck_at: datetime | None


class AttemptStarter:
    def __init__(
        self,
        cluster: ClusterApi,
        settings: OperatorSettings,
        writer: RunWriter,
        timeouts: PendingTimeouts,
        clock: Callable[[], datetime],
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._writer = writer
        self._timeouts = timeouts
        self._clock = clock

    def token_ttl(self, spec: TaskRunSpec) -> int:
        pending = self._settings.pending_timeout_seconds
        if spec.max_duration_seconds is None or pending == 0:
            return self._settings.runner_token_ttl_seconds
        # Long enough to report after the longest allowed wait for the pod to start and the
        # longest allowed run, and no longer.
        return int(pending) + spec.max_duration_seconds + 600

    async def start(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus, turn: Turn
    ) -> StartedAttempt | None:
        """Create the next attempt's Secret and pod, the pod in its `turn` (after the pods of
        the runs admitted before it), and record the attempt; None when the cluster refused
        them for good (the run has failed). Raises `AdmissionDeferred` when it refused them
        for now (the run says why it waits), `Withdrawn` when its bucket no longer admits it
        before its pod is sent."""
        turn.check()
        name = run["metadata"]["name"]
        started = start_attempt(name, spec, status, self._clock())
        token = sign_attempt_token(
            self._settings.runner_token_secret.encode(),
            name,
            started.attempt,
            ttl_seconds=self.token_ttl(spec),
        )
        machine = started.machine or spec.machine
        # The token goes into a Secret the pod refers to, never into the pod's spec; the
        # Secret first, so that the pod never starts without it.
        secret = token_secret_for_attempt(run, started.attempt, token)
        pod = pod_for_attempt(run, spec, started.attempt, machine, self._settings)
        what = "token Secret"
        try:
            await self._cluster.create_secret(secret)
            what = "pod"
            await turn.wait()
            try:
                await self._cluster.create_pod(pod)
            finally:
                turn.end()
        except Transient as exc:
            # An exceeded ResourceQuota frees up as other pods end; throttling passes: the run
            # keeps its place in line and says why it waits.
            await self._defer(run, status, what, exc)
        except Refused as exc:
            # The cluster refuses the object (a bad image name, a policy, RBAC): retrying the
            # same manifest cannot succeed, so the run ends and says why.
            await self._writer.fail(
                run,
                status,
                "PodRejected",
                f"the cluster refused the attempt's {what}: {exc.status} {exc.reason}: "
                f"{exc.message}",
            )
            return None
        # Unguarded: the pod exists now, so its attempt must be recorded whatever else changed
        # (a cancel is acted on from its own event; the API takes no report of an ended attempt).
        await self._writer.write(run, status, started, guarded=False)
        created = started.attempts[-1].started_at or self._clock()
        if started.attempt == 1:
            run_created = parse_timestamp(run["metadata"].get("creationTimestamp")) or created
            metrics.first_admission(spec, run_created, admitted=created)
        # The first moments the attempt's verdict may change without an event: its maxDuration
        # (counted from its start, so no earlier than this) and its pending timeout.
        due = [attempt_deadline(spec, created)]
        if self._timeouts.pending is not None:
            due.append(created + self._timeouts.pending)
        moments = [moment for moment in due if moment is not None]
        pod_name = str(pod["metadata"]["name"])
        log.info("run %s: attempt %d started in pod %s", name, started.attempt, pod_name)
        return StartedAttempt(pod_name, min(moments) if moments else None)

    async def _defer(
        self, run: dict[str, Any], status: TaskRunStatus, what: str, exc: Transient
    ) -> None:
        """Say on the run why its pod waits (the apiserver's own words), then raise
        `AdmissionDeferred` for the admission to try again after a backoff."""
        reason = _DEFERRED_REASONS.get(exc.reason, "ClusterUnavailable")
        message = (
            f"the cluster refused the attempt's {what} for now ({exc.status or 'no answer'} "
            f"{exc.reason}): {exc.message}; trying again"
        )
        said = next((c for c in status.conditions if c.type == "Waiting"), None)
        if said is None or said.reason != reason:
            now = self._clock()
            await self._writer.write(
                run, status, waiting(status, RunPhase.QUEUED, reason, message, now)
            )
            await self._cluster.post_event(run, "Warning", reason, message, now)
        raise AdmissionDeferred(reason, message) from exc
