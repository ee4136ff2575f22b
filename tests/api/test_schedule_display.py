"""What the dashboard's Schedules pages show of a schedule (`schedule_display`) and the card
its template renders from it, without a server: ticks in the schedule's zone and in UTC
(across a change of summer time), why it is not ready, the list's URL, the buttons of a
read-only session. Pure."""

from __future__ import annotations

import re
from typing import Any

from podtask_api.dashboard import run_display
from podtask_api.dashboard.pages import TEMPLATES
from podtask_api.dashboard.schedule_display import (
    not_ready,
    read_schedules_query,
    runs_url,
    schedule_card,
    schedule_kubectl_command,
    shown_tick,
)

run_display.install(TEMPLATES.env)


def a_schedule(**changes: Any) -> dict[str, Any]:
    """A schedule as `GET /api/v1/schedules/{id}` answers it."""
    schedule: dict[str, Any] = {
        "id": "sched-0123456789abcdef",
        "task": "daily-report",
        "type": "IMPERATIVE",
        "active": True,
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "externalId": "tenant-42",
        "deduplicationKey": None,
        "nextRun": "2026-03-27T08:00:00Z",
        "lastRun": "2026-03-26T08:00:00Z",
        "lastRunId": "run-abc",
        "upcoming": ["2026-03-27T08:00:00Z", "2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"],
        "createdAt": "2026-03-01T10:00:00Z",
        "conditions": [],
    }
    return {**schedule, **changes}


def test_a_tick_is_shown_in_its_zone_with_its_weekday_and_in_utc_across_summer_time() -> None:
    winter = shown_tick("2026-03-27T08:00:00Z", "Europe/Paris")
    summer = shown_tick("2026-03-30T07:00:00Z", "Europe/Paris")
    assert winter is not None and summer is not None
    # 09:00 in Paris on both sides of the change (2026-03-29), an hour apart in UTC.
    assert (winter.local, winter.utc) == ("Fri 2026-03-27 09:00 CET", "2026-03-27 08:00 UTC")
    assert (summer.local, summer.utc) == ("Mon 2026-03-30 09:00 CEST", "2026-03-30 07:00 UTC")
    assert not summer.in_utc and summer.iso == "2026-03-30T07:00:00Z"
    new_york = shown_tick("2026-11-02T14:00:00Z", "America/New_York")
    assert new_york is not None and new_york.local == "Mon 2026-11-02 09:00 EST"
    in_utc = shown_tick("2026-03-27T08:00:00+00:00", "UTC")
    assert in_utc is not None and in_utc.in_utc and in_utc.local == "Fri 2026-03-27 08:00 UTC"
    # London in winter is at UTC's offset, under another name: both are said.
    london = shown_tick("2026-01-05T09:00:00Z", "Europe/London")
    assert london is not None and not london.in_utc and london.local.endswith("GMT")
    assert shown_tick(None, "UTC") is None and shown_tick("", "Europe/Paris") is None


def test_a_zone_this_machine_does_not_know_shows_the_tick_in_utc() -> None:
    shown = shown_tick("2026-03-27T08:00:00Z", "Mars/Olympus_Mons")
    assert shown is not None and shown.local == "Fri 2026-03-27 08:00 UTC"


def test_a_schedule_is_not_ready_when_the_operator_says_so() -> None:
    assert not_ready(a_schedule()) is None
    ready = {"type": "Ready", "status": "True", "reason": "Scheduled", "message": ""}
    assert not_ready(a_schedule(conditions=[ready])) is None
    missing = {
        "type": "Ready",
        "status": "False",
        "reason": "TaskNotDeployed",
        "message": "no task daily-report is deployed",
    }
    assert not_ready(a_schedule(conditions=[missing])) == {
        "reason": "TaskNotDeployed",
        "message": "no task daily-report is deployed",
    }


def test_the_card_writes_out_the_ticks_and_links_the_runs() -> None:
    runs = [{"id": "run-1", "status": "Completed"}]
    card = schedule_card(a_schedule(), runs, more_runs=True)
    assert card.id == "sched-0123456789abcdef"
    assert [t.local for t in card.upcoming] == [
        "Fri 2026-03-27 09:00 CET",
        "Mon 2026-03-30 09:00 CEST",
        "Tue 2026-03-31 09:00 CEST",
    ]
    assert card.next_tick == card.upcoming[0] and card.last_tick is not None
    assert card.runs == runs and card.more_runs
    assert card.runs_url == "/runs?scheduleId=sched-0123456789abcdef"
    assert runs_url("a b") == "/runs?scheduleId=a+b"
    inactive = schedule_card(
        a_schedule(active=False, upcoming=[], nextRun=None), [], more_runs=False
    )
    assert inactive.upcoming == () and inactive.next_tick is None


def test_the_lists_filters_and_place_are_read_from_the_url_and_written_back() -> None:
    query = read_schedules_query(
        {"task": ["daily-report"], "type": ["declarative"], "active": ["false"], "cursor": ["c1"]}
    )
    assert (query.task, query.type, query.active, query.cursor) == (
        "daily-report",
        "DECLARATIVE",
        "false",
        "c1",
    )
    assert not query.problems and query.filtered
    assert query.filter_params() == [
        ("task", "daily-report"),
        ("type", "DECLARATIVE"),
        ("active", "false"),
    ]
    assert query.url() == "/schedules?task=daily-report&type=DECLARATIVE&active=false"
    assert query.url("next") == query.url() + "&cursor=next"
    assert read_schedules_query({}).url() == "/schedules"
    assert not read_schedules_query({"cursor": ["c"]}).filtered


def test_a_filter_value_the_api_would_refuse_is_said_and_left_out() -> None:
    bad = read_schedules_query({"task": ["a b"], "type": ["HOURLY"], "active": ["maybe"]})
    assert set(bad.problems) == {"task", "type", "active"} and not bad.filtered
    assert "is not a task id" in bad.problems["task"]
    assert "DECLARATIVE or IMPERATIVE" in bad.problems["type"]
    assert bad.filter_params() == [] and bad.url() == "/schedules"


def test_the_kubectl_command_names_the_schedule() -> None:
    assert schedule_kubectl_command("nightly", "tasks") == (
        "kubectl get taskschedule nightly -n tasks -o yaml"
    )


def render_card(schedule: dict[str, Any], *, read_only: bool, detail: bool = False) -> str:
    card = schedule_card(schedule, [], more_runs=False)
    template = TEMPLATES.env.get_template("_schedule_card.html")
    return template.render(
        card=card,
        read_only=read_only,
        detail=detail,
        ticks_shown=2,
        now=None,
        run_duration_ms=run_display.run_duration_ms,
    )


def buttons(html: str) -> dict[str, str]:
    """Each button's action → its attributes."""
    return dict(re.findall(r'<button[^>]*data-action="(\w+)"([^>]*)>', html))


def test_the_card_offers_the_action_its_state_allows_and_none_to_a_read_only_session() -> None:
    html = render_card(a_schedule(), read_only=False)
    actions = buttons(html)
    assert "hidden" not in actions["deactivate"] and "hidden" in actions["activate"]
    assert "disabled" not in actions["deactivate"] and "data-write" in actions["deactivate"]
    assert 'href="/schedules/sched-0123456789abcdef"' in html
    assert "Fri 2026-03-27 09:00 CET" in html and "2026-03-27 08:00 UTC" in html
    # Two ticks at once, the third behind "1 more".
    assert "1 more" in html and 'start="3"' in html
    assert 'href="/runs/run-abc"' in html and "tenant-42" in html
    assert 'href="/runs?scheduleId=sched-0123456789abcdef"' in html

    viewer = buttons(render_card(a_schedule(active=False, upcoming=[]), read_only=True))
    assert "disabled" in viewer["activate"] and "disabled" in viewer["deactivate"]
    assert "hidden" in viewer["deactivate"] and "hidden" not in viewer["activate"]


def test_an_inactive_or_not_ready_card_says_so() -> None:
    missing = {"type": "Ready", "status": "False", "reason": "TaskNotDeployed", "message": "gone"}
    html = render_card(
        a_schedule(active=False, upcoming=[], nextRun=None, conditions=[missing]),
        read_only=False,
        detail=True,
    )
    assert "None: it is inactive." in html and "none while it is inactive" in html
    assert "<strong>TaskNotDeployed</strong>: gone" in html
    assert 'href="/schedules/' not in html  # its own page does not link to itself
