"""Which runs exist for users: a run of a batch only once its batch is committed.

The runs of a batch being created are objects in the cluster (`kubectl get taskruns` lists
them, with no status), but until the batch's marker is committed the API answers for them
as for runs that do not exist: GET is a 404 and listings leave them out. See
`podtask._contract.batch_markers`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from podtask._contract.batch_markers import BatchOwner, batch_owner, commits, read_marker
from podtask_api.cluster import ObjectNotFound
from podtask_api.services import Services


async def _committed(svc: Services, name: str, uid: str) -> bool:
    try:
        found = await svc.call(svc.cluster.get_config_map, name)
    except ObjectNotFound:
        return False
    marker = read_marker(found)
    if marker is None or not uid:
        return False
    if commits(marker, BatchOwner(marker.batch_id, uid)):
        svc.batches.add(uid)
        return True
    return False


async def visible_runs(svc: Services, runs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`runs` without those of batches not committed, reading each batch's marker once."""
    runs = list(runs)
    decided: dict[str, bool] = {}
    shown = []
    for run in runs:
        owner = batch_owner(run)
        if owner is None or owner.uid in svc.batches:
            shown.append(run)
            continue
        if owner.uid not in decided:
            decided[owner.uid] = await _committed(svc, owner.name, owner.uid)
        if decided[owner.uid]:
            shown.append(run)
    return shown


async def is_visible(svc: Services, run: Mapping[str, Any]) -> bool:
    return bool(await visible_runs(svc, [run]))
