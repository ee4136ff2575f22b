"""The runs' event streams against the real API, served by uvicorn over the embedded cluster:
who may open them and what they refuse, the stream of one run from its current state to its
end, the filtered list's stream, keepalives, resuming with Last-Event-ID, one watch for every
stream, and the watch going on after the cluster drops it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import (
    API_KEY,
    HELLO,
    api_settings,
    assert_error,
    bearer,
    free_port,
    served,
    settings_for,
)
from event_reading import EVENT_WAIT_SECONDS, event_stream
from kubernetes import client, config

from podtask._contract.crds import custom_resource_definitions
from podtask._contract.resources import TaskSpec
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_api.app import create_app
from podtask_api.cluster import KubernetesCluster
from podtask_api.run_events import RunList
from podtask_api.run_feed import RunFeed
from podtask_api.run_listing import RunFilters
from podtask_devcluster import EmbeddedCluster
from tests.e2e.conftest import wait_until
from tests.embedded_kube import EmbeddedKube, KubeNamespace

OTHER = TaskSpec(**{**HELLO.model_dump(), "task_id": "other-task"})


@pytest.fixture
def api_url(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[str]:
    namespace.deploy_task(OTHER)
    app = create_app(settings_for(embedded_kube, namespace, events_keepalive_seconds=0.5))
    with served(app) as url:
        yield url


def trigger(url: str, task: str = "hello-world", **options: Any) -> str:
    with httpx.Client(base_url=url, headers=bearer(API_KEY), timeout=30) as http:
        response = http.post(f"/api/v1/tasks/{task}/trigger", json={"options": options})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def get_run(url: str, run_id: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, headers=bearer(API_KEY), timeout=30) as http:
        response = http.get(f"/api/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    shown: dict[str, Any] = response.json()
    return shown


def label_run(namespace: KubeNamespace, run_id: str, value: str) -> None:
    """A write to the run that changes nothing `GET /api/v1/runs/{id}` shows."""
    client.CustomObjectsApi(namespace._objects.api_client).patch_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "taskruns", run_id, {"metadata": {"labels": {"x": value}}}
    )


def test_the_streams_need_a_key_and_refuse_what_get_refuses(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=30) as http:
        for path in ("/api/v1/runs/events", "/api/v1/runs/run-x/events"):
            assert_error(http.get(path), 401, "unauthorized")
            assert_error(http.get(path, headers=bearer("pt_wrong")), 401, "unauthorized")
        http.headers.update(bearer(API_KEY))
        assert_error(http.get("/api/v1/runs/run-nope/events"), 404, "run_not_found")
        assert_error(http.get("/api/v1/runs/Not%20A%20Name/events"), 404, "run_not_found")
        for bad in ({"status": "Nope"}, {"task": "Bad Task!"}, {"createdFrom": "yesterday"}):
            streamed = http.get("/api/v1/runs/events", params=bad)
            listed = http.get("/api/v1/runs", params=bad)
            # The same refusal as the list's, word for word.
            assert assert_error(streamed, 422, "invalid_request") == assert_error(
                listed, 422, "invalid_request"
            )


def test_one_run_from_its_current_state_to_its_end(api_url: str, namespace: KubeNamespace) -> None:
    run_id = trigger(api_url)
    with event_stream(api_url, f"/api/v1/runs/{run_id}/events") as stream:
        first = stream.next_event()
        assert first.event == "run"
        assert json.loads(first.data) == get_run(api_url, run_id)  # the same JSON as GET
        assert first.id == namespace.run(run_id)["metadata"]["resourceVersion"]
        assert json.loads(first.data)["status"] == "Pending"
        namespace.set_run_status(run_id, {"phase": "Queued"})
        assert stream.next_run()["status"] == "Queued"
        label_run(namespace, run_id, "a")  # shows nothing new: no event
        namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
        assert stream.next_run()["status"] == "Executing"
        namespace.set_run_status(run_id, {"phase": "Completed", "output": {"ok": 1}})
        rest = stream.read_to_end()
    assert [event.event for event in rest] == ["run", "end"]
    assert json.loads(rest[0].data) == get_run(api_url, run_id)
    assert json.loads(rest[0].data)["output"] == {"ok": 1}
    assert rest[0].id == namespace.run(run_id)["metadata"]["resourceVersion"]
    assert "data: " + rest[0].data + "\n" in stream.text  # the run's JSON on one line


def test_a_finished_run_is_its_state_then_the_end(api_url: str, namespace: KubeNamespace) -> None:
    run_id = trigger(api_url)
    namespace.set_run_status(run_id, {"phase": "Failed"})
    with event_stream(api_url, f"/api/v1/runs/{run_id}/events") as stream:
        events = stream.read_to_end()
    assert [event.event for event in events] == ["run", "end"]
    assert json.loads(events[0].data)["status"] == "Failed"


def test_a_run_deleted_while_followed(api_url: str, namespace: KubeNamespace) -> None:
    run_id = trigger(api_url)
    with event_stream(api_url, f"/api/v1/runs/{run_id}/events") as stream:
        stream.next_run()
        client.CustomObjectsApi(namespace._objects.api_client).delete_namespaced_custom_object(
            GROUP, VERSION, namespace.name, "taskruns", run_id
        )
        events = stream.read_to_end()
    assert [(e.event, json.loads(e.data)) for e in events] == [
        ("deleted", {"id": run_id}),
        ("end", {}),
    ]


def test_the_list_stream_sends_the_runs_that_pass_its_filters(
    api_url: str, namespace: KubeNamespace
) -> None:
    params = {"task": "hello-world", "status": ["Queued", "Executing"]}
    with event_stream(api_url, "/api/v1/runs/events", params) as stream:
        other = trigger(api_url, "other-task")
        wanted = trigger(api_url)  # Pending: not yet
        namespace.set_run_status(other, {"phase": "Queued"})  # another task
        namespace.set_run_status(wanted, {"phase": "Queued"})
        queued = stream.next_event()
        assert (queued.event, json.loads(queued.data)) == ("run", get_run(api_url, wanted))
        namespace.set_run_status(wanted, {"phase": "Executing", "attempt": 1})
        assert stream.next_run()["status"] == "Executing"
        # Leaving the statuses asked for: sent once more, then no more.
        namespace.set_run_status(wanted, {"phase": "Completed"})
        assert stream.next_run()["status"] == "Completed"
        label_run(namespace, wanted, "b")
        last = trigger(api_url)
        namespace.set_run_status(last, {"phase": "Queued"})
        assert stream.next_run()["id"] == last


def test_the_list_stream_says_when_a_run_is_deleted_and_keeps_alive(
    api_url: str, namespace: KubeNamespace
) -> None:
    run_id = trigger(api_url)
    with event_stream(api_url, "/api/v1/runs/events", {"task": "hello-world"}) as stream:
        stream.until_text(": keepalive\n\n")  # every half second here; 15 s by default
        client.CustomObjectsApi(namespace._objects.api_client).delete_namespaced_custom_object(
            GROUP, VERSION, namespace.name, "taskruns", run_id
        )
        event = stream.next_event()
        while event.event == "run":  # its deletion may first mark it (a finalizer, a GC)
            event = stream.next_event()
        assert (event.event, json.loads(event.data)) == ("deleted", {"id": run_id})
        assert event.id


def test_a_client_that_reconnects_gets_what_it_missed(
    api_url: str, namespace: KubeNamespace
) -> None:
    run_id = trigger(api_url)
    with event_stream(api_url, "/api/v1/runs/events", {"task": "hello-world"}) as stream:
        namespace.set_run_status(run_id, {"phase": "Queued"})
        last_seen = stream.next_event().id
    assert last_seen
    # Meanwhile, away: two changes.
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
    namespace.set_run_status(run_id, {"phase": "Completed"})
    resume = {"Last-Event-ID": last_seen}
    with event_stream(api_url, "/api/v1/runs/events", {"task": "hello-world"}, resume) as stream:
        assert [stream.next_run()["status"] for _ in range(2)] == ["Executing", "Completed"]
    # The stream of the run: what it missed, then the current state is not sent twice.
    with event_stream(api_url, f"/api/v1/runs/{run_id}/events", headers=resume) as stream:
        events = stream.read_to_end()
    assert [(e.event, e.data and json.loads(e.data).get("status")) for e in events] == [
        ("run", "Executing"),
        ("run", "Completed"),
        ("end", None),
    ]


def test_every_stream_shares_one_watch_and_leaves_when_its_client_does(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    app = create_app(settings_for(embedded_kube, namespace))
    feed = app.state.services.run_feed
    with served(app) as url:
        run_id = trigger(url)
        # The trigger started the watch of Tasks (task_catalog): count the runs' from here.
        wait_until(lambda: app.state.services.tasks.live, timeout=60)
        watches = embedded_kube.cluster.request_counts()["watch"]
        with (
            event_stream(url, "/api/v1/runs/events") as everything,
            event_stream(url, "/api/v1/runs/events", {"task": "hello-world"}) as tasks,
            event_stream(url, f"/api/v1/runs/{run_id}/events") as one,
        ):
            assert feed.subscribers == 3
            one.next_run()
            namespace.set_run_status(run_id, {"phase": "Queued"})
            for stream in (everything, tasks, one):
                assert stream.next_run()["status"] == "Queued"
            assert embedded_kube.cluster.request_counts()["watch"] == watches + 1
        wait_until(lambda: feed.subscribers == 0, timeout=30)


def test_a_slow_subscriber_holds_up_no_other_and_is_dropped_far_behind(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    feed = RunFeed(KubernetesCluster.connect(namespace.name, str(embedded_kube.kubeconfig)))
    feed.max_pending = 5
    names = [f"run-{n}" for n in range(8)]

    async def follow() -> list[str]:
        slow = await feed.subscribe(RunList(RunFilters()))  # never reads
        quick = await feed.subscribe(RunList(RunFilters()))
        seen = []
        for name in names:
            body = {"apiVersion": API_VERSION, "kind": "TaskRun", "metadata": {"name": name}}
            await asyncio.to_thread(namespace.create_run, {**body, "spec": HELLO.to_wire()})
            change = await quick.next(EVENT_WAIT_SECONDS)
            assert change is not None, seen
            seen.append(change.name)
        assert slow.ended and feed.subscribers == 1  # dropped, and gone from the feed
        feed.close()
        return seen

    assert asyncio.run(follow()) == names


def test_the_watch_goes_on_from_where_the_cluster_ended_it(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    app = create_app(settings_for(embedded_kube, namespace))
    app.state.services.run_feed.watch_seconds = 1  # the cluster ends each watch after a second
    watches = lambda: embedded_kube.cluster.request_counts()["watch"]  # noqa: E731
    with served(app) as url, event_stream(url, "/api/v1/runs/events") as stream:
        run_id = trigger(url)
        assert stream.next_run()["status"] == "Pending"
        ids = []
        for phase in ("Queued", "Delayed", "Queued", "Executing"):
            opened = watches()
            wait_until(lambda opened=opened: watches() > opened, timeout=60)  # a new watch
            namespace.set_run_status(run_id, {"phase": phase, "attempt": 1})
            event = stream.next_event()
            assert json.loads(event.data)["status"] == phase
            ids.append(int(event.id or 0))
        assert ids == sorted(set(ids))  # each change once, in order


@pytest.mark.component  # starts an embedded cluster of its own, which it restarts
def test_the_watch_goes_on_after_the_cluster_drops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cluster restarted under the API: the watch is dropped, and the history it would
    go on from is gone (410). The streams go on, and see every change."""
    caplog.set_level(logging.INFO, logger="podtask_api")
    cluster = EmbeddedCluster(tmp_path / "cluster", port=free_port(), workdir=tmp_path)
    with cluster:
        kube = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        for crd in custom_resource_definitions():
            client.ApiextensionsV1Api(kube).create_custom_resource_definition(crd)
        namespace = KubeNamespace("default", client.CustomObjectsApi(kube))
        namespace.deploy_task(HELLO)
        settings = api_settings(namespace="default", kubeconfig=str(cluster.kubeconfig_path))
        with served(create_app(settings)) as url:
            run_id = trigger(url)
            with (
                event_stream(url, f"/api/v1/runs/{run_id}/events") as one,
                event_stream(url, "/api/v1/runs/events") as every,
            ):
                assert one.next_run()["status"] == "Pending"
                namespace.set_run_status(run_id, {"phase": "Queued"})
                assert one.next_run()["status"] == "Queued"
                assert every.next_run()["status"] == "Queued"
                # Something else written: the runs' last version is behind the cluster's.
                client.CoreV1Api(kube).create_namespaced_config_map(
                    "default", {"metadata": {"name": "elsewhere"}}
                )
                cluster.stop()
                cluster.start()
                namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
                assert one.next_run()["status"] == "Executing"
                assert every.next_run()["status"] == "Executing"
                namespace.set_run_status(run_id, {"phase": "Completed"})
                assert [e.event for e in one.read_to_end()] == ["run", "end"]
                assert every.next_run()["status"] == "Completed"
    assert "listing them again" in caplog.text  # the 410, and the list after it
