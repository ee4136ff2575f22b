"""The runs' pages of the dashboard as the server renders them (no browser; tests/dashboard
drives them in chromium): `/runs` with its filters and pages, `/runs/{id}` with everything
about a run, `/runs/{id}/live`; and their rules, pure (`runs_query`, `run_display`,
`run_timeline`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

from api_fixtures import API_KEY, attempt_token, bearer, settings_for
from fastapi.testclient import TestClient
from kubernetes import client as k8s

from podtask_api.app import create_app
from podtask_api.dashboard.run_display import (
    duration_text,
    progress_of,
    run_duration_ms,
    shown_time,
    status_reason,
)
from podtask_api.dashboard.run_timeline import MIN_WIDTH, timeline
from podtask_api.dashboard.runs_query import MAX_PREVIOUS, read_runs_query
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"

# -- the rules, pure ----------------------------------------------------------------------------


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_the_runs_query_reads_the_apis_names_and_writes_them_back() -> None:
    query = read_runs_query(
        {
            "status": ["Failed", "Crashed", "Failed"],
            "task": ["hello-world"],
            "tag": ["a"],
            "queue": ["q"],
            "createdFrom": ["2024-05-01T10:00"],
            "isTest": ["true"],
            "limit": ["10"],
        }
    )
    assert query.statuses == ("Failed", "Crashed") and query.limit == 10 and not query.problems
    filters = query.run_filters()
    assert filters.statuses == {"Failed", "Crashed"} and filters.is_test is True
    assert filters.created_from == datetime(2024, 5, 1, 10, tzinfo=UTC)  # no zone: UTC
    assert filters.tags == {"a"} and filters.task_id == "hello-world"
    url = query.url()
    assert _query(url) == {
        "status": ["Failed", "Crashed"],
        "task": ["hello-world"],
        "tag": ["a"],
        "queue": ["q"],
        "createdFrom": ["2024-05-01T10:00"],
        "isTest": ["true"],
        "limit": ["10"],
    }
    assert query.stream_path().startswith("/api/v1/runs/events?status=Failed&status=Crashed")
    assert "limit" not in query.stream_path()


def test_bad_filter_values_are_said_and_left_out() -> None:
    query = read_runs_query(
        {"status": ["Nope"], "task": ["no/way"], "createdTo": ["yesterday"], "limit": ["500"]}
    )
    assert set(query.problems) == {"status", "task", "createdTo", "limit"}
    assert "not a date and time" in query.problems["createdTo"]
    assert query.filter_params() == [] and query.limit == 25
    filters = query.run_filters()
    assert filters.task_id is None and filters.created_to is None and not filters.statuses


def test_the_runs_of_a_schedule_are_a_filter_of_the_url_as_the_apis() -> None:
    query = read_runs_query({"scheduleId": ["sched-0123456789abcdef"], "status": ["Failed"]})
    assert query.run_filters().schedule_id == "sched-0123456789abcdef"
    assert _query(query.url())["scheduleId"] == ["sched-0123456789abcdef"]
    assert "scheduleId=sched-0123456789abcdef" in query.stream_path()
    bad = read_runs_query({"scheduleId": ["not a label"]})
    assert "is not a schedule id" in bad.problems["scheduleId"]
    assert bad.run_filters().schedule_id is None and bad.url() == "/runs"


def test_next_and_previous_keep_a_stack_of_cursors() -> None:
    first = read_runs_query({"status": ["Failed"]})
    assert first.previous_url() is None
    second = read_runs_query(_query(first.next_url("c1")))
    assert second.cursor == "c1" and second.previous == ("",)
    third = read_runs_query(_query(second.next_url("c2")))
    assert third.previous == ("", "c1")
    back = read_runs_query(_query(third.previous_url() or ""))
    assert back.cursor == "c1" and back.previous == ("",) and back.statuses == ("Failed",)
    assert read_runs_query(_query(back.previous_url() or "")).cursor == ""
    assert _query(third.first_url()) == {"status": ["Failed"]}
    # The stack is bounded: the oldest pages are forgotten.
    deep = read_runs_query({"cursor": ["c"], "prev": [f"p{n}" for n in range(100)]})
    assert len(read_runs_query(_query(deep.next_url("d"))).previous) == MAX_PREVIOUS


def test_what_the_pages_show_of_times_durations_progress_and_reasons() -> None:
    assert shown_time("2024-05-01T10:00:03Z") == "2024-05-01 10:00:03 UTC"
    assert shown_time(None) == ""
    assert [duration_text(ms) for ms in (None, 850, 42_000, 185_000, 7_800_000)] == [
        "",
        "850 ms",
        "42s",
        "3m 5s",
        "2h 10m",
    ]
    now = datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    running = {"status": "Executing", "startedAt": "2024-05-01T10:00:00Z", "durationMs": None}
    assert run_duration_ms(running, now) == 60_000
    assert run_duration_ms({**running, "status": "Canceled"}, now) is None
    assert [progress_of({"progress": p}) for p in (0.5, 1, 2, "0.5", True)] == [
        0.5,
        1.0,
        None,
        None,
        None,
    ]
    assert progress_of(None) is None
    conditions = [
        {"type": "Waiting", "status": "True", "reason": "QueueFull", "message": "2 of 2 run",
         "lastTransitionTime": "2024-05-01T10:00:00Z"},
        {"type": "Stalled", "status": "False", "reason": "Old",
         "lastTransitionTime": "2024-05-01T11:00:00Z"},
        {"type": "Finished", "status": "True", "reason": "Completed",
         "lastTransitionTime": "2024-05-01T10:05:00Z"},
    ]  # fmt: skip
    assert status_reason({"conditions": conditions}) == {"reason": "Completed", "message": ""}
    assert status_reason({"conditions": []}) is None


def _at(seconds: float) -> str:
    return (datetime(2024, 5, 1, 10, tzinfo=UTC) + timedelta(seconds=seconds)).isoformat()


def test_the_timeline_shows_the_wait_each_attempt_and_the_retries() -> None:
    run = {
        "status": "WaitingToRetry",
        "createdAt": _at(0),
        "attempts": [
            {"number": 1, "startedAt": _at(10), "finishedAt": _at(30), "exitCode": 1},
            {"number": 2, "startedAt": _at(40), "finishedAt": _at(60), "error": {"type": "E"}},
        ],
        "nextAttemptAt": _at(100),
    }
    drawn = timeline(run, now=datetime.fromisoformat(_at(80)))
    assert drawn is not None
    assert [(s.kind, s.label, s.outcome) for s in drawn.segments] == [
        ("queued", "Waiting to start", None),
        ("attempt", "Attempt 1", "failed"),
        ("retry", "Waiting to retry", None),
        ("attempt", "Attempt 2", "failed"),
        ("retry", "Waiting to retry", None),
    ]
    # The span runs to the next attempt's time: 100 s; placed in percent of it.
    assert [(s.left, s.width) for s in drawn.segments] == [
        (0, 10),
        (10, 20),
        (30, 10),
        (40, 20),
        (60, 40),
    ]
    assert drawn.segments[-1].planned and "next attempt at" in drawn.segments[-1].title


def test_a_running_attempt_and_its_wait_reach_now_and_a_short_one_still_shows() -> None:
    run = {
        "status": "Waiting",
        "createdAt": _at(0),
        "attempts": [{"number": 1, "startedAt": _at(0.01)}],
        "wait": {"attempt": 1, "since": _at(50), "waitingFor": "run-x"},
    }
    drawn = timeline(run, now=datetime.fromisoformat(_at(100)))
    assert drawn is not None
    queued, attempt, waiting = drawn.segments
    assert queued.width == MIN_WIDTH and attempt.outcome == "running"
    assert (waiting.kind, waiting.left, waiting.width, waiting.note) == ("waiting", 50, 50, "run-x")
    done = {**run, "status": "Completed", "finishedAt": _at(20), "wait": None}
    done["attempts"] = [{**run["attempts"][0], "finishedAt": _at(20), "exitCode": 0}]
    drawn = timeline(done, now=datetime.fromisoformat(_at(100)))
    assert drawn is not None and drawn.end == datetime.fromisoformat(_at(20))
    assert drawn.segments[-1].outcome == "succeeded"
    assert timeline({"status": "Pending"}, now=datetime.now(UTC)) is None


# -- the pages, over the embedded cluster -------------------------------------------------------


def _trigger(signed_in_browser: TestClient, **body: Any) -> str:
    answer = signed_in_browser.post(TRIGGER, json=body, headers=bearer_key())
    assert answer.status_code == 201, answer.text
    run_id: str = answer.json()["id"]
    return run_id


def bearer_key() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([^"]+)"', html)


def test_the_runs_page_lists_runs_newest_first_with_their_marks(
    signed_in_browser: TestClient,
) -> None:
    plain = _trigger(signed_in_browser, payload={"n": 1}, options={"tags": ["blue"]})
    test = _trigger(signed_in_browser, payload={"n": 2}, options={"isTest": True})
    page = signed_in_browser.get("/runs")
    assert page.status_code == 200, page.text
    assert _rows(page.text) == [test, plain]
    row = page.text[page.text.index(f'data-run-id="{test}"') :].split("</tr>")[0]
    assert 'class="badge badge-test"' in row and f'href="/runs/{test}"' in row
    assert ">hello-world<" in row and "greetings" in row and "small-1x" in row
    assert 'data-stream="/api/v1/runs/events"' in page.text
    assert '<script src="/static/runs.js"' in page.text

    only_tests = signed_in_browser.get("/runs", params={"isTest": "true"})
    assert _rows(only_tests.text) == [test]
    assert 'data-stream="/api/v1/runs/events?isTest=true"' in only_tests.text
    assert 'name="isTest" value="true" checked' in only_tests.text
    tagged = signed_in_browser.get("/runs", params={"tag": "blue", "status": "Pending"})
    assert _rows(tagged.text) == [plain]
    assert 'value="Pending" checked' in tagged.text and 'value="blue"' in tagged.text
    assert _rows(signed_in_browser.get("/runs", params={"status": "Completed"}).text) == []


def test_the_runs_page_pages_with_the_apis_cursor(signed_in_browser: TestClient) -> None:
    runs = [_trigger(signed_in_browser, payload={"n": n}) for n in range(5)][::-1]
    first = signed_in_browser.get("/runs", params={"limit": "2"})
    assert _rows(first.text) == runs[:2]
    next_url = unescape(re.search(r'href="([^"]+)" rel="next"', first.text)[1])  # type: ignore[index]
    second = signed_in_browser.get(next_url)
    assert _rows(second.text) == runs[2:4] and 'data-first-page="false"' in second.text
    third = signed_in_browser.get(unescape(re.search(r'href="([^"]+)" rel="next"', second.text)[1]))  # type: ignore[index]
    assert _rows(third.text) == runs[4:] and 'rel="next"' not in third.text
    back = unescape(re.search(r'href="([^"]+)" rel="prev"', third.text)[1])  # type: ignore[index]
    assert _rows(signed_in_browser.get(back).text) == runs[2:4]
    # A cursor of other filters: said, with the first page offered, not a failure.
    stale = _query(next_url)["cursor"][0]
    other = signed_in_browser.get(
        "/runs", params={"cursor": stale, "status": "Failed", "limit": "2"}
    )
    assert other.status_code == 200 and "made for other filters" in other.text
    assert "Go to the first page" in other.text


def test_bad_filters_show_next_to_their_field(signed_in_browser: TestClient) -> None:
    page = signed_in_browser.get("/runs", params={"createdFrom": "soon", "task": "a b"})
    assert page.status_code == 200
    assert "is not a date and time" in unescape(page.text) and "is not a task id" in page.text
    assert 'aria-invalid="true"' in page.text


def test_the_run_page_shows_the_run_its_attempts_logs_children_and_events(
    signed_in_browser: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    run_id = _trigger(signed_in_browser, payload={"name": "page"}, options={"tags": ["t1"]})
    child = signed_in_browser.post(TRIGGER, json={}, headers=bearer(attempt_token(run_id))).json()[
        "id"
    ]
    namespace.set_run_status(
        run_id,
        {
            "phase": "Failed",
            "attempt": 2,
            "startedAt": _at(10),
            "finishedAt": _at(60),
            "attempts": [
                {"number": 1, "pod": f"{run_id}-1", "machine": "small-1x", "startedAt": _at(10),
                 "finishedAt": _at(20), "exitCode": 1, "reason": "Error"},
                {"number": 2, "pod": f"{run_id}-2", "machine": "small-2x", "startedAt": _at(30),
                 "finishedAt": _at(60), "exitCode": 1, "reason": "Error"},
            ],
            "error": {"type": "ValueError", "message": "bad <input>",
                      "stack": "Traceback (most recent call last):\n  File \"t.py\"\nValueError"},
            "metadata": {"progress": 0.25, "step": "two"},
            "conditions": [{"type": "Finished", "status": "True", "reason": "Failed",
                            "message": "attempt 2 failed", "lastTransitionTime": _at(60)}],
        },
    )  # fmt: skip
    k8s.CoreV1Api(embedded_kube.api).create_namespaced_event(
        namespace.name,
        {
            "metadata": {"generateName": "e.", "namespace": namespace.name},
            "involvedObject": {"kind": "Pod", "name": f"{run_id}-2", "namespace": namespace.name},
            "type": "Warning",
            "reason": "BackOff",
            "message": "the pod's image is being pulled",
            "lastTimestamp": _at(31),
        },
    )
    page = signed_in_browser.get(f"/runs/{run_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<span class="badge status status-Failed"' in html
    assert "<strong>Failed</strong>: attempt 2 failed" in html  # the reason
    assert "ValueError" in html and "bad &lt;input&gt;" in html
    assert '<pre class="traceback">Traceback (most recent call last):' in html
    attempts = re.findall(r'<tr data-attempt="(\d)">', html)
    assert attempts == ["1", "2"] and "small-2x" in html and f"{run_id}-2" in html
    assert 'aria-label="Attempts"' in html and "?attempt=2#logs" in html
    assert '<progress id="run-progress" max="1" value="0.25">' in html
    assert "&#34;step&#34;: &#34;two&#34;" in html or "&quot;step&quot;" in html
    assert f'<a class="mono" href="/runs/{child}">' in html  # its child
    assert "BackOff" in html and "the pod&#39;s image is being pulled" in html
    assert f"kubectl get taskrun {run_id} -n {namespace.name} -o yaml" in html
    assert 'data-copy="kubectl-command"' in html
    assert "Attempt 1" in html and "Waiting to retry" in html  # the timeline
    assert 'id="cancel-button" data-write disabled' in html  # a Failed run: nothing to cancel
    assert f'data-stream="/api/v1/runs/{run_id}/events"' in html
    # The child links back to its parent.
    assert f'href="/runs/{run_id}"' in signed_in_browser.get(f"/runs/{child}").text

    live = signed_in_browser.get(f"/runs/{run_id}/live")
    assert live.status_code == 200
    parts = re.findall(r'data-live-part="([a-z]+)"', live.text)
    assert parts == ["status", "timeline", "result", "attempts", "metadata", "children", "events"]
    assert "<html" not in live.text and "Logs" not in live.text


def test_a_missing_run_is_a_404_page_and_a_page_without_session_goes_to_sign_in(
    signed_in_browser: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    missing = signed_in_browser.get("/runs/run-missing")
    assert missing.status_code == 404 and "Run not found" in missing.text
    with TestClient(
        create_app(settings_for(embedded_kube, namespace)), follow_redirects=False
    ) as anonymous:
        for path in ("/runs/run-x", "/runs/run-x/live"):
            answer = anonymous.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/sign-in?next=%2Fruns%2Frun-x")
