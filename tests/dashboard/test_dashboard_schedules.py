"""The Schedules pages in a real chromium against `podtask dev` (issue 15): the schedule a
task declares and one created over the API, each with its next ticks in its zone and in UTC;
the created one's tick runs appear in its card without a reload and link to the runs list
filtered by schedule; Deactivate and Activate by clicking; a read-only session sees the page
with its buttons disabled (and the API refuses it, 403); a phone's width does not scroll
sideways."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.dashboard.browser import PHONE_VIEWPORT, Dashboard, screenshot, signed_in

TASK = "dashboard-scheduled"
# The declared schedule is named after its task.
DECLARED = TASK
# A tick a minute: the operator's run of the next one appears within a minute or two; on a
# loaded machine, later.
TICK_RUN_WITHIN_MS = 180_000
# The page reads itself again every 10 s.
REFRESHED_WITHIN_MS = 60_000


@pytest.fixture
def every_minute(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """A schedule of the task created over the API, ticking every minute; deleted after the
    test (its ticks would otherwise add runs to the other tests' lists)."""
    body = {"task": TASK, "cron": "* * * * *", "externalId": "tenant-42"}
    schedule = dashboard.api_json("POST", "/api/v1/schedules", body)
    try:
        yield schedule
    finally:
        with dashboard.http(dashboard.write_key) as api:
            api.delete(f"/api/v1/schedules/{schedule['id']}")


def card(page: Page, schedule_id: str) -> Locator:
    return page.locator(f'[data-schedule="{schedule_id}"]')


def test_the_schedules_page_shows_ticks_and_runs_and_deactivates_and_activates(
    page: Page, dashboard: Dashboard, every_minute: dict[str, Any]
) -> None:
    created = every_minute["id"]
    signed_in(page, dashboard.write_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Schedules").click()
    page.wait_for_url("**/schedules")
    expect(page.get_by_role("heading", name="Schedules", level=1)).to_be_visible()

    declared = card(page, DECLARED)
    expect(declared.locator('[data-field="type"]')).to_have_text("DECLARATIVE")
    expect(declared.locator('[data-field="cron"]')).to_have_text("0 9 * * 1-5")
    expect(declared.locator('[data-field="timezone"]')).to_have_text("Europe/Paris")
    # 09:00 in Paris (CET or CEST), and the same moment in UTC.
    first_tick = declared.locator('[data-field="upcoming"] li').first
    expect(first_tick).to_contain_text("09:00 CE")
    expect(first_tick.locator(".utc")).to_contain_text(" UTC")

    mine = card(page, created)
    expect(mine.locator('[data-field="type"]')).to_have_text("IMPERATIVE")
    expect(mine.locator('[data-field="state"]')).to_have_text("Active")
    expect(mine.locator('[data-field="external-id"]')).to_have_text("tenant-42")
    expect(mine.locator('[data-field="upcoming"] li')).to_have_count(3)  # the rest behind "more"
    expect(mine.locator(".more-ticks summary")).to_have_text("7 more")

    # The operator triggers the next tick's run: it appears in the card without a reload.
    page.evaluate("window.__notReloaded = true")
    tick_run = mine.locator("tr[data-run-id]").first
    expect(tick_run).to_be_visible(timeout=TICK_RUN_WITHIN_MS)
    run_id = tick_run.get_attribute("data-run-id")
    assert run_id and page.evaluate("window.__notReloaded === true")
    expect(tick_run.get_by_role("link", name=run_id)).to_have_attribute("href", f"/runs/{run_id}")
    screenshot(page, "schedules")

    mine.get_by_role("button", name="Deactivate").click()
    expect(mine.locator('[data-field="state"]')).to_have_text("Inactive")
    expect(mine.get_by_role("button", name="Activate")).to_be_focused()
    expect(mine.get_by_role("button", name="Deactivate")).to_be_hidden()
    assert dashboard.api_json("GET", f"/api/v1/schedules/{created}")["active"] is False
    # The server's rendering follows: no next ticks while it is inactive.
    expect(mine.locator('[data-field="upcoming"]')).to_have_text(
        "None: it is inactive.", timeout=REFRESHED_WITHIN_MS
    )
    page.reload()
    expect(mine.locator('[data-field="state"]')).to_have_text("Inactive")

    mine.get_by_role("button", name="Activate").click()
    expect(mine.locator('[data-field="state"]')).to_have_text("Active")
    expect(mine.locator('[data-field="upcoming"] li')).to_have_count(3, timeout=REFRESHED_WITHIN_MS)
    assert dashboard.api_json("GET", f"/api/v1/schedules/{created}")["active"] is True

    # Its runs in the runs list, filtered by the schedule.
    mine.locator(".schedule-runs p a").click()
    page.wait_for_url("**/runs?*")
    assert parse_qs(urlsplit(page.url).query)["scheduleId"] == [created]
    expect(page.locator(f'tr[data-run-id="{run_id}"]')).to_be_visible()


def test_a_schedules_own_page_shows_every_upcoming_tick_and_how_to_change_it(
    page: Page, dashboard: Dashboard, every_minute: dict[str, Any]
) -> None:
    signed_in(page, dashboard.write_key)
    page.goto("/schedules")
    card(page, DECLARED).get_by_role("heading", name=DECLARED).get_by_role("link").click()
    page.wait_for_url(f"**/schedules/{DECLARED}")
    own = card(page, DECLARED)
    expect(own.locator(".ticks li")).to_have_count(10)
    expect(page.get_by_role("heading", name="Changing it")).to_be_visible()
    expect(page.locator("#change-heading + p")).to_contain_text("podtask deploy")
    expect(page.locator("#kubectl-command")).to_contain_text(f"taskschedule {DECLARED}")
    page.goto(f"/schedules/{every_minute['id']}")
    expect(page.locator("#update-command")).to_contain_text(
        f"podtask schedules update {every_minute['id']}"
    )
    # A schedule that does not exist: a page that says so.
    missing = page.goto("/schedules/sched-0000000000000000")
    assert missing is not None and missing.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("not found")


def test_a_read_only_session_sees_the_schedules_and_cannot_act(
    page: Page, dashboard: Dashboard, every_minute: dict[str, Any]
) -> None:
    created = every_minute["id"]
    signed_in(page, dashboard.read_key)
    page.goto("/schedules")
    mine = card(page, created)
    expect(mine.locator('[data-field="state"]')).to_have_text("Active")
    expect(mine.get_by_role("button", name="Deactivate")).to_be_disabled()
    expect(card(page, DECLARED).get_by_role("button", name="Deactivate")).to_be_disabled()
    session = dashboard.session_client(dashboard.read_key)
    try:
        refused = session.write(
            "POST", f"/api/v1/schedules/{created}/deactivate", csrf=session.csrf_token
        )
        assert refused.status_code == 403, refused.text
    finally:
        session.http.close()
    assert dashboard.api_json("GET", f"/api/v1/schedules/{created}")["active"] is True


def test_the_schedules_page_fits_a_phone(page: Page, dashboard: Dashboard) -> None:
    signed_in(page, dashboard.write_key)
    page.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    for path in ("/schedules", f"/schedules/{DECLARED}"):
        page.goto(path)
        expect(card(page, DECLARED)).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), path
    screenshot(page, "schedule-phone")
