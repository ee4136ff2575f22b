"""Tasks whose pods a real cluster cannot start, or holds back, for `test_real_cluster`."""

import time
from typing import Any

from podtask import Context, task


@task(id="too-big", machine="large-2x", retry={"max_attempts": 2, "min_timeout_ms": 200})
def too_big(payload: dict[str, Any], ctx: Context) -> None:
    """8 CPU / 16Gi: more than the one node (this machine) has."""


@task(id="elsewhere", retry={"max_attempts": 1})
def elsewhere(payload: dict[str, Any], ctx: Context) -> None:
    """Deployed in an image the node does not have (the test sets it)."""


@task(id="needs-config", retry={"max_attempts": 1})
def needs_config(payload: dict[str, Any], ctx: Context) -> None:
    """The cluster's policy gives its pods a Secret that does not exist (the test adds it)."""


@task(id="quota-bound", queue={"name": "quota-bound", "concurrency_limit": 10})
def quota_bound(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 2)))
    return {"i": payload.get("i")}
