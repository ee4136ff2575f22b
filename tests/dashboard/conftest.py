"""The dashboard's fixtures: one `podtask dev` for the package (`dashboard`), one chromium
(`chromium`), and per test browser contexts that fail the test on any request to another
host, any uncaught script error or any Content-Security-Policy violation (`contexts`, a
factory; `context`, `page`). See `browser.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from podtask._cli.devprocess import DevProcess
from tests.dashboard.browser import (
    ROOT,
    TASK_MODULES,
    VIEWPORT,
    Dashboard,
    OffsiteRequests,
    chromium_path,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

# What Chromium says when the page's policy refused something.
CSP_VIOLATION = "Content Security Policy"


@pytest.fixture(scope="package")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """`podtask dev` with the examples and the dashboard's task modules, and its keys."""
    dev = DevProcess(
        [str(ROOT / "examples"), str(TASK_MODULES)],
        tmp_path_factory.mktemp("dashboard") / ".podtask",
        cwd=ROOT,
        start_timeout=180,
    ).start()
    try:
        served = Dashboard(dev)
        served.read_key = served.create_key("dashboard-viewer", read_only=True)
        yield served
    finally:
        dev.stop()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            # No background traffic of the browser's own (updates, sync, safe browsing).
            args=["--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield browser
        finally:
            browser.close()


ContextFactory = Callable[[], "BrowserContext"]


@pytest.fixture
def contexts(chromium: Browser, dashboard: Dashboard) -> Iterator[ContextFactory]:
    """Makes fresh browser profiles on the API's URL (two users at once: call it twice); the
    test fails if a page of any fetched anything from another host, threw an uncaught error
    or broke the page's security policy."""
    offsite = OffsiteRequests(dashboard.host)
    problems: list[str] = []
    made: list[BrowserContext] = []

    def on_console(message: ConsoleMessage) -> None:
        if CSP_VIOLATION in message.text:
            problems.append(f"{message.location.get('url')}: {message.text}")

    def new_context() -> BrowserContext:
        browser_context = chromium.new_context(base_url=dashboard.url, viewport=VIEWPORT)
        browser_context.route("**/*", offsite)
        browser_context.on("console", on_console)
        browser_context.on("weberror", lambda error: problems.append(f"uncaught: {error.error}"))
        made.append(browser_context)
        return browser_context

    try:
        yield new_context
    finally:
        for browser_context in made:
            browser_context.close()
    assert offsite.blocked == [], f"requests to other hosts than {dashboard.host}"
    assert problems == [], "the pages' scripts failed"


@pytest.fixture
def context(contexts: ContextFactory) -> BrowserContext:
    """A fresh browser profile, checked as `contexts` checks them."""
    return contexts()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()
