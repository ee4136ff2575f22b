"""Global hooks for every task of `runner_hook_tasks`: each prints `event global <hook>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podtask import Context, hooks
from podtask.hooks import AttemptResult


def event(what: str) -> None:
    print(f"event global {what}", flush=True)


@hooks.on_start
def on_start(payload: Any, ctx: Context) -> None:
    event("on_start")


@hooks.init
def init(payload: Any, ctx: Context) -> str:
    event("init")
    return "global-init"


@hooks.middleware
def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
    event("middleware before")
    try:
        return next()
    finally:
        event("middleware after")


@hooks.on_success
def on_success(payload: Any, output: Any, ctx: Context) -> None:
    event("on_success")


@hooks.on_failure
def on_failure(payload: Any, error: BaseException, ctx: Context) -> None:
    event(f"on_error {type(error).__name__}")


@hooks.on_complete
def on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None:
    event(f"on_complete ok={result.ok}")


@hooks.cleanup
def cleanup(payload: Any, ctx: Context) -> None:
    event("cleanup")
