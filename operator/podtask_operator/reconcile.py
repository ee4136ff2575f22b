"""The reconcile flow of TaskRuns: read, decide with the pure modules, act.

Control goes one way: the kopf handlers call the `RunReconciler`; it asks the pure modules
what to do (`run_actions.next_action` for what a run needs next, `lifecycle` and `attempts`
for an attempt's end), keeps the waiting lines in the `Scheduler` (which calls nobody), runs
the admission passes itself, and acts through `attempt_start`, `run_writes` and
`queue_status`. Only its own timers call back into it, to reconcile a run or admit from a
bucket again later.

Runs are reconciled one at a time per run (a lock per name), so the pod handler, the TaskRun
handler, timers and admission never race each other into a second attempt. A watch event is
itself a read: a run's event is decided on the body it carries, a pod's event stands for a
read of that pod, and a running pod is judged as the pod watch last showed it (`live_pods`).
An attempt starts only from a fresh read of its run; a timer (no event) reads run and pod.

An attempt is judged from a read of the run made after the read of its pod: the runner
reports before it exits, so a pod seen ended comes with its report. A decision is written
only onto the version of the run it was taken from (`run_writes`): one taken on an event
older than the run is refused, and taken again from a fresh read.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random as _random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from podtask._contract.resources import RunPhase, TaskRunSpec, TaskRunStatus, parse_timestamp
from podtask._contract.run_endings import ATTEMPT_PHASES, STALLED, without_condition
from podtask._contract.wire import LABEL_RUN
from podtask_operator import metrics
from podtask_operator.admission import QueueControls
from podtask_operator.admission_order import Turn, TurnLine, Withdrawn
from podtask_operator.attempt_start import AttemptStarter
from podtask_operator.attempts import (
    ClassifiedAttempt,
    classify_attempt,
    pod_is_finished,
    reported_success,
)
from podtask_operator.batch_gate import BatchGate
from podtask_operator.cluster import ClusterApi, RunChanged
from podtask_operator.final_runs import FinalRuns
from podtask_operator.housekeeping import run_is_final
from podtask_operator.kube import KubeError
from podtask_operator.lifecycle import (
    CANCELED,
    RunEnd,
    attempt_deadline,
    end_attempt,
    expired,
    timed_out,
    waiting,
    with_condition,
)
from podtask_operator.live_pods import LivePods, attempt_of
from podtask_operator.pending_pods import Notice, PendingTimeouts, pending_verdict
from podtask_operator.pods import pod_name
from podtask_operator.queue_status import QueueStatusWriter
from podtask_operator.queues import BucketKey, LinePlace
from podtask_operator.run_actions import Next, next_action, phase_of
from podtask_operator.run_backlog import RunBacklog
from podtask_operator.run_locks import RunLocks
from podtask_operator.run_writes import RunWriter
from podtask_operator.scheduler import RETRY_ADMISSION_SECONDS, AdmissionDeferred, Scheduler
from podtask_operator.settings import OperatorSettings
from podtask_operator.wait_writes import WaitWrites
from podtask_operator.waits import waited_deadline

log = logging.getLogger(__name__)

RETRY_SECONDS = 5
# Decisions in a row refused because the run changed under them; each follows someone
# else's write, so this bound only keeps a writer that never stops from looping us.
DECISION_TRIES = 5
# Starts of admitted runs under way at once, over all buckets: each is a few API calls, so
# side by side they keep a busy queue's slots filled; more would only queue on the client.
ADMISSIONS_IN_FLIGHT = 16
# Phases of a run that has no attempt running and may be admitted.
_STARTABLE = frozenset({None, RunPhase.DELAYED, RunPhase.QUEUED, RunPhase.WAITING_TO_RETRY})


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


@dataclass
class _AdmissionPass:
    """One admission pass of a bucket: its number (a deferral's backoff grows once per
    pass), and whether a start failed, which ends it."""

    number: int
    halted: bool = False


def queue_controls(queue: dict[str, Any]) -> QueueControls:
    spec = queue.get("spec") or {}
    return QueueControls(
        concurrency_limit=spec.get("concurrencyLimit"), paused=bool(spec.get("paused", False))
    )


class RunReconciler:
    def __init__(
        self,
        cluster: ClusterApi,
        settings: OperatorSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._cluster = cluster
        self._clock = clock
        self._random = random
        self._locks = RunLocks()
        self._timers: dict[str, tuple[datetime, asyncio.TimerHandle]] = {}
        self._admission_timers: dict[BucketKey, asyncio.TimerHandle] = {}
        self._admission_passes = itertools.count(1)
        self._admissions_in_flight = asyncio.Semaphore(ADMISSIONS_IN_FLIGHT)
        self._turns: dict[BucketKey, TurnLine] = {}
        # The admission passes under way by bucket, and the buckets asked for one more meanwhile.
        self._passes_under_way: Counter[BucketKey] = Counter()
        self._pass_again: set[BucketKey] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._backlog = RunBacklog(self.run_changed, self._spawn)
        self._timeouts = PendingTimeouts.of(
            settings.pending_timeout_seconds, settings.image_pull_timeout_seconds
        )
        self._live_pods = LivePods()
        self._final_runs = FinalRuns()
        self._pod_starts = metrics.PodStarts()
        self.scheduler = Scheduler(settings.default_concurrency_limit)
        metrics.QUEUE_GAUGES.follow(self.scheduler)
        self.batches = BatchGate(cluster.get_config_map)
        self._writer = RunWriter(cluster, clock)
        self._starter = AttemptStarter(cluster, settings, self._writer, self._timeouts, clock)
        self._waits = WaitWrites(self.scheduler, self._writer, clock)
        self._queue_status = QueueStatusWriter(cluster, self.scheduler, self._spawn)

    # --- what the kopf handlers call ---------------------------------------------------

    async def rebuild(self) -> None:
        """Rebuild the queues from the cluster before admitting anything (start-up)."""
        for pod in await self._cluster.list_pods(LABEL_RUN):
            self.scheduler.observe_pod(pod)
            self._live_pods.observe(pod)
            self._pod_starts.known(pod)
        queues = await self._cluster.list_queues()
        for queue in queues:
            name = queue["metadata"]["name"]
            self.scheduler.set_controls(name, queue_controls(queue))
            self._queue_status.observed(name, queue.get("status") or {})
            self._queue_status.acted_on(name, queue["metadata"].get("generation"))
        # A page at a time, none kept: the second pass needs only the runs left in line that
        # may have to say why they wait (one whose status says Queued has nothing to say).
        listed = 0
        to_mark: list[str] = []
        async for page in self._cluster.run_pages():
            for run in page:
                name = run["metadata"]["name"]
                listed += 1
                await self.reconcile(name, listed=run)
                queued = (run.get("status") or {}).get("phase") == RunPhase.QUEUED.value
                if not queued and self.scheduler.is_waiting(name):
                    to_mark.append(name)
        await self.admit_all()
        for name in to_mark:
            await self.mark_waiting(name)
        self._queue_status.changed(
            {key[0] for key in self.scheduler.buckets()} | {q["metadata"]["name"] for q in queues}
        )
        log.info("rebuilt the queues from %d runs", listed)

    async def run_changed(
        self, name: str, seen: dict[str, Any] | None = None, *, deleted: bool = False
    ) -> None:
        """`seen`: the run as its watch event showed it, decided on without reading it again
        (a decision is written only onto that version: a newer one refuses it). A run seen
        final has nothing left to decide; its pod's end, if still to come, is settled on it."""
        if deleted:
            key = self.scheduler.withdraw(name)
            self.forget(name)
            self.batches.forget(name)
            self._final_runs.forget(name)
            self._publish_counts()
        elif seen is not None and run_is_final(seen):
            attempt = (seen.get("status") or {}).get("attempt")
            if isinstance(attempt, int) and self._live_pods.alive(pod_name(name, attempt)):
                self._final_runs.seen(seen)
            return
        else:
            key = await self.reconcile(name, listed=seen)
        if key is not None:
            await self.admit(key)
            await self.mark_waiting(name, seen)

    async def batch_changed(self, marker: dict[str, Any], *, deleted: bool = False) -> None:
        """A batch's marker changed: once committed, its held runs go on."""
        self._backlog.add(self.batches.marker_changed(marker, deleted=deleted))

    async def pod_changed(self, pod: dict[str, Any], *, deleted: bool = False) -> None:
        self._pod_starts.changed(pod, deleted=deleted)
        freed = self.scheduler.observe_pod(pod, deleted=deleted)
        ended = deleted or pod_is_finished(pod)
        # Before `observe`, which forgets a pod once it ended.
        ended_here = self._live_pods.ends(pod, deleted=deleted)
        verdict = None if ended else pending_verdict(pod, self._clock(), self._timeouts)
        worth_a_look = self._live_pods.observe(pod, verdict, deleted=deleted)
        self._publish_counts()
        run = (pod["metadata"].get("labels") or {}).get(LABEL_RUN)
        if freed is not None:
            # The next run first: its start does not depend on how this attempt is judged
            # (a run completed by its report has nothing left to write), and the slot is free.
            await self.admit_soon(freed)
        if run is not None and (freed is not None or worth_a_look):
            # This event is the read of the pod; the run is read after it (`_reconcile`),
            # unless its watch showed it final already: a final status changes no more.
            attempt = attempt_of(pod)
            final = self._final_runs.take(run, attempt) if ended_here else None
            if final is not None:
                await self._settle_final(final)
                return
            await self.reconcile(
                run,
                pod_seen=None if attempt is None else (attempt, None if deleted else pod),
                pod_ended=ended_here,
            )

    async def _settle_final(self, run: dict[str, Any]) -> None:
        """The pod of a run seen final has ended: what `reconcile` does with a final run read
        after the pod (`Next.DONE`), on the watch's copy."""
        name = run["metadata"]["name"]
        try:
            async with self._locks.held(name):
                await self._writer.settle_completion(run)
                self.forget(name)
                self.scheduler.withdraw(name)
        finally:
            self._publish_counts()

    async def queue_changed(self, name: str, queue: dict[str, Any] | None) -> None:
        keys = self.scheduler.set_controls(name, None if queue is None else queue_controls(queue))
        self._queue_status.observed(name, None if queue is None else queue.get("status") or {})
        if queue is not None:
            # The starts under way when the spec changed end first (the pods already sent;
            # a paused queue withdraws the others): from the status that says so, none
            # starts against the old spec.
            for key in keys:
                async with self.scheduler.admission_lock(key):
                    await self._turn_line(key).drained()
            self._queue_status.acted_on(name, queue["metadata"].get("generation"))
            self._queue_status.changed([name])
        await self.admit_all(keys)

    def forget(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer[1].cancel()

    # --- reconcile ---------------------------------------------------------------------

    async def reconcile(
        self,
        name: str,
        listed: dict[str, Any] | None = None,
        pod_seen: tuple[int, dict[str, Any] | None] | None = None,
        *,
        pod_ended: bool = False,
    ) -> BucketKey | None:
        """Bring one run a step forward; the bucket to admit from, if it now waits in one.

        `listed` is the run as a list or a watch event just showed it, to spare a read: its
        attempt's pod may then be judged as the pod watch last showed it, while it runs.
        `pod_seen` is an attempt's pod as its watch event just showed it (None: deleted): the
        run is read after it. `pod_ended`: that pod has just ended (once per pod: it freed its
        slot). All count for the first decision only; one refused because the run changed is
        taken again from fresh reads.
        """
        try:
            async with self._locks.held(name):
                for _ in range(DECISION_TRIES):
                    try:
                        seen = listed is not None
                        run = listed if listed is not None else await self._cluster.get_run(name)
                        first_pod, listed, pod_seen = pod_seen, None, None
                        first_ended, pod_ended = pod_ended, False
                        if run is None:
                            self.forget(name)
                            return self.scheduler.withdraw(name)
                        if first_ended:
                            await self._writer.settle_completion(run)
                        return await self._reconcile(run, first_pod, live_pods=seen)
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
        finally:
            self._publish_counts()

    async def _reconcile(
        self,
        run: dict[str, Any],
        pod_seen: tuple[int, dict[str, Any] | None] | None = None,
        *,
        live_pods: bool = False,
    ) -> BucketKey | None:
        """`pod_seen`: the attempt number and its pod, as read just before `run` was.
        `live_pods`: a pod the pod watch shows running may stand for a read of it."""
        name = run["metadata"]["name"]
        try:
            spec = TaskRunSpec.model_validate(run.get("spec") or {})
            status = TaskRunStatus.model_validate(run.get("status") or {})
        except ValidationError as exc:
            await self._fail(run, None, "InvalidTaskRun", f"the TaskRun is invalid: {exc}")
            return self.scheduler.withdraw(name)
        if not await self.batches.admits(run):
            return self.scheduler.withdraw(name)  # its batch is not committed (yet)
        now = self._clock()
        action = next_action(spec, status, _created(run, now), now)
        match action.next:
            case Next.DONE:
                self.forget(name)
                return self.scheduler.withdraw(name)
            case Next.WATCH_ATTEMPT:
                if pod_seen is None and live_pods:
                    # A running pod is judged the same whichever read of the run came first;
                    # one that ended is read again, then the run (its report) after it.
                    pod_seen = self._live_pods.running(pod_name(name, status.attempt), status)
                if pod_seen is None or pod_seen[0] != status.attempt:
                    # The pod first, then the run: the run read second holds any report the
                    # runner made before the pod was seen ending.
                    pod = await self._cluster.get_pod(pod_name(name, status.attempt))
                    if pod is None:
                        self._live_pods.forget(pod_name(name, status.attempt))
                    else:
                        self._live_pods.observe(pod)
                    fresh = await self._cluster.get_run(name)
                    if fresh is None:
                        self.forget(name)
                        return self.scheduler.withdraw(name)
                    return await self._reconcile(fresh, (status.attempt, pod))
                if spec.cancel_requested_at is not None:
                    await self._end_run(run, spec, status, CANCELED, pod_seen[1])
                    return self.scheduler.withdraw(name)
                if await self._check_attempt(run, spec, status, pod_seen[1]):
                    stamp = line_stamp(spec, _created(run, now))
                    return await self._waits.step(run, spec, status, stamp)
                # Its attempt ended: a place it held to resume from a wait is not its retry's.
                return self.scheduler.withdraw(name)
            case Next.CANCEL:
                await self._end_run(run, spec, status, CANCELED)
                return self.scheduler.withdraw(name)
            case Next.END_REPORTED:
                assert action.result is not None
                await self._end_attempt(run, spec, status, action.result)
                return self.scheduler.withdraw(name)
            case Next.WAIT_FOR_RETRY:
                assert action.until is not None
                self._wake_at(name, action.until)
                return None
            case Next.DELAY:
                assert action.until is not None
                self.scheduler.withdraw(name)
                if phase_of(status) is not RunPhase.DELAYED:
                    message = f"delayed until {action.until.isoformat()}"
                    await self._writer.write(
                        run, status, waiting(status, RunPhase.DELAYED, "Delayed", message, now)
                    )
                self._wake_at(name, action.until)
                return None
            case Next.EXPIRE:
                await self._end_run(run, spec, status, expired(spec))
                return self.scheduler.withdraw(name)
            case Next.START:
                if action.until is not None:
                    self._wake_at(name, action.until)  # when its ttl runs out
                return self.scheduler.enqueue(name, spec, line_stamp(spec, _created(run, now)))

    async def mark_waiting(self, name: str, seen: dict[str, Any] | None = None) -> None:
        """Say in the run's status why it waits, if admission left it waiting. `seen`: the run
        as its watch event showed it (else it is read)."""
        if not self.scheduler.is_waiting(name):
            return
        async with self._locks.held(name):
            why = self.scheduler.why_waiting(name)
            if why is None:
                return
            run = seen if seen is not None else await self._cluster.get_run(name)
            if run is None:
                return
            status = TaskRunStatus.model_validate(run.get("status") or {})
            if phase_of(status) is RunPhase.WAITING:
                await self._waits.say_why(run, status, why)
                return
            if phase_of(status) not in _STARTABLE or phase_of(status) is RunPhase.QUEUED:
                return
            reason, message = why
            try:
                await self._writer.write(
                    run, status, waiting(status, RunPhase.QUEUED, reason, message, self._clock())
                )
            except RunChanged:
                return  # the write that changed it is reconciled from its own watch event
            await self._writer.event(run, "Normal", reason, message)

    # --- admission ---------------------------------------------------------------------

    async def admit_all(self, keys: list[BucketKey] | None = None) -> None:
        for key in self.scheduler.buckets() if keys is None else keys:
            await self.admit(key)

    async def admit(self, key: BucketKey) -> None:
        """Start the best waiting runs of a bucket while it has free slots, side by side (at
        most `ADMISSIONS_IN_FLIGHT` starts at once), their pods created in line order
        (`admission_order`); return once they started or went back in line. A start that
        fails ends the pass: the runs after it wait for the bucket's next try. A start that
        gives its slot back (its run may no longer start, its pod ended already), or a call
        of `admit_soon` while it was under way, makes another pass."""
        self._passes_under_way[key] += 1
        try:
            while True:
                self._pass_again.discard(key)
                slot_back = await self._admission_pass(key)
                if not slot_back and key not in self._pass_again:
                    return
        finally:
            self._passes_under_way[key] -= 1
            if not self._passes_under_way[key]:
                del self._passes_under_way[key]

    async def admit_soon(self, key: BucketKey) -> None:
        """`admit`, or, while a pass of the bucket is under way, one more pass once it ends,
        without waiting for it. For a slot that frees up (an ended pod): the event waits for no
        pass, which would hold it as long as the pass takes slots as they free up (at 20 ended
        pods a second, hundreds of events piled up behind one). A new run waits for its pass
        (`admit`): what its status then says about its wait is from after it."""
        if self._passes_under_way[key]:
            self._pass_again.add(key)
            return
        await self.admit(key)

    async def _admission_pass(self, key: BucketKey) -> bool:
        """One admission pass of the bucket; whether a start gave its slot back (so another
        pass may take it), unless a failed start ended the pass."""
        starts: set[asyncio.Task[bool]] = set()
        slot_back = False

        def ended(start: asyncio.Task[bool]) -> None:
            # A pass takes slots as they free up, for as long as they do: its ended starts are
            # not kept until it ends.
            nonlocal slot_back
            starts.discard(start)
            if not start.cancelled() and start.exception() is None and start.result():
                slot_back = True

        admission = _AdmissionPass(next(self._admission_passes))
        async with self.scheduler.admission_lock(key):
            turns = self._turn_line(key)
            while not admission.halted:
                await self._admissions_in_flight.acquire()
                place = None if admission.halted else self.scheduler.next_admission(key)
                if place is None:
                    self._admissions_in_flight.release()
                    break
                start = asyncio.get_running_loop().create_task(
                    self._admit_one(key, place, turns.next(), admission)
                )
                starts.add(start)
                start.add_done_callback(ended)
        await asyncio.gather(*starts)
        self._publish_counts()
        return slot_back and not admission.halted

    async def _admit_one(
        self, key: BucketKey, place: LinePlace, turn: Turn, admission: _AdmissionPass
    ) -> bool:
        """Start one admitted run; whether it gave its slot back unused."""
        try:
            pod = await self._start_admitted(place.name, turn)
        except Withdrawn:
            admission.halted = True  # the queue was paused: its resumption admits again
            self.scheduler.put_back(key, place)
            return False
        except AdmissionDeferred as exc:
            log.info("run %s waits: %s", place.name, exc)
            admission.halted = True
            self._admit_later(key, self.scheduler.put_back(key, place, exc, admission.number))
            return False
        except Exception:
            log.exception("could not start run %s; trying again shortly", place.name)
            admission.halted = True
            self._admit_later(key, self.scheduler.put_back(key, place))
            return False
        finally:
            turn.end()
            self._admissions_in_flight.release()
        if pod is not None:
            self._live_pods.expect(pod)  # created: its watch event may come later
            metrics.admitted(key[0])
        return not self.scheduler.admitted(key, place.name, pod)

    def _turn_line(self, key: BucketKey) -> TurnLine:
        line = self._turns.get(key)
        if line is None:
            line = self._turns[key] = TurnLine(lambda: not self.scheduler.paused(key[0]))
        return line

    def _admit_later(self, key: BucketKey, delay: float = RETRY_ADMISSION_SECONDS) -> None:
        if key in self._admission_timers:
            return

        def again() -> None:
            self._admission_timers.pop(key, None)
            self._spawn(self.admit(key))

        self._admission_timers[key] = asyncio.get_running_loop().call_later(delay, again)

    async def _start_admitted(self, name: str, turn: Turn) -> str | None:
        """Start the next attempt of a run the scheduler admitted; its pod, or None if it
        may no longer start (canceled, expired, gone, already running). Its pod is created
        in its `turn`."""
        async with self._locks.held(name):
            for _ in range(DECISION_TRIES - 1):
                try:
                    return await self._start_fresh(name, turn)
                except RunChanged:
                    log.info("run %s changed while it was started; deciding again", name)
            return await self._start_fresh(name, turn)

    async def _start_fresh(self, name: str, turn: Turn) -> str | None:
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
        action = next_action(spec, status, _created(run, now), now)
        if action.next is Next.EXPIRE:
            await self._end_run(run, spec, status, expired(spec))
            return None
        if action.next is Next.END_REPORTED:
            assert action.result is not None
            await self._end_attempt(run, spec, status, action.result)
            return None
        if action.next is Next.WATCH_ATTEMPT:
            return await self._waits.resume(run, spec, status)  # its wait is over
        if not action.startable:
            return None  # its own event or timer acts on it
        started = await self._starter.start(run, spec, status, turn)
        if started is None:
            self.forget(name)  # the cluster refused its pod for good: it failed
            return None
        if started.recheck_at is not None:
            self._wake_at(name, started.recheck_at)
        return started.pod

    # --- while an attempt runs ---------------------------------------------------------

    async def _check_attempt(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        pod: dict[str, Any] | None,
    ) -> bool:
        """Judge the current attempt from `pod` and `run`, read in that order; whether it runs
        on (its wait, if it waits, is then for the caller to step)."""
        name = run["metadata"]["name"]
        result = classify_attempt(pod, status.report, status.attempt)
        now = self._clock()
        if result is None:
            assert pod is not None  # a pod that is gone is a result (lost)
            verdict = pending_verdict(pod, now, self._timeouts)
            if verdict.end is not None:
                await self._end_stalled(run, spec, status, pod, verdict.end)
                return False
            started = verdict.started_at
            if started is not None and status.attempts and status.attempts[-1].started_at:
                # Never before the attempt began, whatever the node's clock says.
                started = max(started, status.attempts[-1].started_at)
            # Time spent waiting does not count; while it waits there is no deadline.
            deadline = waited_deadline(attempt_deadline(spec, started), status)
            if deadline is None or deadline > now:
                await self._show_stall(run, status, verdict.notice)
                due = [t for t in (deadline, verdict.recheck_at) if t is not None]
                if due:
                    self._wake_at(name, min(due))
                return True
            await self._end_run(run, spec, status, timed_out(spec), pod)
            return False
        await self._end_attempt(run, spec, status, result)
        return False

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
                await self._writer.write(run, status, cleared)
            return
        if said is not None and said.reason == notice.reason:
            return
        now = self._clock()
        conditions = with_condition(status, STALLED, notice.reason, notice.message, now)
        await self._writer.write(run, status, status.model_copy(update={"conditions": conditions}))
        await self._cluster.post_event(run, "Warning", notice.reason, notice.message, now)

    async def _end_stalled(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        pod: dict[str, Any],
        result: ClassifiedAttempt,
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
            self._spawn(self.admit(freed))

    async def _end_attempt(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        result: ClassifiedAttempt,
    ) -> None:
        name = run["metadata"]["name"]
        now = self._clock()
        end = end_attempt(spec, status, result, now, self._random)
        log.info("run %s: attempt %d ended %s", name, status.attempt, result.kind)
        if end.retry:
            await self._writer.write(run, status, end.status)
            assert end.status.next_attempt_at is not None
            await self._cluster.post_event(
                run, "Warning", "WaitingToRetry", end.status.conditions[-1].message, now
            )
            self._wake_at(name, end.status.next_attempt_at)
        else:
            await self._writer.finish(run, status, end.status)
            self.forget(name)
        metrics.attempt_ended(spec.task_id, result.kind.value)

    # --- ends that are not an attempt's result -----------------------------------------

    async def _end_run(
        self,
        run: dict[str, Any],
        spec: TaskRunSpec,
        status: TaskRunStatus,
        end: RunEnd,
        pod: dict[str, Any] | None = None,
    ) -> None:
        """End the run for a reason that is not its attempt's result (a cancel, its maxDuration,
        its ttl). An attempt still running is stopped, its pod deleted, unless it reported
        success first: then the task finished before the end took effect, and it completed."""
        name = run["metadata"]["name"]
        if phase_of(status) in ATTEMPT_PHASES:
            success = reported_success(pod, status.report, status.attempt)
            if success is not None:
                await self._end_attempt(run, spec, status, success)
                return
            await self._cluster.delete_pod(pod_name(name, status.attempt))
            await self._writer.end(run, status, end)
            metrics.attempt_ended(spec.task_id, end.reason)  # stopped by the run's end
        else:
            await self._writer.end(run, status, end)
        self.forget(name)

    async def _fail(
        self, run: dict[str, Any], status: TaskRunStatus | None, error_type: str, message: str
    ) -> None:
        await self._writer.fail(run, status, error_type, message)
        self.forget(run["metadata"]["name"])

    # --- timers and queue counts -------------------------------------------------------

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

    async def close(self) -> None:
        """Start nothing more and end what is under way (the operator stops): no timer, no
        admission and no write left to call the cluster once its client is closed, which
        would open a connection that nothing closes."""
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for handle in self._admission_timers.values():
            handle.cancel()
        self._admission_timers.clear()
        self._queue_status.stop()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _publish_counts(self) -> None:
        """Write the counts of the queues whose counts changed (soon, once for a burst)."""
        self._queue_status.changed(self.scheduler.take_changed_queues())
