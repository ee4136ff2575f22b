"""Who may call what: API keys for the public endpoints, attempt tokens for the runner's.

API keys are stored only as sha256 digests; a presented key is hashed and
compared to every digest in constant time. An attempt token is valid for
exactly the run and attempt it was signed for; on the few public endpoints a
task calls from inside its run (trigger, batch trigger, get run) it stands for
that run, which becomes the parent of the runs it triggers and may read only
those (`Caller`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Caller:
    """Who calls a public endpoint: an API key holder, or the run whose attempt token it is."""

    run_id: str | None = None

    @property
    def is_task_run(self) -> bool:
        return self.run_id is not None

    def may_read(self, run: dict[str, Any]) -> bool:
        """API keys read every run; a run's attempt token only the runs it triggered."""
        if self.run_id is None:
            return True
        return bool((run.get("spec") or {}).get("parentRunId") == self.run_id)


API_KEY_HOLDER = Caller()


def _looks_like_attempt_token(token: str) -> bool:
    # Attempt tokens are `<claims>.<signature>`; a token without a dot can only be a key.
    return "." in token


def authenticate_caller(
    authorization: str | None,
    digests: tuple[str, ...],
    keys_required: bool,
    attempt_token_secret: bytes,
) -> Caller:
    """An API key holder or a run (by its attempt token); 401 for anything else.

    A token that matches no API key but looks like an attempt token is judged as one, so an
    expired or forged attempt token is refused with its reason, also where keys are optional
    (a task whose child runs silently lost their parent would be worse than an error).
    """
    token = bearer_token(authorization)
    if token is not None and api_key_is_valid(token, digests):
        return API_KEY_HOLDER
    if token is not None and attempt_token_secret and _looks_like_attempt_token(token):
        try:
            claims = verify_attempt_token(attempt_token_secret, token)
        except InvalidAttemptToken as exc:
            raise ApiError(
                401,
                "unauthorized",
                f"the bearer token is not a valid API key, nor a valid attempt token: {exc}",
                headers=_CHALLENGE,
            ) from None
        return Caller(run_id=claims.run)
    require_api_key(authorization, digests, keys_required)
    return API_KEY_HOLDER


def require_api_key_holder(caller: Caller, what: str) -> None:
    """403 for a run's attempt token on an endpoint only API keys may use."""
    if caller.is_task_run:
        raise ApiError(
            403,
            "forbidden",
            f"an attempt token may not {what}: it may only trigger runs and read the runs "
            "it triggered; use an API key",
        )
