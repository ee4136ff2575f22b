"""Signing in and out in a real chromium against `podtask dev`: a wrong key, the session
cookie's attributes, the shell of a signed-in page, pages without a session, and a form
another site posts to the API (acceptance 4 of issue 14)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.browser import PHONE_VIEWPORT, Dashboard, screenshot, signed_in


def test_a_wrong_key_shows_an_error_and_sets_no_cookie(page: Page, context: BrowserContext) -> None:
    page.goto("/sign-in")
    page.get_by_label("API key").fill("pt_not_a_key_of_this_podtask")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That API key is not valid")
    assert urlsplit(page.url).path == "/sign-in"
    assert [c for c in context.cookies() if c["name"] == "podtask_session"] == []
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")


def test_sign_in_then_sign_out(page: Page, context: BrowserContext, dashboard: Dashboard) -> None:
    page.goto("/")
    assert urlsplit(page.url).path == "/sign-in"  # / → /runs → sign in first
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")
    signed_in(page, dashboard.write_key)
    assert urlsplit(page.url).path == "/runs"
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Runs", "Test", "Tasks", "Schedules", "Queues", "API keys"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    expect(nav.get_by_role("link", name="Runs")).to_have_attribute("aria-current", "page")
    expect(page.locator(".key-name")).to_have_text("podtask-dev")
    expect(page.locator(".badge-read-only")).to_have_count(0)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert csrf

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in")
    assert [c for c in context.cookies() if c["name"] == "podtask_session"] == []
    page.goto("/runs")
    assert urlsplit(page.url).path == "/sign-in"


def test_the_session_cookie_is_http_only_and_strict(
    page: Page, context: BrowserContext, dashboard: Dashboard
) -> None:
    signed_in(page, dashboard.write_key)
    [cookie] = [c for c in context.cookies() if c["name"] == "podtask_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # plain http on loopback; Secure when the request was https
    # HttpOnly: the page's scripts cannot read it.
    assert "podtask_session" not in page.evaluate("document.cookie")


def test_a_page_asked_for_without_a_session_comes_back_after_sign_in(
    page: Page, dashboard: Dashboard
) -> None:
    page.goto("/runs?status=Failed")
    assert urlsplit(page.url).path == "/sign-in"
    signed_in(page, dashboard.write_key)
    parts = urlsplit(page.url)
    assert (parts.path, parts.query) == ("/runs", "status=Failed")


def test_the_sign_in_page_fits_a_phone(context: BrowserContext) -> None:
    phone = context.new_page()
    phone.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    phone.goto("/sign-in")
    field = phone.get_by_label("API key")
    expect(field).to_be_visible()
    box = field.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_VIEWPORT["width"]
    no_sideways_scroll = "document.documentElement.scrollWidth <= window.innerWidth"
    assert phone.evaluate(no_sideways_scroll)
    screenshot(phone, "sign-in-phone")


def test_a_form_another_site_posts_to_the_api_is_refused(
    page: Page, context: BrowserContext, dashboard: Dashboard
) -> None:
    """A page of another origin (here about:blank, whose origin is opaque) posts a form to
    the API with the JSON a text/plain form can forge, while this browser is signed in."""
    signed_in(page, dashboard.write_key)
    before = hello_runs(dashboard)
    other = context.new_page()
    forged = json.dumps({"payload": {"name": "x"}})[:-1] + ', "pad": "'
    other.set_content(
        f'<form method="post" enctype="text/plain" '
        f'action="{dashboard.url}/api/v1/tasks/dashboard-hello/trigger">'
        f"<input name='{forged}' value='\"}}'><button>go</button></form>"
    )
    with other.expect_navigation():
        other.get_by_role("button", name="go").click()
    answer = json.loads(other.locator("body").inner_text())
    assert answer["error"]["code"] == "cross_site", answer
    assert hello_runs(dashboard) == before


def hello_runs(dashboard: Dashboard) -> list[str]:
    with dashboard.http(dashboard.write_key) as api:
        listed = api.get("/api/v1/runs", params={"task": "dashboard-hello", "limit": 100})
    return [run["id"] for run in listed.json()["data"]]
