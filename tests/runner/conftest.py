"""Makes the runner fixtures (in `runner_fixtures`, importable under a unique name) visible."""

from runner_fixtures import live_api

__all__ = ["live_api"]
