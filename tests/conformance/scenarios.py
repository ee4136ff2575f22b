"""The request sequences the differential suite sends to both clusters. Each scenario works in
its own namespace and returns its transcript; the tests compare transcripts between clusters
and check the status codes kube-apiserver gives (read from its source, v1.37)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from podtask._contract.status_patches import version_pin
from tests.conformance.conformance_client import Cluster, Exchange, Transcript, normalise

GROUP = "conformance.podtask.dev"
GADGETS = f"/apis/{GROUP}/v1"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
REPO = Path(__file__).resolve().parents[2]
Scenario = Callable[[Cluster, str], Transcript]

GADGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size", "color"],
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minReplicas) || !has(self.maxReplicas) || "
                    "self.minReplicas <= self.maxReplicas",
                    "message": "minReplicas must not exceed maxReplicas",
                    "fieldPath": ".minReplicas",
                },
                {
                    "rule": "self.size == oldSelf.size || self.mutable",
                    "message": "size is immutable unless mutable",
                },
                {
                    "rule": "!has(self.note) || self.note != 'forbidden'",
                    "reason": "FieldValueForbidden",
                    "message": "note may not say forbidden",
                    "fieldPath": ".note",
                },
            ],
            "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "color": {"type": "string", "enum": ["red", "green", "blue"]},
                "name": {"type": "string", "maxLength": 8, "pattern": "^[a-z]+$"},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "when": {"type": "string", "format": "date-time"},
                "tags": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "labels": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "string",
                        "maxLength": 20,
                        "x-kubernetes-validations": [{"rule": "self.size() < 5"}],
                    },
                },
                "limits": {
                    "type": "array",
                    "maxItems": 4,
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "maxLength": 10},
                            "value": {"type": "integer", "default": 1},
                        },
                        "x-kubernetes-validations": [{"rule": "self.value > 0"}],
                    },
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "port": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string", "nullable": True},
                "mode": {"type": "string", "default": "auto"},
                "mutable": {"type": "boolean", "default": False},
                "minReplicas": {"type": "integer"},
                "maxReplicas": {"type": "integer"},
                "big": {"type": "integer"},
                "fraction": {"type": "number"},
                "blob": {"type": "string"},
                "code": {
                    "type": "string",
                    "maxLength": 16,
                    "x-kubernetes-validations": [
                        {
                            "rule": "self.startsWith('x')",
                            "messageExpression": "'code must start with x, got ' + self",
                        }
                    ],
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string", "enum": ["Pending", "Ready"]},
                "count": {"type": "integer", "minimum": 0},
            },
        },
    },
}


def gadget_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": GADGET_SCHEMA},
                }
            ],
        },
    }


def install_crds(cluster: Cluster) -> None:
    """The gadget CRD and podtask's own, established and served."""
    crds = [gadget_crd()]
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crds.append(yaml.safe_load(path.read_text()))
    for crd in crds:
        answer = cluster.request("POST", CRDS, crd)
        assert answer.status in (201, 409), answer.body
    for crd in crds:
        spec = crd["spec"]
        version = spec["versions"][0]["name"]
        path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
        cluster.wait_until(
            lambda path=path: cluster.request("GET", path).status == 200,
            f"{crd['metadata']['name']} served",
        )


def namespace(cluster: Cluster, name: str) -> None:
    answer = cluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert answer.status == 201, answer.body


def gadget(object_name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": object_name},
        "spec": {"size": 1, "color": "red", **spec},
    }


def gadgets(ns: str, name: str = "", sub: str = "") -> str:
    path = f"{GADGETS}/namespaces/{ns}/gadgets"
    if name:
        path += f"/{name}"
    if sub:
        path += f"/{sub}"
    return path


def configmaps(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


# ---------------------------------------------------------------- scenarios


def create_and_conflict(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    created = cluster.request("POST", gadgets(ns), gadget("g1"))
    t.add("create", created)
    t.add("create again", cluster.request("POST", gadgets(ns), gadget("g1")))
    stale = copy.deepcopy(created.body)
    fresh = copy.deepcopy(created.body)
    fresh["spec"]["color"] = "green"
    t.add("update", cluster.request("PUT", gadgets(ns, "g1"), fresh))
    stale["spec"]["color"] = "blue"
    t.add("update from a stale resourceVersion", cluster.request("PUT", gadgets(ns, "g1"), stale))
    t.add("get", cluster.request("GET", gadgets(ns, "g1")))
    t.add("get missing", cluster.request("GET", gadgets(ns, "nope")))
    no_version = copy.deepcopy(created.body)
    del no_version["metadata"]["resourceVersion"]
    t.add("update without resourceVersion", cluster.request("PUT", gadgets(ns, "g1"), no_version))
    # Any patch that leaves a resourceVersion in the object makes it a precondition: how the
    # operator pins its JSON patches of a run's status to the version it decided from.
    for what, version in (
        ("stale", created.body["metadata"]["resourceVersion"]),
        ("current", cluster.request("GET", gadgets(ns, "g1")).body["metadata"]["resourceVersion"]),
    ):
        t.add(
            f"JSON patch pinned to the {what} resourceVersion",
            cluster.request(
                "PATCH",
                gadgets(ns, "g1"),
                [version_pin(version), {"op": "add", "path": "/spec/color", "value": "red"}],
                content_type="application/json-patch+json",
            ),
        )
    return t


def invalid_custom_resources(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    cases: list[tuple[str, dict[str, Any]]] = [
        ("wrong type", gadget("bad1", size="three")),
        ("enum", gadget("bad2", color="purple")),
        ("maximum", gadget("bad3", size=11)),
        ("minimum", gadget("bad4", size=0)),
        ("maxLength and pattern", gadget("bad5", name="TooLongName")),
        ("pattern", gadget("bad6", name="ab1")),
        ("exclusiveMinimum", gadget("bad7", ratio=0)),
        ("format date-time", gadget("bad8", when="yesterday")),
        ("maxItems", gadget("bad9", tags=["a", "b", "c", "d"])),
        ("set duplicates", gadget("bad10", tags=["a", "a"])),
        ("int-or-string", gadget("bad11", port=True)),
        ("additionalProperties type", gadget("bad12", labels={"a": 1})),
        ("nullable", gadget("good13", note=None)),
        ("null on a non-nullable field is dropped", gadget("good14", name=None)),
        ("CEL rule with fieldPath", gadget("bad15", minReplicas=3, maxReplicas=2)),
        ("CEL messageExpression", gadget("bad16", code="abc")),
        ("CEL not run on an invalid object", gadget("bad17", size="x", code="abc")),
        ("several errors", gadget("bad18", size=20, color="pink", name="ABC")),
        (
            "required",
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": "Gadget",
                "metadata": {"name": "bad19"},
                "spec": {},
            },
        ),
        (
            "required spec",
            {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": "bad20"}},
        ),
        ("preserve-unknown-fields keeps anything", gadget("good21", free={"x": {"y": [1, "z"]}})),
        ("integral float for an integer", gadget("good22", size=2.0)),
        ("CEL reason Forbidden", gadget("bad23", note="forbidden")),
        ("CEL on a map value", gadget("bad24", labels={"ok": "abc", "long": "abcdefg"})),
        (
            "CEL on list items, defaults in items",
            gadget("bad25", limits=[{"name": "a"}, {"name": "b", "value": 0}]),
        ),
        ("list-type map duplicate keys", gadget("bad26", limits=[{"name": "a"}, {"name": "a"}])),
        ("required in list items", gadget("bad27", limits=[{"value": 2}])),
    ]
    for label, body in cases:
        t.add(label, cluster.request("POST", gadgets(ns), body))
    return t


def invalid_taskrun(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    body = {
        "apiVersion": "podtask.dev/v1alpha1",
        "kind": "TaskRun",
        "metadata": {"name": "bad-run"},
        "spec": {"task": 5, "bogus": True},
        "status": {"phase": "Bogus"},
    }
    t.add(
        "taskrun of the wrong shape",
        cluster.request("POST", f"/apis/podtask.dev/v1alpha1/namespaces/{ns}/taskruns", body),
    )
    return t


def unknown_fields(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    body = gadget("u1", extra="x", tags=["a"])
    body["spec"]["nested"] = {"deep": 1}
    body["top"] = 1
    body["metadata"]["labels"] = {"a": "b"}
    body["metadata"]["colour"] = "red"
    t.add("default (Warn)", cluster.request("POST", gadgets(ns), body))
    t.add("stored pruned", cluster.request("GET", gadgets(ns, "u1")))
    strict = copy.deepcopy(body)
    strict["metadata"]["name"] = "u2"
    t.add(
        "Strict", cluster.request("POST", gadgets(ns), strict, params={"fieldValidation": "Strict"})
    )
    ignore = copy.deepcopy(body)
    ignore["metadata"]["name"] = "u3"
    t.add(
        "Ignore", cluster.request("POST", gadgets(ns), ignore, params={"fieldValidation": "Ignore"})
    )
    duplicate = (
        b'{"apiVersion":"' + GROUP.encode() + b'/v1","kind":"Gadget","metadata":{"name":"u4"},'
        b'"spec":{"size":1,"size":2,"color":"red"}}'
    )
    t.add(
        "duplicate field, Strict",
        cluster.request("POST", gadgets(ns), raw=duplicate, params={"fieldValidation": "Strict"}),
    )
    t.add(
        "bad directive",
        cluster.request("POST", gadgets(ns), gadget("u5"), params={"fieldValidation": "Loud"}),
    )
    t.add(
        "merge patch with an unknown field, Strict",
        cluster.request(
            "PATCH",
            gadgets(ns, "u1"),
            {"spec": {"unknown": 1}},
            content_type="application/merge-patch+json",
            params={"fieldValidation": "Strict"},
        ),
    )
    return t


def defaults_and_numbers(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    body = gadget("n1", big=2**62 + 1, fraction=1.0, ratio=0.5, free={"f": 2.50, "i": 3.0})
    t.add("create", cluster.request("POST", gadgets(ns), body))
    t.add("get", cluster.request("GET", gadgets(ns, "n1")))
    t.add(
        "an integer beyond int64", cluster.request("POST", gadgets(ns), gadget("n2", big=2**63 + 5))
    )
    t.add("a fraction for an integer", cluster.request("POST", gadgets(ns), gadget("n3", size=2.5)))
    t.add(
        "beyond int64 where any number goes",
        cluster.request(
            "POST", gadgets(ns), gadget("n4", free={"huge": 2**64 + 1, "precise": 0.1 + 0.2})
        ),
    )
    t.add("get it", cluster.request("GET", gadgets(ns, "n4")))
    return t


def status_subresource(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    body = gadget("s1")
    body["status"] = {"phase": "Ready", "count": 1}
    created = cluster.request("POST", gadgets(ns), body)
    t.add("create drops status", created)
    with_status = copy.deepcopy(created.body)
    with_status["status"] = {"phase": "Pending", "count": 2}
    written = cluster.request("PUT", gadgets(ns, "s1", "status"), with_status)
    t.add("status write", written)
    main = copy.deepcopy(written.body)
    main["status"] = {"phase": "Ready"}
    main["spec"]["color"] = "blue"
    updated = cluster.request("PUT", gadgets(ns, "s1"), main)
    t.add("main write ignores status", updated)
    spec_change = copy.deepcopy(updated.body)
    spec_change["spec"]["color"] = "green"
    spec_change["metadata"]["labels"] = {"via": "status"}
    spec_change["status"]["count"] = 5
    t.add(
        "status write ignores spec and labels",
        cluster.request("PUT", gadgets(ns, "s1", "status"), spec_change),
    )
    t.add(
        "invalid status",
        cluster.request(
            "PATCH",
            gadgets(ns, "s1", "status"),
            {"status": {"phase": "Bogus", "count": -1}},
            content_type="application/merge-patch+json",
        ),
    )
    t.add(
        "status merge patch",
        cluster.request(
            "PATCH",
            gadgets(ns, "s1", "status"),
            {"status": {"phase": "Ready"}},
            content_type="application/merge-patch+json",
        ),
    )
    t.add(
        "transition rule",
        cluster.request(
            "PATCH",
            gadgets(ns, "s1"),
            {"spec": {"size": 2}},
            content_type="application/merge-patch+json",
        ),
    )
    t.add(
        "transition rule satisfied",
        cluster.request(
            "PATCH",
            gadgets(ns, "s1"),
            {"spec": {"size": 3, "mutable": True}},
            content_type="application/merge-patch+json",
        ),
    )
    return t


def watch_from_old_version(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    first = cluster.request("POST", gadgets(ns), gadget("w1"))
    since = first.body["metadata"]["resourceVersion"]
    cluster.request("POST", gadgets(ns), gadget("w2"))
    cluster.request("DELETE", gadgets(ns, "w1"))
    events = cluster.watch(gadgets(ns), {"resourceVersion": since}, count=2, timeout=5)
    t.note("events since a resourceVersion", [(e["type"], normalise(e["object"])) for e in events])
    # Neither cluster has compacted its history yet: a watch from the start replays it.
    replay = cluster.watch(gadgets(ns), {"resourceVersion": "1"}, count=3, timeout=5)
    t.note("events since resourceVersion 1", [(e["type"], normalise(e["object"])) for e in replay])
    return t


def pagination(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    for index in range(5):
        cluster.request("POST", gadgets(ns), gadget(f"p{index}"))
    pages: list[Any] = []
    token = ""
    while True:
        params = {"limit": "2"}
        if token:
            params["continue"] = token
        page = cluster.request("GET", gadgets(ns), params=params)
        meta = page.body["metadata"]
        pages.append(
            {
                "names": [item["metadata"]["name"] for item in page.body["items"]],
                "remainingItemCount": meta.get("remainingItemCount"),
                "more": bool(meta.get("continue")),
            }
        )
        token = meta.get("continue", "")
        if not token:
            break
    t.note("pages", pages)
    t.add(
        "bad continue token",
        cluster.request("GET", gadgets(ns), params={"limit": "2", "continue": "garbage"}),
        body={"status": "<failure>"},
    )
    return t


def selectors(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    for name, labels in [("l1", {"app": "a", "tier": "x"}), ("l2", {"app": "b"}), ("l3", {})]:
        body = gadget(name)
        body["metadata"]["labels"] = labels
        cluster.request("POST", gadgets(ns), body)

    def names(params: dict[str, str]) -> Any:
        answer = cluster.request("GET", gadgets(ns), params=params)
        if answer.status != 200:
            return answer.status
        return sorted(i["metadata"]["name"] for i in answer.body["items"])

    for selector in ["app=a", "app!=a", "app in (a,b)", "!tier", "tier", "app notin (a)"]:
        t.note(f"labelSelector {selector}", names({"labelSelector": selector}))
    t.note("fieldSelector metadata.name=l2", names({"fieldSelector": "metadata.name=l2"}))
    t.note("fieldSelector metadata.name!=l2", names({"fieldSelector": "metadata.name!=l2"}))
    t.add(
        "bad label selector",
        cluster.request("GET", gadgets(ns), params={"labelSelector": "app in a"}),
        body={"status": "<failure>"},
    )
    return t


def _owner_and_dependents(cluster: Cluster, ns: str, owner: str) -> None:
    made = cluster.request("POST", configmaps(ns), {"metadata": {"name": owner}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner,
        "uid": made.body["metadata"]["uid"],
    }
    for index in range(2):
        cluster.request(
            "POST",
            configmaps(ns),
            {"metadata": {"name": f"{owner}-d{index}", "ownerReferences": [reference]}},
        )


def _names(cluster: Cluster, ns: str) -> list[str]:
    listed = cluster.request("GET", configmaps(ns)).body["items"]
    return sorted(
        i["metadata"]["name"] for i in listed if i["metadata"]["name"] != "kube-root-ca.crt"
    )


def cascading_deletes(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    for policy in ("Background", "Foreground", "Orphan"):
        owner = policy.lower()
        _owner_and_dependents(cluster, ns, owner)
        answer = cluster.request("DELETE", configmaps(ns, owner), {"propagationPolicy": policy})
        t.add(f"delete {policy}", answer)
        cluster.wait_until(
            lambda owner=owner: cluster.request("GET", configmaps(ns, owner)).status == 404,
            f"{owner} deleted",
        )
        if policy != "Orphan":
            cluster.wait_until(
                lambda owner=owner: not any(n.startswith(owner) for n in _names(cluster, ns)),
                f"{owner}'s dependents deleted",
            )
    t.note("left", _names(cluster, ns))
    t.add("orphan keeps no ownerReferences", cluster.request("GET", configmaps(ns, "orphan-d0")))
    return t


def oversize_object(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    t.add(
        "1.4 MiB fits",
        cluster.request("POST", gadgets(ns), gadget("big1", blob="x" * (1400 * 1024))),
        body="<object>",
    )
    t.add(
        "1.6 MiB does not",
        cluster.request("POST", gadgets(ns), gadget("big2", blob="x" * (1600 * 1024))),
    )
    t.add(
        "over the 3 MiB request limit",
        cluster.request("POST", gadgets(ns), gadget("big3", blob="x" * (3 * 1024 * 1024 + 10))),
    )
    return t


def server_side_apply(cluster: Cluster, ns: str) -> Transcript:
    t = Transcript()
    apply_type = "application/apply-patch+yaml"
    config = gadget("a1", tags=["x"])
    config["metadata"]["labels"] = {"owner": "one"}
    t.add(
        "apply creates",
        cluster.request(
            "PATCH",
            gadgets(ns, "a1"),
            config,
            content_type=apply_type,
            params={"fieldManager": "one"},
        ),
    )
    t.add(
        "apply without fieldManager",
        cluster.request("PATCH", gadgets(ns, "a1"), config, content_type=apply_type),
    )
    other = gadget("a1", color="blue")
    t.add(
        "conflicting apply",
        cluster.request(
            "PATCH",
            gadgets(ns, "a1"),
            other,
            content_type=apply_type,
            params={"fieldManager": "two"},
        ),
    )
    t.add(
        "forced apply",
        cluster.request(
            "PATCH",
            gadgets(ns, "a1"),
            other,
            content_type=apply_type,
            params={"fieldManager": "two", "force": "true"},
        ),
    )
    smaller = gadget("a1", color="blue")
    t.add(
        "apply drops what the manager no longer sets",
        cluster.request(
            "PATCH",
            gadgets(ns, "a1"),
            smaller,
            content_type=apply_type,
            params={"fieldManager": "one", "force": "true"},
        ),
    )
    keyed = gadget("a2", limits=[{"name": "cpu", "value": 2}])
    t.add(
        "apply a list-type map",
        cluster.request(
            "PATCH",
            gadgets(ns, "a2"),
            keyed,
            content_type=apply_type,
            params={"fieldManager": "one"},
        ),
    )
    t.add(
        "apply an invalid object",
        cluster.request(
            "PATCH",
            gadgets(ns, "a2"),
            gadget("a2", size=99),
            content_type=apply_type,
            params={"fieldManager": "one"},
        ),
    )
    return t


def _pods(ns: str, name: str = "", sub: str = "") -> str:
    return (
        f"/api/v1/namespaces/{ns}/pods" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")
    )


def _pod(name: str, **resources: dict[str, str]) -> dict[str, Any]:
    # A scheduler of no one's: neither cluster's scheduler touches it; bindings are ours.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "schedulerName": "nobody",
            "serviceAccountName": "runner",
            "automountServiceAccountToken": False,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11",
                    "command": ["true"],
                    "resources": resources
                    or {
                        "limits": {"cpu": "4000m", "memory": "8192Mi"},
                        "requests": {"cpu": "375m", "memory": "1536Mi"},
                    },
                }
            ],
        },
    }


def _binding(name: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def _grace(exchange: Exchange) -> Any:
    meta = (exchange.body or {}).get("metadata") or {}
    return {
        "deletionTimestamp": "deletionTimestamp" in meta,
        "deletionGracePeriodSeconds": meta.get("deletionGracePeriodSeconds"),
    }


def pods_binding_and_graceful_deletion(cluster: Cluster, ns: str) -> Transcript:
    """Quantities stored canonical; `pods/binding`; deletion immediate for a pod never bound
    or finished, graceful (only shortened by later deletes) for one bound to a node."""
    t = Transcript()
    t.add(
        "service account",
        cluster.request(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "runner"}}
        ),
        body="<object>",
    )
    created = cluster.request("POST", _pods(ns), _pod("q1"))
    t.add(
        "quantities stored canonical",
        created,
        body=(created.body.get("spec") or {}).get("containers", [{}])[0].get("resources"),
    )
    limited = cluster.request("POST", _pods(ns), _pod("q4", limits={"cpu": "2000m"}))
    t.add(
        "requests defaulted from limits",
        limited,
        body=(limited.body.get("spec") or {}).get("containers", [{}])[0].get("resources"),
    )
    t.add(
        "a quantity that is none",
        cluster.request("POST", _pods(ns), _pod("q0", limits={"memory": "lots"})),
        body="<refused>",
    )
    unbound = cluster.request("DELETE", _pods(ns, "q1"))
    t.add("never bound: deleted at once", unbound, body=_grace(unbound))
    t.add("gone", cluster.request("GET", _pods(ns, "q1")))

    cluster.request("POST", _pods(ns), _pod("q2"))
    t.add("bind", cluster.request("POST", _pods(ns, "q2", "binding"), _binding("q2", "ghost")))
    t.add(
        "bind again",
        cluster.request("POST", _pods(ns, "q2", "binding"), _binding("q2", "other")),
    )
    bound = cluster.request("GET", _pods(ns, "q2"))
    t.add(
        "bound",
        bound,
        body={
            "nodeName": bound.body["spec"].get("nodeName"),
            "conditions": [
                {"type": c["type"], "status": c["status"]}
                for c in (bound.body.get("status") or {}).get("conditions") or []
            ],
        },
    )
    for label, params in (
        ("bound: graceful", None),
        ("a longer grace changes nothing", {"gracePeriodSeconds": "60"}),
        ("a shorter one shortens it", {"gracePeriodSeconds": "10"}),
    ):
        answer = cluster.request("DELETE", _pods(ns, "q2"), params=params)
        t.add(label, answer, body=_grace(answer))
    final = cluster.request("DELETE", _pods(ns, "q2"), params={"gracePeriodSeconds": "0"})
    t.add("the kubelet's delete (grace 0)", final, body=_grace(final))
    t.add("gone after the kubelet's delete", cluster.request("GET", _pods(ns, "q2")))

    cluster.request("POST", _pods(ns), _pod("q3"))
    cluster.request("POST", _pods(ns, "q3", "binding"), _binding("q3", "ghost"))
    finished = cluster.request(
        "PATCH",
        _pods(ns, "q3", "status"),
        {"status": {"phase": "Succeeded"}},
        content_type="application/merge-patch+json",
    )
    t.add("finished", finished, body=finished.body.get("status", {}).get("phase"))
    done = cluster.request("DELETE", _pods(ns, "q3"))
    t.add("finished: deleted at once", done, body=_grace(done))
    t.add("gone at once", cluster.request("GET", _pods(ns, "q3")))
    return t


SCENARIOS: dict[str, Scenario] = {
    "pods_binding_and_graceful_deletion": pods_binding_and_graceful_deletion,
    "create_and_conflict": create_and_conflict,
    "invalid_custom_resources": invalid_custom_resources,
    "invalid_taskrun": invalid_taskrun,
    "unknown_fields": unknown_fields,
    "defaults_and_numbers": defaults_and_numbers,
    "status_subresource": status_subresource,
    "watch_from_old_version": watch_from_old_version,
    "pagination": pagination,
    "selectors": selectors,
    "cascading_deletes": cascading_deletes,
    "oversize_object": oversize_object,
    "server_side_apply": server_side_apply,
}


def run(cluster: Cluster, name: str) -> Transcript:
    ns = f"conf-{name.replace('_', '-')}"
    namespace(cluster, ns)
    return SCENARIOS[name](cluster, ns)


__all__ = ["SCENARIOS", "Exchange", "install_crds", "run"]
