"""/docs in chromium without anything from another host: Swagger UI from the API's own
files, its Authorize button taking an API key, and a request tried out with it."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.dashboard.browser import Dashboard


def test_the_api_docs_work_offline_and_authorize_with_a_key(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto("/docs")
    expect(page.get_by_role("heading", name="podtask API")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").fill(dashboard.read_key)
    dialog.locator("button.modal-btn.authorize").click()
    expect(dialog).to_contain_text("Authorized")
    dialog.locator("button.btn-done").click()

    operation = page.locator("#operations-tasks-list_tasks_api_v1_tasks_get")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_contain_text("200", timeout=30_000)
    expect(operation.locator(".curl-command")).to_contain_text("Authorization: Bearer")
