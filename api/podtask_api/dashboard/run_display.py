"""How the runs' pages show a run's fields: times, durations, JSON, progress, the reason
of its status, the kubectl command. Pure; `install` makes them the templates' filters.

The pages show times in UTC on the server (`2024-05-01 10:00:03 UTC`, so that a page read
without JavaScript is unambiguous); `dashboard.js` turns each `<time data-relative>` into
"3 minutes ago" with the local time as its title.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from podtask._authoring.run_results import FINAL_STATUSES
from podtask._contract.resources import parse_timestamp
from podtask_api.api_models import RunStatus

# Every status, in the order a run goes through them: the status filter's choices.
STATUS_ORDER = tuple(str(status) for status in RunStatus)
PROGRESS_KEY = "progress"


def is_final(status: str | None) -> bool:
    return status in FINAL_STATUSES


def shown_time(value: object) -> str:
    """A wire timestamp as `2024-05-01 10:00:03 UTC`; empty when there is none."""
    when = parse_timestamp(value)
    if when is None:
        return ""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(milliseconds: float | None) -> str:
    """`850 ms`, `42s`, `3m 5s`, `2h 10m`; empty for None. As `podtask.formatDuration`."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{round(milliseconds)} ms"
    seconds = round(milliseconds / 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def run_duration_ms(run: Mapping[str, Any], now: datetime) -> float | None:
    """How long the run has run: start to end, or start to `now` while it runs."""
    if run.get("durationMs") is not None:
        return float(run["durationMs"])
    started = parse_timestamp(run.get("startedAt"))
    if started is None:
        return None
    ended = parse_timestamp(run.get("finishedAt"))
    if ended is None and is_final(run.get("status")):
        return None
    return max(0.0, ((ended or now) - started).total_seconds() * 1000)


def attempt_duration_ms(attempt: Mapping[str, Any], now: datetime) -> float | None:
    started = parse_timestamp(attempt.get("startedAt"))
    if started is None:
        return None
    ended = parse_timestamp(attempt.get("finishedAt")) or now
    return max(0.0, (ended - started).total_seconds() * 1000)


def pretty_json(value: Any) -> str:
    """JSON as people read it: indented, keys in their order, non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def progress_of(metadata: Mapping[str, Any] | None) -> float | None:
    """`metadata["progress"]` when it is a number from 0 to 1 (the convention), else None."""
    value = (metadata or {}).get(PROGRESS_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 <= value <= 1 else None


def status_reason(run: Mapping[str, Any]) -> dict[str, str] | None:
    """Why the run is in its status, as the operator last said it: the newest condition
    that holds (`reason`, `message`); None when there is none."""
    holding = [
        c
        for c in run.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True" and c.get("reason")
    ]
    if not holding:
        return None
    newest = max(holding, key=lambda c: str(c.get("lastTransitionTime") or ""))
    return {"reason": str(newest["reason"]), "message": str(newest.get("message") or "")}


def kubectl_command(run_id: str, namespace: str) -> str:
    """The kubectl command that shows the same run."""
    return f"kubectl get taskrun {run_id} -n {namespace} -o yaml"


def install(env: Environment) -> None:
    """Make these the filters and tests of the dashboard's templates."""
    env.filters.update(
        shown_time=shown_time,
        duration_text=duration_text,
        pretty_json=pretty_json,
    )
    env.tests.update(final=is_final)
