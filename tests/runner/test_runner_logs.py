"""An attempt's log outlives its pod: the runner, run as a pod by the embedded cluster's
kubelet, sends everything its container writes to the real API, which serves it once the
pod is gone (`GET /api/v1/runs/{id}/logs`).

The tests play the operator: they record the attempt, create its pod, and end the run or
delete the pod as the operator would.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from runner_fixtures import TASK_MODULES, LiveApi

from podtask._contract.attempt_logs import HEAD_SEGMENTS, TAIL_SEGMENTS
from podtask._contract.wire import LABEL_ATTEMPT, LABEL_RUN
from podtask_api.log_segments import LABEL_LOG_SEGMENT
from tests.embedded_kube import EmbeddedKube

OUTPUT_TASKS = str(TASK_MODULES / "runner_output_tasks.py")
RUNNER_ENV = ("PODTASK_API_URL", "PODTASK_RUN_ID", "PODTASK_ATTEMPT", "PODTASK_ATTEMPT_TOKEN")


def _core(kube: EmbeddedKube) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube.api)


def _wait(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def _runner_pod(kube: EmbeddedKube, live_api: LiveApi, run: str, **extra: str) -> str:
    """The attempt's pod, running the runner as the operator's pod would."""
    env = live_api.runner_env(run, **extra)
    wanted = [*RUNNER_ENV, *extra]
    name = f"{run}-1"
    _core(kube).create_namespaced_pod(
        live_api.namespace.name,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {LABEL_RUN: run, LABEL_ATTEMPT: "1"}},
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 20,
                "containers": [
                    {
                        "name": "task",
                        "image": "local",
                        "command": [sys.executable, "-m", "podtask_runner"],
                        "env": [{"name": key, "value": env[key]} for key in wanted],
                    }
                ],
            },
        },
    )
    return name


def _phase(kube: EmbeddedKube, live_api: LiveApi, pod: str) -> str | None:
    try:
        found = _core(kube).read_namespaced_pod(pod, live_api.namespace.name)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return str(found.status.phase)


def _delete_and_wait(kube: EmbeddedKube, live_api: LiveApi, pod: str, grace: int) -> None:
    _core(kube).delete_namespaced_pod(pod, live_api.namespace.name, grace_period_seconds=grace)
    _wait(lambda: _phase(kube, live_api, pod) is None, f"pod {pod} to go")


def _log(live_api: LiveApi, run: str) -> str:
    response = live_api.logs(run)
    assert response.status_code == 200, response.text
    return response.text


def test_the_log_read_once_the_pod_is_gone_is_what_the_pod_wrote(
    embedded_kube: EmbeddedKube, live_api: LiveApi
) -> None:
    run = live_api.start_run("runner-writes-everywhere", module=OUTPUT_TASKS)
    pod = _runner_pod(embedded_kube, live_api, run)
    _wait(lambda: _phase(embedded_kube, live_api, pod) == "Succeeded", "the attempt to end")
    from_the_pod = _log(live_api, run)
    _delete_and_wait(embedded_kube, live_api, pod, grace=0)

    kept = _log(live_api, run)
    for line in (
        "to stdout with print",
        "to stderr with print",
        "to fd 1 directly",
        "from a child process",
        "accents: h\u00e9llo \u2603",
        f"[podtask-runner] attempt 1 of run {run} (task runner-writes-everywhere) starting",
    ):
        # Whole lines: a `print` that makes two writes is not cut by the other stream's.
        assert line in from_the_pod.splitlines(), (line, from_the_pod)
        assert line in kept.splitlines(), (line, kept)
    # The same text: only the order of what stdout and stderr wrote at the same moment may
    # differ (the container's log interleaves them as its runtime reads them).
    assert Counter(kept) == Counter(from_the_pod)
    assert "completed in" in kept
    assert "[podtask:" not in kept


def test_a_canceled_attempt_keeps_its_last_lines_and_ends_quietly(
    embedded_kube: EmbeddedKube, live_api: LiveApi, tmp_path: Path
) -> None:
    flag = tmp_path / "started"
    run = live_api.start_run("runner-writes-then-waits", module=OUTPUT_TASKS)
    pod = _runner_pod(embedded_kube, live_api, run, RUNNER_TEST_FLAG=str(flag))
    _wait(flag.exists, "the task to start")
    # What the operator does on a cancel: the run ends Canceled, then its pod is deleted.
    live_api.namespace.set_run_status(run, {"phase": "Canceled", "attempt": 1})
    _delete_and_wait(embedded_kube, live_api, pod, grace=20)

    kept = _log(live_api, run)
    assert "working on it" in kept
    assert "TaskTerminatedError" in kept
    assert (
        f"attempt 1 of run {run} has ended (the run finished as Canceled); nothing to report"
        in kept
    )
    assert "could not report" not in kept
    assert "[podtask:" not in kept  # the runner sent its last chunk


def test_a_long_log_keeps_its_head_and_its_tail(
    embedded_kube: EmbeddedKube, live_api: LiveApi
) -> None:
    lines = 40_000  # 4 MB
    run = live_api.start_run("runner-writes-a-lot", {"lines": lines}, module=OUTPUT_TASKS)
    pod = _runner_pod(embedded_kube, live_api, run)
    _wait(lambda: _phase(embedded_kube, live_api, pod) == "Succeeded", "the attempt to end", 120)
    _delete_and_wait(embedded_kube, live_api, pod, grace=0)

    kept = _log(live_api, run)
    assert kept.startswith(f"[podtask-runner] attempt 1 of run {run}")
    assert "\n00000000 " in kept and f"\n{lines - 1:08d} " in kept
    assert "bytes of this log were not kept here]" in kept
    assert "completed in" in kept
    assert len(kept.encode()) < 1024 * 1024
    segments = _core(embedded_kube).list_namespaced_config_map(
        live_api.namespace.name, label_selector=f"{LABEL_RUN}={run},{LABEL_LOG_SEGMENT}"
    )
    assert len(segments.items) <= HEAD_SEGMENTS + TAIL_SEGMENTS
