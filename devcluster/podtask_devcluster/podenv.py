"""A container's command line and environment as a kubelet builds them from the pod spec:
`env` (value, secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef), `envFrom`, and
`$(VAR)` expansion. Secrets and config maps come from a lookup the caller provides (the
embedded store, or objects the node agent fetched from the API), so building is pure.
"""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podtask_devcluster.store import JsonObject

SECRET = "secret"
CONFIGMAP = "configmap"
_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")

# (kind, namespace, name) -> the object, or None when there is none.
ObjectLookup = Callable[[str, str, str], JsonObject | None]


class ContainerConfigError(Exception):
    """The pod's environment cannot be built (missing secret, config map, key, or field)."""


@dataclass(frozen=True)
class Placement:
    """Where the pod runs: what `fieldRef` reads for the node and the addresses."""

    node_name: str
    host_ip: str
    pod_ip: str


@dataclass(frozen=True)
class Plan:
    """One container as a kubelet hands it to its runtime. `command` replaces the image's
    ENTRYPOINT and `args` its CMD (either empty: the image's own); `argv` is both, what a
    process runs; `working_dir` is the spec's (None: the image's), `cwd` that or the agent's."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    working_dir: str | None = None


def expand_references(text: str, variables: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables are replaced, unknown ones kept, `$$`
    escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return variables.get(match[1], match[0])

    return _REFERENCE.sub(replace, text)


def referenced_objects(pod: JsonObject) -> set[tuple[str, str]]:
    """Every (kind, name) of secret and config map the containers' environment reads."""
    found: set[tuple[str, str]] = set()
    for container in (pod.get("spec") or {}).get("containers") or []:
        for source in container.get("envFrom") or []:
            if ref := source.get("configMapRef"):
                found.add((CONFIGMAP, str(ref.get("name", ""))))
            elif ref := source.get("secretRef"):
                found.add((SECRET, str(ref.get("name", ""))))
        for variable in container.get("env") or []:
            value_from = variable.get("valueFrom") or {}
            if ref := value_from.get("secretKeyRef"):
                found.add((SECRET, str(ref.get("name", ""))))
            elif ref := value_from.get("configMapKeyRef"):
                found.add((CONFIGMAP, str(ref.get("name", ""))))
    return found


def plan_container(
    pod: JsonObject,
    container: JsonObject,
    lookup: ObjectLookup,
    placement: Placement,
    workdir: Path,
    *,
    host_environment: bool = True,
) -> Plan:
    """The argv, environment and working directory of one container; ContainerConfigError
    with a kubelet's message when the environment cannot be built. With `host_environment`
    (a container that is a local process) the environment starts from the agent's own, its
    venv first on PATH; without it (a container in its image) it is only what the spec defines
    and what a kubelet adds."""
    environment = Environment(pod, lookup, placement)
    env = environment.build(container) if host_environment else environment.defined(container)
    command = [expand_references(str(part), env) for part in container.get("command") or []]
    args = [expand_references(str(part), env) for part in container.get("args") or []]
    working_dir = str(container["workingDir"]) if container.get("workingDir") else None
    cwd = working_dir or str(workdir)
    return Plan(command + args, env, cwd, command, args, working_dir)


class Environment:
    def __init__(self, pod: JsonObject, lookup: ObjectLookup, placement: Placement) -> None:
        self._pod = pod
        self._lookup = lookup
        self._placement = placement
        self._namespace = str(pod["metadata"].get("namespace", ""))

    def defined(self, container: JsonObject) -> dict[str, str]:
        """What the spec defines (`envFrom`, then `env`) and the kubelet adds (HOSTNAME)."""
        defined: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix") or "")
            if ref := source.get("configMapRef"):
                data = self._data(CONFIGMAP, ref)
            elif ref := source.get("secretRef"):
                data = self._data(SECRET, ref)
            else:
                continue
            for key, value in data.items():
                defined[prefix + key] = value
        for variable in container.get("env") or []:
            name = str(variable.get("name", ""))
            if "value" in variable:
                defined[name] = expand_references(str(variable.get("value") or ""), defined)
            elif source := variable.get("valueFrom"):
                resolved = self._value_from(source)
                if resolved is not None:
                    defined[name] = resolved
            else:
                defined[name] = ""
        defined["HOSTNAME"] = self._pod["metadata"]["name"]
        return defined

    def build(self, container: JsonObject) -> dict[str, str]:
        """The environment of a container that is a local process: the agent's own (but no
        KUBE*), the venv first on PATH, then what `defined` gives."""
        defined = self.defined(container)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(defined)
        venv_bin = os.path.dirname(sys.executable)
        path = env.get("PATH", os.defpath)
        if path.split(os.pathsep)[0] != venv_bin:
            path = venv_bin + os.pathsep + path
        env["PATH"] = path
        # Python output reaches the log as it is produced (what most Python images set too).
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _data(self, kind: str, ref: JsonObject) -> dict[str, str]:
        """The data of the secret or config map `ref` names: nothing when it is missing and
        `optional`, else ContainerConfigError."""
        name = str(ref.get("name", ""))
        found = self._lookup(kind, self._namespace, name)
        if found is None:
            if ref.get("optional"):
                return {}
            raise ContainerConfigError(f'{kind} "{name}" not found')
        return _secret_data(found) if kind == SECRET else _config_map_data(found)

    def _value_from(self, source: JsonObject) -> str | None:
        if ref := source.get("secretKeyRef"):
            return _key(self._data(SECRET, ref), ref, SECRET)
        if ref := source.get("configMapKeyRef"):
            return _key(self._data(CONFIGMAP, ref), ref, CONFIGMAP)
        if ref := source.get("fieldRef"):
            return self._field_value(str(ref.get("fieldPath", "")))
        if ref := source.get("resourceFieldRef"):
            return _resource_field(self._pod, ref)
        return None

    def _field_value(self, path: str) -> str:
        pod = self._pod
        meta = pod["metadata"]
        where = self._placement
        simple: dict[str, Any] = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": meta.get("namespace"),
            "metadata.uid": meta.get("uid"),
            "spec.nodeName": where.node_name,
            "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
            "status.podIP": where.pod_ip,
            "status.podIPs": where.pod_ip,
            "status.hostIP": where.host_ip,
            "status.hostIPs": where.host_ip,
        }
        if path in simple:
            return str(simple[path] or "")
        if match := _FIELD_INDEX.match(path):
            return str((meta.get(match[1]) or {}).get(match[2], ""))
        if path in ("metadata.labels", "metadata.annotations"):
            items = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
        raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _config_map_data(config_map: JsonObject) -> dict[str, str]:
    return {str(k): str(v) for k, v in (config_map.get("data") or {}).items()}


def _secret_data(secret: JsonObject) -> dict[str, str]:
    data = {
        str(k): base64.b64decode(str(v)).decode("utf-8", "replace")
        for k, v in (secret.get("data") or {}).items()
    }
    for key, value in (secret.get("stringData") or {}).items():
        data[str(key)] = str(value)
    return data


def _key(data: dict[str, str], ref: JsonObject, what: str) -> str | None:
    key = str(ref.get("key", ""))
    if key in data:
        return data[key]
    if ref.get("optional"):
        return None
    raise ContainerConfigError(f"couldn't find key {key} in {what} {ref.get('name')}")


def _resource_field(pod: JsonObject, ref: JsonObject) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    containers = (pod.get("spec") or {}).get("containers") or []
    wanted = ref.get("containerName")
    container = next((c for c in containers if c.get("name") == wanted), None) if wanted else None
    if container is None and containers:
        container = containers[0]
    value = ((container or {}).get("resources") or {}).get(kind, {}).get(name)
    return str(value) if value is not None else "0"
