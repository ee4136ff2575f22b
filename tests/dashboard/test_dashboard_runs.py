"""The runs list (`/runs`) in a real chromium against `podtask dev`: a test run appears at the
top and changes status without a reload, marked as a test; the filters are a form whose
values stay in the URL; paging goes forward and back (acceptance 1 of issue 14)."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import Page, expect

from tests.dashboard.browser import Dashboard, screenshot, signed_in
from tests.dashboard.run_pages import SETTLES_WITHIN_MS, mark_loaded, still_loaded, trigger


def _query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_a_test_run_appears_marked_and_changes_status_without_a_reload(
    page: Page, dashboard: Dashboard
) -> None:
    signed_in(page, dashboard.write_key)
    page.goto("/runs")
    expect(page.locator("#live-state")).to_have_text("Live", timeout=30_000)
    mark_loaded(page)
    plain = trigger(dashboard, "runs-brief", {"seconds": 1})
    tested = trigger(dashboard, "runs-brief", {"seconds": 1}, isTest=True)

    row = page.locator(f'tr[data-run-id="{tested}"]')
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator(".badge-test")).to_have_text("test")
    expect(page.locator(f'tr[data-run-id="{plain}"] .badge-test')).to_have_count(0)
    # The newest at the top.
    assert page.locator("tbody tr").first.get_attribute("data-run-id") == tested
    expect(row.locator('[data-field="status"]')).to_have_text(
        "Completed", timeout=SETTLES_WITHIN_MS
    )
    expect(row.locator("td").nth(2)).to_have_text("runs-brief")
    expect(row.get_by_role("link", name=tested)).to_have_attribute("href", f"/runs/{tested}")
    assert still_loaded(page)
    screenshot(page, "runs")

    # Test runs only, of this task: a GET form whose values are the URL's.
    page.get_by_label("Test runs only").check()
    page.get_by_label("Task", exact=True).select_option("runs-brief")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**/runs?*")
    assert _query(page) == {"task": ["runs-brief"], "isTest": ["true"], "limit": ["25"]}
    expect(page.locator(f'tr[data-run-id="{tested}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run-id="{plain}"]')).to_have_count(0)
    page.reload()
    expect(page.get_by_label("Test runs only")).to_be_checked()
    expect(page.get_by_label("Task", exact=True)).to_have_value("runs-brief")

    # A status, and the page size: kept in the URL with the rest.
    page.locator(".status-filter summary").click()
    page.get_by_label("Completed", exact=True).check()
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_url("**status=Completed*")
    assert _query(page) == {
        "status": ["Completed"],
        "task": ["runs-brief"],
        "isTest": ["true"],
        "limit": ["10"],
    }
    expect(page.locator(f'tr[data-run-id="{tested}"]')).to_be_visible()
    page.get_by_role("link", name="Clear").click()
    page.wait_for_url("**/runs")
    expect(page.get_by_label("Test runs only")).not_to_be_checked()


def test_paging_forward_and_back_keeps_the_filters(page: Page, dashboard: Dashboard) -> None:
    """Runs delayed for an hour (they stay put, no pod), under a tag of their own."""
    tag = "paging-" + secrets.token_hex(3)
    items = [
        {"task": "runs-brief", "payload": {"n": n}, "options": {"delay": 3600, "tags": [tag]}}
        for n in range(12)
    ]
    with dashboard.http(dashboard.write_key) as api:
        batch = api.post("/api/v1/tasks/batch", json={"items": items})
    assert batch.status_code == 201, batch.text
    ids = sorted(run["id"] for run in batch.json()["runs"])  # a batch's runs: in item order

    signed_in(page, dashboard.write_key)
    page.goto(f"/runs?tag={tag}&limit=10")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(10)
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(10)] == ids[:10]
    expect(rows.first.locator('[data-field="status"]')).to_have_text("Delayed", timeout=30_000)

    page.get_by_role("link", name="Next").click()
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(2)] == ids[10:]
    assert _query(page)["tag"] == [tag] and _query(page)["limit"] == ["10"]
    expect(page.get_by_role("link", name="Next")).to_have_count(0)

    page.get_by_role("link", name="Previous").click()
    expect(rows).to_have_count(10)
    assert rows.first.get_attribute("data-run-id") == ids[0]
    assert "cursor" not in _query(page)
