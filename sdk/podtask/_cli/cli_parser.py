"""The `podtask` command line's arguments: its subcommands, their flags and what each flag
accepts (JSON, durations, times, limits). `podtask._cli.cli` parses with `parser()` and runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

API_HELP = "through the podtask API (PODTASK_API_URL, PODTASK_API_KEY)"
KEYS_HELP = "through the cluster (KUBECONFIG)"

# What `-o/--output` offers: `text` for people (tables, messages; the default but for `index`,
# whose manifest is JSON for machines), `json` for scripts: the objects as the API answers them.
OUTPUT_FORMATS = ("text", "json")


def _json_argument(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `1.5m`, `2h`, `1d`, `1w` or `500ms`
    (`podtask._contract.durations`)."""
    from podtask._contract.durations import DurationError, duration_seconds

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


def _output_arguments(command: argparse.ArgumentParser, default: str = "text") -> None:
    """`-o/--output text|json` (kubectl's flag) and `--json` (`-o json`, as gh spells it).

    Not set unless given (`output_format` supplies the default): a subcommand's default would
    overwrite `podtask queues -o json list`'s choice, as argparse copies a subcommand's
    namespace over its parent's.
    """
    others = " or ".join(f for f in OUTPUT_FORMATS if f != default)
    command.add_argument(
        "-o",
        "--output",
        choices=OUTPUT_FORMATS,
        default=argparse.SUPPRESS,
        help=f"{default} (the default) or {others}; text: tables and messages for people; json: "
        "the objects as the API answers them, alone on stdout",
    )
    command.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help="the same as -o json",
    )


def output_format(args: argparse.Namespace) -> str:
    """The format a command prints its objects in: `-o`'s, else the command's default."""
    default = "json" if args.command == "index" else "text"
    return str(getattr(args, "output", default))


def _dev_arguments(dev: argparse.ArgumentParser) -> None:
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
        choices=["processes", "containers", "simulated"],
        default="processes",
        help="processes: each pod's command runs as a process of this environment (default); "
        "containers: each pod runs in its image with podman, under the kernel's memory and CPU "
        "limits (`make images` builds the runner image that the tasks of `podtask dev` use); "
        "simulated: no process, each run fetches its attempt and reports success after "
        "$PODTASK_NODE_SIMULATED_SECONDS (default 1), for benchmarks",
    )


def _index_arguments(index: argparse.ArgumentParser) -> None:
    index.add_argument("modules", nargs="+", help="task modules: files, folders or dotted names")
    _output_arguments(index, default="json")


def _wait_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to finish and print its output (-o json: the run); exit 1 "
        "unless it Completed",
    )
    command.add_argument(
        "--timeout", type=parse_duration, default=None, help="give up waiting after this long"
    )


def _trigger_arguments(trigger: argparse.ArgumentParser) -> None:
    trigger.add_argument("task_id", metavar="TASK")
    trigger.add_argument("--payload", type=_json_argument, default=None, help="JSON")
    _wait_arguments(trigger)
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
    trigger.add_argument(
        "--test",
        dest="is_test",
        action="store_true",
        default=None,
        help="a test run (ctx.is_test in the task; `runs list --test` lists these)",
    )
    _output_arguments(trigger)


def _runs_arguments(runs: argparse.ArgumentParser) -> None:
    run_commands = runs.add_subparsers(dest="runs_command", required=True)
    listing = run_commands.add_parser("list", help="the newest runs, as a table")
    listing.add_argument(
        "--status", action="append", help="only runs in this status (repeat for more)"
    )
    listing.add_argument("--task", help="only runs of this task")
    listing.add_argument("--tag", action="append", help="only runs with this tag (repeat)")
    listing.add_argument("--queue", help="only runs of this queue")
    listing.add_argument(
        "--schedule", dest="schedule_id", metavar="ID", help="only runs this schedule triggered"
    )
    listing.add_argument(
        "--test",
        dest="is_test",
        action="store_true",
        default=None,
        help="only test runs (triggered with --test, or from the dashboard's Test page)",
    )
    listing.add_argument("--limit", type=_positive_int, default=20, help="at most (default 20)")
    _output_arguments(listing)
    get = run_commands.add_parser(
        "get", help="one run: its details, every attempt, its output or error"
    )
    get.add_argument("run_id", metavar="ID")
    _output_arguments(get)
    logs = run_commands.add_parser("logs", help="the log of a run's attempt")
    logs.add_argument("run_id", metavar="ID")
    logs.add_argument("--attempt", type=_positive_int, help="default: the latest")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing while the attempt runs"
    )
    cancel = run_commands.add_parser("cancel", help="cancel a run that has not finished")
    cancel.add_argument("run_id", metavar="ID")
    _output_arguments(cancel)
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
    _wait_arguments(replay)
    _output_arguments(replay)


def _queues_arguments(queues: argparse.ArgumentParser) -> None:
    _output_arguments(queues)
    queue_commands = queues.add_subparsers(dest="queues_command")
    _output_arguments(queue_commands.add_parser("list", help="every queue (the default)"))
    for action in ("pause", "resume"):
        command = queue_commands.add_parser(action, help=f"{action} a queue")
        command.add_argument("name", metavar="NAME")
        _output_arguments(command)
    limit = queue_commands.add_parser(
        "limit", help="set a queue's concurrency limit ('default': back to its declared one)"
    )
    limit.add_argument("name", metavar="NAME")
    limit.add_argument("limit", metavar="N", type=_limit_argument)
    _output_arguments(limit)


def _schedule_fields(command: argparse.ArgumentParser, *, creating: bool) -> None:
    """The flags of a schedule's fields: required ones (`--cron`) only when creating."""
    command.add_argument(
        "--cron",
        required=creating,
        help="5 fields (minute hour day-of-month month day-of-week) or @daily, @hourly, …; "
        "quote it: '0 9 * * 1-5'",
    )
    command.add_argument(
        "--timezone",
        default="UTC" if creating else None,
        help="the IANA zone of the cron's times (Europe/Paris)"
        + ("; default UTC" if creating else ""),
    )
    command.add_argument("--external-id", help="yours (a user's id); the runs' payload has it")


def _schedules_arguments(schedules: argparse.ArgumentParser) -> None:
    schedule_commands = schedules.add_subparsers(dest="schedules_command", required=True)
    create = schedule_commands.add_parser(
        "create", help="run a task on a cron schedule; prints the schedule's id"
    )
    create.add_argument("task", metavar="TASK")
    _schedule_fields(create, creating=True)
    create.add_argument(
        "--deduplication-key",
        help="creating again with the same task and key updates that schedule",
    )
    create.add_argument(
        "--inactive",
        dest="active",
        action="store_false",
        help="create it deactivated (`schedules activate` starts it)",
    )
    _output_arguments(create)
    listing = schedule_commands.add_parser("list", help="every schedule, as a table")
    listing.add_argument("--task", help="only schedules of this task")
    listing.add_argument(
        "--type", choices=["DECLARATIVE", "IMPERATIVE"], type=str.upper, help="only of this type"
    )
    activity = listing.add_mutually_exclusive_group()
    activity.add_argument(
        "--active", dest="active", action="store_true", default=None, help="only active ones"
    )
    activity.add_argument(
        "--inactive", dest="active", action="store_false", default=None, help="only inactive ones"
    )
    _output_arguments(listing)
    get = schedule_commands.add_parser("get", help="one schedule: its fields, its next runs")
    get.add_argument("schedule_id", metavar="ID")
    _output_arguments(get)
    update = schedule_commands.add_parser(
        "update", help="change a schedule made over the API (the flags given)"
    )
    update.add_argument("schedule_id", metavar="ID")
    update.add_argument("--task", help="run this task instead")
    _schedule_fields(update, creating=False)
    _output_arguments(update)
    for action, words in (
        ("activate", "run a schedule's ticks again"),
        ("deactivate", "run no more ticks of a schedule until it is activated"),
        ("delete", "delete a schedule made over the API (its runs stay)"),
    ):
        command = schedule_commands.add_parser(action, help=words)
        command.add_argument("schedule_id", metavar="ID")
        _output_arguments(command)


def _deploy_arguments(deploy: argparse.ArgumentParser) -> None:
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
    _output_arguments(deploy)


def _keys_arguments(keys: argparse.ArgumentParser) -> None:
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True, help="to tell keys apart, and revoke one")
    create.add_argument(
        "--read-only", action="store_true", help="may only call endpoints that read"
    )
    _output_arguments(
        key_commands.add_parser("list", help="the keys' names and access (never the keys)")
    )
    revoke = key_commands.add_parser("revoke", help="revoke a key by its name")
    revoke.add_argument("name", metavar="NAME")
    for command in key_commands.choices.values():
        command.add_argument(
            "--namespace", help="the API's namespace (default: the kubeconfig context's)"
        )
        command.add_argument("--secret", help="the Secret's name (default: podtask-api-keys)")
        command.add_argument("--kubeconfig", help="default: KUBECONFIG, else ~/.kube/config")


@dataclass(frozen=True)
class Command:
    """One `podtask` command: its line in `podtask --help`, its own `--help`'s opening
    (None: the line again), and its arguments."""

    help: str
    description: str | None
    arguments: Callable[[argparse.ArgumentParser], None]


COMMANDS: dict[str, Command] = {
    "dev": Command(
        "run the embedded cluster, the operator and the API on this machine",
        None,
        _dev_arguments,
    ),
    "index": Command(
        "print the manifest (JSON) of the tasks and queues that task modules declare",
        None,
        _index_arguments,
    ),
    "trigger": Command(
        f"trigger a run of a task {API_HELP}",
        "Trigger a run of TASK and print its id; with --wait, follow it to its end and print "
        "its output (or its error).",
        _trigger_arguments,
    ),
    "runs": Command(
        f"list, read and manage runs {API_HELP}",
        "List, read and manage runs through the podtask API at PODTASK_API_URL, with the API "
        "key in PODTASK_API_KEY.",
        _runs_arguments,
    ),
    "queues": Command(
        f"list queues; pause, resume or limit one {API_HELP}",
        "Without a subcommand: every queue with its limit and counts.",
        _queues_arguments,
    ),
    "schedules": Command(
        f"create, list and manage the schedules of tasks {API_HELP}",
        "Schedules trigger a run of their task at each time their cron gives, in their "
        "timezone. Those a task declares (@task(schedule=...)) may be activated and "
        "deactivated here; those made here may also be updated and deleted.",
        _schedules_arguments,
    ),
    "deploy": Command(
        f"register a task image's tasks as their new version {API_HELP}",
        "Index the task modules and register their manifest with IMAGE as the current version "
        "of their tasks and queues: new triggers run on it, runs already triggered keep "
        "theirs. Run it from the folder the image copies to its working directory (/app): "
        "module files are recorded relative to it.",
        _deploy_arguments,
    ),
    "keys": Command(
        f"create, list and revoke API keys {KEYS_HELP}",
        "API keys are kept as sha256 digests in a Secret the API reads (podtask-api-keys by "
        "default); a change counts within seconds, without a restart.",
        _keys_arguments,
    ),
}


def installed_version() -> str:
    """The installed `podtask` package's version (its metadata), as `--version` prints it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("podtask")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podtask", description="Background tasks on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        command.arguments(
            commands.add_parser(name, help=command.help, description=command.description)
        )
    return parser
