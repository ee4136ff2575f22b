"""The manifest: built from declared tasks, its queue rules, its JSON, and `podtask index`
run as a real subprocess on the examples and on broken task modules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from podtask import Context, RetryPolicy, TaskDeclarationError, queue, task
from podtask._authoring.manifest import Manifest, ManifestTask, build_manifest
from podtask._authoring.tasks import Task
from podtask._contract.limits import MAX_PAYLOAD_SCHEMA_BYTES
from podtask._contract.resources import OutOfMemoryPolicy, QueueRef

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(payload: object, ctx: object) -> object:
    return payload


def declared(*tasks: Task) -> dict[str, tuple[str, Task]]:
    """What `load_tasks` returns for tasks found in one module file."""
    return {t.id: ("tasks/module.py", t) for t in tasks}


def test_each_task_carries_its_whole_configuration() -> None:
    emails = queue("manifest-emails", concurrency_limit=2)
    send = task(
        id="manifest-send",
        queue=emails,
        machine="medium-1x",
        retry={"max_attempts": 5, "out_of_memory": {"machine": "large-1x"}},
        max_duration=300,
        ttl=60,
        schedule={"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
    )(run)
    plain = task(id="manifest-plain")(run)
    manifest = build_manifest(declared(send, plain))

    assert [t.id for t in manifest.tasks] == ["manifest-plain", "manifest-send"]
    assert manifest.to_wire()["tasks"][1] == {
        "id": "manifest-send",
        "module": "tasks/module.py",
        "version": None,
        "queue": {"name": "manifest-emails", "concurrencyLimit": 2},
        "machine": "medium-1x",
        "retry": {
            "maxAttempts": 5,
            "factor": 2.0,
            "minTimeoutMs": 1000,
            "maxTimeoutMs": 60000,
            "randomize": True,
            "outOfMemory": {"machine": "large-1x"},
        },
        "maxDuration": 300,
        "ttl": 60,
        "schedule": {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"},
        "payloadSchema": None,
    }
    assert manifest.to_wire()["tasks"][0]["schedule"] is None
    assert manifest.to_wire()["queues"] == [
        {"name": "manifest-emails", "concurrencyLimit": 2},
        {"name": "manifest-plain", "concurrencyLimit": None},
    ]


def test_a_shared_queue_is_listed_once() -> None:
    shared = queue("manifest-shared", concurrency_limit=1)
    first = task(id="manifest-shared-a", queue=shared)(run)
    second = task(
        id="manifest-shared-b", queue={"name": "manifest-shared", "concurrency_limit": 1}
    )(run)
    manifest = build_manifest(declared(first, second))
    assert manifest.queues == [QueueRef(name="manifest-shared", concurrency_limit=1)]


def test_a_queue_with_two_limits_is_a_declaration_error_naming_both_tasks() -> None:
    first = task(id="manifest-clash-a", queue={"name": "manifest-clash", "concurrency_limit": 1})(
        run
    )
    second = task(id="manifest-clash-b", queue={"name": "manifest-clash", "concurrency_limit": 3})(
        run
    )
    with pytest.raises(TaskDeclarationError) as error:
        build_manifest(declared(first, second))
    message = str(error.value)
    assert "queue 'manifest-clash'" in message
    assert "'manifest-clash-a'" in message and "'manifest-clash-b'" in message
    assert "concurrency_limit 1" in message and "3" in message
    assert "test_manifest.py" in message  # where each task is declared


def test_the_json_reads_back_into_the_same_manifest() -> None:
    done = task(id="manifest-roundtrip", retry={"max_attempts": 1})(run)
    manifest = build_manifest(declared(done))
    assert Manifest.model_validate_json(manifest.to_json()) == manifest


class Greeting(BaseModel):
    name: str = Field(min_length=1)
    times: int = 1


def greet(payload: Greeting, ctx: Context) -> str:
    return payload.name * payload.times


class Opaque:
    """A type pydantic can hold (arbitrary_types_allowed) but not describe in JSON schema."""


class WithOpaque(BaseModel):
    model_config = {"arbitrary_types_allowed": True}
    thing: Opaque


def opaque(payload: WithOpaque, ctx: Context) -> None: ...


def test_a_task_with_a_payload_model_carries_its_json_schema() -> None:
    manifest = build_manifest(declared(task(id="manifest-schema")(greet)))
    schema = manifest.tasks[0].payload_schema
    assert schema == Greeting.model_json_schema()
    assert schema is not None and schema["required"] == ["name"]
    spec = manifest.tasks[0].task_spec(image="i", default_version="v1")
    assert spec.to_wire()["payloadSchema"] == schema
    assert Manifest.model_validate_json(manifest.to_json()) == manifest


def test_a_payload_model_pydantic_cannot_describe_leaves_the_schema_out() -> None:
    manifest = build_manifest(declared(task(id="manifest-opaque")(opaque)))
    assert manifest.tasks[0].payload_schema is None


def test_a_payload_schema_too_large_for_its_task_object_is_refused() -> None:
    huge = {"type": "object", "description": "x" * MAX_PAYLOAD_SCHEMA_BYTES}
    entry = manifest_task("big", "big", None)
    with pytest.raises(ValidationError, match="more than 64 KiB"):
        ManifestTask.model_validate({**entry, "payloadSchema": huge})


def manifest_task(task_id: str, queue_name: str, limit: int | None) -> dict[str, Any]:
    return {
        "id": task_id,
        "module": "m.py",
        "queue": {"name": queue_name, "concurrencyLimit": limit},
        "machine": "small-1x",
        "retry": {},
    }


def test_a_manifest_read_back_must_be_consistent() -> None:
    with pytest.raises(ValidationError, match="repeated: a"):
        Manifest.model_validate(
            {"tasks": [manifest_task("a", "q", 1), manifest_task("a", "q", 1)], "queues": []}
        )
    with pytest.raises(ValidationError, match="queue 'q' has concurrency_limit 1"):
        Manifest.model_validate(
            {"tasks": [manifest_task("a", "q", 1), manifest_task("b", "q", 2)], "queues": []}
        )
    with pytest.raises(ValidationError, match="queues must list exactly"):
        Manifest.model_validate({"tasks": [manifest_task("a", "q", 1)], "queues": []})
    with pytest.raises(ValidationError, match="extra"):
        Manifest.model_validate({"tasks": [], "queues": [], "image": "x"})
    # A schedule read back is held to the declaration's rules, the field named.
    for schedule, field in (
        ({"cron": "0 9 * *"}, "cron"),
        ({"cron": "@daily", "timezone": "Mars/Base"}, "timezone"),
    ):
        with pytest.raises(ValidationError) as refused:
            Manifest.model_validate(
                {
                    "tasks": [{**manifest_task("a", "q", 1), "schedule": schedule}],
                    "queues": [{"name": "q", "concurrencyLimit": 1}],
                }
            )
        assert ("tasks", 0, "schedule", field) in [e["loc"] for e in refused.value.errors()]


def test_a_manifest_task_becomes_a_task_spec() -> None:
    entry = ManifestTask(
        id="t",
        module="m.py",
        queue=QueueRef(name="q", concurrency_limit=1),
        machine="micro",
        retry=RetryPolicy(max_attempts=2, out_of_memory=OutOfMemoryPolicy(machine="small-2x")),
        max_duration=30,
        ttl=10,
        schedule={"cron": "@hourly"},
    )
    spec = entry.task_spec(image="img:1", default_version="v1")
    assert spec.to_wire() == {
        "taskId": "t",
        "image": "img:1",
        "module": "m.py",
        "version": "v1",
        "retry": {
            "maxAttempts": 2,
            "factor": 2.0,
            "minTimeoutMs": 1000,
            "maxTimeoutMs": 60000,
            "randomize": True,
            "outOfMemory": {"machine": "small-2x"},
        },
        "queue": {"name": "q", "concurrencyLimit": 1},
        "machine": "micro",
        "maxDurationSeconds": 30,
        "ttlSeconds": 10,
        "schedule": {"cron": "@hourly", "timezone": "UTC"},
    }
    versioned = entry.model_copy(update={"version": "2024.1"})
    assert versioned.task_spec(image="i", default_version="v1").version == "2024.1"


def podtask_index(*modules: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "index", *modules],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.component
def test_podtask_index_prints_every_example_task() -> None:
    done = podtask_index("examples/")
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    declared_ids = {
        match
        for path in EXAMPLES.glob("*.py")
        for match in re.findall(r"\bid=\"([a-z0-9-]+)\"", path.read_text())
    }
    assert {t["id"] for t in manifest["tasks"]} == declared_ids
    for entry in manifest["tasks"]:
        assert set(entry) >= {
            "queue", "machine", "retry", "module", "maxDuration", "ttl", "schedule",
        }  # fmt: skip
        assert entry["queue"]["name"] in {q["name"] for q in manifest["queues"]}
        assert set(entry["retry"]) >= {"maxAttempts", "factor", "minTimeoutMs", "maxTimeoutMs"}
    hello = next(t for t in manifest["tasks"] if t["id"] == "hello-world")
    assert hello["module"] == str(EXAMPLES / "hello_world.py")
    assert hello["machine"] == "small-1x"


BAD_MACHINE = """
from podtask import task

@task(id="broken-machine", machine="giant")
def broken(payload, ctx):
    return None
"""

IMPORT_ERROR = """
print("imported!")
import module_that_does_not_exist
"""

QUEUE_CLASH = """
from podtask import task

@task(id="clash-a", queue={"name": "shared", "concurrency_limit": 1})
def a(payload, ctx):
    return None

@task(id="clash-b", queue={"name": "shared", "concurrency_limit": 2})
def b(payload, ctx):
    return None
"""


@pytest.mark.component
@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (BAD_MACHINE, ["broken_tasks.py", "'broken-machine'", "unknown machine 'giant'"]),
        (IMPORT_ERROR, ["broken_tasks.py", "ModuleNotFoundError", "module_that_does_not_exist"]),
        (QUEUE_CLASH, ["queue 'shared'", "'clash-a'", "'clash-b'", "broken_tasks.py:"]),
    ],
    ids=["bad-machine", "import-error", "queue-clash"],
)
def test_podtask_index_of_a_broken_module_fails_naming_it(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    (tmp_path / "broken_tasks.py").write_text(source)
    done = podtask_index(str(tmp_path / "broken_tasks.py"))
    assert done.returncode != 0
    assert "{" not in done.stdout  # no manifest, and what the module printed went to stderr
    for text in expected:
        assert text in done.stderr, done.stderr


@pytest.mark.component
def test_podtask_index_takes_dotted_names_from_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "dotted_tasks.py").write_text(
        'from podtask import task\n\n@task(id="dotted")\ndef run(payload, ctx):\n    return 1\n'
    )
    done = podtask_index("dotted_tasks", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [t["module"] for t in json.loads(done.stdout)["tasks"]] == ["dotted_tasks"]
