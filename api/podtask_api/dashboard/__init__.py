"""The dashboard: server-rendered pages over the public JSON API, in the API's process.

One module per page group, each an `APIRouter` that `routes()` includes: `sign_in` (`/`,
`/sign-in`, `/sign-out`), `runs_pages` (`/runs`), `test_page` (`/test`),
`catalog_pages` (`/tasks`, `/queues`), `schedules_page` (`/schedules`), `keys_page`
(`/keys`). What every page shares (its session, its rendering, the redirect to sign in)
is `pages`; the session cookie's rules are `sessions`; the templates are in `templates/`
(each extends `base.html`), the hand-written CSS and JavaScript in `static/`, served at
`/static/` (no CDN, no build step). Pages render their data on the server; their scripts
(`static/dashboard.js`: `podtask.api`, `podtask.stream`) call the JSON API with the
session's cookie and CSRF token for live updates and actions.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def page_routers() -> list[APIRouter]:
    """The router of each page group, in the order `routes()` includes them."""
    # Imported here: the page modules use `auth`, which uses this package's `sessions`.
    from podtask_api.dashboard import (
        catalog_pages,
        keys_page,
        run_page,
        runs_pages,
        schedules_page,
        sign_in,
        test_page,
    )

    return [
        sign_in.router,
        runs_pages.router,
        run_page.router,
        test_page.router,
        catalog_pages.router,
        schedules_page.router,
        keys_page.router,
    ]


def routes() -> APIRouter:
    """Every page of the dashboard, none of them in /openapi.json."""
    router = APIRouter(include_in_schema=False)
    for pages in page_routers():
        router.include_router(pages)
    return router


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app`: its pages, its static files, its redirects."""
    from podtask_api.dashboard.pages import (
        PageProblem,
        SignInRequired,
        problem_page,
        sign_in_redirect,
    )

    async def on_sign_in_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(request, exc)

    async def on_page_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageProblem)
        return problem_page(request, exc)

    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(PageProblem, on_page_problem)
    app.include_router(routes())
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
