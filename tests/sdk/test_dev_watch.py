"""`podtask dev`'s watch, its pure parts: what changed between two readings of the task modules
(in words), which files are watched and which changed, what is printed, the author's traceback
of a module that does not import, and the message of a taken port."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from podtask._authoring.manifest import Manifest, ManifestTask, queues_of
from podtask._authoring.modules import import_task_module
from podtask._cli.declarations import (
    Declarations,
    ImportFailure,
    author_sources,
    author_traceback,
    parse_reading,
)
from podtask._cli.dev_changes import declaration_changes, field_changes
from podtask._cli.dev_watch import (
    WatchedPaths,
    changed_files,
    failure_notice,
    reload_notice,
    shown_path,
    snapshot,
    watched_paths,
)
from podtask._cli.ports import port_taken_message
from podtask._contract.resources import QueueRef, RetryPolicy
from podtask.errors import TaskModuleImportError


def _task(
    task_id: str, queue: str = "q", limit: int | None = None, **options: object
) -> ManifestTask:
    return ManifestTask.model_validate(
        {
            "id": task_id,
            "module": "/project/tasks.py",
            "queue": QueueRef(name=queue, concurrency_limit=limit),
            "machine": "small-1x",
            "retry": RetryPolicy(),
            **options,
        }
    )


def _manifest(*tasks: ManifestTask) -> Manifest:
    return Manifest(tasks=list(tasks), queues=queues_of(list(tasks)))


# -- what changed -------------------------------------------------------------------------------


def test_the_same_declarations_change_nothing() -> None:
    manifest = _manifest(_task("a"), _task("b", "other", 2))
    assert declaration_changes(manifest, manifest) == []


def test_a_changed_retry_policy_names_the_option_as_the_author_wrote_it() -> None:
    old = _manifest(_task("a"))
    new = _manifest(_task("a", retry=RetryPolicy(max_attempts=5, factor=1.5), max_duration=30))
    assert declaration_changes(old, new) == [
        "task a changed: max_duration unset → 30, retry.factor 2.0 → 1.5, retry.max_attempts 3 → 5"
    ]


def test_a_changed_payload_model_is_one_word_not_each_key_of_its_schema() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    old = _manifest(_task("a", payload_schema=schema))
    new = _manifest(_task("a", payload_schema={**schema, "required": ["name"]}, ttl=5))
    assert declaration_changes(old, new) == ["task a changed: ttl unset → 5, payload model"]


def test_a_schedule_is_said_as_its_cron_and_zone() -> None:
    paris = {"cron": "0 9 * * 1", "timezone": "Europe/Paris"}
    old = _manifest(_task("a"), _task("b"))
    new = _manifest(_task("a", schedule=paris), _task("b"), _task("c", schedule={"cron": "@daily"}))
    assert declaration_changes(old, new) == [
        "task a changed: schedule unset → '0 9 * * 1' (Europe/Paris)",
        "task c added (queue q, machine small-1x, retry.max_attempts 3, schedule '@daily' (UTC))",
    ]
    moved = _manifest(_task("a", schedule={**paris, "cron": "0 10 * * 1"}), _task("b"))
    assert declaration_changes(new, moved)[0] == (
        "task a changed: schedule '0 9 * * 1' (Europe/Paris) → '0 10 * * 1' (Europe/Paris)"
    )
    assert declaration_changes(moved, old)[0] == (
        "task a changed: schedule '0 10 * * 1' (Europe/Paris) → unset"
    )


def test_added_and_removed_tasks_and_queues() -> None:
    old = _manifest(_task("a"), _task("gone", "old-queue"))
    new = _manifest(_task("a"), _task("new", "emails", 3))
    assert declaration_changes(old, new) == [
        "task gone removed: new triggers are refused; its runs already started finish",
        "task new added (queue emails, machine small-1x, retry.max_attempts 3)",
        "queue emails added (concurrency_limit 3)",
    ]


def test_a_queue_limit_is_said_once_on_the_queue_and_a_moved_task_on_the_task() -> None:
    old = _manifest(_task("a", "emails", 3), _task("b", "emails", 3), _task("c", "q"))
    new = _manifest(_task("a", "emails", 5), _task("b", "emails", 5), _task("c", "emails", 5))
    assert declaration_changes(old, new) == [
        "task c changed: queue.name 'q' → 'emails'",
        "queue emails changed: concurrency_limit 3 → 5",
    ]
    assert declaration_changes(new, _manifest(_task("a", "emails"))) == [
        "task b removed: new triggers are refused; its runs already started finish",
        "task c removed: new triggers are refused; its runs already started finish",
        "queue emails changed: concurrency_limit 5 → unset",
    ]


def test_field_changes_flatten_nested_options() -> None:
    assert field_changes(
        {"retry": {"out_of_memory": None}, "machine": "small-1x"},
        {"retry": {"out_of_memory": {"machine": "large-1x"}}, "machine": "small-1x"},
    ) == ["retry.out_of_memory.machine unset → 'large-1x'"]


# -- which files, and which changed -------------------------------------------------------------


def test_watched_are_the_given_files_their_folders_and_what_they_imported(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    given = tmp_path / "one.py"
    reading = Declarations(
        _manifest(_task("a")),
        modules=(str(given), "/site/pkg/jobs.py"),
        sources=(str(given), "/site/pkg/helpers.py"),
    )
    paths = watched_paths([str(tmp_path / "tasks"), str(given), "pkg.jobs"], [reading])
    assert paths == WatchedPaths(
        files=frozenset({str(given), "/site/pkg/jobs.py", "/site/pkg/helpers.py"}),
        folders=frozenset({str(tmp_path / "tasks"), str(tmp_path), "/site/pkg"}),
    )


def test_a_saved_added_or_removed_module_is_a_changed_file(tmp_path: Path) -> None:
    module = tmp_path / "tasks.py"
    module.write_text("A = 1\n")
    (tmp_path / "notes.txt").write_text("not a module")
    paths = WatchedPaths(files=frozenset({str(module)}), folders=frozenset({str(tmp_path)}))
    before = snapshot(paths)
    assert list(before) == [str(module)] and snapshot(paths) == before

    draft = tmp_path / ".draft"
    draft.write_text("A = 2\n")  # the same size: an editor's save renames a new file over it
    os.replace(draft, module)
    (tmp_path / "more_tasks.py").write_text("")
    (tmp_path / "notes.txt").write_text("still not a module")
    (tmp_path / ".#tasks.py").symlink_to("an editor's lock")
    after = snapshot(paths)
    assert changed_files(before, after) == [str(tmp_path / "more_tasks.py"), str(module)]

    module.unlink()
    assert snapshot(paths)[str(module)] is None
    assert changed_files(after, snapshot(paths)) == [str(module)]


def test_what_is_printed(tmp_path: Path) -> None:
    assert shown_path(str(tmp_path / "tasks.py"), str(tmp_path)) == "tasks.py"
    assert shown_path("/elsewhere/tasks.py", str(tmp_path)) == "/elsewhere/tasks.py"
    assert reload_notice(["tasks.py"], ["task a added (…)", "queue a added (…)"]) == (
        "tasks.py changed; registered:\n  task a added (…)\n  queue a added (…)"
    )
    assert reload_notice(["tasks.py", "helpers.py"], []) == (
        "tasks.py, helpers.py changed: no task or queue changed (new runs import the module "
        "as saved)"
    )
    failure = ImportFailure("task module 'tasks.py' failed to import: E: x", "Traceback…\n", (), ())
    assert failure_notice(["tasks.py"], failure) == (
        "tasks.py changed, but task module 'tasks.py' failed to import: E: x\n"
        "  the tasks stay registered as they were; fix the module and save it again\n"
        "Traceback…"
    )


# -- the reading a child prints -----------------------------------------------------------------


def test_a_reading_is_read_back_from_the_childs_last_line() -> None:
    manifest = _manifest(_task("a"))
    good = {"manifest": manifest.to_wire(), "modules": ["/p/t.py"], "sources": ["/p/t.py"]}
    printed = "a line the module printed\n" + json.dumps(good) + "\n"
    assert parse_reading(printed) == Declarations(manifest, ("/p/t.py",), ("/p/t.py",))
    bad = {"error": {"summary": "s", "traceback": "t"}, "modules": [], "sources": ["/p/t.py"]}
    assert parse_reading(json.dumps(bad)) == ImportFailure("s", "t", (), ("/p/t.py",))


def test_the_authors_traceback_has_their_frames_only(tmp_path: Path) -> None:
    module = tmp_path / "dev_watch_broken_module.py"
    module.write_text("import os\n\n\ndef helper():\n    return undefined_name\n\n\nhelper()\n")
    sys.modules.pop(module.stem, None)
    with pytest.raises(TaskModuleImportError) as failed:
        import_task_module(str(module))
    assert failed.value.__cause__ is not None
    text = author_traceback(failed.value.__cause__)
    assert text == (
        "Traceback (most recent call last):\n"
        f'  File "{module}", line 8, in <module>\n'
        "    helper()\n"
        f'  File "{module}", line 5, in helper\n'
        "    return undefined_name\n"
        "           ^^^^^^^^^^^^^^\n"
        "NameError: name 'undefined_name' is not defined\n"
    )


def test_a_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    module = tmp_path / "dev_watch_syntax_error.py"
    module.write_text("from podtask import task\n\ndef broken(:\n    pass\n")
    with pytest.raises(TaskModuleImportError) as failed:
        import_task_module(str(module))
    assert failed.value.__cause__ is not None
    text = author_traceback(failed.value.__cause__)
    # No frame of the author's ran (none of ours is shown): the file, the line, the caret.
    assert text == (
        f'  File "{module}", line 3\n'
        "    def broken(:\n"
        "               ^\n"
        "SyntaxError: invalid syntax\n"
    )


def test_the_authors_sources_leave_out_installed_and_podtask_modules() -> None:
    import httpx  # installed in the environment

    import podtask

    assert author_sources(["httpx", "podtask", "json", "tests.sdk.test_dev_watch"]) == [
        str(Path(__file__).resolve())
    ]
    assert httpx and podtask


# -- a taken port -------------------------------------------------------------------------------


def test_a_taken_port_says_by_whom_and_how_to_choose_another() -> None:
    assert port_taken_message(8030, "API", "--port", by_dev=True) == (
        "podtask dev: port 8030 is taken by another `podtask dev` (its API answers there), so "
        "the API cannot listen there; stop it, or choose another port with "
        "`podtask dev --port N` (`make dev PORT=N`), 0 for any free port"
    )
    other = port_taken_message(9000, "embedded cluster", "--cluster-port", by_dev=False)
    assert "taken by another program" in other
    assert "`podtask dev --cluster-port N`, 0 for any free port" in other
