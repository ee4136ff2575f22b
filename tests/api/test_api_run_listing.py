"""`GET /api/v1/runs`: filters, newest first, and an opaque cursor that pages through every run
exactly once; 2,500 runs in the embedded cluster, made with the batch endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import ANY

import pytest
from api_fixtures import API_KEY, HELLO, assert_error, settings_for
from fastapi.testclient import TestClient

from podtask._contract.batch_markers import LABEL_BATCH
from podtask._contract.resources import QueueRef
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK, LABEL_TEST
from podtask_api import run_listing
from podtask_api.app import create_app
from podtask_api.errors import ApiError
from podtask_api.run_listing import (
    Chunk,
    Cursor,
    RunFilters,
    decode_cursor,
    list_page,
)
from tests.embedded_kube import EmbeddedKube, KubeNamespace

RUNS = 2500
OTHER = HELLO.model_copy(update={"task_id": "other-task", "queue": QueueRef(name="other-queue")})


class Listed:
    """The namespace with RUNS runs: every 5th of task `other-task`, every 7th tagged `seventh`,
    every 11th (from the 4th) a test run, and the first ten Failed."""

    def __init__(self, client: TestClient, namespace: KubeNamespace, ids: list[str]) -> None:
        self.client = client
        self.namespace = namespace
        self.ids = ids

    def pages(self, **query: Any) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            response = self.client.get("/api/v1/runs", params=params)
            assert response.status_code == 200, response.text
            page: dict[str, Any] = response.json()
            yield page
            cursor = page["nextCursor"]
            if cursor is None:
                return

    def all_ids(self, **query: Any) -> list[str]:
        return [run["id"] for page in self.pages(**query) for run in page["data"]]


@pytest.fixture(scope="module")
def listed(embedded_kube: EmbeddedKube) -> Iterator[Listed]:
    namespace = embedded_kube.new_namespace("listing")
    namespace.deploy_task(HELLO)
    namespace.deploy_task(OTHER)
    with TestClient(
        create_app(settings_for(embedded_kube, namespace)),
        headers={"Authorization": f"Bearer {API_KEY}"},
        raise_server_exceptions=False,
    ) as client:
        ids: list[str] = []
        for start in range(0, RUNS, 1000):
            items = [
                {
                    "task": "other-task" if n % 5 == 0 else "hello-world",
                    "payload": {"n": n},
                    "options": {
                        "tags": ["seventh"] if n % 7 == 0 else [],
                        **({"isTest": True} if n % 11 == 3 else {}),
                    },
                }
                for n in range(start, min(start + 1000, RUNS))
            ]
            response = client.post("/api/v1/tasks/batch", json={"items": items})
            assert response.status_code == 201, response.text
            ids.extend(run["id"] for run in response.json()["runs"])
            time.sleep(0.002)  # the next batch is newer, to the millisecond
        for run_id in ids[:10]:
            namespace.set_run_status(run_id, {"phase": "Failed"})
        yield Listed(client, namespace, ids)


def test_2500_runs_page_by_page_each_exactly_once_newest_first(listed: Listed) -> None:
    pages = list(listed.pages(limit=100))
    assert len(pages) == RUNS // 100
    assert all(len(page["data"]) == 100 for page in pages)
    seen = [run["id"] for page in pages for run in page["data"]]
    assert len(seen) == len(set(seen)) == RUNS
    assert set(seen) == set(listed.ids)
    assert seen == sorted(seen)  # name order is the cluster's, and names count down in time
    # The batches came one after the other: the last one's runs are listed first.
    assert set(seen[:500]) == set(listed.ids[2000:])
    assert pages[0]["data"][0].keys() >= {"id", "taskId", "status", "tags", "createdAt"}
    assert "payload" not in pages[0]["data"][0]


def test_filters_that_have_labels_go_to_the_cluster(listed: Listed) -> None:
    other = [i for n, i in enumerate(listed.ids) if n % 5 == 0]
    assert sorted(listed.all_ids(taskIdentifier="other-task", limit=100)) == sorted(other)
    assert sorted(listed.all_ids(task="other-task", limit=100)) == sorted(other)
    assert sorted(listed.all_ids(queue="other-queue", limit=100)) == sorted(other)
    assert listed.all_ids(task="other-task", taskIdentifier="hello-world") == []
    assert listed.all_ids(task="not-deployed") == []
    stored = listed.namespace.run(other[0])["metadata"]["labels"]
    # Besides the batch it was created in (podtask._contract.batch_markers).
    assert stored == {LABEL_TASK: "other-task", LABEL_QUEUE: "other-queue", LABEL_BATCH: ANY}


def test_filters_without_labels_fill_pages_from_several_chunks(listed: Listed) -> None:
    seventh = {i for n, i in enumerate(listed.ids) if n % 7 == 0}
    pages = list(listed.pages(tag="seventh", limit=40))
    found = [run["id"] for page in pages for run in page["data"]]
    assert len(found) == len(set(found)) and set(found) == seventh
    assert all(len(page["data"]) == 40 for page in pages[:-1])
    both = listed.all_ids(tag="seventh", task="other-task", limit=7)
    assert set(both) == {i for n, i in enumerate(listed.ids) if n % 35 == 0}


def test_test_runs_or_the_others_by_their_label(listed: Listed) -> None:
    tests = {i for n, i in enumerate(listed.ids) if n % 11 == 3}
    found = listed.all_ids(isTest="true", limit=100)
    assert len(found) == len(tests) and set(found) == tests
    others = listed.all_ids(isTest="false", limit=100)
    assert len(others) == RUNS - len(tests) and tests.isdisjoint(others)
    assert set(listed.all_ids(isTest="true", task="other-task", limit=100)) == {
        i for n, i in enumerate(listed.ids) if n % 11 == 3 and n % 5 == 0
    }
    page = next(listed.pages(isTest="true", limit=1))
    assert page["data"][0]["isTest"] is True
    assert listed.namespace.run(page["data"][0]["id"])["metadata"]["labels"][LABEL_TEST] == "true"
    assert_error(
        listed.client.get("/api/v1/runs", params={"isTest": "maybe"}), 422, "invalid_request"
    )


def test_status_filter(listed: Listed) -> None:
    assert sorted(listed.all_ids(status="Failed")) == sorted(listed.ids[:10])
    pending = listed.all_ids(status=["Pending", "Executing"], limit=100)
    assert len(pending) == RUNS - 10
    assert listed.all_ids(status="Completed") == []


def test_created_from_and_to(listed: Listed) -> None:
    created = [
        datetime.fromisoformat(r["createdAt"])
        for page in listed.pages(limit=100, tag="seventh")
        for r in page["data"]
    ]
    earliest, latest = min(created), max(created)
    assert len(listed.all_ids(tag="seventh", createdFrom=earliest.isoformat())) == len(created)
    assert (
        listed.all_ids(tag="seventh", createdFrom=(latest + timedelta(seconds=1)).isoformat()) == []
    )
    naive_before = (earliest - timedelta(seconds=1)).astimezone(UTC).replace(tzinfo=None)
    assert listed.all_ids(tag="seventh", createdTo=naive_before.isoformat()) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "query.limit"),
        ({"limit": 101}, "query.limit"),
        ({"status": "Running"}, "query.status.0"),
        ({"createdFrom": "yesterday"}, "query.createdFrom"),
        ({"createdFrom": "1714564800"}, "query.createdFrom"),
        ({"task": "Bad Name"}, "query.task"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_bad_filters_and_cursors_are_422_naming_them(
    listed: Listed, query: dict[str, Any], field: str
) -> None:
    error = assert_error(listed.client.get("/api/v1/runs", params=query), 422, "invalid_request")
    assert [d["field"] for d in error["details"]] == [field]
    assert field in error["message"]


def test_a_cursor_works_only_with_its_own_filters(listed: Listed) -> None:
    page = next(listed.pages(tag="seventh", limit=5))
    response = listed.client.get(
        "/api/v1/runs", params={"tag": "other", "limit": 5, "cursor": page["nextCursor"]}
    )
    error = assert_error(response, 422, "invalid_request")
    assert "other filters" in error["message"]
    forged = base64.urlsafe_b64encode(
        json.dumps({"v": 1, "c": "garbage", "a": None, "f": RunFilters().digest()}).encode()
    ).decode()
    response = listed.client.get("/api/v1/runs", params={"cursor": forged})
    assert_error(response, 422, "invalid_request")


# -- the pager, pure ----------------------------------------------------------------------


def _run(name: str, tag: str = "") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"tags": [tag] if tag else []}}


class Chunks:
    """A name-ordered list served in chunks the way Kubernetes serves it (continue = the
    position after the last name), that can grow between calls."""

    def __init__(self, names: list[str]) -> None:
        self.runs = [_run(name) for name in names]
        self.calls = 0

    async def fetch(self, selector: str | None, size: int, token: str | None) -> Chunk:
        self.calls += 1
        ordered = sorted(self.runs, key=lambda r: r["metadata"]["name"])
        after = token or ""
        rest = [r for r in ordered if r["metadata"]["name"] > after]
        items = rest[:size]
        more = len(rest) > size
        return Chunk(items, items[-1]["metadata"]["name"] if more else None)


def test_a_run_created_between_pages_neither_repeats_nor_hides_one() -> None:
    chunks = Chunks([f"run-{n:03d}" for n in range(0, 100, 10)])
    filters = RunFilters(tags=frozenset({"x"}))  # applied here: chunks bigger than pages
    for run in chunks.runs:
        run["spec"]["tags"] = ["x"]
    first = asyncio.run(list_page(chunks.fetch, filters, 3, None))
    assert [r["metadata"]["name"] for r in first.runs] == ["run-000", "run-010", "run-020"]
    assert first.next_cursor is not None
    # A run lands inside the chunk the next page reads again.
    chunks.runs.append({"metadata": {"name": "run-015"}, "spec": {"tags": ["x"]}})
    second = asyncio.run(list_page(chunks.fetch, filters, 3, first.next_cursor))
    assert [r["metadata"]["name"] for r in second.runs] == ["run-030", "run-040", "run-050"]


def test_a_page_stops_at_the_bound_on_runs_examined(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_listing, "MAX_EXAMINED", 10)
    monkeypatch.setattr(run_listing, "FILTERED_CHUNK", 4)
    chunks = Chunks([f"run-{n:03d}" for n in range(30)])
    chunks.runs[-1]["spec"]["tags"] = ["rare"]
    filters = RunFilters(tags=frozenset({"rare"}))
    pages = [asyncio.run(list_page(chunks.fetch, filters, 5, None))]
    while pages[-1].next_cursor is not None:
        pages.append(asyncio.run(list_page(chunks.fetch, filters, 5, pages[-1].next_cursor)))
    assert [len(page.runs) for page in pages] == [0, 0, 1]  # empty pages that still go on
    assert pages[-1].runs[0]["metadata"]["name"] == "run-029"


def test_an_empty_listing_and_the_last_page() -> None:
    assert asyncio.run(list_page(Chunks([]).fetch, RunFilters(), 5, None)).next_cursor is None
    chunks = Chunks(["run-a", "run-b"])
    page = asyncio.run(list_page(chunks.fetch, RunFilters(), 2, None))
    assert len(page.runs) == 2 and page.next_cursor is None


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    filters = RunFilters(task_id="hello-world")
    cursor = Cursor("token", "run-x", filters.digest())
    assert decode_cursor(cursor.encode(), filters) == cursor
    for bad in ["", "!!!", base64.urlsafe_b64encode(b"[1]").decode(), cursor.encode()[:-3]]:
        with pytest.raises(ApiError) as refused:
            decode_cursor(bad, filters)
        assert refused.value.status == 422
    with pytest.raises(ApiError, match="other filters"):
        decode_cursor(cursor.encode(), RunFilters(task_id="other"))


def test_label_selectors_and_filters_applied_here() -> None:
    assert RunFilters().label_selector() is None
    filters = RunFilters(task_id="t", queue="q")
    assert filters.label_selector() == f"{LABEL_TASK}=t,{LABEL_QUEUE}=q"
    assert not filters.filters_here
    odd_queue = RunFilters(queue="a queue with spaces")
    assert odd_queue.label_selector() is None and odd_queue.filters_here
    assert odd_queue.matches({"spec": {"queue": {"name": "a queue with spaces"}}})
    assert not odd_queue.matches({"spec": {"queue": {"name": "greetings"}}})
    assert RunFilters(statuses=frozenset({"Pending"})).matches({"spec": {}})
    assert not RunFilters(statuses=frozenset({"Pending"})).matches({"status": {"phase": "Queued"}})
    tests, others = RunFilters(is_test=True), RunFilters(is_test=False)
    assert tests.label_selector() == f"{LABEL_TEST}=true"
    # `!=` selects the runs without the label too: every run that is not a test.
    assert others.label_selector() == f"{LABEL_TEST}!=true"
    assert (
        not tests.filters_here
        and len({tests.digest(), others.digest(), RunFilters().digest()}) == 3
    )
    assert tests.matches({"spec": {"isTest": True}}) and not tests.matches({"spec": {}})
    assert others.matches({"spec": {}}) and not others.matches({"spec": {"isTest": True}})
