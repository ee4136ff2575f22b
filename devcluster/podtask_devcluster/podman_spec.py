"""What a pod spec means as `podman create` options, as a kubelet hands a container to its
runtime: the command (`command` replaces the image's ENTRYPOINT, `args` its CMD), the
environment (names only: values travel in podman's own environment, never on a command line),
the security context (pod and container level), volumes (`emptyDir`, `hostPath`), limits, the
node's labels and a name unique per pod uid and container. Pure: `podman_runtime` runs it."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podtask_devcluster.podenv import ContainerConfigError, Plan
from podtask_devcluster.quantities import parse_bytes, parse_quantity
from podtask_devcluster.store import JsonObject

NODE_LABEL = "podtask.dev/node"
# The labels a kubelet puts on its containers.
NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_LABEL = "io.kubernetes.pod.name"
UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_LABEL = "io.kubernetes.container.name"


@dataclass(frozen=True)
class Security:
    """A container's effective security context: its own settings over the pod's."""

    run_as_user: int | None
    run_as_group: int | None
    run_as_non_root: bool
    read_only_root: bool
    no_new_privileges: bool
    privileged: bool
    cap_add: tuple[str, ...]
    cap_drop: tuple[str, ...]
    groups: tuple[int, ...]
    fs_group: int | None


def security_of(pod: JsonObject, spec: JsonObject) -> Security:
    pod_context = (pod.get("spec") or {}).get("securityContext") or {}
    own = spec.get("securityContext") or {}

    def pick(name: str) -> object:
        return own[name] if own.get(name) is not None else pod_context.get(name)

    def number(value: object) -> int | None:
        return int(str(value)) if value is not None else None

    capabilities = own.get("capabilities") or {}
    fs_group = number(pod_context.get("fsGroup"))
    groups = [int(g) for g in pod_context.get("supplementalGroups") or []]
    if fs_group is not None:
        groups.append(fs_group)
    return Security(
        run_as_user=number(pick("runAsUser")),
        run_as_group=number(pick("runAsGroup")),
        run_as_non_root=bool(pick("runAsNonRoot")),
        read_only_root=bool(own.get("readOnlyRootFilesystem")),
        no_new_privileges=own.get("allowPrivilegeEscalation") is False,
        privileged=bool(own.get("privileged")),
        cap_add=tuple(str(c) for c in capabilities.get("add") or []),
        cap_drop=tuple(str(c) for c in capabilities.get("drop") or []),
        groups=tuple(dict.fromkeys(groups)),
        fs_group=fs_group,
    )


def _pod_ref(pod: JsonObject) -> str:
    meta = pod["metadata"]
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def check_non_root(pod: JsonObject, spec: JsonObject, image_user: str) -> None:
    """runAsNonRoot as the kubelet verifies it before creating the container: the user the
    container will run as (runAsUser, else the image's USER) must be a non-zero number."""
    security = security_of(pod, spec)
    if not security.run_as_non_root:
        return
    where = f'(pod: "{_pod_ref(pod)}", container: {spec.get("name", "")})'
    if security.run_as_user is not None:
        if security.run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = image_user.partition(":")[0]
    if user == "":
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not user.isdigit():
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user}), "
            f"cannot verify user is non-root {where}"
        )
    if int(user) == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")


def container_name(pod: JsonObject, spec: JsonObject) -> str:
    """Unique per pod uid and container, as a kubelet names its containers."""
    meta = pod["metadata"]
    parts = (spec.get("name"), meta.get("name"), meta.get("namespace"), meta.get("uid"))
    return "_".join(["k8s", *(str(part or "") for part in parts), "0"])


def cgroup_parent(uid: str, container: str) -> str:
    """The cgroup of its own every container gets (`container_cgroups` reads it after)."""
    return f"/podtask/pod{uid}/{container}"


def _user_option(security: Security, image_user: str) -> list[str]:
    if security.run_as_user is None and security.run_as_group is None:
        return []
    user = (
        str(security.run_as_user)
        if security.run_as_user is not None
        else (image_user.partition(":")[0] or "0")
    )
    group = f":{security.run_as_group}" if security.run_as_group is not None else ""
    return ["--user", user + group]


# (volume name) -> the host directory of that pod's emptyDir.
EmptyDirOf = Callable[[str], Path]


def _mounts(pod: JsonObject, spec: JsonObject, empty_dir_of: EmptyDirOf) -> list[str]:
    volumes = {str(v.get("name", "")): v for v in (pod.get("spec") or {}).get("volumes") or []}
    options: list[str] = []
    for mount in spec.get("volumeMounts") or []:
        volume = volumes.get(str(mount.get("name", "")))
        target = str(mount.get("mountPath", ""))
        if volume is None:
            raise ContainerConfigError(
                f'volume "{mount.get("name", "")}" of volumeMount {target} is not in the pod'
            )
        read_only = bool(mount.get("readOnly"))
        if (empty := volume.get("emptyDir")) is not None and empty.get("medium") == "Memory":
            options += ["--mount", f"type=tmpfs,destination={target}"]
            continue
        if empty is not None:
            source = str(empty_dir_of(str(volume["name"])))
        elif host := volume.get("hostPath"):
            source = str(host.get("path", ""))
        else:
            continue  # a kind this node does not mount (docs/node-agent.md)
        sub_path = str(mount.get("subPath") or "")
        if sub_path:
            if sub_path.startswith("/") or ".." in sub_path.split("/"):
                raise ContainerConfigError(f"subPath {sub_path!r} must be a relative path within")
            source = posixpath.join(source, sub_path)
        if "," in source or "," in target:
            raise ContainerConfigError(f"mount {source} -> {target}: a path with a comma")
        options += [
            "--mount",
            f"type=bind,source={source},destination={target}" + (",ro=true" if read_only else ""),
        ]
    return options


def _limits(spec: JsonObject) -> list[str]:
    limits = (spec.get("resources") or {}).get("limits") or {}
    options: list[str] = []
    if limits.get("memory") is not None:
        memory = parse_bytes(limits["memory"])
        # No swap beyond the limit (podman would allow twice the limit), as a kubelet sets it.
        options += ["--memory", str(memory), "--memory-swap", str(memory)]
    if limits.get("cpu") is not None:
        options += ["--cpus", format(parse_quantity(limits["cpu"]).normalize(), "f")]
    return options


def create_arguments(
    *,
    node: str,
    pod: JsonObject,
    spec: JsonObject,
    plan: Plan,
    log_file: Path,
    image_user: str,
    empty_dir_of: EmptyDirOf,
    cgroup: str | None,
) -> list[str]:
    """`podman create` and its options for one container (the values of `plan.env` go in the
    call's environment: here only their names)."""
    meta = pod["metadata"]
    name = str(spec.get("name", ""))
    security = security_of(pod, spec)
    options = [
        "create",
        *("--name", container_name(pod, spec)),
        *("--pull", "never"),
        *("--network", "host"),
        *("--hostname", str(meta.get("name", ""))),
        *("--log-driver", "k8s-file", "--log-opt", f"path={log_file}"),
        *("--label", f"{NODE_LABEL}={node}"),
        *("--label", f"{NAMESPACE_LABEL}={meta.get('namespace', '')}"),
        *("--label", f"{POD_LABEL}={meta.get('name', '')}"),
        *("--label", f"{UID_LABEL}={meta.get('uid', '')}"),
        *("--label", f"{CONTAINER_LABEL}={name}"),
    ]
    if cgroup is not None:
        options += ["--cgroup-parent", cgroup]
    options += _limits(spec)
    options += _user_option(security, image_user)
    for group in security.groups:
        options += ["--group-add", str(group)]
    if security.read_only_root:
        # Kubernetes mounts nothing writable over a read-only root (podman would, on /tmp).
        options += ["--read-only", "--read-only-tmpfs=false"]
    if security.no_new_privileges:
        options += ["--security-opt", "no-new-privileges"]
    if security.privileged:
        options += ["--privileged"]
    for capability in security.cap_drop:
        options += ["--cap-drop", capability]
    for capability in security.cap_add:
        options += ["--cap-add", capability]
    options += _mounts(pod, spec, empty_dir_of)
    for variable in plan.env:
        options += ["--env", variable]
    if plan.working_dir:
        options += ["--workdir", plan.working_dir]
    if plan.command:
        options += ["--entrypoint", json.dumps(plan.command)]
    options.append(str(spec.get("image", "")))
    options += plan.args
    return options
