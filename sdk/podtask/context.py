"""`Context`: what a running task knows about its run, attempt and machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MachineContext:
    name: str
    cpu: float
    memory_gb: float


@dataclass(frozen=True)
class Context:
    run_id: str
    attempt: int
    task_id: str
    queue: str
    machine: MachineContext
    started_at: datetime
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    concurrency_key: str | None = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    is_test: bool = False
