"""`podtask deploy`: the manifest of a task image, with module references the image can import.

`podtask index` and `podtask dev` name a task module file by its absolute path, which is
right on this machine and wrong inside an image. A deploy is run from the folder that
the task image copies to its working directory (`/app` in the runner image), usually the
root of the image's build context, so a file's reference becomes its path relative to that
folder: `examples/hello_world.py` here is `/app/examples/hello_world.py` in the image that
`examples/Dockerfile` builds. The runner imports it relative to its working directory (the
image's WORKDIR in a cluster, the folder `podtask dev` was started in on this machine), so
one deploy runs both in a cluster and in `podtask dev`. Dotted module names stay as they
are: the runner imports them from its working directory too, as `python -m` does.

Nothing here talks to the API; the CLI sends the manifest with `PodtaskClient`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from podtask._authoring.manifest import Manifest, build_manifest
from podtask._authoring.modules import load_tasks
from podtask.errors import TaskModuleImportError

IMAGE_WORKDIR = PurePosixPath("/app")


def image_module_ref(module_ref: str, root: Path) -> str:
    """What the image imports for a module that was loaded from `module_ref` on this machine.

    A file under `root` becomes its POSIX path relative to `root`; a dotted name stays; a file
    outside `root` is a `TaskModuleImportError`, since the image would not hold it there.
    """
    path = Path(module_ref)
    if not path.is_absolute():
        return module_ref
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise TaskModuleImportError(
            f"task module {module_ref!r} is outside the current folder {str(root)!r}: run "
            f"`podtask deploy` from the folder the task image copies to its working directory "
            f"({IMAGE_WORKDIR}), and give modules under it"
        ) from None
    return relative.as_posix()


def for_image(manifest: Manifest, root: Path) -> Manifest:
    """`manifest` with every task's module as the image imports it (`image_module_ref`)."""
    tasks = [
        task.model_copy(update={"module": image_module_ref(task.module, root)})
        for task in manifest.tasks
    ]
    return manifest.model_copy(update={"tasks": tasks})


@contextlib.contextmanager
def importable_from(folder: Path) -> Iterator[None]:
    """Dotted module names import from `folder` while this lasts, as with `python -m` there."""
    entry = str(folder)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


def image_manifest(module_refs: Iterable[str]) -> Manifest:
    """Import the task modules (files, folders or dotted names, relative to the current
    folder) and build the manifest the image's runner can follow.

    Raises `TaskModuleImportError` (a module that fails to import, a declaration error
    included: its message names the task and the field; or a module outside the current
    folder) or `TaskDeclarationError` (tasks that disagree, such as two limits for one queue).
    """
    here = Path.cwd().resolve()
    with importable_from(here):
        manifest = build_manifest(load_tasks(module_refs))
    return for_image(manifest, here)
