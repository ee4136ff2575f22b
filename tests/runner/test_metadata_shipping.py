"""The runner's sending of its run's metadata (`metadata_shipping`): when a change is sent
(the decision, `wait_before_sending`), the latest document whole, once more at the end, and
how a failing or an ended attempt is met. The API is played through `played_callbacks`
(`AttemptCallbacks` is the real client)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from runner_fixtures import played_callbacks

from podtask._authoring.run_metadata import RunMetadata
from podtask_runner.metadata_shipping import MetadataShipper, wait_before_sending

ENDED = {
    "error": {
        "code": "attempt_ended",
        "message": "m",
        "details": {"why": "the run finished as Canceled"},
    }
}


@pytest.mark.parametrize(
    ("changed", "last_sent_at", "now", "expected"),
    [
        (False, None, 10.0, None),  # nothing new: nothing to send
        (False, 9.9, 10.0, None),
        (True, None, 10.0, 0.0),  # never sent: at once
        (True, 8.0, 10.0, 0.0),  # the last send is a second and more ago: at once
        (True, 9.0, 10.0, 0.0),
        (True, 9.75, 10.0, 0.75),  # within the second: the rest of it
        (True, 10.0, 10.0, 1.0),
    ],
)
def test_a_change_is_sent_at_most_once_a_second(
    changed: bool, last_sent_at: float | None, now: float, expected: float | None
) -> None:
    waited = wait_before_sending(changed=changed, last_sent_at=last_sent_at, now=now, interval=1.0)
    assert waited == (None if expected is None else pytest.approx(expected))


def _shipper(
    answer: Callable[[httpx.Request], httpx.Response], *, interval: float = 3600.0
) -> tuple[RunMetadata, MetadataShipper, list[dict[str, object]], list[str]]:
    sent: list[dict[str, object]] = []
    said: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.method == "PUT"
        assert request.url.path == "/api/v1/runner/runs/run-1/attempts/1/metadata"
        sent.append(json.loads(request.content))
        return answer(request)

    metadata = RunMetadata({"from": "trigger"})
    shipper = MetadataShipper(metadata, played_callbacks(handle, 1), said.append, interval=interval)
    return metadata, shipper, sent, said


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "the condition did not come true"
        time.sleep(0.01)


def test_the_first_change_goes_at_once_the_next_ones_wait_and_the_last_goes_at_close() -> None:
    metadata, shipper, sent, said = _shipper(lambda _: httpx.Response(204))
    shipper.start()
    metadata.set("progress", 0.1)
    _until(lambda: len(sent) == 1)
    # Within the (hour-long) interval: held back, then sent once, the latest, at close.
    metadata.set("progress", 0.5)
    metadata.set("progress", 1)
    shipper.close()
    assert sent == [
        {"metadata": {"from": "trigger", "progress": 0.1}},
        {"metadata": {"from": "trigger", "progress": 1}},
    ]
    assert said == []


def _shipping_threads() -> int:
    return sum(thread.name == "metadata-shipper" for thread in threading.enumerate())


def test_no_thread_ships_until_the_first_change() -> None:
    """A task that never writes its metadata runs without the thread (the runner's own
    threads shift the timing of the task's output)."""
    before = _shipping_threads()
    metadata, shipper, sent, _ = _shipper(lambda _: httpx.Response(204))
    shipper.start()
    assert _shipping_threads() == before
    metadata.set("a", 1)
    _until(lambda: len(sent) == 1)
    assert _shipping_threads() == before + 1
    shipper.close()
    assert _shipping_threads() == before


def test_nothing_is_sent_while_nothing_changes() -> None:
    metadata, shipper, sent, _ = _shipper(lambda _: httpx.Response(204))
    shipper.start()
    metadata.set("from", "trigger")  # the same value: no change
    shipper.close()
    assert sent == []


def test_flush_sends_at_once_whatever_the_interval() -> None:
    metadata, shipper, sent, _ = _shipper(lambda _: httpx.Response(204))
    metadata.set("a", 1).flush()
    metadata.set("a", 2).flush()
    metadata.flush()  # nothing new
    shipper.close()
    assert [s["metadata"] for s in sent] == [
        {"from": "trigger", "a": 1},
        {"from": "trigger", "a": 2},
    ]


def test_a_failed_send_is_said_once_and_the_document_sent_again() -> None:
    answers = [httpx.Response(503)] * 4 + [httpx.Response(204)]
    metadata, shipper, sent, said = _shipper(lambda _: answers.pop(0))
    metadata.set("a", 1).flush()  # tried three times (a flush is patient), in vain
    metadata.flush()  # the same document, again: the second try gets through
    metadata.flush()  # sent already: nothing to send
    assert len(said) == 1 and "could not send the metadata" in said[0]
    shipper.close()
    assert [s["metadata"] for s in sent] == [{"from": "trigger", "a": 1}] * 5


def test_an_ended_attempt_stops_the_sending_quietly() -> None:
    metadata, shipper, sent, said = _shipper(lambda _: httpx.Response(401, json=ENDED))
    shipper.start()
    metadata.set("a", 1)
    _until(lambda: shipper.ended)
    metadata.set("a", 2).flush()
    shipper.close()
    assert len(sent) == 1
    assert said == []


def test_sends_from_the_thread_and_from_flush_never_go_back_to_an_older_document() -> None:
    metadata, shipper, sent, _ = _shipper(lambda _: httpx.Response(204), interval=0.0)
    shipper.start()

    def work() -> None:
        for _ in range(50):
            metadata.increment("n")
            metadata.flush()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shipper.close()
    counts = [s["metadata"]["n"] for s in sent]  # type: ignore[index]
    assert counts == sorted(counts) and counts[-1] == 200
