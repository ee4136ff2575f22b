"""An attempt's log where it is kept: its pod while the pod exists, and the copy its runner
sent (`log_segments`) for the run's retention. Blocking cluster calls: routes make them
through `Services.call`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from podtask._contract.attempt_logs import LogChunk
from podtask_api.cluster import (
    KubernetesCluster,
    ObjectAlreadyExists,
    ObjectNotFound,
    ObjectRejected,
)
from podtask_api.errors import ApiError
from podtask_api.log_segments import (
    Piece,
    assembled_log,
    chunk_pieces,
    is_run_segment,
    may_drop_segments,
    piece_patch,
    segment_body,
    segment_index,
    segment_name,
    segments_selector,
    segments_to_drop,
)
from podtask_api.run_logs import attempt_pod_name, is_attempt_pod


def attempt_pod(cluster: KubernetesCluster, run_id: str, attempt: int) -> dict[str, Any] | None:
    """The attempt's pod, or None when there is none (or the pod of that name is another's)."""
    try:
        pod = cluster.get_pod(attempt_pod_name(run_id, attempt))
    except ObjectNotFound:
        return None
    return pod if is_attempt_pod(pod, run_id, attempt) else None


def append_chunk(
    cluster: KubernetesCluster, run: dict[str, Any], attempt: int, chunk: LogChunk
) -> None:
    """Store `chunk` of the attempt's output."""
    for piece in chunk_pieces(chunk):
        _store(cluster, run, attempt, piece)


def _store(cluster: KubernetesCluster, run: dict[str, Any], attempt: int, piece: Piece) -> None:
    run_id = run["metadata"]["name"]
    name = segment_name(run_id, attempt, piece.segment)
    if piece.opens and _create(cluster, run, attempt, piece):
        return
    for _ in range(2):
        try:
            cluster.json_patch_config_map(name, piece_patch(run, piece))
            return
        except ObjectNotFound:
            pass
        except ObjectRejected:
            if is_run_segment(cluster.get_config_map(name), run):
                raise  # the cluster refused the write itself (a segment over its size)
            # The segment of an earlier run of the same name, which the garbage collector
            # has not deleted yet: the runner tries again at its next flush.
            raise ApiError(
                409,
                "log_busy",
                f"the log of attempt {attempt} of run {run_id!r} cannot be written yet; "
                "try again shortly",
                {"id": run_id, "attempt": attempt},
            ) from None
        if _create(cluster, run, attempt, piece):
            return
        # Created meanwhile: add to it.


def _create(cluster: KubernetesCluster, run: dict[str, Any], attempt: int, piece: Piece) -> bool:
    """Create the piece's segment with it; False when the segment exists already."""
    try:
        cluster.create_config_map(segment_body(run, attempt, piece))
    except ObjectAlreadyExists:
        return False
    if may_drop_segments(piece.segment):
        _drop_old_segments(cluster, run, attempt, piece.segment)
    return True


def _drop_old_segments(
    cluster: KubernetesCluster, run: dict[str, Any], attempt: int, created: int
) -> None:
    """Delete the segments that fell out of the log's tail once `created` exists."""
    segments = cluster.list_config_maps(segments_selector(run["metadata"]["name"], attempt))
    own = {segment_index(s): s for s in segments if is_run_segment(s, run)}
    for index in segments_to_drop((i for i in own if i is not None), created):
        meta = own[index]["metadata"]
        # Gone or changed meanwhile: whoever did that had the same aim.
        with contextlib.suppress(ObjectNotFound, ObjectAlreadyExists):
            cluster.delete_config_map(meta["name"], meta["uid"], meta["resourceVersion"])


def stored_log(
    cluster: KubernetesCluster, run: dict[str, Any], attempt: int, *, ended: bool
) -> str | None:
    """The attempt's log as its runner sent it, or None when it sent none."""
    segments = cluster.list_config_maps(segments_selector(run["metadata"]["name"], attempt))
    return assembled_log((s for s in segments if is_run_segment(s, run)), ended=ended)
