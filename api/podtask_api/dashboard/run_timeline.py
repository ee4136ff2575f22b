"""A run's timeline: what it did when, from its creation to its end (or now), as segments
placed on one axis, which the run page draws as CSS bars. Pure.

Segments, in order: the wait before the first attempt (`queued`: its delay, its queue, its
pod being scheduled), each attempt (`attempt`, marked by how it ended), the wait between
two attempts (`retry`: the backoff), the wait after a failed attempt while the next is due
(`retry`, up to `nextAttemptAt`), and the wait of a running attempt on other runs or a time
(`waiting`, drawn over its attempt). How long an ended attempt waited is in its title (the
run keeps the total, not when).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from podtask._contract.resources import parse_timestamp
from podtask_api.dashboard.run_display import duration_text, is_final, shown_time

SegmentKind = Literal["queued", "attempt", "retry", "waiting"]
Outcome = Literal["running", "succeeded", "failed", "ended"]
# A bar narrower than this (percent of the span) is drawn this wide, so that it shows.
MIN_WIDTH = 0.6


@dataclass(frozen=True)
class Segment:
    kind: SegmentKind
    label: str
    start: datetime
    end: datetime
    outcome: Outcome | None = None
    attempt: int | None = None
    # Ends in the future (the next attempt's time): drawn as planned, not done.
    planned: bool = False
    note: str = ""
    left: float = 0.0  # percent of the span
    width: float = 0.0

    @property
    def title(self) -> str:
        seconds = (self.end - self.start).total_seconds()
        parts = [self.label, duration_text(seconds * 1000)]
        parts.append(f"{shown_time(self.start.isoformat())} → {shown_time(self.end.isoformat())}")
        if self.note:
            parts.append(self.note)
        return " · ".join(p for p in parts if p)


@dataclass(frozen=True)
class Timeline:
    start: datetime
    end: datetime
    segments: list[Segment]

    @property
    def span_text(self) -> str:
        return duration_text((self.end - self.start).total_seconds() * 1000)

    def lane(self, kind: SegmentKind) -> list[Segment]:
        return [s for s in self.segments if s.kind == kind]


def _outcome(attempt: Mapping[str, Any], is_last: bool, run: Mapping[str, Any]) -> Outcome:
    if attempt.get("finishedAt") is None:
        return "ended" if is_final(run.get("status")) else "running"
    if attempt.get("error") or attempt.get("exitCode") not in (None, 0):
        return "failed"
    if is_last and run.get("status") != "Completed" and is_final(run.get("status")):
        return "ended"  # canceled, expired, timed out: not a success
    return "succeeded"


def _attempt_note(attempt: Mapping[str, Any]) -> str:
    notes = []
    if attempt.get("machine"):
        notes.append(str(attempt["machine"]))
    if attempt.get("exitCode") is not None:
        notes.append(f"exit code {attempt['exitCode']}")
    if attempt.get("reason"):
        notes.append(str(attempt["reason"]))
    if attempt.get("waitedSeconds"):
        notes.append(f"waited {duration_text(float(attempt['waitedSeconds']) * 1000)}")
    return ", ".join(notes)


def _placed(segments: Sequence[Segment], start: datetime, end: datetime) -> list[Segment]:
    span = max((end - start).total_seconds(), 1e-3)
    placed = []
    for segment in segments:
        left = max(0.0, (segment.start - start).total_seconds() / span * 100)
        width = max(MIN_WIDTH, (segment.end - segment.start).total_seconds() / span * 100)
        width = min(width, max(MIN_WIDTH, 100 - left))
        placed.append(_with(segment, left=round(left, 3), width=round(width, 3)))
    return placed


def _with(segment: Segment, **changes: Any) -> Segment:
    return Segment(**{**segment.__dict__, **changes})


def timeline(run: Mapping[str, Any], now: datetime) -> Timeline | None:
    """The timeline of `run` (as `GET /api/v1/runs/{id}` shows it) at `now`; None before
    the run has a creation time."""
    created = parse_timestamp(run.get("createdAt"))
    if created is None:
        return None
    final = is_final(run.get("status"))
    finished = parse_timestamp(run.get("finishedAt"))
    until = finished if final and finished is not None else now
    segments: list[Segment] = []
    attempts = [a for a in run.get("attempts") or [] if parse_timestamp(a.get("startedAt"))]
    first_start = parse_timestamp(attempts[0]["startedAt"]) if attempts else None
    waited_until = first_start or until
    if waited_until > created:
        label = "Delayed, then queued" if run.get("status") == "Delayed" else "Waiting to start"
        segments.append(Segment("queued", label, created, waited_until))

    previous_end: datetime | None = None
    for index, attempt in enumerate(attempts):
        started = parse_timestamp(attempt["startedAt"]) or created
        if previous_end is not None and started > previous_end:
            segments.append(Segment("retry", "Waiting to retry", previous_end, started))
        ended = parse_timestamp(attempt.get("finishedAt")) or until
        number = int(attempt.get("number") or index + 1)
        outcome = _outcome(attempt, index == len(attempts) - 1, run)
        segments.append(
            Segment(
                "attempt",
                f"Attempt {number}",
                started,
                max(ended, started),
                outcome=outcome,
                attempt=number,
                note=_attempt_note(attempt),
            )
        )
        previous_end = max(ended, started)

    end = until
    next_at = parse_timestamp(run.get("nextAttemptAt"))
    if run.get("status") == "WaitingToRetry" and previous_end is not None:
        retry_until = max(next_at or now, previous_end)
        segments.append(
            Segment(
                "retry",
                "Waiting to retry",
                previous_end,
                retry_until,
                planned=retry_until > now,
                note=f"next attempt at {shown_time(run.get('nextAttemptAt'))}" if next_at else "",
            )
        )
        end = max(end, retry_until)

    wait = run.get("wait") or {}
    since = parse_timestamp(wait.get("since"))
    if since is not None and not final:
        segments.append(
            Segment(
                "waiting",
                "Waiting",
                since,
                max(now, since),
                attempt=wait.get("attempt"),
                note=str(wait.get("waitingFor") or ""),
            )
        )
    end = max(end, created)
    return Timeline(created, end, _placed(segments, created, end))
