"""Tasks that keep a ledger of their own executions, in a file outside the stack.

Each attempt appends `start <run> <attempt> <pid> <time>` before its body's work and
`returned <run> <attempt> <pid> <time>` once the body is about to return: one short line
per event, with O_APPEND (atomic for lines this short) and fsync, so the ledger survives
whatever the test kills. The file is named by the payload's `ledger` field, else by
`PODTASK_LEDGER` in the environment.
"""

import os
import random
import time
from typing import Any

from podtask import Context, task

LEDGER_ENV = "PODTASK_LEDGER"


def record(path: str, event: str, ctx: Context) -> None:
    line = f"{event} {ctx.run_id} {ctx.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _body(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    path = str(payload.get("ledger") or os.environ[LEDGER_ENV])
    record(path, "start", ctx)
    low, high = payload.get("seconds", [1.0, 2.0])
    time.sleep(random.uniform(float(low), float(high)))
    record(path, "returned", ctx)
    return {"i": payload.get("i"), "attempt": ctx.attempt}


@task(
    id="ledger-once", queue={"name": "ledger", "concurrency_limit": 10}, retry={"max_attempts": 1}
)
def ledger_once(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """One attempt only: a run judged wrongly ends Crashed instead of hiding in a retry."""
    return _body(payload, ctx)


@task(
    id="ledger-retried",
    queue={"name": "ledger", "concurrency_limit": 10},
    retry={"max_attempts": 5, "min_timeout_ms": 200, "max_timeout_ms": 1000},
)
def ledger_retried(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Retried, for faults that kill attempts."""
    return _body(payload, ctx)


@task(
    id="ledger-oom-policy",
    queue={"name": "ledger", "concurrency_limit": 10},
    machine="small-1x",
    retry={"max_attempts": 3, "min_timeout_ms": 200, "out_of_memory": {"machine": "large-1x"}},
)
def ledger_oom_policy(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Moves to a bigger machine after running out of memory, and only then."""
    return {**_body(payload, ctx), "machine": ctx.machine.name}


@task(
    id="ledger-enduring",
    queue={"name": "ledger", "concurrency_limit": 10},
    retry={"max_attempts": 30, "min_timeout_ms": 200, "max_timeout_ms": 1000},
)
def ledger_enduring(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Retried for as long as a storm of faults lasts: a restart of the cluster (or of the
    whole `podtask dev`) ends every executing attempt, and such a run must still complete."""
    return _body(payload, ctx)
