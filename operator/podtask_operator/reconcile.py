"""The reconcile flow of TaskRuns: read, decide with the pure modules, act.

Runs are reconciled one at a time per run (a lock per name), always from a
fresh read, so the pod handler, the TaskRun handler, timers and admission never
race each other into a second attempt. Admission itself belongs to the
`Scheduler`; this module tells it which runs wait and starts the ones it admits.

Two rules keep a reported result from being missed. An attempt is judged from a read
of the run made after the read of its pod: the runner reports before it exits, so a
pod seen ended comes with its report. And a decision is written only onto the version
of the run it was taken from (a resourceVersion precondition): a report or a cancel
that lands in between makes the write fail, and the run is decided again.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from podtask.attempt_tokens import sign_attempt_token
from podtask.bounded_errors import bounded_error
from podtask.resources import (
    LABEL_RUN,
    RunError,
    RunPhase,
    TaskRunSpec,
    TaskRunStatus,
    parse_timestamp,
)
from podtask_operator.admission import QueueControls
from podtask_operator.attempts import (
    AttemptResult,
    classify_attempt,
    pod_is_finished,
    reported_success,
)
from podtask_operator.batch_gate import BatchGate
from podtask_operator.cluster import Cluster, RunChanged
from podtask_operator.kube import KubeError, Refused, Transient
from podtask_operator.lifecycle import (
    STALLED,
    PendingAction,
    attempt_deadline,
    end_attempt,
    finished,
    pending_action,
    start_attempt,
    waiting,
    with_condition,
    without_condition,
)
from podtask_operator.pending_pods import Notice, PendingTimeouts, pending_verdict
from podtask_operator.pods import pod_for_attempt, pod_name, token_secret_for_attempt
from podtask_operator.queues import BucketKey
from podtask_operator.scheduler import AdmissionDeferred, Scheduler
from podtask_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 5
# Decisions in a row refused because the run changed under them; each follows someone
# else's write, so this bound only keeps a writer that never stops from looping us.
DECISION_TRIES = 5
QUEUE_STATUS_DELAY_SECONDS = 0.5
# Why a run waits when the cluster refuses its pod for now (`kube.Transient`).
_DEFERRED_REASONS = {"QuotaExceeded": "QuotaExceeded", "TooManyRequests": "TooManyRequests"}
# Phases of a run that has no attempt running and may be admitted.
_STARTABLE = frozenset({None, RunPhase.DELAYED, RunPhase.QUEUED, RunPhase.WAITING_TO_RETRY})

# The runner's report belongs to the API; the operator never writes it, but for one thing:
# the output it moves to `status.output` when the run completes (`output_moved`).
_API_OWNED = frozenset({"report"})


def output_moved(old: TaskRunStatus, new: TaskRunStatus) -> bool:
    """Whether `new` holds the report's output in `status.output` and the report no longer:
    the output is stored once, or a 512 KiB output would count twice in the TaskRun's budget
    (`podtask.limits`) and the final write would be over what etcd stores."""
    return (
        old.report is not None
        and old.report.output is not None
        and new.report is not None
        and new.report.output is None
        and new.output is not None
    )


def status_patch(old: TaskRunStatus, new: TaskRunStatus) -> dict[str, Any]:
    """The merge patch from `old` to `new`: changed keys, and nulls for cleared ones."""
    before, after = old.to_wire(), new.to_wire()
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    for key in _API_OWNED:
        patch.pop(key, None)
    if output_moved(old, new):
        # Only that key of the report: a merge patch's null removes it, the rest stays.
        patch["report"] = {"output": None}
    return patch


def utcnow() -> datetime:
    return datetime.now(UTC)


def _created(run: dict[str, Any], fallback: datetime) -> datetime:
    return parse_timestamp(run["metadata"].get("creationTimestamp")) or fallback


def line_stamp(spec: TaskRunSpec, created: datetime) -> str:
    """A run's time in its queue's line: when it was triggered, else when it was created.

    Creation timestamps have whole seconds only; a batch needs its item order kept.
    """
    when = (spec.triggered_at or created).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _phase(status: TaskRunStatus) -> RunPhase | None:
    return RunPhase(status.phase) if status.phase else None


def queue_controls(queue: dict[str, Any]) -> QueueControls:
    spec = queue.get("spec") or {}
    return QueueControls(
        concurrency_limit=spec.get("concurrencyLimit"), paused=bool(spec.get("paused", False))
    )


class RunReconciler:
    def __init__(
        self,
        cluster: Cluster,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._cluster = cluster
        self._settings = settings
        self._clock = clock
        self._random = random
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, tuple[datetime, asyncio.TimerHandle]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._queue_writes: dict[str, asyncio.TimerHandle] = {}
        self._queue_counts_written: dict[str, tuple[int, int]] = {}
        self._timeouts = PendingTimeouts.of(
            settings.pending_timeout_seconds, settings.image_pull_timeout_seconds
        )
        # Pods not finished whose last event had something to say (a stall, a deletion):
        # their next event is reconciled too, if only to clear what was said.
        self._noticed_pods: set[str] = set()
        self.scheduler = Scheduler(
            settings.default_concurrency_limit, self._start_admitted, self._queue_changed
        )
        self.batches = BatchGate(cluster.get_config_map)

    # --- what the kopf handlers call ---------------------------------------------------

    async def rebuild(self) -> None:
        """Rebuild the queues from the cluster before admitting anything (start-up)."""
        for pod in await self._cluster.list_pods(LABEL_RUN):
            self.scheduler.observe_pod(pod)
        for queue in await self._cluster.list_queues():
            self.scheduler.set_controls(queue["metadata"]["name"], queue_controls(queue))
        runs = await self._cluster.list_runs()
        for run in runs:
            await self.reconcile(run["metadata"]["name"], listed=run)
        await self.scheduler.admit_all()
        for run in runs:
            await self.mark_waiting(run["metadata"]["name"])
        for queue_name in {key[0] for key in self.scheduler.buckets()}:
            self._queue_changed(queue_name)
        log.info("rebuilt the queues from %d runs", len(runs))

    async def run_changed(self, name: str, *, deleted: bool = False) -> None:
        if deleted:
            key = self.scheduler.withdraw(name)
            self.forget(name)
            self.batches.forget(name)
        else:
            key = await self.reconcile(name)
        if key is not None:
            await self.scheduler.admit(key)
            await self.mark_waiting(name)

    async def batch_changed(self, marker: dict[str, Any], *, deleted: bool = False) -> None:
        """A batch's marker changed: once committed, its held runs go on."""
        for name in self.batches.marker_changed(marker, deleted=deleted):
            self._spawn(self.run_changed(name))

    async def pod_changed(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        freed = self.scheduler.observe_pod(pod, deleted=deleted)
        run = (pod["metadata"].get("labels") or {}).get(LABEL_RUN)
        if run is not None and (freed is not None or self._worth_a_look(pod, deleted)):
            await self.reconcile(run)
        if freed is not None:
            await self.scheduler.admit(freed)

    def _worth_a_look(self, pod: dict[str, Any], deleted: bool) -> bool:
        """Whether a change of a pod that has not finished may change its attempt: it cannot
        start, it is being deleted, its node is not ready, or it was one of those."""
        name = pod["metadata"]["name"]
        if deleted or pod_is_finished(pod):
            self._noticed_pods.discard(name)
            return False
        verdict = pending_verdict(pod, self._clock(), self._timeouts)
        if verdict.notice or verdict.end or pod["metadata"].get("deletionTimestamp"):
            self._noticed_pods.add(name)
            return True
        if name in self._noticed_pods:
            self._noticed_pods.discard(name)
            return True
        return False

    async def queue_changed(self, name: str, queue: dict[str, Any] | None) -> None:
        keys = self.scheduler.set_controls(name, None if queue is None else queue_controls(queue))
        self._queue_changed(name)
        await self.scheduler.admit_all(keys)

    def forget(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer[1].cancel()
        lock = self._locks.get(name)
        if lock is not None and not lock.locked():
            del self._locks[name]

    # --- reconcile ---------------------------------------------------------------------

    async def reconcile(self, name: str, listed: dict[str, Any] | None = None) -> BucketKey | None:
        """Bring one run a step forward; the bucket to admit from, if it now waits in one.

        `listed` is the run as a list just returned it, to spare a read at start-up.
        """
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            for _ in range(DECISION_TRIES):
                try:
                    run = listed if listed is not None else await self._cluster.get_run(name)
                    listed = None
                    if run is None:
                        self.forget(name)
                        return self.scheduler.withdraw(name)
                    return await self._reconcile(run)
                except RunChanged:
                    log.info("run %s changed while it was decided; deciding again", name)
                except Exception:
                    # Watch events are not redelivered: without this, a run whose reconcile
                    # failed would wait for its next change, which may never come.
                    log.exception(
                        "run %s: reconcile failed; trying again in %ss", name, RETRY_SECONDS
                    )
                    break
            self._wake_at(name, self._clock() + timedelta(seconds=RETRY_SECONDS))
            return None

    async def _reconcile(
        self, run: dict[str, Any], pod_seen: tuple[int, dict[str, Any] | None] | None = None
    ) -> BucketKey | None:
        """`pod_seen`: the attempt number and its pod, as read just before `run` was."""
        name = run["metadata"]["name"]
        try:
            spec = TaskRunSpec.model_validate(run.get("spec") or {})
            status = TaskRunStatus.model_validate(run.get("status") or {})
        except ValidationError as exc:
            await self._fail(run, None, "InvalidTaskRun", f"the TaskRun is invalid: {exc}")
            return self.scheduler.withdraw(name)
        if not await self.batches.admits(run):
            return self.scheduler.withdraw(name)  # its batch is not committed (yet)
        phase = _phase(status)
        now = self._clock()
        if phase is not None and phase.is_final:
            self.forget(name)
            return self.scheduler.withdraw(name)
        if phase is RunPhase.EXECUTING:
            if pod_seen is None or pod_seen[0] != status.attempt:
                # The pod first, then the run: the run read second holds any report the
                # runner made before the pod was seen ending.
                pod = await self._cluster.get_pod(pod_name(name, status.attempt))
                fresh = await self._cluster.get_run(name)
                if fresh is None:
                    self.forget(name)
                    return self.scheduler.withdraw(name)
                return await self._reconcile(fresh, (status.attempt, pod))
            if spec.cancel_requested_at is not None:
                await self._cancel(run, spec, status, pod_seen[1])
                return self.scheduler.withdraw(name)
            await self._check_attempt(run, spec, status, pod_seen[1])
            return None
        if spec.cancel_requested_at is not None:
            await self._cancel(run, spec, status, None)
            return self.scheduler.withdraw(name)
        retry_at = status.next_attempt_at
        if phase is RunPhase.WAITING_TO_RETRY and retry_at is not None and retry_at > now:
            self._wake_at(name, retry_at)
            return None
        if status.attempt == 0:
            pending = pending_action(spec, _created(run, now), now)
            if pending.action is PendingAction.DELAY:
                assert pending.until is not None
                self.scheduler.withdraw(name)
                if phase is not RunPhase.DELAYED:
                    message = f"delayed until {pending.until.isoformat()}"
                    await self._write(
                        run, status, waiting(status, RunPhase.DELAYED, "Delayed", message, now)
                    )
                self._wake_at(name, pending.until)
                return None
            if pending.action is PendingAction.EXPIRE:
                await self._expire(run, status)
                return self.scheduler.withdraw(name)
            if pending.until is not None:
                self._wake_at(name, pending.until)
        return self.scheduler.enqueue(name, spec, line_stamp(spec, _created(run, now)))

    async def mark_waiting(self, name: str) -> None:
        """Say in the run's status why it waits, if admission left it waiting."""
        if not self.scheduler.is_waiting(name):
            return
        async with self._locks.setdefault(name, asyncio.Lock()):
            why = self.scheduler.why_waiting(name)
            run = await self._cluster.get_run(name) if why is not None else None
            if run is None or why is None:
                return
            status = TaskRunStatus.model_validate(run.get("status") or {})
            if _phase(status) not in _STARTABLE or _phase(status) is RunPhase.QUEUED:
                return
            reason, message = why
            try:
                await self._write(
                    run, status, waiting(status, RunPhase.QUEUED, reason, message, self._clock())
                )
            except RunChanged:
                return  # the write that changed it is reconciled from its own watch event
            await self._cluster.post_event(run, "Normal", reason, message, self._clock())

    # --- starting an attempt -----------------------------------------------------------

    def _token_ttl(self, spec: TaskRunSpec) -> int:
        pending = self._settings.pending_timeout_seconds
        if spec.max_duration_seconds is None or pending == 0:
            return self._settings.runner_token_ttl_seconds
        # Long enough to report after the longest allowed wait for the pod to start and the
        # longest allowed run, and no longer.
        return int(pending) + spec.max_duration_seconds + 600

    async def _start_admitted(self, name: str) -> str | None:
        """Start the next attempt of a run the scheduler admitted; its pod, or None if it
        may no longer start (canceled, expired, gone, already running)."""
        async with self._locks.setdefault(name, asyncio.Lock()):
            for _ in range(DECISION_TRIES - 1):
                try:
                    return await self._start_fresh(name)
                except RunChanged:
                    log.info("run %s changed while it was started; deciding again", name)
            return await self._start_fresh(name)

    async def _start_fresh(self, name: str) -> str | None:
        """One try at starting the next attempt of `name`, from a fresh read of it."""
        run = await self._cluster.get_run(name)
        if run is None:
            return None
        try:
            spec = TaskRunSpec.model_validate(run.get("spec") or {})
            status = TaskRunStatus.model_validate(run.get("status") or {})
        except ValidationError:
            return None
        now = self._clock()
        if _phase(status) not in _STARTABLE or spec.cancel_requested_at is not None:
            return None
        if status.attempt == 0:
            pending = pending_action(spec, _created(run, now), now)
            if pending.action is PendingAction.EXPIRE:
                await self._expire(run, status)
                return None
            if pending.action is PendingAction.DELAY:
                return None
        success = reported_success(None, status.report, status.attempt)
        if success is not None:
            # The last attempt reported success after all (its pod was lost just as it
            # reported): the run is done, and is never executed again.
            await self._end_attempt(run, spec, status, success)
            return None
        return await self._start_attempt(run, spec, status)

    async def _start_attempt(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus
    ) -> str | None:
        name = run["metadata"]["name"]
        started = start_attempt(name, spec, status, self._clock())
        token = sign_attempt_token(
            self._settings.runner_token_secret.encode(),
            name,
            started.attempt,
            ttl_seconds=self._token_ttl(spec),
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
            await self._cluster.create_pod(pod)
        except Transient as exc:
            # An exceeded ResourceQuota frees up as other pods end; throttling passes: the run
            # keeps its place in line and says why it waits.
            await self._defer(run, status, what, exc)
        except Refused as exc:
            # The cluster refuses the object (a bad image name, a policy, RBAC): retrying the
            # same manifest cannot succeed, so the run ends and says why.
            await self._fail(
                run,
                status,
                "PodRejected",
                f"the cluster refused the attempt's {what}: {exc.status} {exc.reason}: "
                f"{exc.message}",
            )
            return None
        # Unguarded: the pod exists now, so its attempt must be recorded whatever else changed
        # (a cancel is acted on from its own event; the API takes no report of an ended attempt).
        await self._write(run, status, started, guarded=False)
        created = started.attempts[-1].started_at or self._clock()
        # The first moments the attempt's verdict may change without an event: its maxDuration
        # (counted from its start, so no earlier than this) and its pending timeout.
        due = [attempt_deadline(spec, created)]
        if self._timeouts.pending is not None:
            due.append(created + self._timeouts.pending)
        if moments := [moment for moment in due if moment is not None]:
            self._wake_at(name, min(moments))
        log.info(
            "run %s: attempt %d started in pod %s", name, started.attempt, pod["metadata"]["name"]
        )
        return str(pod["metadata"]["name"])

    async def _defer(
        self, run: dict[str, Any], status: TaskRunStatus, what: str, exc: Transient
    ) -> None:
        """Say on the run why its pod waits (the apiserver's own words), then raise
        `AdmissionDeferred` for the scheduler to try again after a backoff."""
        reason = _DEFERRED_REASONS.get(exc.reason, "ClusterUnavailable")
        message = (
            f"the cluster refused the attempt's {what} for now ({exc.status or 'no answer'} "
            f"{exc.reason}): {exc.message}; trying again"
        )
        said = next((c for c in status.conditions if c.type == "Waiting"), None)
        if said is None or said.reason != reason:
            now = self._clock()
            await self._write(run, status, waiting(status, RunPhase.QUEUED, reason, message, now))
            await self._cluster.post_event(run, "Warning", reason, message, now)
        raise AdmissionDeferred(reason, message) from exc

    # --- while an attempt runs ---------------------------------------------------------

    async def _check_attempt(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        pod: dict[str, Any] | None,
    ) -> None:
        """Judge the current attempt from `pod` and `run`, read in that order."""
        name = run["metadata"]["name"]
        result = classify_attempt(pod, status.report, status.attempt)
        now = self._clock()
        if result is None:
            assert pod is not None  # a pod that is gone is a result (lost)
            verdict = pending_verdict(pod, now, self._timeouts)
            if verdict.end is not None:
                await self._end_stalled(run, spec, status, pod, verdict.end)
                return
            started = verdict.started_at
            if started is not None and status.attempts and status.attempts[-1].started_at:
                # Never before the attempt began, whatever the node's clock says.
                started = max(started, status.attempts[-1].started_at)
            deadline = attempt_deadline(spec, started)
            if deadline is None or deadline > now:
                await self._show_stall(run, status, verdict.notice)
                due = [t for t in (deadline, verdict.recheck_at) if t is not None]
                if due:
                    self._wake_at(name, min(due))
                return
            success = reported_success(pod, status.report, status.attempt)
            if success is not None:
                await self._end_attempt(run, spec, status, success)
                return
            await self._cluster.delete_pod(pod_name(name, status.attempt))
            message = f"the attempt ran past its maxDuration of {spec.max_duration_seconds}s"
            error = RunError(type="MaxDurationExceededError", message=message)
            await self._finish(
                run,
                status,
                finished(
                    status, RunPhase.TIMED_OUT, now, reason="TimedOut", message=message, error=error
                ),
            )
            return
        await self._end_attempt(run, spec, status, result)

    async def _show_stall(
        self, run: dict[str, Any], status: TaskRunStatus, notice: Notice | None
    ) -> None:
        """Keep the run's `Stalled` condition in step with `notice`; an Event when it changes.

        Only a new reason is written: the kubelet's messages flip (ErrImagePull, then
        ImagePullBackOff, again and again) and each would be one more write and Event."""
        said = next((c for c in status.conditions if c.type == STALLED), None)
        if notice is None:
            if said is not None:
                cleared = status.model_copy(
                    update={"conditions": without_condition(status, STALLED)}
                )
                await self._write(run, status, cleared)
            return
        if said is not None and said.reason == notice.reason:
            return
        now = self._clock()
        conditions = with_condition(status, STALLED, notice.reason, notice.message, now)
        await self._write(run, status, status.model_copy(update={"conditions": conditions}))
        await self._cluster.post_event(run, "Warning", notice.reason, notice.message, now)

    async def _end_stalled(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        pod: dict[str, Any],
        result: AttemptResult,
    ) -> None:
        """End an attempt whose pod never started, or whose node is lost; free its slot."""
        success = reported_success(pod, status.report, status.attempt)
        await self._end_attempt(run, spec, status, success or result)
        # The attempt's end is recorded first: a pod deleted before would be judged again,
        # and gone, as a plain PodDeleted. A lost node's pod is deleted already: this changes
        # nothing for it, and the kubelet kills it if the node comes back.
        try:
            await self._cluster.delete_pod(pod_name(run["metadata"]["name"], status.attempt))
        except KubeError:
            log.warning("could not delete the pod of an ended attempt", exc_info=True)
        freed = self.scheduler.observe_pod(pod, deleted=True)
        if freed is not None:
            self._spawn(self.scheduler.admit(freed))

    async def _end_attempt(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus, result: AttemptResult
    ) -> None:
        name = run["metadata"]["name"]
        now = self._clock()
        end = end_attempt(spec, status, result, now, self._random)
        log.info("run %s: attempt %d ended %s", name, status.attempt, result.outcome)
        if end.retry:
            await self._write(run, status, end.status)
            assert end.status.next_attempt_at is not None
            await self._cluster.post_event(
                run, "Warning", "WaitingToRetry", end.status.conditions[-1].message, now
            )
            self._wake_at(name, end.status.next_attempt_at)
        else:
            await self._finish(run, status, end.status)

    # --- ends that are not an attempt's result -----------------------------------------

    async def _cancel(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        pod: dict[str, Any] | None,
    ) -> None:
        name = run["metadata"]["name"]
        if _phase(status) is RunPhase.EXECUTING:
            success = reported_success(pod, status.report, status.attempt)
            if success is not None:
                # The task finished before the cancel took effect: it completed.
                await self._end_attempt(run, spec, status, success)
                return
            await self._cluster.delete_pod(pod_name(name, status.attempt))
        message = "the run was canceled"
        await self._finish(
            run,
            status,
            finished(status, RunPhase.CANCELED, self._clock(), reason="Canceled", message=message),
        )

    async def _expire(self, run: dict[str, Any], status: TaskRunStatus) -> None:
        ttl = run.get("spec", {}).get("ttlSeconds")
        message = f"the run did not start within its ttl of {ttl}s"
        await self._finish(
            run,
            status,
            finished(status, RunPhase.EXPIRED, self._clock(), reason="Expired", message=message),
        )

    async def _fail(
        self, run: dict[str, Any], status: TaskRunStatus | None, error_type: str, message: str
    ) -> None:
        """End the run as a SystemFailure: podtask, not the task, could not go on."""
        if (run.get("status") or {}).get("phase") == RunPhase.SYSTEM_FAILURE.value:
            return
        if status is None:
            # The status itself does not parse: replace the fields that say how it ended.
            error = bounded_error(RunError(type=error_type, message=message))
            await self._cluster.patch_run_status(
                run["metadata"]["name"],
                {
                    "phase": RunPhase.SYSTEM_FAILURE.value,
                    "error": error.to_wire(),
                    "finishedAt": self._clock().isoformat(),
                },
            )
            return
        error = RunError(type=error_type, message=message)
        await self._finish(
            run,
            status,
            finished(
                status,
                RunPhase.SYSTEM_FAILURE,
                self._clock(),
                reason=error_type,
                message=message,
                error=error,
            ),
        )

    async def _finish(self, run: dict[str, Any], old: TaskRunStatus, new: TaskRunStatus) -> None:
        await self._write(run, old, new)
        name = run["metadata"]["name"]
        condition = new.conditions[-1] if new.conditions else None
        if condition is not None:
            kind = "Normal" if new.phase == RunPhase.COMPLETED.value else "Warning"
            await self._cluster.post_event(
                run, kind, condition.reason, condition.message, self._clock()
            )
        self.forget(name)

    async def _write(
        self,
        run: dict[str, Any],
        old: TaskRunStatus,
        new: TaskRunStatus,
        *,
        guarded: bool = True,
    ) -> None:
        """Write the change from `old` to `new`; `guarded`, only onto the version of `run`
        they were decided from (else `RunChanged`)."""
        patch = status_patch(old, new)
        if patch:
            version = run["metadata"].get("resourceVersion") if guarded else None
            await self._cluster.patch_run_status(
                run["metadata"]["name"], patch, resource_version=version
            )

    # --- timers and queue status -------------------------------------------------------

    def _wake_at(self, name: str, due: datetime) -> None:
        """Reconcile `name` again at `due` (the earliest of its pending wake-ups).

        Timers live in memory only: after a restart, `rebuild` re-arms them from status.
        """
        current = self._timers.get(name)
        if current is not None:
            if current[0] <= due:
                return
            current[1].cancel()
        delay = max(0.0, (due - self._clock()).total_seconds())
        loop = asyncio.get_running_loop()

        def wake() -> None:
            self._timers.pop(name, None)
            self._spawn(self.run_changed(name))

        self._timers[name] = (due, loop.call_later(delay, wake))

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _queue_changed(self, queue: str) -> None:
        """Write the queue's counts soon: one write for a burst of changes."""
        if queue in self._queue_writes:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def write() -> None:
            self._queue_writes.pop(queue, None)
            running, queued = self.scheduler.counts(queue)
            self._spawn(self._write_queue_status(queue, running, queued))

        self._queue_writes[queue] = loop.call_later(QUEUE_STATUS_DELAY_SECONDS, write)

    async def _write_queue_status(self, queue: str, running: int, queued: int) -> None:
        # Our own write comes back as a watch event of the queue: writing only what
        # changed keeps that echo from writing again.
        if self._queue_counts_written.get(queue) == (running, queued):
            return
        try:
            await self._cluster.patch_queue_status(queue, {"running": running, "queued": queued})
        except Exception:
            log.warning("could not write the status of queue %s", queue, exc_info=True)
            return
        self._queue_counts_written[queue] = (running, queued)
