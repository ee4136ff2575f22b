"""Who may call each route: the FastAPI dependencies the routes declare.

Every public route declares one of these in its decorator (`dependencies=[...]`); the
runner's routes declare `attempt_token` on their router:

- `any_key`: any API key, read-only ones too: for endpoints that only read.
- `write_key`: an API key with write access: for endpoints that change something.
- `key_or_run`: any API key, or the attempt token of a run while its attempt executes:
  for reading runs (the token's run may read only the runs it triggered; the route checks
  that, given the caller by `CallerDep`).
- `write_key_or_run`: a write key, or the attempt token of a run: for triggering runs (the
  token's run becomes their parent).
- `attempt_token`: the token signed for the path's run and attempt, while it executes.

The rules are `auth`'s and `live_attempts`'; these fetch what they need (the keys, the
run) and apply them. FastAPI resolves `authenticated_caller` once per request. Each is an
`async def`, blocking nowhere: FastAPI runs a plain `def` dependency in a worker thread,
a hop per dependency per request for what takes microseconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from podtask_api.auth import (
    Caller,
    authenticate_caller,
    authenticate_session,
    require_api_key_holder,
    require_attempt_token,
    require_write_access,
)
from podtask_api.cluster import ObjectNotFound
from podtask_api.dashboard.sessions import CSRF_HEADER, SESSION_COOKIE
from podtask_api.errors import AUTH_ERRORS, CLUSTER_ERRORS, error_responses
from podtask_api.live_attempts import attempt_refusal, run_gone
from podtask_api.services import Services, ServicesDep

# What every public endpoint may answer, documented on each: it checks the caller first
# (401, 403); it may take parameters, so a 422 in the API's shape replaces the one FastAPI
# would document in its own; it reaches the cluster.
PUBLIC_ROUTE_ERRORS = error_responses(*AUTH_ERRORS, 422, *CLUSTER_ERRORS)

# The one security scheme of /openapi.json: an API key, or a run's attempt token (the runner's
# routes), as `Authorization: Bearer ...`, so that /docs's Authorize button sends it. The
# header itself is read by `auth`, which says why a missing or wrong one is refused.
BEARER = HTTPBearer(
    scheme_name="bearer",
    description="An API key (`podtask keys create`; `podtask dev` prints one), or for the "
    "runner's endpoints the attempt's token.",
    auto_error=False,
)
BearerScheme = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]

# What a route declares in `dependencies=[Depends(...)]`: one of the checks below.
Access = Callable[..., Awaitable[None]]


def _authorization(request: Request) -> str | None:
    return request.headers.get("authorization")


def _token_secret(svc: Services) -> bytes:
    return svc.settings.runner_token_secret.get_secret_value().encode()


async def attempt_run(svc: Services, run_id: str, attempt: int) -> dict[str, Any]:
    """The run of an attempt token; a 401 when it is gone (and the attempt with it)."""
    try:
        return await svc.call(svc.cluster.get_run, run_id)
    except ObjectNotFound:
        raise run_gone(run_id, attempt) from None


async def executing_run(svc: Services, run_id: str, attempt: int) -> dict[str, Any]:
    """The run of an attempt token whose attempt executes; a 401 (or 409) when it does not."""
    run = await attempt_run(svc, run_id, attempt)
    refusal = attempt_refusal(run, attempt)
    if refusal is not None:
        raise refusal
    return run


async def authenticated_caller(request: Request, svc: ServicesDep, _: BearerScheme) -> Caller:
    """The caller of a public endpoint: an API key holder (by the key, or by the dashboard's
    session cookie), or a run by its attempt token.

    The `Authorization` header wins over the cookie. With the cookie, a request that changes
    something must carry the session's CSRF token (`auth.authenticate_session`). A run's
    attempt token counts only while its attempt executes: the run is read for it, so that an
    ended attempt's token is a 401 on every endpoint, not only those it may use.
    """
    # In a thread only when the key store must read its Secret: mostly it need not.
    known = svc.api_keys.fresh()
    if known is None:
        known = await run_in_threadpool(svc.api_keys.known)
    authorization = _authorization(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if authorization is None and cookie and known.required:
        signed_in = authenticate_session(
            cookie,
            known,
            svc.session_key,
            method=request.method,
            csrf_token=request.headers.get(CSRF_HEADER),
        )
        return signed_in.caller
    who = authenticate_caller(authorization, known, _token_secret(svc))
    if who.run_id is not None and who.attempt is not None:
        await executing_run(svc, who.run_id, who.attempt)
    return who


CallerDep = Annotated[Caller, Depends(authenticated_caller)]


async def any_key(who: CallerDep) -> None:
    """Any API key, read-only ones too; no attempt token."""
    require_api_key_holder(who, "use this endpoint")


async def write_key(who: CallerDep) -> None:
    """An API key with write access; no read-only key, no attempt token."""
    require_api_key_holder(who, "use this endpoint")
    require_write_access(who)


async def key_or_run(who: CallerDep) -> None:
    """Any API key, or a run's attempt token (the route limits what the run may read)."""


async def write_key_or_run(who: CallerDep) -> None:
    """An API key with write access, or a run's attempt token."""
    require_write_access(who)


async def attempt_token(
    run_id: str, attempt: int, request: Request, svc: ServicesDep, _: BearerScheme
) -> None:
    """The attempt token signed for the path's run and attempt (whether the attempt still
    executes, the route judges on the run it reads anyway)."""
    require_attempt_token(_authorization(request), _token_secret(svc), run_id, attempt)
