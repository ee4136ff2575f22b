"""Makes the API fixtures (in `api_fixtures` and `cli_processes`, importable under a unique
name) visible."""

from api_fixtures import client, namespace
from cli_processes import api_env

__all__ = ["api_env", "client", "namespace"]
