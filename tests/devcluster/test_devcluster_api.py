"""The API server through the official `kubernetes` client: CRDs and custom resources, CRUD,
status subresource, error codes, lists, watches, finalizers and garbage collection."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from devcluster_testing import CRD_GROUP, wait_for, widget_crd
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from podtask_devcluster import EmbeddedCluster

NS = "default"


def _widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "labels": {"test": "api"}},
        "spec": {"color": "red", "size": 1, **spec},
    }


def _pod(name: str, *command: str, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **extra.pop("metadata", {})},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "python:3.11", "command": list(command)}],
            **extra,
        },
    }


def _status(error: ApiException) -> int:
    return int(error.status)


def test_discovery_lists_builtins_and_crd(api: client.ApiClient, widgets: str) -> None:
    core = client.CoreV1Api(api).get_api_resources()
    pods = next(r for r in core.resources if r.name == "pods")
    assert pods.short_names == ["po"] and "all" in pods.categories and pods.namespaced
    assert {"pods/status", "pods/log"} <= {r.name for r in core.resources}
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {CRD_GROUP, "apiextensions.k8s.io", "coordination.k8s.io", "apps"} <= groups
    custom = client.CustomObjectsApi(api).get_api_resources(CRD_GROUP, "v1")
    names = {r.name: r for r in custom.resources}
    assert names["widgets"].kind == "Widget" and names["widgets"].short_names == ["wix"]
    assert "widgets/status" in names
    crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(f"widgets.{CRD_GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"Established": "True", "NamesAccepted": "True"}
    assert crd.status.accepted_names.kind == "Widget"


def test_custom_resource_crud_and_metadata(api: client.ApiClient, widgets: str, name: str) -> None:
    objects = client.CustomObjectsApi(api)
    created = objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    meta = created["metadata"]
    assert meta["generation"] == 1 and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    got = objects.get_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name)
    assert got == created

    patched = objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"spec": {"size": 2}}
    )
    assert patched["spec"] == {"color": "red", "size": 2}
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    labelled = objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"metadata": {"labels": {"extra": "yes"}}}
    )
    assert labelled["metadata"]["generation"] == 2  # metadata changes do not count

    json_patched = objects.patch_namespaced_custom_object(
        CRD_GROUP,
        "v1",
        NS,
        widgets,
        name,
        [{"op": "replace", "path": "/spec/color", "value": "b"}],
        _content_type="application/json-patch+json",
    )
    assert json_patched["spec"]["color"] == "b"

    replaced_body = dict(json_patched, spec={"color": "green", "size": 9})
    replaced = objects.replace_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, replaced_body
    )
    assert replaced["spec"] == {"color": "green", "size": 9}

    with pytest.raises(ApiException) as stale:
        objects.replace_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name, created)
    assert _status(stale.value) == 409 and '"reason":"Conflict"' in stale.value.body

    objects.delete_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name)
    with pytest.raises(ApiException) as missing:
        objects.get_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name)
    assert _status(missing.value) == 404 and '"reason":"NotFound"' in missing.value.body


def test_status_subresource(api: client.ApiClient, widgets: str, name: str) -> None:
    objects = client.CustomObjectsApi(api)
    body = _widget(name)
    body["status"] = {"phase": "ignored on create"}
    created = objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, body)
    assert "status" not in created
    with_status = objects.patch_namespaced_custom_object_status(
        CRD_GROUP, "v1", NS, widgets, name, {"status": {"phase": "Ready"}, "spec": {"size": 99}}
    )
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["spec"]["size"] == 1  # /status writes change only status
    assert with_status["metadata"]["generation"] == 1
    main = objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"status": {"phase": "Hacked"}, "spec": {"size": 5}}
    )
    assert main["status"] == {"phase": "Ready"}  # main-resource writes keep the stored status
    assert main["spec"]["size"] == 5


def test_crd_without_status_subresource_and_removal(
    api: client.ApiClient, widgets: str, name: str
) -> None:
    # `widgets` keeps the group's version served once gadgets are gone (as kube does, a group
    # version with no resource left is a 404): said here, not left to an earlier test, which
    # on another pytest-xdist worker did not run first.
    extensions = client.ApiextensionsV1Api(api)
    objects = client.CustomObjectsApi(api)
    extensions.create_custom_resource_definition(widget_crd("gadgets", "Gadget", status=False))
    body = dict(_widget(name), kind="Gadget", status={"phase": "Plain"})
    created = objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, "gadgets", body)
    assert created["status"] == {"phase": "Plain"}
    extensions.delete_custom_resource_definition(f"gadgets.{CRD_GROUP}")
    resources = client.CustomObjectsApi(api).get_api_resources(CRD_GROUP, "v1").resources
    assert "gadgets" not in {r.name for r in resources}
    with pytest.raises(ApiException) as gone:
        objects.get_namespaced_custom_object(CRD_GROUP, "v1", NS, "gadgets", name)
    assert _status(gone.value) == 404


def test_error_codes(api: client.ApiClient, widgets: str, name: str) -> None:
    core = client.CoreV1Api(api)
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    with pytest.raises(ApiException) as exists:
        objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    assert _status(exists.value) == 409 and "AlreadyExists" in exists.value.body
    with pytest.raises(ApiException) as invalid:
        objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget("Bad_Name"))
    assert _status(invalid.value) == 422 and "Invalid" in invalid.value.body
    with pytest.raises(ApiException) as unnamed:
        core.create_namespaced_config_map(NS, {"metadata": {}, "data": {}})
    assert _status(unnamed.value) == 422
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("nope", {"metadata": {"name": "x"}})
    assert _status(no_namespace.value) == 404
    with pytest.raises(ApiException) as missing_patch:
        objects.patch_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, "absent", {})
    assert _status(missing_patch.value) == 404
    with pytest.raises(ApiException) as bad_label:
        core.create_namespaced_config_map(
            NS, {"metadata": {"name": name, "labels": {"k": "not valid!"}}}
        )
    assert _status(bad_label.value) == 422


def test_generate_name_and_configmap_roundtrip(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(
        NS, {"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}
    )
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9
    assert core.read_namespaced_config_map(created.metadata.name, NS).data == {"k": "v"}


def test_list_selectors_and_pagination(api: client.ApiClient, widgets: str) -> None:
    objects = client.CustomObjectsApi(api)
    for index in range(7):
        body = _widget(f"page-{index}")
        body["metadata"]["labels"] = {"page": "yes", "parity": "even" if index % 2 == 0 else "odd"}
        objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, body)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = objects.list_namespaced_custom_object(
            CRD_GROUP, "v1", NS, widgets, label_selector="page=yes", limit=3, _continue=token
        )
        assert page["kind"] == "WidgetList"
        seen.extend(item["metadata"]["name"] for item in page["items"])
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == 3 and sorted(seen) == [f"page-{i}" for i in range(7)]
    assert len(set(seen)) == 7
    odd = objects.list_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, label_selector="page=yes,parity in (odd)"
    )
    assert sorted(i["metadata"]["name"] for i in odd["items"]) == ["page-1", "page-3", "page-5"]
    by_name = objects.list_cluster_custom_object(
        CRD_GROUP, "v1", widgets, field_selector="metadata.name=page-2"
    )
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["page-2"]
    objects_left = client.CustomObjectsApi(api)
    deleted = objects_left.delete_collection_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, label_selector="page=yes"
    )
    assert len(deleted["items"]) == 7
    rest = objects_left.list_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, label_selector="page=yes"
    )
    assert rest["items"] == []


def test_watch_from_resource_version(api: client.ApiClient, widgets: str, name: str) -> None:
    objects = client.CustomObjectsApi(api)
    start = objects.list_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets)
    version = start["metadata"]["resourceVersion"]
    objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"spec": {"size": 3}}
    )
    objects.delete_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name)
    events = []
    for event in watch.Watch().stream(
        objects.list_namespaced_custom_object,
        CRD_GROUP,
        "v1",
        NS,
        widgets,
        resource_version=version,
        field_selector=f"metadata.name={name}",
        timeout_seconds=1,
    ):
        events.append((event["type"], event["object"]["metadata"]["name"]))
    assert events == [("ADDED", name), ("MODIFIED", name), ("DELETED", name)]


def test_watch_live_events_and_selector_exit(
    api: client.ApiClient, widgets: str, name: str
) -> None:
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    events: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()

    def consume() -> None:
        stream = watch.Watch().stream(
            objects.list_namespaced_custom_object,
            CRD_GROUP,
            "v1",
            NS,
            widgets,
            label_selector="test=api",
            field_selector=f"metadata.name={name}",
            timeout_seconds=3,
        )
        for event in stream:
            events.append((event["type"], event["object"]))
            ready.set()
            if event["type"] == "DELETED":
                break

    thread = threading.Thread(target=consume)
    thread.start()
    assert ready.wait(5)  # synthetic ADDED for the existing object
    objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"spec": {"size": 7}}
    )
    objects.patch_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, name, {"metadata": {"labels": {"test": "other"}}}
    )
    thread.join(5)
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1][1]["spec"]["size"] == 7


def test_finalizers_delay_removal(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": name, "finalizers": ["example.dev/hold"]}}
    )
    core.delete_namespaced_config_map(name, NS)
    held = core.read_namespaced_config_map(name, NS)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map(name, NS, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map(name, NS)
    assert _status(gone.value) == 404


def test_delete_preconditions(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    with pytest.raises(ApiException) as mismatch:
        core.delete_namespaced_config_map(
            name, NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="x"))
        )
    assert _status(mismatch.value) == 409
    core.delete_namespaced_config_map(name, NS)


def test_owner_reference_garbage_collection(api: client.ApiClient, widgets: str, name: str) -> None:
    objects = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    owner = objects.create_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, _widget(name))
    reference = {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "name": name,
        "uid": owner["metadata"]["uid"],
    }
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": f"{name}-child", "ownerReferences": [reference]}}
    )
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": f"{name}-kept", "ownerReferences": [reference]}}
    )
    objects.delete_namespaced_custom_object(CRD_GROUP, "v1", NS, widgets, name)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map(f"{name}-child", NS)
        except ApiException as error:
            return _status(error) == 404
        return False

    wait_for(child_gone, 5, what="the dependent config map to be collected")

    # Orphan propagation strips the reference instead.
    owner2 = objects.create_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, _widget(f"{name}-o")
    )
    reference2 = dict(reference, name=f"{name}-o", uid=owner2["metadata"]["uid"])
    core.create_namespaced_config_map(
        NS, {"metadata": {"name": f"{name}-orphan", "ownerReferences": [reference2]}}
    )
    objects.delete_namespaced_custom_object(
        CRD_GROUP, "v1", NS, widgets, f"{name}-o", propagation_policy="Orphan"
    )
    orphan = core.read_namespaced_config_map(f"{name}-orphan", NS)
    assert orphan.metadata.owner_references is None


def test_pods_status_is_a_subresource(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_pod(NS, _pod(name, "sleep", "30"))
    assert created.status.phase == "Pending"
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod(name, NS)).status.phase == "Running" and p,
        what="pod running",
    )
    assert pod.spec.node_name == "podtask-dev"
    core.patch_namespaced_pod(name, NS, {"status": {"phase": "Succeeded"}})
    assert core.read_namespaced_pod(name, NS).status.phase == "Running"
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)


def test_request_counts_and_metrics(cluster: EmbeddedCluster, api: client.ApiClient) -> None:
    before = cluster.request_counts()
    core = client.CoreV1Api(api)
    core.list_namespaced_config_map(NS)
    core.read_namespace(NS)
    after = cluster.request_counts()
    assert after["list"] == before["list"] + 1
    assert after["get"] == before["get"] + 1
    with urllib.request.urlopen(f"{cluster.url}/metrics") as response:
        text = response.read().decode()
    # Labelled as kube-apiserver labels them: verb, group, resource, subresource; and
    # whether the cluster's own node sent it.
    assert (
        'apiserver_request_total{verb="list",group="",resource="configmaps",subresource="",'
        'node="false"}'
    ) in text


def test_create_observer_sees_store_at_admission(
    cluster: EmbeddedCluster, api: client.ApiClient, name: str
) -> None:
    seen: list[tuple[str, int]] = []

    def observe(obj: dict[str, Any]) -> None:
        if obj.get("kind") == "ConfigMap" and obj["metadata"]["name"].startswith(name):
            stored = cluster.objects("configmaps", namespace=NS)
            seen.append(
                (
                    obj["metadata"]["name"],
                    sum(1 for o in stored if o["metadata"]["name"].startswith(name)),
                )
            )

    cluster.add_create_observer(observe)
    try:
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"{name}-a"}})
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"{name}-b"}})
    finally:
        cluster.remove_create_observer(observe)
    assert seen == [(f"{name}-a", 1), (f"{name}-b", 2)]


def test_unsupported_patch_types(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NS, {"metadata": {"name": name}})
    # An apply needs a fieldManager (422 from PatchOptions validation, as kube-apiserver says).
    for content_type, status in [("application/apply-patch+yaml", 422), ("text/plain", 415)]:
        request = urllib.request.Request(
            f"{api.configuration.host}/api/v1/namespaces/{NS}/configmaps/{name}",
            data=b"{}",
            method="PATCH",
            headers={"Content-Type": content_type},
        )
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request)
        assert error.value.code == status


def test_watch_bookmarks_and_timeout(
    cluster: EmbeddedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podtask_devcluster import watch as watch_stream

    monkeypatch.setattr(watch_stream, "BOOKMARK_INTERVAL_SECONDS", 0.2)
    url = (
        f"{cluster.url}/api/v1/namespaces/{NS}/configmaps?watch=true&resourceVersion=1"
        "&allowWatchBookmarks=true&timeoutSeconds=1&labelSelector=nothing-matches"
    )

    def read_to_the_end() -> list[dict[str, Any]]:
        with urllib.request.urlopen(url, timeout=10) as response:
            return [json.loads(line) for line in response]

    # Bookmarks keep the stream busy: only the server's timeoutSeconds ends it (the minute's
    # deadline only turns a stream that never ends into a failure instead of a hang).
    lines: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: lines.extend(read_to_the_end()), daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "the watch went on past its timeoutSeconds"
    bookmarks = [line for line in lines if line["type"] == "BOOKMARK"]
    assert bookmarks and all(int(b["object"]["metadata"]["resourceVersion"]) > 0 for b in bookmarks)
    assert {line["type"] for line in lines} == {"BOOKMARK"}


def test_table_output_for_get_list_and_watch(cluster: EmbeddedCluster, name: str) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    request = urllib.request.Request(
        f"{cluster.url}/api/v1/namespaces?includeObject=None", headers={"Accept": accept}
    )
    with urllib.request.urlopen(request) as response:
        table = json.loads(response.read())
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    assert "object" not in table["rows"][0]
    watch_request = urllib.request.Request(
        f"{cluster.url}/api/v1/namespaces?watch=1&timeoutSeconds=1",
        headers={"Accept": accept.replace(";v=v1;", ";v=v1beta1;")},
    )
    with urllib.request.urlopen(watch_request) as response:
        events = [json.loads(line) for line in response]
    assert len(events) >= 3 and all(e["type"] == "ADDED" for e in events)
    assert events[0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    assert events[0]["object"]["columnDefinitions"]  # headers once, in the first event
    assert events[1]["object"]["columnDefinitions"] == []
    assert events[1]["object"]["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
