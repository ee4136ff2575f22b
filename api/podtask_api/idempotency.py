"""Idempotency keys: which run answers for a task and key, and until when.

A run triggered with a key carries the hash of its task and key (`LABEL_IDEMPOTENCY`, to
find the key's runs) and until when it holds the key (`ANNOTATION_IDEMPOTENCY_EXPIRES_AT`,
from the trigger's TTL). A run holds its key while it is live or Completed, within that
TTL; a run that ends otherwise gives the key to the next run (`run_names`: the key's runs
are numbered). `idempotency_decision` says, from the key's runs, whether one still holds
it. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from podtask._contract.resources import FINAL_PHASES, RunPhase, format_timestamp, parse_timestamp
from podtask._contract.wire import GROUP
from podtask_api.run_names import key_digest, run_generation

LABEL_IDEMPOTENCY = f"{GROUP}/idempotency"
ANNOTATION_IDEMPOTENCY_EXPIRES_AT = f"{GROUP}/idempotency-key-expires-at"
_KEY_HASH_IN_LABEL = 40

# Trigger.dev's default: a key holds its run for 30 days.
DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS = 30 * 24 * 3600

# Final phases that give the key back: only a Completed run keeps answering for its key.
_RELEASING_PHASES = FINAL_PHASES - {RunPhase.COMPLETED}


def idempotency_label(task_id: str, idempotency_key: str) -> str:
    """The value of `LABEL_IDEMPOTENCY` on every run of this task and key."""
    return key_digest(task_id, idempotency_key)[:_KEY_HASH_IN_LABEL]


def key_marks(
    task_id: str, idempotency_key: str, ttl_seconds: int | None, now: datetime
) -> tuple[dict[str, str], dict[str, str]]:
    """The label and the annotation of a run triggered at `now` with this key and TTL."""
    ttl = ttl_seconds or DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS
    label = {LABEL_IDEMPOTENCY: idempotency_label(task_id, idempotency_key)}
    expiry = {ANNOTATION_IDEMPOTENCY_EXPIRES_AT: format_timestamp(now + timedelta(seconds=ttl))}
    return label, expiry


def key_expires_at(run: Mapping[str, Any]) -> datetime | None:
    """Until when `run` holds its idempotency key, as its trigger asked."""
    metadata = run.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    expires = parse_timestamp(annotations.get(ANNOTATION_IDEMPOTENCY_EXPIRES_AT))
    if expires is not None:
        return expires
    # A run made before keys had a TTL (or whose annotation was removed): the default.
    created = parse_timestamp(metadata.get("creationTimestamp"))
    return created + timedelta(seconds=DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS) if created else None


def holds_key(run: Mapping[str, Any], now: datetime) -> bool:
    """Whether `run` still answers for its idempotency key at `now`.

    It does while it is live or Completed, within its key's TTL, and not being deleted.
    """
    if (run.get("metadata") or {}).get("deletionTimestamp"):
        return False
    phase = (run.get("status") or {}).get("phase")
    if phase in _RELEASING_PHASES:
        return False
    expires = key_expires_at(run)
    return expires is None or now < expires


def is_same_trigger(existing: Mapping[str, Any], task_id: str, idempotency_key: str) -> bool:
    """Whether a run found under an idempotent name really is for this task and key."""
    spec = existing.get("spec") or {}
    return spec.get("taskId") == task_id and spec.get("idempotencyKey") == idempotency_key


@dataclass(frozen=True)
class IdempotencyDecision:
    """What a trigger with a key does: answer with `reuse`, or create run `generation`."""

    reuse: str | None
    generation: int


def idempotency_decision(
    runs: Sequence[Mapping[str, Any]], task_id: str, idempotency_key: str, now: datetime
) -> IdempotencyDecision:
    """Given the runs labelled with this key's hash, reuse the newest if it holds the key,
    else create the next generation."""
    newest: tuple[int, Mapping[str, Any]] | None = None
    for run in runs:
        name = str((run.get("metadata") or {}).get("name") or "")
        generation = run_generation(name, task_id, idempotency_key)
        if generation is None or not is_same_trigger(run, task_id, idempotency_key):
            continue  # a hash collision in the label: another key's run
        if newest is None or generation > newest[0]:
            newest = (generation, run)
    if newest is None:
        return IdempotencyDecision(reuse=None, generation=1)
    generation, run = newest
    if holds_key(run, now):
        return IdempotencyDecision(reuse=str(run["metadata"]["name"]), generation=generation)
    return IdempotencyDecision(reuse=None, generation=generation + 1)
