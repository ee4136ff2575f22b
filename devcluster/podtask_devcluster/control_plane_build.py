"""The real control plane's binaries: etcd, kube-apiserver, kube-scheduler and
kube-controller-manager, built once from the pinned Go module in `devcluster/control-plane/`
into a cache outside the repo, then reused.

The cache is `~/.cache/podtask/kube/<kubernetes version>/` (its root is `PODTASK_KUBE_CACHE`
when set). The versions come from `go.mod`, the one place they are pinned. A build runs under
an `flock` on the cache root, so two processes (pytest workers, `make dev`) never build at
once: the second waits, then finds the first one's result. It builds into a temporary folder
that is renamed into place only once every binary reports the expected version, so a killed
build never leaves half a cache. The `stamp` file names the versions and the digest of the
sources the binaries were built from; a cache whose stamp does not match is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from podtask_devcluster.build_cache import exclusive, log_tail

MODULE_DIR = Path(__file__).resolve().parent.parent / "control-plane"
CACHE_ENV = "PODTASK_KUBE_CACHE"
COMPONENTS = ("etcd", "kube-apiserver", "kube-scheduler", "kube-controller-manager")
STAMP_NAME = "stamp"
KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
# What the release build stamps into the binaries; the apiserver reports it at /version.
BUILD_DATE = "2026-01-01T00:00:00Z"


class GoToolchainMissing(RuntimeError):
    """`go` is not on PATH: said in one line, for the CLI to print without a traceback."""

    def __init__(self) -> None:
        super().__init__(
            "`go` is not on PATH: the real control plane is built from source with the Go "
            "toolchain (https://go.dev/dl/); install it, or use the embedded cluster"
        )


class ControlPlaneBuildFailed(RuntimeError):
    pass


def pinned_versions(module_dir: Path = MODULE_DIR) -> dict[str, str]:
    """The Kubernetes and etcd versions that `go.mod` pins."""
    go_mod = (module_dir / "go.mod").read_text()
    versions: dict[str, str] = {}
    for name, module in (("kubernetes", KUBERNETES_MODULE), ("etcd", ETCD_MODULE)):
        found = re.search(rf"^\s*{re.escape(module)}\s+(v\S+)", go_mod, re.MULTILINE)
        if found is None:
            raise ControlPlaneBuildFailed(f"{module_dir / 'go.mod'} does not require {module}")
        versions[name] = found.group(1)
    return versions


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "podtask" / "kube"


def cache_dir(module_dir: Path = MODULE_DIR) -> Path:
    return cache_root() / pinned_versions(module_dir)["kubernetes"]


def ldflags(kubernetes_version: str) -> str:
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    stamped = {
        "k8s.io/component-base/version.gitVersion": kubernetes_version,
        "k8s.io/component-base/version.gitMajor": major,
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/component-base/version.buildDate": BUILD_DATE,
        "k8s.io/client-go/pkg/version.gitVersion": kubernetes_version,
    }
    return " ".join(["-s", "-w", *(f"-X {name}={value}" for name, value in stamped.items())])


def source_digest(module_dir: Path = MODULE_DIR) -> str:
    """What the binaries are built from: go.mod, go.sum and every main package."""
    digest = hashlib.sha256()
    files = [module_dir / "go.mod", module_dir / "go.sum", *sorted(module_dir.glob("cmd/*/*.go"))]
    for path in files:
        digest.update(path.relative_to(module_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def expected_stamp(module_dir: Path = MODULE_DIR) -> dict[str, str]:
    return {**pinned_versions(module_dir), "source": source_digest(module_dir)}


def ensure_binaries(module_dir: Path = MODULE_DIR) -> Path:
    """The cache folder holding the four binaries, built first if it lacks them."""
    if not (module_dir / "go.mod").is_file():
        raise ControlPlaneBuildFailed(
            f"the control plane's Go module is not at {module_dir}: run from a podtask clone"
        )
    stamp = expected_stamp(module_dir)
    target = cache_root() / stamp["kubernetes"]
    if _is_complete(target, stamp):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(target.parent / ".build.lock"):
        if _is_complete(target, stamp):  # another process built it while we waited
            return target
        if _adopt(target, stamp):  # binaries built by hand with the same flags
            return target
        go = shutil.which("go")
        if go is None:
            raise GoToolchainMissing()
        _remove_leftovers(target)
        _build(go, module_dir, target, stamp)
    return target


def _is_complete(target: Path, stamp: dict[str, str]) -> bool:
    try:
        found = json.loads((target / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    return found == stamp and all(os.access(target / name, os.X_OK) for name in COMPONENTS)


def _adopt(target: Path, stamp: dict[str, str]) -> bool:
    """A complete, unstamped cache (the `go build` command of the docs, run by hand) is kept
    when every binary reports the pinned version; it is stamped from now on."""
    if not all(os.access(target / name, os.X_OK) for name in COMPONENTS):
        return False
    if _version_mismatch(target, stamp) is not None:
        return False
    _write_stamp(target, stamp)
    return True


def _build(go: str, module_dir: Path, target: Path, stamp: dict[str, str]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    log_path = target.parent / f"build-{target.name}.log"
    try:
        command = [
            go,
            "build",
            "-trimpath",
            f"-ldflags={ldflags(stamp['kubernetes'])}",
            "-o",
            f"{staging}/",
            "./cmd/...",
        ]
        with log_path.open("wb") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            finished = subprocess.run(
                command, cwd=module_dir, stdout=log, stderr=subprocess.STDOUT, check=False
            )
        if finished.returncode != 0:
            raise ControlPlaneBuildFailed(
                f"building the control plane failed (exit {finished.returncode}); "
                f"see {log_path}:\n{log_tail(log_path)}"
            )
        mismatch = _version_mismatch(staging, stamp)
        if mismatch is not None:
            raise ControlPlaneBuildFailed(f"the built control plane is wrong: {mismatch}")
        _write_stamp(staging, stamp)
        staging.chmod(0o755)
        if target.exists():  # an incomplete or outdated cache: replaced whole
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
            target.rename(stale / target.name)
            shutil.rmtree(stale, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _remove_leftovers(target: Path) -> None:
    """What killed builds left: no build runs while we hold the lock, so they are stale."""
    for pattern in (f".{target.name}.building-*", f".{target.name}.stale-*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _version_mismatch(folder: Path, stamp: dict[str, str]) -> str | None:
    for name in COMPONENTS:
        expected = stamp["etcd"] if name == "etcd" else stamp["kubernetes"]
        try:
            shown = subprocess.run(
                [str(folder / name), "--version"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{name} does not run: {error}"
        if expected.lstrip("v") not in shown:
            return f"{name} --version says {shown.strip()!r}, not {expected}"
    return None


def _write_stamp(folder: Path, stamp: dict[str, str]) -> None:
    (folder / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
