"""A tiny kopf operator against the dev cluster: kopf discovers the CRD, sees a new object,
runs its create and event handlers, patches status and posts a Kubernetes event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kopf
from devcluster_testing import CRD_GROUP, wait_for, widget_crd
from kubernetes import client
from kubernetes.client.rest import ApiException

from podtask_devcluster import EmbeddedCluster


def test_kopf_operator_handles_custom_resource(
    cluster: EmbeddedCluster, api: client.ApiClient, name: str
) -> None:
    client.ApiextensionsV1Api(api).create_custom_resource_definition(
        widget_crd("sprockets", "Sprocket")
    )
    registry = kopf.OperatorRegistry()
    seen_events: list[tuple[str, str]] = []

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
        settings.watching.server_timeout = 10
        settings.posting.enabled = True

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=cluster.url, insecure=True)

    @kopf.on.create(CRD_GROUP, "v1", "sprockets", id="created", registry=registry)
    def created(body: kopf.Body, patch: kopf.Patch, **_: Any) -> dict[str, Any]:
        patch.status["phase"] = "Handled"
        kopf.info(body, reason="Sprocketed", message=f"kopf handled {body.metadata.name}")
        return {"size": body.spec.get("size")}

    deleted: list[str] = []

    @kopf.on.delete(CRD_GROUP, "v1", "sprockets", id="deleted", registry=registry)
    def on_delete(body: kopf.Body, **_: Any) -> None:
        deleted.append(body.metadata.name or "")

    @kopf.on.event(CRD_GROUP, "v1", "sprockets", registry=registry)
    def event(type: str | None, body: kopf.Body, **_: Any) -> None:
        seen_events.append((str(type), body.metadata.name or ""))

    stop = threading.Event()
    ready = threading.Event()

    def run() -> None:
        asyncio.run(
            kopf.operator(
                registry=registry,
                standalone=True,
                namespaces=["default"],
                clusterwide=False,
                stop_flag=stop,
                ready_flag=ready,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(15)
        objects = client.CustomObjectsApi(api)
        objects.create_namespaced_custom_object(
            CRD_GROUP,
            "v1",
            "default",
            "sprockets",
            {
                "apiVersion": f"{CRD_GROUP}/v1",
                "kind": "Sprocket",
                "metadata": {"name": name},
                "spec": {"size": 4},
            },
        )

        def handled() -> dict[str, Any] | None:
            obj: dict[str, Any] = objects.get_namespaced_custom_object(
                CRD_GROUP, "v1", "default", "sprockets", name
            )
            return obj if obj.get("status", {}).get("phase") == "Handled" else None

        obj = wait_for(handled, 15, what="kopf to patch the status")
        assert obj["status"]["created"] == {"size": 4}
        annotations = obj["metadata"]["annotations"]
        assert "kopf.zalando.org/last-handled-configuration" in annotations

        def posted() -> list[Any]:
            events = (
                client.CoreV1Api(api)
                .list_namespaced_event("default", field_selector=f"involvedObject.name={name}")
                .items
            )
            return [e for e in events if e.reason == "Sprocketed"]

        event_objects = wait_for(posted, 15, what="kopf to post its event")
        assert event_objects[0].message == f"kopf handled {name}"
        assert event_objects[0].involved_object.kind == "Sprocket"
        # kopf reports objects from its initial listing with type None, later ones as ADDED.
        assert seen_events[0] in (("ADDED", name), ("None", name))
        wait_for(lambda: ("MODIFIED", name) in seen_events, what="kopf to see its own patch")

        # kopf's finalizer holds the object until its deletion handler has run.
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        objects.delete_namespaced_custom_object(CRD_GROUP, "v1", "default", "sprockets", name)

        def removed() -> bool:
            try:
                objects.get_namespaced_custom_object(CRD_GROUP, "v1", "default", "sprockets", name)
            except ApiException as error:
                return int(error.status) == 404
            return False

        wait_for(removed, 15, what="kopf to release its finalizer")
        assert deleted == [name]
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
