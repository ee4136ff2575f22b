"""The start-up benchmark's task: its first line prints a marker, so the time from spawning
the runner to that line is the runner's start-up (bench/runner_startup.py)."""

import time
from typing import Any

from podtask import Context, task

MARKER = "podtask-bench: the task's first line"


@task(id="first-line", retry={"max_attempts": 1})
def first_line(payload: Any, ctx: Context) -> None:
    # With the CPU time the runner's process has used so far: a figure the machine's load
    # does not stretch as it stretches the wall clock.
    print(f"{MARKER} cpu={time.process_time():.6f}", flush=True)
