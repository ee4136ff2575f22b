"""Creating TaskRuns in the cluster: one trigger's, or a whole batch's, all or none.

An idempotency key names its run deterministically, so the cluster's AlreadyExists
is how a repeated key is found: the existing run is the answer, marked cached.
A batch creates its runs concurrently, a bounded number at a time; when one create
fails, no new one starts, and the runs this request created are deleted before
the error is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from podtask_api.cluster import ObjectAlreadyExists, ObjectNotFound
from podtask_api.errors import ApiError
from podtask_api.services import Services
from podtask_api.triggers import BatchPlan, PlannedRun, is_same_trigger, item_problem

log = logging.getLogger("podtask_api")

# Kubernetes creates in flight at once for one batch: enough to hide the round trips,
# few enough not to flood the Kubernetes API (and our thread pool) for one request.
CONCURRENT_CREATES = 16


@dataclass(frozen=True)
class CreatedRun:
    id: str
    is_cached: bool

    def to_wire(self) -> dict[str, object]:
        return {"id": self.id, "isCached": self.is_cached}


async def create_run(svc: Services, run: PlannedRun) -> CreatedRun:
    """Create one TaskRun; for a taken idempotent name, the run that already has it."""
    try:
        await svc.call(svc.cluster.create_run, run.body)
    except ObjectAlreadyExists:
        if run.idempotency_key is None:
            raise ApiError(
                503, "run_name_taken", "a freshly drawn run name was taken; trigger again"
            ) from None
        return CreatedRun(
            await _cached_run(svc, run.name, run.task_id, run.idempotency_key), is_cached=True
        )
    return CreatedRun(run.name, is_cached=False)


async def _cached_run(svc: Services, name: str, task_id: str, key: str) -> str:
    try:
        existing = await svc.call(svc.cluster.get_run, name)
    except ObjectNotFound:
        # Deleted between our create and our read; the caller may simply retry.
        raise ApiError(
            409, "idempotency_conflict", "the run for this idempotency key was just deleted"
        ) from None
    if not is_same_trigger(existing, task_id, key):
        raise ApiError(
            409,
            "idempotency_conflict",
            "this idempotency key collides with another run's; use a different key",
        )
    return name


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
