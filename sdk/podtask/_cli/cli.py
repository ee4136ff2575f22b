"""The `podtask` command line. Subcommands import what they need lazily.

- `podtask dev`, `podtask index`: run the stack on this machine; print a manifest.
- `podtask trigger`, `podtask runs …`, `podtask queues …`, `podtask schedules …`
  (`schedule_commands`), `podtask deploy`: through the API at `PODTASK_API_URL` with the key
  in `PODTASK_API_KEY` (`podtask.client`).
- `podtask keys …`: the API keys' Secret, straight through the cluster (KUBECONFIG).

What they accept is `podtask._cli.cli_parser`'s, what they print `podtask._cli.cli_output`'s; this
module calls and picks exit codes:
0 done, 1 refused or failed (an API error, a run that did not complete), 2 misused, 130
interrupted, 141 (128 + SIGPIPE) when whoever read stdout stopped reading (`| head`).

What a command prints as its result goes to stdout, a table or (`-o json`) the API's object
alone; what it says about it (progress, notes, errors) to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, cast

from podtask._cli.cli_output import pretty_json
from podtask._cli.cli_parser import output_format, parser
from podtask.errors import PodtaskError

if TYPE_CHECKING:
    from podtask._authoring.run_results import RunHandle
    from podtask._authoring.trigger_options import TriggerOptions
    from podtask.client import PodtaskClient

# Redraws of the progress line per second while a wait polls the run.
PROGRESS_FRAMES_PER_SECOND = 10
# The exit code when stdout's reader went away: a shell's for a process killed by SIGPIPE
# (128 + 13), which is how kubectl and gh end (Go programs die of SIGPIPE on stdout).
CLOSED_STDOUT_EXIT = 141


# -- commands through the API -------------------------------------------------------------------


def _trigger_options(args: argparse.Namespace) -> TriggerOptions:
    """The trigger options given as flags, read by the names of the wire model's fields
    (`--max-attempts` is `max_attempts`; `--tag` repeated is `tags`)."""
    from podtask._contract.trigger_request import option_wire_names

    given = {name: getattr(args, name, None) for name in option_wire_names()}
    return cast("TriggerOptions", {name: v for name, v in given.items() if v is not None})


class Progress:
    """The wait's display on `stream`: one redrawn line on a terminal, else a line per change."""

    def __init__(self, run_id: str, stream: TextIO) -> None:
        self.run_id = run_id
        self.stream = stream
        self.interactive = stream.isatty()
        self.started = time.monotonic()
        self.tick = 0
        self._last_words: str | None = None

    def show(self, view: dict[str, Any]) -> None:
        from podtask._cli.cli_output import progress_line, status_words

        if self.interactive:
            line = progress_line(self.run_id, view, time.monotonic() - self.started, self.tick)
            self.tick += 1
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
            return
        words = status_words(view)
        if words != self._last_words:
            self._last_words = words
            print(f"{self.run_id}: {words}", file=self.stream, flush=True)

    def done(self) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def _wait_with_progress(
    client: PodtaskClient, run_id: str, timeout: float | None, progress: Progress
) -> dict[str, Any]:
    """Poll the run until it finishes, redrawing the progress between polls."""
    from podtask._authoring.run_results import is_finished
    from podtask.client import PodtaskApiError, PodtaskConnectionError, poll_delay

    deadline = None if timeout is None else time.monotonic() + timeout
    view: dict[str, Any] = {"id": run_id, "status": "Pending"}
    polls = 0
    try:
        while True:
            try:
                view = client.get_run(run_id)
            except PodtaskConnectionError:
                pass  # the API is restarting, say: keep waiting
            except PodtaskApiError as exc:
                if not exc.is_transient:
                    raise
            if is_finished(view):
                return view
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError
            next_poll = time.monotonic() + poll_delay(polls)
            polls += 1
            while (now := time.monotonic()) < next_poll:
                progress.show(view)
                time.sleep(min(next_poll - now, 1 / PROGRESS_FRAMES_PER_SECOND))
    finally:
        progress.done()


def _run_news(handle: RunHandle, news: str) -> str:
    """What a trigger or a replay says of its run: `news`, unless the API answered with a
    run that already existed (nothing was started)."""
    return f"existing run {handle.id} (same idempotency key)" if handle.is_cached else news


def _await_run(client: PodtaskClient, run_id: str, args: argparse.Namespace) -> int:
    """`--wait`: follow the run to its end on stderr, then print its output (`-o json`: the
    run) on stdout; 0 if it Completed, else 1 (its error on stderr), 1 after `--timeout`."""
    from podtask._cli.cli_output import error_text

    try:
        view = _wait_with_progress(client, run_id, args.timeout, Progress(run_id, sys.stderr))
    except TimeoutError:
        print(
            f"podtask: {run_id} has not finished after {args.timeout:g}s; it goes on "
            f"(`podtask runs get {run_id}`)",
            file=sys.stderr,
        )
        return 1
    status = view.get("status")
    print(f"{run_id}: {status}", file=sys.stderr)
    if output_format(args) == "json":
        print(pretty_json(view))
    elif status == "Completed":
        print(pretty_json(view.get("output")))
    elif view.get("error"):
        print(error_text(view["error"]), file=sys.stderr)
    return 0 if status == "Completed" else 1


def _trigger(client: PodtaskClient, args: argparse.Namespace) -> int:
    handle = client.trigger(args.task_id, args.payload, **_trigger_options(args))
    news = _run_news(handle, f"Triggered {handle.id}")
    if args.wait:
        print(news, file=sys.stderr, flush=True)
        return _await_run(client, handle.id, args)
    # The id alone on stdout, for scripts (`RUN=$(podtask trigger …)`); an existing run said
    # so on stderr.
    if output_format(args) == "json":
        print(pretty_json(handle.to_wire()))
    else:
        print(handle.id)
    if handle.is_cached:
        print(news, file=sys.stderr)
    return 0


def _replay(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask.client import SAME_PAYLOAD

    handle = client.replay_run(args.run_id, getattr(args, "payload", SAME_PAYLOAD))
    news = _run_news(handle, f"Replayed {args.run_id} as {handle.id}")
    if args.wait:
        print(news, file=sys.stderr, flush=True)
        return _await_run(client, handle.id, args)
    if output_format(args) == "json":
        print(pretty_json({**handle.to_wire(), "taskId": handle.task_id}))
    else:
        print(news)
    return 0


def _runs(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask._cli.cli_output import listed, run_details, runs_table
    from podtask.client import MAX_PAGE_SIZE

    command = args.runs_command
    as_json = output_format(args) == "json"
    if command == "list":
        # One more than shown, to tell whether there are more; pages as large as the API gives.
        found = client.iter_runs(
            status=args.status,
            task=args.task,
            tag=args.tag,
            queue=args.queue,
            is_test=args.is_test,
            schedule_id=args.schedule_id,
            page_size=min(args.limit + 1, MAX_PAGE_SIZE),
        )
        runs = list(itertools.islice(found, args.limit + 1))
        shown = runs[: args.limit]
        print(pretty_json(listed(shown)) if as_json else runs_table(shown, datetime.now(UTC)))
        if len(runs) > args.limit:
            print(f"(the newest {args.limit}; --limit N shows more)", file=sys.stderr)
    elif command == "get":
        view = client.get_run(args.run_id)
        print(pretty_json(view) if as_json else run_details(view, datetime.now(UTC)))
    elif command == "logs":
        for chunk in client.run_logs(args.run_id, attempt=args.attempt, follow=args.follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    elif command == "cancel":
        view = client.cancel_run(args.run_id)
        if as_json:
            print(pretty_json(view))
        else:
            print(f"Cancel requested for {view['id']} (status: {view['status']})")
    else:
        return _replay(client, args)
    return 0


def _queues(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask._cli.cli_output import listed, queues_table

    command = args.queues_command or "list"
    as_json = output_format(args) == "json"
    if command == "list":
        queues = client.list_queues()
        print(pretty_json(listed(queues)) if as_json else queues_table(queues))
        return 0
    if command == "pause":
        view = client.pause_queue(args.name)
        done = f"Paused {args.name}: its runs wait until it is resumed"
    elif command == "resume":
        view = client.resume_queue(args.name)
        done = f"Resumed {args.name}"
    else:
        view = client.set_queue_concurrency(args.name, args.limit)
        shown = "its default" if args.limit is None else str(args.limit)
        done = f"Set the concurrency limit of {args.name} to {shown}"
    print(pretty_json(view) if as_json else done)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from podtask._cli.cli_output import manifest_table
    from podtask._cli.deploy import image_manifest

    # Whatever the modules print while they import stays off stdout, which -o json keeps clean.
    # A module or declaration error raises from here, before anything reaches the API.
    with contextlib.redirect_stdout(sys.stderr):
        manifest = image_manifest(args.modules)

    def register(client: PodtaskClient, args: argparse.Namespace) -> int:
        view = client.create_deployment(manifest.to_wire(), args.image, args.version)
        if output_format(args) == "json":
            print(pretty_json(view))
            return 0
        print(f"Deployed version {view['version']} of {view['image']}")
        print(manifest_table(manifest.to_wire()))
        return 0

    return _through_the_api(register)(args)


def _through_the_api(
    command: Callable[[PodtaskClient, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from podtask.client import (
            ENV_API_KEY,
            ENV_API_URL,
            ClientNotConfiguredError,
            PodtaskApiError,
            PodtaskClient,
            PodtaskConnectionError,
        )

        try:
            client = PodtaskClient()
        except ClientNotConfiguredError:
            print(
                f"podtask: {ENV_API_URL} is not set: set it to the podtask API's address, and "
                f"{ENV_API_KEY} to an API key (`podtask dev` prints both)",
                file=sys.stderr,
            )
            return 2
        with client:
            try:
                return command(client, args)
            except PodtaskApiError as exc:
                hint = ""
                if exc.status == 401 and not os.environ.get(ENV_API_KEY):
                    hint = f"; set {ENV_API_KEY} to an API key (`podtask dev` prints one)"
                print(f"podtask: {exc}{hint}", file=sys.stderr)
                return 1
            except PodtaskConnectionError as exc:
                print(f"podtask: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                return 130

    return run


# -- commands through the cluster ---------------------------------------------------------------


@contextlib.contextmanager
def _key_secret(args: argparse.Namespace) -> Iterator[Any]:
    from kubernetes import config

    from podtask._control.api_keys import API_KEYS_SECRET, ApiKeySecret

    namespace = args.namespace
    if namespace is None:
        _, active = config.list_kube_config_contexts(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
        namespace = ((active or {}).get("context") or {}).get("namespace") or "default"
    api_client = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    with api_client:
        yield ApiKeySecret(api_client, namespace, args.secret or API_KEYS_SECRET)


def _keys(args: argparse.Namespace) -> int:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from podtask._cli.cli_output import keys_list, keys_table
    from podtask._control.api_keys import (
        KeyAccess,
        MalformedApiKeys,
        new_api_key,
        with_key,
        without_key,
    )

    try:
        with _key_secret(args) as secret:
            where = f"Secret {secret.namespace}/{secret.name}"
            if args.keys_command == "list":
                keys = [key.model_dump(mode="json") for key in secret.read()]
                as_json = output_format(args) == "json"
                print(pretty_json(keys_list(keys)) if as_json else keys_table(keys))
            elif args.keys_command == "create":
                access = KeyAccess.READ if args.read_only else KeyAccess.WRITE
                key, stored = new_api_key(args.name, access)
                secret.change(lambda keys: with_key(keys, stored))
                # The key alone on stdout, for scripts; what to do with it on stderr, once
                # it is out (a closed stdout ends the command here, without the note).
                print(key, flush=True)
                print(
                    f"podtask: created the {access} key {args.name!r} in the {where}. It is "
                    "shown only now: keep it (PODTASK_API_KEY=…); only its digest is stored.",
                    file=sys.stderr,
                )
            else:
                try:
                    secret.change(lambda keys: without_key(keys, args.name))
                except KeyError:
                    print(f"podtask: there is no API key named {args.name!r}", file=sys.stderr)
                    return 1
                print(f"Revoked the key {args.name!r}; the API refuses it within seconds")
    except (ValueError, MalformedApiKeys) as exc:
        print(f"podtask: {exc}", file=sys.stderr)
        return 1
    except ConfigException as exc:
        print(
            f"podtask: cannot load a kubeconfig ({exc}); set KUBECONFIG or pass --kubeconfig "
            "(for `podtask dev`: .podtask/kubeconfig)",
            file=sys.stderr,
        )
        return 2
    except ApiException as exc:
        print(
            f"podtask: the cluster refused: HTTP {exc.status} {exc.reason} (the keys' Secret "
            "needs get, create and update)",
            file=sys.stderr,
        )
        return 1
    return 0


def _print_index(args: argparse.Namespace) -> int:
    from podtask._authoring.manifest import load_manifest
    from podtask._cli.cli_output import manifest_table

    # Dotted names import from here, as with `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # Whatever the modules print while they import must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        manifest = load_manifest(args.modules)
    json_out = output_format(args) == "json"
    print(manifest.to_json() if json_out else manifest_table(manifest.to_wire()))
    return 0


def _stdout_closed() -> int:
    """Whoever read our output stopped (`podtask runs list | head -1`): exit quietly, as
    kubectl and gh do (they die of SIGPIPE: a shell sees 141), with no traceback.

    What is still buffered would fail again when Python flushes at exit, so both streams are
    pointed at /dev/null first (Python's recipe for SIGPIPE: "Note on SIGPIPE").
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    os.close(devnull)
    return CLOSED_STDOUT_EXIT


def main(argv: list[str] | None = None) -> int:
    """The console script: every command, its exit code; a closed stdout is no error."""
    try:
        code = _command(argv)
        # Buffered output is written now, inside the guard, not at exit.
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        return _stdout_closed()
    return code


def _command(argv: list[str] | None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as exit_:
        # --help, --version and misuse: argparse has printed; its code (0 or 2).
        return 0 if exit_.code is None else exit_.code if isinstance(exit_.code, int) else 2
    from podtask._cli.extras import missing_extra

    if (missing := missing_extra(args.command)) is not None:
        print(f"podtask: {missing}", file=sys.stderr)
        return 2
    try:
        if args.command == "dev":
            from podtask._cli.dev import DevStack, run_dev

            stack = DevStack(
                args.state_dir, args.port, args.cluster_port, args.cluster, args.runtime
            )
            return run_dev(args.modules or ["examples"], stack)
        if args.command == "index":
            return _print_index(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "deploy":
            return _deploy(args)
        from podtask._cli.schedule_commands import schedules

        api_commands = {
            "trigger": _trigger,
            "runs": _runs,
            "queues": _queues,
            "schedules": schedules,
        }
        return _through_the_api(api_commands[args.command])(args)
    except PodtaskError as exc:
        print(f"podtask: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
