"""A small reader of Dockerfiles and `.dockerignore`, for what tests can check without an engine.

It understands what podtask's Dockerfiles use: line continuations, comments, `ARG` defaults
(global ones before the first `FROM`, substituted into `FROM`), stages named with `AS`,
`COPY` with flags, the exec (JSON) and shell forms of `ENTRYPOINT`/`CMD`, and `ENV` in
its `KEY=value` and `KEY value` forms. `.dockerignore` patterns follow Docker's rules for
what these files use: `*`, `?`, `**`, a leading `!` re-includes, and a pattern that
matches a folder excludes everything in it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, …
    arguments: str  # the rest of the (joined) line, as written
    line: int  # where it starts, 1-based

    def words(self) -> list[str]:
        return shlex.split(self.arguments)

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form ENTRYPOINT/CMD/RUN; None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        parsed = json.loads(text)
        if not isinstance(parsed, list) or not all(isinstance(part, str) for part in parsed):
            raise ValueError(f"line {self.line}: {self.keyword} is not a JSON array of strings")
        return parsed


@dataclass
class Stage:
    base: str  # the FROM image with the global ARG defaults substituted
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            words = instruction.words()
            if words and "=" not in words[0]:  # the legacy `ENV KEY value with spaces`
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                values[key] = value
        return values

    def copies(self) -> list[Copy]:
        return [Copy.parse(i) for i in self.all("COPY") + self.all("ADD")]


@dataclass(frozen=True)
class Copy:
    sources: list[str]
    destination: str
    from_stage: str | None

    @classmethod
    def parse(cls, instruction: Instruction) -> Copy:
        words = instruction.exec_form() or instruction.words()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        return cls(sources=paths[:-1], destination=paths[-1], from_stage=from_stage)


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage_names(self) -> set[str]:
        return {stage.name for stage in self.stages if stage.name is not None}


def instructions(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        # A comment (or a parser directive) is a whole line; inside a continuation it is
        # skipped without ending the instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            joined = " ".join(pending)
            keyword, _, arguments = joined.partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"the instruction at line {start} ends with a continuation")
    return found


def substitute(text: str, values: dict[str, str]) -> str:
    """`${NAME}` and `$NAME` replaced from `values`; an unknown name is an error here."""

    def value(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        if name not in values:
            raise KeyError(f"{name} has no default: the build would need a --build-arg")
        return values[name]

    return _VARIABLE.sub(value, text)


def parse(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in instructions(path.read_text()):
        if instruction.keyword == "FROM":
            words = instruction.words()
            image = substitute(words[0], global_args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image, name))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"{path}:{instruction.line}: only ARG may come before FROM")
            key, _, default = instruction.arguments.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise ValueError(f"{path} has no FROM")
    return Dockerfile(path, global_args, stages)


# -- image references ---------------------------------------------------------------------------

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageReference:
    name: str  # [registry/]path
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageReference:
        digest = None
        if found := _DIGEST.search(reference):
            digest = found.group(0)[1:]
            reference = reference[: found.start()]
        # A tag follows the last ':' of the last path component (a registry port has a '/' after).
        name, colon, tag = reference.rpartition(":")
        if not colon or "/" in tag:
            return cls(reference, None, digest)
        return cls(name, tag, digest)


# -- .dockerignore ------------------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts) + "$")


@dataclass(frozen=True)
class DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str]]]  # (excludes?, pattern), in file order

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            excludes = not line.startswith("!")
            pattern = line.lstrip("!").strip().strip("/")
            rules.append((excludes, _pattern_regex(pattern)))
        return cls(rules)

    def excludes(self, relative_path: str) -> bool:
        """Whether the file at `relative_path` (from the context root) is left out.

        The last rule that matches the path or one of its folders decides, as in Docker.
        """
        parts = relative_path.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        decision = False
        for excludes, regex in self.rules:
            if any(regex.match(prefix) for prefix in prefixes):
                decision = excludes
        return decision
