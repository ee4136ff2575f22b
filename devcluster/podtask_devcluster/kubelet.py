"""The local kubelet: runs each pod's containers as local processes, enforces memory limits,
writes pod status through the store, terminates pods gracefully on delete, and marks pods lost
by a cluster restart as failed.

Each container runs under its own shim (`podshim`): the shim is what the kubelet starts,
signals and waits for, and it makes sure that no process the container started (in a session
of its own or not) outlives the container, however it ends: exit, OOM kill, deletion, or the
kubelet itself stopping or dying.

The image is never pulled: `command` + `args` run in the dev environment, with the virtualenv's
scripts first on PATH, so task modules and console scripts resolve as they do for the user.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from podtask_devcluster.podlogs import log_path
from podtask_devcluster.private_files import open_private_for_writing, private_directory
from podtask_devcluster.quantities import parse_bytes
from podtask_devcluster.registry import PODS, Registry, now_rfc3339
from podtask_devcluster.store import JsonObject, WatchEvent, storage_key

NODE_NAME = "podtask-dev"
POD_IP = "127.0.0.1"
MEMORY_POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 2.0
OOM_EXIT_CODE = 137
START_ERROR_EXIT_CODE = 128
SECRETS = storage_key("", "secrets")
CONFIGMAPS = storage_key("", "configmaps")
_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


class ContainerConfigError(Exception):
    """The pod's environment cannot be built (missing secret, config map, key, or field)."""


@dataclass(eq=False)
class ContainerRun:
    name: str
    image: str
    log_file: Path
    memory_limit: int | None
    process: asyncio.subprocess.Process | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    oom_killed: bool = False
    start_error: str | None = None

    @property
    def container_id(self) -> str:
        return f"local://{self.process.pid}" if self.process is not None else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


@dataclass(eq=False)
class PodRun:
    namespace: str
    name: str
    uid: str
    containers: list[ContainerRun] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    terminating: bool = False
    removed: bool = False
    finished: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)


SHIM = Path(__file__).with_name("podshim.py")


def stop_container(process: asyncio.subprocess.Process | None) -> None:
    """Ask the container to stop: its shim passes SIGTERM on to the container's processes."""
    _signal_shim(process, signal.SIGTERM)


def kill_container(process: asyncio.subprocess.Process | None) -> None:
    """Kill every process of the container now: its shim kills them all, then exits."""
    _signal_shim(process, signal.SIGHUP)


def _signal_shim(process: asyncio.subprocess.Process | None, sig: int) -> None:
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(process.pid, sig)


def _read_to_end(fd: int) -> str:
    chunks: list[bytes] = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _children_from_proc(pid: int) -> list[int] | None:
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except FileNotFoundError:
        return []
    except OSError:
        return None
    children: list[int] = []
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except FileNotFoundError:
            if not (task_dir / task.name).exists():
                continue
            return None
        except OSError:
            continue
        children.extend(int(c) for c in text.split())
    return children


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    pending = [pid]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        children = _children_from_proc(current)
        if children is None:
            return _tree_rss_psutil(pid)
        try:
            with open(f"/proc/{current}/statm") as statm:
                total += int(statm.read().split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):
            continue
        pending.extend(children)
    return total


def _own_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(psutil.Error):
            return int(psutil.Process(pid).memory_info().rss)
    return 0


def container_rss(shim_pid: int) -> int:
    """Resident memory of a container's processes: everything below its shim."""
    return max(0, tree_rss(shim_pid) - _own_rss(shim_pid))


def _container_rss_all(pids: list[int]) -> list[int]:
    return [container_rss(pid) for pid in pids]


def _tree_rss_psutil(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def expand_references(text: str, variables: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables are replaced, unknown ones kept, `$$`
    escapes a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return variables.get(match[1], match[0])

    return _REFERENCE.sub(replace, text)


class Kubelet:
    def __init__(self, registry: Registry, log_dir: Path, workdir: Path) -> None:
        self._registry = registry
        self._store = registry.store
        self._log_dir = log_dir
        self._workdir = workdir
        self._runs: dict[tuple[str, str], PodRun] = {}
        self._stopping = False
        self._monitor: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        registry.pod_has_process = self.has_process
        self._store.subscribe(self._on_event)

    # ------------------------------------------------------------ queries

    def has_process(self, namespace: str, name: str) -> bool:
        run = self._runs.get((namespace, name))
        return run is not None and not run.finished

    def still_writing(self, namespace: str, name: str, container: str) -> Callable[[], bool]:
        """For the log endpoint: is this container still producing output?"""

        def check() -> bool:
            run = self._runs.get((namespace, name))
            if run is None or run.finished:
                return False
            return any(
                c.name == container
                and (
                    c.alive()
                    or (c.process is None and c.start_error is None and c.exit_code is None)
                )
                for c in run.containers
            )

        return check

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._mark_lost_pods()
        self._monitor = self._loop.create_task(self._watch_memory())

    def _mark_lost_pods(self) -> None:
        for pod in list(self._store.objects_of(PODS)):
            meta = pod["metadata"]
            phase = (pod.get("status") or {}).get("phase")
            if meta.get("deletionTimestamp"):
                self._registry.finish_pod_termination(meta.get("namespace", ""), meta["name"])
                continue
            if phase not in (None, "Pending", "Running", "Unknown"):
                continue
            lost = copy.deepcopy(pod)
            lost.setdefault("spec", {}).setdefault("nodeName", NODE_NAME)
            status = lost.setdefault("status", {})
            finished = now_rfc3339()
            status["phase"] = "Failed"
            status["reason"] = "NodeLost"
            status["message"] = (
                "The podtask dev cluster restarted while this pod was pending or running; its "
                "process did not survive the restart."
            )
            status["conditions"] = _conditions(ready=False, reason="PodFailed")
            previous = {c.get("name"): c for c in status.get("containerStatuses") or []}
            statuses = []
            for container in lost["spec"].get("containers") or []:
                old = previous.get(container.get("name")) or {}
                started = ((old.get("state") or {}).get("running") or {}).get("startedAt")
                terminated: JsonObject = {
                    "exitCode": OOM_EXIT_CODE,
                    "reason": "ContainerStatusUnknown",
                    "message": "The container could not be located when the pod was terminated",
                    "finishedAt": finished,
                }
                if started:
                    terminated["startedAt"] = started
                if old.get("containerID"):
                    terminated["containerID"] = old["containerID"]
                statuses.append(
                    _container_status(
                        container,
                        {"terminated": terminated},
                        ready=False,
                        container_id=old.get("containerID", ""),
                    )
                )
            status["containerStatuses"] = statuses
            self._store.put(PODS, lost)

    async def stop(self) -> None:
        """Kill every pod process (SIGTERM, a short grace, SIGKILL); stored status is left as
        it was, so the next start reports those pods as lost."""
        self._stopping = True
        runs = list(self._runs.values())
        for run in runs:
            for container in run.containers:
                stop_container(container.process)
        waits = [run.task for run in runs if run.task is not None]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=STOP_GRACE_SECONDS)
            for run in runs:
                for container in run.containers:
                    kill_container(container.process)
            if pending:
                await asyncio.wait(pending, timeout=STOP_GRACE_SECONDS)
                for task in pending:
                    task.cancel()
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor

    # ------------------------------------------------------------ events

    def _on_event(self, event: WatchEvent) -> None:
        if event.resource != PODS or self._stopping or self._loop is None:
            return
        pod = event.object
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        run = self._runs.get(key)
        if event.type == "ADDED":
            phase = (pod.get("status") or {}).get("phase")
            if run is None and phase in (None, "Pending") and not meta.get("deletionTimestamp"):
                run = PodRun(key[0], key[1], meta.get("uid", ""))
                self._runs[key] = run
                run.task = self._loop.create_task(self._run_pod(run))
        elif event.type == "MODIFIED":
            if (
                run is not None
                and run.uid == meta.get("uid")
                and meta.get("deletionTimestamp")
                and not run.terminating
            ):
                run.terminating = True
                grace = int(meta.get("deletionGracePeriodSeconds") or 0)
                self._loop.create_task(self._terminate(run, grace))
        elif event.type == "DELETED":
            if run is not None and run.uid == meta.get("uid"):
                run.removed = True
                run.terminating = True
                for container in run.containers:
                    kill_container(container.process)
            for container in (pod.get("spec") or {}).get("containers") or []:
                with contextlib.suppress(OSError):
                    log_path(self._log_dir, key[0], key[1], container.get("name", "")).unlink()

    # ------------------------------------------------------------ running a pod

    def _update_pod(self, run: PodRun, change: Callable[[JsonObject], None]) -> JsonObject | None:
        if self._stopping or run.removed:
            return None
        pod = self._store.get(PODS, run.namespace, run.name)
        if pod is None or pod["metadata"].get("uid") != run.uid:
            return None
        updated = copy.deepcopy(pod)
        change(updated)
        if updated == pod:
            return pod
        return self._store.put(PODS, updated)

    async def _run_pod(self, run: PodRun) -> None:
        try:
            await self._run_pod_steps(run)
        finally:
            run.finished = True
            run.ended.set()
            if self._runs.get((run.namespace, run.name)) is run:
                del self._runs[(run.namespace, run.name)]
            if run.terminating and not run.removed and not self._stopping:
                self._registry.finish_pod_termination(run.namespace, run.name)

    async def _run_pod_steps(self, run: PodRun) -> None:
        pod = self._store.get(PODS, run.namespace, run.name)
        if pod is None:
            return
        containers = (pod.get("spec") or {}).get("containers") or []
        scheduled_at = now_rfc3339()

        def schedule(obj: JsonObject) -> None:
            obj["spec"]["nodeName"] = NODE_NAME
            status = obj.setdefault("status", {})
            status["phase"] = "Pending"
            status["hostIP"] = POD_IP
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": scheduled_at,
                },
            ]
            status["containerStatuses"] = [
                _container_status(c, {"waiting": {"reason": "ContainerCreating"}}, ready=False)
                for c in containers
            ]

        pod = self._update_pod(run, schedule)
        if pod is None or run.terminating:
            return
        try:
            plans = [self._plan(pod, container) for container in containers]
        except ContainerConfigError as error:
            message = str(error)

            def config_error(obj: JsonObject) -> None:
                obj["status"]["containerStatuses"] = [
                    _container_status(
                        c,
                        {"waiting": {"reason": "CreateContainerConfigError", "message": message}},
                        ready=False,
                    )
                    for c in containers
                ]

            self._update_pod(run, config_error)
            return
        private_directory(self._log_dir)
        for container, (argv, env, cwd) in zip(containers, plans, strict=True):
            run.containers.append(await self._spawn(run, container, argv, env, cwd))
        if run.terminating:
            # Deleted while starting: _terminate found no process yet to signal.
            for started in run.containers:
                stop_container(started.process)
        start_time = now_rfc3339()

        def running(obj: JsonObject) -> None:
            status = obj["status"]
            status["phase"] = "Running"
            status["podIP"] = POD_IP
            status["podIPs"] = [{"ip": POD_IP}]
            status["startTime"] = start_time
            status["conditions"] = _conditions(
                ready=all(c.alive() for c in run.containers), scheduled_at=scheduled_at
            )
            status["containerStatuses"] = [
                self._live_status(spec, container)
                for spec, container in zip(containers, run.containers, strict=True)
            ]

        if any(c.process is not None for c in run.containers):
            self._update_pod(run, running)
        await asyncio.gather(
            *(self._wait(container) for container in run.containers if container.process)
        )
        if self._stopping or run.removed:
            return
        failed = any(c.exit_code != 0 for c in run.containers)

        def finished(obj: JsonObject) -> None:
            status = obj["status"]
            status["phase"] = "Failed" if failed else "Succeeded"
            status.setdefault("podIP", POD_IP)
            status.setdefault("podIPs", [{"ip": POD_IP}])
            status.setdefault("startTime", start_time)
            status["conditions"] = _conditions(
                ready=False,
                reason="PodFailed" if failed else "PodCompleted",
                scheduled_at=scheduled_at,
            )
            status["containerStatuses"] = [
                _container_status(
                    spec,
                    {"terminated": _terminated(container)},
                    ready=False,
                    container_id=container.container_id,
                )
                for spec, container in zip(containers, run.containers, strict=True)
            ]

        self._update_pod(run, finished)

    def _live_status(self, spec: JsonObject, container: ContainerRun) -> JsonObject:
        if container.process is None or not container.alive():
            return _container_status(
                spec,
                {"terminated": _terminated(container)},
                ready=False,
                container_id=container.container_id,
            )
        return _container_status(
            spec,
            {"running": {"startedAt": container.started_at}},
            ready=True,
            container_id=container.container_id,
            started=True,
        )

    def _plan(
        self, pod: JsonObject, container: JsonObject
    ) -> tuple[list[str], dict[str, str], str]:
        env = self._environment(pod, container)
        command = [str(part) for part in container.get("command") or []]
        args = [str(part) for part in container.get("args") or []]
        argv = [expand_references(part, env) for part in command + args]
        cwd = str(container.get("workingDir") or self._workdir)
        return argv, env, cwd

    async def _spawn(
        self,
        run: PodRun,
        container: JsonObject,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
    ) -> ContainerRun:
        name = str(container.get("name", ""))
        limits = (container.get("resources") or {}).get("limits") or {}
        memory_limit: int | None = None
        if limits.get("memory") is not None:
            with contextlib.suppress(ValueError):
                memory_limit = parse_bytes(limits["memory"])
        result = ContainerRun(
            name=name,
            image=str(container.get("image", "")),
            log_file=log_path(self._log_dir, run.namespace, run.name, name),
            memory_limit=memory_limit,
        )
        result.started_at = now_rfc3339()
        # Logs may hold secrets the task printed: owner-only, like the rest of the state dir.
        with open_private_for_writing(result.log_file) as log:
            if not argv:
                result.start_error = (
                    "the podtask dev cluster runs a container's command and args as a local "
                    "process and cannot use an image's entrypoint; spec.containers"
                    f"[{name}].command is empty"
                )
            else:
                error = await self._start_shim(result, argv, env, cwd, log)
                if error is not None:
                    result.start_error = (
                        f"failed to start container {name!r}: exec: {argv[0]!r}: {error}"
                    )
        if result.start_error is not None:
            result.exit_code = START_ERROR_EXIT_CODE
            result.finished_at = now_rfc3339()
        return result

    @staticmethod
    async def _start_shim(
        container: ContainerRun, argv: list[str], env: dict[str, str], cwd: str, log: IO[bytes]
    ) -> str | None:
        """Start the container's command under its shim; why it could not start, or None."""
        status_read, status_write = os.pipe()
        try:
            # The command writes straight into the log file: nothing is buffered here.
            container.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(SHIM),
                str(os.getpid()),
                str(status_write),
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                pass_fds=(status_write,),
            )
        except (OSError, ValueError) as error:
            os.close(status_read)
            return str(error)
        finally:
            os.close(status_write)
        why_not = await asyncio.to_thread(_read_to_end, status_read)
        if why_not:
            await container.process.wait()
            container.process = None
            return why_not
        return None

    async def _wait(self, container: ContainerRun) -> None:
        assert container.process is not None
        # The shim ends only once every process of the container is gone.
        code = await container.process.wait()
        container.finished_at = now_rfc3339()
        if container.oom_killed:
            container.exit_code = OOM_EXIT_CODE
            container.signal = signal.SIGKILL
        elif code < 0:
            container.signal = -code
            container.exit_code = 128 - code
        else:
            container.exit_code = code

    async def _terminate(self, run: PodRun, grace: int) -> None:
        for container in run.containers:
            stop_container(container.process)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.ended.wait(), max(grace, 0))
        for container in run.containers:
            if container.alive():
                kill_container(container.process)

    async def _watch_memory(self) -> None:
        while True:
            await asyncio.sleep(MEMORY_POLL_SECONDS)
            limited = [
                c
                for run in list(self._runs.values())
                for c in run.containers
                if c.memory_limit is not None and c.alive() and not c.oom_killed
            ]
            if not limited:
                continue
            pids = [c.process.pid for c in limited if c.process is not None]
            usages = await asyncio.to_thread(_container_rss_all, pids)
            for container, usage in zip(limited, usages, strict=True):
                if container.memory_limit is not None and usage > container.memory_limit:
                    container.oom_killed = True
                    kill_container(container.process)

    # ------------------------------------------------------------ environment

    def _environment(self, pod: JsonObject, container: JsonObject) -> dict[str, str]:
        namespace = pod["metadata"].get("namespace", "")
        defined: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            prefix = str(source.get("prefix") or "")
            if ref := source.get("configMapRef"):
                data = self._config_map_data(namespace, ref)
            elif ref := source.get("secretRef"):
                data = self._secret_data(namespace, ref)
            else:
                continue
            for key, value in data.items():
                defined[prefix + key] = value
        for variable in container.get("env") or []:
            name = str(variable.get("name", ""))
            if "value" in variable:
                defined[name] = expand_references(str(variable.get("value") or ""), defined)
            elif source := variable.get("valueFrom"):
                resolved = self._value_from(pod, namespace, source)
                if resolved is not None:
                    defined[name] = resolved
            else:
                defined[name] = ""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(defined)
        venv_bin = os.path.dirname(sys.executable)
        path = env.get("PATH", os.defpath)
        if path.split(os.pathsep)[0] != venv_bin:
            path = venv_bin + os.pathsep + path
        env["PATH"] = path
        # Python output reaches the log as it is produced (what most Python images set too).
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["HOSTNAME"] = pod["metadata"]["name"]
        return env

    def _config_map_data(self, namespace: str, ref: JsonObject) -> dict[str, str]:
        name = str(ref.get("name", ""))
        found = self._store.get(CONFIGMAPS, namespace, name)
        if found is None:
            if ref.get("optional"):
                return {}
            raise ContainerConfigError(f'configmap "{name}" not found')
        return {str(k): str(v) for k, v in (found.get("data") or {}).items()}

    def _secret_data(self, namespace: str, ref: JsonObject) -> dict[str, str]:
        name = str(ref.get("name", ""))
        found = self._store.get(SECRETS, namespace, name)
        if found is None:
            if ref.get("optional"):
                return {}
            raise ContainerConfigError(f'secret "{name}" not found')
        data = {
            str(k): base64.b64decode(str(v)).decode("utf-8", "replace")
            for k, v in (found.get("data") or {}).items()
        }
        for key, value in (found.get("stringData") or {}).items():
            data[str(key)] = str(value)
        return data

    def _value_from(self, pod: JsonObject, namespace: str, source: JsonObject) -> str | None:
        if ref := source.get("secretKeyRef"):
            data = self._secret_data(namespace, {**ref, "optional": ref.get("optional")})
            return self._key(data, ref, "secret")
        if ref := source.get("configMapKeyRef"):
            data = self._config_map_data(namespace, {**ref, "optional": ref.get("optional")})
            return self._key(data, ref, "configmap")
        if ref := source.get("fieldRef"):
            return _field_value(pod, str(ref.get("fieldPath", "")))
        if ref := source.get("resourceFieldRef"):
            return _resource_field(pod, ref)
        return None

    @staticmethod
    def _key(data: dict[str, str], ref: JsonObject, what: str) -> str | None:
        key = str(ref.get("key", ""))
        if key in data:
            return data[key]
        if ref.get("optional"):
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {what} {ref.get('name')}")


_FIELD_INDEX = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def _field_value(pod: JsonObject, path: str) -> str:
    meta = pod["metadata"]
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": NODE_NAME,
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default"),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    if match := _FIELD_INDEX.match(path):
        return str((meta.get(match[1]) or {}).get(match[2], ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")


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


def _conditions(
    *, ready: bool, reason: str | None = None, scheduled_at: str | None = None
) -> list[JsonObject]:
    stamp = now_rfc3339()
    ready_condition: JsonObject = {
        "type": "Ready",
        "status": "True" if ready else "False",
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    containers_ready = dict(ready_condition, type="ContainersReady")
    if reason:
        ready_condition["reason"] = reason
        containers_ready["reason"] = reason
    return [
        {
            "type": "Initialized",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": scheduled_at or stamp,
        },
        ready_condition,
        containers_ready,
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": scheduled_at or stamp,
        },
    ]


def _container_status(
    spec: JsonObject,
    state: JsonObject,
    *,
    ready: bool,
    container_id: str = "",
    started: bool = False,
) -> JsonObject:
    status: JsonObject = {
        "name": spec.get("name", ""),
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    }
    if container_id:
        status["containerID"] = container_id
    return status


def _terminated(container: ContainerRun) -> JsonObject:
    exit_code = container.exit_code if container.exit_code is not None else 0
    if container.start_error is not None:
        reason = "StartError"
    elif container.oom_killed:
        reason = "OOMKilled"
    elif exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    state: JsonObject = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": container.started_at,
        "finishedAt": container.finished_at or now_rfc3339(),
    }
    if container.signal:
        state["signal"] = container.signal
    if container.start_error:
        state["message"] = container.start_error
    if container.container_id:
        state["containerID"] = container.container_id
    return state
