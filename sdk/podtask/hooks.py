"""Lifecycle hooks: the code a task, or every task, runs around its `run`.

A task declares its own with `@task(..., init=..., on_success=...)`; the decorators
in this module register hooks for every task of the process:

    from podtask import hooks

    @hooks.on_error
    def alert(payload, error, ctx):
        ...

Signatures (every hook may be a plain function or an `async def`):

    init(payload, ctx) -> Any
        Runs before `run`. What it returns is `ctx.init` for everything after it.
    middleware(payload, ctx, next) -> Any
        Wraps `run`. `next()` (`await next()` in an async middleware) runs the rest of
        the chain (inner middleware, then `run`) and returns its output. What the
        middleware returns is the output; return what `next()` returned to keep it.
        Code before `next()` runs before `run`, code after it runs after `run`.
    on_start(payload, ctx)
        Before `init`, on the first attempt of a run only.
    on_success(payload, output, ctx)
        After `run` returned and its output was checked to be JSON.
    on_error(payload, error, ctx)
        After every failed attempt; `error` is the exception. `on_failure` is the same hook.
    on_complete(payload, result, ctx)
        After every attempt; `result` is an `AttemptResult` (`ok`, `output`, `error`).
    cleanup(payload, ctx)
        Last, after every attempt: after a failure and after SIGTERM too.

`payload` is the payload model instance when `run` annotates its payload with a
pydantic model, else the JSON payload as it came.

Global hooks run before the task's own; global middleware wraps outside the task's.
Cleanup runs the other way round (the task's own first, then the global ones, the
last registered first), so what a global `init` set up is still there for the task's
`cleanup`. The order within an attempt, and what happens when a hook raises, is
written down in `podtask_runner.attempt`, which runs them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from podtask._authoring.context import Context
from podtask.errors import TaskDeclarationError

InitHook = Callable[[Any, Context], Any]
StartHook = Callable[[Any, Context], Any]
SuccessHook = Callable[[Any, Any, Context], Any]
ErrorHook = Callable[[Any, BaseException, Context], Any]
CompleteHook = Callable[[Any, "AttemptResult", Context], Any]
CleanupHook = Callable[[Any, Context], Any]
Middleware = Callable[[Any, Context, Callable[[], Any]], Any]

# What each kind of hook is called with: the declaration checks a hook can take them.
HOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "init": ("payload", "ctx"),
    "middleware": ("payload", "ctx", "next"),
    "on_start": ("payload", "ctx"),
    "on_success": ("payload", "output", "ctx"),
    "on_error": ("payload", "error", "ctx"),
    "on_complete": ("payload", "result", "ctx"),
    "cleanup": ("payload", "ctx"),
}


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended, as `on_complete` sees it: the output, or the error."""

    ok: bool
    output: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class TaskHooks:
    """The hooks of one task, or the global ones, in the order they run.

    Middleware goes outermost first. Each kind is a tuple because global hooks can be
    registered any number of times; a task's own declaration gives at most one of each
    kind, except middleware, of which it may give a list.
    """

    init: tuple[InitHook, ...] = ()
    middleware: tuple[Middleware, ...] = ()
    on_start: tuple[StartHook, ...] = ()
    on_success: tuple[SuccessHook, ...] = ()
    on_error: tuple[ErrorHook, ...] = ()
    on_complete: tuple[CompleteHook, ...] = ()
    cleanup: tuple[CleanupHook, ...] = ()

    def kinds(self) -> dict[str, tuple[Callable[..., Any], ...]]:
        """Every kind with its hooks: `{"init": (...), "middleware": (...), ...}`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __bool__(self) -> bool:
        return any(self.kinds().values())


def attempt_hooks(global_hooks: TaskHooks, own: TaskHooks) -> TaskHooks:
    """The hooks one attempt runs, each kind in running order: global ones around the task's."""
    return TaskHooks(
        init=global_hooks.init + own.init,
        middleware=global_hooks.middleware + own.middleware,
        on_start=global_hooks.on_start + own.on_start,
        on_success=global_hooks.on_success + own.on_success,
        on_error=global_hooks.on_error + own.on_error,
        on_complete=global_hooks.on_complete + own.on_complete,
        cleanup=own.cleanup + global_hooks.cleanup[::-1],
    )


def hook_name(fn: Callable[..., Any]) -> str:
    """How a hook is named in messages: its qualified name, or its repr if it has none."""
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """An `async def` function, or an object whose `__call__` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 -- the method itself is what is inspected
    )


def signature_problem(fn: object, parameters: tuple[str, ...]) -> str | None:
    """Why `fn` cannot be called with `parameters` positionally, or None if it can.

    Builtins and C functions without a readable signature get the benefit of the doubt.
    """
    wanted = f"({', '.join(parameters)})"
    if not callable(fn):
        return f"must be a function taking {wanted}, got {type(fn).__name__} {fn!r}"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*parameters)
    except TypeError:
        return f"must take {wanted}; {_name_and_parameters(fn, signature)} does not"
    return None


def _name_and_parameters(fn: object, signature: inspect.Signature) -> str:
    # Only the names: annotations make the message long and tell nothing about the arity.
    bare = signature.replace(
        parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
        return_annotation=signature.empty,
    )
    return f"{getattr(fn, '__name__', type(fn).__name__)}{bare}"


H = TypeVar("H", bound=Callable[..., Any])

_registered = TaskHooks()


def registered_global_hooks() -> TaskHooks:
    """The hooks registered with this module's decorators so far, for every task."""
    return _registered


def _register(kind: str, fn: H) -> H:
    global _registered
    problem = signature_problem(fn, HOOK_PARAMETERS[kind])
    if problem is not None:
        raise TaskDeclarationError(f"global {kind} hook {problem}")
    existing: tuple[Callable[..., Any], ...] = getattr(_registered, kind)
    if fn not in existing:  # a module imported twice registers its hooks once
        _registered = replace(_registered, **{kind: (*existing, fn)})  # type: ignore[arg-type]
    return fn


def init(fn: H) -> H:
    """Register `fn(payload, ctx)` to run before every task's `run`; see the module docs."""
    return _register("init", fn)


def middleware(fn: H) -> H:
    """Register `fn(payload, ctx, next)` to wrap every task's `run`, outside its own middleware."""
    return _register("middleware", fn)


def on_start(fn: H) -> H:
    """Register `fn(payload, ctx)` for the first attempt of every run."""
    return _register("on_start", fn)


def on_success(fn: H) -> H:
    """Register `fn(payload, output, ctx)` for every attempt that succeeds."""
    return _register("on_success", fn)


def on_error(fn: H) -> H:
    """Register `fn(payload, error, ctx)` for every attempt that fails."""
    return _register("on_error", fn)


on_failure = on_error


def on_complete(fn: H) -> H:
    """Register `fn(payload, result, ctx)` for every attempt, however it ended."""
    return _register("on_complete", fn)


def cleanup(fn: H) -> H:
    """Register `fn(payload, ctx)` to run after every attempt, whatever happened."""
    return _register("cleanup", fn)
