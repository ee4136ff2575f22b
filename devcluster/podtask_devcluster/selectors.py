"""Label and field selectors: parsing the query-string syntax and matching objects. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class SelectorError(ValueError):
    """A selector string that does not parse."""


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_NOT_EXISTS = re.compile(rf"^!\s*({_KEY})$")
_EXISTS = re.compile(rf"^({_KEY})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\((.*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_VALUE_ONLY = re.compile(rf"^{_VALUE}$")


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects that lack the label, as in Kubernetes.
        return not present or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: dict[str, str] | None) -> bool:
        present = labels or {}
        return all(r.matches(present) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(current))
    return parts


def parse_label_selector(text: str | None) -> LabelSelector:
    if text is None or not text.strip():
        return LabelSelector()
    requirements: list[LabelRequirement] = []
    for raw in _split_top_level(text):
        term = raw.strip()
        if not term:
            raise SelectorError(f"empty requirement in label selector {text!r}")
        if match := _NOT_EXISTS.match(term):
            requirements.append(LabelRequirement(match[1], "!"))
        elif match := _SET.match(term):
            values = tuple(v.strip() for v in match[3].split(",")) if match[3].strip() else ()
            for value in values:
                if not _VALUE_ONLY.match(value):
                    raise SelectorError(f"invalid label value {value!r} in {text!r}")
            requirements.append(LabelRequirement(match[1], match[2], values))
        elif match := _EQUALITY.match(term):
            operator = "!=" if match[2] == "!=" else "="
            requirements.append(LabelRequirement(match[1], operator, (match[3],)))
        elif match := _EXISTS.match(term):
            requirements.append(LabelRequirement(match[1], "exists"))
        else:
            raise SelectorError(f"unable to parse requirement {term!r} in label selector")
    return LabelSelector(tuple(requirements))


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negated: bool
    value: str

    def matches(self, obj: dict[str, Any]) -> bool:
        actual = field_value(obj, self.field)
        return (actual != self.value) if self.negated else (actual == self.value)


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(r.matches(obj) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def exact_name(self) -> str | None:
        """The name a `metadata.name=` requirement pins, so a lookup can skip a scan."""
        for requirement in self.requirements:
            if requirement.field == "metadata.name" and not requirement.negated:
                return requirement.value
        return None


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted field; missing fields read as the empty string."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        raise SelectorError(f"dangling escape in field selector {text!r}")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


_FIELD_TERM = re.compile(r"^([A-Za-z0-9_.\-\[\]']+)\s*(==|=|!=)\s*(.*)$", re.DOTALL)


def parse_field_selector(text: str | None) -> FieldSelector:
    if text is None or not text.strip():
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    for raw in _split_unescaped(text, ","):
        term = raw.strip()
        if not term:
            raise SelectorError(f"empty requirement in field selector {text!r}")
        match = _FIELD_TERM.match(term)
        if not match:
            raise SelectorError(f"invalid field selector requirement {term!r}")
        requirements.append(
            FieldRequirement(match[1], match[2] == "!=", _unescape(match[3].strip()))
        )
    return FieldSelector(tuple(requirements))
