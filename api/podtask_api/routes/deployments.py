"""Deployments: `POST /api/v1/deployments` registers a task image's manifest as the current
version of its tasks and queues; `GET /api/v1/deployments` lists them.

Each route declares who may call it (`access`). The rules live in
`podtask_api.deployments`; this module only orders the cluster calls: claim the version
(its record), register the manifest, and drop the record again when the registration
fails, so that the version can be deployed again.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime

from fastapi import APIRouter, Depends

from podtask_api.cluster import ClusterError, ObjectAlreadyExists
from podtask_api.deployments import (
    DeploymentList,
    DeploymentRequest,
    DeploymentView,
    deployment_record,
    deployment_versions,
    manifest_json,
    newest_first,
    next_version,
    refused_by_dev_server,
    version_taken,
)
from podtask_api.errors import ApiError, error_responses
from podtask_api.routes.access import PUBLIC_ROUTE_ERRORS, any_key, write_key
from podtask_api.services import ServicesDep

log = logging.getLogger("podtask_api")

router = APIRouter(prefix="/api/v1", tags=["deployments"], responses=PUBLIC_ROUTE_ERRORS)

# Versions tried when a generated one was taken by a deployment made at the same moment.
_VERSION_ATTEMPTS = 5


@router.post(
    "/deployments",
    status_code=201,
    responses=error_responses(400, 409, 413),
    dependencies=[Depends(write_key)],
)
async def create_deployment(deployment: DeploymentRequest, svc: ServicesDep) -> DeploymentView:
    """Register a task image's manifest as the current version of its tasks and queues.

    The namespace's tasks become exactly the manifest's, run from `image` at the new
    version; runs already triggered keep the version they were triggered on. A version that
    is already deployed is a 409 `deployment_exists`; `podtask dev`'s API takes no
    deployment while its pods run as processes or are simulated (409 `dev_server`). Each
    task's declared schedule becomes its DECLARATIVE schedule (those no longer declared are
    deleted); a declared schedule named like a schedule made over the API is a 409
    `schedule_conflict`.
    """
    if svc.settings.dev_runtime in ("processes", "simulated"):
        raise refused_by_dev_server()
    cluster = svc.deployments
    manifest_text = manifest_json(deployment.manifest)
    taken = deployment_versions(await svc.call(cluster.records))
    for _ in range(_VERSION_ATTEMPTS):
        version = deployment.version or next_version(taken, datetime.now(UTC).date())
        if version in taken:
            raise version_taken(version)
        created_at = datetime.now(UTC)
        record = deployment_record(
            version, deployment.image, deployment.manifest, manifest_text, created_at
        )
        try:
            await svc.call(cluster.create_record, record)
            break
        except ObjectAlreadyExists:
            # Another deployment took this version (or its record's name) a moment ago.
            if deployment.version is not None:
                raise version_taken(version) from None
            taken.append(version)
    else:
        raise ApiError(
            409,
            "deployment_conflict",
            "other deployments kept taking the next version; deploy again",
        )
    try:
        await svc.call(cluster.register, deployment.manifest, deployment.image, version)
    except (ApiError, ClusterError):
        with contextlib.suppress(ApiError, ClusterError):
            await svc.call(cluster.delete_record, record["metadata"]["name"])
        raise
    finally:
        # Triggers from now on get the Tasks as written (some may be, if it failed).
        svc.tasks.forget()
    log.info("deployed version %s of %d task(s)", version, len(deployment.manifest.tasks))
    return DeploymentView(
        version=version,
        image=deployment.image,
        created_at=record["data"]["createdAt"],
        tasks=[task.id for task in deployment.manifest.tasks],
        queues=[queue.name for queue in deployment.manifest.queues],
    )


@router.get(
    "/deployments",
    dependencies=[Depends(any_key)],
)
async def list_deployments(svc: ServicesDep) -> DeploymentList:
    """Every deployment, newest (the current one) first."""
    return DeploymentList(deployments=newest_first(await svc.call(svc.deployments.records)))
