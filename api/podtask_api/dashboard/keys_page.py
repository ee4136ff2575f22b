"""The API keys page, `/keys`: every key (name, access, when created), a form that creates
one and shows it once, and a Revoke button on each key kept in the Secret.

The list is rendered here, from the same code as `GET /api/v1/keys`; creating and revoking
are done by `static/keys.js` through the JSON API (`POST /api/v1/keys`,
`DELETE /api/v1/keys/{name}`), so a read-only session sees the page with its controls
disabled, and the server refuses them anyway.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from podtask_api.api_key_changes import list_keys
from podtask_api.dashboard.pages import PageProblem, PageSessionDep, render
from podtask_api.errors import ApiError
from podtask_api.services import ServicesDep

router = APIRouter(include_in_schema=False)


@router.get("/keys")
async def keys_page(request: Request, session: PageSessionDep, svc: ServicesDep) -> HTMLResponse:
    try:
        keys = await run_in_threadpool(list_keys, svc)
    except ApiError as exc:
        raise PageProblem(exc.status, "The API keys cannot be read", exc.message) from None
    context = {
        "keys": keys,
        "keeps_keys_in_a_secret": bool(svc.settings.api_keys_secret),
    }
    return render(request, "keys.html", context)
