"""The schedule rules (`podtask._contract.schedules`): which cron expressions and zones are
taken, and when a schedule ticks, across the DST changes of 2026 in Europe/Paris (clocks
forward 2026-03-29 02:00 CET, back 2026-10-25 03:00 CEST) and America/New_York (forward
2026-03-08 02:00 EST, back 2026-11-01 02:00 EDT), with a frozen clock where it is read."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from pydantic import ValidationError

from podtask._contract.resources import ScheduleType, TaskScheduleDeclaration, TaskScheduleSpec
from podtask._contract.schedules import (
    MAX_UPCOMING,
    CronSchedule,
    InvalidSchedule,
    check_cron,
    check_timezone,
    declarative_schedule_name,
    imperative_schedule_name,
    known_timezones,
    scheduled_payload,
    tick_run_name,
    upcoming,
)
from podtask_api.run_names import random_run_name


def utc(text: str) -> datetime:
    """`2026-03-29T01:00` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def utcs(*texts: str) -> list[datetime]:
    return [utc(text) for text in texts]


PARIS_DAILY = CronSchedule("30 2 * * *", "Europe/Paris")
NEW_YORK_DAILY = CronSchedule("30 2 * * *", "America/New_York")


# --- checking --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "normalised"),
    [
        ("* * * * *", "* * * * *"),
        ("  0   9 * *\t1-5 ", "0 9 * * 1-5"),
        ("*/15 0-6,22 1,15 jan-mar MON-FRI", "*/15 0-6,22 1,15 jan-mar MON-FRI"),
        ("0 0 29 2 *", "0 0 29 2 *"),
        ("0 12 * * 7", "0 12 * * 7"),
        ("@hourly", "@hourly"),
        ("@daily", "@daily"),
        ("@weekly", "@weekly"),
        ("@monthly", "@monthly"),
        ("@yearly", "@yearly"),
    ],
)
def test_standard_cron_expressions_are_taken_with_their_whitespace_collapsed(
    expression: str, normalised: str
) -> None:
    assert check_cron(expression) == normalised


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("", "empty"),
        ("0 9 * *", "4 fields"),
        ("0 0 9 * * 1-5", "6 fields"),  # seconds: croniter's, not cron's
        ("0 9 * * 1-5 2026", "6 fields"),
        ("60 * * * *", "60"),
        ("0 24 * * *", "24"),
        ("0 0 31 2 *", "never runs"),
        ("0 0 L * *", "day-of-month field 'L'"),
        ("0 0 * * 1#2", "day-of-week field '1#2'"),
        ("H * * * *", "minute field 'H'"),
        ("R * * * *", "minute field 'R'"),
        ("0 0 ? * *", "day-of-month field '?'"),
        ("@every 5m", "unknown macro"),
        ("@reboot", "unknown macro"),
        ("0 9 * * funday", "funday"),
    ],
)
def test_what_is_not_standard_cron_is_refused_naming_the_value(expression: str, why: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        check_cron(expression)
    assert refused.value.field == "cron"
    message = str(refused.value)
    assert repr(expression) in message
    assert why in message
    assert "5 fields" in message and "@daily" in message


def test_a_cron_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidSchedule, match="int"):
        check_cron(5)  # type: ignore[arg-type]


def test_iana_zones_are_taken_and_others_refused_with_the_zone_meant() -> None:
    for zone in ("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "US/Eastern"):
        assert check_timezone(zone) == zone
    assert "Factory" not in known_timezones()
    assert known_timezones() == tuple(sorted(known_timezones()))
    with pytest.raises(InvalidSchedule) as unknown:
        check_timezone("Europe/Pariss")
    assert unknown.value.field == "timezone"
    assert "'Europe/Pariss'" in str(unknown.value) and "IANA" in str(unknown.value)
    with pytest.raises(InvalidSchedule, match=r"did you mean 'Europe/Paris'\?"):
        check_timezone("europe/paris")
    for bad in ("", "localtime", "../etc/passwd", "+02:00", "x" * 1000):
        with pytest.raises(InvalidSchedule):
            check_timezone(bad)


def test_the_models_check_cron_and_zone_and_name_the_field() -> None:
    assert TaskScheduleDeclaration(cron="0  9 * * *").to_wire() == {
        "cron": "0 9 * * *",
        "timezone": "UTC",
    }
    spec = TaskScheduleSpec(task_id="report", cron="@daily", timezone="Europe/Paris")
    assert spec.type == ScheduleType.IMPERATIVE and spec.active
    for field, values in (("cron", {"cron": "0 9 * *"}), ("timezone", {"timezone": "Mars/Base"})):
        with pytest.raises(ValidationError) as refused:
            TaskScheduleSpec.model_validate({"taskId": "report", "cron": "@daily", **values})
        errors = refused.value.errors()
        assert [(error["loc"], error["type"]) for error in errors] == [
            ((field,), f"invalid_{field}")
        ]
        assert errors[0]["msg"] == str(InvalidSchedule(field, errors[0]["msg"]))
        assert errors[0]["msg"].startswith(
            ("invalid cron expression '0 9 * *'", "unknown timezone")
        )


def test_a_cron_schedule_normalises_and_checks_what_it_is_given() -> None:
    assert CronSchedule(" 0  9 * * 1-5", "Europe/Paris").cron == "0 9 * * 1-5"
    with pytest.raises(InvalidSchedule):
        CronSchedule("0 9 * * 1-5", "Nowhere/Land")


# --- ticks -----------------------------------------------------------------------------


def test_every_minute_ticks_each_minute_strictly_after_the_moment() -> None:
    every_minute = CronSchedule("* * * * *")
    assert every_minute.ticks_after(utc("2026-05-01T10:00:00"), 2) == utcs(
        "2026-05-01T10:01", "2026-05-01T10:02"
    )
    assert every_minute.next_tick(utc("2026-05-01T10:00:30")) == utc("2026-05-01T10:01")
    # A naive moment is UTC.
    assert every_minute.next_tick(datetime(2026, 5, 1, 10, 0, 30)) == utc("2026-05-01T10:01")


def test_paris_spring_forward_skips_the_hour_that_does_not_exist() -> None:
    hourly = CronSchedule("0 * * * *", "Europe/Paris")
    # 01:00 CET, then 02:00 does not exist: 03:00 CEST comes an hour later.
    assert hourly.ticks_after(utc("2026-03-28T23:30"), 3) == utcs(
        "2026-03-29T00:00", "2026-03-29T01:00", "2026-03-29T02:00"
    )
    # Daily at 02:30: no 02:30 on the 29th, so no run that day (not one at 03:30).
    assert PARIS_DAILY.ticks_after(utc("2026-03-28T12:00"), 3) == utcs(
        "2026-03-30T00:30", "2026-03-31T00:30", "2026-04-01T00:30"
    )
    every_minute = CronSchedule("* * * * *", "Europe/Paris")
    assert every_minute.ticks_after(utc("2026-03-29T00:58"), 3) == utcs(
        "2026-03-29T00:59", "2026-03-29T01:00", "2026-03-29T01:01"
    )


def test_paris_fall_back_runs_the_repeated_hour_once_at_its_first_occurrence() -> None:
    hourly = CronSchedule("0 * * * *", "Europe/Paris")
    # 02:00 CEST (00:00Z); 02:00 CET (01:00Z) is the same wall time again: no tick; 03:00 CET.
    assert hourly.ticks_after(utc("2026-10-24T23:30"), 3) == utcs(
        "2026-10-25T00:00", "2026-10-25T02:00", "2026-10-25T03:00"
    )
    assert PARIS_DAILY.ticks_after(utc("2026-10-24T12:00"), 2) == utcs(
        "2026-10-25T00:30", "2026-10-26T01:30"
    )
    every_minute = CronSchedule("* * * * *", "Europe/Paris")
    assert every_minute.ticks_after(utc("2026-10-25T00:58"), 2) == utcs(
        "2026-10-25T00:59", "2026-10-25T02:00"
    )
    # From inside the repeated hour's second occurrence, the next tick is after it.
    assert every_minute.next_tick(utc("2026-10-25T01:30")) == utc("2026-10-25T02:00")


def test_new_york_spring_forward_skips_the_hour_that_does_not_exist() -> None:
    hourly = CronSchedule("0 * * * *", "America/New_York")
    assert hourly.ticks_after(utc("2026-03-08T05:30"), 2) == utcs(
        "2026-03-08T06:00", "2026-03-08T07:00"
    )
    assert NEW_YORK_DAILY.ticks_after(utc("2026-03-07T12:00"), 2) == utcs(
        "2026-03-09T06:30", "2026-03-10T06:30"
    )
    every_minute = CronSchedule("* * * * *", "America/New_York")
    assert every_minute.ticks_after(utc("2026-03-08T06:58"), 3) == utcs(
        "2026-03-08T06:59", "2026-03-08T07:00", "2026-03-08T07:01"
    )


def test_new_york_fall_back_runs_the_repeated_hour_once_at_its_first_occurrence() -> None:
    hourly = CronSchedule("0 * * * *", "America/New_York")
    # 01:00 EDT (05:00Z); 01:00 EST (06:00Z) repeats it: no tick; 02:00 EST (07:00Z).
    assert hourly.ticks_after(utc("2026-11-01T04:30"), 2) == utcs(
        "2026-11-01T05:00", "2026-11-01T07:00"
    )
    at_one_thirty = CronSchedule("30 1 * * *", "America/New_York")
    assert at_one_thirty.ticks_after(utc("2026-10-31T12:00"), 3) == utcs(
        "2026-11-01T05:30", "2026-11-02T06:30", "2026-11-03T06:30"
    )
    every_minute = CronSchedule("* * * * *", "America/New_York")
    assert every_minute.ticks_after(utc("2026-11-01T05:58"), 2) == utcs(
        "2026-11-01T05:59", "2026-11-01T07:00"
    )


def test_latest_tick_is_at_or_before_the_moment_and_knows_the_repeated_hour() -> None:
    assert PARIS_DAILY.latest_tick(utc("2026-03-30T00:30")) == utc("2026-03-30T00:30")
    # The 29th has no 02:30: the latest is the 28th's.
    assert PARIS_DAILY.latest_tick(utc("2026-03-29T12:00")) == utc("2026-03-28T01:30")
    # At 02:10 CET (01:10Z), the second 02:xx hour: today's 02:50 came, in the first.
    at_two_fifty = CronSchedule("50 2 * * *", "Europe/Paris")
    assert at_two_fifty.latest_tick(utc("2026-10-25T01:10")) == utc("2026-10-25T00:50")
    every_minute = CronSchedule("* * * * *", "America/New_York")
    assert every_minute.latest_tick(utc("2026-11-01T06:30")) == utc("2026-11-01T05:59")
    # Within a year and a day: a yearly schedule has one; the leap day's came too long ago.
    assert CronSchedule("@yearly").latest_tick(utc("2026-12-31T23:00")) == utc("2026-01-01T00:00")
    assert CronSchedule("0 0 29 2 *").latest_tick(utc("2026-06-01T00:00")) is None


def test_ticks_between_are_after_the_start_at_or_before_the_end_and_limited() -> None:
    hourly = CronSchedule("0 * * * *", "Europe/Paris")
    start, end = utc("2026-10-24T22:00"), utc("2026-10-25T03:00")
    assert hourly.ticks_between(start, end, 100) == utcs(
        "2026-10-24T23:00", "2026-10-25T00:00", "2026-10-25T02:00", "2026-10-25T03:00"
    )
    assert hourly.ticks_between(start, end, 2) == utcs("2026-10-24T23:00", "2026-10-25T00:00")
    assert hourly.ticks_between(start, start + timedelta(minutes=59), 10) == []


@time_machine.travel(datetime(2026, 3, 29, 0, 45, tzinfo=UTC), tick=False)
def test_upcoming_from_a_frozen_clock_across_paris_spring_forward() -> None:
    now = datetime.now(UTC)
    hourly = upcoming(CronSchedule("0 * * * *", "Europe/Paris"), now)
    assert len(hourly) == MAX_UPCOMING
    assert hourly[:2] == utcs("2026-03-29T01:00", "2026-03-29T02:00")
    assert [b - a for a, b in itertools.pairwise(hourly)] == [timedelta(hours=1)] * 9
    daily = upcoming(PARIS_DAILY, now)
    # 2026-03-29 02:30 does not exist; every day after is 00:30Z (CEST).
    assert daily[0] == utc("2026-03-30T00:30")
    assert all(tick.hour == 0 and tick.minute == 30 for tick in daily)


@time_machine.travel(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), tick=False)
def test_upcoming_from_a_frozen_clock_across_new_york_fall_back() -> None:
    now = datetime.now(UTC)
    hourly = upcoming(CronSchedule("0 * * * *", "America/New_York"), now)
    # 01:00 EST (06:00Z) repeats 01:00 EDT (05:00Z, already past): the next is 02:00 EST.
    assert hourly[:2] == utcs("2026-11-01T07:00", "2026-11-01T08:00")
    daily = upcoming(NEW_YORK_DAILY, now)
    assert daily[:2] == utcs("2026-11-01T07:30", "2026-11-02T07:30")


# --- run names and payloads --------------------------------------------------------------


def test_tick_run_name_is_a_run_id_the_same_each_time_and_distinct_per_tick_and_schedule() -> None:
    tick = utc("2026-03-29T01:00")
    name = tick_run_name("daily-report", tick)
    assert re.fullmatch(r"run-[0-9a-z]{17}", name)
    assert name == tick_run_name("daily-report", tick.astimezone(PARIS_DAILY.zone))
    # The countdown of the API's run ids: a tick's run sorts with runs triggered then.
    assert name[:13] == random_run_name(tick)[:13]
    assert len(name) == len(random_run_name(tick))
    later = tick_run_name("daily-report", tick + timedelta(minutes=1))
    assert later != name and later < name  # newest first, as kubectl lists names
    assert tick_run_name("sched-0123456789abcdef", tick) != name


def test_schedule_names() -> None:
    assert declarative_schedule_name("daily-report") == "daily-report"
    keyed = imperative_schedule_name("report", "tenant-42")
    assert re.fullmatch(r"sched-[0-9a-z]{16}", keyed)
    assert keyed == imperative_schedule_name("report", "tenant-42")
    assert keyed != imperative_schedule_name("report", "tenant-43")
    assert keyed != imperative_schedule_name("other", "tenant-42")
    fresh = imperative_schedule_name("report")
    assert re.fullmatch(r"sched-[0-9a-z]{16}", fresh)
    assert fresh != imperative_schedule_name("report")


def test_scheduled_payload_is_trigger_devs() -> None:
    spec = TaskScheduleSpec(
        task_id="report", cron="0 * * * *", timezone="Europe/Paris", external_id="user-7"
    )
    tick = utc("2026-03-29T01:00")
    ahead = CronSchedule(spec.cron, spec.timezone).ticks_after(tick, 12)
    assert scheduled_payload("sched-x", spec, tick, utc("2026-03-29T00:00"), ahead) == {
        "type": "IMPERATIVE",
        "scheduleId": "sched-x",
        "externalId": "user-7",
        "timestamp": "2026-03-29T01:00:00Z",
        "lastTimestamp": "2026-03-29T00:00:00Z",
        "timezone": "Europe/Paris",
        "upcoming": [f"2026-03-29T{hour:02d}:00:00Z" for hour in range(2, 12)],
    }
    declared = TaskScheduleSpec(task_id="report", cron="@daily", type=ScheduleType.DECLARATIVE)
    first = scheduled_payload("report", declared, tick, None, [])
    assert first["type"] == "DECLARATIVE"
    assert first["lastTimestamp"] is None and first["externalId"] is None
    assert first["upcoming"] == []
