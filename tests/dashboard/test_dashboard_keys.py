"""The API keys page in chromium: create a key and see it once, sign in with it elsewhere,
revoke it and see that session end; a read-only session sees every write control disabled,
and the server refuses what a script sends anyway."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from playwright.sync_api import BrowserContext, Page, expect

from tests.dashboard.browser import Dashboard, screenshot, signed_in
from tests.dashboard.conftest import ContextFactory


def test_create_a_key_see_it_once_revoke_it_and_its_session_ends(
    page: Page, contexts: ContextFactory, dashboard: Dashboard
) -> None:
    name = f"laptop-{uuid.uuid4().hex[:6]}"
    signed_in(page, dashboard.write_key)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys", level=1)).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Read-only: may only look").check()
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key-value")
    expect(shown).to_contain_text("pt_")
    key = shown.inner_text().strip()
    row = page.locator(f'tr[data-key-name="{name}"]')
    expect(row).to_contain_text("read-only")
    screenshot(page, "keys")
    # Shown once: the page shows it no more.
    page.reload()
    expect(page.locator("#new-key")).to_be_hidden()
    assert key not in page.content()
    expect(row).to_be_visible()

    elsewhere = contexts().new_page()
    signed_in(elsewhere, key)
    expect(elsewhere.locator(".key-name")).to_have_text(name)
    expect(elsewhere.locator(".badge-read-only").first).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke {name}").click()
    expect(row).to_have_count(0)
    expect(page.locator("#notices")).to_contain_text(f"Revoked the key {name}")
    elsewhere.reload()
    assert urlsplit(elsewhere.url).path == "/sign-in"


def test_a_read_only_session_sees_the_badge_and_its_write_controls_disabled(
    page: Page, context: BrowserContext, dashboard: Dashboard
) -> None:
    signed_in(page, dashboard.read_key)
    expect(page.locator(".badge-read-only")).to_have_text("read-only")
    expect(page.locator(".key-name")).to_have_text("dashboard-viewer")
    page.goto("/keys")
    for control in (
        page.get_by_label("Name"),
        page.get_by_role("button", name="Create key"),
        page.get_by_role("button", name="Revoke dashboard-viewer"),
    ):
        expect(control).to_be_disabled()
    screenshot(page, "keys-read-only")
    writes = page.locator("[data-write]")
    assert writes.count() >= 4
    for index in range(writes.count()):
        expect(writes.nth(index)).to_be_disabled()
    # A control a script adds later is disabled too.
    page.evaluate(
        "document.querySelector('main').append(podtask.element('button', "
        "{id: 'late', 'data-write': true}, 'Late'))"
    )
    expect(page.locator("#late")).to_be_disabled()
    # The server refuses what the page's script would send, as it refuses the key.
    answer = page.evaluate(
        "podtask.api('POST', '/api/v1/keys', {name: 'nope'}).then(() => 'created', e => e.code)"
    )
    assert answer == "read_only_key"
