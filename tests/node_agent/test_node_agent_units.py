"""The node agent's pure parts: CRI log records and the `kubectl logs` options over them, the
image list, node conditions, and which secrets and config maps a pod's environment reads."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from podtask_devcluster.crilog import (
    CriLogWriter,
    LogOptions,
    decode,
    encode,
    read_log,
    timestamp,
)
from podtask_devcluster.images import ImageSet
from podtask_devcluster.logserver import log_options
from podtask_devcluster.nodestatus import Machine, node_conditions, node_status
from podtask_devcluster.podenv import CONFIGMAP, SECRET, referenced_objects


def _log(path: Path, *chunks: tuple[str, bytes]) -> Path:
    path.write_bytes(b"".join(encode(data, moment) for moment, data in chunks))
    return path


T1 = "2026-01-01T00:00:01.000000000Z"
T2 = "2026-01-01T00:00:02.000000000Z"
T3 = "2026-01-01T00:00:03.000000000Z"


def test_records_keep_the_output_byte_for_byte(tmp_path: Path) -> None:
    path = _log(tmp_path / "a.log", (T1, b"one\ntw"), (T2, b"o\nthree"), (T3, b"\n"))
    assert read_log(path, LogOptions()) == b"one\ntwo\nthree\n"
    record = decode(encode(b"partial", T1))
    assert record is not None and record.partial and record.text == b"partial"


def test_tail_counts_lines_not_records(tmp_path: Path) -> None:
    path = _log(tmp_path / "a.log", (T1, b"one\ntw"), (T2, b"o\nthree\n"))
    assert read_log(path, LogOptions(tail_lines=2)) == b"two\nthree\n"
    assert read_log(path, LogOptions(tail_lines=0)) == b""
    assert read_log(path, LogOptions(tail_lines=10)) == b"one\ntwo\nthree\n"


def test_timestamps_since_and_limit(tmp_path: Path) -> None:
    path = _log(tmp_path / "a.log", (T1, b"one\n"), (T2, b"two\n"), (T3, b"three\n"))
    assert read_log(path, LogOptions(timestamps=True)).splitlines()[0] == f"{T1} one".encode()
    since = dt.datetime(2026, 1, 1, 0, 0, 2, tzinfo=dt.UTC)
    assert read_log(path, LogOptions(since=since)) == b"two\nthree\n"
    assert read_log(path, LogOptions(limit_bytes=5)) == b"one\nt"


def test_log_options_from_the_query() -> None:
    before = dt.datetime.now(dt.UTC)
    options = log_options({"tailLines": "3", "timestamps": "true", "sinceSeconds": "60"})
    after = dt.datetime.now(dt.UTC)
    assert options.tail_lines == 3 and options.timestamps
    assert options.since is not None
    # 60 s before the moment the query was read, whenever that was.
    minute = dt.timedelta(seconds=60)
    assert before - minute <= options.since <= after - minute
    assert timestamp().endswith("000Z")


def test_images_default_to_all_and_patterns_match() -> None:
    assert ImageSet.from_env({}).has("anything:1")
    images = ImageSet.from_env({"PODTASK_NODE_IMAGES": "python:*, podtask/runner:dev"})
    assert images.has("python:3.11")
    assert images.has("podtask/runner:dev")
    assert not images.has("busybox")
    assert "busybox" in images.pull_error("busybox", "n1")


def test_node_conditions_move_their_transition_time_only_on_change() -> None:
    first = node_conditions([], "2026-01-01T00:00:00Z")
    ready = next(c for c in first if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    lost = [dict(c, status="Unknown") if c["type"] == "Ready" else c for c in first]
    again = node_conditions(first, "2026-01-01T00:01:00Z")
    back = node_conditions(lost, "2026-01-01T00:02:00Z")
    assert next(c for c in again if c["type"] == "Ready")["lastTransitionTime"] == (
        "2026-01-01T00:00:00Z"
    )
    assert next(c for c in back if c["type"] == "Ready")["lastTransitionTime"] == (
        "2026-01-01T00:02:00Z"
    )


def test_node_status_shows_the_machine(tmp_path: Path) -> None:
    machine = Machine.this_one(tmp_path)
    status = node_status(machine, 10250, [], "2026-01-01T00:00:00Z", "boot")
    assert status["capacity"]["cpu"] == str(machine.cpus)
    assert status["capacity"]["pods"] == "110"
    assert status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]


def test_referenced_objects() -> None:
    pod = {
        "spec": {
            "containers": [
                {
                    "envFrom": [{"configMapRef": {"name": "cm"}}, {"secretRef": {"name": "s1"}}],
                    "env": [
                        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k"}}},
                        {"name": "B", "value": "x"},
                    ],
                }
            ]
        }
    }
    assert referenced_objects(pod) == {(CONFIGMAP, "cm"), (SECRET, "s1"), (SECRET, "s2")}


def test_the_writer_holds_a_line_until_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "a.log"

    async def copy() -> None:
        stream = asyncio.StreamReader()
        copying = asyncio.create_task(CriLogWriter(path).copy(stream))
        # Written in pieces, as `print` writes a line and then its newline.
        for part in (b"line 0", b"\nline", b" 1\n", b"no newline"):
            stream.feed_data(part)
            await asyncio.sleep(0.01)
        stream.feed_eof()
        await copying

    asyncio.run(copy())
    records = [decode(line) for line in path.read_bytes().splitlines()]
    assert [(r.text, r.partial) for r in records if r is not None] == [
        (b"line 0", False),
        (b"line 1", False),
        (b"no newline", True),
    ]
