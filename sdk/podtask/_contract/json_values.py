"""Which JSON values a TaskRun can hold, and how big they are as Kubernetes stores them.

A value can be valid for Python's `json` and still break what handles it next: a lone
surrogate (`"\\ud800"`) cannot be encoded as UTF-8; objects nested hundreds of levels deep
overflow pydantic's serializer (255 levels) and Python's parser (about 1,000); an integer
beyond int64 is silently rounded by Kubernetes; NaN, Infinity and 1e400 are not JSON.
`json_problem` names the first such place by its path; `checked_json_text` is the fast
check of a whole value (C-speed scans, the walk only to name a problem it found).
Pure: no I/O, no imports of ours but the limits.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podtask._contract.limits import MAX_JSON_DEPTH, MAX_JSON_INT, MIN_JSON_INT


@dataclass(frozen=True)
class JsonProblem:
    """What is wrong with a JSON value and where: `path` is dotted from the value's field."""

    path: str
    message: str
    kind: str

    def at(self, field: str) -> JsonProblem:
        """The same problem, with `field` in front of its path."""
        path = f"{field}.{self.path}" if self.path and not self.path.startswith("[") else None
        return JsonProblem(path or f"{field}{self.path}", self.message, self.kind)

    def __str__(self) -> str:
        return f"{self.path or 'the value'}: {self.message}"


class JsonValueError(ValueError):
    """A value a TaskRun cannot hold; `problem` says what and where."""

    def __init__(self, problem: JsonProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


_MAX_KEY_SHOWN = 40
_MAX_PATH_PARTS = 12
_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_path(parts: Sequence[str | int]) -> str:
    """`a.0.b`, with keys that are not simple quoted (`a["x.y"]`), safe to show: ASCII, short."""
    shown = list(parts)
    cut = len(shown) > _MAX_PATH_PARTS
    if cut:
        shown = shown[:_MAX_PATH_PARTS]
    text = ""
    for part in shown:
        if isinstance(part, str) and not _SIMPLE_KEY.match(part):
            key = part if len(part) <= _MAX_KEY_SHOWN else part[:_MAX_KEY_SHOWN] + "…"
            # ensure_ascii: a lone surrogate in a key is shown escaped, never sent raw.
            text += f"[{json.dumps(key)}]"
        else:
            text += f".{part}" if text else str(part)
    if cut:
        text += f"… ({len(parts)} levels)"
    return text


def _string_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return f"holds a lone surrogate (U+{code:04X}), which is not Unicode text"
    return None


def json_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> JsonProblem | None:
    """The first thing in `value` a TaskRun cannot hold, or None.

    Iterative, so no depth makes it recurse; it stops at the first problem.
    """
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                return JsonProblem(format_path(path), f"the string {problem}", "lone_surrogate")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not MIN_JSON_INT <= item <= MAX_JSON_INT:
                return JsonProblem(
                    format_path(path),
                    f"the integer has {len(str(abs(item)))} digits, beyond the 64 bits "
                    f"({MIN_JSON_INT} to {MAX_JSON_INT}) a number keeps exactly in Kubernetes; "
                    "send it as a string",
                    "number_out_of_range",
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                return JsonProblem(
                    format_path(path),
                    "the number is not finite (NaN, Infinity, or beyond ±1.8e308), which JSON "
                    "cannot carry",
                    "number_out_of_range",
                )
        elif isinstance(item, dict | list | tuple):
            if depth + 1 > max_depth:
                return JsonProblem(
                    format_path(path),
                    f"objects and arrays nest deeper than {max_depth} levels here; "
                    f"the limit is {max_depth}",
                    "too_deep",
                )
            if isinstance(item, dict):
                children: list[tuple[Any, tuple[str | int, ...], int]] = []
                for key, child in item.items():
                    if not isinstance(key, str):
                        return JsonProblem(
                            format_path(path), "an object key is not a string", "not_json"
                        )
                    problem = _string_problem(key)
                    if problem:
                        return JsonProblem(
                            format_path((*path, key)), f"the key {problem}", "lone_surrogate"
                        )
                    children.append((child, (*path, key), depth + 1))
                stack.extend(reversed(children))
            else:
                stack.extend(
                    (child, (*path, index), depth + 1)
                    for index, child in reversed(list(enumerate(item)))
                )
        else:
            return JsonProblem(
                format_path(path), f"a value of type {type(item).__name__} is not JSON", "not_json"
            )
    return None


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST_PAIR = re.compile(r"[\[{][\]}]")
# What could make `json_problem` find something in JSON text that parsed: a surrogate
# (escaped, or raw in text that did not come from UTF-8), a number of 19 digits or more,
# an exponent of 3 digits, a NaN or Infinity literal. Strings that merely look like one
# cost a walk, nothing else.
_SUSPECTS = (
    re.compile(r"\\u[dD][89a-fA-F]"),
    re.compile(r"[0-9]{19}"),
    re.compile(r"[eE][-+]?[0-9]{3}"),
    re.compile(r"NaN|Infinity"),
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def nesting_depth(text: str, *, stop_after: int) -> int:
    """How deep objects and arrays nest in JSON `text`, counted up to `stop_after` + 1.

    Scans at C speed: strings are cut out, then each pass removes the innermost pairs.
    """
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    depth = 0
    while brackets and depth <= stop_after:
        brackets, removed = _INNERMOST_PAIR.subn("", brackets)
        if not removed:
            break  # unbalanced: not JSON, which the parser will say
        depth += 1
    return depth


def may_have_problem(text: str) -> bool:
    """Whether JSON `text` might hold a value `json_problem` refuses (other than depth)."""
    # Separate simple patterns: one alternation would be slower than all of them together.
    if not text.isascii() and _SURROGATE.search(text):
        return True
    return any(pattern.search(text) for pattern in _SUSPECTS)


def stored_size(text: str) -> int:
    """The bytes compact JSON `text` takes as Kubernetes stores it (Go's encoding/json:
    UTF-8, with <, > and & escaped as \\u003c…, U+2028 and U+2029 as \\u2028)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    size += 5 * (text.count("<") + text.count(">") + text.count("&"))
    size += 3 * (text.count("\u2028") + text.count("\u2029"))
    return size


def compact_json(value: Any) -> str:
    """`value` as compact JSON text in Unicode (not ASCII-escaped); ValueError if it is not
    JSON, in words."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        problem = json_problem(value, max_depth=10**9)
        raise JsonValueError(problem or JsonProblem("", "it is not JSON", "not_json")) from None


def checked_json_text(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str:
    """`value` as compact JSON text, once it is known a TaskRun can hold it.

    Raises `JsonValueError` naming the first problem's path. Fast for the common value:
    one `json.dumps`, two regex scans; the walk runs only to find where a problem is.
    """
    text = compact_json(value)
    if may_have_problem(text) or nesting_depth(text, stop_after=max_depth) > max_depth:
        problem = json_problem(value, max_depth=max_depth)
        if problem is not None:
            raise JsonValueError(problem)
    return text
