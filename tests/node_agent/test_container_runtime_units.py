"""The container mode's pure parts: a pod spec as `podman create` options, the runtime
choice, the cgroup mounts read for OOM kills, conmon's log timestamps, and a container's
environment without the agent's own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from podtask_devcluster.container_cgroups import cgroup_mounts
from podtask_devcluster.crilog import LogOptions, decode, read_log
from podtask_devcluster.nodestatus import Machine
from podtask_devcluster.podenv import ContainerConfigError, Placement, plan_container
from podtask_devcluster.podman_spec import (
    check_non_root,
    container_name,
    create_arguments,
)
from podtask_devcluster.quantities import parse_bytes
from podtask_devcluster.runtime import RUNTIME_ENV, runtime_choice
from podtask_devcluster.simulated_runtime import SECONDS_ENV, simulated_seconds

PLACE = Placement(node_name="n1", host_ip="127.0.0.1", pod_ip="127.0.0.1")


def _pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p1", "namespace": "ns", "uid": "u-1"},
        "spec": {"containers": [container], **spec},
    }


def _arguments(pod: dict[str, Any], tmp_path: Path) -> list[str]:
    spec = pod["spec"]["containers"][0]
    plan = plan_container(pod, spec, lambda *_: None, PLACE, tmp_path, host_environment=False)
    return create_arguments(
        node="n1",
        pod=pod,
        spec=spec,
        plan=plan,
        log_file=tmp_path / "c.log",
        image_user="",
        empty_dir_of=lambda volume: tmp_path / volume,
        cgroup="/podtask/podu-1/main",
    )


def _after(arguments: list[str], option: str) -> list[str]:
    return [arguments[i + 1] for i, a in enumerate(arguments) if a == option]


def test_command_replaces_the_entrypoint_and_args_the_cmd(tmp_path: Path) -> None:
    env = [{"name": "WHO", "value": "world"}]
    both = _arguments(
        _pod(
            {"name": "main", "image": "img:1", "command": ["echo"], "args": ["$(WHO)"], "env": env}
        ),
        tmp_path,
    )
    assert json.loads(_after(both, "--entrypoint")[0]) == ["echo"]
    assert both[-2:] == ["img:1", "world"]
    only_args = _arguments(_pod({"name": "main", "image": "img:1", "args": ["a"]}), tmp_path)
    assert "--entrypoint" not in only_args and only_args[-2:] == ["img:1", "a"]
    neither = _arguments(_pod({"name": "main", "image": "img:1"}), tmp_path)
    assert "--entrypoint" not in neither and neither[-1] == "img:1"


def test_environment_values_never_reach_the_command_line(tmp_path: Path) -> None:
    env = [{"name": "TOKEN", "value": "s3cret-value"}]
    arguments = _arguments(_pod({"name": "main", "image": "i", "env": env}), tmp_path)
    assert "TOKEN" in _after(arguments, "--env")
    assert not any("s3cret-value" in a for a in arguments)


def test_a_containers_environment_is_only_the_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_ONLY", "1")
    pod = _pod({"name": "main", "image": "i", "env": [{"name": "A", "value": "1"}]})
    spec = pod["spec"]["containers"][0]
    plan = plan_container(pod, spec, lambda *_: None, PLACE, tmp_path, host_environment=False)
    assert plan.env == {"A": "1", "HOSTNAME": "p1"}
    assert plan.working_dir is None
    local = plan_container(pod, spec, lambda *_: None, PLACE, tmp_path)
    assert local.env["AGENT_ONLY"] == "1" and local.cwd == str(tmp_path)
    assert local.env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_security_context_limits_volumes_and_labels(tmp_path: Path) -> None:
    container = {
        "name": "main",
        "image": "i",
        "workingDir": "/work",
        "securityContext": {
            "runAsUser": 10001,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/tmp"},
            {"name": "host", "mountPath": "/data", "readOnly": True},
        ],
    }
    pod = _pod(
        container,
        securityContext={"runAsGroup": 10002, "fsGroup": 2000, "runAsNonRoot": True},
        volumes=[
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": "/srv/data"}},
        ],
    )
    arguments = _arguments(pod, tmp_path)
    assert _after(arguments, "--user") == ["10001:10002"]
    assert _after(arguments, "--group-add") == ["2000"]
    assert "--read-only" in arguments and "--read-only-tmpfs=false" in arguments
    assert _after(arguments, "--security-opt") == ["no-new-privileges"]
    assert _after(arguments, "--cap-drop") == ["ALL"]
    assert _after(arguments, "--cap-add") == ["NET_BIND_SERVICE"]
    assert _after(arguments, "--memory") == [str(64 << 20)]
    assert _after(arguments, "--memory-swap") == [str(64 << 20)]
    assert _after(arguments, "--cpus") == ["0.5"]
    assert _after(arguments, "--cgroup-parent") == ["/podtask/podu-1/main"]
    assert _after(arguments, "--mount") == [
        f"type=bind,source={tmp_path / 'scratch'},destination=/tmp",
        "type=bind,source=/srv/data,destination=/data,ro=true",
    ]
    assert _after(arguments, "--workdir") == ["/work"]
    assert _after(arguments, "--network") == ["host"]
    assert _after(arguments, "--pull") == ["never"]
    labels = _after(arguments, "--label")
    assert "podtask.dev/node=n1" in labels and "io.kubernetes.pod.uid=u-1" in labels
    assert _after(arguments, "--name") == [container_name(pod, container)]
    assert container_name(pod, container) == "k8s_main_p1_ns_u-1_0"


def test_run_as_non_root_is_checked_against_the_image_user() -> None:
    pod = _pod({"name": "main", "image": "i"}, securityContext={"runAsNonRoot": True})
    spec = pod["spec"]["containers"][0]
    check_non_root(pod, spec, "10001")
    for root in ("", "0", "0:0"):
        with pytest.raises(ContainerConfigError, match="image will run as root"):
            check_non_root(pod, spec, root)
    with pytest.raises(ContainerConfigError, match="non-numeric user"):
        check_non_root(pod, spec, "app")
    as_root = {**spec, "securityContext": {"runAsUser": 0}}
    with pytest.raises(ContainerConfigError, match="breaks non-root policy"):
        check_non_root(pod, as_root, "10001")
    check_non_root(pod, {**spec, "securityContext": {"runAsUser": 5}}, "")


def test_a_mount_of_a_volume_the_pod_lacks_is_a_config_error(tmp_path: Path) -> None:
    pod = _pod({"name": "main", "image": "i", "volumeMounts": [{"name": "x", "mountPath": "/x"}]})
    with pytest.raises(ContainerConfigError, match='volume "x"'):
        _arguments(pod, tmp_path)


def test_the_runtime_is_chosen_by_option_then_setting() -> None:
    assert runtime_choice(None, {}) == "processes"
    assert runtime_choice(None, {RUNTIME_ENV: "containers"}) == "containers"
    assert runtime_choice("processes", {RUNTIME_ENV: "containers"}) == "processes"
    # Simulated pods only when asked for: never the default.
    assert runtime_choice(None, {RUNTIME_ENV: "simulated"}) == "simulated"
    with pytest.raises(ValueError, match="choose processes or containers or simulated"):
        runtime_choice("docker", {})


def test_how_long_a_simulated_container_runs() -> None:
    assert simulated_seconds(None, {}) == 1.0
    assert simulated_seconds(None, {SECONDS_ENV: "0.25"}) == 0.25
    assert simulated_seconds(3.0, {SECONDS_ENV: "0.25"}) == 3.0
    with pytest.raises(ValueError, match="PODTASK_NODE_SIMULATED_SECONDS must be a number"):
        simulated_seconds(None, {SECONDS_ENV: "soon"})
    with pytest.raises(ValueError, match="0 seconds or more"):
        simulated_seconds(-1.0, {})


def test_a_simulated_node_advertises_room_for_a_busy_cluster() -> None:
    resources = Machine.simulated().resources()
    assert int(resources["pods"]) >= 500
    # 500 pods of the biggest preset a benchmark uses (large-1x: 4 cpu, 8 GiB) fit.
    assert int(resources["cpu"]) >= 500 * 4
    assert parse_bytes(resources["memory"]) >= 500 * 8 * 2**30


def test_cgroup_mounts_of_a_hybrid_layout() -> None:
    mountinfo = (
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
        "33 25 0:29 / /proc rw - proc proc rw\n"
    )
    mounts = cgroup_mounts(mountinfo)
    assert [(str(m.path), m.version) for m in mounts] == [
        ("/sys/fs/cgroup/unified", 2),
        ("/sys/fs/cgroup/memory", 1),
        ("/sys/fs/cgroup/cpu,cpuacct", 1),
    ]
    assert "memory" in mounts[1].options


def test_conmon_timestamps_are_served_in_utc(tmp_path: Path) -> None:
    record = decode(b"2026-12-01T06:18:57.669476602+02:00 stdout F hi\n")
    assert record is not None and record.time == "2026-12-01T04:18:57.669476602Z"
    log = tmp_path / "c.log"
    log.write_bytes(
        b"2026-12-01T04:18:57.669476602+00:00 stderr F err\n"
        b"2026-12-01T04:18:57.669549110+00:00 stdout P partial\n"
    )
    assert read_log(log, LogOptions()) == b"err\npartial"
    assert read_log(log, LogOptions(timestamps=True)).startswith(
        b"2026-12-01T04:18:57.669476602Z err"
    )
