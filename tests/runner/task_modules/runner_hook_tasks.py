"""Tasks with every hook, for the runner tests that run them in real runner processes.

Every hook prints `event <who> <hook>` on stdout, so a test reads the order from the
pod log as an operator would. The global hooks live in `runner_global_hooks`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import runner_global_hooks  # noqa: F401 -- registers the global hooks
from pydantic import BaseModel, Field

from podtask import AbortTaskRunError, Context, task
from podtask.hooks import AttemptResult


def event(what: str) -> None:
    print(f"event {what}", flush=True)


def on_start(payload: Any, ctx: Context) -> None:
    event(f"task on_start attempt={ctx.attempt} init={ctx.init!r}")


def init(payload: Any, ctx: Context) -> dict[str, Any]:
    event(f"task init global_init={ctx.init!r}")
    return {"db": "connected", "global": ctx.init}


def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
    event(f"task middleware before run={ctx.run_id}")
    output = next()
    event("task middleware after")
    return {"wrapped": output}


def on_success(payload: Any, output: Any, ctx: Context) -> None:
    event(f"task on_success output={output!r}")


def on_error(payload: Any, error: BaseException, ctx: Context) -> None:
    event(f"task on_error {type(error).__name__}")


def on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None:
    error = None if result.error is None else type(result.error).__name__
    event(f"task on_complete ok={result.ok} error={error}")


def cleanup(payload: Any, ctx: Context) -> None:
    event(f"task cleanup init={ctx.init!r}")
    marker = payload.get("cleanup_marker") if isinstance(payload, dict) else None
    if marker:
        Path(marker).write_text(f"cleaned up attempt {ctx.attempt}")


HOOKS: dict[str, Any] = {
    "on_start": on_start,
    "init": init,
    "middleware": middleware,
    "on_success": on_success,
    "on_error": on_error,
    "on_complete": on_complete,
    "cleanup": cleanup,
}


@task(id="hooks-sync", **HOOKS)
def hooks_sync(payload: Any, ctx: Context) -> dict[str, Any]:
    event("task run")
    if payload.get("fail"):
        raise RuntimeError("run failed on purpose")
    if payload.get("abort"):
        raise AbortTaskRunError("nothing to retry")
    return {"init": ctx.init}


async def async_on_start(payload: Any, ctx: Context) -> None:
    await asyncio.sleep(0)
    event(f"task on_start attempt={ctx.attempt} init={ctx.init!r}")


async def async_init(payload: Any, ctx: Context) -> dict[str, Any]:
    await asyncio.sleep(0)
    event(f"task init global_init={ctx.init!r}")
    return {"db": "connected", "global": ctx.init}


async def async_middleware(payload: Any, ctx: Context, next: Callable[[], Awaitable[Any]]) -> Any:
    event(f"task middleware before run={ctx.run_id}")
    output = await next()
    event("task middleware after")
    return {"wrapped": output}


async def async_on_success(payload: Any, output: Any, ctx: Context) -> None:
    await asyncio.sleep(0)
    event(f"task on_success output={output!r}")


async def async_on_error(payload: Any, error: BaseException, ctx: Context) -> None:
    await asyncio.sleep(0)
    event(f"task on_error {type(error).__name__}")


async def async_on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None:
    await asyncio.sleep(0)
    error = None if result.error is None else type(result.error).__name__
    event(f"task on_complete ok={result.ok} error={error}")


async def async_cleanup(payload: Any, ctx: Context) -> None:
    await asyncio.sleep(0)
    cleanup(payload, ctx)


@task(
    id="hooks-async",
    on_start=async_on_start,
    init=async_init,
    middleware=async_middleware,
    on_success=async_on_success,
    on_error=async_on_error,
    on_complete=async_on_complete,
    cleanup=async_cleanup,
)
async def hooks_async(payload: Any, ctx: Context) -> dict[str, Any]:
    await asyncio.sleep(0)
    event("task run")
    if payload.get("fail"):
        raise RuntimeError("run failed on purpose")
    return {"init": ctx.init}


def _wait_to_be_stopped(payload: dict[str, Any]) -> None:
    Path(payload["started_marker"]).write_text("running")
    event("task run waiting for SIGTERM")


@task(id="hooks-sigterm-sync", cleanup=cleanup, on_error=on_error, on_complete=on_complete)
def sigterm_sync(payload: dict[str, Any], ctx: Context) -> None:
    _wait_to_be_stopped(payload)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
    event("task run was never stopped")


@task(
    id="hooks-sigterm-async",
    cleanup=async_cleanup,
    on_error=async_on_error,
    on_complete=async_on_complete,
)
async def sigterm_async(payload: dict[str, Any], ctx: Context) -> None:
    _wait_to_be_stopped(payload)
    await asyncio.sleep(30)
    event("task run was never stopped")


class Signup(BaseModel):
    email: str = Field(pattern=r".+@.+")
    age: int = Field(ge=0)
    plan: str = "free"


@task(id="hooks-payload-model", on_error=on_error, cleanup=cleanup)
def payload_model(payload: Signup, ctx: Context) -> dict[str, Any]:
    event(f"task run payload={type(payload).__name__}")
    return {"email": payload.email, "age": payload.age, "plan": payload.plan}


def broken_cleanup(payload: Any, ctx: Context) -> None:
    event("task cleanup raising")
    raise OSError("the temp dir is gone")


def broken_on_success(payload: Any, output: Any, ctx: Context) -> None:
    raise ValueError("could not notify")


@task(id="hooks-broken-cleanup", cleanup=broken_cleanup, on_complete=on_complete)
def broken_cleanup_task(payload: Any, ctx: Context) -> str:
    return "fine"


@task(id="hooks-broken-on-success", on_success=broken_on_success, on_error=on_error)
def broken_on_success_task(payload: Any, ctx: Context) -> str:
    return "fine"
