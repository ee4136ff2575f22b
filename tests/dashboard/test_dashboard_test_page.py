"""The Test page in a real chromium against `podtask dev` (issue 14): a test run of
hello-world with a payload lands on its run, which completes marked as a test and with
`ctx.is_test` true; the payload editor flags bad JSON and a payload that breaks the task's
schema before anything is sent (no request made); Ctrl+Enter runs; the example comes from the
payload model; recent payloads and saved templates come back; a read-only session cannot
run (disabled, and the server answers 403)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Request, expect

from tests.dashboard.browser import (
    PHONE_VIEWPORT,
    Dashboard,
    screenshot,
    signed_in,
    wait_until,
)

RUN_PAGE = re.compile(r"/runs/(run-[a-z0-9-]+)$")
# A run of `podtask dev` starts a real process: generous.
RUN_ENDS_WITHIN = 120.0
FINAL = {"Completed", "Failed", "Crashed", "Canceled", "Expired", "TimedOut", "SystemFailure"}


def finished_run(dashboard: Dashboard, run_id: str) -> dict[str, Any]:
    """The run once its status is final."""
    with dashboard.http(dashboard.write_key) as api:

        def final() -> dict[str, Any] | None:
            run: dict[str, Any] = api.get(f"/api/v1/runs/{run_id}").json()
            return run if run.get("status") in FINAL else None

        found: dict[str, Any] = wait_until(final, RUN_ENDS_WITHIN)
        return found


def run_opened(page: Page) -> str:
    """The id of the run whose page the browser went to."""
    page.wait_for_url(lambda url: RUN_PAGE.search(urlsplit(url).path) is not None)
    found = RUN_PAGE.search(urlsplit(page.url).path)
    assert found is not None
    return found[1]


def trigger_requests(page: Page) -> list[str]:
    """Every trigger request the page makes from now on."""
    made: list[str] = []

    def seen(request: Request) -> None:
        if request.url.endswith("/trigger"):
            made.append(request.url)

    page.on("request", seen)
    return made


def editor_json(page: Page, label: str = "Payload") -> Any:
    return json.loads(page.get_by_label(label, exact=True).input_value())


@pytest.fixture
def writer(page: Page, dashboard: Dashboard) -> Page:
    return signed_in(page, dashboard.write_key)


def test_hello_world_runs_as_a_test_and_the_page_goes_to_its_run(
    writer: Page, dashboard: Dashboard
) -> None:
    page = writer
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Test").click()
    page.wait_for_url("**/test")
    page.get_by_label("Task", exact=True).select_option("hello-world")
    page.wait_for_url("**/test?task=hello-world")
    expect(page.get_by_label("Task", exact=True)).to_have_value("hello-world")
    payload = page.get_by_label("Payload", exact=True)
    expect(payload).to_have_value("{}")  # no payload model: an empty object to start from
    payload.fill('{\n  "name": "from the dashboard"\n}')
    expect(page.locator("#payload-problems")).to_be_empty()
    page.get_by_role("button", name="Run test").click()
    run_id = run_opened(page)
    run = finished_run(dashboard, run_id)
    assert run["status"] == "Completed", run
    assert run["isTest"] is True and run["taskId"] == "hello-world"
    assert run["payload"] == {"name": "from the dashboard"}
    assert run["output"] == {"message": "hello from the dashboard"}
    with dashboard.http(dashboard.write_key) as api:
        tests = api.get("/api/v1/runs", params={"isTest": "true", "task": "hello-world"}).json()
    assert run_id in [listed["id"] for listed in tests["data"]]


def test_the_example_comes_from_the_payload_model_and_ctrl_enter_runs(
    writer: Page, dashboard: Dashboard
) -> None:
    page = writer
    page.goto("/test?task=dashboard-greet")
    assert editor_json(page) == {
        "name": "string",
        "times": 1,
        "tone": "warm",
        "address": None,
        "tags": ["string"],
    }
    page.get_by_label("Payload", exact=True).fill('{"name": "Ada", "times": 2, "tone": "dry"}')
    page.locator("#metadata-section summary").click()  # the section opens
    page.get_by_label("Metadata", exact=True).fill('{"source": "test page"}')
    page.get_by_label("Tags", exact=True).fill("from-test, second")
    page.get_by_label("Machine", exact=True).select_option("micro")
    expect(page.locator("#payload-problems")).to_be_empty()
    screenshot(page, "test")
    page.get_by_label("Payload", exact=True).press("Control+Enter")
    run = finished_run(dashboard, run_opened(page))
    assert run["status"] == "Completed", run
    assert run["output"] == {"greeting": "hello Ada hello Ada", "tone": "dry", "isTest": True}
    assert run["isTest"] is True
    assert run["tags"] == ["from-test", "second"] and run["machine"] == "micro"
    assert run["metadata"] == {"source": "test page"}


def test_bad_json_is_flagged_with_its_line_and_column_and_never_sent(writer: Page) -> None:
    page = writer
    page.goto("/test?task=hello-world")
    sent = trigger_requests(page)
    payload = page.get_by_label("Payload", exact=True)
    payload.fill('{\n  "name": "x",\n}')
    problems = page.locator("#payload-problems")
    expect(problems).to_contain_text("Line 3, column 1")
    expect(problems).to_contain_text("Trailing comma")
    expect(payload).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".gutter .gutter-error")).to_have_text("3")
    page.get_by_role("button", name="Run test").click()
    payload.press("Control+Enter")
    expect(page.get_by_role("alert")).to_contain_text("Not sent: fix the payload first")
    payload.fill("{'name': 'x'}")
    expect(problems).to_contain_text("Line 1, column 2")
    expect(problems).to_contain_text("double quotes")
    page.get_by_role("button", name="Run test").click()
    page.evaluate("1")  # a round trip: a request the click made would be seen by now
    assert sent == []
    assert urlsplit(page.url).path == "/test"
    # Fixed, the problem goes away as one types.
    payload.fill('{"name": "x"}')
    expect(problems).to_be_empty()
    expect(payload).to_have_attribute("aria-invalid", "false")


def test_a_payload_that_breaks_the_task_s_schema_is_flagged_by_json_path(writer: Page) -> None:
    page = writer
    page.goto("/test?task=dashboard-greet")
    sent = trigger_requests(page)
    payload = page.get_by_label("Payload", exact=True)
    payload.fill(
        json.dumps({"name": "", "times": 9, "tone": "loud", "address": {"city": "X"}, "tags": 1})
    )
    problems = page.locator("#payload-problems")
    for path, words in (
        ("$.name", "at least 1 character"),
        ("$.times", "at most 5"),
        ("$.tone", 'one of "warm", "dry"'),
        ("$.address.city", "at least 2 characters"),
        ("$.tags", "must be an array"),
    ):
        expect(problems.locator("li", has_text=path)).to_contain_text(words)
    payload.fill("{}")
    expect(problems.locator("li")).to_have_text(["$.name: is required"])
    page.get_by_role("button", name="Run test").click()
    expect(page.get_by_role("alert")).to_contain_text("Not sent")
    assert sent == []
    payload.fill('{"name": "Grace", "address": {"city": "Paris", "postcode": "75001"}}')
    expect(problems).to_be_empty()


def test_a_recent_payload_can_be_picked(writer: Page, dashboard: Dashboard) -> None:
    with dashboard.http(dashboard.write_key) as api:
        triggered = api.post(
            "/api/v1/tasks/dashboard-greet/trigger", json={"payload": {"name": "recent one"}}
        )
    assert triggered.status_code == 201, triggered.text
    page = writer
    page.goto("/test?task=dashboard-greet")
    recent = page.get_by_label("Recent payload", exact=True)
    option = recent.locator("option", has_text=triggered.json()["id"])
    recent.select_option(option.get_attribute("value"))
    assert editor_json(page) == {"name": "recent one"}


def test_a_saved_template_comes_back_after_a_reload(writer: Page) -> None:
    page = writer
    page.goto("/test?task=dashboard-greet")
    page.get_by_label("Payload", exact=True).fill('{"name": "from a template"}')
    page.get_by_label("Tags", exact=True).fill("templated")
    page.get_by_label("Template name", exact=True).fill("Greeting for Ada")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#notices")).to_contain_text("saved in this browser")
    page.reload()
    assert editor_json(page)["name"] == "string"  # the example again
    page.get_by_label("Saved template", exact=True).select_option("Greeting for Ada")
    assert editor_json(page) == {"name": "from a template"}
    expect(page.get_by_label("Tags", exact=True)).to_have_value("templated")
    # Another task has templates of its own.
    page.goto("/test?task=hello-world")
    options = page.get_by_label("Saved template", exact=True).locator("option")
    expect(options).to_have_count(1)
    page.goto("/test?task=dashboard-greet")
    page.get_by_label("Saved template", exact=True).select_option("Greeting for Ada")
    page.get_by_role("button", name="Delete template").click()
    page.reload()
    expect(page.get_by_label("Saved template", exact=True).locator("option")).to_have_count(1)


def test_a_read_only_session_cannot_run_a_test(page: Page, dashboard: Dashboard) -> None:
    signed_in(page, dashboard.read_key)
    page.goto("/test?task=hello-world")
    sent = trigger_requests(page)
    run_button = page.get_by_role("button", name="Run test")
    expect(run_button).to_be_disabled()
    page.get_by_label("Payload", exact=True).fill('{"name": "read only"}')
    page.get_by_label("Payload", exact=True).press("Control+Enter")
    page.evaluate("1")  # a round trip: a request the key press made would be seen by now
    assert sent == [] and urlsplit(page.url).path == "/test"
    # The server refuses it too, with the session's own CSRF token.
    session = dashboard.session_client(dashboard.read_key)
    try:
        refused = session.write(
            "POST",
            "/api/v1/tasks/hello-world/trigger",
            csrf=session.csrf_token,
            json={"payload": {"name": "read only"}, "options": {"isTest": True}},
        )
    finally:
        session.http.close()
    assert refused.status_code == 403, refused.text


def test_an_unknown_task_says_so(writer: Page) -> None:
    page = writer
    page.goto("/test?task=no-such-task")
    expect(page.get_by_role("alert")).to_contain_text("No task no-such-task is deployed")
    expect(page.get_by_role("button", name="Run test")).to_have_count(0)


def test_the_test_page_fits_a_phone_and_the_keyboard(writer: Page) -> None:
    page = writer
    page.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    page.goto("/test?task=dashboard-greet")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    payload = page.get_by_label("Payload", exact=True)
    payload.fill("{")
    payload.press("End")
    payload.press("Enter")
    payload.press("Tab")  # indents inside the editor
    assert payload.input_value() == "{\n  "
    payload.press("Escape")
    payload.press("Tab")  # then leaves it
    assert page.evaluate("document.activeElement.id") != "payload"
    screenshot(page, "test-phone")
