"""The cluster docs stay true to what they describe: every chart value is in the values
reference, every `podtask` command they show parses with the real CLI, links point at files
and headings that exist, and the CI example's workflow and Dockerfile are well formed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from podtask._cli.cli_parser import parser as _parser
from podtask_operator.settings import OperatorSettings
from tests.images.dockerfile import ImageReference, parse

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
LINKING = [ROOT / "README.md", *PAGES]
VALUES = ROOT / "charts" / "podtask" / "values.yaml"
# Values documented as one object rather than key by key.
DOCUMENTED_WHOLE = ("podSecurityContext", "containerSecurityContext")

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(path.read_text()) if lang == language]


def leaf_values(values: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and not path.startswith(DOCUMENTED_WHOLE):
            found += leaf_values(value, path)
        elif "." not in path or not path.startswith(DOCUMENTED_WHOLE):
            found.append(path)
    return found


def test_the_docs_exist_and_the_readme_links_each() -> None:
    names = {page.name for page in PAGES}
    assert {"install.md", "values.md", "upgrading.md", "kubectl.md", "ci.md"} <= names
    readme = (ROOT / "README.md").read_text()
    for name in names:
        assert f"(docs/{name})" in readme, name


def test_every_chart_value_is_in_the_values_reference() -> None:
    reference = (DOCS / "values.md").read_text()
    values = yaml.safe_load(VALUES.read_text())
    missing = [path for path in leaf_values(values) if f"`{path}`" not in reference]
    assert not missing, f"docs/values.md does not describe: {', '.join(missing)}"


def test_the_values_reference_names_no_value_the_chart_lacks() -> None:
    values = yaml.safe_load(VALUES.read_text())
    known = set(leaf_values(values))
    rows = re.findall(r"^\| `([A-Za-z][\w.]*)` \|", (DOCS / "values.md").read_text(), re.M)
    assert rows
    assert sorted(set(rows) - known) == []


def test_the_values_reference_gives_the_chart_defaults() -> None:
    values = yaml.safe_load(VALUES.read_text())
    reference = (DOCS / "values.md").read_text()
    for path in ("image.repository", "runner.image", "runner.runAsUser", "api.service.port"):
        value: Any = values
        for key in path.split("."):
            value = value[key]
        row = re.search(rf"^\| `{re.escape(path)}` \| `([^`]*)`", reference, re.M)
        assert row is not None and row.group(1) == str(value), path
    assert values["runner"]["runAsUser"] == OperatorSettings.model_fields["run_as_user"].default


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", LINKING, ids=[p.name for p in LINKING])
def test_relative_links_point_at_files_and_headings_that_exist(page: Path) -> None:
    for target in _LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.M)
            assert anchor in {slug(h) for h in headings}, f"{page.name}: {target}"


def podtask_commands(text: str) -> list[str]:
    """The `podtask …` invocations of shell lines: at a line's start or inside `$(…)`."""
    commands: list[str] = []
    lines = text.replace("\\\n", " ").splitlines()
    for line in lines:
        for found in re.finditer(r"(?:^\s*|\$\(|;\s*)(podtask\s[^)|>&;#]*)", line):
            commands.append(found.group(1).strip())
    return commands


def shell_pages() -> list[Path]:
    return [p for p in LINKING if any(podtask_commands(body) for body in blocks(p, "bash"))]


@pytest.mark.parametrize("page", shell_pages(), ids=[p.name for p in shell_pages()])
def test_every_podtask_command_shown_parses_with_the_cli(page: Path) -> None:
    commands = [c for body in blocks(page, "bash") for c in podtask_commands(body)]
    assert commands
    parser = _parser()
    for command in commands:
        # Placeholders in the docs (run-…, $IMAGE) are values, never flags.
        argv = shlex.split(command.replace("…", "x"))[1:]
        try:
            parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page.name}: `{command}` does not parse")


def test_the_ci_workflow_builds_pushes_and_deploys() -> None:
    (workflow_text,) = blocks(DOCS / "ci.md", "yaml")
    workflow = yaml.safe_load(workflow_text)
    steps = workflow["jobs"]["deploy"]["steps"]
    scripts = "\n".join(step.get("run", "") for step in steps)
    build = scripts.index("docker build")
    push = scripts.index("docker push")
    deploy = scripts.index("deploy --image")
    assert build < push < deploy
    # The images are the user's own: the runner they built and pushed when installing
    # (install.md), given as a variable, and the task image built on it, in their registry.
    env = workflow["jobs"]["deploy"]["env"]
    assert env["RUNNER_IMAGE"].startswith("${{ vars.")
    assert env["IMAGE"].startswith("${{ vars.PODTASK_REGISTRY }}/")
    assert '--build-arg RUNNER_IMAGE="$RUNNER_IMAGE"' in scripts
    assert "ghcr.io/podtask" not in (DOCS / "ci.md").read_text()
    deploy_step = next(step for step in steps if "deploy --image" in step.get("run", ""))
    assert set(deploy_step["env"]) == {"PODTASK_API_URL", "PODTASK_API_KEY"}
    assert "${{ secrets." in deploy_step["env"]["PODTASK_API_KEY"]
    command = re.search(r"deploy --image[^>\n]*", deploy_step["run"])
    assert command is not None
    _parser().parse_args(shlex.split(command.group(0).replace('"$IMAGE"', "img:1")))


def install_guide_runner_image() -> str:
    """The runner image the install guide builds and gives the chart, its example values
    ($REGISTRY, $VERSION) filled in."""
    guide = (DOCS / "install.md").read_text()
    shell = dict(re.findall(r"^([A-Z]+)=(\S+)", guide, re.M))
    (build,) = re.findall(r"docker build -f runner-image/Dockerfile -t (\S+) \.", guide)
    assert f"--set runner.image={build}" in guide
    return re.sub(r"\$([A-Z]+)", lambda found: shell[found.group(1)], build)


def test_the_ci_task_image_is_built_from_the_runner_and_runs_as_its_user(
    tmp_path: Path,
) -> None:
    (dockerfile_text,) = blocks(DOCS / "ci.md", "dockerfile")
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile_text)
    dockerfile = parse(path)
    values = yaml.safe_load(VALUES.read_text())
    assert dockerfile.final.base == install_guide_runner_image()
    assert ImageReference.parse(dockerfile.final.base).tag not in (None, "latest")
    user = dockerfile.final.last("USER")
    assert user is not None
    assert user.arguments == f"{values['runner']['runAsUser']}:{values['runner']['runAsUser']}"
    workdir = dockerfile.final.last("WORKDIR")
    assert workdir is not None and workdir.arguments == "/app"


def test_the_install_guide_names_the_helm_the_chart_tests_use() -> None:
    import helm_python

    tested_major = helm_python.helm_sdk_version().lstrip("v").split(".")[0]
    requirements = (DOCS / "install.md").read_text().split("## What you need")[1].split("\n## ")[0]
    named = re.findall(r"^- Helm (\d+)\b", requirements, re.M)
    assert named == [tested_major], requirements
