"""The images built for real, once per test session: `make images`'s three (control plane,
runner, examples) from this checkout, on the cached local Debian base.

Any test may ask for `built_images`; on a machine without podman, buildah, runc and
debootstrap it is skipped with `tools_missing_reason()`.
"""

from __future__ import annotations

import pytest

from podtask_devcluster import image_build
from podtask_devcluster.podman import tools_missing_reason


@pytest.fixture(scope="session")
def built_images() -> dict[str, str]:
    """{"control-plane": tag, "runner": tag, "examples": tag}, freshly built this session."""
    reason = tools_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    return image_build.build_all()
