"""A run's metadata as a task reads and changes it: `podtask.metadata` and `ctx.metadata`
(`RunMetadata`), each change checked before it counts, from any thread of the task."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from podtask import Context, MachineContext, metadata
from podtask._authoring.context import current_context, running_in
from podtask._authoring.run_metadata import RunMetadata
from podtask._contract.limits import MAX_RUN_METADATA_BYTES


def _context(initial: dict[str, Any] | None = None) -> Context:
    return Context(
        run_id="run-1",
        attempt=1,
        task_id="t",
        queue="q",
        machine=MachineContext("micro", 0.25, 0.25),
        started_at=datetime(2024, 5, 1, tzinfo=UTC),
        metadata=initial or {},
    )


def test_each_change_of_trigger_dev_and_what_it_leaves() -> None:
    run = RunMetadata({"user": "ada", "count": 1})
    run.set("progress", 0.5).increment("count").increment("count", 2.5).decrement("left", 3)
    run.append("log", "a").append("log", {"b": [1]}).append("user", "bob")
    run.append("log", "a").remove("log", "a").remove("count", 1).delete("gone")
    assert run.current() == {
        "user": ["ada", "bob"],  # a value that is not a list becomes the list's first item
        "count": 4.5,
        "progress": 0.5,
        "left": -3,
        "log": [{"b": [1]}],
    }
    run.delete("user")
    assert "user" not in run and len(run) == 4
    assert run.get("missing", "default") == "default"


def test_values_are_stored_as_json_and_read_as_copies() -> None:
    class Point(BaseModel):
        x: int

    run = RunMetadata()
    items = [1, 2]
    run.set("items", items).set("point", Point(x=1)).set("day", date(2024, 5, 1))
    run.set("pair", (1, 2))
    items.append(3)  # the caller's list is not the document's
    run["items"].append(4)  # nor is what was read
    assert run.current() == {
        "items": [1, 2],
        "point": {"x": 1},
        "day": "2024-05-01",
        "pair": [1, 2],
    }
    assert dict(run) == run.current()


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        (lambda m: m.set("x", float("nan")), ValueError, "metadata.x"),
        (lambda m: m.set("x", object()), TypeError, "cannot be sent as JSON"),
        (lambda m: m.set("x", 2**70), ValueError, "64 bits"),
        (lambda m: m.set(1, "x"), TypeError, "keys are strings"),
        (lambda m: m.increment("name"), TypeError, "not a number"),
        (lambda m: m.increment("count", "1"), TypeError, "by a number"),
        (lambda m: m.set("big", "x" * MAX_RUN_METADATA_BYTES), ValueError, "256 KiB"),
    ],
)
def test_a_change_the_run_cannot_hold_raises_and_changes_nothing(
    change: Any, error: type[Exception], words: str
) -> None:
    run = RunMetadata({"name": "ada", "count": 1})
    before = run.snapshot()
    with pytest.raises(error, match=words):
        change(run)
    assert run.snapshot() == before


def test_the_version_grows_with_each_change_that_changes_something() -> None:
    run = RunMetadata({"a": 1})
    assert run.snapshot() == (0, '{"a":1}')
    run.set("a", 1).remove("a", 1).delete("b")
    assert run.snapshot()[0] == 0
    run.set("a", 2)
    assert run.snapshot() == (1, '{"a":2}')


def test_changes_from_many_threads_at_once_are_all_kept() -> None:
    run = RunMetadata()
    seen: list[int] = []
    run.watch(lambda: seen.append(1), lambda: None)

    def work() -> None:
        for _ in range(200):
            run.increment("count")
            run.append("items", 1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert run["count"] == 1600 and len(run["items"]) == 1600
    assert run.snapshot()[0] == 3200 == len(seen)


def test_podtask_metadata_is_ctx_metadata_in_the_task_and_its_threads() -> None:
    ctx = _context({"from": "trigger"})
    assert isinstance(ctx.metadata, RunMetadata) and ctx.metadata["from"] == "trigger"
    found: list[object] = []
    with running_in(ctx):
        metadata.set("progress", 0.25)
        thread = threading.Thread(target=lambda: found.append(metadata.increment("n")))
        thread.start()
        thread.join()
        assert metadata.current() == {"from": "trigger", "progress": 0.25, "n": 1}
        assert metadata.get("progress") == 0.25
        metadata.flush()  # nowhere to send it outside a pod: nothing happens
    assert found == [ctx.metadata]
    assert current_context() is None
    with pytest.raises(RuntimeError, match="no task runs here"):
        metadata.set("progress", 1)


def test_flush_asks_the_runner_to_send() -> None:
    run = RunMetadata()
    flushed: list[int] = []
    run.watch(lambda: None, lambda: flushed.append(run.snapshot()[0]))
    run.set("a", 1).flush()
    assert flushed == [1]
