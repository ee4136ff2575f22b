"""Creating TaskRuns in the cluster: one trigger's, or a whole batch's, all or none.

A trigger with an idempotency key first lists the key's runs (by their label): the
newest one that still holds the key is the answer, marked cached. Otherwise it
creates the key's next run, under the name every trigger of that key computes alike
(`run-k<hash>-<n>`), so that of concurrent identical triggers one creates it and the
others get the cluster's AlreadyExists, and answer with that run, cached.

A batch is created all or none through its commit marker (`podtask._contract.batch_markers`): the
marker first (open), then the runs under names fixed by the batch and item, a bounded
number at a time, then one write that commits the marker. Whatever dies when, the runs
of a batch never committed are never seen (the API hides them, the operator holds them)
and are deleted with their marker. A retry of the batch (the same `Idempotency-Key`)
finds the marker: it resumes an open batch (each create already done is an
AlreadyExists) or answers with a committed batch's runs. When one create fails for a
reason the request is to blame for, no new one starts, and the batch is withdrawn (its
marker and the runs this request created deleted) before the error is answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from podtask._contract.batch_markers import (
    LABEL_BATCH,
    BatchMarker,
    BatchRun,
    BatchState,
    batch_owner,
    batch_run_name,
    commit_patch,
    keyed_batch_id,
    marker_name,
    new_marker,
    owner_reference,
    read_marker,
)
from podtask._contract.run_ids import RUN_NAME_PREFIX
from podtask_api.batch_triggers import BatchPlan, item_problem
from podtask_api.cluster import ObjectAlreadyExists, ObjectNotFound, ObjectRejected
from podtask_api.errors import ApiError
from podtask_api.idempotency import (
    LABEL_IDEMPOTENCY,
    holds_key,
    idempotency_decision,
    idempotency_label,
    is_same_trigger,
)
from podtask_api.run_names import idempotent_run_name, random_run_name
from podtask_api.services import Services
from podtask_api.task_runs import PlannedRun

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


def _of_batch(run: dict[str, Any], batch: BatchMarker | None) -> bool:
    """Whether `run` was created by (an earlier try of) this very batch."""
    owner = batch_owner(run)
    return batch is not None and owner is not None and owner.uid == batch.uid


async def _create_keyed_run(
    svc: Services, run: PlannedRun, key: str, batch: BatchMarker | None = None
) -> CreatedRun:
    selector = f"{LABEL_IDEMPOTENCY}={idempotency_label(run.task_id, key)}"
    for _ in range(KEYED_CREATE_TRIES):
        runs = await svc.call(svc.cluster.list_all_runs, selector)
        decision = idempotency_decision(runs, run.task_id, key, datetime.now(UTC))
        if decision.reuse is not None:
            reused = next(r for r in runs if r["metadata"]["name"] == decision.reuse)
            return CreatedRun(decision.reuse, is_cached=not _of_batch(reused, batch))
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
            return CreatedRun(name, is_cached=not _of_batch(existing, batch))
        # That run already released the key (it failed at once): the next one is ours to make.
    raise ApiError(
        503,
        "idempotency_busy",
        f"the runs of this idempotency key kept ending while this trigger made the next "
        f"one ({KEYED_CREATE_TRIES} times); trigger again",
    )


def _withdrawn(batch_id: str) -> ApiError:
    return ApiError(
        503,
        "batch_withdrawn",
        f"batch {batch_id!r} was withdrawn before it was committed (it took too long, or a "
        "failed try of it was undone); none of its runs exist: trigger it again",
    )


async def _open_batch(
    svc: Services,
    plan: BatchPlan,
    idempotency_key: str | None,
    parent_run_id: str | None,
    digest: str,
) -> BatchMarker:
    """The batch's marker: a new one (open), or the one an earlier try with this key made."""
    now = datetime.now(UTC)
    stem = random_run_name(now)[len(RUN_NAME_PREFIX) :]
    batch_id = stem if idempotency_key is None else keyed_batch_id(idempotency_key, parent_run_id)
    task_ids = sorted({run.task_id for run in plan.runs})
    body = new_marker(batch_id, stem, len(plan.run_of_item), task_ids, digest, now)
    for _ in range(KEYED_CREATE_TRIES):
        try:
            created = read_marker(await svc.call(svc.cluster.create_config_map, body))
        except ObjectAlreadyExists:
            if idempotency_key is None:
                raise ApiError(
                    503, "run_name_taken", "a freshly drawn batch id was taken; trigger again"
                ) from None
        else:
            assert created is not None
            return created
        try:
            found = await svc.call(svc.cluster.get_config_map, marker_name(batch_id))
        except ObjectNotFound:
            continue  # withdrawn since: open it again
        existing = read_marker(found)
        if existing is None:
            raise ApiError(
                409,
                "idempotency_conflict",
                f"the ConfigMap {marker_name(batch_id)!r} is in the way of this batch: it is "
                "not a batch marker; use a different idempotency key",
            )
        if existing.digest != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                "this idempotency key was used for another batch (other items or options); "
                "use a different key for a different batch",
            )
        return existing
    raise _withdrawn(batch_id)


def _in_batch(run: PlannedRun, batch: BatchMarker) -> PlannedRun:
    """`run` as a run of `batch`: labelled, owned by its marker, under its batch name."""
    metadata = run.body["metadata"]
    labels = {**(metadata.get("labels") or {}), LABEL_BATCH: batch.batch_id}
    name = metadata["name"] if run.idempotency_key else batch_run_name(batch.stem, run.index)
    body = {
        **run.body,
        "metadata": {
            **metadata,
            "name": name,
            "labels": labels,
            "ownerReferences": [owner_reference(batch)],
        },
    }
    return PlannedRun(run.index, body, run.task_id, run.idempotency_key)


async def _create_batch_run(svc: Services, run: PlannedRun, batch: BatchMarker) -> CreatedRun:
    if run.idempotency_key is not None:
        return await _create_keyed_run(svc, run, run.idempotency_key, batch)
    try:
        await svc.call(svc.cluster.create_run, run.body)
    except ObjectAlreadyExists:
        try:
            existing = await svc.call(svc.cluster.get_run, run.name)
        except ObjectNotFound:
            existing = {}
        if not _of_batch(existing, batch):
            raise ApiError(
                503, "run_name_taken", f"run name {run.name!r} is taken; trigger again"
            ) from None
        # An earlier try of this batch created it.
    return CreatedRun(run.name, is_cached=False)


def _item_error(error: ApiError, index: int, withdrawn: bool) -> ApiError:
    """`error`, said of item `index` of a batch none of whose runs now exist (or will)."""
    if withdrawn:
        outcome = "; no run of this batch was created"
    else:
        outcome = (
            "; the batch could not be withdrawn at once: its runs never start, and are deleted "
            "with it by the operator's housekeeping"
        )
    details = item_problem(index, "", error.message, code=error.code, cause=error.details)
    return ApiError(error.status, error.code, f"item {index}: {error.message}{outcome}", [details])


async def create_batch(
    svc: Services,
    plan: BatchPlan,
    *,
    idempotency_key: str | None = None,
    parent_run_id: str | None = None,
    digest: str = "",
) -> list[CreatedRun]:
    """Create every planned run, in item order in the answer; whatever fails, none.

    With an `idempotency_key`, a retry of the batch answers with the same runs.
    """
    batch = await _open_batch(svc, plan, idempotency_key, parent_run_id, digest)
    if batch.state is BatchState.COMMITTED:
        return [CreatedRun(run.id, is_cached=True) for run in batch.runs]
    gate = asyncio.Semaphore(CONCURRENT_CREATES)
    failures: list[tuple[int, BaseException]] = []
    outcomes: list[CreatedRun | None] = [None] * len(plan.runs)

    async def create(position: int, run: PlannedRun) -> None:
        async with gate:
            if failures:
                return  # the batch has failed: start no more creates
            try:
                outcomes[position] = await _create_batch_run(svc, _in_batch(run, batch), batch)
            except Exception as exc:
                # Recorded, not raised: every create in flight must finish (a cancelled
                # wait would not stop its thread's create) so the withdrawal knows them all.
                failures.append((run.index, exc))

    await asyncio.gather(*(create(position, run) for position, run in enumerate(plan.runs)))
    if failures:
        created = [o.id for o in outcomes if o is not None and not o.is_cached]
        withdrawn = await _withdraw(svc, batch, created)
        index, failure = min(failures, key=lambda f: f[0])
        if isinstance(failure, ApiError) and failure.status < 500:
            raise _item_error(failure, index, withdrawn) from failure
        raise failure
    runs = [outcome for outcome in outcomes if outcome is not None]  # all of them, no failure
    answer = [
        BatchRun(runs[run].id, is_cached=runs[run].is_cached or plan.is_repeat(index))
        for index, run in enumerate(plan.run_of_item)
    ]
    await _commit(svc, batch, answer)
    return [CreatedRun(run.id, run.is_cached) for run in answer]


def _commit_write(
    svc: Services, batch: BatchMarker, patch: list[dict[str, Any]]
) -> BatchMarker | None:
    """The marker after the commit (or as a twin request committed it); None when gone."""
    try:
        return read_marker(svc.cluster.json_patch_config_map(batch.name, patch))
    except ObjectRejected:
        # Its `test` failed: the marker is no longer open. Read what it is now.
        try:
            return read_marker(svc.cluster.get_config_map(batch.name))
        except ObjectNotFound:
            return None
    except ObjectNotFound:
        return None


async def _commit(svc: Services, batch: BatchMarker, answer: list[BatchRun]) -> None:
    """Commit the batch: from this write on, its runs exist for users and the operator."""
    after = await svc.call(_commit_write, svc, batch, commit_patch(batch, answer))
    # A twin request with the same key may have committed it first: the same runs.
    if after is None or after.uid != batch.uid or after.state is not BatchState.COMMITTED:
        raise _withdrawn(batch.batch_id)


async def _withdraw(svc: Services, batch: BatchMarker, created: Sequence[str]) -> bool:
    """Delete the batch's marker (its runs go with it) and the runs this request created (so
    that they are gone at once, not when the garbage collector gets to them); whether the
    marker could be deleted."""
    try:
        await svc.call(svc.cluster.delete_config_map, batch.name, batch.uid, batch.resource_version)
    except ObjectNotFound:
        pass
    except Exception as exc:
        log.error("could not withdraw batch %s: %s", batch.batch_id, exc)
        return False
    await _delete_runs(svc, created)
    return True


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
