"""A raw Kubernetes API client for the differential suite, and the transcript it records: each
request's status code, the body normalised to what must be equal on both clusters (no uid,
resourceVersion, timestamps or other server-chosen values) and the Warning headers."""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import config

JsonObject = dict[str, Any]
GENERATED = {"uid", "resourceVersion", "creationTimestamp", "selfLink"}
_VERSION_NUMBERS = re.compile(r"(?<=too old resource version: )\d+ \(\d+\)")
_PATCHED_OBJECT = re.compile(r'Invalid value: "\{.*\}": ')
_WARNING = re.compile(r'^\d{3} [^ ]+ "(.*)"$')


@dataclass
class Exchange:
    status: int
    body: Any
    warnings: list[str]


@dataclass
class Step:
    label: str
    status: int
    body: Any
    warnings: list[str]


@dataclass
class Transcript:
    steps: list[Step] = field(default_factory=list)

    def add(self, label: str, exchange: Exchange, body: Any = None) -> None:
        shown = normalise(exchange.body) if body is None else body
        self.steps.append(Step(label, exchange.status, shown, sorted(exchange.warnings)))

    def note(self, label: str, value: Any) -> None:
        self.steps.append(Step(label, 0, value, []))

    def statuses(self) -> list[tuple[str, int]]:
        return [(step.label, step.status) for step in self.steps if step.status]


class Cluster:
    """One cluster under test: its name ('embedded' or 'real') and an HTTP client to it."""

    def __init__(self, name: str, kubeconfig: Path) -> None:
        self.name = name
        api = config.new_client_from_config(config_file=str(kubeconfig))
        settings = api.configuration
        headers = {"User-Agent": "podtask-conformance"}
        token = (settings.api_key or {}).get("authorization") or (settings.api_key or {}).get(
            "BearerToken"
        )
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        verify: Any = True
        if settings.host.startswith("https"):
            verify = ssl.create_default_context(cafile=settings.ssl_ca_cert)
            if settings.cert_file:
                verify.load_cert_chain(settings.cert_file, settings.key_file)
        self.http = httpx.Client(
            base_url=settings.host, headers=headers, verify=verify, timeout=30.0
        )
        api.close()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        raw: bytes | None = None,
    ) -> Exchange:
        content = raw
        if content is None and body is not None:
            if "yaml" in content_type:
                content = yaml.safe_dump(body).encode()
            else:
                content = json.dumps(body).encode()
        headers = {"Content-Type": content_type} if content is not None else {}
        response = self.http.request(method, path, content=content, params=params, headers=headers)
        try:
            decoded = response.json()
        except ValueError:
            decoded = response.text
        warnings = []
        for header in response.headers.get_list("warning"):
            match = _WARNING.match(header)
            warnings.append(json.loads(f'"{match[1]}"') if match else header)
        return Exchange(response.status_code, decoded, warnings)

    def watch(self, path: str, params: dict[str, str], count: int, timeout: float) -> list[Any]:
        """The first `count` events of a watch (fewer if it ends or `timeout` passes)."""
        events: list[Any] = []
        query = {**params, "watch": "true", "timeoutSeconds": str(int(timeout))}
        with self.http.stream("GET", path, params=query, timeout=timeout + 10) as response:
            if response.status_code != 200:
                response.read()
                return [{"type": "HTTP", "object": response.json()}]
            for line in response.iter_lines():
                if line.strip():
                    events.append(json.loads(line))
                if len(events) >= count:
                    break
        return events

    def wait_until(self, check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"{self.name}: timed out waiting for {what}")

    def close(self) -> None:
        self.http.close()


def normalise(value: Any) -> Any:
    """What must be equal on both clusters."""
    if isinstance(value, list):
        return [normalise(item) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("kind") == "Status":
        return _status(value)
    result: JsonObject = {}
    for key, item in value.items():
        if key == "metadata" and isinstance(item, dict):
            result[key] = _metadata(item)
        else:
            result[key] = normalise(item)
    return result


def _metadata(meta: JsonObject) -> JsonObject:
    shown: JsonObject = {}
    for key, item in meta.items():
        if key in GENERATED:
            continue
        if key == "managedFields":
            # Which appliers own which fields is meaningful; updates' entries and times are not.
            applied = [
                {"manager": e.get("manager"), "fieldsV1": e.get("fieldsV1")}
                for e in item
                if e.get("operation") == "Apply"
            ]
            if applied:
                shown[key] = applied
            continue
        if key == "deletionTimestamp":
            shown[key] = "<set>"
            continue
        if key == "continue":
            shown[key] = "<set>"
            continue
        if key == "ownerReferences":
            shown[key] = [{k: v for k, v in ref.items() if k != "uid"} for ref in item]
            continue
        shown[key] = normalise(item)
    return shown


def _status(status: JsonObject) -> JsonObject:
    details = dict(status.get("details") or {})
    details.pop("uid", None)
    if "causes" in details:
        details["causes"] = sorted(
            (_cause(c) for c in details["causes"]),
            key=lambda c: (c.get("field", ""), c.get("message", "")),
        )
    shown = {
        "status": status.get("status"),
        "code": status.get("code"),
        "reason": status.get("reason", ""),
        "message": _message(status.get("message", ""), bool(details.get("causes"))),
        "details": details,
    }
    return {k: v for k, v in shown.items() if v not in (None, {}, "")}


def _cause(cause: JsonObject) -> JsonObject:
    if cause.get("field") == "patch":
        # The patched object, server fields and all: only what the error says about it counts.
        return {**cause, "message": _PATCHED_OBJECT.sub("<object>", cause.get("message", ""))}
    return cause


def _message(message: str, has_causes: bool) -> str:
    message = _PATCHED_OBJECT.sub("<object>", message)
    message = _VERSION_NUMBERS.sub("<n> (<n>)", message)
    if has_causes and ": [" in message:
        # kube-apiserver lists several errors in map order: compare them as a set.
        head, _, rest = message.partition(": [")
        return head + ": [" + ", ".join(sorted(rest.rstrip("]").split(", "))) + "]"
    return message
