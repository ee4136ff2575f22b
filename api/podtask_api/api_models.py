"""The bodies of the API's answers, as pydantic models: what `/openapi.json` documents.

Routes build plain dicts (the views in `run_views`, `catalog_views`); each route
declares its model as `response_model`, so FastAPI checks every answer against the
document before it leaves. camelCase on the wire, like the requests. `extra="forbid"`:
a view that grows a field the model lacks fails the tests instead of vanishing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from podtask._contract.resources import PENDING_STATUS, RunPhase


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class RunStatus(StrEnum):
    """A run's status: its phase (`RunPhase`), or `Pending` before the operator gave it one."""

    PENDING = PENDING_STATUS
    DELAYED = RunPhase.DELAYED.value
    QUEUED = RunPhase.QUEUED.value
    EXECUTING = RunPhase.EXECUTING.value
    WAITING = RunPhase.WAITING.value
    WAITING_TO_RETRY = RunPhase.WAITING_TO_RETRY.value
    COMPLETED = RunPhase.COMPLETED.value
    FAILED = RunPhase.FAILED.value
    CRASHED = RunPhase.CRASHED.value
    CANCELED = RunPhase.CANCELED.value
    EXPIRED = RunPhase.EXPIRED.value
    TIMED_OUT = RunPhase.TIMED_OUT.value
    SYSTEM_FAILURE = RunPhase.SYSTEM_FAILURE.value


class ErrorBody(ApiModel):
    code: str = Field(description="Stable and machine-readable, e.g. `run_not_found`.")
    message: str = Field(description="What went wrong and what to do, for people.")
    details: Any = Field(
        description="More about it, per code: e.g. for `invalid_request`, each invalid field."
    )


class ErrorResponse(ApiModel):
    """The one shape of every error the API answers."""

    error: ErrorBody


class TriggeredRun(ApiModel):
    id: str
    is_cached: bool = Field(
        description="True when an idempotency key found an existing run (nothing was created)."
    )


class BatchTriggered(ApiModel):
    runs: list[TriggeredRun] = Field(description="One per item, in item order.")


class ReplayedRun(TriggeredRun):
    task_id: str


class RunErrorView(ApiModel):
    type: str
    message: str
    stack: str | None = None


class AttemptView(ApiModel):
    number: int
    pod: str
    machine: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str | None = None
    error: RunErrorView | None = None
    waited_seconds: float | None = Field(
        default=None, description="Time it spent waiting, not counted in maxDuration."
    )


class WaitView(ApiModel):
    """What a `Waiting` run waits for."""

    attempt: int
    since: datetime
    runs: list[str] = Field(description="The first of the runs it waits for.")
    run_count: int
    until: datetime | None = None
    waiting_for: str = Field(description="What it waits for, in words.")
    resume_requested_at: datetime | None = None


class RunSummary(ApiModel):
    """A run as lists show it: no payload, output, attempts or conditions."""

    id: str
    task_id: str
    version: str
    status: RunStatus
    attempt: int
    queue: str
    machine: str
    tags: list[str]
    concurrency_key: str | None
    idempotency_key: str | None
    priority: int
    parent_run_id: str | None
    replay_of: str | None
    is_test: bool = Field(description="A test run (triggered with `isTest`).")
    error: RunErrorView | None = Field(description="Without its traceback; see the run.")
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None


class RunView(ApiModel):
    """A run in full, as `GET /api/v1/runs/{id}` shows it."""

    id: str
    task_id: str
    version: str
    status: RunStatus
    attempt: int
    attempts: list[AttemptView]
    payload: Any
    output: Any
    error: RunErrorView | None
    tags: list[str]
    metadata: dict[str, Any] = Field(
        description="The run's metadata: as its task last wrote it (`podtask.metadata`), else "
        "as it was triggered. By convention `progress` is a number from 0 to 1."
    )
    queue: str
    machine: str
    concurrency_key: str | None
    idempotency_key: str | None
    idempotency_key_expires_at: datetime | None = Field(
        description="Until when the run answers for its idempotency key (if it has one)."
    )
    priority: int
    parent_run_id: str | None
    replay_of: str | None
    is_test: bool = Field(description="A test run (triggered with `isTest`).")
    cancel_requested_at: datetime | None
    conditions: list[dict[str, Any]] = Field(description="As the operator wrote them.")
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    wait: WaitView | None = Field(
        description="While its attempt waits (`Waiting`): what for; null otherwise."
    )
    duration: str | None
    duration_ms: int | None


class RunPage(ApiModel):
    data: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page. A page may "
        "hold fewer runs than `limit` (even none) and still have a next one."
    )


class EventObject(ApiModel):
    kind: str = Field(description="`TaskRun` or `Pod`.")
    name: str


class KubernetesEventView(ApiModel):
    type: str = Field(description="`Normal` or `Warning`.")
    reason: str = Field(description="In one word: `FailedScheduling`, `Started`, `Retrying`, …")
    message: str
    object: EventObject = Field(description="What it is about: the run, or an attempt's pod.")
    count: int = Field(description="How many times it happened.")
    first_at: str | None
    last_at: str | None
    source: str | None = Field(description="Who reported it: the operator, scheduler, kubelet.")


class RunKubernetesEvents(ApiModel):
    data: list[KubernetesEventView] = Field(description="Oldest first; the newest 200 at most.")


class QueueRefView(ApiModel):
    name: str
    concurrency_limit: int | None


class RetryView(ApiModel):
    max_attempts: int
    factor: float
    min_timeout_ms: int
    max_timeout_ms: int
    randomize: bool
    out_of_memory_machine: str | None = Field(
        description="The machine preset retried on after an out-of-memory kill."
    )


class DeclaredScheduleView(ApiModel):
    cron: str
    timezone: str


class TaskView(ApiModel):
    id: str
    version: str
    image: str
    module: str
    queue: QueueRefView
    machine: str
    retry: RetryView
    max_duration: int | None = Field(description="Seconds an attempt may run.")
    ttl: int | None = Field(description="Seconds a run may wait to start before it expires.")
    schedule: DeclaredScheduleView | None = Field(
        description="The schedule the task declares (`@task(schedule=...)`): its DECLARATIVE "
        "schedule's cron and timezone; null when it declares none."
    )
    payload_schema: dict[str, Any] | None = Field(
        description="The JSON schema of the task's payload model (pydantic's), null when its "
        "run function does not annotate the payload with one."
    )


class TaskList(ApiModel):
    data: list[TaskView]


class QueueView(ApiModel):
    name: str
    concurrency_limit: int | None = Field(
        description="The queue's own limit: its declaration's, or one set since (the "
        "`concurrency` endpoint, kubectl); null: the tasks' declared limit, else the "
        "operator's default."
    )
    limit_in_force: int | None = Field(
        description="Runs of the queue that may execute at once, now: `concurrencyLimit` when "
        "set, else the limit the operator applies (the declared one, else its default); null "
        "until the operator has seen the queue."
    )
    paused: bool
    running: int
    queued: int


class QueueList(ApiModel):
    data: list[QueueView]


class MachineView(ApiModel):
    name: str
    cpu: float
    memory_gb: float


class AttemptContextView(ApiModel):
    run_id: str
    attempt: int
    task_id: str
    queue: str
    machine: MachineView
    started_at: datetime
    tags: list[str]
    metadata: dict[str, Any]
    concurrency_key: str | None
    idempotency_key: str | None
    parent_run_id: str | None
    is_test: bool


class WaitState(StrEnum):
    """How a runner's wait stands."""

    WAITING = "Waiting"  # the attempt waits; its slot is given back (or soon will be)
    RESUMING = "Resuming"  # its wait is over: it waits for a slot of its queue
    RESUMED = "Resumed"  # it holds a slot again: the runner goes on


class RunnerWait(ApiModel):
    """How a runner's wait stands: `Waiting`, `Resuming` (waiting for a slot), `Resumed`."""

    state: WaitState


class RunnerAttempt(ApiModel):
    """What the runner of one attempt fetches: the module, the payload, the context."""

    run_id: str
    attempt: int
    task_id: str
    module: str
    payload: Any
    max_duration_seconds: int | None
    context: AttemptContextView


class ApiKeyAccess(StrEnum):
    """What a key may do: `write` (every endpoint) or `read` (only endpoints that read)."""

    WRITE = "write"
    READ = "read"


class ApiKeyView(ApiModel):
    """An API key as the API shows it: never the key, nor its digest."""

    name: str
    access: ApiKeyAccess
    created_at: datetime | None = Field(
        description="When it was created, if that was recorded (keys made by the chart or "
        "by older versions have none)."
    )
    configured: bool = Field(
        description="Given as the API's configuration (`PODTASK_API_KEY_HASHES`), not kept "
        "in the keys' Secret: it cannot be revoked through the API."
    )


class ApiKeyList(ApiModel):
    data: list[ApiKeyView]


class CreatedApiKey(ApiKeyView):
    key: str = Field(description="The key itself, shown only now: only its digest is stored.")


class ScheduleView(ApiModel):
    """A schedule: its task and cron, its last tick (as the operator recorded it) and its
    next ones (as its cron gives them)."""

    id: str
    task: str = Field(description="The id of the task each tick triggers a run of.")
    type: str = Field(
        description="`DECLARATIVE` (`@task(schedule=...)`, registered by a deploy) or "
        "`IMPERATIVE` (made over the API, the client or the CLI)."
    )
    active: bool
    cron: str
    timezone: str = Field(description="The IANA zone the cron's times are in.")
    external_id: str | None
    deduplication_key: str | None
    next_run: datetime | None = Field(description="The next tick; null while inactive.")
    last_run: datetime | None = Field(description="The latest tick that triggered a run.")
    last_run_id: str | None = Field(description="That run.")
    upcoming: list[datetime] = Field(description="The next 10 ticks; none while inactive.")
    created_at: datetime | None
    conditions: list[dict[str, Any]] = Field(
        description="As the operator wrote them: `Ready` False `TaskNotDeployed` when a tick "
        "found no deployed task."
    )


class SchedulePage(ApiModel):
    data: list[ScheduleView]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page."
    )


class TimezoneList(ApiModel):
    timezones: list[str] = Field(description="The IANA zones a schedule may use, sorted.")
