"""`podtask dev` keeps its API key's digest in the keys' Secret, next to any others."""

from __future__ import annotations

from podtask._cli.dev import DEV_KEY_NAME, store_dev_key
from podtask._control.api_keys import (
    ApiKeySecret,
    KeyAccess,
    StoredApiKey,
    api_key_digest,
    with_key,
)
from tests.embedded_kube import EmbeddedKube


def test_the_dev_key_is_stored_and_replaced_and_other_keys_stay(
    embedded_kube: EmbeddedKube,
) -> None:
    namespace = embedded_kube.new_namespace("devkeys").name
    secret = ApiKeySecret(embedded_kube.api, namespace)
    store_dev_key(embedded_kube.cluster.url, "pt_dev_one", namespace)
    grafana = StoredApiKey(name="grafana", sha256=api_key_digest("g"), access=KeyAccess.READ)
    secret.change(lambda keys: with_key(keys, grafana))
    # A new state dir makes a new dev key: it replaces the old one, under the same name.
    store_dev_key(embedded_kube.cluster.url, "pt_dev_two", namespace)
    stored = {key.name: key for key in secret.read()}
    assert stored == {
        DEV_KEY_NAME: StoredApiKey(name=DEV_KEY_NAME, sha256=api_key_digest("pt_dev_two")),
        "grafana": grafana,
    }
