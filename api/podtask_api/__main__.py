"""`python -m podtask_api --host H --port P`: serve the API with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from kubernetes.config.config_exception import ConfigException

from podtask_api.app import create_app
from podtask_api.http_protocol import ApiServer, server_config
from podtask_api.settings import ApiSettings


def main(argv: list[str] | None = None) -> int:
    settings = ApiSettings()
    parser = argparse.ArgumentParser(prog="podtask_api", description=__doc__)
    parser.add_argument("--host", default=settings.api_host, help="default: PODTASK_API_HOST")
    parser.add_argument(
        "--port", type=int, default=settings.api_port, help="default: PODTASK_API_PORT"
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    # Older Kubernetes clients (within the versions this package allows) log every response
    # body at debug level: payloads, outputs and the keys' Secret would land in the API's
    # log. That logger never goes below info, whatever the level asked for.
    logging.getLogger("kubernetes.client.rest").setLevel(
        max(logging.INFO, logging.getLogger().getEffectiveLevel())
    )
    log = logging.getLogger("podtask_api")
    if not settings.runner_token_secret.get_secret_value():
        log.warning("PODTASK_RUNNER_TOKEN_SECRET is not set: runner callbacks will be refused")
    if not settings.api_keys_secret and not settings.api_key_digests:
        log.warning(
            "no API keys: neither PODTASK_API_KEY_HASHES nor PODTASK_API_KEYS_SECRET is set, so "
            + (
                "public endpoints need no API key (dev mode)"
                if settings.dev_mode
                else "every public request will be refused"
            )
        )
    try:
        app = create_app(settings)
    except ConfigException as exc:
        print(f"podtask_api: cannot load the Kubernetes configuration: {exc}", file=sys.stderr)
        return 2
    # Access log lines carry method, path and status only: no bodies, no Authorization header.
    # Requests uvicorn cannot parse are answered in the API's JSON error shape too.
    ApiServer(server_config(app, host=args.host, port=args.port, log_level=args.log_level)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
