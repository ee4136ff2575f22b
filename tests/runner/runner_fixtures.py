"""Fixtures for the runner tests: the real API on a free port, over the embedded cluster.

The tests play the operator: they create TaskRuns in the session's namespace and write the
status it writes when it starts an attempt's pod.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from podtask._contract.resources import QueueRef, TaskSpec
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.app import create_app
from podtask_api.auth import api_key_digest
from podtask_api.run_names import random_run_name
from podtask_api.settings import ApiSettings
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from podtask_devcluster.ports import free_port
from podtask_runner.api_transport import ApiRequest, ApiResponse
from podtask_runner.callbacks import AttemptCallbacks, CallRetry
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TASK_MODULES = Path(__file__).parent / "task_modules"
SAMPLE_TASKS = str(TASK_MODULES / "runner_sample_tasks.py")
SECRET = "runner-test-secret"
# A key for the public endpoints (an attempt's log, as a user reads it).
API_KEY = "pt_runner_test_key"


def played_callbacks(
    answer: Callable[[httpx.Request], httpx.Response], attempts: int = 4
) -> AttemptCallbacks:
    """The runner's API client for attempt 1 of run-1, the API played by `answer` (no sleeps
    between tries); `answer` meets each request as httpx's `Request` and answers with httpx's
    `Response`, the transport carrying both as the runner's own."""

    def transport(request: ApiRequest) -> ApiResponse:
        played = answer(
            httpx.Request(
                request.method,
                f"http://api{request.path}",
                headers=request.headers,
                content=request.body,
                extensions={
                    "timeout": {"connect": request.timeout.connect, "read": request.timeout.read}
                },
            )
        )
        return ApiResponse(
            played.status_code, played.read(), played.reason_phrase, dict(played.headers)
        )

    return AttemptCallbacks(
        "http://api",
        "run-1",
        1,
        "tok",
        retry=CallRetry(attempts=attempts),
        sleep=lambda _: None,
        transport=transport,
    )


@dataclass
class LiveApi:
    url: str
    namespace: KubeNamespace

    def start_run(
        self,
        task_id: str,
        payload: Any = None,
        *,
        module: str = SAMPLE_TASKS,
        attempt: int = 1,
        recorded: bool = True,
        max_duration: int | None = None,
        tags: list[str] | None = None,
        **options: Any,
    ) -> str:
        """A run as the operator leaves it when it starts `attempt`'s pod: with the attempt
        recorded in the status, or (`recorded=False`) the moment before it records it.
        `options`: more trigger options, as the API's JSON names them."""
        spec = TaskSpec(
            task_id=task_id,
            image="local",
            module=module,
            version="1",
            queue=QueueRef(name=task_id),
            machine="small-2x",
            max_duration_seconds=max_duration,
        )
        request = TriggerRequest.model_validate(
            {"payload": payload, "options": {"tags": tags or [], **options}}
        )
        name = random_run_name()
        self.namespace.create_run(build_task_run(spec, request, name))
        shown = attempt if recorded else attempt - 1
        if shown > 0:
            self.namespace.set_run_status(
                name,
                {
                    "phase": "Executing" if recorded else "WaitingToRetry",
                    "attempt": shown,
                    "machine": "small-2x",
                    "attempts": [
                        {"number": n, "pod": f"{name}-{n}", "machine": "small-2x"}
                        for n in range(1, shown + 1)
                    ],
                },
            )
        return name

    def status(self, run: str) -> dict[str, Any]:
        status: dict[str, Any] = self.namespace.run(run).get("status") or {}
        return status

    def logs(self, run: str, attempt: int = 1) -> httpx.Response:
        """`GET /api/v1/runs/{run}/logs` as a user asks for it."""
        return httpx.get(
            f"{self.url}/api/v1/runs/{run}/logs",
            params={"attempt": attempt},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )

    def report(self, run: str) -> dict[str, Any]:
        """The runner's report as the run holds it; a success's output with it (the API keeps
        that once, in `status.output`, as it completes the run in the same write)."""
        status = self.status(run)
        report: dict[str, Any] = dict(status["report"])
        if report.get("ok") and status.get("phase") == "Completed":
            report["output"] = status.get("output")
        return report

    def runner_env(self, run: str, attempt: int = 1, **extra: str) -> dict[str, str]:
        token = sign_attempt_token(SECRET.encode(), run, attempt, ttl_seconds=300)
        return {
            **os.environ,
            "PODTASK_API_URL": self.url,
            "PODTASK_RUN_ID": run,
            "PODTASK_ATTEMPT": str(attempt),
            "PODTASK_ATTEMPT_TOKEN": token,
            **extra,
        }

    def run_runner(
        self, run: str, attempt: int = 1, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "podtask_runner"],
            env=self.runner_env(run, attempt, **extra),
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="session")
def live_api(embedded_kube: EmbeddedKube) -> Iterator[LiveApi]:
    namespace = embedded_kube.new_namespace("runner")
    settings = ApiSettings.model_validate(
        {
            "runner_token_secret": SECRET,
            "api_key_hashes": api_key_digest(API_KEY),
            "namespace": namespace.name,
            "kubeconfig": str(embedded_kube.kubeconfig),
        }
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test API did not start")
        time.sleep(0.01)
    yield LiveApi(url=f"http://127.0.0.1:{port}", namespace=namespace)
    server.should_exit = True
    thread.join(timeout=10)
