"""Runner tokens: an HMAC-signed claim for one attempt of one run, with an expiry.

The operator signs a token into each attempt's pod; the API accepts it only for
that run and attempt, until it expires. Operator and API share the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class InvalidAttemptToken(Exception):
    """The token is malformed, forged, expired or for another attempt."""


@dataclass(frozen=True)
class AttemptClaims:
    run: str
    attempt: int
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def sign_attempt_token(
    secret: bytes, run: str, attempt: int, *, ttl_seconds: float, now: float | None = None
) -> str:
    issued = time.time() if now is None else now
    claims = {"r": run, "a": attempt, "e": round(issued + ttl_seconds)}
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{body}.{_signature(secret, body)}"


def named_attempt(token: str) -> tuple[str, int] | None:
    """The run and attempt a token names, read without checking it (the API does that): how
    a task's client finds its own attempt's runner routes. None when it names none."""
    try:
        raw = json.loads(_unb64(token.partition(".")[0]))
        return str(raw["r"]), int(raw["a"])
    except (ValueError, KeyError, TypeError):
        return None


def verify_attempt_token(secret: bytes, token: str, *, now: float | None = None) -> AttemptClaims:
    """The token's claims, if the signature holds and it has not expired."""
    body, _, signature = token.partition(".")
    if not body or not signature:
        raise InvalidAttemptToken("malformed runner token")
    if not hmac.compare_digest(_signature(secret, body), signature):
        raise InvalidAttemptToken("runner token signature does not match")
    try:
        raw = json.loads(_unb64(body))
        claims = AttemptClaims(run=str(raw["r"]), attempt=int(raw["a"]), expires_at=float(raw["e"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidAttemptToken("malformed runner token") from exc
    if (time.time() if now is None else now) >= claims.expires_at:
        raise InvalidAttemptToken("runner token has expired")
    return claims
