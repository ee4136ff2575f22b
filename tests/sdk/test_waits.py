"""`wait.for_` / `wait.until`, the client's released slot (`attempt_waits`) and scoped
idempotency keys: what they send and decide, with the API played by a list of answers."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from podtask import Context, MachineContext, client, idempotency_keys, wait
from podtask._authoring.context import running_in
from podtask._client import attempt_waits
from podtask._client.api_calls import ApiCall
from podtask._client.attempt_waits import AttemptWaits, released_slot
from podtask._client.client_config import ClientConfig, PodtaskApiError
from podtask._client.wait_observers import observed_by
from podtask._control.attempt_tokens import named_attempt, sign_attempt_token

TOKEN = sign_attempt_token(b"secret", "run-parent", 2, ttl_seconds=60)


class Api:
    """Answers the client's wait calls in turn; records them."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def send(self, call: ApiCall[Any]) -> Any:
        self.calls.append(f"{call.method} {call.path.rsplit('/wait', 1)[1] or '/'}")
        answer = self.answers.pop(0) if self.answers else {"state": "Resumed"}
        if isinstance(answer, Exception):
            raise answer
        return call.read(answer)


class Observer:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.stopping = False

    def wait_started(self) -> None:
        self.seen.append("started")

    def wait_ended(self) -> None:
        self.seen.append("ended")


@pytest.fixture
def observer() -> Iterator[Observer]:
    watching = Observer()
    with observed_by(watching):
        yield watching


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attempt_waits, "poll_delay", lambda n: 0.0)


def _config() -> ClientConfig:
    return ClientConfig(api_url="http://api", attempt_token=TOKEN)


def test_the_token_names_its_attempt() -> None:
    assert named_attempt(TOKEN) == ("run-parent", 2)
    assert named_attempt("pt_key_without_claims") is None


def test_a_wait_gives_the_slot_back_and_takes_one_again(observer: Observer) -> None:
    api = Api({"state": "Waiting"}, {"state": "Resuming"}, {"state": "Resuming"})
    with released_slot(_config(), api.send, runs=["run-a", "run-b"]):
        assert api.calls == ["POST /"]
    assert api.calls == ["POST /", "POST /resume", "GET /", "GET /"]
    assert observer.seen == ["started", "ended"]


def test_overlapping_waits_share_one_and_a_key_holder_does_not_wait(observer: Observer) -> None:
    api = Api()
    waits = AttemptWaits("run-o", 1)
    waits.begin(api.send, ["a"], None)
    waits.begin(api.send, ["b"], None)
    waits.end(api.send, hurried=False)
    assert api.calls == ["POST /"]
    waits.end(api.send, hurried=False)
    assert api.calls == ["POST /", "POST /resume"]

    keyed = ClientConfig(api_url="http://api", api_key="pt_key")
    with released_slot(keyed, api.send, runs=["a"]):
        pass
    assert api.calls == ["POST /", "POST /resume"]
    assert observer.seen == ["started", "ended"]  # a wait all the same: maxDuration stops


def test_a_wait_the_api_does_not_record_keeps_the_slot(capsys: pytest.CaptureFixture[str]) -> None:
    refused = PodtaskApiError(404, "not_found", "no such route")
    api = Api(refused)
    with released_slot(_config(), api.send, runs=["a"]):
        pass
    assert api.calls == ["POST /"]  # nothing to resume
    assert "keeps its queue slot" in capsys.readouterr().err


def test_passing_trouble_is_tried_again_and_an_ended_attempt_raises() -> None:
    not_yet = PodtaskApiError(409, "attempt_not_started", "try again")
    away = PodtaskApiError(503, "cluster_unavailable", "away")
    api = Api(not_yet, {"state": "Waiting"}, away, {"state": "Resuming"}, {"state": "Resumed"})
    with released_slot(_config(), api.send, until=datetime.now(UTC)):
        pass
    assert api.calls == ["POST /", "POST /", "POST /resume", "POST /resume", "GET /"]

    ended = PodtaskApiError(401, "attempt_ended", "the run finished as Canceled")
    api = Api({"state": "Waiting"}, ended)
    with pytest.raises(PodtaskApiError, match="Canceled"), released_slot(_config(), api.send):
        pass


def test_a_stopping_attempt_asks_once_and_does_not_wait(observer: Observer) -> None:
    api = Api({"state": "Waiting"}, PodtaskApiError(503, "x", "away"))
    observer.stopping = True
    with released_slot(_config(), api.send, runs=["a"]):
        pass
    assert api.calls == ["POST /", "POST /resume"]


def test_the_async_wait_does_the_same(observer: Observer) -> None:
    api = Api({"state": "Waiting"}, {"state": "Resumed"})

    async def waits() -> None:
        async with attempt_waits.released_slot_async(_config(), api.send, runs=["a"]):
            await asyncio.sleep(0)

    asyncio.run(waits())
    assert api.calls == ["POST /", "POST /resume"]
    assert observer.seen == ["started", "ended"]


def test_wait_for_outside_a_task_sleeps(observer: Observer, monkeypatch: Any) -> None:
    monkeypatch.delenv("PODTASK_API_URL", raising=False)
    monkeypatch.setattr(client, "_default", None)
    started = time.monotonic()
    wait.for_(seconds=0.05)
    asyncio.run(wait.for_async(seconds=0.05))
    assert time.monotonic() - started >= 0.1
    assert observer.seen == ["started", "ended", "started", "ended"]
    wait.until(datetime.now(UTC) - timedelta(seconds=1))  # past: at once
    with pytest.raises(ValueError, match="in the past"):
        wait.until(datetime.now(UTC) - timedelta(seconds=1), throw_if_in_the_past=True)
    with pytest.raises(ValueError, match="negative"):
        wait.for_(seconds=-1)


# --- idempotency keys ----------------------------------------------------------------------


def _sha(*parts: str) -> str:
    return hashlib.sha256("-".join(parts).encode()).hexdigest()


def test_idempotency_keys_are_scoped_to_the_run_by_default(monkeypatch: Any) -> None:
    monkeypatch.delenv("PODTASK_RUN_ID", raising=False)
    assert idempotency_keys.create("k") == _sha("k")  # outside a task: the key alone
    ctx = Context(
        run_id="run-p",
        attempt=3,
        task_id="t",
        queue="q",
        machine=MachineContext("micro", 0.25, 0.25),
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with running_in(ctx):
        assert idempotency_keys.create("k") == _sha("k", "run-p")
        assert idempotency_keys.create(["k", "v"], scope="run") == _sha("k", "v", "run-p")
        assert idempotency_keys.create("k", scope="attempt") == _sha("k", "run-p", "3")
        assert idempotency_keys.create("k", scope="global") == _sha("k")
        with pytest.raises(ValueError, match="scope"):
            idempotency_keys.create("k", scope="team")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="non-empty"):
            idempotency_keys.create("")
    # A thread of the task's own sees no context: the pod's environment names the run.
    monkeypatch.setenv("PODTASK_RUN_ID", "run-p")
    monkeypatch.setenv("PODTASK_ATTEMPT", "3")
    assert idempotency_keys.create("k") == _sha("k", "run-p")
