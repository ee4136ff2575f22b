"""A task's waits and its queue slot: while its attempt waits (on runs it triggered, or for a
time) the run gives its slot back, and takes one again before the task goes on.

Inside a task pod the client holds its attempt's token. `released_slot` brackets a wait: the
first wait of the process to begin says through the API that the attempt waits (`POST
.../wait`; the operator gives the slot back), the last to end asks to go on (`POST
.../wait/resume`) and polls until the operator has admitted the run again (`GET .../wait` is
`Resumed`). Waits that overlap (threads, `asyncio.gather`) share one. Outside a task (an API
key, no token, no client at all) it only tells the observer.

A wait the API cannot record (it does not know waits, or stays away) is waited holding the
slot, as before: a wait never fails for that. Once recorded, the task goes on only with a
slot; an attempt that is being stopped (SIGTERM) asks to go on once and does not wait for it.

The runner watches waits (`observed_by`): while its attempt waits (in a pod or, with
`--local`, without an API), maxDuration's clock stops.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

from podtask._client.api_calls import ApiCall, poll_delay
from podtask._client.client_config import (
    ClientConfig,
    PodtaskApiError,
    PodtaskConnectionError,
    is_passing_trouble,
)
from podtask._client.wait_observers import observed_end, observed_start, stopping
from podtask._contract.limits import MAX_WAIT_RUNS_SHOWN
from podtask._contract.resources import format_timestamp
from podtask._contract.wire import RUNNER_ATTEMPT_PATH
from podtask._control.attempt_tokens import named_attempt

RESUMED = "Resumed"
# Tries to record a wait before the task waits holding its slot (about ten seconds).
BEGIN_TRIES = 8
# What a wait may meet while the operator catches up: an attempt not recorded yet, a
# previous wait of the attempt still resuming. Worth another try, like a passing trouble.
_TRY_AGAIN_STATUSES = frozenset({409})

Send = Callable[[ApiCall[Any]], Any]


def _wait_path(run_id: str, attempt: int) -> str:
    return RUNNER_ATTEMPT_PATH.format(run_id=run_id, attempt=attempt) + "/wait"


def _state(answer: Any) -> str:
    return str(answer.get("state")) if isinstance(answer, dict) else ""


def begin_call(
    run_id: str, attempt: int, runs: Sequence[str], until: datetime | None
) -> ApiCall[str]:
    """`POST .../wait`: the runs awaited (the first of them, and how many), or a time."""
    body: dict[str, Any] = {}
    if until is not None:
        body["until"] = format_timestamp(until)
    else:
        body = {"runs": list(runs[:MAX_WAIT_RUNS_SHOWN]), "runCount": len(runs)}
    return ApiCall("POST", _wait_path(run_id, attempt), _state, body)


def resume_call(run_id: str, attempt: int) -> ApiCall[str]:
    return ApiCall("POST", _wait_path(run_id, attempt) + "/resume", _state)


def state_call(run_id: str, attempt: int) -> ApiCall[str]:
    return ApiCall("GET", _wait_path(run_id, attempt), _state)


def _worth_another_try(exc: PodtaskConnectionError | PodtaskApiError) -> bool:
    if is_passing_trouble(exc):
        return True
    return isinstance(exc, PodtaskApiError) and exc.status in _TRY_AGAIN_STATUSES


def _say(message: str) -> None:
    print(f"[podtask] {message}", file=sys.stderr)


class AttemptWaits:
    """The waits of one attempt in this process: the first to begin releases the slot, the
    last to end takes one again. Beginning and ending hold a lock, API calls included."""

    def __init__(self, run_id: str, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self._lock = threading.Lock()
        self._open = 0
        self._recorded = False

    def begin(self, send: Send, runs: Sequence[str], until: datetime | None) -> None:
        """A wait begins: the first gives the run's slot back."""
        with self._lock:
            self._open += 1
            if self._open == 1:
                call = begin_call(self.run_id, self.attempt, runs, until)
                self._recorded = self._record(send, call)

    def _record(self, send: Send, call: ApiCall[str]) -> bool:
        for tries in range(1, BEGIN_TRIES + 1):
            try:
                send(call)
                return True
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                if tries == BEGIN_TRIES or not _worth_another_try(exc):
                    _say(f"this wait keeps its queue slot: the API did not record it ({exc})")
                    return False
            time.sleep(poll_delay(tries))
        return False

    def end(self, send: Send, *, hurried: bool) -> None:
        """A wait ends: the last asks to go on, and returns once the run holds a slot again
        (`hurried`: once asked, for an attempt that is being stopped)."""
        with self._lock:
            self._open -= 1
            if self._open > 0 or not self._recorded:
                return
            self._recorded = False
            if hurried:
                # The attempt ends: its run's slot is settled with it, whatever this answers.
                with contextlib.suppress(PodtaskConnectionError, PodtaskApiError):
                    send(resume_call(self.run_id, self.attempt))
                return
            self._until_resumed(send)

    def _until_resumed(self, send: Send) -> None:
        """Ask to go on until asked, then poll until the run holds a slot again. An attempt
        that has ended (its run canceled, say) raises the API's 401."""
        asked, polls = False, 0
        while True:
            try:
                if not asked:
                    state = send(resume_call(self.run_id, self.attempt))
                    asked = True
                else:
                    state = send(state_call(self.run_id, self.attempt))
                if state == RESUMED:
                    return
            except (PodtaskConnectionError, PodtaskApiError) as exc:
                if not _worth_another_try(exc):
                    raise
            if asked and stopping():
                return  # stopped meanwhile (SIGTERM): the attempt ends, it goes on no more
            time.sleep(poll_delay(polls))
            polls += 1


_attempts: dict[tuple[str, int], AttemptWaits] = {}
_attempts_lock = threading.Lock()


def attempt_waits(config: ClientConfig | None) -> AttemptWaits | None:
    """The waits of the attempt whose token `config` holds; None outside a task."""
    if config is None or config.attempt_token is None or config.api_key is not None:
        return None
    named = named_attempt(config.attempt_token)
    if named is None:
        return None
    with _attempts_lock:
        return _attempts.setdefault(named, AttemptWaits(*named))


def _stopping(exc: BaseException | None) -> bool:
    """Whether a wait that ended with `exc` ends because its attempt is being stopped."""
    if stopping():
        return True
    # TaskTerminatedError, MaxDurationExceededError, KeyboardInterrupt, SystemExit; not the
    # cancellation of an asyncio task (there is none where asyncio was never imported).
    asyncio = sys.modules.get("asyncio")
    cancelled = () if asyncio is None else (asyncio.CancelledError,)
    return exc is not None and not isinstance(exc, (Exception, *cancelled))


@contextmanager
def released_slot(
    config: ClientConfig | None,
    send: Send,
    *,
    runs: Sequence[str] = (),
    until: datetime | None = None,
) -> Iterator[None]:
    """The block is a wait of the task (for `runs`, or `until` a time): its run holds no slot
    of its queue meanwhile (when `config` is a task's), and holds one again when the block
    is left."""
    waits = attempt_waits(config)
    observed_start()
    try:
        if waits is not None:
            waits.begin(send, runs, until)
        ended: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            ended = exc
            raise
        finally:
            if waits is not None:
                waits.end(send, hurried=_stopping(ended))
    finally:
        observed_end()


@asynccontextmanager
async def released_slot_async(
    config: ClientConfig | None,
    send: Send,
    *,
    runs: Sequence[str] = (),
    until: datetime | None = None,
) -> AsyncIterator[None]:
    """`released_slot` for async code: its API calls run in a thread (with the blocking
    `send`), so that the event loop goes on meanwhile."""
    import asyncio  # running: it is imported

    waits = attempt_waits(config)
    observed_start()
    try:
        if waits is not None:
            await asyncio.to_thread(waits.begin, send, runs, until)
        ended: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            ended = exc
            raise
        finally:
            if waits is not None:
                await asyncio.to_thread(waits.end, send, hurried=_stopping(ended))
    finally:
        observed_end()


def unsent(call: ApiCall[Any]) -> Any:
    """The `send` of a wait without a client: outside a task nothing is sent."""
    raise AssertionError(f"a wait outside a task sent {call.method} {call.path}")
