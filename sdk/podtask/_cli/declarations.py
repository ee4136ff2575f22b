"""What the task modules of `podtask dev` declare, read in a child process.

`podtask dev` never imports the author's modules itself: each reading is a fresh
`python -m podtask._cli.declarations MODULE...`, so a reload sees the code as saved (no module
cached from an earlier import), and a module that hangs, exits or crashes at import cannot take
the dev loop down. The child prints one JSON object on stdout:

- `{"manifest": …, "modules": […], "sources": […]}`: the manifest (`podtask index`'s), the files
  of the modules it was given, and every source file of the author's that the import loaded
  (what `podtask dev` watches);
- `{"error": {"summary": …, "traceback": …}, "modules": […], "sources": […]}` when the modules do
  not import or declare wrongly: the traceback keeps the author's frames only (podtask's own and
  the import machinery's are dropped), so it points at the line to fix.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import sysconfig
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podtask._authoring.manifest import Manifest, load_manifest
from podtask._authoring.modules import module_files
from podtask.errors import TaskDeclarationError, TaskModuleImportError

READ_TIMEOUT_SECONDS = 60.0
_PODTASK_DIR = Path(__file__).resolve().parents[1]
# Modules of these packages are podtask's own, wherever they are installed (editable or not).
_OWN_PACKAGES = (
    "podtask",
    "podtask_api",
    "podtask_operator",
    "podtask_runner",
    "podtask_devcluster",
)


@dataclass(frozen=True)
class Declarations:
    """A good reading: the manifest, and the files it came from."""

    manifest: Manifest
    modules: tuple[str, ...]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class ImportFailure:
    """A reading that failed: what went wrong, the author's traceback (empty when there is
    none to show), and the files read up to the failure."""

    summary: str
    traceback: str
    modules: tuple[str, ...]
    sources: tuple[str, ...]

    def describe(self) -> str:
        return self.summary + (f"\n{self.traceback.rstrip()}" if self.traceback else "")


Reading = Declarations | ImportFailure


def _is_authors(filename: str) -> bool:
    if filename.startswith("<frozen importlib") or filename.startswith("<frozen zipimport"):
        return False
    path = Path(filename)
    return not (path.is_relative_to(_PODTASK_DIR) or path.parent.name == "importlib")


def _authors_only(exception: traceback.TracebackException) -> None:
    exception.stack = traceback.StackSummary.from_list(
        [frame for frame in exception.stack if _is_authors(frame.filename)]
    )
    for chained in (exception.__cause__, exception.__context__):
        if chained is not None:
            _authors_only(chained)


def author_traceback(error: BaseException) -> str:
    """`error`'s traceback as Python prints it, with only the author's frames: podtask's and
    the import machinery's are dropped (a declaration error keeps the author's `@task` line)."""
    exception = traceback.TracebackException.from_exception(error)
    _authors_only(exception)
    return "".join(exception.format())


def _site_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    found |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return tuple(Path(p).resolve() for p in found)


def author_sources(module_names: Iterable[str]) -> list[str]:
    """The source files of the modules among `module_names` that are the author's: neither
    podtask's own nor installed (the standard library, the environment's site-packages)."""
    site = _site_dirs()
    found = set()
    for name in module_names:
        if name.split(".")[0] in _OWN_PACKAGES:
            continue
        filename = getattr(sys.modules.get(name), "__file__", None)
        if not filename or not filename.endswith(".py"):
            continue
        path = Path(filename).resolve()
        if not any(path.is_relative_to(root) for root in site):
            found.add(str(path))
    return sorted(found)


def given_module_files(module_refs: Iterable[str]) -> list[str]:
    """The files of the modules `podtask dev` was given: a file, a folder's task files, a dotted
    name's file when it can be found (without importing it)."""
    files = []
    for ref in module_refs:
        for module_ref in module_files(ref):
            if module_ref.endswith(".py"):
                files.append(module_ref)
                continue
            with contextlib.suppress(Exception):
                spec = importlib.util.find_spec(module_ref)
                if spec is not None and spec.origin and spec.origin.endswith(".py"):
                    files.append(str(Path(spec.origin).resolve()))
    return sorted(set(files))


def read_here(module_refs: Sequence[str]) -> dict[str, Any]:
    """Import the modules in this process and describe what they declare (the child's work)."""
    before = set(sys.modules)
    result: dict[str, Any]
    try:
        # Whatever the modules print while they import must not corrupt the JSON on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            manifest = load_manifest(module_refs)
    except TaskModuleImportError as error:
        cause = error.__cause__
        result = {
            "error": {"summary": str(error), "traceback": author_traceback(cause) if cause else ""}
        }
    except TaskDeclarationError as error:
        result = {"error": {"summary": str(error), "traceback": ""}}
    except BaseException as error:  # an exit or an interrupt at import: the module's doing
        result = {
            "error": {
                "summary": f"the task modules failed to import: {type(error).__name__}: {error}",
                "traceback": author_traceback(error),
            }
        }
    else:
        result = {"manifest": manifest.to_wire()}
    result["modules"] = given_module_files(module_refs)
    result["sources"] = author_sources(set(sys.modules) - before)
    return result


def parse_reading(output: str) -> Reading:
    """The reading a child printed (its last line of stdout)."""
    raw = json.loads(output.strip().splitlines()[-1])
    modules, sources = tuple(raw["modules"]), tuple(raw["sources"])
    if "error" in raw:
        return ImportFailure(raw["error"]["summary"], raw["error"]["traceback"], modules, sources)
    return Declarations(Manifest.model_validate(raw["manifest"]), modules, sources)


def _timed_out(timeout: float) -> ImportFailure:
    return ImportFailure(
        f"the task modules did not finish importing in {timeout:g} s (does one wait for "
        "something at import?)",
        "",
        (),
        (),
    )


class DeclarationReader:
    """Reads what `module_refs` declare, each time in a fresh child process.

    The child of the next reading is started ahead: it imports podtask (pydantic's models: most
    of a second on a busy machine) and waits for its request, so that a reading after a save
    costs only the import of the author's modules. It has not imported those yet: it sees them
    as saved when asked.
    """

    def __init__(self, module_refs: Sequence[str], timeout: float = READ_TIMEOUT_SECONDS) -> None:
        self._command = [sys.executable, "-m", "podtask._cli.declarations", _ON_REQUEST]
        self._command += module_refs
        self._timeout = timeout
        self._ready: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C is `podtask dev`'s to handle; it stops this child (`close`), and a child
            # whose `podtask dev` died reads the end of its stdin and exits.
            start_new_session=True,
        )

    def read(self) -> Reading:
        try:
            child = self._ready if self._ready is not None else self._start()
        except OSError as error:
            return ImportFailure(
                f"could not start Python to read the task modules: {error}", "", (), ()
            )
        try:
            output, errors = child.communicate("read\n", timeout=self._timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            return _timed_out(self._timeout)
        finally:
            with contextlib.suppress(OSError):  # the next reading starts its own then
                self._ready = None
                self._ready = self._start()
        try:
            return parse_reading(output)
        except (ValueError, KeyError, IndexError):
            return ImportFailure(
                f"reading the task modules exited with code {child.returncode}",
                errors[-3000:],
                (),
                (),
            )

    def close(self) -> None:
        """Stop the child started ahead (it would exit on its own once its stdin closes)."""
        if self._ready is not None:
            self._ready.kill()
            self._ready.communicate()
            self._ready = None


# The child waits for a line on stdin before it reads the modules (`DeclarationReader`).
_ON_REQUEST = "--on-request"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [_ON_REQUEST]:
        args = args[1:]
        if not sys.stdin.readline():
            return 0  # `podtask dev` stopped before asking
    # Each reading is a fresh process: no bytecode cache of the author's modules is written
    # (one written in the same second as the next save could be taken for the new source).
    sys.dont_write_bytecode = True
    reading = read_here(args)
    sys.stdout.write(json.dumps(reading) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
