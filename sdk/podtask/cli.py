"""The `podtask` command line. Subcommands import what they need lazily."""

from __future__ import annotations

import argparse
import contextlib
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
    return parser


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
    except PodtaskError as exc:
        print(f"podtask: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
