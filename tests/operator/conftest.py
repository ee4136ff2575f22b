from typing import Any

import pytest

from podtask._contract.resources import TaskRunSpec
from podtask_operator.settings import OperatorSettings


@pytest.fixture
def settings() -> OperatorSettings:
    return OperatorSettings(
        api_url="http://podtask-api.podtask.svc:8080", runner_token_secret="x" * 32
    )


@pytest.fixture
def spec() -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "hello-world",
            "version": "v3",
            "image": "registry.example/tasks:v3",
            "module": "tasks.hello",
            "machine": "medium-1x",
            "queue": {"name": "emails", "concurrencyLimit": 3},
            "retry": {"maxAttempts": 3, "outOfMemory": {"machine": "large-1x"}},
            "payload": {"name": "world"},
            "concurrencyKey": "user/42 with spaces",
        }
    )


@pytest.fixture
def run() -> dict[str, Any]:
    return {
        "apiVersion": "podtask.dev/v1alpha1",
        "kind": "TaskRun",
        "metadata": {"name": "run-abc123", "namespace": "tasks", "uid": "0000-1111"},
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
