"""The operator's configuration, read from `PODTASK_*` environment variables."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from podtask._contract.machines import DEFAULT_CPU_REQUEST_RATIO, DEFAULT_MEMORY_REQUEST_RATIO
from podtask._contract.wire import ENV_PREFIX
from podtask_operator.schedule_ticks import MissedTicks


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX)

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
    dev_source_dir: str | None = Field(
        default=None,
        description="`podtask dev` only, never in a cluster: the folder of this machine that "
        "its task modules are registered from (by absolute path). Pods of those tasks mount it "
        "read-only at the same path and start there, so a container imports the live source.",
    )
    termination_grace_seconds: int = Field(default=30, ge=0)
    retry_jitter_seed: int | None = Field(
        default=None, description="Seed the backoff's random part (tests want it repeatable)."
    )
    default_concurrency_limit: int = Field(
        default=10, ge=1, description="The limit of a queue that declares none: never unbounded."
    )

    # Pods that do not start: how long an attempt waits for its pod before it ends as a system
    # failure (Unschedulable, ImagePullFailed, ContainerConfigError) and is retried.
    pending_timeout_seconds: float = Field(
        default=600.0,
        ge=0,
        description="An attempt whose pod has not started this long after its creation ends; "
        "0 waits for ever (clusters that autoscale).",
    )
    image_pull_timeout_seconds: float = Field(
        default=120.0,
        ge=0,
        description="An attempt whose image keeps failing to pull this long after its pod was "
        "scheduled ends, before the pending timeout; 0: only the pending timeout applies.",
    )

    # Restart safety and HA: one active operator among replicas, elected on a Lease.
    leader_election: bool = Field(
        default=True, description="Wait for the Lease before acting; off only for a lone replica."
    )
    lease_name: str = Field(default="podtask-operator", min_length=1)
    lease_duration_seconds: int = Field(
        default=15, ge=1, description="How long a holder that stops renewing keeps the Lease."
    )
    lease_renew_seconds: float = Field(
        default=5.0, gt=0, description="How often the leader renews; a standby polls as often."
    )
    # Health: the endpoint serves from the start, as a standby too.
    health_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve GET /healthz here (unset: no endpoint)."
    )
    health_host: str = "0.0.0.0"
    watch_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Unhealthy when the leader saw no watch event for this long.",
    )
    # Housekeeping: what finished work stays in the cluster, and for how long.
    pod_retention_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="Finished pods stay this long (their logs stay readable through the API "
        "for the run retention: the copy the runner sent).",
    )
    run_retention_seconds: float = Field(
        default=7 * 24 * 3600.0, ge=0, description="Finished TaskRuns stay this long."
    )
    housekeeping_interval_seconds: float = Field(default=60.0, gt=0)
    batch_abandon_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A batch not committed this long after it was opened was given up: its "
        "runs (never started) are deleted. Longer than any client's retries of a batch.",
    )

    # Schedules: their ticks that passed while no operator led (down, restarting, a standby
    # taking over), or while it could not reach the cluster.
    missed_ticks: MissedTicks = Field(
        default=MissedTicks.RUN_LATEST,
        description="run-latest: the latest missed tick of a schedule runs, late, the others "
        "never; skip: none of them runs. Never a burst.",
    )

    @model_validator(mode="after")
    def _renewals_fit_in_the_lease(self) -> OperatorSettings:
        # The leader gives up after `lease_duration - lease_renew` without a renewal, so that it
        # stops before a standby may take over; that needs room for at least one retry.
        if self.lease_renew_seconds * 2 > self.lease_duration_seconds:
            raise ValueError(
                "PODTASK_LEASE_RENEW_SECONDS must be at most half of PODTASK_LEASE_DURATION_SECONDS"
            )
        return self
