"""Tasks for the browser tests of the runs' pages (tests/dashboard/test_dashboard_runs.py,
test_dashboard_run.py): runs that take a while, fail, print as they go, wait to be canceled,
and report their progress through the run's metadata."""

import time
from typing import Any

from podtask import Context, metadata, task

QUEUE = {"name": "run-pages", "concurrency_limit": 10}


@task(id="runs-brief", queue=QUEUE)
def runs_brief(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Takes `seconds` (3 by default), then answers with its payload."""
    time.sleep(float(payload.get("seconds", 3)))
    return {"echo": payload, "isTest": ctx.is_test}


@task(id="runs-failing", queue=QUEUE, retry={"max_attempts": 2, "min_timeout_ms": 500})
def runs_failing(payload: dict[str, Any], ctx: Context) -> None:
    """Fails every attempt, with a traceback."""
    print(f"attempt {ctx.attempt} starts", flush=True)
    raise ValueError(f"attempt {ctx.attempt} failed on purpose")


@task(
    id="runs-flaky",
    queue=QUEUE,
    retry={"max_attempts": 3, "min_timeout_ms": 1500, "randomize": False},
)
def runs_flaky(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Fails its first attempt and completes the second, printing as it goes."""
    for step in range(3):
        print(f"attempt {ctx.attempt}: step {step + 1} of 3", flush=True)
        time.sleep(0.4)
    if ctx.attempt == 1:
        raise ConnectionError("the upstream service did not answer (it will, next time)")
    return {"rows": 1280, "attempt": ctx.attempt}


@task(id="runs-logging", queue=QUEUE)
def runs_logging(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    """Prints `lines` lines (12 by default), one every `every` seconds (0.7)."""
    lines = int(payload.get("lines", 12))
    for number in range(1, lines + 1):
        print(f"log line {number} of {lines}", flush=True)
        time.sleep(float(payload.get("every", 0.7)))
    return {"lines": lines}


@task(id="runs-sleeping", queue=QUEUE, max_duration=600)
def runs_sleeping(payload: dict[str, Any], ctx: Context) -> None:
    """Runs until canceled (or 5 minutes)."""
    print("sleeping until canceled", flush=True)
    time.sleep(300)


@task(id="runs-progress", queue=QUEUE)
def runs_progress(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    """Reports `metadata.progress` from 0 to 1 in `steps` steps (6), `every` seconds (1.5)."""
    steps = int(payload.get("steps", 6))
    for step in range(steps + 1):
        metadata.set("progress", step / steps).set("step", f"{step} of {steps}")
        time.sleep(float(payload.get("every", 1.5)))
    return {"steps": steps}
