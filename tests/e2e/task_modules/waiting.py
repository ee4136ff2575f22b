"""Tasks that wait on runs in their own limited queue, and for a time: what deadlocked
before waits gave their queue slot back (issue 13)."""

import time
from typing import Any

from podtask import Context, idempotency_keys, queue, task, wait
from podtask.client import get_run

solo = queue("solo", concurrency_limit=1)
pair = queue("pair", concurrency_limit=2)


@task(id="solo-child", queue=solo, retry={"max_attempts": 1})
def solo_child(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"doubled": payload["n"] * 2, "parent": ctx.parent_run_id}


@task(id="solo-parent", queue=solo, retry={"max_attempts": 1})
def solo_parent(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Waits on a child of its own queue of one: the child needs the parent's slot."""
    result = solo_child.trigger_and_wait(
        {"n": payload.get("n", 21), "seconds": payload.get("seconds", 0)}
    )
    return {"child": result.unwrap(), "childRunId": result.id}


@task(id="pair-child", queue=pair, retry={"max_attempts": 1})
def pair_child(payload: dict[str, Any], ctx: Context) -> int:
    time.sleep(float(payload.get("seconds", 0)))
    return int(payload["i"])


@task(id="pair-parent", queue=pair, retry={"max_attempts": 1})
def pair_parent(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Waits on a batch of children on its own queue of two."""
    count = int(payload.get("count", 20))
    results = pair_child.batch_trigger_and_wait([{"i": i} for i in range(count)])
    return {"children": [r.unwrap() for r in results]}


@task(id="kept-child", retry={"max_attempts": 1})
def kept_child(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 2)))
    return {"made": payload["what"], "by": ctx.parent_run_id}


@task(id="retried-parent", retry={"max_attempts": 2, "min_timeout_ms": 100, "randomize": False})
def retried_parent(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Triggers its child with a run-scoped key; its first attempt fails once the child has
    started, and its retry triggers again with the same key: the same child answers."""
    key = idempotency_keys.create("the-child")  # scope "run": the same on every attempt
    if ctx.attempt == 1:
        handle = kept_child.trigger(
            {"what": "once", "seconds": payload.get("seconds", 2)}, idempotency_key=key
        )
        while get_run(handle.id)["status"] in ("Pending", "Queued"):
            time.sleep(0.1)
        raise RuntimeError(f"attempt 1 fails after child {handle.id} started")
    result = kept_child.trigger_and_wait({"what": "again"}, idempotency_key=key)
    return {"child": result.unwrap(), "childRunId": result.id, "attempt": ctx.attempt}


@task(id="pausing", queue=solo, max_duration=3, retry={"max_attempts": 1})
def pausing(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Waits longer than its maxDuration: waiting is not counted."""
    started = time.monotonic()
    wait.for_(seconds=float(payload.get("seconds", 5)))
    return {"waited": round(time.monotonic() - started, 1)}
