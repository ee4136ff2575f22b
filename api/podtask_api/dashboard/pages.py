"""What every dashboard page shares: its session (`page_session`), its rendering (`render`),
and the answers a page gives instead of itself (`SignInRequired`, `PageProblem`).

A page route declares `session: PageSessionDep`: without a valid session (no cookie, a
forged or expired one, its key revoked) the browser is sent to `/sign-in?next=<this page>`
(303). `render(request, "page.html", {...})` renders a template that extends `base.html`
with the session's key, read-only badge and CSRF token filled in.

Every page is served with a Content-Security-Policy that lets it load scripts, styles,
images and connections from this origin only: a template may not use an inline `<script>`
(put the code in `static/`, pass data in `<script type="application/json" id=...>`) and
nothing can be fetched from another host, however a page is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from podtask_api.auth import SignedIn, authenticate_session
from podtask_api.dashboard.sessions import SESSION_COOKIE
from podtask_api.errors import ApiError
from podtask_api.services import ServicesDep

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    # A page holds the session's CSRF token and the runs' data: never kept by a cache.
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

# The main navigation, in order: (label, path).
NAVIGATION = (
    ("Runs", "/runs"),
    ("Test", "/test"),
    ("Tasks", "/tasks"),
    ("Schedules", "/schedules"),
    ("Queues", "/queues"),
    ("API keys", "/keys"),
)


@dataclass(frozen=True)
class PageSession:
    """The signed-in browser: the name of its API key, whether read-only, its CSRF token."""

    key_name: str
    read_only: bool
    csrf_token: str
    expires_at: float

    @classmethod
    def of(cls, signed_in: SignedIn) -> PageSession:
        return cls(
            key_name=signed_in.key.name,
            read_only=signed_in.key.read_only,
            csrf_token=signed_in.claims.csrf_token,
            expires_at=signed_in.claims.expires_at,
        )


class SignInRequired(Exception):
    """The page needs a session: the browser goes to sign in, then back to `next_path`."""

    def __init__(self, next_path: str, *, clear_cookie: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = next_path
        self.clear_cookie = clear_cookie


class PageProblem(Exception):
    """A page that cannot be shown (not found, refused, the cluster down): an HTML page
    with this status, title and message instead."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def page_path(request: Request) -> str:
    """The path and query of this request, as `next` of the sign-in page."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="strict"
    )


async def signed_in(request: Request, svc: ServicesDep) -> SignedIn | None:
    """The request's valid session, or None (no cookie, not valid, expired, key revoked);
    a `PageProblem` when the keys cannot be read to tell."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    # In a thread: the key store may read its Secret.
    known = await run_in_threadpool(svc.api_keys.known)
    try:
        # Pages only read: the CSRF token is checked by the forms and the API.
        return authenticate_session(cookie, known, svc.session_key, method="GET", csrf_token=None)
    except ApiError as exc:
        if exc.status == 401:
            return None
        raise PageProblem(exc.status, "The API keys cannot be checked", exc.message) from None


async def page_session(request: Request, svc: ServicesDep) -> PageSession:
    """The dependency of every page: its session, else a redirect to sign in."""
    found = await signed_in(request, svc)
    if found is None:
        has_cookie = SESSION_COOKIE in request.cookies
        raise SignInRequired(page_path(request), clear_cookie=has_cookie)
    session = PageSession.of(found)
    request.state.dashboard_session = session
    return session


PageSessionDep = Annotated[PageSession, Depends(page_session)]


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """`template` rendered for this request's session (if any), with the page headers.

    Every template gets `session` (a `PageSession` or None), `csrf_token`, `read_only` and
    `navigation` (label, path, whether current) besides `context`.
    """
    session: PageSession | None = getattr(request.state, "dashboard_session", None)
    path = request.url.path
    navigation = [
        (label, href, path == href or path.startswith(f"{href}/")) for label, href in NAVIGATION
    ]
    values = {
        "session": session,
        "csrf_token": session.csrf_token if session else "",
        "read_only": bool(session and session.read_only),
        "navigation": navigation,
        **(context or {}),
    }
    response = TEMPLATES.TemplateResponse(request, template, values, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


async def list_page(
    read: Callable[[], Awaitable[dict[str, Any]]], cursor: str
) -> tuple[list[dict[str, Any]], str | None, str]:
    """One page of a list the API pages (`{"data": [...], "nextCursor"}`), as `read()`
    answers it at `cursor`: its items, the next page's cursor, and what is wrong with the
    cursor when the API refuses it (made for other filters, or too old), so that the page
    says so and offers the first page rather than failing."""
    try:
        listed = await read()
    except ApiError as exc:
        if cursor and exc.status in (410, 422):
            return [], None, exc.message
        raise
    return list(listed["data"]), listed["nextCursor"], ""


def sign_in_redirect(request: Request, problem: SignInRequired) -> Response:
    response = RedirectResponse(f"/sign-in?next={quote(problem.next_path, safe='')}", 303)
    response.headers["Cache-Control"] = "no-store"
    if problem.clear_cookie:
        clear_session_cookie(response, request)
    return response


def problem_page(request: Request, problem: PageProblem) -> Response:
    context = {"title": problem.title, "message": problem.message}
    return render(request, "problem.html", context, status_code=problem.status)
