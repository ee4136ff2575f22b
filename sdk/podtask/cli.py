"""The `podtask` command line. Subcommands import what they need lazily."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from podtask.errors import PodtaskError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podtask", description="Background tasks on Kubernetes.")
    commands = parser.add_subparsers(dest="command", required=True)
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
    index = commands.add_parser(
        "index",
        help="print the manifest (JSON) of the tasks and queues that task modules declare",
    )
    index.add_argument("modules", nargs="+", help="task modules: files, folders or dotted names")
    runs = commands.add_parser(
        "runs",
        help="manage runs through the API (PODTASK_API_URL, PODTASK_API_KEY)",
        description="Manage runs through the podtask API at PODTASK_API_URL, with the API key "
        "in PODTASK_API_KEY.",
    )
    run_commands = runs.add_subparsers(dest="runs_command", required=True)
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
    return parser


def _json_argument(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


def _runs_command(args: argparse.Namespace) -> int:
    from podtask.client import (
        ENV_API_KEY,
        ENV_API_URL,
        SAME_PAYLOAD,
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
            if args.runs_command == "cancel":
                view = client.cancel_run(args.run_id)
                print(f"Cancel requested for {view['id']} (status: {view['status']})")
            else:
                payload = getattr(args, "payload", SAME_PAYLOAD)
                handle = client.replay_run(args.run_id, payload)
                print(f"Replayed {args.run_id} as {handle.id}")
        except PodtaskApiError as exc:
            hint = ""
            if exc.status == 401 and not os.environ.get(ENV_API_KEY):
                hint = f"; set {ENV_API_KEY} to an API key (`podtask dev` prints one)"
            print(f"podtask: {exc}{hint}", file=sys.stderr)
            return 1
        except PodtaskConnectionError as exc:
            print(f"podtask: {exc}", file=sys.stderr)
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
                args.modules or ["examples"], args.state_dir, args.port, args.cluster_port
            )
        if args.command == "index":
            return _print_index(args.modules)
        if args.command == "runs":
            return _runs_command(args)
    except PodtaskError as exc:
        print(f"podtask: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
