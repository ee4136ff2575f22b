"""The API's configuration, read from `PODTASK_*` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from podtask._contract.wire import ENV_PREFIX
from podtask._control.api_keys import API_KEYS_SECRET


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    namespace: str = "default"
    api_key_hashes: str = Field(
        default="",
        description="Comma-separated sha256 hex digests of write API keys, to bootstrap; "
        "keys are better kept in the Secret `api_keys_secret`.",
    )
    api_keys_secret: str = Field(
        default=API_KEYS_SECRET,
        description="The Secret holding the API keys' digests (`keys.json`); empty: none.",
    )
    api_keys_namespace: str | None = Field(
        default=None, description="The namespace of that Secret; by default `namespace`."
    )
    api_keys_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long the Secret's keys are kept before it is read again: a key "
        "added or revoked there counts after at most this long.",
    )
    runner_token_secret: SecretStr = Field(
        default=SecretStr(""), description="The HMAC secret shared with the operator."
    )
    session_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The HMAC key that signs the dashboard's session cookies. By default it is "
        "derived from `runner_token_secret` under a label of its own, so the two never "
        "coincide; with neither set, a random key per process (sessions end on a restart, "
        "and replicas do not share them). Changing it ends every session.",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 365,
        description="How long a dashboard session lasts after signing in, in hours.",
    )
    dev_mode: bool = Field(
        default=False,
        description="This API is `podtask dev`'s: public endpoints are open while no API key "
        "exists anywhere.",
    )
    dev_runtime: Literal["processes", "containers", "simulated"] | None = Field(
        default=None,
        description="How `podtask dev`'s pods run, when this API is its. `processes`: from "
        "this machine's files, whatever image a task names, and `simulated`: no process at "
        "all, so deployments are refused (the deployed image would not be what runs).",
    )
    instance: str = Field(
        default="",
        description="Echoed by /healthz in the `Podtask-Instance` header, so whoever started "
        "this API (`podtask dev`) can tell it from another server answering on its port.",
    )
    events_keepalive_seconds: float = Field(
        default=15.0,
        gt=0,
        description="How often an event stream (`/api/v1/runs/events`) that has nothing to "
        "send says `: keepalive`, so that proxies keep it open.",
    )
    metrics_public: bool = Field(
        default=False,
        description="`GET /metrics` needs no API key. By default any key may read it (a "
        "read-only one too).",
    )
    kubeconfig: str | None = Field(
        default=None, description="A kubeconfig file; by default KUBECONFIG or in-cluster config."
    )
    api_host: str = "0.0.0.0"
    api_port: int = 8080

    @property
    def api_key_digests(self) -> tuple[str, ...]:
        return tuple(
            digest.strip().lower() for digest in self.api_key_hashes.split(",") if digest.strip()
        )
