"""Listing, creating and revoking API keys through the API (the keys page and
`/api/v1/keys`): the keys' Secret through `ApiKeySecret`, the same code `podtask keys` uses,
and its failures as `ApiError`s that say what to fix.

Only digests are stored: a created key is returned once and never again. The API's key
store is told to read the Secret again at once (`ApiKeyStore.forget`), so that in this
process a new key works and a revoked one (and its dashboard sessions) stops at the next
request; other replicas follow within `PODTASK_API_KEYS_CACHE_SECONDS`.
"""

from __future__ import annotations

from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ConfigDict, Field
from urllib3.exceptions import HTTPError

from podtask._control.api_keys import (
    ApiKeySecret,
    KeyAccess,
    MalformedApiKeys,
    StoredApiKey,
    new_api_key,
    with_key,
    without_key,
)
from podtask_api.api_models import ApiKeyAccess
from podtask_api.auth import key_secret
from podtask_api.errors import ApiError
from podtask_api.services import Services

KEY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"


class CreateKeyRequest(BaseModel):
    """`POST /api/v1/keys`: a name to tell the key apart (and revoke it by), and its access."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=100,
        pattern=KEY_NAME_PATTERN,
        description="Letters, digits and . _ @ + - (starting with a letter or digit).",
    )
    access: ApiKeyAccess = Field(
        default=ApiKeyAccess.WRITE,
        description="`write`: every endpoint; `read`: only endpoints that read.",
    )


def key_view(key: StoredApiKey, *, configured: bool = False) -> dict[str, Any]:
    """A key as the API shows it (its shape: `api_models.ApiKeyView`). Pure."""
    return {
        "name": key.name,
        "access": key.access.value,
        "createdAt": key.created,
        "configured": configured,
    }


def _secret(svc: Services) -> ApiKeySecret:
    secret = key_secret(svc.settings, svc.cluster.api_client)
    if secret is None:
        raise ApiError(
            409,
            "no_keys_secret",
            "this API keeps no keys in a Secret (PODTASK_API_KEYS_SECRET is empty): its keys "
            "are its configuration (PODTASK_API_KEY_HASHES)",
        )
    return secret


def _unavailable(secret: ApiKeySecret, exc: Exception) -> ApiError:
    where = f"the Secret {secret.namespace}/{secret.name}"
    if isinstance(exc, ApiException) and exc.status == 403:
        problem = (
            "the API may not change it: it needs get and update on that Secret, which must "
            "exist (the chart creates it, as does `podtask keys create`)"
        )
    elif isinstance(exc, ApiException):
        problem = f"it cannot be changed (HTTP {exc.status} {exc.reason})"
    elif isinstance(exc, MalformedApiKeys):
        problem = f"it is malformed: {exc}"
    elif isinstance(exc, RuntimeError):  # ApiKeySecret.change: it kept changing meanwhile
        problem = f"{exc}"
    else:
        problem = "the Kubernetes API cannot be reached"
    return ApiError(503, "api_keys_unavailable", f"{where}: {problem}")


_SECRET_FAILURES = (ApiException, HTTPError, MalformedApiKeys)


def list_keys(svc: Services) -> list[dict[str, Any]]:
    """Every key: the configured ones, then the Secret's. Blocks: call it in a thread."""
    views = [key_view(key, configured=True) for key in svc.api_keys.configured]
    secret = key_secret(svc.settings, svc.cluster.api_client)
    if secret is None:
        return views
    try:
        stored = secret.read()
    except _SECRET_FAILURES as exc:
        raise _unavailable(secret, exc) from None
    return views + [key_view(key) for key in stored]


def create_key(svc: Services, name: str, access: ApiKeyAccess) -> dict[str, Any]:
    """A new key named `name`, stored as its digest; the view with the key, shown once."""
    secret = _secret(svc)
    if any(key.name == name for key in svc.api_keys.configured):
        raise ApiError(409, "key_exists", f"there is already an API key named {name!r}")
    key, stored = new_api_key(name, KeyAccess(access.value))
    try:
        secret.change(lambda keys: with_key(keys, stored))
    except MalformedApiKeys as exc:  # a ValueError too: before the name's
        raise _unavailable(secret, exc) from None
    except ValueError as exc:  # the name is taken
        raise ApiError(409, "key_exists", str(exc)) from None
    except (*_SECRET_FAILURES, RuntimeError) as exc:
        raise _unavailable(secret, exc) from None
    svc.api_keys.forget()
    return {**key_view(stored), "key": key}


def revoke_key(svc: Services, name: str) -> None:
    """Remove the key `name` from the Secret: it, and every session it signed in, stops."""
    if any(key.name == name for key in svc.api_keys.configured):
        raise ApiError(
            409,
            "key_configured",
            f"the API key {name!r} is given by PODTASK_API_KEY_HASHES: remove its digest there",
        )
    secret = _secret(svc)
    try:
        secret.change(lambda keys: without_key(keys, name))
    except KeyError:
        raise ApiError(404, "key_not_found", f"there is no API key named {name!r}") from None
    except (*_SECRET_FAILURES, RuntimeError) as exc:
        raise _unavailable(secret, exc) from None
    svc.api_keys.forget()
