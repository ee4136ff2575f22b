"""`podtask.client`'s reads and queue controls against the real API, served by uvicorn over
the embedded cluster: list_runs / iter_runs, run_logs, list_tasks, the queues."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_api_catalog import add_queue
from test_api_logs import start_attempt, wait_until_finished

from podtask import BatchItem
from podtask import client as podtask_client
from podtask.client import PodtaskApiError, PodtaskClient, RunPage, run_list_params
from tests.embedded_kube import EmbeddedKube, KubeNamespace


@pytest.fixture
def api(served_client: PodtaskClient) -> PodtaskClient:
    return served_client


def test_list_runs_a_page_at_a_time_and_every_page(api: PodtaskClient) -> None:
    handles = api.batch_trigger("hello-world", [{"n": n} for n in range(7)])
    tagged = api.trigger("hello-world", {"n": 7}, tags=["vip"])
    page = api.list_runs(limit=3)
    assert isinstance(page, RunPage) and len(page.runs) == 3 and page.next_cursor
    assert page.runs[0]["id"] == tagged.id  # newest first
    following = api.list_runs(limit=3, cursor=page.next_cursor)
    assert {r["id"] for r in following.runs}.isdisjoint(r["id"] for r in page.runs)

    every = [run["id"] for run in api.iter_runs(page_size=2)]
    assert sorted(every) == sorted([h.id for h in handles] + [tagged.id])
    assert [r["id"] for r in api.iter_runs(tag="vip")] == [tagged.id]
    assert list(api.iter_runs(status=["Completed", "Failed"])) == []
    assert len(list(api.iter_runs(status="Pending", task="hello-world"))) == 8
    later = datetime.now(UTC) + timedelta(hours=1)
    assert list(api.iter_runs(created_from=later)) == []
    with pytest.raises(PodtaskApiError) as refused:
        api.list_runs(limit=500)
    assert refused.value.status == 422


def test_test_runs_are_triggered_and_listed_by_the_client(api: PodtaskClient) -> None:
    test_run = api.trigger("hello-world", is_test=True)
    [batched] = api.batch_trigger("hello-world", [BatchItem({"n": 1}, {"is_test": True})])
    plain = api.trigger("hello-world", {"n": 2})
    assert {r["id"] for r in api.iter_runs(is_test=True)} == {test_run.id, batched.id}
    assert [r["id"] for r in api.iter_runs(is_test=False)] == [plain.id]
    assert api.get_run(test_run.id)["isTest"] is True
    assert api.get_run(plain.id)["isTest"] is False


def test_the_async_twins(
    api: PodtaskClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    add_queue(embedded_kube, namespace, "greetings", 2)

    async def main() -> dict[str, Any]:
        handle = await api.trigger_async("hello-world", tags=["a"])
        page = await api.list_runs_async(tag="a")
        ids = [run["id"] async for run in api.iter_runs_async(tag="a")]
        tasks = await api.list_tasks_async()
        paused = await api.pause_queue_async("greetings")
        limited = await api.set_queue_concurrency_async("greetings", 5)
        resumed = await api.resume_queue_async("greetings")
        queues = await api.list_queues_async()
        one = await api.get_queue_async("greetings")
        await api.aclose()
        return {
            "handle": handle.id,
            "page": [r["id"] for r in page.runs],
            "ids": ids,
            "tasks": [t["id"] for t in tasks],
            "paused": paused["paused"],
            "limit": limited["concurrencyLimit"],
            "resumed": resumed["paused"],
            "queues": queues,
            "one": one,
        }

    seen = asyncio.run(main())
    assert seen["page"] == seen["ids"] == [seen["handle"]]
    assert seen["tasks"] == ["hello-world"]
    assert (seen["paused"], seen["limit"], seen["resumed"]) == (True, 5, False)
    assert seen["queues"] == [seen["one"]] and seen["one"]["concurrencyLimit"] == 5


def test_queue_controls(
    api: PodtaskClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    add_queue(embedded_kube, namespace, "greetings", 2)
    assert api.pause_queue("greetings")["paused"] is True
    assert api.resume_queue("greetings")["paused"] is False
    assert api.set_queue_concurrency("greetings", 9)["concurrencyLimit"] == 9
    assert api.set_queue_concurrency("greetings", None)["concurrencyLimit"] is None
    assert api.list_queues() == [api.get_queue("greetings")]
    assert [t["queue"]["name"] for t in api.list_tasks()] == ["greetings"]
    with pytest.raises(PodtaskApiError) as missing:
        api.pause_queue("nope")
    assert (missing.value.status, missing.value.code) == (404, "queue_not_found")


def test_run_logs_whole_and_followed(
    api: PodtaskClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    run_id = api.trigger("hello-world").id
    pod = start_attempt(embedded_kube, namespace, run_id, 1, "print('one'); print('two')")
    wait_until_finished(embedded_kube, namespace, pod)
    assert "".join(api.run_logs(run_id)) == "one\ntwo\n"
    assert "".join(api.run_logs(run_id, attempt=1, follow=True)) == "one\ntwo\n"

    async def follow() -> str:
        return "".join([text async for text in api.run_logs_async(run_id, follow=True)])

    assert asyncio.run(follow()) == "one\ntwo\n"
    with pytest.raises(PodtaskApiError) as gone:
        "".join(api.run_logs(run_id, attempt=2))
    assert gone.value.status == 404


def test_the_module_functions_use_the_configured_client(
    api: PodtaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(podtask_client, "_default", api)
    handle = podtask_client.trigger("hello-world", tags=["m"])
    assert [r["id"] for r in podtask_client.list_runs(tag="m").runs] == [handle.id]
    assert [r["id"] for r in podtask_client.iter_runs(tag="m")] == [handle.id]
    assert [t["id"] for t in podtask_client.list_tasks()] == ["hello-world"]
    assert podtask_client.list_queues() == []


def test_run_list_params() -> None:
    local = datetime(2024, 5, 1, 12, 0)
    params = run_list_params(
        status=["Failed", "Crashed"],
        task="t",
        tag="x",
        queue="q",
        created_from=datetime(2024, 5, 1, tzinfo=UTC),
        created_to=local,
        limit=10,
        cursor="c",
    )
    assert params[:6] == [
        ("status", "Failed"),
        ("status", "Crashed"),
        ("tag", "x"),
        ("taskIdentifier", "t"),
        ("queue", "q"),
        ("createdFrom", "2024-05-01T00:00:00Z"),
    ]
    assert params[6] == ("createdTo", local.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    assert params[7:] == [("limit", "10"), ("cursor", "c")]
    assert run_list_params() == [("limit", "25")]


def test_idempotency_key_ttl_goes_to_the_api(api: PodtaskClient, namespace: KubeNamespace) -> None:
    first = api.trigger("hello-world", idempotency_key="k", idempotency_key_ttl="10m")
    again = api.trigger("hello-world", idempotency_key="k", idempotency_key_ttl=timedelta(hours=1))
    assert again.id == first.id and again.is_cached
    namespace.set_run_status(first.id, {"phase": "Canceled"})
    fresh = api.trigger("hello-world", idempotency_key="k", idempotency_key_ttl=60)
    assert fresh.id != first.id and not fresh.is_cached
    with pytest.raises(PodtaskApiError) as refused:
        api.trigger("hello-world", idempotency_key="k", idempotency_key_ttl="soon")
    assert refused.value.status == 422


def test_deployments_through_the_client(api: PodtaskClient) -> None:
    from podtask._authoring.manifest import build_manifest
    from podtask._authoring.modules import load_tasks

    examples = Path(__file__).resolve().parents[2] / "examples"
    manifest = build_manifest(load_tasks([str(examples / "hello_world.py")]))
    wire = manifest.model_dump(mode="json", by_alias=True)
    created = api.create_deployment(wire, "registry.example.com/tasks:1.0", "1.0.0")
    assert created["version"] == "1.0.0"
    assert "hello-world" in created["tasks"]
    later = asyncio.run(
        api.create_deployment_async(wire, "registry.example.com/tasks:1.1", "1.1.0")
    )
    assert later["version"] == "1.1.0"
    assert [d["version"] for d in api.list_deployments()][:2] == ["1.1.0", "1.0.0"]
    hello = next(t for t in api.list_tasks() if t["id"] == "hello-world")
    assert (hello["version"], hello["image"]) == ("1.1.0", "registry.example.com/tasks:1.1")
