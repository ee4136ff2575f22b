"""The benchmark's task: does nothing, so what is measured is podtask's own cost.

It returns when its process started, when this module was imported (the runner imports it
once it has fetched its attempt) and when the task began: the moments of a run no Kubernetes
object records, for the end-to-end benchmark's latency breakdown (`bench/run_stages.py`).
"""

import os
import time
from typing import Any

from podtask import Context, task

# The benchmark spawns the runner directly at this same concurrency, side by side.
CONCURRENCY = 8


def _process_started() -> float:
    """When this process started (wall clock, to the kernel's 10 ms tick)."""
    with open(f"/proc/{os.getpid()}/stat") as stat:
        started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as uptime:
        up = float(uptime.read().split()[0])
    return time.time() - up + started_ticks / os.sysconf("SC_CLK_TCK")


PROCESS_STARTED = _process_started()
IMPORTED = time.time()


@task(id="noop", retry={"max_attempts": 1}, queue={"concurrency_limit": CONCURRENCY})
def noop(payload: Any, ctx: Context) -> dict[str, Any]:
    return {
        "i": payload.get("i"),
        "process_started": PROCESS_STARTED,
        "imported": IMPORTED,
        "task_started": time.time(),
    }
