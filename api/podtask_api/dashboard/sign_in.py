"""Signing in and out of the dashboard: `/sign-in` (the form, and its POST), `/sign-out`
(POST), and `/`, which sends a browser on to the runs.

Signing in checks the API key as the API does (its digest against every stored key), then
sets the session cookie (`sessions`): signed, HttpOnly, SameSite=Strict, Path=/, Secure when
the request was https, for `PODTASK_SESSION_HOURS`. A wrong key gets the form again with a
message and no cookie. The sign-in form carries a CSRF token of its own, paired with a
short-lived cookie (`podtask_sign_in`), so that another site cannot sign a browser in with
its key; signing out takes the session's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from podtask_api.auth import match_api_key
from podtask_api.dashboard.pages import (
    clear_session_cookie,
    is_https,
    render,
    signed_in,
)
from podtask_api.dashboard.sessions import (
    DEFAULT_AFTER_SIGN_IN,
    SESSION_COOKIE,
    csrf_token_matches,
    new_session,
    safe_next,
    sign_session,
)
from podtask_api.services import ServicesDep

router = APIRouter(include_in_schema=False)

SIGN_IN_COOKIE = "podtask_sign_in"
SIGN_IN_FORM_SECONDS = 3600
# Said with a wrong key; the form says it with markup (sign_in.html).
KEY_HELP = (
    "podtask dev prints its API key when it starts; podtask keys create --name NAME makes one"
)


async def _form(request: Request) -> dict[str, str]:
    """The fields of a form-urlencoded body, the first value of each (no multipart)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


def _sign_in_form(
    request: Request, next_path: str, *, error: str | None = None, status_code: int = 200
) -> Response:
    """The sign-in page, with a fresh form token unless the browser holds one already."""
    token = request.cookies.get(SIGN_IN_COOKIE) or secrets.token_urlsafe(24)
    context = {"next": next_path, "form_token": token, "error": error}
    response = render(request, "sign_in.html", context, status_code=status_code)
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=SIGN_IN_FORM_SECONDS,
        path="/sign-in",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/")
async def home() -> Response:
    """The dashboard starts at its runs."""
    return RedirectResponse(DEFAULT_AFTER_SIGN_IN, 303)


@router.get("/sign-in")
async def sign_in_page(request: Request, svc: ServicesDep, next: str | None = None) -> Response:
    """The form; a browser signed in already goes on to `next`."""
    if await signed_in(request, svc) is not None:
        return RedirectResponse(safe_next(next), 303)
    return _sign_in_form(request, safe_next(next))


@router.post("/sign-in")
async def sign_in(request: Request, svc: ServicesDep) -> Response:
    """Check the key; set the session cookie and go on, or show the form with what failed."""
    form = await _form(request)
    next_path = safe_next(form.get("next"))
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    presented = form.get("form_token", "")
    if not expected or not hmac.compare_digest(expected.encode(), presented.encode()):
        return _sign_in_form(
            request,
            next_path,
            error="This sign-in form has expired (or came from another page). Enter the key again.",
            status_code=403,
        )
    key = form.get("key", "").strip()
    if not key:
        return _sign_in_form(request, next_path, error="Enter an API key.", status_code=422)
    # In a thread: the key store may read its Secret.
    known = await run_in_threadpool(svc.api_keys.known)
    matched = match_api_key(key, known.keys)
    if matched is None:
        if known.problem is not None:
            error = f"The API cannot check keys now: {known.problem}"
            return _sign_in_form(request, next_path, error=error, status_code=503)
        error = f"That API key is not valid. Check it and try again ({KEY_HELP})."
        return _sign_in_form(request, next_path, error=error, status_code=401)
    claims = new_session(matched.sha256, hours=svc.settings.session_hours)
    response = RedirectResponse(next_path, 303)
    response.set_cookie(
        SESSION_COOKIE,
        sign_session(svc.session_key, claims),
        max_age=round(svc.settings.session_hours * 3600),
        path="/",
        secure=is_https(request),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in", secure=is_https(request))
    return response


@router.post("/sign-out")
async def sign_out(request: Request, svc: ServicesDep) -> Response:
    """End the session (the form carries its CSRF token) and go to the sign-in page."""
    form = await _form(request)
    found = await signed_in(request, svc)
    if found is not None and not csrf_token_matches(found.claims, form.get("csrf")):
        context = {
            "title": "Not signed out",
            "message": "The sign-out form did not carry this session's CSRF token: sign out "
            "from a dashboard page.",
        }
        return render(request, "problem.html", context, status_code=403)
    response = RedirectResponse("/sign-in", 303)
    clear_session_cookie(response, request)
    return response
