"""`podtask runs cancel|replay` run as real subprocesses against the API served by uvicorn."""

from __future__ import annotations

from api_fixtures import API_KEY, served, settings_for
from cli_processes import podtask
from fastapi.testclient import TestClient

from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def test_runs_cancel_and_replay(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, client: TestClient
) -> None:
    run_id = client.post("/api/v1/tasks/hello-world/trigger", json={"payload": 1}).json()["id"]
    with served(create_app(settings_for(embedded_kube, namespace))) as url:
        env = {"PODTASK_API_URL": url, "PODTASK_API_KEY": API_KEY}

        canceled = podtask("runs", "cancel", run_id, env=env)
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stdout == f"Cancel requested for {run_id} (status: Pending)\n"
        assert "cancelRequestedAt" in namespace.run(run_id)["spec"]

        replayed = podtask("runs", "replay", run_id, "--payload", '{"n": 2}', env=env)
        assert replayed.returncode == 0, replayed.stderr
        [new_id] = set(namespace.run_names()) - {run_id}
        assert replayed.stdout == f"Replayed {run_id} as {new_id}\n"
        assert namespace.run(new_id)["spec"]["payload"] == {"n": 2}
        assert namespace.run(new_id)["spec"]["replayOf"] == run_id

        missing = podtask("runs", "cancel", "run-missing", env=env)
        assert missing.returncode == 1
        assert "there is no run 'run-missing'" in missing.stderr

        no_key = podtask("runs", "cancel", run_id, env={"PODTASK_API_URL": url})
        assert no_key.returncode == 1
        assert "HTTP 401" in no_key.stderr and "set PODTASK_API_KEY" in no_key.stderr

    unset = podtask("runs", "replay", run_id, env={})
    assert unset.returncode == 2
    assert "PODTASK_API_URL is not set" in unset.stderr
    bad_json = podtask("runs", "replay", run_id, "--payload", "{n", env=env)
    assert bad_json.returncode == 2 and "not valid JSON" in bad_json.stderr
