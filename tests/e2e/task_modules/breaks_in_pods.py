"""A module that imports where it is registered but not in its pods: as one whose image lacks
a dependency it imports."""

import os

from podtask import Context, task

if os.environ.get("PODTASK_RUN_ID"):  # set only in an attempt's pod
    import a_dependency_the_image_lacks  # type: ignore[import-not-found]  # noqa: F401


@task(id="breaks-on-import-in-pods", retry={"max_attempts": 3, "min_timeout_ms": 100})
def breaks_on_import(payload: object, ctx: Context) -> None:
    return None
