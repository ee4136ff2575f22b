"""Calling the task author's code, plain functions and `async def` alike, for one attempt.

Async calls share one event loop for the whole attempt, so that what an async `init`
opens (an HTTP client, a connection pool) can be used by `run` and closed by an async
`cleanup`. Plain functions are called directly in the main thread with no loop
running, so they may call `asyncio.run` themselves; the exception is a plain `run` or
middleware under an async middleware, which is called inside the running loop.

A middleware chain can mix both: an async middleware's `next` is a coroutine function,
a plain middleware's `next` a plain function that runs what it wraps to the end. The
one thing that cannot work is a plain middleware that wraps async code while an async
middleware outside it has the loop running (it would have to block the loop it runs
in); that is reported as a declaration error naming the middleware.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from podtask._authoring.context import Context, publish_context
from podtask.errors import TaskDeclarationError
from podtask.hooks import Middleware, hook_name, is_async_callable
from podtask_runner.interruptions import Interruptions

if TYPE_CHECKING:
    import asyncio


def _loop_running() -> bool:
    # No loop can run where asyncio was never imported (a plain task's pod imports none).
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _discard(awaitable: Awaitable[Any]) -> None:
    # A coroutine that will never be awaited is closed, so Python does not warn about it.
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


class AuthorCode:
    """One attempt's way of calling the author's functions, interruptibly."""

    def __init__(self, task_id: str, interruptions: Interruptions, ctx: Context) -> None:
        self._task_id = task_id
        # Made for the first awaitable: a task with no async code needs no loop, nor asyncio.
        self._loop: asyncio.Runner | None = None
        self._interruptions = interruptions
        self._ctx = ctx

    def close(self) -> None:
        """Close the attempt's loop, if some async code needed one."""
        if self._loop is not None:
            self._loop.close()

    def publish(self, ctx: Context) -> None:
        """`ctx` is the attempt's context from now on (after `init` filled `ctx.init` in)."""
        self._ctx = ctx
        publish_context(ctx)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call `fn(*args)` and, if it is async, run it to the end on the attempt's loop."""
        return self.settle(fn(*args))

    def settle(self, result: Any) -> Any:
        """What `result` comes to: awaited (again, if it gives an awaitable) until it is a
        value; then an interruption the code swallowed is raised all the same."""
        while inspect.isawaitable(result):
            result = self._running_loop().run(self._attached(result))
        self._interruptions.check()
        return result

    def _running_loop(self) -> asyncio.Runner:
        if self._loop is None:
            import asyncio

            self._loop = asyncio.Runner()
        return self._loop

    async def _attached(self, awaitable: Awaitable[Any]) -> Any:
        import asyncio

        self._interruptions.attach(asyncio.current_task())
        # The loop's asyncio context is its own: `current_context()` must hold there too.
        publish_context(self._ctx)
        try:
            self._interruptions.check()
        except BaseException:
            _discard(awaitable)
            self._interruptions.attach(None)
            raise
        try:
            return await awaitable
        finally:
            self._interruptions.attach(None)

    def through_middleware(
        self,
        middleware: Sequence[Middleware],
        run: Callable[[Any, Context], Any],
        payload: Any,
        ctx: Context,
    ) -> Any:
        """`run(payload, ctx)` inside the middleware chain, outermost first: its output."""
        return self.settle(self._layer(middleware, 0, run, payload, ctx))

    def _layer(
        self,
        middleware: Sequence[Middleware],
        depth: int,
        run: Callable[[Any, Context], Any],
        payload: Any,
        ctx: Context,
    ) -> Any:
        """Start the chain at `depth`: a value, or an awaitable when that layer is async."""
        if depth == len(middleware):
            return run(payload, ctx)
        layer = middleware[depth]
        if is_async_callable(layer):

            async def next_async() -> Any:
                result = self._layer(middleware, depth + 1, run, payload, ctx)
                while inspect.isawaitable(result):
                    result = await result
                return result

            return layer(payload, ctx, next_async)

        def next_plain() -> Any:
            result = self._layer(middleware, depth + 1, run, payload, ctx)
            if inspect.isawaitable(result) and _loop_running():
                _discard(result)
                raise TaskDeclarationError(
                    f"task {self._task_id!r}: middleware {hook_name(layer)} is a plain function "
                    "that wraps async code inside an async middleware; make it async "
                    "(`async def`, `await next()`)"
                )
            return self.settle(result)

        return layer(payload, ctx, next_plain)
