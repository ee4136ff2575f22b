"""Global hooks: registering them, and the order they take around a task's own."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from podtask import Context, TaskDeclarationError, hooks
from podtask.hooks import (
    AttemptResult,
    TaskHooks,
    attempt_hooks,
    is_async_callable,
    registered_global_hooks,
)


@pytest.fixture(autouse=True)
def no_global_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "_registered", TaskHooks())


def test_each_decorator_registers_its_kind_and_returns_the_function() -> None:
    @hooks.on_start
    def start(payload: Any, ctx: Context) -> None: ...

    @hooks.init
    def setup(payload: Any, ctx: Context) -> str:
        return "x"

    @hooks.middleware
    async def around(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return await next()

    @hooks.on_success
    def success(payload: Any, output: Any, ctx: Context) -> None: ...

    @hooks.on_error
    def error(payload: Any, error: BaseException, ctx: Context) -> None: ...

    @hooks.on_failure
    def failure(payload: Any, error: BaseException, ctx: Context) -> None: ...

    @hooks.on_complete
    def complete(payload: Any, result: AttemptResult, ctx: Context) -> None: ...

    @hooks.cleanup
    def teardown(payload: Any, ctx: Context) -> None: ...

    assert registered_global_hooks() == TaskHooks(
        init=(setup,),
        middleware=(around,),
        on_start=(start,),
        on_success=(success,),
        on_error=(error, failure),
        on_complete=(complete,),
        cleanup=(teardown,),
    )
    assert callable(start) and is_async_callable(around)


def test_registering_the_same_function_twice_keeps_one() -> None:
    def start(payload: Any, ctx: Context) -> None: ...

    hooks.on_start(start)
    hooks.on_start(start)
    assert registered_global_hooks().on_start == (start,)


@pytest.mark.parametrize(
    ("register", "expected"),
    [
        (hooks.on_start, "global on_start hook must take (payload, ctx); bad(payload) does not"),
        (hooks.middleware, "global middleware hook must take (payload, ctx, next); bad(payload)"),
        (hooks.on_complete, "global on_complete hook must take (payload, result, ctx)"),
    ],
)
def test_a_global_hook_with_the_wrong_parameters(
    register: Callable[[Any], Any], expected: str
) -> None:
    def bad(payload: Any) -> None: ...

    with pytest.raises(TaskDeclarationError, match=re.escape(expected)):
        register(bad)
    assert not registered_global_hooks()


def test_a_global_hook_that_is_not_callable() -> None:
    with pytest.raises(TaskDeclarationError, match="global cleanup hook must be a function taking"):
        hooks.cleanup(42)


def test_attempt_hooks_put_global_ones_around_the_tasks_own() -> None:
    def named(name: str) -> Callable[..., None]:
        def hook(*args: Any) -> None: ...

        hook.__name__ = name
        return hook

    g1, g2, own = named("g1"), named("g2"), named("own")
    global_hooks = TaskHooks(
        init=(g1, g2),
        middleware=(g1, g2),
        on_start=(g1, g2),
        on_success=(g1, g2),
        on_error=(g1, g2),
        on_complete=(g1, g2),
        cleanup=(g1, g2),
    )
    task_hooks = TaskHooks(
        init=(own,),
        middleware=(own,),
        on_start=(own,),
        on_success=(own,),
        on_error=(own,),
        on_complete=(own,),
        cleanup=(own,),
    )
    combined = attempt_hooks(global_hooks, task_hooks)
    for kind, order in combined.kinds().items():
        names = [fn.__name__ for fn in order]
        # Cleanup unwinds: the task's own first, then the global ones, last registered first.
        assert names == (["own", "g2", "g1"] if kind == "cleanup" else ["g1", "g2", "own"]), kind
