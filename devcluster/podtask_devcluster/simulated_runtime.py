"""The simulated runtime (`--runtime simulated`): a container "runs" for a set time without any
process and ends with exit code 0, as on kwok's nodes, so that a benchmark at the scale of a
busy cluster measures the control plane, the operator and the API, not process start-up.

A container with a runner's environment (what the operator sets in a task pod: the API's URL,
the run, the attempt and the attempt's token, the token from the attempt's Secret) does over
HTTP what the runner does, with the runner's own rules (`podtask_runner.callbacks`: the same
paths, token, retries of what is transient): it fetches its attempt, "runs" for its time,
then reports success (output null), so the run ends `Completed` the way a real one does. A
container without that environment only runs for its time. As the runner would, a simulated
runner that cannot fetch its attempt (or finds it ended) exits 2, one whose report cannot
reach the API exits 2; stopped (SIGTERM), it ends at once with 143 without a report; killed,
137.

Never the default: only `--runtime simulated` (or PODTASK_NODE_RUNTIME=simulated) chooses it,
and `--simulated-seconds` (or PODTASK_NODE_SIMULATED_SECONDS; 1 s without either) how long a
container runs. Every image is present; nothing is pulled, started or limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import httpx

from podtask._contract.resources import CompletionReport
from podtask._contract.wire import (
    ENV_API_URL,
    ENV_ATTEMPT,
    ENV_ATTEMPT_TOKEN,
    ENV_RUN_ID,
    EXIT_KILLED,
    EXIT_OK,
    EXIT_RUNNER_FAILED,
    EXIT_TERMINATED,
    RUNNER_ATTEMPT_PATH,
)
from podtask_devcluster.containers import ContainerRun, memory_limit_of
from podtask_devcluster.crilog import encode, timestamp
from podtask_devcluster.podenv import Plan
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.private_files import open_private_for_writing
from podtask_devcluster.store import JsonObject
from podtask_runner.api_transport import ApiResponse
from podtask_runner.callbacks import CallRetry, describe_response, ended_attempt, is_transient

SECONDS_ENV = "PODTASK_NODE_SIMULATED_SECONDS"
DEFAULT_SECONDS = 1.0
# One client for every simulated runner of the node: many pods at once, one pool.
MAX_CONNECTIONS = 200
REPORT = CompletionReport(ok=True).to_wire()

OomReport = Callable[[ContainerRun, int], None]


def simulated_seconds(
    value: float | None = None, environ: Mapping[str, str] | None = None
) -> float:
    """`value`, else PODTASK_NODE_SIMULATED_SECONDS, else 1 s; ValueError saying what to fix."""
    if value is None:
        raw = (os.environ if environ is None else environ).get(SECONDS_ENV)
        if not raw:
            return DEFAULT_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{SECONDS_ENV} must be a number of seconds, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"a simulated container runs for 0 seconds or more, not {value}")
    return value


class RunnerFailed(Exception):
    """The simulated runner could not do its part (the runner would exit 2)."""


class SimulatedRuntime:
    """Containers that are asyncio tasks (`ContainerRun.simulation`), not processes."""

    host_environment = False

    def __init__(self, seconds: float | None = None, retry: CallRetry | None = None) -> None:
        self.seconds = simulated_seconds(seconds)
        self._retry = retry or CallRetry()
        self._client: httpx.AsyncClient | None = None
        self._ended_by: dict[ContainerRun, int] = {}
        self._numbers = itertools.count(1)

    async def open(self, on_oom: OomReport) -> None:
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=50)
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0), limits=limits)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def has_image(self, image: str) -> bool:
        return True

    def pull_error(self, image: str) -> str:
        return f"the simulated node has every image, {image!r} too"

    async def check(self, pod: JsonObject, spec: JsonObject) -> None:
        return None

    async def start(
        self, pod: JsonObject, spec: JsonObject, plan: Plan, log_file: Path
    ) -> ContainerRun:
        container = ContainerRun(
            name=str(spec.get("name", "")),
            image=str(spec.get("image", "")),
            log_file=log_file,
            memory_limit=memory_limit_of(spec),
            started_at=now_rfc3339(),
            runtime_id=f"{pod['metadata'].get('uid', '')}/{next(self._numbers)}",
        )
        open_private_for_writing(log_file).close()
        container.simulation = asyncio.get_running_loop().create_task(
            self._simulate(container, plan.env)
        )
        return container

    async def wait(self, container: ContainerRun) -> None:
        if container.simulation is None:
            return
        code: int | None = None
        with contextlib.suppress(asyncio.CancelledError):
            code = await container.simulation
        ended_by = self._ended_by.pop(container, None)
        container.finished_at = now_rfc3339()
        if code is None:
            code = ended_by if ended_by is not None else EXIT_KILLED
            container.signal = code - 128
        container.exit_code = code

    async def stop(self, container: ContainerRun) -> None:
        self._end(container, EXIT_TERMINATED)

    async def kill(self, container: ContainerRun) -> None:
        self._end(container, EXIT_KILLED)

    def _end(self, container: ContainerRun, code: int) -> None:
        if container.simulation is not None and not container.simulation.done():
            self._ended_by.setdefault(container, code)
            container.simulation.cancel()

    async def release_pod(self, uid: str) -> None:
        return None

    async def supervise(self, containers: Callable[[], Iterable[ContainerRun]]) -> None:
        await asyncio.Event().wait()  # nothing runs, so nothing to watch

    # ------------------------------------------------------------ the simulated runner

    async def _simulate(self, container: ContainerRun, env: Mapping[str, str]) -> int:
        runner = all(env.get(name) for name in (ENV_API_URL, ENV_RUN_ID, ENV_ATTEMPT))
        if not runner or not env.get(ENV_ATTEMPT_TOKEN):
            self._say(container, f"simulated: ran {self.seconds:g} s without a process")
            await asyncio.sleep(self.seconds)
            return EXIT_OK
        path = env[ENV_API_URL].rstrip("/") + RUNNER_ATTEMPT_PATH.format(
            run_id=env[ENV_RUN_ID], attempt=env[ENV_ATTEMPT]
        )
        headers = {"Authorization": f"Bearer {env[ENV_ATTEMPT_TOKEN]}"}
        label = f"attempt {env[ENV_ATTEMPT]} of run {env[ENV_RUN_ID]}"
        try:
            await self._call("GET", path, headers)
        except RunnerFailed as failure:
            self._say(container, f"simulated: could not fetch {label}: {failure}")
            return EXIT_RUNNER_FAILED
        await asyncio.sleep(self.seconds)
        try:
            await self._call("POST", f"{path}/complete", headers, REPORT)
        except RunnerFailed as failure:
            self._say(container, f"simulated: could not report {label}: {failure}")
            return EXIT_RUNNER_FAILED
        self._say(container, f"simulated: {label} ran {self.seconds:g} s without a process")
        return EXIT_OK

    async def _call(
        self, method: str, url: str, headers: dict[str, str], body: JsonObject | None = None
    ) -> None:
        """One call with the runner's retries; RunnerFailed when it cannot be done (a report
        refused because the attempt has ended needs none: that is no failure)."""
        assert self._client is not None, "the runtime is not open"
        problem = "no attempt made"
        for delay in [*self._retry.delays(), None]:
            try:
                answer = await self._client.request(method, url, headers=headers, json=body)
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                # As the runner's own transport hands it to the rules it shares with us.
                response = ApiResponse(
                    answer.status_code, answer.content, answer.reason_phrase, dict(answer.headers)
                )
                if response.is_success:
                    return
                problem = describe_response(response)
                why = ended_attempt(response)
                if why is not None:
                    if body is not None:
                        return
                    raise RunnerFailed(f"the attempt has ended ({why})")
                if not is_transient(response):
                    break
            if delay is not None:
                await asyncio.sleep(delay)
        raise RunnerFailed(f"{method} {url} failed: {problem}")

    def _say(self, container: ContainerRun, line: str) -> None:
        with container.log_file.open("ab") as log:
            log.write(encode(f"[podtask-runner] {line}\n".encode(), timestamp()))
