"""The dashboard's session cookie: what it holds, how it is signed and checked. Pure.

A browser signs in with an API key; the cookie `podtask_session` then names that key by its
sha256 digest (the digest the keys' Secret stores, so a revoked key ends its sessions), with
an expiry and a CSRF token, signed with HMAC-SHA256:

    <base64url of {"k": digest, "c": csrf token, "e": expiry}>.<base64url of the signature>

The cookie is HttpOnly, so the page's JavaScript cannot read it; the CSRF token reaches the
page in `<meta name="csrf-token">`, and every request that changes something and comes with
the cookie must carry it back in the `X-CSRF-Token` header (a form on another site can send
the cookie's name, never a header).

The signing key is `PODTASK_SESSION_SECRET`, or by default one derived from the runner token
secret under a label of its own (`SESSION_KEY_LABEL`): a session signature is never a valid
attempt token signature, nor the other way round.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

SESSION_COOKIE = "podtask_session"
CSRF_HEADER = "X-CSRF-Token"
# Derives the session key from the runner token secret; a new label would end every session.
SESSION_KEY_LABEL = b"podtask dashboard session key v1"
# Signed with the body, so that a signature made for anything else never verifies here.
_SIGNED_AS = "podtask-session."
_METHODS_THAT_READ = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_AFTER_SIGN_IN = "/runs"


class InvalidSession(Exception):
    """The cookie is malformed, forged or expired; the message says which, for people."""


@dataclass(frozen=True)
class SessionClaims:
    """What a session cookie says: the key's digest, the CSRF token, until when (Unix time)."""

    key_digest: str
    csrf_token: str
    expires_at: float


def session_key(configured: str, runner_token_secret: str) -> bytes | None:
    """The key that signs sessions: the configured one, else one derived from the runner
    token secret (HMAC under `SESSION_KEY_LABEL`); None when neither is set."""
    if configured:
        return configured.encode()
    if runner_token_secret:
        return hmac.new(runner_token_secret.encode(), SESSION_KEY_LABEL, hashlib.sha256).digest()
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, (_SIGNED_AS + body).encode(), hashlib.sha256).digest())


def new_session(key_digest: str, *, hours: float, now: float | None = None) -> SessionClaims:
    """A session for the key of `key_digest`, lasting `hours`, with a fresh CSRF token."""
    issued = time.time() if now is None else now
    return SessionClaims(
        key_digest=key_digest,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=float(round(issued + hours * 3600)),
    )


def sign_session(secret: bytes, claims: SessionClaims) -> str:
    """The cookie's value for `claims`."""
    raw = {"k": claims.key_digest, "c": claims.csrf_token, "e": round(claims.expires_at)}
    body = _b64(json.dumps(raw, separators=(",", ":")).encode())
    return f"{body}.{_signature(secret, body)}"


def verify_session(secret: bytes, value: str, *, now: float | None = None) -> SessionClaims:
    """The claims of a cookie whose signature holds and which has not expired."""
    body, _, signature = value.partition(".")
    if not body or not signature:
        raise InvalidSession("the session cookie is malformed")
    if not hmac.compare_digest(_signature(secret, body).encode(), signature.encode()):
        raise InvalidSession("the session cookie's signature does not match")
    try:
        raw = json.loads(_unb64(body))
        claims = SessionClaims(
            key_digest=str(raw["k"]), csrf_token=str(raw["c"]), expires_at=float(raw["e"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidSession("the session cookie is malformed") from exc
    if (time.time() if now is None else now) >= claims.expires_at:
        raise InvalidSession("the session has expired")
    return claims


def needs_csrf_token(method: str) -> bool:
    """Whether a request of `method` that comes with the cookie must carry the CSRF token."""
    return method.upper() not in _METHODS_THAT_READ


def csrf_token_matches(claims: SessionClaims, presented: str | None) -> bool:
    """Whether `presented` (the header or a form's field) is this session's CSRF token."""
    if not presented:
        return False
    return hmac.compare_digest(claims.csrf_token.encode(), presented.encode())


def safe_next(value: str | None) -> str:
    """Where to go after signing in: `value` when it is a path of this site, else the runs.

    Only a relative path is taken (`/runs?status=Failed`): not `//host`, not `/\\host`
    (browsers read both as another host), not a scheme, nothing with control characters.
    """
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DEFAULT_AFTER_SIGN_IN
    if any(ord(char) < 0x20 or ord(char) == 0x7F or char == "\\" for char in value):
        return DEFAULT_AFTER_SIGN_IN
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_AFTER_SIGN_IN
    return value
