"""API keys as the API keeps them: sha256 digests in a Kubernetes Secret, each write or read-only.

The Secret (`podtask-api-keys` by default) holds one data key, `keys.json`: a JSON list of
`{"name", "sha256", "access", "created"}` with `access` either `write` (every endpoint) or
`read` (only endpoints that read), and `created` (ISO 8601) when it was recorded. A key
itself is never stored: `podtask keys create` (or the dashboard, through the API) shows it
once and stores its digest; `podtask dev` stores the digest of its dev key. The API reads
the Secret (and caches it briefly), so keys added or revoked here take effect without a
restart.

The document's rules and edits are pure; `ApiKeySecret` reads and changes the Secret
through the Kubernetes client, with optimistic concurrency so that two writers cannot lose
each other's keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from podtask._contract.wire import LABEL_MANAGED_BY, MANAGED_BY

API_KEYS_SECRET = "podtask-api-keys"
API_KEYS_DATA_KEY = "keys.json"
API_KEY_PREFIX = "pt_"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Attempts at a read-modify-write of the Secret before giving up on a busy Secret.
_WRITE_ATTEMPTS = 8
_REQUEST_TIMEOUT = (5, 30)


class KeyAccess(StrEnum):
    WRITE = "write"
    READ = "read"


class StoredApiKey(BaseModel):
    """One key as the Secret records it: a name to revoke it by, its digest, what it may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100)
    sha256: str
    access: KeyAccess = KeyAccess.WRITE
    # When it was created, if that was recorded (`podtask keys create`, the dashboard); keys
    # written before, or by the chart, have none.
    created: datetime | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.strip().lower()
        if not is_sha256_digest(value):
            raise ValueError("must be the 64 hex digits of a sha256 digest")
        return value

    @property
    def read_only(self) -> bool:
        return self.access == KeyAccess.READ


_STORED_KEYS = TypeAdapter(list[StoredApiKey])


class MalformedApiKeys(ValueError):
    """The Secret's `keys.json` is not a list of stored keys; the message says where."""


def is_sha256_digest(text: str) -> bool:
    return bool(_SHA256_HEX.match(text.strip().lower()))


def api_key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> str:
    """A new random key (256 bits), recognisable by its prefix."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_api_key(
    name: str, access: KeyAccess, now: datetime | None = None
) -> tuple[str, StoredApiKey]:
    """A new key (shown once: never stored) and its entry for the Secret, created `now`."""
    key = generate_api_key()
    created = (now or datetime.now(UTC)).replace(microsecond=0)
    return key, StoredApiKey(name=name, sha256=api_key_digest(key), access=access, created=created)


def parse_stored_keys(text: str) -> list[StoredApiKey]:
    """The keys of a `keys.json` document; `MalformedApiKeys` naming the first problem."""
    try:
        return _STORED_KEYS.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise MalformedApiKeys(
            f"{API_KEYS_DATA_KEY} is not a list of {{name, sha256, access, created}}: "
            f"{where}: {first['msg']}"
        ) from None


def stored_keys_json(keys: Sequence[StoredApiKey]) -> str:
    # Without `created` where none was recorded: such entries stay as they were written.
    return json.dumps([key.model_dump(mode="json", exclude_none=True) for key in keys], indent=2)


def secret_keys(data: dict[str, str] | None) -> list[StoredApiKey]:
    """The keys in a Secret's (base64) `data`; none when it has no `keys.json`."""
    encoded = (data or {}).get(API_KEYS_DATA_KEY)
    if not encoded:
        return []
    try:
        text = base64.b64decode(encoded, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise MalformedApiKeys(f"{API_KEYS_DATA_KEY} is not base64 of UTF-8 text") from None
    return parse_stored_keys(text)


def secret_data(keys: Sequence[StoredApiKey]) -> dict[str, str]:
    return {API_KEYS_DATA_KEY: base64.b64encode(stored_keys_json(keys).encode()).decode()}


def with_key(keys: Sequence[StoredApiKey], added: StoredApiKey) -> list[StoredApiKey]:
    """`keys` plus `added`; a name already taken is a ValueError (revoke that key first)."""
    if any(key.name == added.name for key in keys):
        raise ValueError(
            f"there is already an API key named {added.name!r}: choose another name, or revoke "
            f"it first with `podtask keys revoke {added.name}`"
        )
    return [*keys, added]


def with_dev_key(keys: Sequence[StoredApiKey], name: str, digest: str) -> list[StoredApiKey]:
    """`keys` with the write key `name` set to `digest`, whatever it was before."""
    return [*(key for key in keys if key.name != name), StoredApiKey(name=name, sha256=digest)]


def without_key(keys: Sequence[StoredApiKey], name: str) -> list[StoredApiKey]:
    """`keys` without the key `name`; a KeyError when there is none."""
    kept = [key for key in keys if key.name != name]
    if len(kept) == len(keys):
        raise KeyError(name)
    return kept


class ApiKeySecret:
    """The keys' Secret in one namespace, through the (synchronous) Kubernetes client.

    Its methods raise the client's `ApiException` for anything but a missing Secret, and
    `MalformedApiKeys` when the Secret holds something else.
    """

    def __init__(self, api_client: Any, namespace: str, name: str = API_KEYS_SECRET) -> None:
        from kubernetes import client

        self._core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.name = name

    def _read(self) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self._core.read_namespaced_secret(
                self.name, self.namespace, _request_timeout=_REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def read(self) -> list[StoredApiKey]:
        """The stored keys; none when the Secret does not exist."""
        secret = self._read()
        return [] if secret is None else secret_keys(secret.data)

    def change(
        self, edit: Callable[[list[StoredApiKey]], list[StoredApiKey]]
    ) -> list[StoredApiKey]:
        """Apply `edit` to the stored keys and write the result, creating the Secret if needed.

        A concurrent writer makes the write conflict; `edit` is then applied again to what
        that writer stored. Other data keys of the Secret are kept.
        """
        from kubernetes.client.exceptions import ApiException

        for _ in range(_WRITE_ATTEMPTS):
            secret = self._read()
            if secret is None:
                keys = edit([])
                body: Any = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "Opaque",
                    "metadata": {
                        "name": self.name,
                        "labels": {LABEL_MANAGED_BY: MANAGED_BY},
                    },
                    "data": secret_data(keys),
                }
                try:
                    self._core.create_namespaced_secret(
                        self.namespace, body, _request_timeout=_REQUEST_TIMEOUT
                    )
                    return keys
                except ApiException as exc:
                    if exc.status == 409:  # created meanwhile: edit what is there now
                        continue
                    raise
            keys = edit(secret_keys(secret.data))
            # A replace carrying the resourceVersion read: it fails (409) if anyone wrote since.
            secret.data = {**(secret.data or {}), **secret_data(keys)}
            try:
                self._core.replace_namespaced_secret(
                    self.name, self.namespace, secret, _request_timeout=_REQUEST_TIMEOUT
                )
                return keys
            except ApiException as exc:
                if exc.status == 409:
                    continue
                raise
        where = f"{self.namespace}/{self.name}"
        raise RuntimeError(f"the Secret {where} kept changing while it was written; try again")
