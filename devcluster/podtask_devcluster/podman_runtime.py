"""The node agent's container mode: each container of a pod runs with podman from the pod's
image (the options from `podman_spec`), with podtask's podman settings (`podman.tool_env`).

- Images: present means in podman's local store; the agent never pulls (`--pull never`).
- A container's output goes straight from conmon into the container's CRI log file (podman's
  `k8s-file` log driver writes that format), so logs are served as in process mode.
- Limits are the kernel's: `--memory` (no swap beyond it) and `--cpus`, under a cgroup parent
  of the container's own, which tells an OOM kill apart from any other exit 137
  (`container_cgroups`) where podman itself cannot.
- Stop: SIGTERM (`podman kill --signal TERM`), SIGKILL after the grace period; when a
  container has ended it is removed (`podman rm`) with its cgroups, and when the pod is done
  its emptyDir volumes go too.
- Containers labelled with this node that an earlier agent left (it died, or was killed) are
  removed when the agent starts and when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from podtask_devcluster.container_cgroups import hit_memory_limit, remove_cgroup
from podtask_devcluster.containers import (
    OOM_EXIT_CODE,
    START_ERROR_EXIT_CODE,
    ContainerRun,
    memory_limit_of,
)
from podtask_devcluster.podenv import ContainerConfigError, Plan
from podtask_devcluster.podman import tool_env
from podtask_devcluster.podman_spec import (
    NODE_LABEL,
    UID_LABEL,
    cgroup_parent,
    check_non_root,
    container_name,
    create_arguments,
    security_of,
)
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.private_files import open_private_for_writing, private_directory
from podtask_devcluster.runtime import OomReport
from podtask_devcluster.store import JsonObject

log = logging.getLogger(__name__)

PODMAN = "podman"
EMPTY_DIR_MODE = 0o777


class PodmanRuntime:
    host_environment = False

    def __init__(self, node: str, state_dir: Path) -> None:
        self._node = node
        self._pods_dir = Path(state_dir) / "pods"
        self._on_oom: OomReport | None = None
        self._cgroup_parents = True
        # The pod of each started container, until it has ended.
        self._pods: dict[ContainerRun, JsonObject] = {}

    # ------------------------------------------------------------ podman

    async def _podman(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            PODMAN,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else tool_env(),
            # The agent's own signals (Ctrl-C) are not the containers'.
            start_new_session=True,
        )
        out, err = await process.communicate()
        assert process.returncode is not None
        return process.returncode, out.decode(errors="replace"), _error_text(err)

    # ------------------------------------------------------------ the node

    async def open(self, on_oom: OomReport) -> None:
        self._on_oom = on_oom
        code, out, _ = await self._podman("info", "--format", "{{.Host.CgroupManager}}")
        # With systemd managing cgroups a parent must be a slice; podman then reports OOM
        # kills itself (cgroup v2), and the containers go without a parent of their own.
        self._cgroup_parents = code != 0 or out.strip() != "systemd"
        await self._remove_leftovers()

    async def close(self) -> None:
        await self._remove_leftovers()

    async def _remove_leftovers(self) -> None:
        code, out, err = await self._podman(
            "ps", "--all", "--filter", f"label={NODE_LABEL}={self._node}", "--format", "json"
        )
        if code != 0:
            log.warning("listing the containers of node %s: %s", self._node, err)
            return
        left = json.loads(out or "[]")
        if left:
            names = [str(c["Names"][0]) for c in left if c.get("Names")]
            log.info("removing containers an earlier agent left: %s", ", ".join(names))
            await self._podman("rm", "--force", "--time", "0", *names)
        for container in left:
            uid = str((container.get("Labels") or {}).get(UID_LABEL) or "")
            if uid:
                await self._remove_cgroup(cgroup_parent(uid, "").rstrip("/"))
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._pods_dir)

    # ------------------------------------------------------------ images

    async def has_image(self, image: str) -> bool:
        code, _, _ = await self._podman("image", "exists", image)
        return code == 0

    def pull_error(self, image: str) -> str:
        return (
            f'rpc error: code = NotFound desc = failed to pull image "{image}": image "{image}" '
            f"is not in the local image store of node {self._node}, which never pulls: build "
            "it there (make images, buildah bud) or load it (podman load -i FILE)"
        )

    async def _image_user(self, image: str) -> str:
        code, out, err = await self._podman(
            "image", "inspect", "--format", "{{.Config.User}}", image
        )
        if code != 0:
            raise ContainerConfigError(f"inspecting image {image}: {err}")
        return out.strip()

    # ------------------------------------------------------------ containers

    async def check(self, pod: JsonObject, spec: JsonObject) -> None:
        if security_of(pod, spec).run_as_non_root:
            check_non_root(pod, spec, await self._image_user(str(spec.get("image", ""))))

    def _empty_dir(self, pod: JsonObject, volume: str) -> Path:
        uid = str(pod["metadata"].get("uid", ""))
        path = private_directory(self._pods_dir / uid / "volumes") / volume
        if not path.exists():
            # Like a kubelet's emptyDir: writable by whatever user the container runs as
            # (reached only through the mount: the state dir above it stays owner-only).
            path.mkdir()
            path.chmod(EMPTY_DIR_MODE)
            fs_group = security_of(pod, {}).fs_group
            if fs_group is not None:
                os.chown(path, -1, fs_group)
                path.chmod(EMPTY_DIR_MODE | 0o2000)
        return path

    async def start(
        self, pod: JsonObject, spec: JsonObject, plan: Plan, log_file: Path
    ) -> ContainerRun:
        name = str(spec.get("name", ""))
        uid = str(pod["metadata"].get("uid", ""))
        container = ContainerRun(
            name=name,
            image=str(spec.get("image", "")),
            log_file=log_file,
            memory_limit=memory_limit_of(spec),
            started_at=now_rfc3339(),
        )
        # Logs may hold secrets the task printed: owner-only (conmon appends to it).
        open_private_for_writing(log_file).close()
        cgroup = cgroup_parent(uid, name) if self._cgroup_parents else None
        try:
            arguments = create_arguments(
                node=self._node,
                pod=pod,
                spec=spec,
                plan=plan,
                log_file=log_file,
                image_user=await self._image_user(container.image),
                empty_dir_of=lambda volume: self._empty_dir(pod, volume),
                cgroup=cgroup,
            )
        except (ContainerConfigError, ValueError, OSError) as error:
            return _not_started(container, str(error))
        # The values travel in podman's environment (`--env NAME`), never on a command line.
        env = tool_env({**tool_env(), **plan.env})
        code, out, err = await self._podman(*arguments, env=env)
        if code != 0:
            return _not_started(container, f"failed to create container {name!r}: {err}")
        container.runtime_id = out.strip()
        code, _, err = await self._podman("start", container_name(pod, spec))
        if code != 0:
            await self._remove(pod, container)
            return _not_started(container, f"failed to start container {name!r}: {err}")
        container.started_at = now_rfc3339()
        container.process = await asyncio.create_subprocess_exec(
            PODMAN,
            "wait",
            container.runtime_id,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=tool_env(),
            start_new_session=True,
        )
        self._pods[container] = pod
        return container

    async def wait(self, container: ContainerRun) -> None:
        if container.process is None:
            return
        out, _ = await container.process.communicate()
        pod = self._pods.pop(container, None)
        code, text, _ = await self._podman("inspect", "--type", "container", container.runtime_id)
        state: JsonObject = {}
        if code == 0:
            with contextlib.suppress(ValueError, IndexError, KeyError):
                state = json.loads(text)[0]["State"]
        exit_code = state.get("ExitCode")
        if not isinstance(exit_code, int):
            waited = out.decode(errors="replace").strip()
            exit_code = int(waited) if waited.lstrip("-").isdigit() else OOM_EXIT_CODE
        container.finished_at = now_rfc3339()
        container.exit_code = exit_code
        if exit_code > 128:
            container.signal = exit_code - 128
        cgroup = cgroup_parent(str(pod["metadata"].get("uid", "")), container.name) if pod else ""
        limit = container.memory_limit
        if exit_code == OOM_EXIT_CODE and not container.killed and limit is not None:
            container.oom_killed = bool(state.get("OOMKilled")) or (
                self._cgroup_parents and hit_memory_limit(cgroup, limit)
            )
            if container.oom_killed and self._on_oom is not None:
                self._on_oom(container, limit)
        if pod is not None:
            await self._remove(pod, container)

    async def _remove(self, pod: JsonObject, container: ContainerRun) -> None:
        code, _, err = await self._podman(
            "rm", "--force", "--time", "0", container.runtime_id or container.name
        )
        if code != 0:
            log.warning("removing container %s: %s", container.runtime_id, err)
        if self._cgroup_parents:
            await self._remove_cgroup(
                cgroup_parent(str(pod["metadata"].get("uid", "")), container.name)
            )

    async def _remove_cgroup(self, path: str) -> None:
        if not await asyncio.to_thread(remove_cgroup, path):
            log.warning("cgroup %s still holds a process: left in place", path)

    async def stop(self, container: ContainerRun) -> None:
        if container.alive():
            await self._podman("kill", "--signal", "TERM", container.runtime_id)

    async def kill(self, container: ContainerRun) -> None:
        if container.alive():
            container.killed = True
            await self._podman("kill", "--signal", "KILL", container.runtime_id)

    async def release_pod(self, uid: str) -> None:
        if self._cgroup_parents:
            await self._remove_cgroup(cgroup_parent(uid, "").rstrip("/"))
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(shutil.rmtree, self._pods_dir / uid)

    async def supervise(self, containers: Callable[[], Iterable[ContainerRun]]) -> None:
        # The kernel enforces the limits: nothing to poll.
        await asyncio.Event().wait()


def _not_started(container: ContainerRun, why: str) -> ContainerRun:
    container.start_error = why
    container.exit_code = START_ERROR_EXIT_CODE
    container.finished_at = now_rfc3339()
    return container


def _error_text(err: bytes) -> str:
    text = err.decode(errors="replace").strip()
    return text.removeprefix("Error: ")
