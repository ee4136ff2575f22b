"""`podtask schedules …` as real subprocesses against the API served by uvicorn over the
embedded cluster: create, list, get, update, deactivate, activate, delete, in text and
`-o json`; refusals exit 1 naming the field."""

from __future__ import annotations

import json

from api_fixtures import HELLO
from cli_processes import podtask

from podtask._contract.wire import LABEL_SCHEDULE
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from tests.embedded_kube import KubeNamespace


def test_schedules_from_the_command_line(api_env: dict[str, str], namespace: KubeNamespace) -> None:
    created = podtask(
        "schedules",
        "create",
        "hello-world",
        *("--cron", "0 9 * * 1-5", "--timezone", "Europe/Paris", "--external-id", "user-7"),
        env=api_env,
    )
    assert created.returncode == 0, created.stderr
    ident = created.stdout.strip()
    assert ident.startswith("sched-") and "\n" not in ident

    listed = podtask("schedules", "list", env=api_env)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:6] == ["ID", "TASK", "CRON", "TIMEZONE", "TYPE", "ACTIVE"]
    assert row.startswith(f"{ident}  hello-world  0 9 * * 1-5  Europe/Paris  IMPERATIVE  yes")

    details = podtask("schedules", "get", ident, env=api_env)
    assert details.returncode == 0, details.stderr
    assert "External id:" in details.stdout and "user-7" in details.stdout
    assert "Upcoming (local time):" in details.stdout

    updated = podtask("schedules", "update", ident, "--cron", "@hourly", env=api_env)
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.startswith(f"Updated {ident}: hello-world at '@hourly' (Europe/Paris)")

    off = podtask("schedules", "deactivate", ident, "-o", "json", env=api_env)
    assert off.returncode == 0, off.stderr
    view = json.loads(off.stdout)
    assert (view["id"], view["active"], view["upcoming"]) == (ident, False, [])
    on = podtask("schedules", "activate", ident, env=api_env)
    assert on.returncode == 0 and "next run" in on.stdout

    as_json = podtask("schedules", "list", "--task", "hello-world", "--json", env=api_env)
    assert [s["id"] for s in json.loads(as_json.stdout)["data"]] == [ident]

    deleted = podtask("schedules", "delete", ident, env=api_env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"Deleted schedule {ident} (its runs stay)\n"
    gone = podtask("schedules", "get", ident, env=api_env)
    assert gone.returncode == 1 and f"there is no schedule '{ident}'" in gone.stderr


def test_a_deduplication_key_and_the_refusals(api_env: dict[str, str]) -> None:
    def create(*args: str) -> str:
        done = podtask("schedules", "create", "hello-world", *args, env=api_env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    first = create("--cron", "@daily", "--deduplication-key", "tenant-1")
    assert create("--cron", "@weekly", "--deduplication-key", "tenant-1") == first
    inactive = podtask("schedules", "list", "--inactive", "-o", "json", env=api_env)
    assert json.loads(inactive.stdout) == {"data": []}

    bad_cron = podtask("schedules", "create", "hello-world", "--cron", "0 0 9 * * *", env=api_env)
    assert bad_cron.returncode == 1 and "cron" in bad_cron.stderr and "HTTP 422" in bad_cron.stderr
    bad_zone = podtask(
        "schedules", "create", "hello-world", "--cron", "@daily", "--timezone", "Paris", env=api_env
    )
    assert bad_zone.returncode == 1 and "timezone" in bad_zone.stderr
    no_task = podtask("schedules", "create", "nope", "--cron", "@daily", env=api_env)
    assert no_task.returncode == 1 and "task" in no_task.stderr and "not deployed" in no_task.stderr
    usage = podtask("schedules", "create", "hello-world", env=api_env)
    assert usage.returncode == 2 and "--cron" in usage.stderr


def test_runs_list_shows_the_runs_of_a_schedule(
    api_env: dict[str, str], namespace: KubeNamespace
) -> None:
    for name, schedule in (("run-s1", "sched-a"), ("run-plain", None)):
        run = build_task_run(HELLO, TriggerRequest(), name)
        if schedule is not None:
            run["metadata"]["labels"][LABEL_SCHEDULE] = schedule
        namespace.create_run(run)
    listed = podtask("runs", "list", "--schedule", "sched-a", "-o", "json", env=api_env)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)["data"]] == ["run-s1"]
