"""The Dockerfiles, checked for what a build does not show: pinned bases, a non-root user that
is the one task pods run as, entrypoints that exist in the package, an install from the
wheelhouse alone, and task-image paths that `podtask deploy` records the way the runner will
find them. That the images build, start and hold their files is test_image_builds's part."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from podtask._authoring.manifest import Manifest
from podtask._cli.deploy import for_image
from podtask._contract.resources import TaskRunSpec
from podtask_operator.pods import pod_for_attempt
from podtask_operator.settings import OperatorSettings
from tests.images.dockerfile import (
    Copy,
    Dockerfile,
    DockerIgnore,
    ImageReference,
    Stage,
    instructions,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "runner-image" / "Dockerfile"
CONTROL_PLANE = ROOT / "Dockerfile"
EXAMPLES = ROOT / "examples" / "Dockerfile"
DOCKERFILES = [RUNNER, CONTROL_PLANE, EXAMPLES]
# The package images: built from this repository's source.
PACKAGE_IMAGES = [RUNNER, CONTROL_PLANE]

# The operator's defaults, not OperatorSettings(): the environment must not move the target.
RUN_AS_USER = OperatorSettings.model_fields["run_as_user"].default
RUNNER_COMMAND = OperatorSettings.model_fields["runner_command"].default


def ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@pytest.fixture(scope="module")
def dockerignore() -> DockerIgnore:
    return DockerIgnore.parse((ROOT / ".dockerignore").read_text())


def python_module(command: list[str]) -> str:
    """X of an exec-form `python -m X …`."""
    assert command[:2] == ["python", "-m"] and len(command) > 2, command
    return command[2]


def user_and_group(stage: Stage) -> tuple[str, str | None]:
    user = stage.last("USER")
    assert user is not None, "no USER: the image would run as root"
    name, _, group = user.arguments.partition(":")
    return name, group or None


# -- the reader itself --------------------------------------------------------------------------


def test_the_reader_joins_continuations_skips_comments_and_substitutes_arguments(
    tmp_path: Path,
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# syntax comment\n"
        "ARG BASE=python:3.11.9-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN echo one \\\n"
        "    # a comment inside a continuation\n"
        "    && echo two\n"
        "FROM build\n"
        'ENV A=1 B="two words" \\\n'
        "    C=3\n"
        "COPY --from=build --chown=1:1 /wheels/ /wheels/\n"
        'ENTRYPOINT ["python", "-m", "x"]\n'
    )
    dockerfile = parse(path)
    assert dockerfile.global_args == {"BASE": "python:3.11.9-slim"}
    assert [(s.base, s.name) for s in dockerfile.stages] == [
        ("python:3.11.9-slim", "build"),
        ("build", None),
    ]
    assert dockerfile.stages[0].instructions[0].arguments == "echo one && echo two"
    assert dockerfile.final.env() == {"A": "1", "B": "two words", "C": "3"}
    assert dockerfile.final.copies() == [Copy(["/wheels/"], "/wheels/", "build")]
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == ["python", "-m", "x"]
    with pytest.raises(ValueError, match="ends with a continuation"):
        instructions("RUN echo \\\n")


def test_image_references_split_into_name_tag_and_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert ImageReference.parse(f"python:3.11.14-slim@{digest}") == ImageReference(
        "python", "3.11.14-slim", digest
    )
    assert ImageReference.parse("localhost:5000/team/tasks") == ImageReference(
        "localhost:5000/team/tasks", None, None
    )
    assert ImageReference.parse("ghcr.io/a/b:1.2") == ImageReference("ghcr.io/a/b", "1.2", None)


def test_dockerignore_rules_follow_docker() -> None:
    rules = DockerIgnore.parse("**/__pycache__\n.venv\ndocs/*.md\n!docs/keep.md\n")
    assert rules.excludes(".venv/bin/python")
    assert rules.excludes("sdk/podtask/__pycache__/cli.cpython-311.pyc")
    assert rules.excludes("docs/install.md")
    assert not rules.excludes("docs/keep.md")
    assert not rules.excludes("sdk/podtask/_cli/cli.py")
    assert not rules.excludes("venv/x")


# -- every Dockerfile ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_every_base_image_is_pinned(path: Path) -> None:
    dockerfile = parse(path)
    earlier: set[str] = set()
    for stage in dockerfile.stages:
        if stage.base not in earlier:  # a stage built on an earlier stage pins nothing new
            image = ImageReference.parse(stage.base)
            tag_pins = image.tag not in (None, "latest") and bool(re.search(r"\d", image.tag or ""))
            assert image.digest is not None or tag_pins, (
                f"{path.name}: FROM {stage.base} is not pinned: give a version tag or a digest"
            )
        if stage.name:
            earlier.add(stage.name)


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_the_image_runs_as_the_user_task_pods_run_as(path: Path) -> None:
    final = parse(path).final
    user, group = user_and_group(final)
    assert user not in ("root", "0"), f"{path.name}: the last USER is root"
    # Numeric, so that the kubelet can verify runAsNonRoot without reading /etc/passwd.
    assert user == str(RUN_AS_USER), f"{path.name}: USER {user}, the operator runs {RUN_AS_USER}"
    assert group == str(RUN_AS_USER), "the operator's runAsGroup is its run_as_user too"
    # Nothing runs as root after the user is set: the last USER is the last word on it.
    last_user = final.instructions.index(final.all("USER")[-1])
    assert not [i for i in final.instructions[last_user:] if i.keyword == "RUN"]


def test_dockerignore_keeps_out_the_virtualenv_dev_state_and_history(
    dockerignore: DockerIgnore,
) -> None:
    for path in (".venv/bin/python", ".podtask/dev-secrets.json", ".git/HEAD"):
        assert dockerignore.excludes(path), path
    for path in (
        "sdk/podtask/_cli/cli.py",
        "pyproject.toml",
        "README.md",
        "examples/hello_world.py",
    ):
        assert not dockerignore.excludes(path), path


# -- the package images -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PACKAGE_IMAGES, ids=ids(PACKAGE_IMAGES))
def test_the_package_images_install_from_the_wheelhouse_alone(
    path: Path, dockerignore: DockerIgnore
) -> None:
    # No package index: the build reaches none here, and the wheelhouse pins the versions
    # (`make wheelhouse`; test_image_builds checks what the built images hold).
    installs = [run for run in parse(path).final.all("RUN") if "pip install" in run.arguments]
    assert len(installs) == 1, installs
    words = installs[0].words()
    assert "--mount=type=bind,source=wheelhouse,target=/wheelhouse" in words
    assert {"--no-index", "--find-links", "/wheelhouse"} <= set(words)
    # The runner needs podtask alone; the operator and the API are its control-plane extra.
    wanted = "podtask[control-plane]" if path == CONTROL_PLANE else "podtask"
    assert [word for word in words if word.startswith("podtask")] == [wanted]
    assert not dockerignore.excludes("wheelhouse/podtask-0.1.0-py3-none-any.whl")
    # Made on the host for each build, never committed.
    assert "/wheelhouse/" in (ROOT / ".gitignore").read_text().splitlines()


def test_both_package_images_share_one_python_base() -> None:
    bases = {parse(path).stages[0].base for path in PACKAGE_IMAGES}
    assert len(bases) == 1, bases
    image = ImageReference.parse(bases.pop())
    assert image.name == "python" and image.digest is not None
    assert image.tag is not None and image.tag.startswith("3.11."), "requires-python and mypy"
    assert "slim" in image.tag


@pytest.mark.parametrize(
    ("path", "keyword"), [(RUNNER, "ENTRYPOINT"), (CONTROL_PLANE, "CMD")], ids=["runner", "api"]
)
def test_the_images_start_a_module_the_package_holds(path: Path, keyword: str) -> None:
    instruction = parse(path).final.last(keyword)
    assert instruction is not None
    command = instruction.exec_form()
    assert command is not None, "exec form: the process gets SIGTERM itself, not a shell"
    module = python_module(command)
    spec = importlib.util.find_spec(f"{module}.__main__")
    assert spec is not None and spec.origin is not None
    # This repository's package, the one the image installs, not one from elsewhere.
    assert Path(spec.origin).is_relative_to(ROOT), spec.origin


def test_the_runner_entrypoint_is_the_command_the_operator_gives_its_pods() -> None:
    entrypoint = parse(RUNNER).final.last("ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form() == RUNNER_COMMAND


def test_the_control_plane_image_holds_the_operator_too() -> None:
    # The chart runs the operator as `python -m podtask_operator` from the same image.
    assert importlib.util.find_spec("podtask_operator.__main__") is not None
    assert parse(CONTROL_PLANE).final.last("ENTRYPOINT") is None, "the chart sets the command"


@pytest.mark.parametrize("path", PACKAGE_IMAGES, ids=ids(PACKAGE_IMAGES))
def test_the_images_write_nothing_outside_tmp(path: Path) -> None:
    final = parse(path).final
    env = final.env()
    assert env["PYTHONUNBUFFERED"] == "1", "logs reach `kubectl logs` as they are printed"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert PurePosixPath(env["HOME"]).is_relative_to("/tmp")
    assert not final.all("VOLUME"), "the pods mount what is writable"
    workdir = final.last("WORKDIR")
    assert workdir is not None and workdir.arguments == "/app"


def test_the_runner_home_is_the_writable_folder_of_task_pods() -> None:
    spec = TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "v1",
            "image": "registry.example/tasks:v1",
            "module": "examples/hello_world.py",
            "machine": "small-1x",
            "queue": {"name": "q", "concurrencyLimit": 1},
            "retry": {},
            "payload": None,
        }
    )
    run: dict[str, Any] = {"metadata": {"name": "run-1", "namespace": "tasks", "uid": "u"}}
    settings = OperatorSettings(api_url="http://api:8080", runner_token_secret="s" * 32)
    pod = pod_for_attempt(run, spec, 1, "small-1x", settings)
    container = pod["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = [mount["mountPath"] for mount in container["volumeMounts"]]
    home = parse(RUNNER).final.env()["HOME"]
    assert any(PurePosixPath(home).is_relative_to(mount) for mount in mounts), (home, mounts)
    assert pod["spec"]["securityContext"]["runAsUser"] == RUN_AS_USER
    assert "workingDir" not in container, "the runner starts in the image's WORKDIR"


# -- the example task image ---------------------------------------------------------------------


def image_files(dockerfile: Dockerfile) -> dict[PurePosixPath, Path]:
    """Where the final stage's COPY instructions put the repository's files: image path →
    repository file (sources as globs or folders, destinations relative to WORKDIR)."""
    final = dockerfile.final
    workdir_instruction = final.last("WORKDIR")
    assert workdir_instruction is not None
    workdir = PurePosixPath(workdir_instruction.arguments)
    placed: dict[PurePosixPath, Path] = {}
    for copy in final.copies():
        assert copy.from_stage is None
        destination = workdir / copy.destination
        for source in copy.sources:
            for match in sorted(ROOT.glob(source.rstrip("/"))):
                if match.is_file():
                    # Several sources, or a destination ending in '/': into the folder.
                    placed[destination / match.name] = match
                else:
                    for file in match.rglob("*"):
                        placed[destination / file.relative_to(match).as_posix()] = file
    return placed


def test_the_example_image_is_built_from_the_runner_image_the_chart_names() -> None:
    dockerfile = parse(EXAMPLES)
    assert len(dockerfile.stages) == 1
    values = yaml.safe_load((ROOT / "charts" / "podtask" / "values.yaml").read_text())
    assert dockerfile.final.base == values["runner"]["image"]
    runner = ImageReference.parse(dockerfile.final.base)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert runner.tag == version, "the runner of the SDK version the examples are written for"


@pytest.mark.component
def test_deployed_module_paths_are_where_the_example_image_puts_the_modules() -> None:
    # `podtask index` names files by absolute path; a deploy from the repository root
    # records them relative to it, and the runner resolves them from the image's WORKDIR.
    indexed = subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", "index", "examples/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    manifest = for_image(Manifest.model_validate(json.loads(indexed.stdout)), ROOT)
    placed = image_files(parse(EXAMPLES))
    workdir = PurePosixPath("/app")
    assert manifest.tasks
    for task in manifest.tasks:
        in_image = workdir / task.module
        assert in_image in placed, f"task {task.id}: the image has no {in_image}"
        assert placed[in_image] == ROOT / task.module
