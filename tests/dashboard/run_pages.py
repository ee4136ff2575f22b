"""What the browser tests of the runs' pages share: triggering through the JSON API, reading
a run, and telling that a page was not reloaded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.dashboard.browser import Dashboard

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# Runs start in a few seconds on `podtask dev`; a loaded machine may take much longer.
SETTLES_WITHIN_MS = 90_000
FINAL = {"Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure"}


def trigger(dashboard: Dashboard, task: str, payload: Any = None, **options: Any) -> str:
    """A run of `task` triggered through the JSON API with the write key; its id."""
    body: dict[str, Any] = {"payload": payload if payload is not None else {}}
    if options:
        body["options"] = options
    with dashboard.http(dashboard.write_key) as api:
        answer = api.post(f"/api/v1/tasks/{task}/trigger", json=body)
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def read_run(dashboard: Dashboard, run_id: str) -> dict[str, Any]:
    with dashboard.http(dashboard.write_key) as api:
        answer = api.get(f"/api/v1/runs/{run_id}")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def mark_loaded(page: Page) -> None:
    """Mark the document: `still_loaded` is False once the page has been reloaded since."""
    page.evaluate("window.__notReloaded = true")


def still_loaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def run_status(page: Page) -> Locator:
    """The status badge of the run page."""
    return page.locator('[data-live-part="status"] [data-field="status"]')
