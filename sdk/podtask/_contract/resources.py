"""The custom resources' shapes: `Task`, `TaskQueue`, `TaskRun` and `TaskSchedule` spec and
status.

These pydantic models are the one source of truth for what travels through the
cluster: snake_case in Python, camelCase on the wire, and `make crds` turns them
into the CRD schemas under `crds/`.

Two kinds of rule, both from `podtask._contract.limits` and the preset table:
- what a value may be (a machine from the presets, a task id, a queue name, minimum
  attempts, tags, keys): validated here in Python and declared in the CRD, so that the
  apiserver refuses a bad TaskRun from kubectl with a 422 naming the field;
- how much of a value is stored (an error's message and traceback, a condition's message):
  the writers cut those to size (`podtask._contract.bounded_errors`), so they are declared in
  the CRD only (`stored_max_length`), never refused when a runner reports more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from podtask._contract.kube_names import QUEUE_NAME_PATTERN, TASK_ID_PATTERN
from podtask._contract.limits import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_CONCURRENCY_LIMIT,
    MAX_CONDITION_MESSAGE_BYTES,
    MAX_CONDITION_REASON_LENGTH,
    MAX_CONDITION_TYPE_LENGTH,
    MAX_CRON_LENGTH,
    MAX_ERROR_BYTES,
    MAX_ERROR_MESSAGE_BYTES,
    MAX_ERROR_TYPE_CHARS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_OBJECT_NAME_LENGTH,
    MAX_PRIORITY,
    MAX_QUEUE_NAME_LENGTH,
    MAX_SCHEDULE_DEDUPLICATION_KEY_LENGTH,
    MAX_SCHEDULE_EXTERNAL_ID_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TASK_ID_LENGTH,
    MAX_TIMEZONE_LENGTH,
    MAX_WAIT_RUNS_SHOWN,
    MAX_WAITING_FOR_CHARS,
)
from podtask._contract.machines import PRESETS
from podtask._contract.schedules import (
    DEFAULT_TIMEZONE,
    InvalidSchedule,
    check_cron,
    check_timezone,
)

# A JSON object the apiserver holds as one field: its keys are not tracked one by one in the
# object's managedFields, which would cost about as much as the keys themselves and take the
# TaskRun past what etcd stores (a metadata document of thousands of small keys).
ATOMIC_OBJECT: JsonDict = {"x-kubernetes-map-type": "atomic"}

# The key that marks a cap for the CRD only (`podtask._contract.crds` makes it `maxLength`): the
# API's own schema for a runner's report must not promise to refuse what it cuts.
STORED_MAX_LENGTH = "x-podtask-stored-max-length"


def stored_max_length(limit: int) -> Any:
    """A string's cap in the CRD, for text the writers cut to `limit` stored bytes: a
    character takes at least one stored byte, so it has at most `limit` characters."""
    return Field(json_schema_extra={STORED_MAX_LENGTH: limit})


def _known_machine(name: str) -> str:
    if name not in PRESETS:
        raise PydanticCustomError(
            "unknown_machine",
            "unknown machine {name}; valid machines are: {valid}",
            {"name": repr(name), "valid": ", ".join(PRESETS)},
        )
    return name


# A machine preset's name: the CRD's enum is the preset table.
MachineName = Annotated[
    str,
    AfterValidator(_known_machine),
    WithJsonSchema({"type": "string", "enum": list(PRESETS)}),
]
TaskId = Annotated[str, StringConstraints(max_length=MAX_TASK_ID_LENGTH, pattern=TASK_ID_PATTERN)]
# A queue's name, in the schema only: a declaration is checked where the manifest is built
# (`podtask._authoring.manifest.queues_of`), whose message says where the task is declared.
QueueName = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "maxLength": MAX_QUEUE_NAME_LENGTH, "pattern": QUEUE_NAME_PATTERN}
    ),
]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH)]
ConcurrencyLimit = Annotated[int, Field(ge=0, le=MAX_CONCURRENCY_LIMIT)]
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY)]


def _schedule_field(check: Any) -> Any:
    """`check` (of `podtask._contract.schedules`) as a validator whose error is of type
    `invalid_cron` or `invalid_timezone`, with `InvalidSchedule`'s message as it is."""

    def validate(value: str) -> str:
        try:
            checked: str = check(value)
        except InvalidSchedule as exc:
            raise PydanticCustomError(
                f"invalid_{exc.field}", "{message}", {"message": str(exc)}
            ) from None
        return checked

    return AfterValidator(validate)


# A schedule's cron expression and zone, checked by `podtask._contract.schedules` (the CRD can
# only bound their length: kubectl may store one that the operator then reports as invalid).
CronExpression = Annotated[
    str,
    _schedule_field(check_cron),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_CRON_LENGTH}),
]
TimezoneName = Annotated[
    str,
    _schedule_field(check_timezone),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TIMEZONE_LENGTH}),
]


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
    machine: MachineName | None = Field(
        default=None, description="The machine preset to retry on after an out-of-memory kill."
    )


_DEFAULT_MIN_TIMEOUT_MS = 1000
_DEFAULT_MAX_TIMEOUT_MS = 60000


class RetryPolicy(WireModel):
    # The one rule that spans fields, in Python and in CEL for the apiserver (an absent
    # field is its default: the CRD sets no defaults).
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"(has(self.maxTimeoutMs) ? self.maxTimeoutMs : "
                    f"{_DEFAULT_MAX_TIMEOUT_MS}) >= (has(self.minTimeoutMs) ? "
                    f"self.minTimeoutMs : {_DEFAULT_MIN_TIMEOUT_MS})",
                    "message": "maxTimeoutMs must be at least minTimeoutMs",
                    "fieldPath": ".maxTimeoutMs",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    factor: float = Field(default=2.0, ge=1)
    min_timeout_ms: int = Field(default=_DEFAULT_MIN_TIMEOUT_MS, ge=0)
    max_timeout_ms: int = Field(default=_DEFAULT_MAX_TIMEOUT_MS, ge=0)
    randomize: bool = True
    out_of_memory: OutOfMemoryPolicy | None = None

    @model_validator(mode="after")
    def _timeouts_in_order(self) -> RetryPolicy:
        if self.max_timeout_ms < self.min_timeout_ms:
            raise ValueError(
                f"maxTimeoutMs ({self.max_timeout_ms}) must be at least minTimeoutMs "
                f"({self.min_timeout_ms})"
            )
        return self


class QueueRef(WireModel):
    name: QueueName
    concurrency_limit: ConcurrencyLimit | None = None


class TaskScheduleDeclaration(WireModel):
    """A task's schedule as `@task(schedule=...)` declares it; registering the task makes it
    a DECLARATIVE `TaskSchedule` named after the task."""

    cron: CronExpression = Field(
        description="5 fields (minute hour day-of-month month day-of-week) or a macro "
        "(@yearly, @monthly, @weekly, @daily, @hourly)."
    )
    timezone: TimezoneName = Field(default=DEFAULT_TIMEZONE, description="An IANA zone name.")


class TaskSpec(WireModel):
    """What `podtask deploy` (or `podtask dev`) registers for one task id."""

    task_id: TaskId
    image: str
    module: str = Field(
        description="The module that defines the task: a dotted name or a file path."
    )
    version: str
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    queue: QueueRef
    machine: MachineName
    max_duration_seconds: int | None = Field(default=None, ge=1)
    ttl_seconds: int | None = Field(
        default=None, ge=1, description="Default time a run may wait to start before it expires."
    )
    schedule: TaskScheduleDeclaration | None = Field(
        default=None, description="The schedule the task declares, if any."
    )
    payload_schema: dict[str, Any] | None = Field(
        default=None,
        description="The JSON schema of the task's payload model (pydantic's), when its run "
        "function annotates the payload with one: the dashboard's Test page fills in an "
        "example and checks a payload against it.",
    )


class TaskQueueSpec(WireModel):
    concurrency_limit: ConcurrencyLimit | None = None
    paused: bool = False


class TaskQueueStatus(WireModel):
    """Written by the operator: the queue's counts, and the limit it enforces now."""

    running: int = Field(default=0, ge=0)
    queued: int = Field(default=0, ge=0)
    limit_in_force: ConcurrencyLimit | None = Field(
        default=None,
        description="The limit the operator applies: the spec's, else the one the queue's "
        "runs declare, else the operator's default (PODTASK_DEFAULT_CONCURRENCY_LIMIT).",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The generation of the spec the operator acts on: once it is written, "
        "the starts begun before it have ended, and no run starts against that spec (a "
        "paused queue starts none).",
    )


class RunPhase(StrEnum):
    DELAYED = "Delayed"
    QUEUED = "Queued"
    EXECUTING = "Executing"
    # Its attempt waits (on runs it triggered, or for a time): its pod runs on, but it holds
    # no slot of its queue until it resumes (`RunWait`).
    WAITING = "Waiting"
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


# What the API and the CLI show as the status of a run the operator has not given a phase yet
# (kubectl shows no status then): a run's status is this or its `RunPhase`.
PENDING_STATUS = "Pending"

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

    task_id: TaskId
    version: str
    image: str
    module: str
    machine: MachineName
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    queue: QueueRef
    max_duration_seconds: int | None = Field(default=None, ge=1)
    payload: Any = Field(default=None, description="The JSON payload given to the task's run.")
    concurrency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONCURRENCY_KEY_LENGTH)]
        | None
    ) = None
    priority: Priority = 0
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict, json_schema_extra=ATOMIC_OBJECT)
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)]
        | None
    ) = None
    ttl_seconds: int | None = Field(default=None, ge=1)
    delay_until: datetime | None = None
    parent_run_id: str | None = None
    is_test: bool = Field(
        default=False, description="A test run (the dashboard's Test page, `--test`)."
    )
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
    """An error as reported, and as stored once cut to size (`podtask._contract.bounded_errors`)."""

    type: Annotated[str, stored_max_length(MAX_ERROR_TYPE_CHARS)]
    message: Annotated[str, stored_max_length(MAX_ERROR_MESSAGE_BYTES)]
    stack: Annotated[str | None, stored_max_length(MAX_ERROR_BYTES)] = Field(
        default=None, description="The traceback, when there was one."
    )


class CompletionReport(WireModel):
    """What the runner says about the attempt it ran (`POST .../complete`): the JSON output,
    or the error. The API stores it in the run's status as its `AttemptReport`."""

    ok: bool
    output: Any = None
    error: RunError | None = None

    def to_wire(self) -> dict[str, Any]:
        # A report says outright that it has no output, or no error: those keys stay, as null.
        wire = super().to_wire()
        return {**wire, "output": wire.get("output"), "error": wire.get("error")}


class AttemptReport(CompletionReport):
    """What the runner reported for one attempt through the API."""

    attempt: int = Field(ge=1)
    reported_at: datetime = Field(default_factory=utcnow)


class Attempt(WireModel):
    number: int = Field(ge=1)
    pod: Annotated[str, stored_max_length(MAX_OBJECT_NAME_LENGTH)]
    machine: MachineName
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = Field(
        default=None,
        description="The exit code of the attempt's container, when its end was judged from "
        "the pod; absent when the runner's report of success completed the run (its process "
        "exits 0 just after).",
    )
    reason: str | None = None
    error: RunError | None = None
    waited_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Time the attempt spent waiting (`Waiting`): not counted in maxDuration.",
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    type: Annotated[str, stored_max_length(MAX_CONDITION_TYPE_LENGTH)]
    status: ConditionStatus
    reason: Annotated[str, stored_max_length(MAX_CONDITION_REASON_LENGTH)]
    message: Annotated[str, stored_max_length(MAX_CONDITION_MESSAGE_BYTES)] = ""
    last_transition_time: datetime = Field(default_factory=utcnow)


class RunWait(WireModel):
    """The wait the current attempt is in (`trigger_and_wait`, batches, `wait.for`).

    The API writes it when the runner says it waits, and marks it when the runner asks to
    go on; the operator clears it when the run holds a slot of its queue again.
    """

    attempt: int = Field(ge=1)
    since: datetime
    runs: Annotated[
        list[Annotated[str, stored_max_length(MAX_OBJECT_NAME_LENGTH)]],
        Field(json_schema_extra={"maxItems": MAX_WAIT_RUNS_SHOWN}),
    ] = Field(default_factory=list, description="The first of the runs it waits for.")
    run_count: int = Field(default=0, ge=0, description="How many runs it waits for.")
    until: datetime | None = Field(default=None, description="The time it waits for.")
    waiting_for: Annotated[str, stored_max_length(MAX_WAITING_FOR_CHARS)] = Field(
        default="", description="What it waits for, in words: 'run-…', or a time."
    )
    resume_requested_at: datetime | None = Field(
        default=None, description="When the runner asked to go on: the run needs a slot again."
    )


class TaskRunStatus(WireModel):
    phase: RunPhase | None = None
    attempt: int = Field(default=0, ge=0)
    machine: MachineName | None = None
    attempts: Annotated[list[Attempt], Field(json_schema_extra={"maxItems": MAX_ATTEMPTS})] = Field(
        default_factory=list
    )
    report: AttemptReport | None = None
    output: Any = Field(default=None, description="The task's JSON output once Completed.")
    error: RunError | None = None
    conditions: list[Condition] = Field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = None
    wait: RunWait | None = None
    duration: str | None = Field(
        default=None, description="Wall time from start to end, for display."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="The run's metadata as its task last wrote it (`podtask.metadata`), "
        "written by the API for the runner; until then the trigger's (`spec.metadata`).",
        json_schema_extra=ATOMIC_OBJECT,
    )


class ScheduleType(StrEnum):
    # From `@task(schedule=...)`, registered by `podtask dev` and deployments.
    DECLARATIVE = "DECLARATIVE"
    # Created over the API, the client or the CLI.
    IMPERATIVE = "IMPERATIVE"


class TaskScheduleSpec(WireModel):
    """A schedule: the task it triggers, and when."""

    # Named (`podtask._contract.schedules`) after its task when DECLARATIVE, else `sched-` +
    # 16 base36 characters, random or of its deduplication key.

    task_id: TaskId
    cron: CronExpression = Field(
        description="5 fields (minute hour day-of-month month day-of-week) or a macro "
        "(@yearly, @monthly, @weekly, @daily, @hourly)."
    )
    timezone: TimezoneName = Field(
        default=DEFAULT_TIMEZONE,
        description="The IANA zone its cron's wall times are in: a time the clocks skip is "
        "skipped, a time they repeat ticks once.",
    )
    type: ScheduleType = ScheduleType.IMPERATIVE
    active: bool = Field(default=True, description="An inactive schedule does not tick.")
    external_id: (
        Annotated[str, StringConstraints(max_length=MAX_SCHEDULE_EXTERNAL_ID_LENGTH)] | None
    ) = Field(default=None, description="The caller's id for it (a user's, a tenant's).")
    deduplication_key: (
        Annotated[str, StringConstraints(max_length=MAX_SCHEDULE_DEDUPLICATION_KEY_LENGTH)] | None
    ) = Field(
        default=None,
        description="Creating a schedule with the same key again updates this one.",
    )


class TaskScheduleStatus(WireModel):
    """Written by the operator as the schedule ticks."""

    last_timestamp: datetime | None = Field(
        default=None, description="The latest tick whose run was triggered."
    )
    last_run_id: str | None = Field(default=None, description="That tick's run.")
    next_timestamp: datetime | None = Field(
        default=None, description="The next tick; none while inactive."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec's generation these describe."
    )
    conditions: list[Condition] = Field(default_factory=list)
