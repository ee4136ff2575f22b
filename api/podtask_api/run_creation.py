"""Creating TaskRuns in the cluster: one trigger's, or a whole batch's, all or none.

A trigger with an idempotency key first lists the key's runs (by their label): the
newest one that still holds the key is the answer, marked cached. Otherwise it
creates the key's next run, under the name every trigger of that key computes alike
(`run-k<hash>-<n>`), so that of concurrent identical triggers one creates it and the
others get the cluster's AlreadyExists, and answer with that run, cached.
A batch creates its runs concurrently, a bounded number at a time; when one create
fails, no new one starts, and the runs this request created are deleted before
the error is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from podtask_api.cluster import ObjectAlreadyExists, ObjectNotFound
from podtask_api.errors import ApiError
from podtask_api.services import Services
from podtask_api.triggers import (
    LABEL_IDEMPOTENCY,
    BatchPlan,
    PlannedRun,
    holds_key,
    idempotency_decision,
    idempotency_label,
    idempotent_run_name,
    is_same_trigger,
    item_problem,
)

log = logging.getLogger("podtask_api")

# Kubernetes creates in flight at once for one batch: enough to hide the round trips,
# few enough not to flood the Kubernetes API (and our thread pool) for one request.
CONCURRENT_CREATES = 16

# Each further try follows a run of the key that ended (and released it) between our list
# and our create; more than a couple in a row means something keeps failing runs at once.
KEYED_CREATE_TRIES = 5


@dataclass(frozen=True)
class CreatedRun:
    id: str
    is_cached: bool

    def to_wire(self) -> dict[str, object]:
        return {"id": self.id, "isCached": self.is_cached}


async def create_run(svc: Services, run: PlannedRun) -> CreatedRun:
    """Create one TaskRun; with an idempotency key, the run that holds the key if one does."""
    if run.idempotency_key is not None:
        return await _create_keyed_run(svc, run, run.idempotency_key)
    try:
        await svc.call(svc.cluster.create_run, run.body)
    except ObjectAlreadyExists:
        raise ApiError(
            503, "run_name_taken", "a freshly drawn run name was taken; trigger again"
        ) from None
    return CreatedRun(run.name, is_cached=False)


async def _create_keyed_run(svc: Services, run: PlannedRun, key: str) -> CreatedRun:
    selector = f"{LABEL_IDEMPOTENCY}={idempotency_label(run.task_id, key)}"
    for _ in range(KEYED_CREATE_TRIES):
        runs = await svc.call(svc.cluster.list_all_runs, selector)
        decision = idempotency_decision(runs, run.task_id, key, datetime.now(UTC))
        if decision.reuse is not None:
            return CreatedRun(decision.reuse, is_cached=True)
        name = idempotent_run_name(run.task_id, key, decision.generation)
        try:
            await svc.call(svc.cluster.create_run, run.named(name).body)
        except ObjectAlreadyExists:
            pass  # a concurrent trigger of the same key created it first
        else:
            return CreatedRun(name, is_cached=False)
        try:
            existing = await svc.call(svc.cluster.get_run, name)
        except ObjectNotFound:
            continue  # and it was deleted since: look again
        if not is_same_trigger(existing, run.task_id, key):
            raise ApiError(
                409,
                "idempotency_conflict",
                "this idempotency key collides with another run's; use a different key",
            )
        if holds_key(existing, datetime.now(UTC)):
            return CreatedRun(name, is_cached=True)
        # That run already released the key (it failed at once): the next one is ours to make.
    raise ApiError(
        503,
        "idempotency_busy",
        f"the runs of this idempotency key kept ending while this trigger made the next "
        f"one ({KEYED_CREATE_TRIES} times); trigger again",
    )


def _item_error(error: ApiError, index: int, not_deleted: Sequence[str]) -> ApiError:
    """`error`, said of item `index` of a batch none of whose runs now exist (or not all)."""
    if not_deleted:
        outcome = (
            f"; {len(not_deleted)} run(s) this batch created could not be deleted again: "
            + ", ".join(not_deleted)
        )
    else:
        outcome = "; no run of this batch was created"
    details = item_problem(index, "", error.message, code=error.code, cause=error.details)
    if not_deleted:
        details["notDeleted"] = list(not_deleted)
    return ApiError(error.status, error.code, f"item {index}: {error.message}{outcome}", [details])


async def create_batch(svc: Services, plan: BatchPlan) -> list[CreatedRun]:
    """Create every planned run, in item order in the answer; on any failure, none."""
    gate = asyncio.Semaphore(CONCURRENT_CREATES)
    failures: list[tuple[int, BaseException]] = []
    outcomes: list[CreatedRun | None] = [None] * len(plan.runs)

    async def create(position: int, run: PlannedRun) -> None:
        async with gate:
            if failures:
                return  # the batch has failed: start no more creates
            try:
                outcomes[position] = await create_run(svc, run)
            except Exception as exc:
                # Recorded, not raised: every create in flight must finish (a cancelled
                # wait would not stop its thread's create) so the rollback knows them all.
                failures.append((run.index, exc))

    await asyncio.gather(*(create(position, run) for position, run in enumerate(plan.runs)))
    if failures:
        created = [o.id for o in outcomes if o is not None and not o.is_cached]
        not_deleted = await _delete_runs(svc, created)
        index, failure = min(failures, key=lambda f: f[0])
        if isinstance(failure, ApiError):
            raise _item_error(failure, index, not_deleted) from failure
        raise failure
    runs = [outcome for outcome in outcomes if outcome is not None]  # all of them, no failure
    return [
        CreatedRun(runs[run].id, is_cached=runs[run].is_cached or plan.is_repeat(index))
        for index, run in enumerate(plan.run_of_item)
    ]


async def _delete_runs(svc: Services, names: Sequence[str]) -> list[str]:
    """Delete `names`, a bounded number at a time; the ones that could not be deleted."""
    gate = asyncio.Semaphore(CONCURRENT_CREATES)
    left: list[str] = []

    async def delete(name: str) -> None:
        async with gate:
            try:
                await svc.call(svc.cluster.delete_run, name)
            except ObjectNotFound:
                pass
            except Exception as exc:
                log.error("could not delete run %s of a failed batch: %s", name, exc)
                left.append(name)

    await asyncio.gather(*(delete(name) for name in names))
    return sorted(left)
