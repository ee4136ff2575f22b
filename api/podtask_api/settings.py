"""The API's configuration, read from `PODTASK_*` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODTASK_", extra="ignore")

    namespace: str = "default"
    api_key_hashes: str = Field(
        default="", description="Comma-separated sha256 hex digests of the valid API keys."
    )
    runner_token_secret: SecretStr = Field(
        default=SecretStr(""), description="The HMAC secret shared with the operator."
    )
    dev_mode: bool = False
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

    @property
    def api_keys_required(self) -> bool:
        """Public endpoints are open only in dev mode with no keys configured."""
        return bool(self.api_key_digests) or not self.dev_mode
