"""The Tasks and Queues pages in a real chromium against `podtask dev` (issue 14): each task
with its configuration, its runs of the last 24 hours by status and its Test link; pausing a
queue holds a run triggered meanwhile (it waits, Queued) until Resume; changing a queue's
limit; a read-only session sees the pages and cannot act (disabled, and the server answers
403)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.dashboard.browser import Dashboard, screenshot, signed_in, wait_until

QUEUE = "dashboard-held"
TASK = "dashboard-held"
DECLARED_LIMIT = 1
RUN_ENDS_WITHIN = 120.0
# The operator counts a queue's runs as they change: the page refreshes every 2 s.
COUNTED_WITHIN = 60.0


def run_status(dashboard: Dashboard, run_id: str) -> str:
    status: str = dashboard.api_json("GET", f"/api/v1/runs/{run_id}")["status"]
    return status


def queue_row(page: Page, name: str = QUEUE) -> Locator:
    return page.locator(f'tr[data-queue="{name}"]')


@pytest.fixture
def queue_as_declared(dashboard: Dashboard) -> Iterator[None]:
    """The queue of these tests running, with its declared limit, after each test too."""
    yield
    dashboard.api_json("POST", f"/api/v1/queues/{QUEUE}/resume")
    dashboard.api_json("PUT", f"/api/v1/queues/{QUEUE}/concurrency", {"concurrencyLimit": None})


def test_the_tasks_page_shows_each_task_its_runs_by_status_and_a_test_link(
    page: Page, dashboard: Dashboard
) -> None:
    triggered = dashboard.api_json(
        "POST", "/api/v1/tasks/dashboard-hello/trigger", {"payload": {"name": "t"}}
    )
    wait_until(
        lambda: run_status(dashboard, triggered["id"]) == "Completed",
        RUN_ENDS_WITHIN,
    )
    signed_in(page, dashboard.write_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    page.wait_for_url("**/tasks")
    row = page.locator('tr[data-task="dashboard-hello"]')
    expect(row).to_contain_text("dashboard")  # its queue
    expect(row).to_contain_text("small-1x")
    expect(row).to_contain_text("3 attempts, backoff 1 s to 60 s, factor 2")
    completed = row.locator('[data-status="Completed"]')
    expect(completed).to_have_text(re.compile(r"^Completed [1-9][0-9]*$"))
    greet = page.locator('tr[data-task="dashboard-greet"]')
    expect(greet).to_contain_text("dashboard-greetings")
    screenshot(page, "tasks")
    row.get_by_role("link", name="Test").click()
    page.wait_for_url("**/test?task=dashboard-hello")
    expect(page.get_by_label("Task", exact=True)).to_have_value("dashboard-hello")


def test_a_paused_queue_holds_a_new_run_until_it_is_resumed(
    page: Page, dashboard: Dashboard, queue_as_declared: None
) -> None:
    signed_in(page, dashboard.write_key)
    page.goto("/queues")
    row = queue_row(page)
    expect(row.locator('[data-field="limit"]')).to_have_text(str(DECLARED_LIMIT))
    expect(row.locator('[data-field="limit-note"]')).to_have_text("declared")
    expect(row.get_by_role("button", name="Resume")).to_be_hidden()
    row.get_by_role("button", name="Pause").click()
    expect(row.locator('[data-field="state"]')).to_have_text("Paused")
    expect(row.get_by_role("button", name="Resume")).to_be_visible()
    expect(row.get_by_role("button", name="Pause")).to_be_hidden()
    assert dashboard.api_json("GET", f"/api/v1/queues/{QUEUE}")["paused"] is True

    run_id = dashboard.api_json("POST", f"/api/v1/tasks/{TASK}/trigger", {"payload": {}})["id"]
    # The operator counts it as waiting; the page shows that without a reload.
    expect(row.locator('[data-field="queued"]')).to_have_text("1", timeout=COUNTED_WITHIN * 1000)
    assert run_status(dashboard, run_id) == "Queued"
    screenshot(page, "queues")

    row.get_by_role("button", name="Resume").click()
    expect(row.locator('[data-field="state"]')).to_have_text("Running")
    wait_until(lambda: run_status(dashboard, run_id) == "Completed", RUN_ENDS_WITHIN)
    expect(row.locator('[data-field="queued"]')).to_have_text("0", timeout=COUNTED_WITHIN * 1000)


def test_the_limit_is_changed_and_reset_from_the_page(
    page: Page, dashboard: Dashboard, queue_as_declared: None
) -> None:
    signed_in(page, dashboard.write_key)
    page.goto("/queues")
    row = queue_row(page)
    limit = row.get_by_label(f"Concurrency limit of {QUEUE}")
    limit.fill("3")
    row.get_by_role("button", name="Set limit").click()
    expect(row.locator('[data-field="limit"]')).to_have_text("3")
    expect(row.locator('[data-field="limit-note"]')).to_have_text("set here")
    assert dashboard.api_json("GET", f"/api/v1/queues/{QUEUE}")["concurrencyLimit"] == 3
    # A limit that is not a whole number is refused on the page, and nothing changes.
    limit.fill("-2")
    row.get_by_role("button", name="Set limit").click()
    expect(page.get_by_role("alert")).to_contain_text("whole number")
    expect(limit).to_have_attribute("aria-invalid", "true")
    row.get_by_role("button", name="Reset").click()
    expect(row.locator('[data-field="limit-note"]')).to_have_text("declared")
    expect(row.locator('[data-field="limit"]')).to_have_text(
        str(DECLARED_LIMIT), timeout=COUNTED_WITHIN * 1000
    )
    assert dashboard.api_json("GET", f"/api/v1/queues/{QUEUE}")["concurrencyLimit"] is None


def test_a_read_only_session_sees_the_catalog_and_cannot_act(
    page: Page, dashboard: Dashboard
) -> None:
    signed_in(page, dashboard.read_key)
    page.goto("/tasks")
    expect(page.locator('tr[data-task="dashboard-hello"]')).to_be_visible()
    page.goto("/queues")
    row = queue_row(page)
    for name in ("Pause", "Set limit", "Reset"):
        expect(row.get_by_role("button", name=name)).to_be_disabled()
    expect(row.get_by_label(f"Concurrency limit of {QUEUE}")).to_be_disabled()
    session = dashboard.session_client(dashboard.read_key)
    try:
        for method, path, body in (
            ("POST", f"/api/v1/queues/{QUEUE}/pause", None),
            ("PUT", f"/api/v1/queues/{QUEUE}/concurrency", {"concurrencyLimit": 4}),
        ):
            refused = session.write(method, path, csrf=session.csrf_token, json=body)
            assert refused.status_code == 403, refused.text
    finally:
        session.http.close()
    assert dashboard.api_json("GET", f"/api/v1/queues/{QUEUE}")["paused"] is False
