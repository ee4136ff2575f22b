"""`pip install podtask` is the SDK, the client and the CLI a backend needs to trigger tasks;
the control plane (`podtask[control-plane]`), `podtask keys` (`podtask[cluster]`) and
`podtask dev` (`podtask[dev]`) are extras. The base requirements name none of the control
plane's packages, and what the base offers imports and runs with all of them missing."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from podtask._cli.extras import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRA_DISTRIBUTIONS = {"kopf", "kubernetes", "fastapi", "uvicorn", "starlette", "aiohttp"}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in requirements}


def extra_requirements(extra: str) -> set[str]:
    """The distributions `pip install 'podtask[extra]'` adds, through the extras it names."""
    found: set[str] = set()
    for requirement in PROJECT["optional-dependencies"][extra]:
        named = re.fullmatch(r"podtask\[([\w-]+)\]", requirement)
        found |= extra_requirements(named.group(1)) if named else names([requirement])
    return found


# `@task(schedule=...)` checks its cron expression and zone where the task is declared.
BASE_REQUIREMENTS = {"pydantic", "httpx", "croniter", "tzdata"}


def test_the_base_requirements_are_the_sdk_and_clients_only() -> None:
    assert names(PROJECT["dependencies"]) == BASE_REQUIREMENTS
    # The same in the metadata the project was installed with (the built wheel's).
    built = [r for r in importlib.metadata.requires("podtask") or [] if "extra ==" not in r]
    assert names(built) == BASE_REQUIREMENTS
    assert extra_requirements("control-plane") >= EXTRA_DISTRIBUTIONS
    assert extra_requirements("cluster") == {"kubernetes"}
    # `podtask dev` runs the control plane; the repository's tests run `podtask dev`.
    assert extra_requirements("control-plane") <= extra_requirements("dev")
    assert extra_requirements("dev") <= extra_requirements("test")


@pytest.mark.parametrize("extra", sorted(EXTRA_MODULES))
def test_the_cli_checks_the_modules_of_each_extra(extra: str) -> None:
    # `podtask keys` and `podtask dev` say which extra is missing: they look for the import
    # names of exactly that extra's requirements.
    distributions = importlib.metadata.packages_distributions()
    # Compared as PEP 503 normalizes names: `fastapi_offline` is `fastapi-offline`.
    looked_for = {
        re.sub(r"[-_.]+", "-", distribution.lower())
        for module in EXTRA_MODULES[extra]
        for distribution in distributions[module]
    }
    assert looked_for == extra_requirements(extra)


# A fresh interpreter in which the extras' packages cannot be imported, as if not installed.
BLOCKED = textwrap.dedent(
    f"""
    import importlib.abc
    import sys

    BLOCKED = {EXTRA_MODULES["dev"]!r}

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
    """
)


def python_without_extras(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED + textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.component
def test_the_sdk_client_runner_and_cli_import_without_the_extras() -> None:
    done = python_without_extras(
        """
        import podtask, podtask.client, podtask.hooks, podtask.errors
        import podtask_runner.__main__
        from podtask._cli.cli import main

        client = podtask.client.PodtaskClient(api_url="http://127.0.0.1:9", api_key="k")
        client.close()
        # The manifest of the examples, as `podtask index` and `podtask deploy` build it.
        assert main(["index", "examples/"]) == 0
        loaded = [m for m in sys.modules if m.split(".")[0] in BLOCKED]
        assert not loaded, loaded
        """
    )
    assert done.returncode == 0, done.stderr
    assert '"tasks"' in done.stdout


@pytest.mark.component
@pytest.mark.parametrize(
    ("command", "extra"),
    [(["keys", "list"], "podtask[cluster]"), (["dev", "examples"], "podtask[dev]")],
)
def test_a_command_that_needs_an_extra_says_which(command: list[str], extra: str) -> None:
    done = python_without_extras(
        """
        from podtask._cli.cli import main
        sys.exit(main(sys.argv[1:]))
        """,
        *command,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"pip install '{extra}'" in done.stderr and "Traceback" not in done.stderr
