"""What the command line prints: tables, run and schedule details, durations and the wait's
progress line, and the objects `-o json` prints.

Pure functions of the API's JSON (the run, queue and key views) and the current time, so
that what a user reads is unit-tested; `podtask._cli.cli` only writes their result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
NONE = "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns left-aligned to their widest cell, two spaces apart, headers in capitals.

    A cell that is None shows as '-'; no trailing spaces.
    """
    cells = [[NONE if value is None else str(value) for value in row] for row in rows]
    heads = [header.upper() for header in headers]
    widths = [max([len(head), *(len(row[i]) for row in cells)]) for i, head in enumerate(heads)]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        for line in [heads, *cells]
    ]
    return "\n".join(lines)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def duration(seconds: float | None) -> str:
    """`850ms`, `4.2s`, `3m05s`, `2h07m`, `3d04h`; '-' for none."""
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def age(created_at: object, now: datetime) -> str:
    """How long ago, as `kubectl` shows it (`12s`, `5m`, `3h`, `2d`); '-' for no time."""
    when = parse_time(created_at)
    if when is None:
        return NONE
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _run_duration(run: Mapping[str, Any], now: datetime) -> str:
    if run.get("durationMs") is not None:
        return duration(run["durationMs"] / 1000)
    started = parse_time(run.get("startedAt"))
    if started is not None and run.get("finishedAt") is None:
        # Still running: the time so far, marked as such.
        return duration((now - started).total_seconds()) + "…"
    return NONE


RUN_COLUMNS = ("id", "task", "status", "attempt", "machine", "created", "duration")


def runs_table(runs: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """`podtask runs list`: one run per line, newest first as the API lists them."""
    rows = [
        (
            run.get("id"),
            run.get("taskId"),
            run.get("status"),
            run.get("attempt") or NONE,
            run.get("machine"),
            age(run.get("createdAt"), now),
            _run_duration(run, now),
        )
        for run in runs
    ]
    return table(RUN_COLUMNS, rows)


def queues_table(queues: Sequence[Mapping[str, Any]]) -> str:
    """`podtask queues`: the limit in force (a queue the operator has not seen yet may have
    none), whether it is paused, and its counts."""
    rows = [
        (
            queue.get("name"),
            NONE if queue.get("limitInForce") is None else queue["limitInForce"],
            "yes" if queue.get("paused") else "no",
            queue.get("running", 0),
            queue.get("queued", 0),
        )
        for queue in queues
    ]
    return table(("name", "limit", "paused", "running", "queued"), rows)


SCHEDULE_COLUMNS = ("id", "task", "cron", "timezone", "type", "active", "next run", "last run")


def schedules_table(schedules: Sequence[Mapping[str, Any]]) -> str:
    """`podtask schedules list`: one schedule per line, its next and last runs in local time."""
    rows = [
        (
            schedule.get("id"),
            schedule.get("task"),
            schedule.get("cron"),
            schedule.get("timezone"),
            schedule.get("type"),
            "yes" if schedule.get("active") else "no",
            _local(schedule.get("nextRun")),
            _local(schedule.get("lastRun")),
        )
        for schedule in schedules
    ]
    return table(SCHEDULE_COLUMNS, rows)


def schedule_details(schedule: Mapping[str, Any]) -> str:
    """`podtask schedules get`: the schedule's fields, its conditions, its next runs."""
    fields: list[tuple[str, object]] = [
        ("ID", schedule.get("id")),
        ("Task", schedule.get("task")),
        ("Type", schedule.get("type")),
        ("Active", "yes" if schedule.get("active") else "no"),
        ("Cron", schedule.get("cron")),
        ("Timezone", schedule.get("timezone")),
        ("External id", schedule.get("externalId") or NONE),
        ("Dedup. key", schedule.get("deduplicationKey") or NONE),
        ("Created", _local(schedule.get("createdAt"))),
        ("Last run", _local(schedule.get("lastRun"))),
        ("Last run id", schedule.get("lastRunId") or NONE),
        ("Next run", _local(schedule.get("nextRun"))),
    ]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name + ':':<{width + 1}}  {value}" for name, value in fields]
    for condition in schedule.get("conditions") or []:
        if condition.get("status") == "False":  # e.g. Ready: its task is not deployed
            why = [str(condition[part]) for part in ("reason", "message") if condition.get(part)]
            lines.append(f"Not {condition.get('type')}: {': '.join(why)}")
    upcoming = schedule.get("upcoming") or []
    if upcoming:
        lines += ["", "Upcoming (local time):", *(f"  {_local(tick)}" for tick in upcoming)]
    return "\n".join(lines)


def schedule_change(schedule: Mapping[str, Any], command: str) -> str:
    """What `schedules update|activate|deactivate|delete` say: which schedule, and what it
    does now."""
    ident = schedule.get("id")
    if command == "delete":
        return f"Deleted schedule {ident} (its runs stay)"
    verb = {"activate": "Activated", "deactivate": "Deactivated", "update": "Updated"}[command]
    what = f"{schedule.get('task')} at '{schedule.get('cron')}' ({schedule.get('timezone')})"
    if not schedule.get("active"):
        return f"{verb} {ident}: {what}; inactive: no runs until it is activated"
    return f"{verb} {ident}: {what}; next run {_local(schedule.get('nextRun'))} (local time)"


def keys_table(keys: Sequence[Mapping[str, Any]]) -> str:
    """`podtask keys list`: names and access; never a digest (it identifies a key)."""
    return table(("name", "access"), [(key.get("name"), key.get("access")) for key in keys])


def keys_list(keys: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """`podtask keys list -o json`: what the table shows, in the API's list shape."""
    return listed([{"name": key.get("name"), "access": key.get("access")} for key in keys])


def listed(items: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """A list as the API answers one (`GET /api/v1/runs`, `/queues`): `{"data": [...]}`."""
    return {"data": [dict(item) for item in items]}


def manifest_table(manifest: Mapping[str, Any]) -> str:
    """The tasks of a manifest, as `podtask index -o text` and `podtask deploy` print them."""
    rows = [
        (
            t.get("id"),
            t.get("module"),
            (t.get("queue") or {}).get("name"),
            t.get("machine"),
            schedule_words(t.get("schedule")),
        )
        for t in manifest.get("tasks") or []
    ]
    return table(("task", "module", "queue", "machine", "schedule"), rows)


def schedule_words(schedule: Mapping[str, Any] | None) -> str | None:
    """A declared schedule in one cell: `0 9 * * 1-5 (Europe/Paris)`; None without one."""
    if not schedule:
        return None
    return f"{schedule.get('cron')} ({schedule.get('timezone') or 'UTC'})"


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _local(value: object) -> str:
    when = parse_time(value)
    return NONE if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def run_details(run: Mapping[str, Any], now: datetime) -> str:
    """`podtask runs get`: the run's fields, then its payload and its output or error."""
    fields: list[tuple[str, object]] = [
        ("ID", run.get("id")),
        ("Task", f"{run.get('taskId')} (version {run.get('version')})"),
        ("Status", run.get("status")),
        ("Attempt", run.get("attempt") or NONE),
        ("Machine", run.get("machine")),
        ("Queue", run.get("queue")),
        ("Tags", ", ".join(run.get("tags") or []) or NONE),
        ("Created", _local(run.get("createdAt"))),
        ("Started", _local(run.get("startedAt"))),
        ("Finished", _local(run.get("finishedAt"))),
        ("Duration", _run_duration(run, now)),
    ]
    optional = [
        ("Concurrency key", run.get("concurrencyKey")),
        ("Idempotency key", run.get("idempotencyKey")),
        ("Parent run", run.get("parentRunId")),
        ("Replay of", run.get("replayOf")),
        ("Test run", "yes" if run.get("isTest") else None),
        ("Next attempt", _local(run.get("nextAttemptAt")) if run.get("nextAttemptAt") else None),
    ]
    fields += [(name, value) for name, value in optional if value]
    width = max(len(name) for name, _ in fields)
    lines = [f"{name + ':':<{width + 1}}  {value}" for name, value in fields]
    if run.get("attempts"):
        lines += ["", "Attempts:", attempts_table(run["attempts"], now)]
    lines += ["", "Payload:", pretty_json(run.get("payload"))]
    if run.get("metadata"):
        lines += ["", "Metadata:", pretty_json(run["metadata"])]
    error = run.get("error")
    if error:
        lines += ["", "Error:", error_text(error)]
    elif run.get("status") == "Completed" or run.get("output") is not None:
        lines += ["", "Output:", pretty_json(run.get("output"))]
    return "\n".join(lines)


# An attempt's error in the attempts table: its first line, cut to this many characters (the
# run's own error, in full, follows under "Error:").
ATTEMPT_ERROR_WIDTH = 60


def _attempt_duration(attempt: Mapping[str, Any], now: datetime) -> str:
    started = parse_time(attempt.get("startedAt"))
    if started is None:
        return NONE
    finished = parse_time(attempt.get("finishedAt"))
    if finished is None:
        return duration((now - started).total_seconds()) + "…"
    return duration((finished - started).total_seconds())


def _attempt_error(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    line = (f"{error.get('type') or 'Error'}: {error.get('message') or ''}".splitlines() or [""])[0]
    return line if len(line) <= ATTEMPT_ERROR_WIDTH else line[: ATTEMPT_ERROR_WIDTH - 1] + "…"


ATTEMPT_COLUMNS = (
    "attempt",
    "machine",
    "started",
    "finished",
    "duration",
    "exit",
    "reason",
    "error",
)


def attempts_table(attempts: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """`podtask runs get`'s attempts, in order: each one's machine, times, exit code, reason
    (`OOMKilled`, `Unschedulable`, …) and error: the `status.attempts` of the TaskRun."""
    rows = [
        (
            attempt.get("number"),
            attempt.get("machine"),
            _local(attempt.get("startedAt")),
            _local(attempt.get("finishedAt")),
            _attempt_duration(attempt, now),
            attempt.get("exitCode"),
            attempt.get("reason"),
            _attempt_error(attempt.get("error")),
        )
        for attempt in attempts
    ]
    return table(ATTEMPT_COLUMNS, rows)


def error_text(error: Mapping[str, Any]) -> str:
    text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}".rstrip()
    stack = error.get("stack")
    return f"{text}\n{stack.rstrip()}" if stack else text


def status_words(run: Mapping[str, Any]) -> str:
    """The run's status as a waiting user reads it: `Executing (attempt 2)`."""
    status = str(run.get("status") or "Pending")
    attempt = run.get("attempt") or 0
    if status in ("Executing", "Waiting", "WaitingToRetry") and attempt:
        return f"{status} (attempt {attempt})"
    return status


def progress_line(run_id: str, run: Mapping[str, Any], elapsed: float, tick: int) -> str:
    """The one line a wait redraws on a terminal: spinner, run, status, time so far."""
    spinner = SPINNER[tick % len(SPINNER)]
    return f"{spinner} {run_id}  {status_words(run)}  {duration(elapsed)}"
