"""API keys: list them (any key: names and access, never a key or a digest), create one
(shown once) and revoke one (write keys only).

Each route declares who may call it (`access`); the Secret's changes and their failures
are `api_key_changes`'.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from starlette.concurrency import run_in_threadpool

from podtask_api.api_key_changes import CreateKeyRequest, create_key, list_keys, revoke_key
from podtask_api.api_models import ApiKeyList, CreatedApiKey
from podtask_api.errors import error_responses
from podtask_api.routes.access import PUBLIC_ROUTE_ERRORS, any_key, write_key
from podtask_api.services import ServicesDep

router = APIRouter(prefix="/api/v1", tags=["keys"], responses=PUBLIC_ROUTE_ERRORS)

KeyName = Annotated[str, Path(description="The key's name.", max_length=100)]


@router.get("/keys", response_model=ApiKeyList, dependencies=[Depends(any_key)])
async def get_keys(svc: ServicesDep) -> dict[str, Any]:
    """The API keys: their names, access and when they were created (if recorded)."""
    return {"data": await run_in_threadpool(list_keys, svc)}


@router.post(
    "/keys",
    status_code=201,
    response_model=CreatedApiKey,
    responses=error_responses(400, 409, 413),
    dependencies=[Depends(write_key)],
)
async def post_key(request: CreateKeyRequest, svc: ServicesDep) -> dict[str, Any]:
    """Create a key; the answer holds the key itself, shown this once (only its digest is
    stored)."""
    return await run_in_threadpool(create_key, svc, request.name, request.access)


@router.delete(
    "/keys/{name}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404, 409),
    dependencies=[Depends(write_key)],
)
async def delete_key(name: KeyName, svc: ServicesDep) -> Response:
    """Revoke a key: it, and every dashboard session signed in with it, stops working (in
    this API at once, in its other replicas within PODTASK_API_KEYS_CACHE_SECONDS)."""
    await run_in_threadpool(revoke_key, svc, name)
    return Response(status_code=204)
