"""The node agent's container runtime: a container is a local process under its shim
(`podshim`), started, signalled and waited for here, with its memory limit enforced (over the
limit: killed, OOMKilled, exit 137).

The shim is what the runtime starts, signals and waits for, and it makes sure that no process
the container started (in a session of its own or not) outlives the container, however it
ends: exit, OOM kill, deletion, or the kubelet itself stopping or dying.

Output goes straight into the container's log file, or, with `timestamped`, through a pipe
into a log in the CRI format (`<RFC3339Nano> stdout F|P <text>`), which is what lets the node
agent serve `timestamps` and `sinceSeconds` as a kubelet does (`crilog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from podtask_devcluster.crilog import CriLogWriter
from podtask_devcluster.podenv import Plan
from podtask_devcluster.private_files import open_private_for_writing
from podtask_devcluster.quantities import parse_bytes
from podtask_devcluster.store import JsonObject

MEMORY_POLL_SECONDS = 0.05
OOM_EXIT_CODE = 137
LOG_DRAIN_SECONDS = 2.0
START_ERROR_EXIT_CODE = 128
SHIM = Path(__file__).with_name("podshim.py")


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
    log_copier: asyncio.Task[None] | None = None
    # In container mode: podman's id of the container (`process` is then what waits for it)
    # and whether the agent itself sent SIGKILL (an exit 137 that is no OOM kill).
    runtime_id: str = ""
    killed: bool = False
    # In simulated mode: what stands for the container's process (`simulated_runtime`); it
    # returns the exit code.
    simulation: asyncio.Task[int] | None = None

    @property
    def container_id(self) -> str:
        if self.simulation is not None:
            return f"simulated://{self.runtime_id}"
        if self.runtime_id:
            return f"podman://{self.runtime_id}"
        return f"local://{self.process.pid}" if self.process is not None else ""

    def alive(self) -> bool:
        if self.simulation is not None:
            return not self.simulation.done()
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


def memory_limit_of(container: JsonObject) -> int | None:
    limits = (container.get("resources") or {}).get("limits") or {}
    if limits.get("memory") is None:
        return None
    try:
        return parse_bytes(limits["memory"])
    except ValueError:
        return None


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


async def spawn_container(
    spec: JsonObject,
    plan: Plan,
    log_file: Path,
    started_at: str,
    *,
    runtime_name: str = "the podtask dev cluster",
    timestamped: bool = False,
    now: Callable[[], str],
) -> ContainerRun:
    """Start one container; a container that cannot start comes back with `start_error` set
    and exit code 128, as a runtime's StartError."""
    name = str(spec.get("name", ""))
    result = ContainerRun(
        name=name,
        image=str(spec.get("image", "")),
        log_file=log_file,
        memory_limit=memory_limit_of(spec),
    )
    result.started_at = started_at
    # Logs may hold secrets the task printed: owner-only, like the rest of the state dir.
    with open_private_for_writing(log_file) as log:
        if not plan.argv:
            result.start_error = (
                f"{runtime_name} runs a container's command and args as a local "
                "process and cannot use an image's entrypoint; spec.containers"
                f"[{name}].command is empty"
            )
        else:
            error = await _start_shim(result, plan, log, timestamped)
            if error is not None:
                result.start_error = (
                    f"failed to start container {name!r}: exec: {plan.argv[0]!r}: {error}"
                )
    if result.start_error is not None:
        result.exit_code = START_ERROR_EXIT_CODE
        result.finished_at = now()
    return result


async def _start_shim(
    container: ContainerRun, plan: Plan, log: IO[bytes], timestamped: bool
) -> str | None:
    """Start the container's command under its shim; why it could not start, or None."""
    status_read, status_write = os.pipe()
    try:
        # Untimestamped, the command writes straight into the log file: nothing is buffered.
        container.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(SHIM),
            str(os.getpid()),
            str(status_write),
            *plan.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if timestamped else log,
            stderr=subprocess.STDOUT,
            cwd=plan.cwd,
            env=plan.env,
            start_new_session=True,
            pass_fds=(status_write,),
        )
    except (OSError, ValueError) as error:
        os.close(status_read)
        return str(error)
    finally:
        os.close(status_write)
    if timestamped and container.process.stdout is not None:
        writer = CriLogWriter(container.log_file)
        container.log_copier = asyncio.get_running_loop().create_task(
            writer.copy(container.process.stdout)
        )
    why_not = await asyncio.to_thread(_read_to_end, status_read)
    if why_not:
        await container.process.wait()
        await _drain_log(container)
        container.process = None
        return why_not
    return None


async def _drain_log(container: ContainerRun) -> None:
    """The rest of the output. A shim that ends normally has outlived every process of its
    container, so the pipe ends at once; a killed shim may leave an orphan holding the pipe,
    and the container has ended all the same: what came within a short while is kept."""
    copier = container.log_copier
    if copier is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(copier), LOG_DRAIN_SECONDS)
        if not copier.done():
            copier.cancel()
            with contextlib.suppress(BaseException):
                await copier


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The shim's exit status, as soon as it exits. (`Process.wait()` of Python 3.11 also
    waits for its pipes to close, which an orphan of a killed shim may hold open.)"""
    waiting = asyncio.ensure_future(process.wait())
    while not waiting.done() and process.returncode is None:
        await asyncio.wait({waiting}, timeout=MEMORY_POLL_SECONDS)
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    assert process.returncode is not None
    return process.returncode


async def wait_container(container: ContainerRun, now: Callable[[], str]) -> None:
    """Until the container has ended (and its log is complete); records how it ended."""
    assert container.process is not None
    # The shim ends only once every process of the container is gone.
    code = await _exited(container.process)
    await _drain_log(container)
    container.finished_at = now()
    if container.oom_killed:
        container.exit_code = OOM_EXIT_CODE
        container.signal = signal.SIGKILL
    elif code < 0:
        container.signal = -code
        container.exit_code = 128 - code
    else:
        container.exit_code = code


def _read_to_end(fd: int) -> str:
    chunks: list[bytes] = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


async def watch_memory(
    containers: Callable[[], Iterable[ContainerRun]],
    on_oom: Callable[[ContainerRun, int], None] | None = None,
) -> None:
    """For ever: kill any container whose processes use more than its memory limit."""
    while True:
        await asyncio.sleep(MEMORY_POLL_SECONDS)
        limited = [
            c for c in containers() if c.memory_limit is not None and c.alive() and not c.oom_killed
        ]
        if not limited:
            continue
        pids = [c.process.pid for c in limited if c.process is not None]
        usages = await asyncio.to_thread(_container_rss_all, pids)
        for container, usage in zip(limited, usages, strict=True):
            if container.memory_limit is not None and usage > container.memory_limit:
                container.oom_killed = True
                kill_container(container.process)
                if on_oom is not None:
                    on_oom(container, usage)


# ------------------------------------------------------------ memory accounting


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
