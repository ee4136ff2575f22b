"""The dashboard's test harness: a real `podtask dev`, its keys, and Debian's chromium driven
by Playwright, with every request to another host than the API's aborted and recorded.

- `Dashboard`: the dev stack (`podtask dev` with the examples and `task_modules/`), its
  write key (dev's own) and a read-only key made with `podtask keys create --read-only`;
  `session_client(key)` signs in without a browser (httpx), as a browser's cookie jar would.
- `OffsiteRequests`: installed on a browser context, it aborts every request whose
  host:port is not the API's and keeps its URL; the `context` fixture fails a test that made
  any (acceptance 2: nothing is fetched from outside the machine).
- `signed_in(page, key)`: the sign-in form filled and sent as a person would.
- `screenshot(page, name)`: `docs/screenshots/<name>.png`, the README's pictures.

Without chromium (`make test` installs it with apt-get where it can) the tests that need a
browser are deselected, with one summary line saying why (tests/conftest.py).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from podtask._cli.devprocess import DevProcess
from podtask_api.dashboard.sessions import CSRF_HEADER
from tests.e2e.conftest import wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

ROOT = Path(__file__).resolve().parents[2]
TASK_MODULES = Path(__file__).parent / "task_modules"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# A laptop's window; `phone` screenshots use Playwright's phone-sized viewport instead.
VIEWPORT = {"width": 1280, "height": 800}
PHONE_VIEWPORT = {"width": 390, "height": 844}
# The API caches the keys' Secret for up to 10 s: a key made now counts within that.
KEY_COUNTS_WITHIN = 60.0


def chromium_path() -> str | None:
    """Debian's chromium (`apt-get install chromium`), if installed."""
    return shutil.which("chromium")


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if chromium_path() is None:
        return (
            "Debian's chromium is not installed (`make test` installs it with apt-get when it "
            "can; or `apt-get install chromium`)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@dataclass
class Dashboard:
    """`podtask dev` serving the dashboard, with a write key and a read-only key."""

    dev: DevProcess
    read_key: str = ""

    @property
    def url(self) -> str:
        return self.dev.api_url

    @property
    def write_key(self) -> str:
        return self.dev.api_key

    @property
    def host(self) -> str:
        """host:port of the API: the only one the browser may reach."""
        return urlsplit(self.url).netloc

    def http(self, key: str | None = None) -> httpx.Client:
        """A client of the JSON API with `key` (none: anonymous), redirects not followed."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def api_json(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON answer of the API to `method path` with the write key (a success)."""
        with self.http(self.write_key) as api:
            answer = api.request(method, path, json=body)
        assert answer.is_success, answer.text
        return answer.json()

    def create_key(self, name: str, *, read_only: bool) -> str:
        """A new key made by `podtask keys create`, once the API takes it."""
        command = [sys.executable, "-m", "podtask._cli.cli", "keys", "create", "--name", name]
        command += ["--kubeconfig", self.dev.kubeconfig, *(["--read-only"] if read_only else [])]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        key = done.stdout.strip()
        with self.http(key) as api:
            wait_until(lambda: api.get("/api/v1/tasks").status_code == 200, KEY_COUNTS_WITHIN)
        return key

    def session_client(self, key: str) -> SessionClient:
        """An httpx client signed in to the dashboard with `key` (cookie and CSRF token)."""
        http = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        form = http.get("/sign-in")
        token = re.search(r'name="form_token" value="([^"]+)"', form.text)
        assert form.status_code == 200 and token is not None, form.text
        signed_in = http.post("/sign-in", data={"key": key, "form_token": token[1], "next": ""})
        assert signed_in.status_code == 303, signed_in.text
        page = http.get("/runs")
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert csrf is not None, page.text
        return SessionClient(http=http, csrf_token=csrf[1])


@dataclass
class SessionClient:
    """A signed-in cookie jar and its session's CSRF token."""

    http: httpx.Client
    csrf_token: str

    def write(self, method: str, path: str, *, csrf: str | None, **kwargs: Any) -> httpx.Response:
        headers = {CSRF_HEADER: csrf} if csrf is not None else {}
        return self.http.request(method, path, headers=headers, **kwargs)


@dataclass
class OffsiteRequests:
    """Aborts and records every request of a browser context to another host than `host`."""

    host: str
    blocked: list[str] = field(default_factory=list)

    def __call__(self, route: Route, request: Request) -> None:
        if urlsplit(request.url).netloc == self.host:
            route.continue_()
        else:
            self.blocked.append(request.url)
            route.abort("blockedbyclient")


def signed_in(page: Page, key: str) -> Page:
    """Sign in on `page` with `key`, as a person would (on the sign-in page it shows, which
    may carry where to go next; else on /sign-in); the page once signed in."""
    if urlsplit(page.url).path != "/sign-in":
        page.goto("/sign-in")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: urlsplit(url).path != "/sign-in")
    return page


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """`docs/screenshots/<name>.png` of the whole page (or of what the window shows)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
