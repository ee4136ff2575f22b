"""`python -m podtask_devcluster`: run the dev cluster in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from podtask_devcluster.cluster import EmbeddedCluster
from podtask_devcluster.runtime import add_runtime_option


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podtask_devcluster",
        description="Run the podtask embedded Kubernetes dev cluster (development only).",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".podtask"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    add_runtime_option(parser)
    parser.add_argument(
        "--instance", default="", help="echoed by the health endpoints (Podtask-Instance header)"
    )
    options = parser.parse_args(argv)

    done = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    cluster = EmbeddedCluster(
        options.state_dir,
        host=options.host,
        port=options.port,
        workdir=options.workdir,
        instance=options.instance,
        runtime=options.runtime,
        simulated_seconds=options.simulated_seconds,
    )
    cluster.start()
    print(f"podtask dev cluster: {cluster.url}", flush=True)
    print(f"kubeconfig: {cluster.kubeconfig_path}", flush=True)
    print(f"  export KUBECONFIG={cluster.kubeconfig_path.resolve()}", flush=True)
    try:
        while not done.wait(0.5):
            if not cluster.running:
                print("the dev cluster stopped unexpectedly", file=sys.stderr)
                return 1
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
