"""The manifest a deploy sends: module files as paths relative to the folder it runs in,
which is the task image's WORKDIR; dotted names as they are; nothing else changed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from podtask import task
from podtask._authoring.manifest import build_manifest
from podtask._cli.deploy import for_image, image_module_ref, importable_from
from podtask.errors import TaskModuleImportError


def run(payload: object, ctx: object) -> object:
    return payload


def test_a_file_under_the_folder_becomes_its_relative_posix_path(tmp_path: Path) -> None:
    module = tmp_path / "tasks" / "emails.py"
    assert image_module_ref(str(module), tmp_path) == "tasks/emails.py"
    assert image_module_ref(str(tmp_path / "top.py"), tmp_path) == "top.py"


def test_a_dotted_name_stays_as_it_is(tmp_path: Path) -> None:
    assert image_module_ref("myapp.tasks.emails", tmp_path) == "myapp.tasks.emails"


def test_a_file_outside_the_folder_is_an_error_that_says_where_to_run(tmp_path: Path) -> None:
    outside = tmp_path.parent / "elsewhere" / "tasks.py"
    with pytest.raises(TaskModuleImportError, match=r"outside the current folder.*\(/app\)"):
        image_module_ref(str(outside), tmp_path / "project")


def test_for_image_changes_only_the_modules(tmp_path: Path) -> None:
    first = task(id="deploy-first", machine="medium-1x", retry={"max_attempts": 4})(run)
    second = task(id="deploy-second", queue={"name": "deploy-q", "concurrency_limit": 2})(run)
    declared = {
        "deploy-first": (str(tmp_path / "pkg" / "first.py"), first),
        "deploy-second": ("pkg.second", second),
    }
    manifest = build_manifest(declared)
    moved = for_image(manifest, tmp_path)
    assert [t.module for t in moved.tasks] == ["pkg/first.py", "pkg.second"]
    assert [t.model_dump(exclude={"module"}) for t in moved.tasks] == [
        t.model_dump(exclude={"module"}) for t in manifest.tasks
    ]
    assert moved.queues == manifest.queues
    assert manifest.tasks[0].module == str(tmp_path / "pkg" / "first.py"), "a copy, not a change"


def test_importable_from_puts_the_folder_first_and_takes_it_away_again(tmp_path: Path) -> None:
    before = list(sys.path)
    with importable_from(tmp_path):
        assert sys.path[0] == str(tmp_path)
    assert sys.path == before
