"""The rules of a task's schedule, without I/O: which cron expressions and zones are taken,
when a schedule ticks, the run id of a tick and the payload its run gets.

A schedule is a standard 5-field cron expression (or @yearly, @monthly, @weekly, @daily,
@hourly) read by croniter, in an IANA zone (zoneinfo; the `tzdata` package provides the zones
where the system has none). Its ticks are wall-clock times in that zone, as Trigger.dev's
are: a wall time that does not exist (the hour skipped when clocks go forward) is skipped,
and a wall time that occurs twice (the hour repeated when they go back) ticks once, at its
first occurrence.

croniter iterates over naive wall times, where no day has a gap or a repetition; each wall
time is then placed in the zone with `fold=0` (the earlier of two occurrences) and dropped if
it does not exist. That placing is strictly increasing in wall time, so the ticks after a
moment are the wall times after the moment's own, placed and kept when after the moment.

Used by the SDK (a declaration is checked when its module is imported), the API (a schedule
is checked when created) and the operator (which run each tick triggers, with what payload).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podtask._contract.limits import MAX_CRON_LENGTH, MAX_TIMEZONE_LENGTH
from podtask._contract.run_ids import (
    BASE36,
    RUN_NAME_PREFIX,
    SUFFIX_DIGITS,
    digest_base36,
    time_countdown,
)

if TYPE_CHECKING:
    from podtask._contract.resources import TaskScheduleSpec

# croniter is imported where a cron expression is read, not with this module: the CRD models
# import it, and so does every task pod, which reads no cron expression.

MACROS = ("@yearly", "@monthly", "@weekly", "@daily", "@hourly")
CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
CRON_RULE = (
    "a cron expression has 5 fields: minute hour day-of-month month day-of-week (numbers, *, "
    "ranges a-b, steps */n or a-b/n, lists a,b; month and weekday names such as jan or mon), "
    f"for example '0 9 * * 1-5', or is one of {', '.join(MACROS)}"
)
TIMEZONE_RULE = (
    "use an IANA zone name such as 'UTC', 'Europe/Paris' or 'America/New_York' "
    "(GET /api/v1/timezones lists them)"
)
DEFAULT_TIMEZONE = "UTC"
# How many ticks ahead a schedule shows, and a scheduled run's payload carries.
MAX_UPCOMING = 10
# How far back `latest_tick` looks: a yearly schedule's previous tick is within a year.
LOOK_BACK = timedelta(days=366 + 1)
# How far ahead `ticks_after` looks: croniter's own search (50 years) for each tick, and
# this in all, so that an expression whose every wall time the zone skips ends.
_LOOK_AHEAD = timedelta(days=100 * 366)
# More than any zone's change of offset (2 hours, historically): a wall time this far after a
# moment's own placed in the zone is after the moment.
_LARGEST_SHIFT = timedelta(hours=3)

# One element of a field's list: `*` or a value or a range, then maybe a step; values are
# numbers, or names in the month and weekday fields. What croniter reads beyond this (L, #,
# H, R, ?, seconds and year fields) is not standard cron, and is refused.
_NUMBER = r"[0-9]+"
_NAMED = r"(?:[0-9]+|[a-zA-Z]{3})"


def _field_pattern(value: str) -> re.Pattern[str]:
    element = rf"(?:\*|{value}(?:-{value})?)(?:/[0-9]+)?"
    return re.compile(rf"^{element}(?:,{element})*$")


_FIELD_PATTERNS = (
    _field_pattern(_NUMBER),
    _field_pattern(_NUMBER),
    _field_pattern(_NUMBER),
    _field_pattern(_NAMED),
    _field_pattern(_NAMED),
)
# A fixed moment from which `check_cron` asks for a next tick: an expression with none within
# croniter's search (50 years, `0 0 31 2 *`) never runs.
_PROBE = datetime(2001, 1, 1)


class InvalidSchedule(ValueError):
    """A cron expression or a zone that a schedule cannot have; `field` names which
    (`"cron"` or `"timezone"`), the message the value and what is accepted."""

    def __init__(self, field: Literal["cron", "timezone"], message: str) -> None:
        super().__init__(message)
        self.field = field


def _bad_cron(expression: object, why: str = "") -> InvalidSchedule:
    because = f" ({why})" if why else ""
    return InvalidSchedule("cron", f"invalid cron expression {expression!r}{because}: {CRON_RULE}")


def check_cron(expression: str) -> str:
    """`expression` with its whitespace collapsed, when it is a 5-field cron expression or
    one of `MACROS` that runs at least once; else `InvalidSchedule`."""
    if not isinstance(expression, str):
        raise _bad_cron(expression, f"{type(expression).__name__}, not text")
    normalised = " ".join(expression.split())
    if not normalised:
        raise _bad_cron(expression, "empty")
    if len(normalised) > MAX_CRON_LENGTH:
        raise _bad_cron(expression[:40] + "…", f"longer than {MAX_CRON_LENGTH} characters")
    if normalised.startswith("@"):
        if normalised not in MACROS:
            raise _bad_cron(expression, "unknown macro")
        return normalised
    fields = normalised.split(" ")
    if len(fields) != len(CRON_FIELDS):
        raise _bad_cron(expression, f"{len(fields)} fields")
    for name, text, pattern in zip(CRON_FIELDS, fields, _FIELD_PATTERNS, strict=True):
        if not pattern.match(text):
            raise _bad_cron(expression, f"its {name} field {text!r} is not standard cron")
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(normalised, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        raise _bad_cron(expression, "it never runs") from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise _bad_cron(expression, str(exc).strip() or type(exc).__name__) from None
    return normalised


@cache
def known_timezones() -> tuple[str, ...]:
    """Every IANA zone name a schedule may have, sorted: the `tzdata` package's list (the
    same on every machine), without its placeholder `Factory`."""
    from importlib import resources

    listed = resources.files("tzdata").joinpath("zones").read_text().split()
    return tuple(sorted(name for name in listed if name != "Factory"))


def check_timezone(name: str) -> str:
    """`name` when it is a known IANA zone (`known_timezones`); else `InvalidSchedule`, which
    suggests the zone meant when only the case differs."""
    if not isinstance(name, str):
        raise InvalidSchedule(
            "timezone",
            f"invalid timezone {name!r} ({type(name).__name__}, not text): {TIMEZONE_RULE}",
        )
    if len(name) <= MAX_TIMEZONE_LENGTH and name in _timezone_set():
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
        else:
            return name
    meant = _timezones_by_case().get(name.lower()) if len(name) <= MAX_TIMEZONE_LENGTH else None
    hint = f" (did you mean {meant!r}?)" if meant else ""
    shown = name if len(name) <= MAX_TIMEZONE_LENGTH else name[:40] + "…"
    raise InvalidSchedule("timezone", f"unknown timezone {shown!r}{hint}: {TIMEZONE_RULE}")


@cache
def _timezone_set() -> frozenset[str]:
    return frozenset(known_timezones())


@cache
def _timezones_by_case() -> dict[str, str]:
    return {name.lower(): name for name in known_timezones()}


def format_tick(moment: datetime) -> str:
    """A tick as a schedule's payload and run names spell it: `YYYY-MM-DDTHH:MM:SSZ` (UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class CronSchedule:
    """A cron expression in a zone (both checked, the expression normalised), and its ticks:
    UTC-aware datetimes. A naive datetime given to a method is UTC."""

    cron: str
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "cron", check_cron(self.cron))
        object.__setattr__(self, "timezone", check_timezone(self.timezone))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _placed(self, wall: datetime) -> datetime | None:
        """The instant of a naive wall time in the zone (the first, when it occurs twice);
        None when the clocks skip it."""
        placed = wall.replace(tzinfo=self.zone, fold=0)
        instant = placed.astimezone(UTC)
        if instant.astimezone(self.zone).replace(tzinfo=None) != wall:
            return None
        return instant

    def _wall(self, moment: datetime) -> datetime:
        return _aware(moment).astimezone(self.zone).replace(tzinfo=None)

    def ticks_after(self, moment: datetime, count: int) -> list[datetime]:
        """The next `count` ticks strictly after `moment`, earliest first."""
        from croniter import CroniterBadDateError, croniter

        after = _aware(moment)
        start = self._wall(after)
        walls = croniter(self.cron, start)
        ticks: list[datetime] = []
        while len(ticks) < count:
            try:
                wall: datetime = walls.get_next(datetime)
            except CroniterBadDateError:
                break
            if wall - start > _LOOK_AHEAD:
                # Only wall times the zone skips, for a century: none will come.
                break
            instant = self._placed(wall)
            if instant is not None and instant > after:
                ticks.append(instant)
        return ticks

    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick strictly after `after` (None only for an expression with no tick
        within croniter's search, which `check_cron` refuses)."""
        ticks = self.ticks_after(after, 1)
        return ticks[0] if ticks else None

    def latest_tick(self, at_or_before: datetime) -> datetime | None:
        """The last tick at or before `at_or_before`, within `LOOK_BACK`; None if none."""
        from croniter import CroniterBadDateError, croniter

        until = _aware(at_or_before)
        earliest = until - LOOK_BACK
        walls = croniter(self.cron, self._wall(until) + _LARGEST_SHIFT)
        while True:
            try:
                wall: datetime = walls.get_prev(datetime)
            except CroniterBadDateError:
                return None
            instant = self._placed(wall)
            if instant is None:
                continue
            if instant < earliest:
                return None
            if instant <= until:
                return instant

    def ticks_between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """The ticks strictly after `start` and at or before `end`, earliest first, at most
        `limit` of them."""
        last = _aware(end)
        return [tick for tick in self.ticks_after(start, limit) if tick <= last]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


SCHEDULE_NAME_PREFIX = "sched-"
_SCHEDULE_ID_DIGITS = 16


def declarative_schedule_name(task_id: str) -> str:
    """A DECLARATIVE schedule's name: its task's id (a task declares at most one)."""
    return task_id


def imperative_schedule_name(task_id: str, deduplication_key: str | None = None) -> str:
    """An IMPERATIVE schedule's name: `sched-` + 16 base36 characters, random, or, with a
    deduplication key, of sha256(task id, key), so that creating the same key twice finds
    the one schedule."""
    if deduplication_key is None:
        suffix = "".join(secrets.choice(BASE36) for _ in range(_SCHEDULE_ID_DIGITS))
    else:
        suffix = digest_base36(f"{task_id}\0{deduplication_key}", _SCHEDULE_ID_DIGITS)
    return SCHEDULE_NAME_PREFIX + suffix


def upcoming(schedule: CronSchedule, after: datetime) -> list[datetime]:
    """The next `MAX_UPCOMING` ticks after `after`."""
    return schedule.ticks_after(after, MAX_UPCOMING)


def tick_run_name(schedule_name: str, tick: datetime) -> str:
    """The id of the run that `tick` of the schedule `schedule_name` triggers: the same for
    every operator that computes it, so that a second creation is an AlreadyExists. A run
    id as the API mints them (`podtask._contract.run_ids`), ordered by the tick's time."""
    stamp = format_tick(tick)
    return (
        RUN_NAME_PREFIX
        + time_countdown(_aware(tick))
        + digest_base36(f"{schedule_name}\0{stamp}", SUFFIX_DIGITS)
    )


def scheduled_payload(
    schedule_name: str,
    spec: TaskScheduleSpec,
    tick: datetime,
    last_tick: datetime | None,
    upcoming: list[datetime],
) -> dict[str, Any]:
    """The payload a scheduled run's task gets, as Trigger.dev's scheduled tasks do: the tick
    (`timestamp`), the previous tick that triggered a run, the zone, the schedule and the
    ticks to come, every time in UTC."""
    return {
        "type": str(spec.type),
        "scheduleId": schedule_name,
        "externalId": spec.external_id,
        "timestamp": format_tick(tick),
        "lastTimestamp": format_tick(last_tick) if last_tick is not None else None,
        "timezone": spec.timezone,
        "upcoming": [format_tick(moment) for moment in upcoming[:MAX_UPCOMING]],
    }
