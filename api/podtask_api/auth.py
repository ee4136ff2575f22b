"""Who may call what: API keys (write or read-only) for the public endpoints, attempt tokens
for the runner's.

API keys are stored only as sha256 digests: those in `PODTASK_API_KEY_HASHES` (write keys,
to bootstrap) and those in the keys' Secret (`podtask._control.api_keys`), which `ApiKeyStore` reads
through the Kubernetes API and keeps for a few seconds, so that a key added or revoked there
counts without a restart. A presented key is hashed and compared to every digest in constant
time. A read-only key may call the endpoints that only read; anything that writes is a 403.

An attempt token is valid for exactly the run and attempt it was signed for, and only while
that attempt executes: its signature and expiry are checked here, and whether its attempt
still executes by `live_attempts` against the run as it is now, on every endpoint that
accepts one. On the few public endpoints a task calls from inside its run (trigger, batch
trigger, get run) it stands for that run, which becomes the parent of the runs it triggers
and may read only those (`Caller`).

These are the rules, pure but for the key store's reads; each route declares which callers
it takes with a dependency of `routes.access`, which applies them.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from podtask._control.api_keys import ApiKeySecret, MalformedApiKeys, StoredApiKey, is_sha256_digest
from podtask._control.api_keys import api_key_digest as api_key_digest
from podtask._control.attempt_tokens import InvalidAttemptToken, verify_attempt_token
from podtask_api.dashboard.sessions import (
    CSRF_HEADER,
    InvalidSession,
    SessionClaims,
    csrf_token_matches,
    needs_csrf_token,
    verify_session,
)
from podtask_api.errors import ApiError
from podtask_api.settings import ApiSettings

log = logging.getLogger("podtask_api")

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
HOW_TO_SEND_A_KEY = "send it as 'Authorization: Bearer <key>'"


def match_key_digest(digest: str, keys: Iterable[StoredApiKey]) -> StoredApiKey | None:
    """The stored key of this digest, if any.

    Every candidate is compared, with `hmac.compare_digest` and no early exit: the time
    taken does not say which digest (if any) matched.
    """
    matched: StoredApiKey | None = None
    for stored in keys:
        if hmac.compare_digest(digest, stored.sha256) and matched is None:
            matched = stored
    return matched


def match_api_key(key: str, keys: Iterable[StoredApiKey]) -> StoredApiKey | None:
    """The stored key whose digest is `key`'s, if any (compared as `match_key_digest` does)."""
    return match_key_digest(api_key_digest(key), keys)


def write_keys(digests: Iterable[str]) -> tuple[StoredApiKey, ...]:
    """Digests given as configuration (`PODTASK_API_KEY_HASHES`), as write keys.

    A ValueError names the first item that is no digest, without showing it: it may be a
    key pasted by mistake.
    """
    keys = []
    for index, digest in enumerate(digests):
        if not is_sha256_digest(digest):
            raise ValueError(
                f"PODTASK_API_KEY_HASHES: item {index} is not a sha256 hex digest (64 hex "
                "digits); give the digests of the keys, never the keys"
            )
        keys.append(StoredApiKey(name=f"PODTASK_API_KEY_HASHES[{index}]", sha256=digest))
    return tuple(keys)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if that is what it is."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def require_attempt_token(
    authorization: str | None, secret: bytes, run_id: str, attempt: int
) -> None:
    """Accept only an unexpired token signed for this run and attempt (whether the attempt
    still executes is for `live_attempts` to judge, against the run)."""
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
    """Who calls a public endpoint: an API key holder (maybe read-only), or the run whose
    attempt token it is (`attempt`: the token's attempt)."""

    run_id: str | None = None
    read_only: bool = False
    attempt: int | None = None

    @property
    def is_task_run(self) -> bool:
        return self.run_id is not None

    def may_read(self, run: dict[str, Any]) -> bool:
        """API keys read every run; a run's attempt token only the runs it triggered."""
        if self.run_id is None:
            return True
        return bool((run.get("spec") or {}).get("parentRunId") == self.run_id)


API_KEY_HOLDER = Caller()
READ_ONLY_KEY_HOLDER = Caller(read_only=True)


@dataclass(frozen=True)
class KnownKeys:
    """The keys a request is judged against, and whether one is needed at all.

    `problem` says why the Secret's keys are missing when it could not be read: a key that
    matches none of `keys` may then be one of them, and cannot be refused as wrong.
    """

    keys: tuple[StoredApiKey, ...]
    required: bool = True
    problem: str | None = None


def _looks_like_attempt_token(token: str) -> bool:
    # Attempt tokens are `<claims>.<signature>`; a token without a dot can only be a key.
    return "." in token


def authenticate_caller(
    authorization: str | None, known: KnownKeys, attempt_token_secret: bytes
) -> Caller:
    """An API key holder or a run (by its attempt token); 401 for anything else.

    A run's caller still has to pass `live_attempts.attempt_refusal` against the run.

    A token that matches no API key but looks like an attempt token is judged as one, so an
    expired or forged attempt token is refused with its reason, also where keys are optional
    (a task whose child runs silently lost their parent would be worse than an error).
    """
    token = bearer_token(authorization)
    if token is not None:
        matched = match_api_key(token, known.keys)
        if matched is not None:
            return READ_ONLY_KEY_HOLDER if matched.read_only else API_KEY_HOLDER
        if attempt_token_secret and _looks_like_attempt_token(token):
            try:
                claims = verify_attempt_token(attempt_token_secret, token)
            except InvalidAttemptToken as exc:
                raise ApiError(
                    401,
                    "unauthorized",
                    f"the bearer token is not a valid API key, nor a valid attempt token: {exc}",
                    headers=_CHALLENGE,
                ) from None
            return Caller(run_id=claims.run, attempt=claims.attempt)
        if known.problem is not None:
            raise ApiError(
                503,
                "api_keys_unavailable",
                f"the API cannot check this key now: {known.problem}",
            )
    if not known.required:
        return API_KEY_HOLDER
    if token is None:
        raise ApiError(
            401,
            "unauthorized",
            f"an API key is required: {HOW_TO_SEND_A_KEY}",
            headers=_CHALLENGE,
        )
    raise ApiError(
        401,
        "unauthorized",
        f"the API key is not valid; {HOW_TO_SEND_A_KEY}",
        headers=_CHALLENGE,
    )


@dataclass(frozen=True)
class SignedIn:
    """A valid dashboard session: its claims and the stored key it signed in with."""

    claims: SessionClaims
    key: StoredApiKey

    @property
    def caller(self) -> Caller:
        return READ_ONLY_KEY_HOLDER if self.key.read_only else API_KEY_HOLDER


SIGN_IN_AGAIN = "sign in again at /sign-in"


def authenticate_session(
    cookie: str,
    known: KnownKeys,
    session_secret: bytes,
    *,
    method: str,
    csrf_token: str | None,
    now: float | None = None,
) -> SignedIn:
    """The session of a dashboard cookie, for a request of `method` carrying `csrf_token`.

    401 when the cookie is not valid, has expired, or its key was revoked; 403 `csrf` when
    a request that changes something does not carry the session's CSRF token (the header
    `X-CSRF-Token`); 503 when the keys' Secret cannot be read to tell.
    """
    try:
        claims = verify_session(session_secret, cookie, now=now)
    except InvalidSession as exc:
        raise ApiError(401, "unauthorized", f"{exc}: {SIGN_IN_AGAIN}", headers=_CHALLENGE) from None
    if needs_csrf_token(method) and not csrf_token_matches(claims, csrf_token):
        raise ApiError(
            403,
            "csrf",
            f"a {method.upper()} request made with the dashboard's session cookie must carry "
            f"the header {CSRF_HEADER} with the session's CSRF token (the page's "
            "<meta name=\"csrf-token\">); other clients send 'Authorization: Bearer <key>' "
            "instead of the cookie",
        )
    key = match_key_digest(claims.key_digest, known.keys)
    if key is None:
        if known.problem is not None:
            raise ApiError(
                503,
                "api_keys_unavailable",
                f"the API cannot check this session now: {known.problem}",
            )
        raise ApiError(
            401,
            "unauthorized",
            f"the API key this session signed in with has been revoked: {SIGN_IN_AGAIN} "
            "with another key",
            headers=_CHALLENGE,
        )
    return SignedIn(claims=claims, key=key)


def require_api_key_holder(caller: Caller, what: str) -> None:
    """403 for a run's attempt token on an endpoint only API keys may use."""
    if caller.is_task_run:
        raise ApiError(
            403,
            "forbidden",
            f"an attempt token may not {what}: it may only trigger runs and read the runs "
            "it triggered; use an API key",
        )


def require_write_access(caller: Caller) -> None:
    """403 for a read-only key on an endpoint that changes something."""
    if caller.read_only:
        raise ApiError(
            403,
            "read_only_key",
            "the API key is read-only: it may only call endpoints that read; use a key with "
            "write access (`podtask keys create --name NAME`)",
        )


class ApiKeysUnavailable(Exception):
    """The keys' Secret could not be read or understood; the message says why (no secrets)."""


class ApiKeyStore:
    """The configured write keys plus the Secret's keys, the Secret read at most once per
    `cache_seconds`.

    A Secret that cannot be read keeps the keys last read from it (a cluster hiccup must not
    lock every caller out); before any read has succeeded only the configured keys count,
    and a key that matches none of them is a 503, not a 401. Safe to use from several
    threads: one of them reads while the others wait for its result.

    A key revoked through this process (`forget`) is refused from the next request on; one
    revoked elsewhere (another replica, kubectl) works for at most `cache_seconds` more.
    `fresh` answers without a read, and so without a thread, while the last read is recent.
    """

    def __init__(
        self,
        configured: Sequence[StoredApiKey],
        *,
        dev_mode: bool,
        read_secret: Callable[[], list[StoredApiKey]] | None,
        cache_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configured = tuple(configured)
        self._dev_mode = dev_mode
        self._read_secret = read_secret
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._secret_keys: tuple[StoredApiKey, ...] | None = None
        self._problem: str | None = None
        # What `known` last answered and when it read the Secret for it; replaced whole, so
        # `fresh` reads it without the lock (which a thread reading the Secret may hold).
        self._answer: tuple[KnownKeys, float] | None = None

    def _refresh(self) -> None:
        assert self._read_secret is not None
        try:
            self._secret_keys = tuple(self._read_secret())
            self._problem = None
        except ApiKeysUnavailable as exc:
            if self._problem is None:
                log.warning("API keys Secret: %s", exc)
            self._problem = str(exc)

    def forget(self) -> None:
        """Read the Secret again on the next request: this process has just changed it."""
        with self._lock:
            self._read_at = None
            self._answer = None

    @property
    def configured(self) -> tuple[StoredApiKey, ...]:
        """The keys given as configuration (`PODTASK_API_KEY_HASHES`), not in the Secret."""
        return self._configured

    def fresh(self) -> KnownKeys | None:
        """The keys, when telling them needs no read of the Secret (its last read is under
        `cache_seconds` old, or there is no Secret); None when a read is due: call `known`,
        in a thread. Never blocks."""
        answer = self._answer
        if answer is None:
            return None
        known, read_at = answer
        if self._read_secret is not None and self._clock() - read_at >= self._cache_seconds:
            return None
        return known

    def known(self) -> KnownKeys:
        """The keys, the Secret read first when its last read is `cache_seconds` old."""
        with self._lock:
            now = self._clock()
            due = self._read_at is None or now - self._read_at >= self._cache_seconds
            if self._read_secret is not None and due:
                self._refresh()
                self._read_at = now
            keys = self._configured + (self._secret_keys or ())
            problem = self._problem if self._secret_keys is None else None
            # Open only in dev mode with no key anywhere, and only while that is known for sure.
            required = not self._dev_mode or bool(keys) or problem is not None
            known = KnownKeys(keys=keys, required=required, problem=problem)
            self._answer = (known, now if self._read_at is None else self._read_at)
        return known


def secret_reader(secret: ApiKeySecret) -> Callable[[], list[StoredApiKey]]:
    """`secret.read`, its failures as `ApiKeysUnavailable` with a message fit for a caller."""
    where = f"the Secret {secret.namespace}/{secret.name}"

    def read() -> list[StoredApiKey]:
        try:
            return secret.read()
        except ApiException as exc:
            raise ApiKeysUnavailable(
                f"{where} cannot be read (HTTP {exc.status} {exc.reason}); the API needs "
                "`get` on it"
            ) from None
        except HTTPError as exc:
            raise ApiKeysUnavailable(
                f"{where} cannot be read: the Kubernetes API cannot be reached "
                f"({type(exc).__name__})"
            ) from None
        except MalformedApiKeys as exc:
            raise ApiKeysUnavailable(f"{where} is malformed: {exc}") from None

    return read


def key_secret(settings: ApiSettings, api_client: Any) -> ApiKeySecret | None:
    """The keys' Secret `settings` name, through `api_client`; None when they name none."""
    if not settings.api_keys_secret:
        return None
    namespace = settings.api_keys_namespace or settings.namespace
    return ApiKeySecret(api_client, namespace, settings.api_keys_secret)


def api_key_store(settings: ApiSettings, api_client: Any) -> ApiKeyStore:
    """The key store `settings` describe, reading the Secret through `api_client`."""
    secret = key_secret(settings, api_client)
    read_secret = None if secret is None else secret_reader(secret)
    return ApiKeyStore(
        write_keys(settings.api_key_digests),
        dev_mode=settings.dev_mode,
        read_secret=read_secret,
        cache_seconds=settings.api_keys_cache_seconds,
    )
