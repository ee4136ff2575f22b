"""Makes the API fixtures (in `api_fixtures` and `cli_processes`, importable under a unique
name) visible."""

from api_fixtures import client, keys_secret, namespace, served_client, signed_in_browser
from cli_processes import api_env

__all__ = ["api_env", "client", "keys_secret", "namespace", "served_client", "signed_in_browser"]
