"""lifecycle-hooks: init, middleware, the lifecycle hooks and cleanup around one run.

The order within an attempt is: on_start (first attempt only) → init →
middleware (wrapping run) → run → on_success or on_error → on_complete → cleanup.
Each hook prints a line, so `kubectl logs <pod>` shows the order. The payload is
validated against `Greeting` before anything runs: `{"name": 42}` fails at once,
without retrying. Hooks for every task are registered with `podtask.hooks`.
"""

import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from podtask import AttemptResult, Context, task


class Greeting(BaseModel):
    name: str
    excited: bool = False


def on_start(payload: Greeting, ctx: Context) -> None:
    print(f"on_start: run {ctx.run_id} begins")


def open_connection(payload: Greeting, ctx: Context) -> dict[str, Any]:
    print("init: opening a connection")
    return {"connection": "db://example", "openedOnAttempt": ctx.attempt}


def timed(payload: Greeting, ctx: Context, next: Callable[[], Any]) -> Any:
    print("middleware: before run")
    started = time.perf_counter()
    output = next()
    print(f"middleware: after run ({time.perf_counter() - started:.3f}s)")
    return {**output, "wrappedBy": "timed"}


def on_success(payload: Greeting, output: Any, ctx: Context) -> None:
    print(f"on_success: {output['greeting']}")


def on_error(payload: Any, error: BaseException, ctx: Context) -> None:
    print(f"on_error: {type(error).__name__}: {error}")


def on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None:
    print(f"on_complete: ok={result.ok}")


def close_connection(payload: Any, ctx: Context) -> None:
    print("cleanup: closing the connection")


@task(
    id="lifecycle-hooks",
    retry={"max_attempts": 2, "min_timeout_ms": 100},
    init=open_connection,
    middleware=timed,
    on_start=on_start,
    on_success=on_success,
    on_error=on_error,
    on_complete=on_complete,
    cleanup=close_connection,
)
def lifecycle_hooks(payload: Greeting, ctx: Context) -> dict[str, Any]:
    print("run: greeting")
    greeting = f"hello {payload.name}" + ("!" if payload.excited else "")
    return {"greeting": greeting, "connection": ctx.init["connection"]}
