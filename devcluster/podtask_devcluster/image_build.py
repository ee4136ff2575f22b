"""Building podtask's images with buildah, as a user's CI would: the control plane (the root
`Dockerfile`), the runner (`runner-image/Dockerfile`) and the examples' task image
(`examples/Dockerfile`, FROM the runner), from the repository root as the build context.

What it owns:
- the local Python base: a Debian bookworm made with debootstrap (python3, pip and
  python-is-python3, like the official `python:3.11-slim-bookworm` the Dockerfiles pin, which
  is not pulled here), imported into podman's store as `BASE_IMAGE` and passed to the builds as
  `PYTHON_IMAGE`. Its root filesystem is cached as a tarball under `~/.cache/podtask/images/`
  (`PODTASK_IMAGE_CACHE`), made once under an `flock` so that two processes never run
  debootstrap at once; when the image is in the store already, nothing is done.
- the wheelhouse: the project's wheel and every runtime dependency's (its `control-plane`
  extra's included), at the versions the project's own virtualenv resolved (its `pip freeze`
  as constraints), in `<context>/wheelhouse/`.
  The Dockerfiles install from it alone (`pip install --no-index`), so a build needs no package
  index and gets the same versions every time.
- the builds themselves, in order, with the image names other parts (the node agent's
  container runtime, `podtask dev`, the tests) use.

`python -m podtask_devcluster.image_build [base|wheelhouse|all]` (`make images`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path

from podtask_devcluster.build_cache import exclusive, log_tail
from podtask_devcluster.podman import tool_env, tools_missing_reason

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_ENV = "PODTASK_IMAGE_CACHE"
WHEELHOUSE = "wheelhouse"


def project_version(root: Path = REPO_ROOT) -> str:
    """The version pyproject.toml gives: the images' tag."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    version: str = pyproject["project"]["version"]
    return version


VERSION = project_version() if (REPO_ROOT / "pyproject.toml").is_file() else "0.1.0"
BASE_IMAGE = "localhost/podtask/python:3.11-bookworm"
CONTROL_PLANE_IMAGE = f"localhost/podtask/podtask:{VERSION}"
RUNNER_IMAGE = f"localhost/podtask/runner:{VERSION}"
EXAMPLES_IMAGE = f"localhost/podtask/examples:{VERSION}"

# The Python of the images (Debian bookworm's, and the Dockerfiles' pinned python:3.11):
# the wheelhouse's compiled wheels must be for it.
IMAGE_PYTHON = (3, 11)
DEBIAN_SUITE = "bookworm"
DEBIAN_PACKAGES = ("python3", "python3-pip", "python-is-python3")
# What `podman import` gives the base, as the official python image has it.
BASE_CHANGES = ("ENV=LANG=C.UTF-8", 'CMD=["python3"]')
BASE_TARBALL = f"debian-{DEBIAN_SUITE}-python.tar"


class ImageBuildFailed(RuntimeError):
    """A step of an image build failed; the message ends with its output's last lines."""


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "podtask" / "images"


# -- podman and buildah -------------------------------------------------------------------------


def _require_tools() -> None:
    reason = tools_missing_reason()
    if reason is not None:
        raise ImageBuildFailed(reason)


def image_exists(image: str) -> bool:
    """Whether podman's store holds `image` (`podman image exists` answers 0 or 1)."""
    done = subprocess.run(
        ["podman", "image", "exists", image], env=tool_env(), capture_output=True, check=False
    )
    return done.returncode == 0


def image_id(image: str) -> str | None:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image],
        env=tool_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def _run_logged(command: Sequence[str], log: Path, what: str, *, stdin: int | None = None) -> None:
    """Run `command` with its output in `log`; a failure raises with the log's tail."""
    with log.open("wb") as out:
        done = subprocess.run(
            list(command), stdin=stdin, stdout=out, stderr=subprocess.STDOUT, env=tool_env()
        )
    if done.returncode != 0:
        raise ImageBuildFailed(
            f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{log_tail(log)}"
        )


# -- the base -----------------------------------------------------------------------------------


def _base_stamp() -> dict[str, object]:
    return {"suite": DEBIAN_SUITE, "packages": list(DEBIAN_PACKAGES), "variant": "minbase"}


def ensure_base_image() -> str:
    """`BASE_IMAGE` in podman's store: imported from the cached root filesystem, which
    debootstrap makes first when the cache lacks it. Returns the image's name."""
    _require_tools()
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    cache = cache_root()
    with exclusive(cache / ".base.lock"):
        if image_exists(BASE_IMAGE):  # another process imported it while we waited
            return BASE_IMAGE
        tarball = _ensure_base_tarball(cache)
        import_command = ["podman", "import"]
        for change in BASE_CHANGES:
            import_command += ["--change", change]
        import_command += ["-", BASE_IMAGE]
        with tarball.open("rb") as rootfs:
            _run_logged(
                import_command, cache / "import.log", "importing the base", stdin=rootfs.fileno()
            )
    return BASE_IMAGE


def _ensure_base_tarball(cache: Path) -> Path:
    """The base's root filesystem as a tarball; made (under the caller's lock) when the cache
    lacks it or it was made with other packages."""
    tarball = cache / BASE_TARBALL
    stamp = cache / f"{BASE_TARBALL}.stamp"
    if tarball.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == _base_stamp():
        return tarball
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cache) as work:
        rootfs = Path(work) / "rootfs"
        _run_logged(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(DEBIAN_PACKAGES)}",
                DEBIAN_SUITE,
                str(rootfs),
            ],
            cache / "debootstrap.log",
            "debootstrap",
        )
        # The python image lets `pip install` into the system's Python; Debian's marker
        # refuses it (PEP 668).
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        # What the slim images leave out too: downloaded packages and package lists.
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftovers).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = cache / f"{BASE_TARBALL}.partial"
        _run_logged(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
            cache / "tar.log",
            "packing the base's root filesystem",
        )
        partial.rename(tarball)  # whole or not at all
    stamp.write_text(json.dumps(_base_stamp()) + "\n")
    return tarball


# -- the wheelhouse -----------------------------------------------------------------------------


def _constraints() -> str:
    """The project virtualenv's versions: `pip freeze` of this interpreter, without podtask."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line
        for line in done.stdout.splitlines()
        if line.strip() and not line.lower().startswith(("podtask==", "podtask @"))
    ]
    return "\n".join(lines) + "\n"


def make_wheelhouse(context: Path) -> Path:
    """`<context>/wheelhouse/`, made afresh: the project's wheel (from `REPO_ROOT`) and a wheel
    of every runtime dependency at the version the project's virtualenv has."""
    if sys.version_info[:2] != IMAGE_PYTHON:
        wanted = ".".join(map(str, IMAGE_PYTHON))
        raise ImageBuildFailed(
            f"the wheelhouse is made with this Python ({sys.version.split()[0]}), but the "
            f"images run Python {wanted}: make the virtualenv with `make PYTHON=python{wanted}`"
        )
    context.mkdir(parents=True, exist_ok=True)
    target = context / WHEELHOUSE
    with tempfile.TemporaryDirectory(prefix=".wheelhouse-", dir=context) as work:
        partial = Path(work) / WHEELHOUSE
        constraints = Path(work) / "constraints.txt"
        constraints.write_text(_constraints())
        log = Path(work) / "pip.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-c",
                    str(constraints),
                    "-w",
                    str(partial),
                    # The control plane's extra too: the control-plane image installs it.
                    f"{REPO_ROOT}[control-plane]",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise ImageBuildFailed(f"pip wheel failed (exit {done.returncode})\n{log_tail(log)}")
        # Old wheels would be installable too (the newest wins): the folder is replaced whole.
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


# -- the images ---------------------------------------------------------------------------------


def build_image(dockerfile: Path, tag: str, context: Path, build_args: dict[str, str]) -> str:
    """`buildah bud` of `dockerfile` in `context`, tagged `tag`; returns `tag`. The image the tag
    named before, left without a name by the build, is removed."""
    _require_tools()
    previous = image_id(tag)
    command = ["buildah", "bud", "-f", str(dockerfile), "-t", tag]
    for name, value in build_args.items():
        command += ["--build-arg", f"{name}={value}"]
    command.append(str(context))
    log_dir = cache_root() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{tag.rsplit('/', 1)[-1].replace(':', '-')}.log"
    _run_logged(command, log, f"building {tag}")
    if previous is not None and previous != image_id(tag):
        # Still used by a container or another tag: then it stays, which is fine.
        subprocess.run(
            ["podman", "rmi", previous], env=tool_env(), capture_output=True, check=False
        )
    return tag


def build_all(context: Path = REPO_ROOT) -> dict[str, str]:
    """The base (if missing), a fresh wheelhouse, then the three images in order; returns
    {"control-plane": tag, "runner": tag, "examples": tag}."""
    base = ensure_base_image()
    # One build at a time: a second process would replace the wheelhouse under the first.
    with exclusive(cache_root() / ".build.lock"):
        make_wheelhouse(context)
        return _build_in_order(context, base)


def _build_in_order(context: Path, base: str) -> dict[str, str]:
    python = {"PYTHON_IMAGE": base}
    return {
        "control-plane": build_image(context / "Dockerfile", CONTROL_PLANE_IMAGE, context, python),
        "runner": build_image(
            context / "runner-image" / "Dockerfile", RUNNER_IMAGE, context, python
        ),
        "examples": build_image(
            context / "examples" / "Dockerfile",
            EXAMPLES_IMAGE,
            context,
            {"RUNNER_IMAGE": RUNNER_IMAGE},
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podtask_devcluster.image_build",
        description="Build podtask's images with buildah from the repository root: the local "
        "Debian base, the wheelhouse, then the control-plane, runner and examples images.",
    )
    parser.add_argument(
        "what",
        nargs="?",
        choices=("base", "wheelhouse", "all"),
        default="all",
        help="base: the local Python base only; wheelhouse: ./wheelhouse only; all (default)",
    )
    args = parser.parse_args(argv)
    try:
        if args.what == "base":
            print(ensure_base_image())
        elif args.what == "wheelhouse":
            print(make_wheelhouse(REPO_ROOT))
        else:
            for name, tag in build_all().items():
                print(f"{name}: {tag}")
    except ImageBuildFailed as error:
        print(f"image_build: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
