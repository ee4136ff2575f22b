"""The custom resources' shapes: `Task`, `TaskQueue` and `TaskRun` spec and status.

These pydantic models are the one source of truth for what travels through the
cluster: snake_case in Python, camelCase on the wire, and `make crds` turns them
into the CRD schemas under `crds/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "podtask.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels put on every attempt pod; the operator selects on them.
LABEL_TASK = f"{GROUP}/task"
LABEL_QUEUE = f"{GROUP}/queue"
LABEL_CONCURRENCY_KEY = f"{GROUP}/concurrency-key"
LABEL_RUN = f"{GROUP}/run"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_MACHINE = f"{GROUP}/machine"


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(value: datetime) -> str:
    """A time as the API and the cluster write it: RFC 3339 in UTC, with a `Z`.

    A naive datetime is local time, as `datetime.astimezone` reads it.
    """
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: object) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, MicroTime too) as an aware datetime; None when
    absent or unreadable. A time without a zone is UTC, as Kubernetes writes them."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys are kept out."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class OutOfMemoryPolicy(WireModel):
    machine: str | None = Field(
        default=None, description="The machine preset to retry on after an out-of-memory kill."
    )


class RetryPolicy(WireModel):
    max_attempts: int = Field(default=3, ge=1, le=100)
    factor: float = Field(default=2.0, ge=1)
    min_timeout_ms: int = Field(default=1000, ge=0)
    max_timeout_ms: int = Field(default=60000, ge=0)
    randomize: bool = True
    out_of_memory: OutOfMemoryPolicy | None = None


class QueueRef(WireModel):
    name: str
    concurrency_limit: int | None = Field(default=None, ge=0)


class TaskSpec(WireModel):
    """What `podtask deploy` (or `podtask dev`) registers for one task id."""

    task_id: str
    image: str
    module: str = Field(
        description="The module that defines the task: a dotted name or a file path."
    )
    version: str
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    queue: QueueRef
    machine: str
    max_duration_seconds: int | None = Field(default=None, ge=1)
    ttl_seconds: int | None = Field(
        default=None, ge=1, description="Default time a run may wait to start before it expires."
    )
    schedule: str | None = None


class TaskQueueSpec(WireModel):
    concurrency_limit: int | None = Field(default=None, ge=0)
    paused: bool = False


class TaskQueueStatus(WireModel):
    running: int = 0
    queued: int = 0


class RunPhase(StrEnum):
    DELAYED = "Delayed"
    QUEUED = "Queued"
    EXECUTING = "Executing"
    WAITING_TO_RETRY = "WaitingToRetry"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CRASHED = "Crashed"
    CANCELED = "Canceled"
    EXPIRED = "Expired"
    TIMED_OUT = "TimedOut"
    SYSTEM_FAILURE = "SystemFailure"

    @property
    def is_final(self) -> bool:
        return self in FINAL_PHASES


FINAL_PHASES = frozenset(
    {
        RunPhase.COMPLETED,
        RunPhase.FAILED,
        RunPhase.CRASHED,
        RunPhase.CANCELED,
        RunPhase.EXPIRED,
        RunPhase.TIMED_OUT,
        RunPhase.SYSTEM_FAILURE,
    }
)


class TaskRunSpec(WireModel):
    """The frozen snapshot of the task's config at trigger time, the options and the payload."""

    task_id: str
    version: str
    image: str
    module: str
    machine: str
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    queue: QueueRef
    max_duration_seconds: int | None = Field(default=None, ge=1)
    payload: Any = Field(default=None, description="The JSON payload given to the task's run.")
    concurrency_key: str | None = None
    priority: int = 0
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    ttl_seconds: int | None = Field(default=None, ge=1)
    delay_until: datetime | None = None
    parent_run_id: str | None = None
    is_test: bool = False
    replay_of: str | None = Field(default=None, description="The run this one replays.")
    triggered_at: datetime | None = Field(
        default=None,
        description="When it was triggered, to the microsecond: its place in its queue's line.",
    )
    cancel_requested_at: datetime | None = Field(
        default=None,
        description="Set to cancel the run: the operator deletes its pod and ends it Canceled.",
    )


class RunError(WireModel):
    type: str
    message: str
    stack: str | None = Field(default=None, description="The traceback, when there was one.")


class AttemptReport(WireModel):
    """What the runner reported for one attempt through the API."""

    attempt: int = Field(ge=1)
    ok: bool
    output: Any = None
    error: RunError | None = None
    reported_at: datetime = Field(default_factory=utcnow)


class Attempt(WireModel):
    number: int = Field(ge=1)
    pod: str
    machine: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    error: RunError | None = None


class Condition(WireModel):
    type: str
    status: str
    reason: str
    message: str = ""
    last_transition_time: datetime = Field(default_factory=utcnow)


class TaskRunStatus(WireModel):
    phase: RunPhase | None = None
    attempt: int = 0
    machine: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    report: AttemptReport | None = None
    output: Any = Field(default=None, description="The task's JSON output once Completed.")
    error: RunError | None = None
    conditions: list[Condition] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    duration: str | None = Field(
        default=None, description="Wall time from start to end, for display."
    )
