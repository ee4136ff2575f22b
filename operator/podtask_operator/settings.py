"""The operator's configuration, read from `PODTASK_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from podtask.machines import DEFAULT_CPU_REQUEST_RATIO, DEFAULT_MEMORY_REQUEST_RATIO


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODTASK_")

    namespace: str = "default"
    api_url: str = Field(description="The API's address as task pods reach it.")
    runner_token_secret: str = Field(min_length=16)
    runner_token_ttl_seconds: int = Field(
        default=24 * 3600, ge=60, description="Token lifetime for runs without a max duration."
    )
    cpu_request_ratio: float = Field(default=DEFAULT_CPU_REQUEST_RATIO, gt=0, le=1)
    memory_request_ratio: float = Field(default=DEFAULT_MEMORY_REQUEST_RATIO, gt=0, le=1)
    runner_command: list[str] = Field(default=["python", "-m", "podtask_runner"])
    run_as_user: int = Field(default=10001, ge=1)
    termination_grace_seconds: int = Field(default=30, ge=0)
