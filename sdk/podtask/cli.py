"""The `podtask` command line. Subcommands import what they need lazily.

- `podtask dev`, `podtask index`: run the stack on this machine; print a manifest.
- `podtask trigger`, `podtask runs …`, `podtask queues …`, `podtask deploy`: through the API
  at `PODTASK_API_URL` with the key in `PODTASK_API_KEY` (`podtask.client`).
- `podtask keys …`: the API keys' Secret, straight through the cluster (KUBECONFIG).

What they print is `podtask.cli_output`'s; this module parses, calls and picks exit codes:
0 done, 1 refused or failed (an API error, a run that did not complete), 2 misused.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from podtask.errors import PodtaskError

if TYPE_CHECKING:
    from podtask.client import PodtaskClient
    from podtask.trigger_options import TriggerOptions

API_HELP = "through the podtask API (PODTASK_API_URL, PODTASK_API_KEY)"
KEYS_HELP = "through the cluster (KUBECONFIG)"
# Redraws of the progress line per second while a wait polls the run.
PROGRESS_FRAMES_PER_SECOND = 10


def _json_argument(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `1.5m`, `2h`, `1d`, `1w` or `500ms` (`podtask.durations`)."""
    from podtask.durations import DurationError, duration_seconds

    try:
        return duration_seconds(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _delay_argument(text: str) -> float | datetime:
    """A duration from now, or an ISO 8601 time."""
    with contextlib.suppress(argparse.ArgumentTypeError):
        return parse_duration(text)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (90s, 5m, 2h) nor an ISO 8601 time"
        ) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _limit_argument(text: str) -> int | None:
    """A queue limit: a whole number, or `default` (none of its own)."""
    if text.lower() in ("default", "none", "null"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a limit: a whole number (0 holds the queue), or 'default'"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a limit cannot be negative")
    return value


# -- the parser ---------------------------------------------------------------------------------


def _add_dev_and_index(commands: Any) -> None:
    dev = commands.add_parser(
        "dev", help="run the embedded cluster, the operator and the API on this machine"
    )
    dev.add_argument(
        "modules",
        nargs="*",
        default=["examples"],
        help="task modules: files, folders or dotted names (default: examples/)",
    )
    dev.add_argument("--state-dir", type=Path, default=Path(".podtask"))
    dev.add_argument("--port", type=int, default=8030, help="the API's port (0: any free port)")
    dev.add_argument(
        "--cluster-port",
        type=int,
        default=0,
        help="the embedded Kubernetes API's port (0: any free port)",
    )
    dev.add_argument(
        "--cluster",
        choices=["embedded", "real"],
        default="embedded",
        help="embedded: the embedded cluster (default); real: a real Kubernetes control plane "
        "(etcd, kube-apiserver, scheduler, controller-manager) built from source, and a node "
        "agent for this machine",
    )
    dev.add_argument(
        "--runtime",
        choices=["processes", "containers"],
        default="processes",
        help="processes: each pod's command runs as a process of this environment (default); "
        "containers: each pod runs in its image with podman, under the kernel's memory and CPU "
        "limits (`make images` builds the runner image that the tasks of `podtask dev` use)",
    )
    index = commands.add_parser(
        "index",
        help="print the manifest (JSON) of the tasks and queues that task modules declare",
    )
    index.add_argument("modules", nargs="+", help="task modules: files, folders or dotted names")


def _add_trigger(commands: Any) -> None:
    trigger = commands.add_parser(
        "trigger",
        help=f"trigger a run of a task {API_HELP}",
        description="Trigger a run of TASK and print its id; with --wait, follow it to its "
        "end and print its output (or its error).",
    )
    trigger.add_argument("task_id", metavar="TASK")
    trigger.add_argument("--payload", type=_json_argument, default=None, help="JSON")
    trigger.add_argument("--wait", action="store_true", help="wait for the run to finish")
    trigger.add_argument(
        "--timeout", type=parse_duration, default=None, help="give up waiting after this long"
    )
    trigger.add_argument("--tag", action="append", dest="tags", help="a tag (repeat for more)")
    trigger.add_argument("--metadata", type=_json_argument, help="a JSON object")
    trigger.add_argument("--priority", type=int)
    trigger.add_argument(
        "--delay", type=_delay_argument, help="start after this long (90s, 5m) or at this time"
    )
    trigger.add_argument(
        "--ttl", type=parse_duration, help="expire if not started within this long"
    )
    trigger.add_argument("--machine", help="a machine preset instead of the task's")
    trigger.add_argument("--idempotency-key")
    trigger.add_argument("--concurrency-key")
    trigger.add_argument("--max-attempts", type=_positive_int)
    trigger.add_argument("--max-duration", type=parse_duration)


def _add_runs(commands: Any) -> None:
    runs = commands.add_parser(
        "runs",
        help=f"list, read and manage runs {API_HELP}",
        description="List, read and manage runs through the podtask API at PODTASK_API_URL, "
        "with the API key in PODTASK_API_KEY.",
    )
    run_commands = runs.add_subparsers(dest="runs_command", required=True)
    listing = run_commands.add_parser("list", help="the newest runs, as a table")
    listing.add_argument(
        "--status", action="append", help="only runs in this status (repeat for more)"
    )
    listing.add_argument("--task", help="only runs of this task")
    listing.add_argument("--tag", action="append", help="only runs with this tag (repeat)")
    listing.add_argument("--queue", help="only runs of this queue")
    listing.add_argument("--limit", type=_positive_int, default=20, help="at most (default 20)")
    get = run_commands.add_parser("get", help="one run: its details, output or error")
    get.add_argument("run_id", metavar="ID")
    get.add_argument("--json", action="store_true", help="the API's JSON, as it is")
    logs = run_commands.add_parser("logs", help="the log of a run's attempt")
    logs.add_argument("run_id", metavar="ID")
    logs.add_argument("--attempt", type=_positive_int, help="default: the latest")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing while the attempt runs"
    )
    cancel = run_commands.add_parser("cancel", help="cancel a run that has not finished")
    cancel.add_argument("run_id", metavar="ID")
    replay = run_commands.add_parser(
        "replay", help="trigger a new run as a run was triggered (same task version and options)"
    )
    replay.add_argument("run_id", metavar="ID")
    replay.add_argument(
        "--payload",
        type=_json_argument,
        # Left out of the namespace when not given: `--payload null` is a null payload.
        default=argparse.SUPPRESS,
        help="the new run's payload, as JSON (default: the replayed run's payload)",
    )


def _add_queues(commands: Any) -> None:
    queues = commands.add_parser(
        "queues",
        help=f"list queues; pause, resume or limit one {API_HELP}",
        description="Without a subcommand: every queue with its limit and counts.",
    )
    queue_commands = queues.add_subparsers(dest="queues_command")
    queue_commands.add_parser("list", help="every queue (the default)")
    for action in ("pause", "resume"):
        command = queue_commands.add_parser(action, help=f"{action} a queue")
        command.add_argument("name", metavar="NAME")
    limit = queue_commands.add_parser(
        "limit", help="set a queue's concurrency limit ('default': back to its declared one)"
    )
    limit.add_argument("name", metavar="NAME")
    limit.add_argument("limit", metavar="N", type=_limit_argument)


def _add_deploy(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help=f"register a task image's tasks as their new version {API_HELP}",
        description="Index the task modules and register their manifest with IMAGE as the "
        "current version of their tasks and queues: new triggers run on it, runs already "
        "triggered keep theirs. Run it from the folder the image copies to its working "
        "directory (/app): module files are recorded relative to it.",
    )
    deploy.add_argument(
        "--image",
        required=True,
        help="the task image as pods pull it (registry.example.com/team/tasks:1.4)",
    )
    deploy.add_argument(
        "--module",
        action="append",
        required=True,
        dest="modules",
        metavar="MODULE",
        help="a task module: a file, a folder or a dotted name (repeat for more)",
    )
    deploy.add_argument("--version", help="default: the API's next YYYYMMDD.N")
    deploy.add_argument("--json", action="store_true", help="print the API's answer, as it is")


def _add_keys(commands: Any) -> None:
    keys = commands.add_parser(
        "keys",
        help=f"create, list and revoke API keys {KEYS_HELP}",
        description="API keys are kept as sha256 digests in a Secret the API reads "
        "(podtask-api-keys by default); a change counts within seconds, without a restart.",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True, help="to tell keys apart, and revoke one")
    create.add_argument(
        "--read-only", action="store_true", help="may only call endpoints that read"
    )
    key_commands.add_parser("list", help="the keys' names and access (never the keys)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its name")
    revoke.add_argument("name", metavar="NAME")
    for command in key_commands.choices.values():
        command.add_argument(
            "--namespace", help="the API's namespace (default: the kubeconfig context's)"
        )
        command.add_argument("--secret", help="the Secret's name (default: podtask-api-keys)")
        command.add_argument("--kubeconfig", help="default: KUBECONFIG, else ~/.kube/config")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podtask", description="Background tasks on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_dev_and_index(commands)
    _add_trigger(commands)
    _add_runs(commands)
    _add_queues(commands)
    _add_deploy(commands)
    _add_keys(commands)
    return parser


# -- commands through the API -------------------------------------------------------------------


def _trigger_options(args: argparse.Namespace) -> TriggerOptions:
    """The trigger options given as flags, read by the names of the wire model's fields
    (`--max-attempts` is `max_attempts`; `--tag` repeated is `tags`)."""
    from podtask.trigger_request import option_wire_names

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
        from podtask.cli_output import progress_line, status_words

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
    from podtask.client import PodtaskApiError, PodtaskConnectionError, poll_delay
    from podtask.run_results import is_finished

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


def _trigger(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask.cli_output import error_text, pretty_json

    handle = client.trigger(args.task_id, args.payload, **_trigger_options(args))
    cached = " (an existing run: same idempotency key)" if handle.is_cached else ""
    if not args.wait:
        print(handle.id)
        if cached:
            print(f"podtask: {handle.id} is{cached}", file=sys.stderr)
        return 0
    print(f"Triggered {handle.id}{cached}", file=sys.stderr, flush=True)
    try:
        view = _wait_with_progress(client, handle.id, args.timeout, Progress(handle.id, sys.stderr))
    except TimeoutError:
        print(
            f"podtask: {handle.id} has not finished after {args.timeout:g}s; it goes on "
            f"(`podtask runs get {handle.id}`)",
            file=sys.stderr,
        )
        return 1
    status = view.get("status")
    if status == "Completed":
        print(f"{handle.id}: Completed", file=sys.stderr)
        print(pretty_json(view.get("output")))
        return 0
    print(f"{handle.id}: {status}", file=sys.stderr)
    if view.get("error"):
        print(error_text(view["error"]), file=sys.stderr)
    return 1


def _runs(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask.cli_output import pretty_json, run_details, runs_table
    from podtask.client import MAX_PAGE_SIZE, SAME_PAYLOAD

    command = args.runs_command
    if command == "list":
        # One more than shown, to tell whether there are more; pages as large as the API gives.
        found = client.iter_runs(
            status=args.status,
            task=args.task,
            tag=args.tag,
            queue=args.queue,
            page_size=min(args.limit + 1, MAX_PAGE_SIZE),
        )
        runs = list(itertools.islice(found, args.limit + 1))
        print(runs_table(runs[: args.limit], datetime.now(UTC)))
        if len(runs) > args.limit:
            print(f"(the newest {args.limit}; --limit N shows more)", file=sys.stderr)
    elif command == "get":
        view = client.get_run(args.run_id)
        print(pretty_json(view) if args.json else run_details(view, datetime.now(UTC)))
    elif command == "logs":
        for chunk in client.run_logs(args.run_id, attempt=args.attempt, follow=args.follow):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    elif command == "cancel":
        view = client.cancel_run(args.run_id)
        print(f"Cancel requested for {view['id']} (status: {view['status']})")
    else:
        payload = getattr(args, "payload", SAME_PAYLOAD)
        handle = client.replay_run(args.run_id, payload)
        print(f"Replayed {args.run_id} as {handle.id}")
    return 0


def _queues(client: PodtaskClient, args: argparse.Namespace) -> int:
    from podtask.cli_output import queues_table

    command = args.queues_command or "list"
    if command == "list":
        print(queues_table(client.list_queues()))
        return 0
    if command == "pause":
        client.pause_queue(args.name)
        print(f"Paused {args.name}: its runs wait until it is resumed")
    elif command == "resume":
        client.resume_queue(args.name)
        print(f"Resumed {args.name}")
    else:
        client.set_queue_concurrency(args.name, args.limit)
        shown = "its default" if args.limit is None else str(args.limit)
        print(f"Set the concurrency limit of {args.name} to {shown}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from podtask.cli_output import pretty_json, table
    from podtask.deploy import image_manifest

    # Whatever the modules print while they import stays off stdout, which --json keeps clean.
    # A module or declaration error raises from here, before anything reaches the API.
    with contextlib.redirect_stdout(sys.stderr):
        manifest = image_manifest(args.modules)

    def register(client: PodtaskClient, args: argparse.Namespace) -> int:
        view = client.create_deployment(manifest.to_wire(), args.image, args.version)
        if args.json:
            print(pretty_json(view))
            return 0
        print(f"Deployed version {view['version']} of {view['image']}")
        rows = [(t.id, t.module, t.queue.name, t.machine) for t in manifest.tasks]
        print(table(("task", "module", "queue", "machine"), rows))
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

    from podtask.api_keys import API_KEYS_SECRET, ApiKeySecret

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

    from podtask.api_keys import (
        KeyAccess,
        MalformedApiKeys,
        StoredApiKey,
        api_key_digest,
        generate_api_key,
        with_key,
        without_key,
    )
    from podtask.cli_output import keys_table

    try:
        with _key_secret(args) as secret:
            where = f"Secret {secret.namespace}/{secret.name}"
            if args.keys_command == "list":
                print(keys_table([key.model_dump(mode="json") for key in secret.read()]))
            elif args.keys_command == "create":
                key = generate_api_key()
                access = KeyAccess.READ if args.read_only else KeyAccess.WRITE
                stored = StoredApiKey(name=args.name, sha256=api_key_digest(key), access=access)
                secret.change(lambda keys: with_key(keys, stored))
                # The key alone on stdout, for scripts; what to do with it on stderr.
                print(key)
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


def _print_index(module_refs: list[str]) -> int:
    from podtask.manifest import load_manifest

    # Dotted names import from here, as with `python -m`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    # Whatever the modules print while they import must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        manifest = load_manifest(module_refs)
    print(manifest.to_json())
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "dev":
            from podtask.dev import run_dev

            return run_dev(
                args.modules or ["examples"],
                args.state_dir,
                args.port,
                args.cluster_port,
                args.cluster,
                args.runtime,
            )
        if args.command == "index":
            return _print_index(args.modules)
        if args.command == "keys":
            return _keys(args)
        if args.command == "deploy":
            return _deploy(args)
        api_commands = {"trigger": _trigger, "runs": _runs, "queues": _queues}
        return _through_the_api(api_commands[args.command])(args)
    except PodtaskError as exc:
        print(f"podtask: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
