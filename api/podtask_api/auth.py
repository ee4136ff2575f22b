"""Who may call what: API keys for the public endpoints, attempt tokens for the runner's.

API keys are stored only as sha256 digests; a presented key is hashed and
compared to every digest in constant time. An attempt token is valid for
exactly the run and attempt it was signed for.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from podtask.attempt_tokens import InvalidAttemptToken, verify_attempt_token

from podtask_api.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_is_valid(key: str, digests: Iterable[str]) -> bool:
    presented = api_key_digest(key)
    valid = False
    # No early exit: the time taken does not say which digest (if any) matched.
    for digest in digests:
        valid |= hmac.compare_digest(presented, digest.strip().lower())
    return valid


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def require_api_key(authorization: str | None, digests: tuple[str, ...], required: bool) -> None:
    if not required:
        return
    key = bearer_token(authorization)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "an API key is required: send it as 'Authorization: Bearer <key>'",
            headers=_CHALLENGE,
        )
    if not api_key_is_valid(key, digests):
        raise ApiError(401, "unauthorized", "the API key is not valid", headers=_CHALLENGE)


def require_attempt_token(
    authorization: str | None, secret: bytes, run_id: str, attempt: int
) -> None:
    """Accept only a live token signed for this run and attempt."""
    if not secret:
        raise ApiError(
            503,
            "runner_callbacks_disabled",
            "runner callbacks are disabled: PODTASK_RUNNER_TOKEN_SECRET is not set on the API",
        )
    token = bearer_token(authorization)
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            "an attempt token is required: send it as 'Authorization: Bearer <token>'",
            headers=_CHALLENGE,
        )
    try:
        claims = verify_attempt_token(secret, token)
    except InvalidAttemptToken as exc:
        raise ApiError(
            401, "unauthorized", f"invalid attempt token: {exc}", headers=_CHALLENGE
        ) from None
    if claims.run != run_id or claims.attempt != attempt:
        raise ApiError(
            403,
            "forbidden",
            f"this attempt token is for attempt {claims.attempt} of run {claims.run!r}, "
            f"not attempt {attempt} of run {run_id!r}",
        )
