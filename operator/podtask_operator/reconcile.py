"""The reconcile flow of one TaskRun: read it, decide with the pure modules, act.

Runs are reconciled one at a time per run (a lock per name), always from a
fresh read, so the pod handler and the TaskRun handler never race each other
into a second attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from podtask.attempt_tokens import sign_attempt_token
from podtask.resources import RunError, RunPhase, TaskRunSpec, TaskRunStatus
from podtask_operator.attempts import classify_attempt
from podtask_operator.cluster import Cluster
from podtask_operator.lifecycle import end_attempt, start_attempt
from podtask_operator.pods import pod_for_attempt, pod_name
from podtask_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 5

# The runner's report belongs to the API; the operator never writes it.
_API_OWNED = frozenset({"report"})


def status_patch(old: TaskRunStatus, new: TaskRunStatus) -> dict[str, Any]:
    """The merge patch from `old` to `new`: changed keys, and nulls for cleared ones."""
    before, after = old.to_wire(), new.to_wire()
    patch: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    patch.update({k: None for k in before if k not in after})
    for key in _API_OWNED:
        patch.pop(key, None)
    return patch


def _body_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._background: set[asyncio.Task[None]] = set()

    def forget(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
        lock = self._locks.get(name)
        if lock is not None and not lock.locked():
            del self._locks[name]

    async def reconcile(self, name: str) -> None:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                run = await self._cluster.get_run(name)
                if run is None:
                    return
                await self._reconcile(run)
            except Exception:
                # Watch events are not redelivered: without this, a run whose reconcile
                # failed would wait for its next change, which may never come.
                log.exception("run %s: reconcile failed; trying again in %ss", name, RETRY_SECONDS)
                self._wake_at(name, self._clock() + timedelta(seconds=RETRY_SECONDS))
                return
        if run.get("status", {}).get("phase") in {p.value for p in RunPhase if p.is_final}:
            self.forget(name)

    async def _reconcile(self, run: dict[str, Any]) -> None:
        name = run["metadata"]["name"]
        try:
            spec = TaskRunSpec.model_validate(run.get("spec") or {})
            status = TaskRunStatus.model_validate(run.get("status") or {})
        except ValidationError as exc:
            await self._fail_invalid(name, run, exc)
            return
        phase = RunPhase(status.phase) if status.phase else None
        if phase is None or phase is RunPhase.QUEUED:
            await self._start_attempt(run, spec, status)
        elif phase is RunPhase.EXECUTING:
            await self._check_attempt(name, spec, status)
        elif phase is RunPhase.WAITING_TO_RETRY:
            due = status.next_attempt_at
            if due is None or due <= self._clock():
                await self._start_attempt(run, spec, status)
            else:
                self._wake_at(name, due)

    async def _write(self, name: str, old: TaskRunStatus, new: TaskRunStatus) -> None:
        patch = status_patch(old, new)
        if patch:
            await self._cluster.patch_run_status(name, patch)

    def _token_ttl(self, spec: TaskRunSpec) -> int:
        if spec.max_duration_seconds is None:
            return self._settings.runner_token_ttl_seconds
        # Long enough to report after the longest allowed run, and no longer.
        return spec.max_duration_seconds + 600

    async def _start_attempt(
        self, run: dict[str, Any], spec: TaskRunSpec, status: TaskRunStatus
    ) -> None:
        name = run["metadata"]["name"]
        started = start_attempt(name, spec, status, self._clock())
        token = sign_attempt_token(
            self._settings.runner_token_secret.encode(),
            name,
            started.attempt,
            ttl_seconds=self._token_ttl(spec),
        )
        pod = pod_for_attempt(
            run, spec, started.attempt, started.machine or spec.machine, token, self._settings
        )
        try:
            await self._cluster.create_pod(pod)
        except ApiException as exc:
            if exc.status is None or not 400 <= exc.status < 500 or exc.status == 429:
                raise
            # The cluster refuses this pod (a bad image name, a quota, a policy): retrying
            # the same manifest cannot succeed, so the run ends and says why.
            await self._fail(
                name,
                "PodRejected",
                f"the cluster refused the attempt's pod: {exc.reason}: {_body_message(exc)}",
            )
            return
        await self._write(name, status, started)
        log.info(
            "run %s: attempt %d started in pod %s",
            name,
            started.attempt,
            pod_name(name, started.attempt),
        )

    async def _check_attempt(self, name: str, spec: TaskRunSpec, status: TaskRunStatus) -> None:
        pod = await self._cluster.get_pod(pod_name(name, status.attempt))
        result = classify_attempt(pod, status.report, status.attempt)
        if result is None:
            return
        end = end_attempt(spec, status, result, self._clock(), self._random)
        await self._write(name, status, end.status)
        log.info("run %s: attempt %d ended %s", name, status.attempt, result.outcome)
        if end.retry and end.status.next_attempt_at is not None:
            self._wake_at(name, end.status.next_attempt_at)

    async def _fail_invalid(self, name: str, run: dict[str, Any], exc: ValidationError) -> None:
        if (run.get("status") or {}).get("phase") == RunPhase.SYSTEM_FAILURE.value:
            return
        await self._fail(name, "InvalidTaskRun", f"the TaskRun is invalid: {exc}")

    async def _fail(self, name: str, error_type: str, message: str) -> None:
        """End the run as a SystemFailure: podtask, not the task, could not go on."""
        error = RunError(type=error_type, message=message)
        await self._cluster.patch_run_status(
            name,
            {
                "phase": RunPhase.SYSTEM_FAILURE.value,
                "error": error.to_wire(),
                "finishedAt": self._clock().isoformat(),
            },
        )

    def _wake_at(self, name: str, due: datetime) -> None:
        """Reconcile `name` again at `due`: one timer per run, in memory, re-armed on restart."""
        if name in self._timers:
            return
        delay = max(0.0, (due - self._clock()).total_seconds())
        loop = asyncio.get_running_loop()

        def wake() -> None:
            self._timers.pop(name, None)
            task = loop.create_task(self.reconcile(name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        self._timers[name] = loop.call_later(delay, wake)
