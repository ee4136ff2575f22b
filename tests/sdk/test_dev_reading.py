"""`podtask dev` reads its task modules in child processes (`DeclarationReader`) and registers
each saved change (`ModuleWatch`): with real children importing real module files; what the
watch registers is collected instead of sent to a cluster (tests/e2e/test_dev_reload.py does
the whole loop)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from podtask._authoring.manifest import Manifest
from podtask._cli.declarations import DeclarationReader, Declarations, ImportFailure
from podtask._cli.dev_watch import ModuleWatch
from podtask._cli.devprocess import save_as_an_editor

pytestmark = pytest.mark.component

TASKS = """\
from podtask import task
from helpers import ATTEMPTS

print("imported: this line must not reach the reading")


@task(id="job", retry={"max_attempts": ATTEMPTS})
def job(payload, ctx):
    return payload
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "helpers.py").write_text("ATTEMPTS = 2\n")
    return tmp_path


@pytest.fixture
def reader(project: Path) -> Iterator[DeclarationReader]:
    reader = DeclarationReader([str(project / "tasks.py")], timeout=60)
    try:
        yield reader
    finally:
        reader.close()


def _attempts(manifest: Manifest) -> dict[str, int]:
    return {task.id: task.retry.max_attempts for task in manifest.tasks}


def test_a_reading_is_the_manifest_and_the_authors_files(
    project: Path, reader: DeclarationReader
) -> None:
    reading = reader.read()
    assert isinstance(reading, Declarations), reading
    assert _attempts(reading.manifest) == {"job": 2}
    assert reading.modules == (str(project / "tasks.py"),)
    assert reading.sources == (str(project / "helpers.py"), str(project / "tasks.py"))


def test_the_child_started_ahead_reads_the_modules_as_saved_when_asked(
    project: Path, reader: DeclarationReader
) -> None:
    first = reader.read()  # the next child is now started, and waits
    save_as_an_editor(project / "helpers.py", "ATTEMPTS = 7\n")
    second = reader.read()
    assert isinstance(first, Declarations) and isinstance(second, Declarations)
    assert (_attempts(first.manifest), _attempts(second.manifest)) == ({"job": 2}, {"job": 7})


def test_a_module_that_exits_or_hangs_at_import_is_a_failed_reading(project: Path) -> None:
    (project / "exits.py").write_text("import sys\n\nsys.exit(4)\n")
    exits = DeclarationReader([str(project / "exits.py")])
    (project / "hangs.py").write_text("import time\n\ntime.sleep(600)\n")
    hangs = DeclarationReader([str(project / "hangs.py")], timeout=3)
    try:
        exited, hung = exits.read(), hangs.read()
    finally:
        exits.close()
        hangs.close()
    assert isinstance(exited, ImportFailure) and isinstance(hung, ImportFailure)
    assert exited.summary == "the task modules failed to import: SystemExit: 4"
    assert f'File "{project / "exits.py"}", line 3, in <module>' in exited.traceback
    assert hung.summary.startswith("the task modules did not finish importing in 3 s")


def test_the_watch_registers_a_saved_change_and_keeps_the_last_good_one(
    project: Path, reader: DeclarationReader
) -> None:
    first = reader.read()
    assert isinstance(first, Declarations)
    registered: list[Manifest] = []
    watch = ModuleWatch(
        [str(project / "tasks.py")], first, registered.append, reader.read, cwd=str(project)
    )
    assert watch.poll(0) == [] and registered == []

    # A helper the task module imports is watched too.
    save_as_an_editor(project / "helpers.py", "ATTEMPTS = 5\n")
    assert watch.poll(1) == [
        "helpers.py changed; registered:\n  task job changed: retry.max_attempts 2 → 5"
    ]
    assert [_attempts(m) for m in registered] == [{"job": 5}]

    save_as_an_editor(project / "tasks.py", TASKS + "\nbroken = name_that_is_not_defined\n")
    [notice] = watch.poll(2)
    assert notice.startswith(
        f"tasks.py changed, but task module '{project / 'tasks.py'}' failed to import: NameError: "
    )
    line = len(TASKS.splitlines()) + 2
    assert f'File "{project / "tasks.py"}", line {line}, in <module>' in notice
    assert len(registered) == 1 and _attempts(watch.registered.manifest) == {"job": 5}

    # Fixed: read again, and the same as the last good registration.
    save_as_an_editor(project / "tasks.py", TASKS)
    assert watch.poll(3) == [
        "tasks.py changed: no task or queue changed (new runs import the module as saved)"
    ]
    assert len(registered) == 2


def test_a_registration_the_cluster_refused_is_tried_again(
    project: Path, reader: DeclarationReader
) -> None:
    first = reader.read()
    assert isinstance(first, Declarations)
    refusals = ["the cluster is restarting", "the cluster is restarting"]
    registered: list[Manifest] = []

    def register(manifest: Manifest) -> None:
        if refusals:
            raise ConnectionError(refusals.pop())
        registered.append(manifest)

    watch = ModuleWatch([str(project / "tasks.py")], first, register, reader.read, cwd=str(project))
    save_as_an_editor(project / "helpers.py", "ATTEMPTS = 4\n")
    assert watch.poll(10) == [
        "helpers.py changed, but registering it failed (ConnectionError: the cluster is "
        "restarting); trying again every 2 s"
    ]
    assert watch.poll(11) == [] and registered == []
    assert watch.poll(12) == [] and registered == []  # refused again: said once
    assert watch.poll(14) == [
        "helpers.py changed; registered:\n  task job changed: retry.max_attempts 2 → 4"
    ]
    assert [_attempts(m) for m in registered] == [{"job": 4}]
