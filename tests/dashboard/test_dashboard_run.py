"""A run's page (`/runs/{id}`) in a real chromium against `podtask dev`: it follows the run
to its end without a reload (status, output, progress, logs), shows a failure's traceback
and every attempt, cancels, replays with an edited payload and reschedules from the page;
a read-only session sees it all and can do none of it (acceptance 1 and 5 of issue 14)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.dashboard.browser import Dashboard, screenshot, signed_in, wait_until
from tests.dashboard.run_pages import (
    SETTLES_WITHIN_MS,
    mark_loaded,
    read_run,
    run_status,
    still_loaded,
    trigger,
)


def _open(page: Page, dashboard: Dashboard, run_id: str, key: str | None = None) -> Page:
    signed_in(page, key or dashboard.write_key)
    page.goto(f"/runs/{run_id}")
    mark_loaded(page)
    return page


def test_the_page_opened_while_the_run_waits_shows_it_completed_with_its_output(
    page: Page, dashboard: Dashboard
) -> None:
    run_id = trigger(dashboard, "runs-brief", {"name": "live", "seconds": 4})
    _open(page, dashboard, run_id)
    first_seen = run_status(page).inner_text()
    assert first_seen in {"Pending", "Queued", "Executing"}, first_seen
    expect(page.locator("#output")).to_have_count(0)

    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    output = page.locator("#output")
    expect(output).to_contain_text('"name": "live"')
    expect(output).to_contain_text('"isTest": false')
    expect(page.locator(".attempts-table tbody tr")).to_have_count(1)
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator(".timeline .bar-succeeded")).to_have_count(1)
    assert still_loaded(page)


def test_a_failed_runs_page_shows_its_traceback_and_each_attempt(
    page: Page, dashboard: Dashboard
) -> None:
    run_id = trigger(dashboard, "runs-failing", {"why": "to fail"})
    _open(page, dashboard, run_id)
    expect(run_status(page)).to_have_text("Failed", timeout=SETTLES_WITHIN_MS)
    error = page.locator(".run-error")
    expect(error.locator(".error-type")).to_have_text("ValueError")
    expect(error.locator(".error-message")).to_have_text("attempt 2 failed on purpose")
    traceback = error.locator("pre.traceback")
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text(
        'raise ValueError(f"attempt {ctx.attempt} failed on purpose")'
    )
    attempts = page.locator(".attempts-table tbody tr")
    expect(attempts).to_have_count(2)
    for number in (1, 2):
        row = page.locator(f'.attempts-table tr[data-attempt="{number}"]')
        expect(row.locator("td").nth(2)).to_have_text(f"{run_id}-{number}")  # its pod
        expect(row.locator("td").nth(3)).not_to_have_text("")  # its exit code
    # The timeline: two failed attempts and the wait between them.
    expect(page.locator(".timeline .bar-failed")).to_have_count(2)
    expect(page.locator(".timeline .bar-retry")).to_have_count(1)
    # Each attempt's log, by its tab.
    page.get_by_role("tab", name="Attempt 1").click()
    expect(page.locator("#log")).to_contain_text("attempt 1 starts")
    page.get_by_role("tab", name="Attempt 2").click()
    expect(page.locator("#log")).to_contain_text("attempt 2 starts")
    assert still_loaded(page)


def test_the_log_of_a_running_attempt_grows_on_the_page(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-logging", {"lines": 14, "every": 0.7})
    _open(page, dashboard, run_id)
    log = page.locator("#log")
    expect(log).to_contain_text("log line 2 of 14", timeout=SETTLES_WITHIN_MS)
    # Seen part-way: the lines came while the task ran, not all at the end.
    partial = log.inner_text()
    assert "log line 14 of 14" not in partial, partial
    expect(page.locator("#log-state")).to_contain_text("Following attempt 1")
    expect(log).to_contain_text("log line 14 of 14", timeout=SETTLES_WITHIN_MS)
    lines = [line for line in log.inner_text().splitlines() if line.startswith("log line")]
    assert lines == [f"log line {n} of 14" for n in range(1, 15)]  # each once, in order
    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    expect(page.locator("#log-state")).to_have_text("")
    assert still_loaded(page)


def test_cancel_from_the_page(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-sleeping")
    _open(page, dashboard, run_id)
    expect(page.locator("#log")).to_contain_text(
        "sleeping until canceled", timeout=SETTLES_WITHIN_MS
    )
    page.locator("#cancel-button").click()
    dialog = page.locator("#cancel-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Keep it running").click()
    expect(dialog).to_be_hidden()
    assert read_run(dashboard, run_id)["cancelRequestedAt"] is None
    page.locator("#cancel-button").click()
    dialog.get_by_role("button", name="Cancel run").click()
    expect(run_status(page)).to_have_text("Canceled", timeout=SETTLES_WITHIN_MS)
    expect(page.locator("#cancel-button")).to_be_disabled()
    assert read_run(dashboard, run_id)["status"] == "Canceled"
    assert still_loaded(page)


def test_replay_from_the_page_with_an_edited_payload(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-brief", {"name": "first", "seconds": 0})
    _open(page, dashboard, run_id)
    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    page.get_by_role("button", name="Replay…").click()
    dialog = page.locator("#replay-dialog")
    payload = dialog.get_by_label("Payload")
    expect(payload).to_have_value(re.compile(r'"name": "first"'))
    # Not JSON: said at once, and nothing is sent.
    payload.fill('{"name": "edited",')
    expect(payload).to_have_attribute("aria-invalid", "true")
    expect(dialog.locator("#replay-error")).to_contain_text("Not valid JSON")
    dialog.get_by_role("button", name="Replay", exact=True).click()
    expect(dialog).to_be_visible()
    assert urlsplit(page.url).path == f"/runs/{run_id}"

    payload.fill('{"name": "edited", "seconds": 0}')
    expect(payload).to_have_attribute("aria-invalid", "false")
    dialog.get_by_role("button", name="Replay", exact=True).click()
    page.wait_for_url(lambda url: urlsplit(url).path not in ("", f"/runs/{run_id}"))
    replayed = urlsplit(page.url).path.removeprefix("/runs/")
    new = read_run(dashboard, replayed)
    assert new["replayOf"] == run_id and new["payload"] == {"name": "edited", "seconds": 0}
    expect(page.locator("#payload")).to_contain_text('"name": "edited"')
    expect(page.get_by_role("link", name=run_id)).to_have_attribute("href", f"/runs/{run_id}")
    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    expect(page.locator("#output")).to_contain_text('"name": "edited"')


def test_reschedule_a_delayed_run_from_the_page(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-brief", {"seconds": 0}, delay=3600)
    _open(page, dashboard, run_id)
    expect(run_status(page)).to_have_text("Delayed", timeout=SETTLES_WITHIN_MS)
    page.get_by_role("button", name="Reschedule…").click()
    dialog = page.locator("#reschedule-dialog")
    dialog.get_by_label("Delay in seconds").fill("0")
    dialog.get_by_role("button", name="Reschedule", exact=True).click()
    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    expect(page.get_by_role("button", name="Reschedule…")).to_be_hidden()
    assert still_loaded(page)


def test_a_progress_reporting_tasks_bar_moves(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-progress", {"steps": 6, "every": 1.5})
    _open(page, dashboard, run_id)
    bar = page.locator("#run-progress")
    expect(bar).to_be_visible(timeout=SETTLES_WITHIN_MS)

    def value() -> float:
        shown = page.locator("#run-progress").get_attribute("value")
        return float(shown) if shown is not None else -1.0

    seen = [value()]
    deadline = time.monotonic() + SETTLES_WITHIN_MS / 1000
    while run_status(page).inner_text() != "Completed" and time.monotonic() < deadline:
        current = value()
        if current != seen[-1]:
            seen.append(current)
        time.sleep(0.2)
    expect(run_status(page)).to_have_text("Completed")
    seen.append(value())
    assert seen[-1] == 1.0
    # It moved through values between the ends, never back.
    assert len({v for v in seen if 0 < v < 1}) >= 2, seen
    assert seen == sorted(seen), seen
    expect(page.locator("#run-progress-text")).to_have_text("100%")
    expect(page.locator("#metadata")).to_contain_text('"step": "6 of 6"')
    assert still_loaded(page)


def test_a_run_with_attempts_and_logs_for_the_screenshot(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-flaky", {"table": "orders"}, tags=["nightly", "import"])
    _open(page, dashboard, run_id)
    expect(run_status(page)).to_have_text("Completed", timeout=SETTLES_WITHIN_MS)
    expect(page.locator(".attempts-table tbody tr")).to_have_count(2)
    expect(page.locator("#log")).to_contain_text("attempt 2: step 3 of 3")
    expect(page.locator(".timeline .bar-retry")).to_have_count(1)
    wait_until(lambda: page.locator(".events-table tbody tr").count() > 0, 30, "its Events")
    screenshot(page, "run")


def test_a_read_only_session_sees_the_run_and_cannot_act(page: Page, dashboard: Dashboard) -> None:
    run_id = trigger(dashboard, "runs-brief", {"seconds": 0}, delay=3600)
    _open(page, dashboard, run_id, dashboard.read_key)
    expect(page.locator(".badge-read-only")).to_be_visible()
    expect(run_status(page)).to_have_text("Delayed", timeout=SETTLES_WITHIN_MS)
    expect(page.locator("#payload")).to_contain_text('"seconds": 0')
    for name in ("Cancel run", "Replay…", "Reschedule…"):
        expect(page.get_by_role("button", name=name)).to_be_disabled()
    # The server refuses it too, with the page's own CSRF token (403, as the key would get).
    refused = page.evaluate(
        """async (id) => {
            const answers = [];
            for (const action of ["cancel", "replay"]) {
                try {
                    await podtask.api("POST", `/api/v1/runs/${id}/${action}`, {});
                    answers.push(0);
                } catch (e) {
                    answers.push(e.status);
                }
            }
            return answers;
        }""",
        run_id,
    )
    assert refused == [403, 403]
    assert read_run(dashboard, run_id)["cancelRequestedAt"] is None
