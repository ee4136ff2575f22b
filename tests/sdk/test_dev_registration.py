"""What `podtask dev` registers: a `Task` per declared task, a `TaskQueue` per declared queue
and a DECLARATIVE `TaskSchedule` per declared schedule, in the embedded cluster, across
restarts; and the queue-name rule of the manifest."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from kubernetes import client
from pydantic import ValidationError

from podtask import TaskDeclarationError, task
from podtask._authoring.manifest import (
    MAX_QUEUE_NAME_LENGTH,
    Manifest,
    ManifestTask,
    build_manifest,
    is_valid_queue_name,
    queues_of,
)
from podtask._cli.dev import register
from podtask._contract.resources import (
    QueueRef,
    RetryPolicy,
    TaskRunSpec,
    TaskScheduleDeclaration,
)
from podtask._contract.wire import API_VERSION, GROUP, LABEL_QUEUE, LABEL_TASK, VERSION
from podtask._control.declared_schedules import ScheduleNameTaken
from podtask._control.registration import (
    DECLARED_LIMIT_ANNOTATION,
    queue_patch,
    queue_resource,
    stale_queues,
    unfinished_queue_names,
)
from tests.embedded_kube import EmbeddedKube

KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else "kubectl"


def run(payload: object, ctx: object) -> object:
    return payload


def manifest(*tasks: tuple[str, str, int | None]) -> Manifest:
    """The manifest of tasks given as (task id, queue name, queue limit)."""
    entries = [
        ManifestTask(
            id=task_id,
            module="tasks/module.py",
            queue=QueueRef(name=queue_name, concurrency_limit=limit),
            machine="small-1x",
            retry=RetryPolicy(),
        )
        for task_id, queue_name, limit in tasks
    ]
    return Manifest(tasks=entries, queues=queues_of(entries))


# -- pure ---------------------------------------------------------------------------------------


def test_a_declared_queue_becomes_a_running_task_queue_with_its_limit() -> None:
    assert queue_resource(QueueRef(name="emails", concurrency_limit=3), "ns") == {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {
            "name": "emails",
            "namespace": "ns",
            "annotations": {DECLARED_LIMIT_ANNOTATION: "3"},
        },
        "spec": {"concurrencyLimit": 3, "paused": False},
    }
    undeclared = queue_resource(QueueRef(name="emails"), "ns")
    assert undeclared["spec"] == {"concurrencyLimit": None, "paused": False}
    assert undeclared["metadata"]["annotations"] == {DECLARED_LIMIT_ANNOTATION: "null"}


def _existing(annotation: str | None, limit: int | None, paused: bool = False) -> dict[str, Any]:
    annotations = {} if annotation is None else {DECLARED_LIMIT_ANNOTATION: annotation}
    return {
        "metadata": {"name": "emails", "annotations": annotations},
        "spec": {"concurrencyLimit": limit, "paused": paused},
    }


def test_only_a_changed_declaration_overrides_the_live_limit() -> None:
    declared = QueueRef(name="emails", concurrency_limit=3)
    # Patched live from 3 to 6, declaration unchanged: leave it.
    assert queue_patch(_existing("3", 6, paused=True), declared) is None
    # The declaration changed from 3 to 4: it wins over the live 6; paused is not touched.
    assert queue_patch(
        _existing("3", 6, paused=True), declared.model_copy(update={"concurrency_limit": 4})
    ) == {
        "metadata": {"annotations": {DECLARED_LIMIT_ANNOTATION: "4"}},
        "spec": {"concurrencyLimit": 4},
    }
    # Declared limit removed: null (the operator's default).
    assert queue_patch(_existing("3", 3), QueueRef(name="emails")) == {
        "metadata": {"annotations": {DECLARED_LIMIT_ANNOTATION: "null"}},
        "spec": {"concurrencyLimit": None},
    }
    assert queue_patch(_existing("null", 5), QueueRef(name="emails")) is None
    # Not made from a declaration (created by hand): the declaration wins.
    assert queue_patch(_existing(None, 9), declared) is not None
    assert queue_patch({"metadata": {}}, declared) is not None


def test_a_registration_deletes_its_queues_that_nothing_needs_any_more() -> None:
    def made(by_registration: bool) -> dict[str, Any]:
        annotations = {DECLARED_LIMIT_ANNOTATION: "3"} if by_registration else {}
        return {"metadata": {"annotations": annotations}}

    existing = {"emails": made(True), "old": made(True), "busy": made(True), "mine": made(False)}
    assert stale_queues(existing, ["emails"], ["busy"]) == ["old"]
    runs = [
        {"spec": {"queue": {"name": "a"}}, "status": {"phase": "Completed"}},
        {"spec": {"queue": {"name": "b"}}, "status": {"phase": "WaitingToRetry"}},
        {"spec": {"queue": {"name": "c"}}},  # an open batch's run, or not seen yet
        {"spec": {"queue": {"name": "d"}}, "status": {"phase": "Canceled"}},
    ]
    assert unfinished_queue_names(runs) == {"b", "c"}


def test_queue_names_must_name_kubernetes_objects() -> None:
    for good in ("emails", "emails.eu", "a", "0-a.b-1", "a" * MAX_QUEUE_NAME_LENGTH):
        assert is_valid_queue_name(good), good
    bad = ("Emails", "emails_eu", "-emails", "emails.", "emails..eu", "e mails", "", "é")
    for name in (*bad, "a" * (MAX_QUEUE_NAME_LENGTH + 1)):
        assert not is_valid_queue_name(name), name


def test_an_invalid_queue_name_is_a_declaration_error_naming_the_queue_and_task() -> None:
    bad = task(id="dev-reg-bad-queue", queue={"name": "Emails_EU", "concurrency_limit": 2})(run)
    with pytest.raises(TaskDeclarationError) as error:
        build_manifest({bad.id: ("tasks/module.py", bad)})
    message = str(error.value)
    assert "queue 'Emails_EU'" in message and "'dev-reg-bad-queue'" in message
    assert "test_dev_registration.py" in message  # where the task is declared
    assert "lowercase letters, digits" in message
    # A manifest read back (from a deploy) is held to the same rule.
    with pytest.raises(ValidationError, match="queue 'Emails_EU'"):
        Manifest.model_validate(
            {
                "tasks": [
                    {
                        "id": "t",
                        "module": "m.py",
                        "queue": {"name": "Emails_EU", "concurrencyLimit": 2},
                        "machine": "small-1x",
                        "retry": {},
                    }
                ],
                "queues": [{"name": "Emails_EU", "concurrencyLimit": 2}],
            }
        )


# -- against the embedded cluster ---------------------------------------------------------------


class Registered:
    """One namespace of the embedded cluster that `register` writes into, and how to read it."""

    def __init__(self, kube: EmbeddedKube) -> None:
        self.kube = kube
        self.ns = kube.new_namespace("dev")
        self.namespace = self.ns.name
        self._objects = client.CustomObjectsApi(kube.api)

    def register(self, declared: Manifest) -> None:
        register(self.kube.cluster.url, declared, self.namespace)

    def _list(self, plural: str) -> dict[str, dict[str, Any]]:
        listed = self._objects.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)
        return {item["metadata"]["name"]: item for item in listed["items"]}

    def queues(self) -> dict[str, dict[str, Any]]:
        return self._list("taskqueues")

    def task_ids(self) -> list[str]:
        return sorted(self._list("tasks"))

    def kubectl(self, *args: str) -> str:
        env = dict(os.environ, KUBECONFIG=str(self.kube.kubeconfig))
        done = subprocess.run(
            [KUBECTL, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def registered(embedded_kube: EmbeddedKube) -> Registered:
    return Registered(embedded_kube)


def _spec(queues: dict[str, dict[str, Any]], name: str) -> tuple[int | None, bool | None]:
    spec = queues[name]["spec"]
    return spec.get("concurrencyLimit"), spec.get("paused")


def test_register_creates_a_task_queue_per_declared_queue(registered: Registered) -> None:
    registered.register(
        manifest(
            ("send", "emails", 3),
            ("digest", "emails", 3),
            ("resize", "resize", None),
        )
    )
    assert registered.task_ids() == ["digest", "resize", "send"]
    queues = registered.queues()
    assert sorted(queues) == ["emails", "resize"]
    assert _spec(queues, "emails") == (3, False)
    assert _spec(queues, "resize") == (None, False)
    assert queues["emails"]["metadata"]["annotations"][DECLARED_LIMIT_ANNOTATION] == "3"
    assert queues["resize"]["metadata"]["annotations"][DECLARED_LIMIT_ANNOTATION] == "null"


def test_a_live_limit_survives_a_restart_until_the_declaration_changes(
    registered: Registered,
) -> None:
    registered.register(manifest(("send", "emails", 3)))
    registered.kubectl(
        "patch",
        "taskqueue",
        "emails",
        "--type=merge",
        "-p",
        '{"spec": {"concurrencyLimit": 6, "paused": true}}',
    )

    # `podtask dev` restarted with the same declaration: the live settings stay.
    registered.register(manifest(("send", "emails", 3)))
    assert _spec(registered.queues(), "emails") == (6, True)

    # The declaration changed: it wins over the live limit; the pause is still the user's.
    registered.register(manifest(("send", "emails", 4)))
    queues = registered.queues()
    assert _spec(queues, "emails") == (4, True)
    assert queues["emails"]["metadata"]["annotations"][DECLARED_LIMIT_ANNOTATION] == "4"

    # The limit no longer declared: null, and the operator applies its default.
    registered.register(manifest(("send", "emails", None)))
    assert _spec(registered.queues(), "emails") == (None, True)


def task_run(name: str, queue: str) -> dict[str, Any]:
    """A run of `queue` as the API creates it (labelled with its queue), not started yet."""
    spec = TaskRunSpec(
        task_id="report",
        version="1",
        image="registry.example.com/tasks:1",
        module="tasks/module.py",
        machine="small-1x",
        queue=QueueRef(name=queue),
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"name": name, "labels": {LABEL_QUEUE: queue}},
        "spec": spec.to_wire(),
    }


def test_a_queue_no_longer_declared_goes_once_none_of_its_runs_is_unfinished(
    registered: Registered,
) -> None:
    registered.register(
        manifest(("send", "emails", 3), ("resize", "resize", 1), ("report", "reports", None))
    )
    # Made by hand, by no registration: the user's, never deleted by one.
    client.CustomObjectsApi(registered.kube.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        registered.namespace,
        "taskqueues",
        {
            "apiVersion": API_VERSION,
            "kind": "TaskQueue",
            "metadata": {"name": "manual"},
            "spec": {},
        },
    )
    # A run of `reports` not finished yet: its queue's pause and limit still hold it.
    registered.ns.create_run(task_run("run-waiting", "reports"))
    registered.ns.create_run(task_run("run-done", "emails"))
    registered.ns.set_run_status("run-done", {"phase": "Completed"})

    registered.register(manifest(("resize", "resize", 1)))
    assert registered.task_ids() == ["resize"]
    assert sorted(registered.queues()) == ["manual", "reports", "resize"]

    registered.ns.set_run_status("run-waiting", {"phase": "Canceled"})
    registered.register(manifest(("resize", "resize", 1)))
    assert sorted(registered.queues()) == ["manual", "resize"]
    # Declared again: made again.
    registered.register(manifest(("resize", "resize", 1), ("send", "emails", 3)))
    assert sorted(registered.queues()) == ["emails", "manual", "resize"]


def test_a_queue_created_by_hand_takes_the_declared_limit(registered: Registered) -> None:
    body = {
        "apiVersion": API_VERSION,
        "kind": "TaskQueue",
        "metadata": {"name": "emails"},
        "spec": {"concurrencyLimit": 9, "paused": False},
    }
    client.CustomObjectsApi(registered.kube.api).create_namespaced_custom_object(
        GROUP, VERSION, registered.namespace, "taskqueues", body
    )
    registered.register(manifest(("send", "emails", 2)))
    queues = registered.queues()
    assert _spec(queues, "emails") == (2, False)
    assert queues["emails"]["metadata"]["annotations"][DECLARED_LIMIT_ANNOTATION] == "2"


def scheduled(task_id: str, schedule: dict[str, str] | None) -> ManifestTask:
    return ManifestTask(
        id=task_id,
        module="tasks/module.py",
        queue=QueueRef(name="reports"),
        machine="small-1x",
        retry=RetryPolicy(),
        schedule=None if schedule is None else TaskScheduleDeclaration.model_validate(schedule),
    )


def scheduled_manifest(*tasks: ManifestTask) -> Manifest:
    return Manifest(tasks=list(tasks), queues=queues_of(tasks))


IMPERATIVE_NAME = "sched-0123456789abcdef"


def test_declared_schedules_become_exactly_the_declarative_task_schedules(
    registered: Registered,
) -> None:
    made_over_the_api = {
        "apiVersion": API_VERSION,
        "kind": "TaskSchedule",
        "metadata": {"name": IMPERATIVE_NAME, "labels": {LABEL_TASK: "report"}},
        "spec": {"taskId": "report", "cron": "*/5 * * * *", "type": "IMPERATIVE"},
    }
    client.CustomObjectsApi(registered.kube.api).create_namespaced_custom_object(
        GROUP, VERSION, registered.namespace, "taskschedules", made_over_the_api
    )
    registered.register(
        scheduled_manifest(
            scheduled("report", {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}),
            scheduled("hourly", {"cron": "@hourly"}),
            scheduled("plain", None),
        )
    )
    schedules = registered._list("taskschedules")
    assert sorted(schedules) == ["hourly", "report", IMPERATIVE_NAME]
    assert schedules["report"]["spec"] == {
        "taskId": "report",
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "type": "DECLARATIVE",
        "active": True,
    }
    assert schedules["report"]["metadata"]["labels"] == {LABEL_TASK: "report"}
    table = registered.kubectl("get", "tsched").splitlines()
    assert table[0].split() == ["NAME", "TASK", "CRON", "TIMEZONE", "ACTIVE", "LAST", "NEXT", "AGE"]
    assert table[2].split()[:9] == [
        "report", "report", "0", "9", "*", "*", "1-5", "Europe/Paris", "true",
    ]  # fmt: skip

    # Deactivated (over the API, or kubectl), then the cron changed and a schedule removed.
    registered.kubectl(
        "patch", "taskschedule", "report", "--type=merge", "-p", '{"spec": {"active": false}}'
    )
    registered.register(
        scheduled_manifest(
            scheduled("report", {"cron": "0 10 * * 1-5", "timezone": "Europe/Paris"}),
            scheduled("hourly", None),
        )
    )
    schedules = registered._list("taskschedules")
    assert sorted(schedules) == ["report", IMPERATIVE_NAME]
    assert schedules["report"]["spec"]["cron"] == "0 10 * * 1-5"
    assert schedules["report"]["spec"]["active"] is False
    # Never touched by a registration, though its task is gone: the operator reports that.
    assert schedules[IMPERATIVE_NAME]["spec"] == made_over_the_api["spec"]
    assert registered.task_ids() == ["hourly", "report"]


def test_a_declared_schedule_named_like_an_imperative_one_registers_nothing(
    registered: Registered,
) -> None:
    client.CustomObjectsApi(registered.kube.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        registered.namespace,
        "taskschedules",
        {
            "apiVersion": API_VERSION,
            "kind": "TaskSchedule",
            "metadata": {"name": IMPERATIVE_NAME},
            "spec": {"taskId": "report", "cron": "@daily"},
        },
    )
    with pytest.raises(ScheduleNameTaken, match=f"named '{IMPERATIVE_NAME}'"):
        registered.register(
            scheduled_manifest(
                scheduled(IMPERATIVE_NAME, {"cron": "@hourly"}), scheduled("plain", None)
            )
        )
    assert registered.task_ids() == []
    assert registered.queues() == {}
