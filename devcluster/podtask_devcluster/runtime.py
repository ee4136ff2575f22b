"""What the node agent runs containers with: the one interface the pod worker (`nodepods`)
calls, whatever the runtime, and the choice between the two runtimes.

- `processes` (the default): each container is a local process of the dev environment under
  its shim (`containers`); the image is not used; memory is enforced by polling RSS.
- `containers`: each container runs with podman from the pod's image (`podman_runtime`),
  its limits enforced by the kernel.
- `simulated`: no process at all; a container "runs" for `--simulated-seconds` and exits 0, a
  task pod's doing what the runner does over HTTP (`simulated_runtime`), for benchmarks at scale.
  Never chosen by default.

`PODTASK_NODE_RUNTIME=processes|containers|simulated` chooses it, and `--runtime` wherever the
node agent is started (its command line, `ControlPlane.node_agent_args`,
`python -m podtask_devcluster`, `podtask dev`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from podtask_devcluster.containers import (
    ContainerRun,
    kill_container,
    spawn_container,
    stop_container,
    wait_container,
    watch_memory,
)
from podtask_devcluster.images import ImageSet
from podtask_devcluster.podenv import Plan
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.store import JsonObject

RUNTIME_ENV = "PODTASK_NODE_RUNTIME"
PROCESSES = "processes"
CONTAINERS = "containers"
SIMULATED = "simulated"
RUNTIMES = (PROCESSES, CONTAINERS, SIMULATED)

OomReport = Callable[[ContainerRun, int], None]


class ContainerRuntime(Protocol):
    """One node's containers: what a kubelet asks of its container runtime."""

    @property
    def host_environment(self) -> bool:
        """Whether a container's environment starts from the agent's own (a local process)."""
        ...

    async def open(self, on_oom: OomReport) -> None:
        """Before the first pod: remove what an earlier agent of this node left behind."""

    async def close(self) -> None:
        """After the last container has ended: remove what is left of them."""

    async def has_image(self, image: str) -> bool: ...

    def pull_error(self, image: str) -> str:
        """Why the node cannot have `image` (the ErrImagePull message)."""
        ...

    async def check(self, pod: JsonObject, spec: JsonObject) -> None:
        """Raise `ContainerConfigError` when the container must not be created as it is."""

    async def start(
        self, pod: JsonObject, spec: JsonObject, plan: Plan, log_file: Path
    ) -> ContainerRun:
        """Create and start one container; one that cannot start comes back with
        `start_error` set and exit code 128."""
        ...

    async def wait(self, container: ContainerRun) -> None:
        """Until the container has ended (its log complete); records how it ended."""

    async def stop(self, container: ContainerRun) -> None:
        """SIGTERM to the container's processes."""

    async def kill(self, container: ContainerRun) -> None:
        """SIGKILL to every process of the container."""

    async def release_pod(self, uid: str) -> None:
        """The pod's containers have all ended: what the runtime kept for it goes."""

    async def supervise(self, containers: Callable[[], Iterable[ContainerRun]]) -> None:
        """For as long as the agent runs (a task it cancels on stop)."""


def runtime_choice(value: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """`value`, else PODTASK_NODE_RUNTIME, else processes; ValueError naming the choices."""
    chosen = value or (os.environ if environ is None else environ).get(RUNTIME_ENV) or PROCESSES
    if chosen not in RUNTIMES:
        raise ValueError(
            f"unknown node runtime {chosen!r} ({RUNTIME_ENV} or --runtime): "
            f"choose {' or '.join(RUNTIMES)}"
        )
    return chosen


def add_runtime_option(parser: argparse.ArgumentParser) -> None:
    """`--runtime` and `--simulated-seconds`, as every command that starts a node agent takes
    them."""
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default=None,
        help="how the node runs containers: local processes (default), podman containers "
        "from their images, or simulated (no process: each container runs for "
        f"--simulated-seconds and exits 0) (default: ${RUNTIME_ENV}, else {PROCESSES})",
    )
    parser.add_argument(
        "--simulated-seconds",
        type=float,
        default=None,
        help="with --runtime simulated: how long each container runs "
        "(default: $PODTASK_NODE_SIMULATED_SECONDS, else 1)",
    )


class ProcessRuntime:
    """Containers as local processes under their shims (`containers`), images from a list."""

    host_environment = True

    def __init__(self, node: str, images: ImageSet) -> None:
        self._node = node
        self._images = images
        self._on_oom: OomReport | None = None

    async def open(self, on_oom: OomReport) -> None:
        self._on_oom = on_oom

    async def close(self) -> None:
        return None

    async def has_image(self, image: str) -> bool:
        return self._images.has(image)

    def pull_error(self, image: str) -> str:
        return self._images.pull_error(image, self._node)

    async def check(self, pod: JsonObject, spec: JsonObject) -> None:
        return None

    async def start(
        self, pod: JsonObject, spec: JsonObject, plan: Plan, log_file: Path
    ) -> ContainerRun:
        return await spawn_container(
            spec,
            plan,
            log_file,
            now_rfc3339(),
            runtime_name="the podtask node agent",
            timestamped=True,
            now=now_rfc3339,
        )

    async def wait(self, container: ContainerRun) -> None:
        if container.process is not None:
            await wait_container(container, now_rfc3339)

    async def stop(self, container: ContainerRun) -> None:
        stop_container(container.process)

    async def kill(self, container: ContainerRun) -> None:
        kill_container(container.process)

    async def release_pod(self, uid: str) -> None:
        return None

    async def supervise(self, containers: Callable[[], Iterable[ContainerRun]]) -> None:
        await watch_memory(containers, self._on_oom)


def make_runtime(
    choice: str,
    node: str,
    state_dir: Path,
    images: ImageSet,
    simulated_seconds: float | None = None,
) -> ContainerRuntime:
    chosen = runtime_choice(choice)
    if chosen == CONTAINERS:
        from podtask_devcluster.podman_runtime import PodmanRuntime

        return PodmanRuntime(node, state_dir)
    if chosen == SIMULATED:
        from podtask_devcluster.simulated_runtime import SimulatedRuntime

        return SimulatedRuntime(simulated_seconds)
    return ProcessRuntime(node, images)
