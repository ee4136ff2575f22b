"""Makes the API fixtures (in `api_fixtures`, importable under a unique name) visible."""

from api_fixtures import client, namespace

__all__ = ["client", "namespace"]
