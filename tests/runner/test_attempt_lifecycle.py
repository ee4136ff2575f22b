"""The order of an attempt's hooks and what each one raising does, with `execute_attempt`
called in-process (the subprocess tests in `test_runner_hooks` check the same end to end)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from declared_tasks import make_task
from pydantic import BaseModel

from podtask import Context, MachineContext
from podtask._authoring.context import current_context
from podtask.errors import AbortTaskRunError
from podtask.hooks import AttemptResult, TaskHooks
from podtask_runner.attempt import Succeeded, execute_attempt
from podtask_runner.interruptions import Interruptions

CTX = Context(
    run_id="run-1",
    attempt=1,
    task_id="t",
    queue="q",
    machine=MachineContext("micro", 0.25, 0.25),
    started_at=datetime(2024, 1, 1, tzinfo=UTC),
)
NO_GLOBALS = TaskHooks()


class Boom(Exception):
    pass


@dataclass
class Recorder:
    """Hooks that record `who:kind` in `calls`, and raise `Boom` where told to."""

    who: str = "task"
    calls: list[str] = field(default_factory=list)
    raise_in: set[str] = field(default_factory=set)

    def _note(self, kind: str, detail: str = "") -> None:
        self.calls.append(f"{self.who}:{kind}{detail}")
        if kind in self.raise_in:
            raise Boom(f"{self.who} {kind}")

    def hooks(self, *, asynchronous: bool = False) -> TaskHooks:
        def on_start(payload: Any, ctx: Context) -> None:
            self._note("on_start")

        def init(payload: Any, ctx: Context) -> str:
            self._note("init")
            return f"{self.who}-init"

        def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
            self._note("middleware-before")
            output = next()
            self._note("middleware-after")
            return output

        def on_success(payload: Any, output: Any, ctx: Context) -> None:
            self._note("on_success")

        def on_error(payload: Any, error: BaseException, ctx: Context) -> None:
            self._note("on_error", f"({error})")

        def on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None:
            self._note("on_complete", f"(ok={result.ok})")

        def cleanup(payload: Any, ctx: Context) -> None:
            self._note("cleanup")

        if not asynchronous:
            return TaskHooks(
                init=(init,),
                middleware=(middleware,),
                on_start=(on_start,),
                on_success=(on_success,),
                on_error=(on_error,),
                on_complete=(on_complete,),
                cleanup=(cleanup,),
            )

        def later(fn: Callable[..., Any]) -> Callable[..., Any]:
            async def hook(*args: Any) -> Any:
                await asyncio.sleep(0)
                return fn(*args)

            hook.__qualname__ = fn.__qualname__
            return hook

        async def async_middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
            self._note("middleware-before")
            output = await next()
            self._note("middleware-after")
            return output

        return TaskHooks(
            init=(later(init),),
            middleware=(async_middleware,),
            on_start=(later(on_start),),
            on_success=(later(on_success),),
            on_error=(later(on_error),),
            on_complete=(later(on_complete),),
            cleanup=(later(cleanup),),
        )

    def run(self, payload: Any, ctx: Context) -> Any:
        self._note("run")
        return {"payload": payload, "init": ctx.init}

    async def run_async(self, payload: Any, ctx: Context) -> Any:
        await asyncio.sleep(0)
        return self.run(payload, ctx)


SUCCESS = [
    "task:on_start",
    "task:init",
    "task:middleware-before",
    "task:run",
    "task:middleware-after",
    "task:on_success",
    "task:on_complete(ok=True)",
    "task:cleanup",
]


@pytest.mark.parametrize("hooks_async", [False, True], ids=["sync-hooks", "async-hooks"])
@pytest.mark.parametrize("run_async", [False, True], ids=["sync-run", "async-run"])
def test_order_of_a_successful_attempt(hooks_async: bool, run_async: bool) -> None:
    rec = Recorder()
    run = rec.run_async if run_async else rec.run
    outcome = execute_attempt(
        make_task(run, rec.hooks(asynchronous=hooks_async)), 7, CTX, global_hooks=NO_GLOBALS
    )
    assert outcome == Succeeded({"payload": 7, "init": "task-init"})
    assert rec.calls == SUCCESS


def test_on_start_runs_on_the_first_attempt_only() -> None:
    rec = Recorder()
    second = Context(**{**CTX.__dict__, "attempt": 2})
    execute_attempt(make_task(rec.run, rec.hooks()), None, second, global_hooks=NO_GLOBALS)
    assert rec.calls == SUCCESS[1:]


FAILED_TAIL = ["task:on_complete(ok=False)", "task:cleanup"]


@pytest.mark.parametrize(
    ("raising", "before"),
    [
        ("on_start", ["task:on_start"]),
        ("init", ["task:on_start", "task:init"]),
        ("middleware-before", ["task:on_start", "task:init", "task:middleware-before"]),
        ("run", ["task:on_start", "task:init", "task:middleware-before", "task:run"]),
        ("middleware-after", SUCCESS[:5]),
        ("on_success", SUCCESS[:6]),
    ],
)
@pytest.mark.parametrize("hooks_async", [False, True], ids=["sync", "async"])
def test_a_hook_raising_up_to_on_success_fails_the_attempt_with_its_error(
    raising: str, before: list[str], hooks_async: bool
) -> None:
    rec = Recorder(raise_in={raising})
    run = rec.run_async if hooks_async else rec.run
    outcome = execute_attempt(
        make_task(run, rec.hooks(asynchronous=hooks_async)), None, CTX, global_hooks=NO_GLOBALS
    )
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("Boom", f"task {raising}")
    assert rec.calls == [*before, f"task:on_error(task {raising})", *FAILED_TAIL]


@pytest.mark.parametrize("raising", ["on_error", "on_complete", "cleanup"])
@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_a_hook_after_the_outcome_raising_changes_nothing(
    raising: str, fails: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    rec = Recorder(raise_in={raising} | ({"run"} if fails else set()))
    global_rec = Recorder(who="global", calls=rec.calls)
    outcome = execute_attempt(
        make_task(rec.run, rec.hooks()), None, CTX, global_hooks=global_rec.hooks()
    )
    assert outcome.ok is not fails
    if fails:
        assert outcome.error is not None and outcome.error.message == "task run"
    after = [
        c for c in rec.calls if c.split(":")[1].startswith(("on_error", "on_complete", "cleanup"))
    ]
    expected = [
        *(["global:on_error(task run)", "task:on_error(task run)"] if fails else []),
        f"global:on_complete(ok={not fails})",
        f"task:on_complete(ok={not fails})",
        "task:cleanup",
        "global:cleanup",
    ]
    assert after == expected  # every later hook still ran
    if raising == "on_error" and not fails:
        assert "raised" not in capsys.readouterr().err  # on_error never ran
        return
    err = capsys.readouterr().err
    assert f"the {raising} hook Recorder.hooks.<locals>.{raising} of task 't' raised" in err
    assert "(the attempt's outcome stands)" in err
    assert "Traceback (most recent call last)" in err and f"Boom: task {raising}" in err


def test_global_hooks_run_around_the_tasks_own() -> None:
    rec = Recorder()
    global_rec = Recorder(who="global", calls=rec.calls)
    execute_attempt(make_task(rec.run, rec.hooks()), None, CTX, global_hooks=global_rec.hooks())
    assert rec.calls == [
        "global:on_start",
        "task:on_start",
        "global:init",
        "task:init",
        "global:middleware-before",
        "task:middleware-before",
        "task:run",
        "task:middleware-after",
        "global:middleware-after",
        "global:on_success",
        "task:on_success",
        "global:on_complete(ok=True)",
        "task:on_complete(ok=True)",
        "task:cleanup",
        "global:cleanup",
    ]


def test_init_output_is_ctx_init_from_init_on() -> None:
    seen: dict[str, Any] = {}

    def note(kind: str) -> Callable[..., None]:
        def hook(*args: Any) -> None:
            seen[kind] = args[-1].init

        return hook

    def global_init(payload: Any, ctx: Context) -> str:
        seen["global_init"] = ctx.init
        return "from-global"

    def task_init(payload: Any, ctx: Context) -> dict[str, str]:
        seen["task_init"] = ctx.init
        return {"client": "ready", "global": ctx.init}

    def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        seen["middleware"] = ctx.init
        return next()

    def run(payload: Any, ctx: Context) -> Any:
        return ctx.init

    hooks = TaskHooks(
        on_start=(note("on_start"),),
        init=(task_init,),
        middleware=(middleware,),
        on_success=(lambda p, o, ctx: seen.update(on_success=ctx.init),),
        on_complete=(lambda p, r, ctx: seen.update(on_complete=ctx.init),),
        cleanup=(note("cleanup"),),
    )
    outcome = execute_attempt(
        make_task(run, hooks), None, CTX, global_hooks=TaskHooks(init=(global_init,))
    )
    init = {"client": "ready", "global": "from-global"}
    assert outcome.output == init
    assert seen == {
        "on_start": None,
        "global_init": None,
        "task_init": "from-global",
        "middleware": init,
        "on_success": init,
        "on_complete": init,
        "cleanup": init,
    }


def test_middleware_can_change_the_output_or_skip_run() -> None:
    ran: list[str] = []

    def run(payload: Any, ctx: Context) -> int:
        ran.append("run")
        return 1

    def double(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return next() * 2

    def cached(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return "from cache" if payload == "cached" else next()

    task = make_task(run, TaskHooks(middleware=(cached, double)))
    assert execute_attempt(task, "fresh", CTX, global_hooks=NO_GLOBALS).output == 2
    assert execute_attempt(task, "cached", CTX, global_hooks=NO_GLOBALS).output == "from cache"
    assert ran == ["run"]


def test_async_middleware_wrapping_a_sync_run_and_the_reverse() -> None:
    async def async_layer(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return ["async", await next()]

    def sync_layer(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return ["sync", next()]

    async def async_run(payload: Any, ctx: Context) -> str:
        return "async run"

    def sync_run(payload: Any, ctx: Context) -> str:
        return "sync run"

    both = TaskHooks(middleware=(sync_layer, async_layer))
    assert execute_attempt(
        make_task(async_run, both), None, CTX, global_hooks=NO_GLOBALS
    ).output == [
        "sync",
        ["async", "async run"],
    ]
    outside_in = TaskHooks(middleware=(async_layer, sync_layer))
    outcome = execute_attempt(make_task(sync_run, outside_in), None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.output == ["async", ["sync", "sync run"]]


def test_a_forgotten_await_of_next_still_gives_the_output() -> None:
    async def forgetful(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return next()

    async def run(payload: Any, ctx: Context) -> str:
        return "done"

    task = make_task(run, TaskHooks(middleware=(forgetful,)))
    assert execute_attempt(task, None, CTX, global_hooks=NO_GLOBALS).output == "done"


def test_a_plain_middleware_between_async_code_is_a_clear_error() -> None:
    async def outer(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return await next()

    def plain(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        return next()

    async def run(payload: Any, ctx: Context) -> str:
        return "unreachable"

    task = make_task(run, TaskHooks(middleware=(plain,)))
    outcome = execute_attempt(task, None, CTX, global_hooks=TaskHooks(middleware=(outer,)))
    assert outcome.error is not None and outcome.error.type == "TaskDeclarationError"
    assert "middleware " in outcome.error.message and "plain" in outcome.error.message
    assert "make it async" in outcome.error.message


def test_one_event_loop_serves_the_whole_attempt() -> None:
    loops: list[asyncio.AbstractEventLoop] = []

    async def init(payload: Any, ctx: Context) -> None:
        loops.append(asyncio.get_running_loop())

    async def run(payload: Any, ctx: Context) -> None:
        loops.append(asyncio.get_running_loop())

    async def cleanup(payload: Any, ctx: Context) -> None:
        loops.append(asyncio.get_running_loop())

    hooks = TaskHooks(init=(init,), cleanup=(cleanup,))
    execute_attempt(make_task(run, hooks), None, CTX, global_hooks=NO_GLOBALS)
    assert len(loops) == 3 and loops[0] is loops[1] is loops[2]


def test_a_sync_run_may_use_asyncio_run_itself() -> None:
    async def fetch() -> str:
        return "fetched"

    def run(payload: Any, ctx: Context) -> str:
        return asyncio.run(fetch())

    async def init(payload: Any, ctx: Context) -> None:
        pass

    task = make_task(run, TaskHooks(init=(init,)))
    assert execute_attempt(task, None, CTX, global_hooks=NO_GLOBALS).output == "fetched"


def test_current_context_is_the_attempts_in_sync_and_async_code() -> None:
    seen: list[Any] = []

    def init(payload: Any, ctx: Context) -> str:
        return "ready"

    async def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
        seen.append(current_context())
        return await next()

    def run(payload: Any, ctx: Context) -> None:
        seen.append(current_context())

    task = make_task(run, TaskHooks(init=(init,), middleware=(middleware,)))
    execute_attempt(task, None, CTX, global_hooks=NO_GLOBALS)
    assert [(c.run_id, c.init) for c in seen] == [("run-1", "ready")] * 2
    assert current_context() is None


class Order(BaseModel):
    item: str
    quantity: int


def test_a_payload_model_is_validated_before_anything_else() -> None:
    rec = Recorder()
    payloads: list[Any] = []

    def run(payload: Order, ctx: Context) -> Order:
        payloads.append(payload)
        return payload

    def on_error(payload: Any, error: BaseException, ctx: Context) -> None:
        payloads.append(payload)
        rec.calls.append(f"on_error:{type(error).__name__}")

    hooks = TaskHooks(
        on_start=rec.hooks().on_start, on_error=(on_error,), cleanup=rec.hooks().cleanup
    )
    task = make_task(run, hooks)
    good = execute_attempt(task, {"item": "tea", "quantity": "2"}, CTX, global_hooks=NO_GLOBALS)
    assert good.output == {"item": "tea", "quantity": 2}  # a returned model is sent as JSON
    assert payloads == [Order(item="tea", quantity=2)]

    rec.calls.clear()
    payloads.clear()
    bad = execute_attempt(task, {"quantity": "lots"}, CTX, global_hooks=NO_GLOBALS)
    assert bad.error is not None and bad.error.type == "PayloadValidationError"
    assert bad.error.message == (
        "the payload of task 't' does not match Order: item: Field required; "
        "quantity: Input should be a valid integer, unable to parse string as an integer"
    )
    assert rec.calls == ["on_error:PayloadValidationError", "task:cleanup"]
    assert payloads == [{"quantity": "lots"}]  # on_error got the payload as it came

    not_an_object = execute_attempt(task, [1], CTX, global_hooks=NO_GLOBALS)
    assert not_an_object.error is not None
    assert "(the payload itself): Input should be a valid dictionary" in not_an_object.error.message


def test_output_that_is_not_json_fails_before_on_success() -> None:
    rec = Recorder()
    task = make_task(lambda payload, ctx: {1, 2}, rec.hooks())
    outcome = execute_attempt(task, None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.error is not None and outcome.error.type == "OutputNotSerializableError"
    assert "task:on_success" not in rec.calls
    assert rec.calls[-3:] == [
        "task:on_error(the output of task 't' is not JSON a run can hold: output: a value of "
        "type set is not JSON; return dicts, lists, strings, numbers, booleans or None)",
        *FAILED_TAIL,
    ]


def test_abort_keeps_its_type_and_runs_the_failure_hooks() -> None:
    rec = Recorder()

    def run(payload: Any, ctx: Context) -> None:
        raise AbortTaskRunError("give up")

    outcome = execute_attempt(make_task(run, rec.hooks()), None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.error is not None and outcome.error.type == "AbortTaskRunError"
    assert rec.calls[-3:] == ["task:on_error(give up)", *FAILED_TAIL]


def test_sigterm_interrupts_a_sync_run_and_cleanup_still_runs() -> None:
    rec = Recorder()

    def run(payload: Any, ctx: Context) -> None:
        rec.calls.append("run")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        rec.calls.append("not interrupted")

    interruptions = Interruptions()
    with interruptions.installed():
        outcome = execute_attempt(
            make_task(run, rec.hooks()),
            None,
            CTX,
            global_hooks=NO_GLOBALS,
            interruptions=interruptions,
        )
    assert interruptions.terminated
    assert outcome.error is not None and outcome.error.type == "TaskTerminatedError"
    assert "in run" in (outcome.error.stack or "")  # the traceback shows where it stopped
    assert "not interrupted" not in rec.calls
    assert rec.calls[-3:] == [f"task:on_error({outcome.error.message})", *FAILED_TAIL]


def test_sigterm_cancels_an_async_run_waiting_on_the_loop() -> None:
    rec = Recorder()
    cancelled: list[str] = []

    async def run(payload: Any, ctx: Context) -> None:
        # From another thread, so that it arrives while the loop waits in select().
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append("run saw CancelledError")
            raise

    outcome = execute_attempt(make_task(run, rec.hooks()), None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.error is not None and outcome.error.type == "TaskTerminatedError"
    assert cancelled == ["run saw CancelledError"]
    assert "in run" in (outcome.error.stack or "")
    assert rec.calls[-2:] == FAILED_TAIL


def test_sigterm_while_an_async_run_computes_raises_in_it() -> None:
    reached: list[str] = []

    async def run(payload: Any, ctx: Context) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # handled at once, inside this coroutine
        reached.append("after the signal")

    outcome = execute_attempt(make_task(run), None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.error is not None and outcome.error.type == "TaskTerminatedError"
    assert reached == []


def test_a_swallowed_sigterm_still_fails_the_attempt() -> None:
    def run(payload: Any, ctx: Context) -> str:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException:
            pass
        return "carried on"

    outcome = execute_attempt(make_task(run), None, CTX, global_hooks=NO_GLOBALS)
    assert outcome.error is not None and outcome.error.type == "TaskTerminatedError"


def test_sigterm_during_cleanup_interrupts_nothing() -> None:
    finished: list[str] = []

    def cleanup(payload: Any, ctx: Context) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        finished.append("cleanup")

    interruptions = Interruptions()
    with interruptions.installed():
        outcome = execute_attempt(
            make_task(lambda p, ctx: "ok", TaskHooks(cleanup=(cleanup,))),
            None,
            CTX,
            global_hooks=NO_GLOBALS,
            interruptions=interruptions,
        )
    assert outcome == Succeeded("ok")
    assert finished == ["cleanup"]
    assert interruptions.terminated  # the runner still exits 143


@pytest.mark.parametrize("run_async", [False, True], ids=["sync", "async"])
def test_max_duration_covers_the_hooks_and_cleanup_still_runs(run_async: bool) -> None:
    rec = Recorder()
    # The run goes on until the test lets it (at most a minute): the attempt can only have
    # ended before that at its deadline.
    release = threading.Event()

    def slow_init(payload: Any, ctx: Context) -> None:
        time.sleep(0.1)

    async def slow_async_run(payload: Any, ctx: Context) -> None:
        await asyncio.sleep(60)
        rec.calls.append("run:ended")

    def slow_run(payload: Any, ctx: Context) -> None:
        release.wait(60)
        rec.calls.append("run:ended")

    hooks = TaskHooks(init=(slow_init,), cleanup=rec.hooks().cleanup)
    try:
        outcome = execute_attempt(
            make_task(slow_async_run if run_async else slow_run, hooks),
            None,
            CTX,
            global_hooks=NO_GLOBALS,
            max_duration_seconds=0.3,
        )
        assert outcome.error is not None and outcome.error.type == "MaxDurationExceededError"
        assert rec.calls == ["task:cleanup"]  # the run had not ended: the deadline ended it
    finally:
        release.set()


def test_a_hanging_hook_after_the_deadline_gets_a_grace_period_then_the_next_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rec = Recorder()
    release = threading.Event()

    def hanging_on_error(payload: Any, error: BaseException, ctx: Context) -> None:
        release.wait(60)
        rec.calls.append("on_error:ended")

    def run(payload: Any, ctx: Context) -> None:
        release.wait(60)
        rec.calls.append("run:ended")

    hooks = TaskHooks(on_error=(hanging_on_error,), cleanup=rec.hooks().cleanup)
    try:
        outcome = execute_attempt(
            make_task(run, hooks),
            None,
            CTX,
            global_hooks=NO_GLOBALS,
            max_duration_seconds=0.2,
            after_hook_grace_seconds=0.2,
        )
        assert outcome.error is not None and outcome.error.type == "MaxDurationExceededError"
        # Cleanup ran while on_error still hung: its grace ended, nothing waited for it.
        assert rec.calls == ["task:cleanup"]
    finally:
        release.set()
    assert "on_error hook" in capsys.readouterr().err
