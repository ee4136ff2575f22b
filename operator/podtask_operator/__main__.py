"""`python -m podtask_operator`: run the operator against KUBECONFIG's cluster or in-cluster."""

from __future__ import annotations

import argparse
import logging

import kopf

import podtask_operator.handlers  # noqa: F401  (registers the handlers)
from podtask_operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="podtask-operator", description=__doc__)
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [operator] %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handler call at INFO: one line per watch event is noise here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        standalone=True,
        namespaces=[settings.namespace],
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
